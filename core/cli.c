/*
 * cli.c -- configuration lookup and service building shared by the
 * subcommands (cli.h).
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char halo_default_config[];
extern const size_t halo_default_config_len;

halo_node *halo_cli_load_config(const char *config_path, halo_errlist *errs)
{
    if (!config_path || !*config_path) {
        const char *env = getenv("HALO_CONFIG");
        if (env && *env)
            config_path = env;
    }
    if (config_path)
        return halo_config_parse_file(config_path, errs);
    return halo_config_parse(halo_default_config, halo_default_config_len,
                             "<embedded halo.yaml>", errs);
}

static void print_errs(const halo_errlist *l, const char *what)
{
    for (size_t i = 0; i < l->n; i++)
        fprintf(stderr, "%s: %s\n", what, l->msgs[i]);
}

halo_service *halo_cli_build_service(const halo_node *root, halo_errlist *errs,
                                     bool print_warnings)
{
    halo_errlist warns = {0};
    halo_service *svc = root ? halo_service_build(root, errs, &warns) : NULL;
    print_errs(errs, "error");
    if (print_warnings)
        print_errs(&warns, "warning");
    halo_errlist_free(errs);
    halo_errlist_free(&warns);
    return svc;
}

/* The `path` scalar of exporters.<id> when its type is sqlite. */
static const char *sqlite_path(const halo_node *exporters, const char *id)
{
    if (strncmp(id, "sqlite", 6) != 0 || (id[6] != '\0' && id[6] != '/'))
        return NULL;
    const halo_node *p = halo_node_get(halo_node_get(exporters, id), "path");
    if (p && p->type == HALO_NODE_SCALAR)
        return p->value;
    return "data/halo.db"; /* the exporter's default */
}

char *halo_cli_db_path(const char *db_opt, const char *config_path,
                       halo_err *err)
{
    if (db_opt && *db_opt) {
        char *p = strdup(db_opt);
        if (!p)
            halo_errf(err, "out of memory");
        return p;
    }
    halo_errlist errs = {0};
    halo_node *root = halo_cli_load_config(config_path, &errs);
    if (!root) {
        halo_errf(err, "%s", errs.n ? errs.msgs[0] : "could not load config");
        halo_errlist_free(&errs);
        return NULL;
    }
    const halo_node *exps = halo_node_get(root, "exporters");
    const char *path = NULL;
    const halo_node *store =
        halo_node_get(halo_node_get(root, "analyzer"), "store");
    if (store && store->type == HALO_NODE_SCALAR)
        path = sqlite_path(exps, store->value);
    for (size_t i = 0;
         !path && exps && exps->type == HALO_NODE_MAP && i < exps->n; i++)
        path = sqlite_path(exps, exps->keys[i]);
    char *out = path ? strdup(path) : NULL;
    if (!path)
        halo_errf(err, "the configuration has no sqlite exporter to read from "
                       "(use --db PATH)");
    else if (!out)
        halo_errf(err, "out of memory");
    halo_node_free(root);
    halo_errlist_free(&errs);
    return out;
}
