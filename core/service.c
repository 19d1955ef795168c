/*
 * service.c -- from a parsed halo.yaml to running pipelines (service.h).
 *
 * Building is two passes. The first validates everything and collects every
 * error: the top-level sections, each component's section against its
 * schema, and service.pipelines (references, duplicates, empty lists). Only
 * a configuration without errors reaches the second pass, which creates the
 * components and wires them:
 *
 *   receiver.next[]  = the first hop of every pipeline that names it
 *   processor.next[] = the next processor, or the pipeline's exporters
 *
 * Processors are instantiated per pipeline, receivers and exporters once.
 */
#include "service.h"

#include "analyzer/analyzer_config.h"

#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pipeline {
    char *name;
    halo_component **receivers; /* shared, not owned */
    size_t n_receivers;
    halo_component **processors; /* owned */
    size_t n_processors;
    halo_component **exporters; /* shared, not owned */
    size_t n_exporters;
} pipeline;

struct halo_service {
    halo_component **comps; /* receivers, exporters, extensions (owned) */
    size_t n_comps;
    pipeline *pipes;
    size_t n_pipes;
    halo_component entry; /* pseudo receiver for halo import */
    int log_level;
    atomic_bool ready;
    atomic_int fail_state; /* 0 none, 1 being written, 2 fail_why is set */
    char fail_why[HALO_ERR_MAX];
    bool started;
    bool shut;
};

static const char *const top_keys[] = {"receivers",  "processors", "exporters",
                                       "extensions", "service",    "analyzer",
                                       NULL};
static const char *const section_of[] = {"receivers", "processors", "exporters",
                                         "extensions"};

/* ---- helpers --------------------------------------------------------------
 */

static bool key_in(const char *k, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(k, *list) == 0)
            return true;
    return false;
}

static bool push(void *arrp, size_t *n, void *item)
{
    void ***arr = arrp;
    void **p = realloc(*arr, (*n + 1) * sizeof *p);
    if (!p)
        return false;
    p[(*n)++] = item;
    *arr = p;
    return true;
}

/* "type" or "type/name" -> type length; 0 when malformed. */
static size_t id_type_len(const char *id)
{
    const char *slash = strchr(id, '/');
    if (!slash)
        return strlen(id);
    if (slash == id || slash[1] == '\0' || strchr(slash + 1, '/'))
        return 0;
    return (size_t)(slash - id);
}

static void comp_free(halo_component *c)
{
    if (!c)
        return;
    if (c->ctx && c->def->destroy)
        c->def->destroy(c);
    if (c->cfg) {
        halo_config_release(c->def->schema, c->cfg);
        free(c->cfg);
    }
    free(c->next);
    free(c->id);
    free(c->log_prefix);
    free(c);
}

/* Validate one component section and make its (not yet created) instance. */
static halo_component *comp_new(halo_kind kind, const char *id,
                                const halo_node *node, halo_service *svc,
                                halo_errlist *errs)
{
    size_t tl = id_type_len(id);
    if (!tl) {
        halo_errlist_add(errs, node,
                         "%s: invalid component id \"%s\" (expected "
                         "\"type\" or \"type/name\")",
                         section_of[kind], id);
        return NULL;
    }
    char type[64];
    snprintf(type, sizeof type, "%.*s", (int)(tl < 63 ? tl : 63), id);
    const halo_component_def *def = halo_component_find(kind, type);
    if (!def) {
        char avail[256] = "";
        for (size_t i = 0; i < halo_component_defs_n; i++) {
            const halo_component_def *d = halo_component_defs[i];
            if (d && d->kind == kind) {
                if (avail[0])
                    strncat(avail, ", ", sizeof avail - strlen(avail) - 1);
                strncat(avail, d->type, sizeof avail - strlen(avail) - 1);
            }
        }
        halo_errlist_add(errs, node,
                         "%s: unknown %s type \"%s\" (available: %s)",
                         section_of[kind], halo_kind_name(kind), type, avail);
        return NULL;
    }
    halo_component *c = calloc(1, sizeof *c);
    char where[256];
    snprintf(where, sizeof where, "%s.%s", section_of[kind], id);
    if (!c || !(c->id = strdup(id)) || !(c->cfg = calloc(1, def->cfg_size + 1)))
        goto oom;
    c->def = def;
    c->svc = svc;
    c->cfg_node = node;
    size_t pl = strlen(id) + 16;
    if (!(c->log_prefix = malloc(pl)))
        goto oom;
    snprintf(c->log_prefix, pl, "%s:%s", halo_kind_name(kind), id);
    if (!halo_config_apply(def->schema, node, c->cfg, where, errs)) {
        comp_free(c);
        return NULL;
    }
    return c;
oom:
    halo_errlist_add(errs, node, "%s: out of memory", where);
    comp_free(c);
    return NULL;
}

