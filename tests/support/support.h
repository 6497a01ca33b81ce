/* support.h - everything a test includes: the runner and the helpers.
 *
 * A test file is a list of named cases (runner.h), each run in a process of
 * its own. Program tests start the real `ritual` binary (ritual_program())
 * on an ephemeral 127.0.0.1 port, tell a short story against it with
 * ordinary sockets, and end by stopping the server and asserting that it
 * exited 0 with no sanitizer report on its stderr. Library tests link
 * libritual and run loops in-process (libtest.h).
 *
 * Every helper checks its system calls; any failure ends the case at once
 * (exit 1) after printing file:line, dumping the stderr of the servers still
 * running and killing them.
 *
 *   check.h        assertions, FAIL, SYSCHECK, note
 *   runner.h       TEST_CASES, the per-case checks, ritual_program
 *   server.h       `ritual` as a child process; commands run to completion
 *   net.h          client sockets: connect, send, receive, wait
 *   proc.h         the clock, /proc figures, descriptor limits
 *   data.h         checkable payloads, temporary files and trees
 *   http_client.h  a strict HTTP/1.1 client
 */
#ifndef RITUAL_TEST_SUPPORT_H
#define RITUAL_TEST_SUPPORT_H

#include "check.h"
#include "data.h"
#include "http_client.h"
#include "net.h"
#include "proc.h"
#include "runner.h"
#include "server.h"

#endif
