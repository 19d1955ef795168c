/*
 * cmd_query.c -- the query subcommands: `halo traces list|show`,
 * `halo agents` and `halo export` (DESIGN §8).
 *
 * Each opens the store read-only (what a running `halo serve` writes:
 * --store SPEC or --db PATH, else the configuration's sqlite or postgres
 * exporter, see halo_cli_store_spec; SQLite and PostgreSQL answer the same
 * queries the same way) and prints either a table for people or, with --json,
 * one JSON document for programs. Times are shown in UTC. Exit codes: 0 ok,
 * 1 runtime error (no database, unknown trace), 2 usage error.
 *
 * `traces show` draws the span tree: children under their parent (by
 * parent_span_id) in start order; spans whose parent is not stored are
 * shown at the top level and marked, and so are spans caught in a parent
 * cycle (hand-edited data must not hang or crash the CLI).
 */
#include "cli.h"
#include "clock.h"

#include "buf.h"
#include "log.h"
#include "receivers/otlp/otlp_codec.h"
#include "storage/store.h"

#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- shared option handling ---------------------------------------------- */

typedef struct qopts {
    const char *cmd; /* "traces list", for messages */
    const char *db;
    const char *store;
    const char *config;
    const char *agent;
    const char *since;
    const char *until;
    const char *output;
    const char *trace_id;
    int64_t limit;
    bool errors;
    bool json;
} qopts;

enum {
    O_DB = 256,
    O_STORE,
    O_AGENT,
    O_SINCE,
    O_UNTIL,
    O_ERRORS,
    O_LIMIT,
    O_JSON,
    O_OUTPUT,
    O_TRACE_ID,
};

/* Parse argv: the common options (--db, --store, --config, --json, --help)
 * plus
 * `extra`. Options and arguments may come in any order; the arguments are
 * left at argv[optind..]. Returns -1 when parsing went fine, else the exit
 * code (help printed, or usage error). */
static int parse_opts(int argc, char **argv, qopts *q, const char *help,
                      const struct option *extra, size_t n_extra)
{
    bool has_output = false;
    for (size_t i = 0; i < n_extra; i++)
        has_output |= extra[i].val == O_OUTPUT;
    struct option opts[17] = {
        {"db", required_argument, 0, O_DB},
        {"store", required_argument, 0, O_STORE},
        {"config", required_argument, 0, 'c'},
        {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, 'h'},
    };
    size_t n = 5;
    for (size_t i = 0; i < n_extra && n < 16; i++)
        opts[n++] = extra[i];
    memset(&opts[n], 0, sizeof opts[n]);
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, has_output ? ":c:ho:" : ":c:h", opts,
                            NULL)) != -1) {
        switch (c) {
        case O_DB:
            q->db = optarg;
            break;
        case O_STORE:
            q->store = optarg;
            break;
        case 'c':
            q->config = optarg;
            break;
        case O_JSON:
            q->json = true;
            break;
        case 'h':
            fputs(help, stdout);
            return HALO_EXIT_OK;
        case O_AGENT:
            q->agent = optarg;
            break;
        case O_SINCE:
            q->since = optarg;
            break;
        case O_UNTIL:
            q->until = optarg;
            break;
        case O_ERRORS:
            q->errors = true;
            break;
        case O_OUTPUT:
        case 'o':
            q->output = optarg;
            break;
        case O_TRACE_ID:
            q->trace_id = optarg;
            break;
        case O_LIMIT: {
            char *end;
            long long v = strtoll(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v <= 0)
                return halo_cli_usage_error(q->cmd,
                                            "invalid --limit \"%s\": expected "
                                            "a positive integer",
                                            optarg);
            q->limit = v;
            break;
        }
        case ':':
            return halo_cli_usage_error(q->cmd, "option %s needs a value",
                                        argv[optind - 1]);
        default:
            return halo_cli_usage_error(q->cmd, "unknown option \"%s\"",
                                        argv[optind - 1]);
        }
    }
    if (q->store && q->db)
        return halo_cli_usage_error(q->cmd, "%s",
                                    "--store and --db exclude each other");
    return -1;
}

/* --since/--until: a duration back from now ("1h") or a UTC time. */
static bool parse_when(const char *s, uint64_t *ns)
{
    int64_t d;
    if (halo_parse_duration(s, &d)) {
        uint64_t now = halo_real_ns();
        *ns = (uint64_t)d >= now ? 1 : now - (uint64_t)d;
        return true;
    }
    return halo_cli_parse_iso(s, ns);
}

/* Option opt's value s (parse_when) into *ns; NULL leaves *ns as it is. An
 * exit code after printing the usage error, -1 when fine. */
