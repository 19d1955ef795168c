/*
 * gen_window.c -- halo-gen-window: a synthetic analyzer window written
 * straight into a store (the analyzer benchmark, bench/analyze.sh).
 *
 * The detectors' target (DESIGN §10) is a window of 100,000 traces, about
 * 1,000,000 spans, in 10 s. Sending that through OTLP would measure ingest
 * again and take minutes, so this tool builds the spans in memory and hands
 * them to the store API (storage/store.h) in batches of a few thousand
 * spans, one transaction each -- the same path the exporters take.
 *
 * The spans look like what an instrumented agent sends (OpenInference
 * attributes: openinference.span.kind, llm.*, tool.name, input.value,
 * output.value, agent.name / session.id / user.id on the root), and the
 * derived fields (span->d) are filled by the agent_identity processor
 * itself (halo_agent_identity_apply), so the stored rows are those a real
 * pipeline would store.
 *
 * One trace is an AGENT root, 3-4 LLM calls whose prompt tokens grow along
 * the run, 4-5 TOOL calls between them (8 tools; lookup_shipping is
 * consistently slow, 1% of all tool calls are outliers 10-30x their usual
 * latency) and, in 60% of the runs, a RETRIEVER. Faults are mixed in, one
 * kind per trace, by fixed shares (see kinds[] below), so every detector
 * has real findings: retry loops, silent failures (OK with an error
 * payload), duplicate calls, error clusters whose messages carry ids,
 * invalid tool input, unknown tools and context growth that ends in a
 * context-length error. Two shifts along the window: LLM latency grows
 * 2.2x from one third of the window on (latency regression), and the
 * model changes from gpt-4o-mini to gpt-4o at two thirds (cost regression).
 *
 * Everything comes from one splitmix64 stream seeded by --seed: the same
 * options give the same trace and span ids, so a second run into the same
 * store writes nothing new (the stores skip spans already present).
 * Trace start times are uniform over [end - window, end), drawn first and
 * sorted, so traces are written in time order as a live agent's would be.
 *
 * Speed: the main thread builds a group of ~4,000 spans, derives their
 * fields and encodes them into rows (the store's prepare()); a writer
 * thread writes the previous group (write_rows(), one transaction), as the
 * exporters split the work. SQLite is opened with synchronous=NORMAL and
 * the background checkpointer: this is test data, not acknowledged data.
 */
#include "core/arena.h"
#include "core/batch.h"
#include "core/config.h"
#include "core/span.h"
#include "core/status.h"
#include "processors/agent_identity.h"
#include "storage/store.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000ull
#define NS_PER_MS 1000000ull

enum {
    SPANS_PER_WRITE = 4000, /* a batch (one transaction) once this full */
    MAX_TRACE_SPANS = 48,   /* the longest trace below needs ~30 */
    MAX_ATTRS = 10,
    TEXT_MAX = 2048,
    PROGRESS_EVERY = 10000,
};

/* ---- options --------------------------------------------------------- */

typedef struct gen_opts {
    const char *store;
    int64_t traces;
    const char *agent;
    uint64_t end_ns;
    uint64_t window_ns;
    uint64_t seed;
} gen_opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: halo-gen-window --store SPEC [options]\n"
            "\n"
            "Writes a synthetic window of agent runs (~10 spans each, with\n"
            "retry loops, silent failures, slow tools, a model change...)\n"
            "into a halo store, for benchmarking `halo analyze`.\n"
            "\n"
            "  --store SPEC      sqlite:PATH or postgresql://... (required)\n"
            "  --traces N        runs to write (default 100000)\n"
            "  --agent NAME      their agent.name (default bench-agent)\n"
            "  --end T           window end: ISO-8601 UTC "
            "(2026-11-16T10:00:00Z)\n"
            "                    or epoch seconds (default: this hour, "
            "truncated)\n"
            "  --window DUR      window length (default 24h)\n"
            "  --seed N          random seed (default 1)\n"
            "  -h, --help        show this help\n");
}

/* "2026-11-16T10:00:00Z" (fraction and Z optional) or epoch seconds. */
static bool parse_time(const char *s, uint64_t *ns)
{
    char *end;
    if (*s >= '0' && *s <= '9' && !strchr(s, '-')) {
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || v > UINT64_MAX / NS_PER_S)
            return false;
        *ns = v * NS_PER_S;
        return true;
    }
    struct tm tm = {0};
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return false;
    if (*end == '.')
        for (end++; *end >= '0' && *end <= '9'; end++)
            ;
    if (*end == 'Z')
        end++;
    time_t t = timegm(&tm);
    if (*end || t < 0)
        return false;
    *ns = (uint64_t)t * NS_PER_S;
    return true;
}

static bool parse_count(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < 0)
        return false;
    *out = v;
    return true;
}

