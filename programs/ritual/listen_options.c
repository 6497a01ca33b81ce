/* listen_options.c - --listen (repeatable), --socket-mode, --socket-owner
 * and --user, shared by `ritual echo` and `ritual http`: checked while the
 * options are read, so a typo is a usage error before anything is bound. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The library's message without its "user 'SPEC': ", which the option's
 * name replaces. */
static const char *why(const char *spec, const ritual_error *err)
{
    size_t n = strlen(spec);
    const char *m = err->message;
    if (strncmp(m, "user '", 6) == 0 && strncmp(m + 6, spec, n) == 0 &&
        strncmp(m + 6 + n, "': ", 3) == 0)
        return m + 6 + n + 3;
    return m;
}

int cli_listen_option(const char *cmd, struct cli_listen *l, int opt, const char *value)
{
    char shown[128];
    ritual_error err;
    unsigned long mode;
    switch (opt) {
    case CLI_OPT_LISTEN:
        if (l->n == CLI_LISTEN_MAX)
            return cli_usage_error(cmd, "--listen: more than %d addresses", CLI_LISTEN_MAX);
        if (ritual_address_parse(value, NULL, NULL, &err) < 0)
            return cli_usage_error(cmd, "--listen: %s", err.message);
        l->address[l->n++] = value;
        return 0;
    case CLI_OPT_SOCKET_MODE: {
        /* Octal, as chmod takes it; permission bits only. */
        char *end;
        mode = value[0] >= '0' && value[0] <= '7' ? strtoul(value, &end, 8) : 07777 + 1;
        if (mode > 0777 || mode == 0 || *end)
            return cli_usage_error(cmd, "--socket-mode: '%s' is not an octal mode from 1 to 0777",
                                   cli_printable(value, shown, sizeof shown));
        l->socket_mode = (unsigned)mode;
        return 0;
    }
    case CLI_OPT_SOCKET_OWNER:
        if (value[0] == '\0')
            return cli_usage_error(cmd, "--socket-owner: empty, a USER[:GROUP] is needed");
        if (ritual_user_check(value, &err) < 0)
            return cli_usage_error(cmd, "--socket-owner %s: %s",
                                   cli_printable(value, shown, sizeof shown), why(value, &err));
        l->socket_owner = value;
        return 0;
    case CLI_OPT_USER:
        if (value[0] == '\0')
            return cli_usage_error(cmd, "--user: empty, a NAME[:GROUP] is needed");
        if (ritual_user_check(value, &err) < 0)
            return cli_usage_error(cmd, "--user %s: %s", cli_printable(value, shown, sizeof shown),
                                   why(value, &err));
        l->user = value;
        return 0;
    }
    return cli_usage_error(cmd, "unknown option");
}

int cli_listen_check(const char *cmd, struct cli_listen *l, const char *fallback)
{
    if (l->n == 0)
        l->address[l->n++] = fallback;
    bool unix_file = false;
    for (int i = 0; i < l->n; i++) {
        unix_file |= strncmp(l->address[i], "unix:/", 6) == 0;
        /* One socket twice (fd:3 twice) would be closed twice; "HOST:0"
         * twice is two sockets, each on a port of its own. */
        size_t len = strlen(l->address[i]);
        bool any_port = len > 2 && strcmp(l->address[i] + len - 2, ":0") == 0 &&
                        strncmp(l->address[i], "unix:", 5) != 0;
        for (int j = 0; j < i && !any_port; j++)
            if (strcmp(l->address[i], l->address[j]) == 0)
                return cli_usage_error(cmd, "--listen %s is given twice", l->address[i]);
    }
    if ((l->socket_mode || l->socket_owner) && !unix_file)
        return cli_usage_error(cmd, "%s applies to a unix:/PATH listener, and there is none",
                               l->socket_mode ? "--socket-mode" : "--socket-owner");
    return 0;
}

void cli_listen_apply(const struct cli_listen *l, ritual_listen_options *opts)
{
    opts->unix_mode = l->socket_mode;
    opts->unix_owner = l->socket_owner;
}

int cli_drop_privileges(const struct cli_listen *l, ritual_server *server)
{
    if (!l->user)
        return 0;
    ritual_error err;
    if (ritual_drop_privileges(l->user, &err) < 0)
        return cli_runtime_error("--user %s: %s", l->user, why(l->user, &err));
    ritual_log(ritual_server_loop(server, 0), RITUAL_LOG_INFO, "running as %s (uid %u, gid %u)",
               l->user, (unsigned)getuid(), (unsigned)getgid());
    return 0;
}
