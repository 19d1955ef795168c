/*
 * cli.c -- configuration lookup and service building shared by the
 * subcommands (cli.h).
 */
#include "cli.h"

#include "storage/store.h"

#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern const char halo_default_config[];
extern const size_t halo_default_config_len;

halo_node *halo_cli_load_config(const char *config_path, halo_errlist *errs)
{
    bool from_env = false;
    if (!config_path || !*config_path) {
        const char *env = getenv("HALO_CONFIG");
        if (env && *env) {
            config_path = env;
            from_env = true;
        }
    }
    if (config_path) {
        size_t before = errs->n;
        halo_node *root = halo_config_parse_file(config_path, errs);
        if (!root && from_env && errs->n > before) {
            /* say where the path came from: no --config was given */
            char *m = errs->msgs[before], *with = NULL;
            size_t len = strlen(m) + 64;
            if ((with = malloc(len))) {
                snprintf(with, len, "%s (the file $HALO_CONFIG names)", m);
                free(m);
                errs->msgs[before] = with;
            }
        }
        return root;
    }
    return halo_config_parse(halo_default_config, halo_default_config_len,
                             "<embedded halo.yaml>", errs);
}

/* Where a "file:line:col: message" points: the length of its prefix (0
 * when it has none), of the file name, the line and the column. */
typedef struct err_at {
    size_t prefix, file;
    long line, col;
} err_at;

static err_at err_location(const char *m)
{
    err_at at = {0, 0, 0, 0};
    for (const char *p = strchr(m, ':'); p; p = strchr(p + 1, ':')) {
        char *e1, *e2;
        if (!isdigit((unsigned char)p[1]))
            continue;
        long line = strtol(p + 1, &e1, 10);
        if (*e1 != ':' || !isdigit((unsigned char)e1[1]))
            continue;
        long col = strtol(e1 + 1, &e2, 10);
        if (e2[0] == ':' && e2[1] == ' ')
            return (err_at){(size_t)(e2 + 2 - m), (size_t)(p - m), line, col};
    }
    return at;
}

static int cmp_err(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    err_at ax = err_location(x), ay = err_location(y);
    if (!ax.prefix || !ay.prefix) /* located ones first */
        return (!ax.prefix - !ay.prefix) ? !ax.prefix - !ay.prefix
                                         : strcmp(x, y);
    size_t n = ax.file < ay.file ? ax.file : ay.file;
    int c = strncmp(x, y, n);
    if (c || ax.file != ay.file)
        return c ? c : (ax.file > ay.file) - (ax.file < ay.file);
    if (ax.line != ay.line)
        return (ax.line > ay.line) - (ax.line < ay.line);
    if (ax.col != ay.col)
        return (ax.col > ay.col) - (ax.col < ay.col);
    return strcmp(x, y);
}

/* The messages in file and line order, as compilers write them
 * ("file:line:col: error: message"), so editors can jump to each. */
static void print_errs(const halo_errlist *l, const char *what)
{
    if (l->n > 1)
        qsort(l->msgs, l->n, sizeof *l->msgs, cmp_err);
    for (size_t i = 0; i < l->n; i++) {
        size_t at = err_location(l->msgs[i]).prefix;
        fprintf(stderr, "%.*s%s: %s\n", (int)at, l->msgs[i], what,
                l->msgs[i] + at);
    }
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

/* The type of exporter id ("sqlite/main" -> "sqlite"), compared with t. */
static bool exporter_is(const char *id, const char *t)
{
    size_t n = strlen(t);
    return strncmp(id, t, n) == 0 && (id[n] == '\0' || id[n] == '/');
}

static char *str_concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb + 1);
    }
    return s;
}

/* A postgres exporter's DSN as a store spec: its `dsn`, else $HALO_PG_DSN,
 * else "" (libpq's PG* environment variables and defaults), which is what
 * the exporter itself connects to. */
static char *pg_spec(const char *dsn)
{
    if (!dsn || !*dsn)
        dsn = getenv("HALO_PG_DSN");
    if (!dsn)
        dsn = "";
    if (strncmp(dsn, "postgresql://", 13) == 0 ||
        strncmp(dsn, "postgres://", 11) == 0)
        return strdup(dsn);
    return str_concat("postgres:", dsn);
}