/* 0 ok, 2 usage error (printed). */
static int parse_args(int argc, char **argv, gen_opts *o)
{
    static const struct option longopts[] = {
        {"store", required_argument, NULL, 's'},
        {"traces", required_argument, NULL, 't'},
        {"agent", required_argument, NULL, 'a'},
        {"end", required_argument, NULL, 'e'},
        {"window", required_argument, NULL, 'w'},
        {"seed", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int64_t window = 24 * 3600 * (int64_t)NS_PER_S, seed = 1;
    o->traces = 100000;
    o->agent = "bench-agent";
    o->end_ns = (uint64_t)time(NULL) / 3600 * 3600 * NS_PER_S;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        const char *bad = NULL;
        switch (c) {
        case 's':
            o->store = optarg;
            break;
        case 't':
            if (!parse_count(optarg, &o->traces) || o->traces == 0)
                bad = "--traces";
            break;
        case 'a':
            o->agent = optarg;
            if (!*optarg)
                bad = "--agent";
            break;
        case 'e':
            if (!parse_time(optarg, &o->end_ns))
                bad = "--end";
            break;
        case 'w':
            if (!halo_parse_duration(optarg, &window) || window <= 0)
                bad = "--window";
            break;
        case 'r':
            if (!parse_count(optarg, &seed))
                bad = "--seed";
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "halo-gen-window: invalid %s \"%s\"\n", bad,
                    optarg);
            return 2;
        }
    }
    if (!o->store || optind < argc) {
        fprintf(stderr, "halo-gen-window: %s\n",
                o->store ? "unexpected argument" : "--store is required");
        usage(stderr);
        return 2;
    }
    if ((uint64_t)window > o->end_ns) {
        fprintf(stderr, "halo-gen-window: --window is longer than --end\n");
        return 2;
    }
    o->window_ns = (uint64_t)window;
    o->seed = (uint64_t)seed;
    return 0;
}

/* ---- randomness -------------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* [0, 1) */
static double rng_unit(rng *r)
{
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* [lo, hi] */
static int64_t rng_range(rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static bool rng_chance(rng *r, double p)
{
    return rng_unit(r) < p;
}

/* A latency with median p50 and 95th percentile p95 (log-normal), in ns. */
static uint64_t rng_latency(rng *r, double p50_ms, double p95_ms)
{
    double u1 = rng_unit(r), u2 = rng_unit(r);
    double z = sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
    double sigma = log(p95_ms / p50_ms) / 1.645;
    double ms = p50_ms * exp(sigma * z);
    if (ms < 1)
        ms = 1;
    return (uint64_t)(ms * (double)NS_PER_MS);
}

/* ---- what a run looks like -------------------------------------------- */

/* The fault mixed into a trace: share of traces, cumulative below. */
typedef enum fault {
    F_NONE,
    F_RETRY_LOOP,
    F_SILENT,
    F_DUPLICATE,
    F_ERROR,
    F_INVALID_INPUT,
    F_UNKNOWN_TOOL,
    F_CONTEXT,
    F_COUNT_
} fault;

static const struct {
    const char *name;
    double share;
} kinds[F_COUNT_] = {
    [F_NONE] = {"none", 0},
    [F_RETRY_LOOP] = {"retry_loop", 0.05},
    [F_SILENT] = {"silent_failure", 0.03},
    [F_DUPLICATE] = {"duplicate_call", 0.02},
    [F_ERROR] = {"tool_error", 0.04},
    [F_INVALID_INPUT] = {"invalid_input", 0.01},
    [F_UNKNOWN_TOOL] = {"unknown_tool", 0.005},
    [F_CONTEXT] = {"context_growth", 0.01},
};

typedef struct tool_def {
    const char *name;
    double p50_ms, p95_ms;
    const char *arg_key; /* the main argument */
} tool_def;

enum { T_SEARCH_KB, T_GET_ORDER, T_SHIPPING, T_WEB_SEARCH, T_N_ };
static const tool_def tools[] = {
    [T_SEARCH_KB] = {"search_kb", 120, 400, "query"},
    [T_GET_ORDER] = {"get_order", 60, 200, "order_id"},
    [T_SHIPPING] = {"lookup_shipping", 1500, 3500, "tracking_number"},
    [T_WEB_SEARCH] = {"web_search", 600, 1800, "query"},
    {"get_customer", 40, 150, "customer_id"},
    {"refund_order", 200, 600, "order_id"},
    {"send_email", 150, 500, "to"},
    {"create_ticket", 90, 300, "subject"},
};
#define N_TOOLS (sizeof tools / sizeof *tools)
#define T_CREATE_TICKET ((int)N_TOOLS - 1)

/* Plain words only: nothing an error detector reads as a failure
 * ("error", "failed", ...), so that only the planted faults are faults. */
static const char *const words[] = {
    "order",    "refund",  "package",    "delivery", "damaged",      "blender",
    "invoice",  "account", "password",   "shipping", "tracking",     "warranty",
    "return",   "label",   "charged",    "twice",    "subscription", "cancel",
    "upgrade",  "plan",    "discount",   "coupon",   "expired",      "address",
    "change",   "missing", "item",       "wrong",    "size",         "color",
    "exchange", "store",   "credit",     "payment",  "gift",         "card",
    "voucher",  "late",    "courier",    "customs",  "fee",          "battery",
    "charger",  "laptop",  "headphones", "manual",   "setup",        "firmware",
    "update",   "receipt", "screen",     "bundle",   "replacement",  "how",
    "when",     "why",     "can",        "I",        "my",           "the",
    "for",      "with",    "still",      "not",
};
#define N_WORDS (sizeof words / sizeof *words)

/* ---- the generator ----------------------------------------------------- */

typedef struct gen {
    const gen_opts *o;
    rng r;
    halo_agent_identity *ai;
    halo_store *st;
    halo_arena *a; /* the batch being built */
    halo_span *spans;
    size_t n;
    halo_resource *res;
    halo_scope *scope;
    int64_t traces_done;
    int64_t spans_done; /* handed to the writer; at the end: written */
    int64_t inserted;
    int64_t duplicates;
    int64_t error_traces;
    int64_t faults[F_COUNT_];
} gen;

/* One trace being built. */
typedef struct run {
    uint8_t tid[16];
    halo_span *root;
    uint64_t t;  /* where the next step starts */
    double frac; /* position of the start in the window, [0, 1) */
    const char *model;
    double price_in, price_out; /* USD per 1M tokens */
    int64_t prompt;             /* the next LLM call's prompt tokens */
    uint32_t customer, order;
    const char *question;
} run;

/* printf into the batch arena; "" when out of memory (checked at flush). */
static const char *fmt(gen *g, const char *f, ...)
    __attribute__((format(printf, 2, 3)));
static const char *fmt(gen *g, const char *f, ...)
{
    char buf[TEXT_MAX];
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    if (n < 0)
        return "";
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    const char *s = halo_arena_strndup(g->a, buf, (size_t)n);
    return s ? s : "";
}

/* n random words separated by spaces into out (cap bytes). */
static void phrase(gen *g, char *out, size_t cap, int n)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < n && len + 16 < cap; i++) {
        const char *w = words[rng_next(&g->r) % N_WORDS];
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? " " : "", w);
    }
}