static int when_opt(const qopts *q, const char *opt, const char *s,
                    uint64_t *ns)
{
    if (!s || parse_when(s, ns))
        return -1;
    char fmt[96];
    snprintf(fmt, sizeof fmt,
             "invalid %s \"%%s\": expected a duration (1h) or a UTC time", opt);
    return halo_cli_usage_error(q->cmd, fmt, s);
}

/* Prints "halo CMD: msg"; the runtime failure exit code. */
static int runtime_error(const qopts *q, const char *msg)
{
    fprintf(stderr, "halo %s: %s\n", q->cmd, msg);
    return HALO_EXIT_RUNTIME;
}

/* Open the store the options point at, read-only. NULL after printing. */
static halo_store *open_db(const qopts *q)
{
    return halo_cli_open_store(q->cmd, q->store, q->db, q->config, true);
}

/* A trace id argument, 32 hex digits (either case), into bytes. An exit
 * code after printing the usage error, -1 when fine. */
static int trace_id_arg(const qopts *q, const char *s, uint8_t id[16])
{
    if (s && strlen(s) == 32 && halo_hex_decode(s, 32, id, 16))
        return -1;
    return halo_cli_usage_error(
        q->cmd, "invalid trace id \"%s\": expected 32 hex digits", s);
}

/* ---- formatting ---------------------------------------------------------- */

static void fmt_duration(double ms, char *out, size_t n)
{
    if (ms < 0)
        snprintf(out, n, "-");
    else if (ms < 10)
        snprintf(out, n, "%.2fms", ms);
    else if (ms < 1000)
        snprintf(out, n, "%.1fms", ms);
    else if (ms < 60000)
        snprintf(out, n, "%.2fs", ms / 1000);
    else if (ms < 3600000)
        snprintf(out, n, "%dm%02ds", (int)(ms / 60000), (int)(ms / 1000) % 60);
    else
        snprintf(out, n, "%dh%02dm", (int)(ms / 3600000),
                 (int)(ms / 60000) % 60);
}

/* "2026-11-16T09:00:00.123456789Z" -> "2026-11-16T09:00:00Z". */
static void fmt_start(const char *iso, char *out, size_t n)
{
    if (!iso || strlen(iso) < 19)
        snprintf(out, n, "-");
    else
        snprintf(out, n, "%.19sZ", iso);
}

/* s cut to max bytes (on a UTF-8 boundary) with "..." when longer. */
static void fmt_cut(const char *s, size_t max, char *out, size_t n)
{
    if (!s || !*s) {
        snprintf(out, n, "-");
        return;
    }
    size_t len = strlen(s);
    if (len <= max) {
        snprintf(out, n, "%s", s);
        return;
    }
    size_t k = max > 3 ? max - 3 : 0;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    snprintf(out, n, "%.*s...", (int)k, s);
}

static void json_key_str(halo_buf *b, const char *key, const char *v)
{
    halo_buf_printf(b, "\"%s\":", key);
    if (v)
        halo_buf_json_str(b, v, strlen(v));
    else
        halo_buf_puts(b, "null");
}

static int print_json(halo_buf *b)
{
    if (b->oom) {
        fprintf(stderr, "halo: out of memory\n");
        halo_buf_free(b);
        return HALO_EXIT_RUNTIME;
    }
    fwrite(b->data ? b->data : "", 1, b->len, stdout);
    putchar('\n');
    halo_buf_free(b);
    return HALO_EXIT_OK;
}

/* ---- traces list --------------------------------------------------------- */

static const char list_help[] =
    "usage: halo traces list [--agent A] [--since WHEN] [--until WHEN]\n"
    "                        [--errors] [--limit N] [--json]\n"
    "                        [--store S | --db PATH | --config F]\n\n"
    "List stored traces, newest first.\n\n"
    "      --agent A      only traces of agent id A\n"
    "      --since WHEN   only traces that started at or after WHEN: a\n"
    "                     duration back from now (30m, 1h, 7d) or a UTC time\n"
    "                     (2026-11-16T09:00:00Z, 2026-11-16)\n"
    "      --until WHEN   only traces that started before WHEN\n"
    "      --errors       only traces with at least one ERROR span\n"
    "      --limit N      at most N traces (default 50)\n" HALO_STORE_HELP
    "      --json         one JSON array instead of a table\n"
    "  -h, --help         this help\n";

