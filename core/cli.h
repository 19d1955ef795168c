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

/* Subcommands; argv[0] is the subcommand name. Each handles --help. */
int halo_cmd_serve(int argc, char **argv);
int halo_cmd_validate(int argc, char **argv);
int halo_cmd_import(int argc, char **argv);
int halo_cmd_export(int argc, char **argv);
int halo_cmd_traces(int argc, char **argv);
int halo_cmd_agents(int argc, char **argv);

#endif