typedef struct decl {
    halo_kind kind;
    const char *id;
    const halo_node *node;
    halo_component *proto; /* validated config; NULL when invalid */
    bool used;
} decl;

typedef struct build {
    decl *decls;
    size_t n_decls;
    halo_errlist *errs;
    halo_errlist *warns;
} build;

static decl *decl_find(build *b, halo_kind kind, const char *id)
{
    for (size_t i = 0; i < b->n_decls; i++)
        if (b->decls[i].kind == kind && strcmp(b->decls[i].id, id) == 0)
            return &b->decls[i];
    return NULL;
}

static void parse_section(build *b, const halo_node *root, halo_kind kind,
                          halo_service *svc)
{
    const halo_node *sec = halo_node_get(root, section_of[kind]);
    if (!sec || sec->type == HALO_NODE_NULL)
        return;
    if (sec->type != HALO_NODE_MAP) {
        halo_errlist_add(b->errs, sec, "%s: expected a mapping",
                         section_of[kind]);
        return;
    }
    for (size_t i = 0; i < sec->n; i++) {
        decl *p = realloc(b->decls, (b->n_decls + 1) * sizeof *p);
        if (!p) {
            halo_errlist_add(b->errs, sec, "out of memory");
            return;
        }
        b->decls = p;
        decl *d = &b->decls[b->n_decls++];
        d->kind = kind;
        d->id = sec->keys[i];
        d->node = sec->items[i];
        d->used = false;
        d->proto = comp_new(kind, d->id, sec->items[i], svc, b->errs);
    }
}

/* ---- pipelines ----------------------------------------------------------- */

static const char *const pipe_keys[] = {"receivers", "processors", "exporters",
                                        NULL};

static bool seq_of_names(build *b, const halo_node *n, const char *where)
{
    if (n->type == HALO_NODE_SEQ) {
        for (size_t i = 0; i < n->n; i++)
            if (n->items[i]->type != HALO_NODE_SCALAR) {
                halo_errlist_add(b->errs, n->items[i],
                                 "%s: expected a component name", where);
                return false;
            }
        return true;
    }
    halo_errlist_add(b->errs, n, "%s: expected a list of component names",
                     where);
    return false;
}

