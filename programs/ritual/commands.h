/* commands.h - the subcommands of the `ritual` program. Each takes its own
 * argv (argv[0] is the subcommand's name) and returns the exit status. */
#ifndef RITUAL_COMMANDS_H
#define RITUAL_COMMANDS_H

int echo_main(int argc, char **argv);
int http_main(int argc, char **argv);
int bench_main(int argc, char **argv);

#endif