static void trace_json(halo_buf *b, const halo_trace_row *t)
{
    halo_buf_printf(b, "{\"trace_id\":\"%s\",", t->trace_id);
    json_key_str(b, "agent_id", t->agent_id);
    halo_buf_putc(b, ',');
    json_key_str(b, "agent_name", t->agent_name);
    halo_buf_putc(b, ',');
    json_key_str(b, "session_id", t->session_id);
    halo_buf_putc(b, ',');
    json_key_str(b, "user_id", t->user_id);
    halo_buf_putc(b, ',');
    json_key_str(b, "root_name", t->root_name);
    halo_buf_putc(b, ',');
    json_key_str(b, "start_time", t->start_time);
    halo_buf_putc(b, ',');
    json_key_str(b, "end_time", t->end_time);
    halo_buf_puts(b, ",\"duration_ms\":");
    halo_buf_json_double(b, t->duration_ms);
    halo_buf_printf(b,
                    ",\"span_count\":%" PRId64 ",\"error_count\":%" PRId64
                    ",\"llm_calls\":%" PRId64 ",\"tool_calls\":%" PRId64
                    ",\"input_tokens\":%" PRId64 ",\"output_tokens\":%" PRId64
                    ",\"cost\":",
                    t->span_count, t->error_count, t->llm_calls, t->tool_calls,
                    t->input_tokens, t->output_tokens);
    halo_buf_json_double(b, t->cost);
    halo_buf_putc(b, '}');
}

static void print_trace_table(const halo_trace_row *rows, size_t n)
{
    int wa = 5; /* the AGENT column's width */
    for (size_t i = 0; i < n; i++) {
        int la = rows[i].agent_id ? (int)strlen(rows[i].agent_id) : 1;
        wa = la > wa ? (la > 32 ? 32 : la) : wa;
    }
    printf("%-32s  %-20s  %9s  %-*s  %6s  %6s  %9s  %s\n", "TRACE ID", "START",
           "DURATION", wa, "AGENT", "SPANS", "ERRORS", "TOKENS", "ROOT");
    for (size_t i = 0; i < n; i++) {
        const halo_trace_row *t = &rows[i];
        char start[32], dur[32], agent[64], root[80];
        fmt_start(t->start_time, start, sizeof start);
        fmt_duration(t->duration_ms, dur, sizeof dur);
        fmt_cut(t->agent_id, 32, agent, sizeof agent);
        if (t->root_name)
            fmt_cut(t->root_name, 60, root, sizeof root);
        else
            snprintf(root, sizeof root, "(root span not stored)");
        printf("%-32s  %-20s  %9s  %-*s  %6" PRId64 "  %6" PRId64 "  %9" PRId64
               "  %s\n",
               t->trace_id, start, dur, wa, agent, t->span_count,
               t->error_count, t->input_tokens + t->output_tokens, root);
    }
}

static int traces_list(int argc, char **argv)
{
    static const struct option extra[] = {
        {"agent", required_argument, 0, O_AGENT},
        {"since", required_argument, 0, O_SINCE},
        {"until", required_argument, 0, O_UNTIL},
        {"errors", no_argument, 0, O_ERRORS},
        {"limit", required_argument, 0, O_LIMIT},
    };
    qopts q = {.cmd = "traces list", .limit = 50};
    int rc = parse_opts(argc, argv, &q, list_help, extra, 5);
    if (rc >= 0)
        return rc;
    if (optind < argc)
        return halo_cli_usage_error(q.cmd, "unexpected argument \"%s\"",
                                    argv[optind]);
    halo_trace_filter f = {
        .agent_id = q.agent, .errors_only = q.errors, .limit = q.limit};
    if ((rc = when_opt(&q, "--since", q.since, &f.since_ns)) >= 0 ||
        (rc = when_opt(&q, "--until", q.until, &f.until_ns)) >= 0)
        return rc;
    halo_store *st = open_db(&q);
    if (!st)
        return HALO_EXIT_RUNTIME;
    halo_arena *a = halo_arena_new(0);
    halo_trace_row *rows = NULL;
    size_t n = 0;
    halo_err err = {{0}};
    rc = HALO_EXIT_OK;
    if (!a || st->ops->list_traces(st, &f, a, &rows, &n, &err) != HALO_OK) {
        rc = runtime_error(&q, a ? err.msg : "out of memory");
    } else if (q.json) {
        halo_buf b = HALO_BUF_INIT;
        halo_buf_putc(&b, '[');
        for (size_t i = 0; i < n; i++) {
            if (i)
                halo_buf_putc(&b, ',');
            trace_json(&b, &rows[i]);
        }
        halo_buf_putc(&b, ']');
        rc = print_json(&b);
    } else {
        print_trace_table(rows, n);
    }
    halo_arena_free(a);
    halo_store_close(st);
    return rc;
}

/* ---- traces show --------------------------------------------------------- */