static void check_pipeline(build *b, const char *name, const halo_node *p)
{
    char where[256];
    snprintf(where, sizeof where, "service.pipelines.%s", name);
    size_t tl = id_type_len(name);
    if (!tl || strncmp(name, "traces", tl) != 0 || tl != 6) {
        halo_errlist_add(b->errs, p,
                         "%s: only traces pipelines are supported (name it "
                         "\"traces\" or \"traces/<name>\")",
                         where);
        return;
    }
    if (p->type != HALO_NODE_MAP) {
        halo_errlist_add(b->errs, p, "%s: expected a mapping", where);
        return;
    }
    for (size_t i = 0; i < p->n; i++)
        if (!key_in(p->keys[i], pipe_keys))
            halo_errlist_add(b->errs, p->items[i],
                             "%s: unknown key \"%s\" (expected receivers, "
                             "processors, exporters)",
                             where, p->keys[i]);
    static const halo_kind kinds[] = {HALO_RECEIVER, HALO_PROCESSOR,
                                      HALO_EXPORTER};
    for (int k = 0; k < 3; k++) {
        const halo_node *list = halo_node_get(p, pipe_keys[k]);
        char w[300];
        snprintf(w, sizeof w, "%s.%s", where, pipe_keys[k]);
        if (!list || list->type == HALO_NODE_NULL ||
            (list->type == HALO_NODE_SEQ && list->n == 0)) {
            if (kinds[k] != HALO_PROCESSOR)
                halo_errlist_add(b->errs, list ? list : p,
                                 "%s: at least one %s is required", w,
                                 halo_kind_name(kinds[k]));
            continue;
        }
        if (!seq_of_names(b, list, w))
            continue;
        for (size_t i = 0; i < list->n; i++) {
            const char *id = list->items[i]->value;
            decl *d = decl_find(b, kinds[k], id);
            if (!d) {
                halo_errlist_add(b->errs, list->items[i],
                                 "%s: %s \"%s\" is not defined in %s", w,
                                 halo_kind_name(kinds[k]), id,
                                 section_of[kinds[k]]);
                continue;
            }
            d->used = true;
            for (size_t j = 0; j < i; j++)
                if (strcmp(list->items[j]->value, id) == 0)
                    halo_errlist_add(b->errs, list->items[i],
                                     "%s: \"%s\" is listed twice", w, id);
        }
    }
}

/* The analyzer section: its schema and schedules (analyzer_config.c), and
 * that analyzer.store names a sqlite or postgres exporter. */
static void check_analyzer(const halo_node *root, halo_errlist *errs)
{
    halo_analyzer_config acfg = {0};
    halo_analyzer_config_parse(root, &acfg, errs);
    const halo_node *store =
        halo_node_get(halo_node_get(root, "analyzer"), "store");
    if (acfg.store) {
        const halo_node *exps = halo_node_get(root, "exporters");
        const char *id = acfg.store;
        const char *slash = strchr(id, '/');
        size_t tl = slash ? (size_t)(slash - id) : strlen(id);
        bool is_store = (tl == 6 && !strncmp(id, "sqlite", 6)) ||
                        (tl == 8 && !strncmp(id, "postgres", 8));
        if (!halo_node_get(exps, id))
            halo_errlist_add(errs, store,
                             "analyzer.store: no exporter \"%s\" is "
                             "configured",
                             id);
        else if (!is_store)
            halo_errlist_add(errs, store,
                             "analyzer.store: \"%s\" is not a sqlite or "
                             "postgres exporter",
                             id);
    }
    halo_analyzer_config_free(&acfg);
}