static void random_id(gen *g, uint8_t *out, size_t n)
{
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t v = rng_next(&g->r);
            memcpy(out + i, &v, n - i < 8 ? n - i : 8);
        }
    } while (halo_bytes_zero(out, n));
}

static void put_attr(halo_span *sp, const char *key, halo_value v)
{
    if (sp->attrs.n >= MAX_ATTRS)
        return;
    sp->attrs.items[sp->attrs.n].key = key;
    sp->attrs.items[sp->attrs.n].value = v;
    sp->attrs.n++;
}

static void put_str(halo_span *sp, const char *key, const char *s)
{
    halo_value v = {.type = HALO_VAL_STRING};
    v.u.s.ptr = s;
    v.u.s.len = strlen(s);
    put_attr(sp, key, v);
}

static void put_int(halo_span *sp, const char *key, int64_t i)
{
    put_attr(sp, key, (halo_value){.type = HALO_VAL_INT, .u.i = i});
}

static void put_dbl(halo_span *sp, const char *key, double d)
{
    put_attr(sp, key, (halo_value){.type = HALO_VAL_DOUBLE, .u.d = d});
}

/* A new span of run r starting at r->t and lasting dur; a child of the
 * root unless it is the root. NULL when out of memory. */
static halo_span *new_span(gen *g, run *r, const char *name, const char *kind,
                           uint64_t dur)
{
    halo_kv *kv = halo_arena_calloc(g->a, MAX_ATTRS, sizeof *kv);
    if (!kv || g->n >= SPANS_PER_WRITE + MAX_TRACE_SPANS)
        return NULL;
    halo_span *sp = &g->spans[g->n++];
    memset(sp, 0, sizeof *sp);
    memcpy(sp->trace_id, r->tid, 16);
    random_id(g, sp->span_id, 8);
    if (r->root)
        memcpy(sp->parent_span_id, r->root->span_id, 8);
    sp->trace_state = "";
    sp->name = name;
    sp->kind = !r->root ? 2 : strcmp(kind, "LLM") == 0 ? 3 : 1;
    sp->start_ns = r->t;
    sp->end_ns = r->t + dur;
    sp->status_code = HALO_STATUS_OK;
    sp->status_message = "";
    sp->attrs.items = kv;
    sp->resource = g->res;
    sp->scope = g->scope;
    put_str(sp, "openinference.span.kind", kind);
    return sp;
}

static void fail_span(halo_span *sp, const char *msg)
{
    sp->status_code = HALO_STATUS_ERROR;
    sp->status_message = msg;
}

/* Advance the run's clock past sp, plus a gap of a few ms. */
static void after(gen *g, run *r, const halo_span *sp)
{
    r->t = sp->end_ns + (uint64_t)rng_range(&g->r, 1, 30) * NS_PER_MS;
}

/* ---- LLM calls ---------------------------------------------------------- */