static const char show_help[] =
    "usage: halo traces show TRACE_ID [--json]\n"
    "                        [--store S | --db PATH | --config F]\n\n"
    "Show one trace as a tree: each span with its type, duration, status\n"
    "(the message of errors), tool or model and tokens in/out. TRACE_ID is\n"
    "32 hex digits, in either case.\n\n"
    "      --db PATH      the SQLite database to read\n"
    "  -c, --config FILE  read the database of this configuration's sqlite\n"
    "                     exporter\n"
    "      --json         the spans in tree order as JSON, with their depth\n"
    "  -h, --help         this help\n";

typedef struct tree {
    const halo_span *spans;
    size_t n;
    size_t *order;      /* span indexes sorted by span id */
    size_t *first;      /* first child, or SIZE_MAX */
    size_t *last;       /* last child */
    size_t *next;       /* next sibling */
    unsigned char *why; /* 0 root/child, 1 parent missing, 2 parent cycle */
    bool *seen;
} tree;

static int cmp_span_id(const void *a, const void *b, void *spans)
{
    const halo_span *x = (const halo_span *)spans + *(const size_t *)a;
    const halo_span *y = (const halo_span *)spans + *(const size_t *)b;
    return memcmp(x->span_id, y->span_id, 8);
}

/* Index of the span with this id; SIZE_MAX when absent. */
static size_t find_span(const tree *t, const uint8_t id[8])
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = memcmp(t->spans[t->order[mid]].span_id, id, 8);
        if (c == 0)
            return t->order[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

static bool tree_build(tree *t, const halo_span *spans, size_t n)
{
    memset(t, 0, sizeof *t);
    t->spans = spans;
    t->n = n;
    t->order = malloc(n * sizeof *t->order);
    t->first = malloc(n * sizeof *t->first);
    t->last = malloc(n * sizeof *t->last);
    t->next = malloc(n * sizeof *t->next);
    t->why = calloc(n, 1);
    t->seen = calloc(n, sizeof *t->seen);
    if (!t->order || !t->first || !t->last || !t->next || !t->why || !t->seen)
        return false;
    for (size_t i = 0; i < n; i++) {
        t->order[i] = i;
        t->first[i] = t->last[i] = t->next[i] = SIZE_MAX;
    }
    qsort_r(t->order, n, sizeof *t->order, cmp_span_id, (void *)spans);
    /* spans come in start order, so children lists are in start order */
    for (size_t i = 0; i < n; i++) {
        if (halo_span_is_root(&spans[i]))
            continue;
        size_t p = find_span(t, spans[i].parent_span_id);
        if (p == SIZE_MAX || p == i) {
            t->why[i] = 1;
            continue;
        }
        if (t->last[p] == SIZE_MAX)
            t->first[p] = i;
        else
            t->next[t->last[p]] = i;
        t->last[p] = i;
    }
    return true;
}

static void tree_free(tree *t)
{
    free(t->order);
    free(t->first);
    free(t->last);
    free(t->next);
    free(t->why);
    free(t->seen);
}

typedef struct frame {
    size_t span;
    size_t depth;
    bool last;
} frame;

typedef void (*visit_fn)(void *ud, const tree *t, size_t span, size_t depth,
                         const bool *last_at);

/* Depth-first from top, children in start order, with an explicit stack
 * (a deep trace must not overflow the C stack). last_at[d] tells whether
 * the ancestor at depth d was its parent's last child. */
static bool tree_walk(tree *t, size_t top, frame *stack, bool *last_at,
                      visit_fn fn, void *ud)
{
    size_t sp = 0;
    stack[sp++] = (frame){top, 0, true};
    while (sp) {
        frame f = stack[--sp];
        if (t->seen[f.span])
            continue;
        t->seen[f.span] = true;
        last_at[f.depth] = f.last;
        fn(ud, t, f.span, f.depth, last_at);
        /* push children in reverse so the first is visited first */
        size_t count = 0;
        for (size_t c = t->first[f.span]; c != SIZE_MAX; c = t->next[c])
            count++;
        size_t base = sp + count;
        size_t k = 0;
        for (size_t c = t->first[f.span]; c != SIZE_MAX; c = t->next[c], k++)
            stack[base - 1 - k] = (frame){c, f.depth + 1, k == count - 1};
        sp = base;
    }
    return true;
}

/* Every span once: top-level spans (roots, parent missing) in start order,
 * then whatever a parent cycle hid. */
static bool tree_walk_all(tree *t, visit_fn fn, void *ud)
{
    /* each span is pushed at most once per parent edge: n entries suffice
     * plus the top */
    frame *stack = malloc((t->n + 1) * sizeof *stack);
    bool *last_at = calloc(t->n + 1, sizeof *last_at);
    if (!stack || !last_at) {
        free(stack);
        free(last_at);
        return false;
    }
    for (size_t i = 0; i < t->n; i++)
        if (halo_span_is_root(&t->spans[i]) || t->why[i] == 1)
            tree_walk(t, i, stack, last_at, fn, ud);
    for (size_t i = 0; i < t->n; i++) {
        if (!t->seen[i]) {
            t->why[i] = 2;
            tree_walk(t, i, stack, last_at, fn, ud);
        }
    }
    free(stack);
    free(last_at);
    return true;
}

typedef struct show_ctx {
    halo_buf *out;
    bool color;
    bool json;
    size_t count;
} show_ctx;

static double span_ms(const halo_span *s)
{
    return (double)(int64_t)(s->end_ns - s->start_ns) / 1e6;
}

static void show_line(void *ud, const tree *t, size_t i, size_t depth,
                      const bool *last_at)
{
    show_ctx *c = ud;
    halo_buf *b = c->out;
    const halo_span *s = &t->spans[i];
    for (size_t d = 1; d < depth; d++)
        halo_buf_puts(b, last_at[d] ? "   " : "\xe2\x94\x82  ");
    if (depth > 0)
        halo_buf_puts(b, last_at[depth] ? "\xe2\x94\x94\xe2\x94\x80 "
                                        : "\xe2\x94\x9c\xe2\x94\x80 ");
    char dur[32];
    fmt_duration(span_ms(s), dur, sizeof dur);
    halo_buf_printf(b, "%s  %s  %s  ", s->name && *s->name ? s->name : "-",
                    s->d.span_type ? s->d.span_type : "-", dur);
    if (s->status_code == HALO_STATUS_ERROR) {
        halo_buf_printf(b, "%sERROR%s%s%s", c->color ? "\x1b[1;31m" : "",
                        *s->status_message ? ": " : "", s->status_message,
                        c->color ? "\x1b[0m" : "");
    } else {
        halo_buf_puts(b, halo_status_code_name(s->status_code));
    }
    if (s->d.tool_name)
        halo_buf_printf(b, "  tool=%s", s->d.tool_name);
    if (s->d.model)
        halo_buf_printf(b, "  model=%s", s->d.model);
    if (s->d.has_input_tokens)
        halo_buf_printf(b, "  in=%" PRId64, s->d.input_tokens);
    if (s->d.has_output_tokens)
        halo_buf_printf(b, "  out=%" PRId64, s->d.output_tokens);
    if (s->d.has_cost)
        halo_buf_printf(b, "  cost=%.4f", s->d.cost);
    if (t->why[i] == 1) {
        char pid[17];
        halo_hex_encode(s->parent_span_id, 8, pid);
        halo_buf_printf(b, "  (orphan: parent %s not stored)", pid);
    } else if (t->why[i] == 2) {
        halo_buf_puts(b, "  (in a parent cycle)");
    }
    halo_buf_putc(b, '\n');
}

static void show_json_span(void *ud, const tree *t, size_t i, size_t depth,
                           const bool *last_at)
{
    (void)last_at;
    show_ctx *c = ud;
    halo_buf *b = c->out;
    const halo_span *s = &t->spans[i];
    char sid[17], pid[17], start[HALO_ISO_NS_LEN];
    halo_hex_encode(s->span_id, 8, sid);
    halo_hex_encode(s->parent_span_id, 8, pid);
    halo_iso_from_ns(s->start_ns, start);
    if (c->count++)
        halo_buf_putc(b, ',');
    halo_buf_printf(b, "{\"span_id\":\"%s\",\"parent_span_id\":", sid);
    if (halo_span_is_root(s))
        halo_buf_puts(b, "null");
    else
        halo_buf_printf(b, "\"%s\"", pid);
    halo_buf_printf(b, ",\"depth\":%zu,\"orphan\":%s,", depth,
                    t->why[i] ? "true" : "false");
    json_key_str(b, "name", s->name);
    halo_buf_putc(b, ',');
    json_key_str(b, "span_type", s->d.span_type);
    halo_buf_printf(b, ",\"start_time\":\"%s\",\"duration_ms\":", start);
    halo_buf_json_double(b, span_ms(s));
    halo_buf_printf(b, ",\"status_code\":\"%s\",",
                    halo_status_code_name(s->status_code));
    json_key_str(b, "status_message", s->status_message);
    halo_buf_putc(b, ',');
    json_key_str(b, "agent_id", s->d.agent_id);
    halo_buf_putc(b, ',');
    json_key_str(b, "tool_name", s->d.tool_name);
    halo_buf_putc(b, ',');
    json_key_str(b, "model", s->d.model);
    if (s->d.has_input_tokens)
        halo_buf_printf(b, ",\"input_tokens\":%" PRId64, s->d.input_tokens);
    else
        halo_buf_puts(b, ",\"input_tokens\":null");
    if (s->d.has_output_tokens)
        halo_buf_printf(b, ",\"output_tokens\":%" PRId64, s->d.output_tokens);
    else
        halo_buf_puts(b, ",\"output_tokens\":null");
    halo_buf_puts(b, ",\"cost\":");
    if (s->d.has_cost)
        halo_buf_json_double(b, s->d.cost);
    else
        halo_buf_puts(b, "null");
    halo_buf_putc(b, '}');
}

/* Header line: id, agent, start, duration, counts. */
static void show_header(halo_buf *b, const char *tid, const halo_span *sp,
                        size_t n)
{
    uint64_t start = UINT64_MAX, end = 0;
    size_t errors = 0;
    const char *agent = NULL;
    for (size_t i = 0; i < n; i++) {
        start = sp[i].start_ns < start ? sp[i].start_ns : start;
        end = sp[i].end_ns > end ? sp[i].end_ns : end;
        errors += sp[i].status_code == HALO_STATUS_ERROR;
        if (!agent || halo_span_is_root(&sp[i]))
            agent = sp[i].d.agent_id ? sp[i].d.agent_id : agent;
    }
    char iso[HALO_ISO_NS_LEN], st[32], dur[32];
    halo_iso_from_ns(start, iso);
    fmt_start(iso, st, sizeof st);
    fmt_duration((double)(int64_t)(end - start) / 1e6, dur, sizeof dur);
    halo_buf_printf(b,
                    "trace %s  agent=%s  start=%s  duration=%s  spans=%zu"
                    "  errors=%zu\n\n",
                    tid, agent ? agent : "-", st, dur, n, errors);
}

static int show_spans(const qopts *q, const char *tid, const halo_span *sp,
                      size_t n)
{
    tree t;
    halo_buf b = HALO_BUF_INIT;
    show_ctx c = {&b, !q->json && isatty(STDOUT_FILENO), q->json, 0};
    bool ok = tree_build(&t, sp, n);
    if (ok && q->json) {
        halo_buf_printf(&b, "{\"trace_id\":\"%s\",\"spans\":[", tid);
        ok = tree_walk_all(&t, show_json_span, &c);
        halo_buf_puts(&b, "]}");
    } else if (ok) {
        show_header(&b, tid, sp, n);
        ok = tree_walk_all(&t, show_line, &c);
    }
    tree_free(&t);
    if (!ok || b.oom) {
        halo_buf_free(&b);
        return runtime_error(q, "out of memory");
    }
    if (q->json)
        return print_json(&b);
    fwrite(b.data, 1, b.len, stdout);
    halo_buf_free(&b);
    return HALO_EXIT_OK;
}

/* Load one trace's spans; prints and returns an exit code on failure, -1
 * on success. */
static int load_trace(const qopts *q, halo_store *st, const uint8_t id[16],
                      halo_arena *a, halo_span **sp, size_t *n)
{
    halo_err err = {{0}};
    halo_status s = st->ops->get_trace(st, id, a, sp, n, &err);
    return s == HALO_OK ? -1 : runtime_error(q, err.msg);
}

static int traces_show(int argc, char **argv)
{
    qopts q = {.cmd = "traces show"};
    int rc = parse_opts(argc, argv, &q, show_help, NULL, 0);
    if (rc >= 0)
        return rc;
    if (optind >= argc)
        return halo_cli_usage_error(q.cmd, "%s", "no trace id given");
    if (optind + 1 < argc)
        return halo_cli_usage_error(q.cmd, "unexpected argument \"%s\"",
                                    argv[optind + 1]);
    uint8_t id[16];
    if ((rc = trace_id_arg(&q, argv[optind], id)) >= 0)
        return rc;
    char tid[33];
    halo_hex_encode(id, 16, tid);
    halo_store *st = open_db(&q);
    if (!st)
        return HALO_EXIT_RUNTIME;
    halo_arena *a = halo_arena_new(0);
    halo_span *sp = NULL;
    size_t n = 0;
    rc = a ? load_trace(&q, st, id, a, &sp, &n) : HALO_EXIT_RUNTIME;
    if (rc < 0)
        rc = show_spans(&q, tid, sp, n);
    halo_arena_free(a);
    halo_store_close(st);
    return rc;
}

/* ---- halo traces --------------------------------------------------------- */

static const char traces_help[] =
    "usage: halo traces list [options]   list stored traces, newest first\n"
    "       halo traces show TRACE_ID    one trace as a tree of spans\n\n"
    "`halo traces list --help` and `halo traces show --help` describe the\n"
    "options.\n";

int halo_cmd_traces(int argc, char **argv)
{
    if (argc < 2)
        return halo_cli_usage_error("traces", "%s",
                                    "missing subcommand (list, show)");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        fputs(traces_help, stdout);
        return HALO_EXIT_OK;
    }
    halo_log_set_level(HALO_LOG_WARN);
    if (!strcmp(sub, "list"))
        return traces_list(argc - 1, argv + 1);
    if (!strcmp(sub, "show"))
        return traces_show(argc - 1, argv + 1);
    return halo_cli_usage_error("traces",
                                "unknown subcommand \"%s\" (list, show)", sub);
}

