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
#include "trace_tree.h"

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
    const char *optstring = has_output ? ":c:ho:" : ":c:h";
    while ((c = getopt_long(argc, argv, optstring, opts, NULL)) != -1) {
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
            if (*optarg == '\0' || *end != '\0' || v <= 0 || v >= INT32_MAX)
                return halo_cli_usage_error(
                    q->cmd,
                    "invalid --limit \"%s\": expected "
                    "a positive integer below 2147483647",
                    optarg);
            q->limit = v;
            break;
        }
        default:
            return halo_cli_option_error(q->cmd, c, argv, optstring);
        }
    }
    return halo_cli_check_store_opts(q->cmd, q->store, q->db);
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
    halo_buf_printf(b, ",\"priced_spans\":%" PRId64 "}", t->priced_spans);
}

static void print_trace_table(const halo_trace_row *rows, size_t n)
{
    int wa = 5; /* the AGENT column's width */
    for (size_t i = 0; i < n; i++)
        wa = halo_agent_col(wa, rows[i].agent_id, "-");
    printf("%-32s  %-20s  %9s  %-*s  %6s  %6s  %9s  %s\n", "TRACE ID", "START",
           "DURATION", wa, "AGENT", "SPANS", "ERRORS", "TOKENS", "ROOT");
    for (size_t i = 0; i < n; i++) {
        const halo_trace_row *t = &rows[i];
        char start[32], dur[32], agent[HALO_FMT_BUF(HALO_AGENT_COL_MAX)],
            root[HALO_FMT_BUF(60)];
        halo_fmt_start(t->start_time, start, sizeof start);
        halo_fmt_duration(t->duration_ms, dur, sizeof dur);
        halo_fmt_cut(t->agent_id, HALO_AGENT_COL_MAX, agent, sizeof agent);
        if (t->root_name)
            halo_fmt_cut(t->root_name, 60, root, sizeof root);
        else
            snprintf(root, sizeof root, "(root span not stored)");
        printf("%-32s  %-20s  %9s  %-*s  %6" PRId64 "  %6" PRId64 "  %9" PRId64
               "  %s\n",
               t->trace_id, start, dur, halo_fmt_pad(wa, agent), agent,
               t->span_count, t->error_count,
               t->input_tokens + t->output_tokens, root);
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
    /* one row more than shown: whether to say there are more */
    halo_trace_filter f = {
        .agent_id = q.agent, .errors_only = q.errors, .limit = q.limit + 1};
    if ((rc = when_opt(&q, "--since", q.since, &f.since_ns)) >= 0 ||
        (rc = when_opt(&q, "--until", q.until, &f.until_ns)) >= 0)
        return rc;
    if (f.since_ns && f.until_ns && f.since_ns >= f.until_ns)
        return halo_cli_usage_error(q.cmd, "%s",
                                    "--since is not before --until: the "
                                    "window is empty");
    halo_store *st = open_db(&q);
    if (!st)
        return HALO_EXIT_RUNTIME;
    halo_arena *a = halo_arena_new(0);
    halo_trace_row *rows = NULL;
    size_t n = 0;
    halo_err err = {{0}};
    rc = HALO_EXIT_OK;
    bool more = false;
    if (!a || st->ops->list_traces(st, &f, a, &rows, &n, &err) != HALO_OK) {
        rc = runtime_error(&q, a ? err.msg : "out of memory");
        n = 0;
    }
    if (n > (size_t)q.limit) {
        more = true;
        n = (size_t)q.limit;
    }
    if (rc != HALO_EXIT_OK) {
        /* said */
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
        if (more)
            fprintf(stderr,
                    "(the newest %lld traces; --limit N shows more, --since "
                    "and --agent narrow the list)\n",
                    (long long)q.limit);
        if (n == 0 && (q.agent || q.since || q.until || q.errors))
            fprintf(stderr, "no traces match these filters\n");
        else if (n == 0)
            fprintf(stderr, "no traces stored yet: send some over OTLP "
                            "(gRPC 4317, HTTP 4318) or `halo import` a file\n");
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
    "32 hex digits, in either case.\n\n" HALO_STORE_HELP
    "      --json         the spans in tree order as JSON, with their depth\n"
    "  -h, --help         this help\n";

typedef struct json_ctx {
    halo_buf *out;
    size_t count;
} json_ctx;

static void show_json_span(void *ud, const halo_tree *t, size_t i, size_t depth,
                           const bool *last_at)
{
    (void)last_at;
    json_ctx *c = ud;
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
    halo_buf_json_double(b, halo_span_ms(s));
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

static int show_spans(const qopts *q, const char *tid, const halo_span *sp,
                      size_t n)
{
    halo_buf b = HALO_BUF_INIT;
    bool ok;
    if (q->json) {
        halo_tree t;
        json_ctx c = {&b, 0};
        ok = halo_tree_build(&t, sp, n);
        halo_buf_printf(&b, "{\"trace_id\":\"%s\",\"spans\":[", tid);
        ok = ok && halo_tree_walk_all(&t, show_json_span, &c);
        halo_buf_puts(&b, "]}");
        halo_tree_free(&t);
    } else {
        halo_trace_text_opts o = {.color = isatty(STDOUT_FILENO)};
        ok = halo_trace_text(tid, sp, n, &o, &b);
    }
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
    "                     time (default: 24h before the window's end)\n"
    "      --until WHEN   window end (default: now)\n" HALO_STORE_HELP
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
        halo_buf_printf(b, ",\"priced_spans\":%" PRId64 "}", r[i].priced_spans);
    }
    halo_buf_putc(b, ']');
}

static void agents_table(const halo_agent_stats *r, size_t n)
{
    int wa = 5;
    for (size_t i = 0; i < n; i++)
        wa = halo_agent_col(wa, r[i].agent_id, "(none)");
    printf("%-*s  %6s  %10s  %9s  %9s  %10s  %10s  %10s\n", wa, "AGENT", "RUNS",
           "ERROR RATE", "P50", "P95", "INPUT TOK", "OUTPUT TOK", "COST");
    bool unpriced = false;
    for (size_t i = 0; i < n; i++) {
        char agent[HALO_FMT_BUF(HALO_AGENT_COL_MAX)], p50[32], p95[32],
            rate[32], cost[32];
        if (r[i].agent_id)
            halo_fmt_cut(r[i].agent_id, HALO_AGENT_COL_MAX, agent,
                         sizeof agent);
        else
            snprintf(agent, sizeof agent, "(none)");
        halo_fmt_duration(r[i].p50_ms, p50, sizeof p50);
        halo_fmt_duration(r[i].p95_ms, p95, sizeof p95);
        snprintf(rate, sizeof rate, "%.1f%%", r[i].error_rate * 100);
        if (halo_cost_unpriced(r[i].cost, r[i].priced_spans, r[i].input_tokens,
                               r[i].output_tokens)) {
            snprintf(cost, sizeof cost, "-");
            unpriced = true;
        } else {
            snprintf(cost, sizeof cost, "%.4f", r[i].cost);
        }
        printf("%-*s  %6" PRId64 "  %10s  %9s  %9s  %10" PRId64 "  %10" PRId64
               "  %10s\n",
               halo_fmt_pad(wa, agent), agent, r[i].runs, rate, p50, p95,
               r[i].input_tokens, r[i].output_tokens, cost);
    }
    if (unpriced)
        fprintf(stderr, "COST -: no price known for these runs' models (send "
                        "llm.cost.total, or set agent_identity's prices)\n");
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
    if ((rc = when_opt(&q, "--since", q.since, &since)) >= 0 ||
        (rc = when_opt(&q, "--until", q.until, &until)) >= 0)
        return rc;
    if (!q.since) { /* the 24 h before the window's end */
        const uint64_t day = 86400ull * 1000000000ull;
        uint64_t end = until ? until : halo_real_ns();
        since = end > day ? end - day : 1;
    }
    if (until && since >= until)
        return halo_cli_usage_error(q.cmd, "%s",
                                    "--since is not before --until: the "
                                    "window is empty");
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
        if (n && !q.since)
            fprintf(stderr,
                    "(runs that started in the 24h before %s; --since 7d "
                    "or --since 2000-01-01 looks further back)\n",
                    q.until ? "--until" : "now");
        if (n == 0)
            fprintf(stderr,
                    "no runs in this window (%s%s); use --since to look "
                    "further back, e.g. --since 7d\n",
                    q.since   ? "--since "
                    : q.until ? "the 24h before --until"
                              : "the last 24h",
                    q.since ? q.since : "");
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
    "  -o, --output FILE  write to FILE instead of stdout\n" HALO_STORE_HELP
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