static bool llm_call(gen *g, run *r, bool final, const char *error)
{
    int64_t out =
        final ? rng_range(&g->r, 150, 450) : rng_range(&g->r, 30, 160);
    double p50 = 350 + (double)out * 12 + (double)r->prompt / 40;
    if (r->frac >= 1.0 / 3)
        p50 *= 2.2; /* the provider got slower: latency regression */
    halo_span *sp = new_span(g, r, "ChatCompletion", "LLM",
                             rng_latency(&g->r, p50, p50 * 2.2));
    if (!sp)
        return false;
    double cost =
        ((double)r->prompt * r->price_in + (double)out * r->price_out) / 1e6;
    put_str(sp, "llm.model_name", r->model);
    put_str(sp, "llm.provider", "openai");
    put_int(sp, "llm.token_count.prompt", r->prompt);
    put_int(sp, "llm.token_count.completion", out);
    put_int(sp, "llm.token_count.total", r->prompt + out);
    put_dbl(sp, "llm.cost.total", cost);
    put_str(sp, "input.value",
            fmt(g,
                "{\"messages\":[{\"role\":\"system\",\"content\":\"You are "
                "the support assistant of Acme. Use the tools.\"},"
                "{\"role\":\"user\",\"content\":\"%s\"}],\"n_messages\":%d}",
                r->question, 2 + (int)(r->prompt / 900)));
    char text[600];
    phrase(g, text, sizeof text, final ? (int)rng_range(&g->r, 30, 60) : 8);
    put_str(sp, "output.value",
            final ? fmt(g, "%s", text)
                  : fmt(g,
                        "{\"tool_calls\":[{\"type\":\"function\","
                        "\"reasoning\":\"%s\"}]}",
                        text));
    if (error)
        fail_span(sp, error);
    r->prompt += rng_range(&g->r, 500, 1400);
    after(g, r, sp);
    return true;
}

/* ---- tool calls --------------------------------------------------------- */

/* The JSON arguments of a call of tool t, ~100-300 bytes. */
static const char *tool_args(gen *g, run *r, int t)
{
    char q[300];
    phrase(g, q, sizeof q, (int)rng_range(&g->r, 6, 24));
    switch (t) {
    case T_GET_ORDER:
        return fmt(g,
                   "{\"order_id\":\"ORD-%06u\",\"customer_id\":\"C-%06u\","
                   "\"include\":[\"items\",\"payments\",\"shipments\"],"
                   "\"note\":\"%s\"}",
                   r->order, r->customer, q);
    case T_SHIPPING:
        return fmt(g,
                   "{\"tracking_number\":\"1Z%010u\",\"carrier\":\"UPS\","
                   "\"order_id\":\"ORD-%06u\",\"note\":\"%s\"}",
                   r->order * 7919u, r->order, q);
    default:
        return fmt(g,
                   "{\"%s\":\"%s\",\"customer_id\":\"C-%06u\","
                   "\"locale\":\"en-US\",\"max_results\":%d}",
                   tools[t].arg_key, q, r->customer,
                   (int)rng_range(&g->r, 3, 10));
    }
}

/* A successful result of tool t, ~200-500 bytes. */
static const char *tool_output(gen *g, run *r, int t)
{
    char a[300], b[300];
    phrase(g, a, sizeof a, (int)rng_range(&g->r, 6, 20));
    phrase(g, b, sizeof b, (int)rng_range(&g->r, 6, 30));
    return fmt(g,
               "{\"ok\":true,\"tool\":\"%s\",\"results\":[{\"id\":\"%s-%06u\","
               "\"title\":\"%s\",\"score\":0.%02d},{\"id\":\"%s-%06u\","
               "\"summary\":\"%s\",\"score\":0.%02d}],\"order_id\":"
               "\"ORD-%06u\"}",
               tools[t].name, tools[t].arg_key,
               (unsigned)rng_range(&g->r, 1, 999999), a,
               (int)rng_range(&g->r, 50, 99), tools[t].arg_key,
               (unsigned)rng_range(&g->r, 1, 999999), b,
               (int)rng_range(&g->r, 10, 60), r->order);
}

/* An error message of tool t with ids in it (error_cluster material). */
static const char *tool_error(gen *g, run *r, int t)
{
    switch (t) {
    case T_GET_ORDER:
        return fmt(g, "order ORD-%06u not found", r->order);
    case T_SHIPPING:
        return fmt(g, "carrier API timeout after 10000 ms (tracking 1Z%010u)",
                   r->order * 7919u);
    case T_WEB_SEARCH:
    case T_SEARCH_KB:
        return fmt(g,
                   "upstream 503 from search-gw-%d.internal (request id "
                   "req-%012" PRIx64 ")",
                   (int)rng_range(&g->r, 1, 4),
                   (uint64_t)(rng_next(&g->r) & 0xffffffffffffull));
    default:
        return fmt(g,
                   "connection reset by peer while calling %s-%d.internal:8443 "
                   "(attempt %d)",
                   tools[t].name, (int)rng_range(&g->r, 1, 9),
                   (int)rng_range(&g->r, 1, 3));
    }
}

/* One call of tool t with the given args; out NULL: a fresh result. */
static halo_span *tool_call(gen *g, run *r, int t, const char *args,
                            const char *out)
{
    uint64_t dur = rng_latency(&g->r, tools[t].p50_ms, tools[t].p95_ms);
    if (rng_chance(&g->r, 0.01))
        dur *= (uint64_t)rng_range(&g->r, 10, 30); /* an outlier */
    halo_span *sp = new_span(g, r, tools[t].name, "TOOL", dur);
    if (!sp)
        return NULL;
    put_str(sp, "tool.name", tools[t].name);
    put_str(sp, "input.value", args);
    put_str(sp, "input.mime_type", "application/json");
    put_str(sp, "output.value", out ? out : tool_output(g, r, t));
    put_str(sp, "output.mime_type", "application/json");
    after(g, r, sp);
    return sp;
}