/* ---- halo agents --------------------------------------------------------- */

static const char agents_help[] =
    "usage: halo agents [--since WHEN] [--until WHEN] [--json]\n"
    "                   [--store S | --db PATH | --config F]\n\n"
    "Per agent, over the traces that started in the window: runs (traces),\n"
    "error rate (runs with an ERROR span), p50/p95 run duration, tokens in\n"
    "and out, and cost (USD).\n\n"
    "      --since WHEN   window start: a duration back from now or a UTC\n"
    "                     time (default 24h)\n"
    "      --until WHEN   window end (default: now)\n"
    "      --db PATH      the SQLite database to read\n"
    "  -c, --config FILE  read the database of this configuration's sqlite\n"
    "                     exporter\n"
    "      --json         one JSON array instead of a table\n"
    "  -h, --help         this help\n";

static void agents_json(halo_buf *b, const halo_agent_stats *r, size_t n)
{
    halo_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            halo_buf_putc(b, ',');
        halo_buf_putc(b, '{');
        json_key_str(b, "agent_id", r[i].agent_id);
        halo_buf_printf(b,
                        ",\"runs\":%" PRId64 ",\"error_runs\":%" PRId64
                        ",\"error_rate\":",
                        r[i].runs, r[i].error_runs);
        halo_buf_json_double(b, r[i].error_rate);
        halo_buf_puts(b, ",\"p50_ms\":");
        halo_buf_json_double(b, r[i].p50_ms);
        halo_buf_puts(b, ",\"p95_ms\":");
        halo_buf_json_double(b, r[i].p95_ms);
        halo_buf_printf(b,
                        ",\"spans\":%" PRId64 ",\"input_tokens\":%" PRId64
                        ",\"output_tokens\":%" PRId64 ",\"cost\":",
                        r[i].spans, r[i].input_tokens, r[i].output_tokens);
        halo_buf_json_double(b, r[i].cost);
        halo_buf_putc(b, '}');
    }
    halo_buf_putc(b, ']');
}

