/*
 * cli.h -- shared pieces of the `halo` subcommands.
 *
 * Exit codes (DESIGN §8): 0 ok, 1 runtime error, 2 usage error.
 */
#ifndef HALO_CLI_H
#define HALO_CLI_H

#include "config.h"
#include "service.h"
#include "status.h"

#include <stdbool.h>
#include <stdint.h>

enum { HALO_EXIT_OK = 0, HALO_EXIT_RUNTIME = 1, HALO_EXIT_USAGE = 2 };

/* Load the configuration the CLI acts on: the file given with --config,
 * else $HALO_CONFIG, else the embedded default (halo.yaml compiled in).
 * Returns NULL and fills errs on failure. */
halo_node *halo_cli_load_config(const char *config_path, halo_errlist *errs);

/* Build the service of root (NULL when loading failed: errs says why), then
 * print every error of errs and, with print_warnings, every warning to
 * stderr ("error: ...", "warning: ..."), and free errs. NULL when the
 * configuration is invalid; root stays the caller's. */
halo_service *halo_cli_build_service(const halo_node *root, halo_errlist *errs,
                                     bool print_warnings);

/* The store a command reads or writes, as a spec for halo_store_open()
 * (storage/store.h): store_opt (--store: postgresql://..., postgres:KEY=VALUE
 * ..., sqlite:PATH) when given, else "sqlite:" db_opt (--db PATH), else the
 * store of the configuration above: the exporter analyzer.store names, or
 * the first sqlite or postgres exporter (a postgres exporter's `dsn`, else
 * $HALO_PG_DSN, else libpq's PG* variables). Returns a malloc'd spec, or
 * NULL with err set. */
char *halo_cli_store_spec(const char *store_opt, const char *db_opt,
                          const char *config_path, halo_err *err);

/* The store spec of a loaded configuration (the rule above, without the
 * options). malloc'd, or NULL with err set. */
char *halo_config_store_spec(const halo_node *root, halo_err *err);

/* Open the store of halo_cli_store_spec(store_opt, db_opt, config_path)
 * (read-only or writable). NULL after printing "halo CMD: why" to stderr. */
struct halo_store;
struct halo_store *halo_cli_open_store(const char *cmd, const char *store_opt,
                                       const char *db_opt,
                                       const char *config_path, bool read_only);

/* The usage errors of --store / --db, before anything is opened: both
 * given, an empty --db, a --store that is no store spec or names an empty
 * SQLite path (the value shown with any password masked). Prints "halo
 * CMD: why (see halo CMD --help)" and returns HALO_EXIT_USAGE, or -1 when
 * they are fine. */
int halo_cli_check_store_opts(const char *cmd, const char *store_opt,
                              const char *db_opt);

/* A UTC time: "2026-11-16T09:00:00Z", "2026-11-16T09:00:00.25Z",
 * "2026-11-16 09:00:00", "2026-11-16" -> ns since the epoch. */
bool halo_cli_parse_iso(const char *s, uint64_t *ns);

/* "halo CMD: <fmt with arg> (see halo CMD --help)" on stderr; returns
 * HALO_EXIT_USAGE. */
int halo_cli_usage_error(const char *cmd, const char *fmt, const char *arg)
    __attribute__((format(printf, 2, 0)));

/* getopt_long's ':' (a value missing) or '?' (an unknown option) as a
 * usage error in halo_cli_usage_error's form. The caller's optstring
 * starts with ':' and opterr is 0, so getopt itself prints nothing. */
int halo_cli_option_error(const char *cmd, int c, char **argv,
                          const char *optstring);

/* The --store/--db/--config lines of every store-reading command's help. */
#define HALO_STORE_HELP                                                        \
    "      --store S      the store to read: postgresql://USER@HOST:PORT/DB\n" \
    "                     (a libpq URI; postgres:KEY=VALUE... for a libpq\n"   \
    "                     key=value string) or sqlite:PATH\n"                  \
    "      --db PATH      the SQLite database to read (sqlite:PATH)\n"         \
    "  -c, --config FILE  read the store of this configuration: the "          \
    "exporter\n"                                                               \
    "                     analyzer.store names, else its first sqlite or\n"    \
    "                     postgres exporter (default: $HALO_CONFIG, else\n"    \
    "                     built in)\n"

/* Subcommands; argv[0] is the subcommand name. Each handles --help. */
int halo_cmd_serve(int argc, char **argv);
int halo_cmd_validate(int argc, char **argv);
int halo_cmd_import(int argc, char **argv);
int halo_cmd_export(int argc, char **argv);
int halo_cmd_traces(int argc, char **argv);
int halo_cmd_agents(int argc, char **argv);
int halo_cmd_analyze(int argc, char **argv);
int halo_cmd_reports(int argc, char **argv);

#endif