static bool retriever(gen *g, run *r)
{
    halo_span *sp = new_span(g, r, "retrieve_docs", "RETRIEVER",
                             rng_latency(&g->r, 80, 250));
    if (!sp)
        return false;
    char a[200], b[300];
    phrase(g, a, sizeof a, 12);
    phrase(g, b, sizeof b, 30);
    put_str(sp, "input.value", r->question);
    put_str(sp, "output.value",
            fmt(g,
                "{\"documents\":[{\"id\":\"doc-%05u\",\"score\":0.8%d,"
                "\"content\":\"%s\"},{\"id\":\"doc-%05u\",\"score\":0.6%d,"
                "\"content\":\"%s\"}]}",
                (unsigned)rng_range(&g->r, 1, 20000),
                (int)rng_range(&g->r, 0, 9), a,
                (unsigned)rng_range(&g->r, 1, 20000),
                (int)rng_range(&g->r, 0, 9), b));
    after(g, r, sp);
    return true;
}

/* ---- faults ------------------------------------------------------------- */

/* The same call 3-4 times, failing; the last attempt succeeds 60% of the
 * time. Returns false when out of memory; *failed when all failed. */
static bool retry_loop(gen *g, run *r, bool *failed)
{
    static const int flaky[] = {T_WEB_SEARCH, T_SEARCH_KB, T_SHIPPING};
    int t = flaky[rng_next(&g->r) % 3];
    const char *args = tool_args(g, r, t);
    int n = (int)rng_range(&g->r, 3, 4);
    bool last_ok = rng_chance(&g->r, 0.6);
    for (int i = 0; i < n; i++) {
        bool ok = i == n - 1 && last_ok;
        halo_span *sp = tool_call(g, r, t, args, ok ? NULL : "");
        if (!sp)
            return false;
        if (!ok)
            fail_span(sp, tool_error(g, r, t));
    }
    *failed = !last_ok;
    return true;
}

static const char *silent_payload(gen *g)
{
    switch (rng_next(&g->r) % 3) {
    case 0:
        return fmt(g,
                   "{\"error\":\"rate limit exceeded for key sk-...%04x, retry "
                   "after %d s\",\"code\":429}",
                   (unsigned)(rng_next(&g->r) & 0xffff),
                   (int)rng_range(&g->r, 5, 60));
    case 1:
        return fmt(g,
                   "Error: connection refused (ECONNREFUSED 10.0.%d.%d:5432)",
                   (int)rng_range(&g->r, 0, 9), (int)rng_range(&g->r, 2, 250));
    default:
        return fmt(g,
                   "{\"results\":[],\"error\":\"Traceback (most recent call "
                   "last): KeyError: 'customer_%u'\"}",
                   (unsigned)rng_range(&g->r, 1, 99999));
    }
}

/* A tool call that goes wrong in the way f says; false when out of
 * memory. *failed: the run could not recover (the root fails). */
static bool faulty_call(gen *g, run *r, fault f, bool *failed)
{
    int t = (int)(rng_next(&g->r) % N_TOOLS);
    const char *args, *out;
    halo_span *sp;
    switch (f) {
    case F_RETRY_LOOP:
        return retry_loop(g, r, failed);
    case F_SILENT:
        return tool_call(g, r, t, tool_args(g, r, t), silent_payload(g));
    case F_DUPLICATE:
        args = tool_args(g, r, t);
        out = tool_output(g, r, t);
        return tool_call(g, r, t, args, out) && tool_call(g, r, t, args, out);
    case F_ERROR:
        sp = tool_call(g, r, t, tool_args(g, r, t), "");
        if (sp)
            fail_span(sp, tool_error(g, r, t));
        return sp != NULL;
    case F_INVALID_INPUT:
        sp = tool_call(g, r, T_CREATE_TICKET,
                       fmt(g,
                           "{\"subject\":\"%s\",\"customer_id\":\"C-%06u\","
                           "\"priority\":\"urgent\"}",
                           r->question, r->customer),
                       "");
        if (sp)
            fail_span(sp, "invalid arguments for create_ticket: priority must "
                          "be one of low, normal, high (got \"urgent\")");
        return sp != NULL;
    default: /* F_UNKNOWN_TOOL */
        sp = new_span(g, r, "cancel_subscription", "TOOL",
                      rng_latency(&g->r, 2, 5));
        if (!sp)
            return false;
        put_str(sp, "tool.name", "cancel_subscription");
        put_str(sp, "input.value",
                fmt(g, "{\"customer_id\":\"C-%06u\"}", r->customer));
        fail_span(sp, "unknown tool \"cancel_subscription\": not in the "
                      "agent's tool list");
        after(g, r, sp);
        return true;
    }
}