static void agents_table(const halo_agent_stats *r, size_t n)
{
    int wa = 5;
    for (size_t i = 0; i < n; i++) {
        int la = r[i].agent_id ? (int)strlen(r[i].agent_id) : 6;
        wa = la > wa ? (la > 40 ? 40 : la) : wa;
    }
    printf("%-*s  %6s  %10s  %9s  %9s  %10s  %10s  %10s\n", wa, "AGENT", "RUNS",
           "ERROR RATE", "P50", "P95", "INPUT TOK", "OUTPUT TOK", "COST");
    for (size_t i = 0; i < n; i++) {
        char agent[64], p50[32], p95[32], rate[32];
        if (r[i].agent_id)
            fmt_cut(r[i].agent_id, 40, agent, sizeof agent);
        else
            snprintf(agent, sizeof agent, "(none)");
        fmt_duration(r[i].p50_ms, p50, sizeof p50);
        fmt_duration(r[i].p95_ms, p95, sizeof p95);
        snprintf(rate, sizeof rate, "%.1f%%", r[i].error_rate * 100);
        printf("%-*s  %6" PRId64 "  %10s  %9s  %9s  %10" PRId64 "  %10" PRId64
               "  %10.4f\n",
               wa, agent, r[i].runs, rate, p50, p95, r[i].input_tokens,
               r[i].output_tokens, r[i].cost);
    }
}

