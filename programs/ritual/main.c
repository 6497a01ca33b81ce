/* main.c - `ritual COMMAND [options]`: finds the subcommand and runs it. */
#include "cli.h"
#include "commands.h"

#include <stdio.h>
#include <string.h>

static const char main_usage[] =
    "Usage: ritual COMMAND [options]\n"
    "\n"
    "Commands:\n"
    "  echo      echo server: every byte comes back (ritual echo --help)\n"
    "  http      static file server over HTTP/1.1 (ritual http --help)\n"
    "  bench     load generator with latency percentiles (ritual bench --help)\n"
    "\n"
    "Options:\n"
    "  -h, --help     show this help\n"
    "  --version      show the version\n"
    "\n"
    "Example:\n"
    "  ritual echo --listen 127.0.0.1:7000\n"
    "  ritual http --listen 127.0.0.1:8080 --root www\n";

static const struct {
    const char *name;
    int (*main)(int argc, char **argv);
} commands[] = {
    {"echo", echo_main},
    {"http", http_main},
    {"bench", bench_main},
};

int main(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(NULL, "missing command");
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(main_usage, stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("ritual %s\n", RITUAL_VERSION);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].main(argc - 1, argv + 1);
    return cli_usage_error(NULL, "unknown command '%s'", cmd);
}