/* ---- a run -------------------------------------------------------------- */

static fault pick_fault(gen *g)
{
    double u = rng_unit(&g->r), acc = 0;
    for (int f = 1; f < F_COUNT_; f++) {
        acc += kinds[f].share;
        if (u < acc)
            return (fault)f;
    }
    return F_NONE;
}

/* Begin a run starting off ns into the window, with its root span. */
static halo_span *start_run(gen *g, run *r, uint64_t off)
{
    memset(r, 0, sizeof *r);
    random_id(g, r->tid, 16);
    r->t = g->o->end_ns - g->o->window_ns + off;
    r->frac = (double)off / (double)g->o->window_ns;
    bool new_model = r->frac >= 2.0 / 3;
    r->model = new_model ? "gpt-4o" : "gpt-4o-mini";
    r->price_in = new_model ? 2.50 : 0.15;
    r->price_out = new_model ? 10.00 : 0.60;
    r->prompt = rng_range(&g->r, 1200, 2000);
    r->customer = (uint32_t)rng_range(&g->r, 1, 50000);
    r->order = (uint32_t)rng_range(&g->r, 100000, 999999);
    char q[400];
    phrase(g, q, sizeof q, (int)rng_range(&g->r, 12, 40));
    r->question = fmt(g, "%s (order ORD-%06u)", q, r->order);

    halo_span *root = new_span(g, r, "agent.run", "AGENT", 0);
    if (!root)
        return NULL;
    put_str(root, "agent.name", g->o->agent);
    put_str(root, "session.id",
            fmt(g, "sess-%08" PRIx64, rng_next(&g->r) % 40000));
    put_str(root, "user.id", fmt(g, "user-%05u", r->customer % 5000));
    put_str(root, "input.value", r->question);
    r->root = root;
    r->t += (uint64_t)rng_range(&g->r, 2, 20) * NS_PER_MS;
    return root;
}

/* Many LLM turns, the prompt growing to past the context limit. */
static bool context_growth(gen *g, run *r)
{
    r->prompt = rng_range(&g->r, 10000, 14000);
    for (int i = 0; i < 9; i++) {
        const char *err =
            i == 8 ? fmt(g,
                         "context_length_exceeded: this model's maximum "
                         "context length is 128000 tokens, the request has "
                         "%" PRId64 " tokens",
                         r->prompt)
                   : NULL;
        if (!llm_call(g, r, false, err))
            return false;
        r->prompt += rng_range(&g->r, 14000, 16000) - 900;
        if (i < 8 &&
            !tool_call(g, r, T_SEARCH_KB, tool_args(g, r, T_SEARCH_KB), NULL))
            return false;
    }
    return true;
}

/* The normal shape with fault f in one of the tool slots. */
static bool plan_run(gen *g, run *r, fault f, bool *failed)
{
    int n_llm = (int)rng_range(&g->r, 3, 4);
    int n_tools = (int)rng_range(&g->r, 4, 5);
    int fault_at = f == F_NONE ? -1 : (int)rng_range(&g->r, 0, n_tools - 1);
    int tool = 0;
    for (int i = 0; i < n_llm; i++) {
        if (!llm_call(g, r, i == n_llm - 1, NULL))
            return false;
        if (i == 0 && rng_chance(&g->r, 0.6) && !retriever(g, r))
            return false;
        /* tools after LLM i: spread n_tools over the first n_llm-1 turns */
        int upto = i == n_llm - 2 ? n_tools : (n_tools * (i + 1)) / (n_llm - 1);
        for (; i < n_llm - 1 && tool < upto; tool++) {
            int t = (int)(rng_next(&g->r) % N_TOOLS);
            bool ok = tool == fault_at ? faulty_call(g, r, f, failed)
                                       : tool_call(g, r, t, tool_args(g, r, t),
                                                   NULL) != NULL;
            if (!ok)
                return false;
        }
    }
    return true;
}

static bool one_run(gen *g, uint64_t off)
{
    run r;
    halo_span *root = start_run(g, &r, off);
    if (!root)
        return false;
    fault f = pick_fault(g);
    bool failed = false;
    bool ok = f == F_CONTEXT ? (failed = true, context_growth(g, &r))
                             : plan_run(g, &r, f, &failed);
    if (!ok)
        return false;
    root->end_ns = r.t;
    char a[600];
    phrase(g, a, sizeof a, (int)rng_range(&g->r, 30, 70));
    put_str(root, "output.value", failed ? "" : fmt(g, "%s", a));
    if (failed)
        fail_span(root, "agent run failed: step did not succeed");
    g->faults[f]++;
    bool any_error = f != F_NONE && f != F_SILENT && f != F_DUPLICATE;
    g->error_traces += any_error;
    return true;
}

/* ---- batches ------------------------------------------------------------ */