int halo_cmd_agents(int argc, char **argv)
{
    static const struct option extra[] = {
        {"since", required_argument, 0, O_SINCE},
        {"until", required_argument, 0, O_UNTIL},
    };
    qopts q = {.cmd = "agents"};
    int rc = parse_opts(argc, argv, &q, agents_help, extra, 2);
    if (rc >= 0)
        return rc;
    if (optind < argc)
        return halo_cli_usage_error(q.cmd, "unexpected argument \"%s\"",
                                    argv[optind]);
    uint64_t since = 0, until = 0;
    if ((rc = when_opt(&q, "--since", q.since ? q.since : "24h", &since)) >=
            0 ||
        (rc = when_opt(&q, "--until", q.until, &until)) >= 0)
        return rc;
    halo_log_set_level(HALO_LOG_WARN);
    halo_store *st = open_db(&q);
    if (!st)
        return HALO_EXIT_RUNTIME;
    halo_arena *a = halo_arena_new(0);
    halo_agent_stats *rows = NULL;
    size_t n = 0;
    halo_err err = {{0}};
    rc = HALO_EXIT_OK;
    if (!a ||
        st->ops->agent_stats(st, since, until, a, &rows, &n, &err) != HALO_OK) {
        rc = runtime_error(&q, a ? err.msg : "out of memory");
    } else if (q.json) {
        halo_buf b = HALO_BUF_INIT;
        agents_json(&b, rows, n);
        rc = print_json(&b);
    } else {
        agents_table(rows, n);
        if (n == 0)
            fprintf(stderr,
                    "no runs in this window (--since %s); use --since to "
                    "look further back, e.g. --since 7d\n",
                    q.since ? q.since : "24h");
    }
    halo_arena_free(a);
    halo_store_close(st);
    return rc;
}