static void check_service(build *b, const halo_node *root, int *log_level)
{
    const halo_node *svc = halo_node_get(root, "service");
    if (!svc || svc->type != HALO_NODE_MAP) {
        halo_errlist_add(b->errs, svc ? svc : root,
                         "service: a service section with pipelines is "
                         "required");
        return;
    }
    static const char *const svc_keys[] = {"pipelines", "telemetry",
                                           "extensions", NULL};
    for (size_t i = 0; i < svc->n; i++)
        if (!key_in(svc->keys[i], svc_keys))
            halo_errlist_add(b->errs, svc->items[i],
                             "service: unknown key \"%s\" (expected "
                             "pipelines, telemetry, extensions)",
                             svc->keys[i]);
    const halo_node *tel = halo_node_get(svc, "telemetry");
    if (tel && tel->type != HALO_NODE_NULL) {
        const halo_node *logs = halo_node_get(tel, "logs");
        const halo_node *lvl = halo_node_get(logs, "level");
        if (tel->type != HALO_NODE_MAP || tel->n != 1 || !logs ||
            logs->type != HALO_NODE_MAP || logs->n != 1 || !lvl) {
            halo_errlist_add(b->errs, tel,
                             "service.telemetry: only logs.level is "
                             "supported (debug, info, warn, error)");
        } else if (lvl->type != HALO_NODE_SCALAR ||
                   (*log_level = halo_log_level_parse(lvl->value)) < 0) {
            halo_errlist_add(b->errs, lvl,
                             "service.telemetry.logs.level: must be one of: "
                             "debug, info, warn, error, off");
        }
    }
    const halo_node *exts = halo_node_get(svc, "extensions");
    if (exts && seq_of_names(b, exts, "service.extensions")) {
        for (size_t i = 0; i < exts->n; i++) {
            decl *d = decl_find(b, HALO_EXTENSION, exts->items[i]->value);
            if (!d)
                halo_errlist_add(b->errs, exts->items[i],
                                 "service.extensions: extension \"%s\" is "
                                 "not defined in extensions",
                                 exts->items[i]->value);
            else
                d->used = true;
        }
    } else if (!exts) {
        for (size_t i = 0; i < b->n_decls; i++)
            if (b->decls[i].kind == HALO_EXTENSION)
                b->decls[i].used = true; /* all configured ones run */
    }
    const halo_node *pipes = halo_node_get(svc, "pipelines");
    if (!pipes || pipes->type != HALO_NODE_MAP || pipes->n == 0) {
        /* an analyzer-only instance (deploy/halo-analyzer.yaml) runs its
         * schedules and nothing else */
        const halo_node *sched =
            halo_node_get(halo_node_get(root, "analyzer"), "schedules");
        if (sched && sched->type == HALO_NODE_SEQ && sched->n > 0 &&
            (!pipes || pipes->type == HALO_NODE_NULL ||
             (pipes->type == HALO_NODE_MAP && pipes->n == 0)))
            return;
        halo_errlist_add(b->errs, pipes ? pipes : svc,
                         "service.pipelines: at least one traces pipeline "
                         "is required (or analyzer.schedules, for an "
                         "analyzer-only instance)");
        return;
    }
    for (size_t i = 0; i < pipes->n; i++)
        check_pipeline(b, pipes->keys[i], pipes->items[i]);
}

/* ---- wiring (second pass; the config is known to be valid) ------------- */

static halo_component *take(build *b, halo_service *svc, halo_kind kind,
                            const char *id)
{
    decl *d = decl_find(b, kind, id);
    halo_component *c = d->proto;
    d->proto = NULL; /* ownership moves to the service */
    if (c && !push(&svc->comps, &svc->n_comps, c)) {
        comp_free(c);
        return NULL;
    }
    return c;
}

static halo_component *find_comp(halo_service *svc, halo_kind kind,
                                 const char *id)
{
    for (size_t i = 0; i < svc->n_comps; i++)
        if (svc->comps[i]->def->kind == kind &&
            strcmp(svc->comps[i]->id, id) == 0)
            return svc->comps[i];
    return NULL;
}

/* A second instance of a processor for another pipeline: re-apply its
 * section (already validated) into a fresh config. */
static halo_component *proc_instance(build *b, halo_service *svc,
                                     const char *id, const char *pipe)
{
    decl *d = decl_find(b, HALO_PROCESSOR, id);
    halo_component *c = comp_new(HALO_PROCESSOR, id, d->node, svc, b->errs);
    if (!c)
        return NULL;
    size_t pl = strlen(id) + strlen(pipe) + 32;
    char *prefix = malloc(pl);
    if (prefix) {
        snprintf(prefix, pl, "processor:%s (%s)", id, pipe);
        free(c->log_prefix);
        c->log_prefix = prefix;
    }
    return c;
}