/* The store spec of exporters.<id> when it is a store (sqlite, postgres);
 * NULL otherwise. *oom is set when memory ran out. */
static char *exporter_spec(const halo_node *exporters, const char *id,
                           bool *oom)
{
    const halo_node *e = halo_node_get(exporters, id);
    char *out = NULL;
    if (exporter_is(id, "sqlite")) {
        const halo_node *p = halo_node_get(e, "path");
        out = str_concat("sqlite:", p && p->type == HALO_NODE_SCALAR
                                        ? p->value
                                        : "data/halo.db"); /* the default */
    } else if (exporter_is(id, "postgres")) {
        const halo_node *d = halo_node_get(e, "dsn");
        out = pg_spec(d && d->type == HALO_NODE_SCALAR ? d->value : NULL);
    } else {
        return NULL;
    }
    if (!out)
        *oom = true;
    return out;
}

/* The store of a configuration: the exporter analyzer.store names, else
 * the first sqlite or postgres exporter. */
char *halo_config_store_spec(const halo_node *root, halo_err *err)
{
    const halo_node *exps = halo_node_get(root, "exporters");
    const halo_node *store =
        halo_node_get(halo_node_get(root, "analyzer"), "store");
    char *spec = NULL;
    bool oom = false;
    if (store && store->type == HALO_NODE_SCALAR) {
        spec = exporter_spec(exps, store->value, &oom);
        if (!spec && !oom) {
            halo_errf(err,
                      "analyzer.store names \"%s\", which is not a sqlite "
                      "or postgres exporter of the configuration",
                      store->value);
            return NULL;
        }
    }
    for (size_t i = 0;
         !spec && !oom && exps && exps->type == HALO_NODE_MAP && i < exps->n;
         i++)
        spec = exporter_spec(exps, exps->keys[i], &oom);
    if (oom)
        halo_errf(err, "out of memory");
    else if (!spec)
        halo_errf(err, "the configuration has no sqlite or postgres exporter "
                       "to read from (use --store postgresql://... or --store "
                       "sqlite:PATH)");
    return spec;
}

/* A command that finds its store in the configuration uses only that
 * part of it, but a mistake elsewhere (a misspelt `path:` leaves the
 * default) should not pass unseen: with warn_cmd, say what `halo
 * validate` would, then read the store anyway. */
static void warn_config(const char *warn_cmd, const halo_node *root)
{
    halo_errlist errs = {0};
    if (!halo_service_check(root, &errs)) {
        print_errs(&errs, "warning");
        fprintf(stderr,
                "halo %s: the configuration has errors (halo serve would "
                "refuse it); reading the store it names anyway\n",
                warn_cmd);
    }
    halo_errlist_free(&errs);
}

/* halo_cli_store_spec, warning of the configuration's errors when warn_cmd
 * is set and the store comes from it. */
static char *store_spec(const char *store_opt, const char *db_opt,
                        const char *config_path, const char *warn_cmd,
                        halo_err *err)
{
    if (store_opt && *store_opt && db_opt && *db_opt) {
        halo_errf(err, "--store and --db exclude each other");
        return NULL;
    }
    char *spec = NULL;
    if (store_opt && *store_opt)
        spec = strdup(store_opt);
    else if (db_opt && *db_opt)
        spec = str_concat("sqlite:", db_opt);
    else {
        halo_errlist errs = {0};
        halo_node *root = halo_cli_load_config(config_path, &errs);
        if (!root) {
            halo_errf(err, "%s",
                      errs.n ? errs.msgs[0] : "could not load config");
            halo_errlist_free(&errs);
            return NULL;
        }
        if (warn_cmd)
            warn_config(warn_cmd, root);
        spec = halo_config_store_spec(root, err);
        halo_node_free(root);
        halo_errlist_free(&errs);
        return spec;
    }
    if (!spec)
        halo_errf(err, "out of memory");
    return spec;
}