/* ---- halo export --------------------------------------------------------- */

static const char export_help[] =
    "usage: halo export --trace-id ID [--output FILE]\n"
    "                   [--store S | --db PATH | --config F]\n\n"
    "Write one stored trace as an OTLP/JSON ExportTraceServiceRequest, on one\n"
    "line, to FILE or stdout. `halo import` reads it back into the same\n"
    "spans.\n\n"
    "      --trace-id ID  the trace (32 hex digits, either case)\n"
    "  -o, --output FILE  write to FILE instead of stdout\n"
    "      --db PATH      the SQLite database to read\n"
    "  -c, --config FILE  read the database of this configuration's sqlite\n"
    "                     exporter\n"
    "  -h, --help         this help\n";

static int write_output(const char *cmd, const char *path, const halo_buf *b)
{
    FILE *f = path ? fopen(path, "w") : stdout;
    if (!f) {
        fprintf(stderr, "halo %s: could not open \"%s\": %m\n", cmd, path);
        return HALO_EXIT_RUNTIME;
    }
    bool ok = fwrite(b->data, 1, b->len, f) == b->len && fputc('\n', f) != EOF;
    ok = (path ? fclose(f) == 0 : fflush(f) == 0) && ok;
    if (!ok) {
        fprintf(stderr, "halo %s: could not write \"%s\": %m\n", cmd,
                path ? path : "stdout");
        return HALO_EXIT_RUNTIME;
    }
    return HALO_EXIT_OK;
}

int halo_cmd_export(int argc, char **argv)
{
    static const struct option extra[] = {
        {"trace-id", required_argument, 0, O_TRACE_ID},
        {"output", required_argument, 0, O_OUTPUT},
    };
    qopts q = {.cmd = "export"};
    int rc = parse_opts(argc, argv, &q, export_help, extra, 2);
    if (rc >= 0)
        return rc;
    if (optind < argc)
        return halo_cli_usage_error(q.cmd, "unexpected argument \"%s\"",
                                    argv[optind]);
    if (q.json)
        return halo_cli_usage_error(q.cmd, "%s",
                                    "--json does not apply (the output "
                                    "is OTLP/JSON already)");
    uint8_t id[16];
    if (!q.trace_id)
        return halo_cli_usage_error(q.cmd, "%s", "--trace-id is required");
    if ((rc = trace_id_arg(&q, q.trace_id, id)) >= 0)
        return rc;
    halo_log_set_level(HALO_LOG_WARN);
    halo_store *st = open_db(&q);
    if (!st)
        return HALO_EXIT_RUNTIME;
    halo_arena *a = halo_arena_new(0);
    halo_span *sp = NULL;
    size_t n = 0;
    halo_buf b = HALO_BUF_INIT;
    rc = a ? load_trace(&q, st, id, a, &sp, &n) : HALO_EXIT_RUNTIME;
    if (rc < 0) {
        if (halo_otlp_encode_json(sp, n, &b) != HALO_OK || b.oom) {
            rc = runtime_error(&q, "could not encode the trace");
        } else {
            rc = write_output(q.cmd, q.output, &b);
        }
    }
    halo_buf_free(&b);
    halo_arena_free(a);
    halo_store_close(st);
    return rc;
}