static halo_status new_batch(gen *g, halo_err *err)
{
    g->a = halo_arena_new(8u << 20);
    g->n = 0;
    if (g->a)
        g->spans = halo_arena_calloc(g->a, SPANS_PER_WRITE + MAX_TRACE_SPANS,
                                     sizeof *g->spans);
    if (g->a && g->spans) {
        g->res = halo_arena_calloc(g->a, 1, sizeof *g->res);
        g->scope = halo_arena_calloc(g->a, 1, sizeof *g->scope);
    }
    halo_kv *kv = g->spans && g->res && g->scope
                      ? halo_arena_calloc(g->a, 5, sizeof *kv)
                      : NULL;
    if (!kv)
        return halo_fail(err, HALO_ENOMEM, "could not allocate a batch");
    kv[0] = (halo_kv){"service.name", {.type = HALO_VAL_STRING}};
    kv[0].value.u.s.ptr = g->o->agent;
    kv[0].value.u.s.len = strlen(g->o->agent);
    kv[1] = (halo_kv){"service.version", {.type = HALO_VAL_STRING}};
    kv[1].value.u.s.ptr = "1.4.2";
    kv[1].value.u.s.len = 5;
    kv[2] = (halo_kv){"telemetry.sdk.language", {.type = HALO_VAL_STRING}};
    kv[2].value.u.s.ptr = "python";
    kv[2].value.u.s.len = 6;
    kv[3] = (halo_kv){"deployment.environment", {.type = HALO_VAL_STRING}};
    kv[3].value.u.s.ptr = "bench";
    kv[3].value.u.s.len = 5;
    kv[4] = (halo_kv){"host.cores", {.type = HALO_VAL_INT, .u.i = 2}};
    g->res->attrs = (halo_attrs){kv, 5};
    g->res->schema_url = "";
    g->scope->name = "openinference.instrumentation.openai";
    g->scope->version = "0.1.14";
    g->scope->schema_url = "";
    return HALO_OK;
}

/* ---- the writer thread ------------------------------------------------ */

/* Building and encoding rows (prepare) runs on the main thread while this
 * thread writes the previous group (write_rows), as in the sqlite exporter:
 * one slot between them, so at most three groups exist at a time. */
typedef struct writer {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    halo_store *st;
    halo_store_rows *slot; /* prepared, waiting to be written */
    bool closing;          /* no more rows will come */
    halo_status status;    /* the first failure */
    halo_err err;
    int64_t spans, inserted, duplicates;
} writer;

static void *writer_main(void *arg)
{
    writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->slot && !w->closing)
            pthread_cond_wait(&w->cv, &w->mu);
        halo_store_rows *rows = w->slot;
        if (!rows)
            break;
        w->slot = NULL;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        halo_write_stats ws = {0};
        halo_err err = {{0}};
        halo_status st = HALO_OK;
        if (w->status == HALO_OK) /* only this thread sets it */
            st = w->st->ops->write_rows(w->st, &rows, 1, &ws, &err);
        size_t n = rows->n_spans;
        if (w->st->ops->free_rows)
            w->st->ops->free_rows(w->st, rows);
        pthread_mutex_lock(&w->mu);
        if (st != HALO_OK && w->status == HALO_OK) {
            w->status = st;
            w->err = err;
        }
        w->spans += st == HALO_OK ? (int64_t)n : 0;
        w->inserted += ws.inserted;
        w->duplicates += ws.duplicates;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Hand rows to the writer (it frees them), waiting while the slot is
 * taken. Fails (freeing rows) once a write has failed. */
static halo_status writer_put(writer *w, halo_store_rows *rows, halo_err *err)
{
    pthread_mutex_lock(&w->mu);
    while (w->slot && w->status == HALO_OK)
        pthread_cond_wait(&w->cv, &w->mu);
    halo_status st = w->status;
    if (st == HALO_OK) {
        w->slot = rows;
        pthread_cond_broadcast(&w->cv);
    } else {
        *err = w->err;
    }
    pthread_mutex_unlock(&w->mu);
    if (st != HALO_OK && w->st->ops->free_rows)
        w->st->ops->free_rows(w->st, rows);
    return st;
}

/* Wait for the last write and stop the thread; its first failure. */
static halo_status writer_close(writer *w, halo_err *err)
{
    pthread_mutex_lock(&w->mu);
    w->closing = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    if (w->status != HALO_OK)
        *err = w->err;
    return w->status;
}

/* Derive and prepare the batch being built, hand its rows to the writer
 * and free its spans. */
