/*
 * main.c -- the `halo` binary: subcommand dispatch.
 *
 * Each subcommand lives in its own file (cmd_*.c) and follows the same
 * rules: `--help` prints usage and exits 0, a usage error prints one line
 * and exits 2, a runtime failure exits 1 (DESIGN §8).
 */
#include "cli.h"
#include "config.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

#ifndef HALO_VERSION
#define HALO_VERSION "0.1.0"
#endif

static const struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"serve", halo_cmd_serve, "run the daemon: receive, process, store spans"},
    {"validate", halo_cmd_validate, "check a configuration file"},
    {"import", halo_cmd_import,
     "load OTLP-JSON lines or span JSONL files (.gz too)"},
    {"export", halo_cmd_export, "write a stored trace as OTLP-JSON"},
    {"traces", halo_cmd_traces, "list stored traces, show one as a tree"},
    {"agents", halo_cmd_agents, "per-agent runs, error rate, latency, cost"},
    {"analyze", halo_cmd_analyze, "analyze an agent's runs now: a report"},
    {"reports", halo_cmd_reports, "list and show the analyzer's reports"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: halo <command> [options]\n\n"
               "halo stores the OpenTelemetry traces of AI agents and "
               "reports the failure\npatterns that recur across their "
               "runs.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`halo <command> --help` describes a command; `halo "
               "--version` prints the version.\nExit codes: 0 ok, 1 runtime "
               "error, 2 usage error.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return HALO_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return HALO_EXIT_OK;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("halo %s\n", HALO_VERSION);
        return HALO_EXIT_OK;
    }
    enum { N = sizeof commands / sizeof *commands };
    const char *names[N + 1];
    for (size_t i = 0; i < N; i++) {
        if (!strcmp(cmd, commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
        names[i] = commands[i].name;
    }
    names[N] = NULL;
    /* an option before the command ("halo --config f traces list"), or a
     * near miss ("halo trace list") */
    const char *best = halo_config_closest(cmd, names);
    if (cmd[0] == '-' && argc > 2)
        fprintf(stderr,
                "halo: unknown command \"%s\": options go after the "
                "command (halo <command> %s ...; see `halo --help`)\n",
                cmd, cmd);
    else if (best)
        fprintf(stderr,
                "halo: unknown command \"%s\" (did you mean \"%s\"? see "
                "`halo --help`)\n",
                cmd, best);
    else
        fprintf(stderr, "halo: unknown command \"%s\" (see `halo --help`)\n",
                cmd);
    return HALO_EXIT_USAGE;
}