static bool wire(build *b, halo_service *svc, const halo_node *root)
{
    const halo_node *pipes =
        halo_node_get(halo_node_get(root, "service"), "pipelines");
    for (size_t i = 0; i < b->n_decls; i++) {
        decl *d = &b->decls[i];
        if (d->kind == HALO_PROCESSOR || !d->used)
            continue;
        if (!take(b, svc, d->kind, d->id))
            return false;
    }
    /* none in an analyzer-only instance */
    size_t np = pipes && pipes->type == HALO_NODE_MAP ? pipes->n : 0;
    svc->pipes = calloc(np ? np : 1, sizeof *svc->pipes);
    if (!svc->pipes)
        return false;
    svc->n_pipes = np;
    for (size_t i = 0; i < np; i++) {
        pipeline *p = &svc->pipes[i];
        const halo_node *pn = pipes->items[i];
        if (!(p->name = strdup(pipes->keys[i])))
            return false;
        const halo_node *rl = halo_node_get(pn, "receivers");
        const halo_node *pl = halo_node_get(pn, "processors");
        const halo_node *el = halo_node_get(pn, "exporters");
        for (size_t k = 0; k < el->n; k++)
            if (!push(&p->exporters, &p->n_exporters,
                      find_comp(svc, HALO_EXPORTER, el->items[k]->value)))
                return false;
        for (size_t k = 0; pl && pl->type == HALO_NODE_SEQ && k < pl->n; k++) {
            halo_component *c =
                proc_instance(b, svc, pl->items[k]->value, p->name);
            if (!c || !push(&p->processors, &p->n_processors, c)) {
                comp_free(c);
                return false;
            }
        }
        for (size_t k = 0; k < p->n_processors; k++) {
            halo_component *c = p->processors[k];
            if (k + 1 < p->n_processors) {
                if (!push(&c->next, &c->n_next, p->processors[k + 1]))
                    return false;
            } else {
                for (size_t e = 0; e < p->n_exporters; e++)
                    if (!push(&c->next, &c->n_next, p->exporters[e]))
                        return false;
            }
        }
        for (size_t k = 0; k < rl->n; k++) {
            halo_component *r =
                find_comp(svc, HALO_RECEIVER, rl->items[k]->value);
            if (!push(&p->receivers, &p->n_receivers, r))
                return false;
        }
    }
    /* receivers (and the import entry) feed the first hop of each pipeline */
    for (size_t i = 0; i < svc->n_pipes; i++) {
        pipeline *p = &svc->pipes[i];
        halo_component **first = p->n_processors ? p->processors : p->exporters;
        size_t n_first = p->n_processors ? 1 : p->n_exporters;
        for (size_t f = 0; f < n_first; f++) {
            for (size_t r = 0; r < p->n_receivers; r++)
                if (!push(&p->receivers[r]->next, &p->receivers[r]->n_next,
                          first[f]))
                    return false;
            if (!push(&svc->entry.next, &svc->entry.n_next, first[f]))
                return false;
        }
    }
    return true;
}

/* A create() error under its component's name: "receiver:otlp: why",
 * unless the message already starts with the section path
 * ("receivers.otlp: ..."), which says the same. */
static void add_create_error(halo_errlist *errs, const halo_component *c,
                             const char *msg)
{
    const char *section = section_of[c->def->kind];
    size_t sl = strlen(section), il = strlen(c->id);
    bool named = strncmp(msg, section, sl) == 0 && msg[sl] == '.' &&
                 strncmp(msg + sl + 1, c->id, il) == 0 &&
                 (msg[sl + 1 + il] == ':' || msg[sl + 1 + il] == '.');
    if (named)
        halo_errlist_add(errs, c->cfg_node, "%s", msg);
    else
        halo_errlist_add(errs, c->cfg_node, "%s: %s", c->log_prefix, msg);
}

static bool create_all(halo_service *svc, halo_errlist *errs)
{
    halo_err err;
    bool ok = true;
#define CREATE(c)                                                              \
    do {                                                                       \
        err.msg[0] = '\0';                                                     \
        if ((c)->def->create && (c)->def->create((c), &err) != HALO_OK) {      \
            add_create_error(errs, (c), err.msg);                              \
            ok = false;                                                        \
        }                                                                      \
    } while (0)
    for (size_t i = 0; i < svc->n_comps; i++)
        CREATE(svc->comps[i]);
    for (size_t i = 0; i < svc->n_pipes; i++)
        for (size_t k = 0; k < svc->pipes[i].n_processors; k++)
            CREATE(svc->pipes[i].processors[k]);
#undef CREATE
    return ok;
}