static halo_status flush(gen *g, writer *w, halo_err *err)
{
    halo_batch *b = halo_batch_new();
    if (!b) {
        halo_arena_free(g->a);
        g->a = NULL;
        return halo_fail(err, HALO_ENOMEM, "could not allocate a batch");
    }
    halo_status st = halo_batch_add_chunk(b, g->a, g->spans, g->n);
    g->a = NULL;
    if (st != HALO_OK)
        halo_fail(err, st, "could not add spans to a batch");
    else if (halo_agent_identity_apply(g->ai, b) != HALO_OK)
        st = halo_fail(err, HALO_ENOMEM, "could not derive span fields");
    halo_store_rows *rows = NULL;
    if (st == HALO_OK)
        st = g->st->ops->prepare(g->st, b, &rows, err);
    halo_batch_done(b, HALO_OK, "");
    if (st == HALO_OK)
        st = writer_put(w, rows, err);
    g->spans_done += st == HALO_OK ? (int64_t)g->n : 0;
    return st;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress(const gen *g, double t0, bool tty)
{
    if (!tty || g->traces_done % PROGRESS_EVERY)
        return;
    double el = now_s() - t0;
    fprintf(stderr,
            "\rhalo-gen-window: %" PRId64 "/%" PRId64 " traces, %" PRId64
            " spans, %.0f spans/s   ",
            g->traces_done, g->o->traces, g->spans_done,
            el > 0 ? (double)g->spans_done / el : 0);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Every trace's start offset in the window, ascending: traces are built
 * and written in time order, as they would arrive. NULL when out of
 * memory. */
static uint64_t *start_offsets(gen *g)
{
    uint64_t *off = malloc((size_t)g->o->traces * sizeof *off);
    if (!off)
        return NULL;
    for (int64_t i = 0; i < g->o->traces; i++)
        off[i] = rng_next(&g->r) % g->o->window_ns;
    qsort(off, (size_t)g->o->traces, sizeof *off, cmp_u64);
    return off;
}

static halo_status generate_into(gen *g, writer *w, const uint64_t *off,
                                 halo_err *err)
{
    bool tty = isatty(STDERR_FILENO);
    double t0 = now_s();
    halo_status st = new_batch(g, err);
    while (st == HALO_OK && g->traces_done < g->o->traces) {
        if (!one_run(g, off[g->traces_done]))
            return halo_fail(err, HALO_ENOMEM, "could not build a trace");
        g->traces_done++;
        bool last = g->traces_done == g->o->traces;
        if (g->n >= SPANS_PER_WRITE || last) {
            st = flush(g, w, err);
            if (st == HALO_OK && !last)
                st = new_batch(g, err);
        }
        progress(g, t0, tty);
    }
    if (tty)
        fputc('\n', stderr);
    return st;
}

/* Build every trace and write it through a writer thread. */
static halo_status generate(gen *g, halo_err *err)
{
    writer w = {.st = g->st};
    uint64_t *off = start_offsets(g);
    if (!off)
        return halo_fail(err, HALO_ENOMEM, "could not allocate start times");
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    halo_status st = HALO_OK;
    if (pthread_create(&w.th, NULL, writer_main, &w) != 0) {
        st = halo_fail(err, HALO_ENOMEM, "could not start the writer thread");
        goto cleanup;
    }
    st = generate_into(g, &w, off, err);
    halo_err werr = {{0}};
    halo_status wst = writer_close(&w, &werr);
    if (st == HALO_OK && wst != HALO_OK) {
        st = wst;
        *err = werr;
    }
    g->spans_done = w.spans;
    g->inserted = w.inserted;
    g->duplicates = w.duplicates;
cleanup:
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    free(off);
    return st;
}

/* ---- main --------------------------------------------------------------- */

static void report(const gen *g, double secs)
{
    char shown[512], s0[HALO_ISO_NS_LEN], s1[HALO_ISO_NS_LEN];
    const char *target;
    if (halo_store_spec_parse(g->o->store, &target) == HALO_STORE_POSTGRES)
        halo_pg_redact_dsn(g->o->store, shown, sizeof shown);
    else
        snprintf(shown, sizeof shown, "%s", g->o->store);
    halo_iso_from_ns(g->o->end_ns - g->o->window_ns, s0);
    halo_iso_from_ns(g->o->end_ns, s1);
    fprintf(stderr,
            "halo-gen-window: agent %s, window [%.19sZ, %.19sZ), faults:",
            g->o->agent, s0, s1);
    for (int f = 1; f < F_COUNT_; f++)
        fprintf(stderr, " %s %" PRId64, kinds[f].name, g->faults[f]);
    fprintf(stderr, "; %" PRId64 " traces with an error span\n",
            g->error_traces);
    fprintf(stderr,
            "halo-gen-window: wrote %" PRId64 " traces, %" PRId64
            " spans (%" PRId64 " new, %" PRId64 " already stored) into %s "
            "in %.1f s: %.0f spans/s\n",
            g->traces_done, g->spans_done, g->inserted, g->duplicates, shown,
            secs, secs > 0 ? (double)g->spans_done / secs : 0);
}

int main(int argc, char **argv)
{
    gen_opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    gen g = {.o = &o, .r = {o.seed * 0x2545f4914f6cdd1dull + 1}};
    halo_err err = {{0}};
    halo_agent_identity_cfg cfg = {0};
    halo_store_opts so = {.synchronous = HALO_SYNC_NORMAL,
                          .background_checkpoint = true};
    halo_status st = halo_agent_identity_new(&cfg, &g.ai, &err);
    if (st == HALO_OK)
        st = halo_store_open(o.store, &so, &g.st, &err);
    double t0 = now_s();
    if (st == HALO_OK)
        st = generate(&g, &err);
    if (st == HALO_OK)
        report(&g, now_s() - t0);
    else
        fprintf(stderr, "halo-gen-window: %s\n", err.msg);
    halo_arena_free(g.a);
    halo_store_close(g.st);
    halo_agent_identity_free(g.ai);
    return st == HALO_OK ? 0 : 1;
}