char *halo_cli_store_spec(const char *store_opt, const char *db_opt,
                          const char *config_path, halo_err *err)
{
    return store_spec(store_opt, db_opt, config_path, NULL, err);
}

int halo_cli_check_store_opts(const char *cmd, const char *store_opt,
                              const char *db_opt)
{
    if (store_opt && db_opt)
        return halo_cli_usage_error(cmd, "%s",
                                    "--store and --db exclude each other");
    if (db_opt && !*db_opt)
        return halo_cli_usage_error(cmd, "%s", "--db needs a path");
    if (!store_opt)
        return -1;
    const char *target;
    halo_store_kind kind = halo_store_spec_parse(store_opt, &target);
    if (kind != HALO_STORE_INVALID && (kind != HALO_STORE_SQLITE || *target))
        return -1;
    char shown[HALO_ERR_MAX / 2], msg[HALO_ERR_MAX];
    halo_pg_redact_dsn(store_opt, shown, sizeof shown);
    snprintf(msg, sizeof msg,
             kind == HALO_STORE_SQLITE
                 ? "invalid --store \"%s\": the SQLite path is empty"
                 : "invalid --store \"%s\": expected postgresql://..., "
                   "postgres:KEY=VALUE... or sqlite:PATH",
             shown);
    return halo_cli_usage_error(cmd, "%s", msg);
}

/* "2026-11-16T09:00:00Z", "2026-11-16T09:00:00.25Z", "2026-11-16 09:00:00"
 * (UTC), "2026-11-16". */
bool halo_cli_parse_iso(const char *s, uint64_t *ns)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%d", &tm);
    if (!p)
        return false;
    uint64_t frac = 0;
    if (*p == 'T' || *p == ' ') {
        p = strptime(p + 1, "%H:%M:%S", &tm);
        if (!p)
            return false;
        if (*p == '.') {
            uint64_t scale = 100000000u;
            p++;
            if (!isdigit((unsigned char)*p))
                return false;
            for (; isdigit((unsigned char)*p); p++, scale /= 10)
                frac += (uint64_t)(*p - '0') * scale;
        }
    }
    if (*p == 'Z')
        p++;
    if (*p)
        return false;
    time_t t = timegm(&tm);
    if (t < 0)
        return false;
    *ns = (uint64_t)t * 1000000000u + frac;
    return true;
}

halo_store *halo_cli_open_store(const char *cmd, const char *store_opt,
                                const char *db_opt, const char *config_path,
                                bool read_only)
{
    halo_err err = {{0}};
    char *spec = store_spec(store_opt, db_opt, config_path, cmd, &err);
    if (!spec) {
        fprintf(stderr, "halo %s: %s\n", cmd, err.msg);
        return NULL;
    }
    halo_store_opts o = {.read_only = read_only};
    halo_store *st = NULL;
    if (halo_store_open(spec, &o, &st, &err) != HALO_OK)
        fprintf(stderr, "halo %s: %s\n", cmd, err.msg);
    free(spec);
    return st;
}

int halo_cli_usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "halo %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see halo %s --help)\n", cmd);
    return HALO_EXIT_USAGE;
}

int halo_cli_option_error(const char *cmd, int c, char **argv,
                          const char *optstring)
{
    if (c == ':')
        return halo_cli_usage_error(cmd, "option %s needs a value",
                                    argv[optind - 1]);
    /* glibc's '?': optopt 0 for an unknown long option (the argument just
     * read); an unknown short one is optopt itself (it may sit inside a
     * group such as "-xq", not yet passed); any other optopt is the val of
     * a long option that was given a value it does not take ("--json=1") */
    if (optopt > 0 && optopt < 128 && !strchr(optstring, optopt)) {
        char shortopt[3] = {'-', (char)optopt, '\0'};
        return halo_cli_usage_error(cmd, "unknown option \"%s\"", shortopt);
    }
    const char *arg = argv[optind - 1];
    if (optopt == 0)
        return halo_cli_usage_error(cmd, "unknown option \"%s\"", arg);
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(arg, "="), arg);
    return halo_cli_usage_error(cmd, "option %s takes no value", name);
}