static halo_service *build_service(const halo_node *root, halo_errlist *errs,
                                   halo_errlist *warns, bool create)
{
    size_t errs_before = errs->n;
    halo_service *svc = calloc(1, sizeof *svc);
    if (!svc) {
        halo_errlist_add(errs, NULL, "out of memory");
        return NULL;
    }
    svc->log_level = -1;
    svc->entry.id = "import";
    svc->entry.log_prefix = "import";
    svc->entry.svc = svc;
    build b = {NULL, 0, errs, warns};
    if (!root || root->type != HALO_NODE_MAP) {
        halo_errlist_add(errs, root, "expected a mapping at the top level");
        goto fail;
    }
    for (size_t i = 0; i < root->n; i++) {
        if (key_in(root->keys[i], top_keys))
            continue;
        const char *guess = halo_config_closest(root->keys[i], top_keys);
        if (guess)
            halo_errlist_add(errs, root->items[i],
                             "unknown top-level key \"%s\" (did you mean "
                             "\"%s\"?)",
                             root->keys[i], guess);
        else
            halo_errlist_add(errs, root->items[i],
                             "unknown top-level key \"%s\" (expected "
                             "receivers, processors, exporters, extensions, "
                             "service, analyzer)",
                             root->keys[i]);
    }
    check_analyzer(root, errs);
    for (int k = HALO_RECEIVER; k <= HALO_EXTENSION; k++)
        parse_section(&b, root, (halo_kind)k, svc);
    check_service(&b, root, &svc->log_level);
    if (errs->n != errs_before)
        goto fail;
    /* the exporter analyzer.store names may serve the analyzer alone (it
     * is not started then: the analyzer opens the store itself) */
    const halo_node *ast =
        halo_node_get(halo_node_get(root, "analyzer"), "store");
    for (size_t i = 0; i < b.n_decls; i++)
        if (!b.decls[i].used && b.decls[i].kind == HALO_EXPORTER && ast &&
            ast->type == HALO_NODE_SCALAR && !strcmp(ast->value, b.decls[i].id))
            continue;
        else if (!b.decls[i].used && b.decls[i].kind != HALO_EXTENSION)
            halo_errlist_add(warns, b.decls[i].node,
                             "%s \"%s\" is configured but not used in any "
                             "pipeline",
                             halo_kind_name(b.decls[i].kind), b.decls[i].id);
        else if (!b.decls[i].used)
            halo_errlist_add(warns, b.decls[i].node,
                             "extension \"%s\" is configured but not listed "
                             "in service.extensions",
                             b.decls[i].id);
    if (!wire(&b, svc, root)) {
        halo_errlist_add(errs, NULL, "out of memory wiring the pipelines");
        goto fail;
    }
    if (create && !create_all(svc, errs))
        goto fail;
    for (size_t i = 0; i < b.n_decls; i++)
        comp_free(b.decls[i].proto);
    free(b.decls);
    return svc;
fail:
    for (size_t i = 0; i < b.n_decls; i++)
        comp_free(b.decls[i].proto);
    free(b.decls);
    halo_service_free(svc);
    return NULL;
}

halo_service *halo_service_build(const halo_node *root, halo_errlist *errs,
                                 halo_errlist *warns)
{
    return build_service(root, errs, warns, true);
}

bool halo_service_check(const halo_node *root, halo_errlist *errs)
{
    halo_errlist warns = {0};
    size_t before = errs->n;
    halo_service_free(build_service(root, errs, &warns, false));
    halo_errlist_free(&warns);
    return errs->n == before;
}

/* ---- lifecycle ------------------------------------------------------------
 */

static halo_status start_one(halo_component *c, halo_err *err)
{
    if (!c->def->start)
        return HALO_OK;
    halo_err e = {{0}};
    halo_status st = c->def->start(c, &e);
    if (st != HALO_OK)
        halo_errf(err, "%s: %s", c->log_prefix, e.msg);
    return st;
}

halo_status halo_service_start(halo_service *svc, unsigned flags, halo_err *err)
{
    halo_status st = HALO_OK;
    for (size_t i = 0; i < svc->n_comps && st == HALO_OK; i++)
        if (svc->comps[i]->def->kind == HALO_EXPORTER)
            st = start_one(svc->comps[i], err);
    for (size_t i = 0; i < svc->n_pipes && st == HALO_OK; i++) {
        pipeline *p = &svc->pipes[i];
        for (size_t k = p->n_processors; k-- > 0 && st == HALO_OK;)
            st = start_one(p->processors[k], err);
    }
    for (size_t i = 0; i < svc->n_comps && st == HALO_OK; i++) {
        halo_kind k = svc->comps[i]->def->kind;
        if ((k == HALO_RECEIVER && (flags & HALO_START_RECEIVERS)) ||
            (k == HALO_EXTENSION && (flags & HALO_START_EXTENSIONS)))
            st = start_one(svc->comps[i], err);
    }
    svc->started = true;
    if (st != HALO_OK) {
        halo_service_shutdown(svc);
        return st;
    }
    atomic_store(&svc->ready, true);
    return HALO_OK;
}

static void shutdown_kind(halo_service *svc, halo_kind kind)
{
    for (size_t i = 0; i < svc->n_comps; i++) {
        halo_component *c = svc->comps[i];
        if (c->def->kind == kind && c->def->shutdown && c->ctx)
            c->def->shutdown(c);
    }
}

void halo_service_shutdown(halo_service *svc)
{
    if (!svc || svc->shut)
        return;
    svc->shut = true;
    atomic_store(&svc->ready, false);
    shutdown_kind(svc, HALO_RECEIVER);
    for (size_t i = 0; i < svc->n_pipes; i++) {
        pipeline *p = &svc->pipes[i];
        for (size_t k = 0; k < p->n_processors; k++)
            if (p->processors[k]->def->shutdown && p->processors[k]->ctx)
                p->processors[k]->def->shutdown(p->processors[k]);
    }
    shutdown_kind(svc, HALO_EXPORTER);
    shutdown_kind(svc, HALO_EXTENSION);
}

void halo_service_free(halo_service *svc)
{
    if (!svc)
        return;
    if (svc->started)
        halo_service_shutdown(svc);
    for (size_t i = 0; i < svc->n_pipes; i++) {
        pipeline *p = &svc->pipes[i];
        for (size_t k = 0; k < p->n_processors; k++)
            comp_free(p->processors[k]);
        free(p->processors);
        free(p->receivers);
        free(p->exporters);
        free(p->name);
    }
    free(svc->pipes);
    for (size_t i = 0; i < svc->n_comps; i++)
        comp_free(svc->comps[i]);
    free(svc->comps);
    free(svc->entry.next);
    free(svc);
}

bool halo_service_ready(const halo_service *svc)
{
    return svc && atomic_load(&((halo_service *)svc)->ready) &&
           !halo_service_failure(svc);
}

void halo_service_fail(halo_service *svc, const char *why)
{
    int none = 0;
    if (!svc || !atomic_compare_exchange_strong(&svc->fail_state, &none, 1))
        return;
    snprintf(svc->fail_why, sizeof svc->fail_why, "%s", why ? why : "");
    atomic_store(&svc->fail_state, 2);
    LOG_ERROR("service", "not available from now on: %s", svc->fail_why);
}

const char *halo_service_failure(const halo_service *svc)
{
    if (!svc || atomic_load(&((halo_service *)svc)->fail_state) != 2)
        return NULL;
    return svc->fail_why;
}

halo_component *halo_service_entry(halo_service *svc)
{
    return svc->entry.n_next ? &svc->entry : NULL;
}

halo_component *halo_service_find(halo_service *svc, halo_kind kind,
                                  const char *id)
{
    return find_comp(svc, kind, id);
}

int halo_service_log_level(const halo_service *svc)
{
    return svc->log_level;
}
