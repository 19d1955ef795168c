/*
 * test_pg_store.c -- the PostgreSQL store behind the store.h interface
 * (storage/pg_store.c, pg_read.c) and halo_store_open's dispatch.
 *
 * The reference is the SQLite store: the same batches go to a SQLite store
 * and to a PostgreSQL store, and every read (list_traces with each filter,
 * agent_stats, get_trace as OTLP JSON and derived fields) must give the
 * same results field by field. Then: a span with every field survives the
 * trip, read-only handles refuse writes and empty databases, passwords
 * never show in messages, and the queries use the indexes and partition
 * pruning (EXPLAIN of the very SQL pg_read.c builds, pg_int.h). One real
 * PostgreSQL 15 per test binary (pg_test.h); each test in its own database.
 */
#include "fixture_spans.h"
#include "fixtures.h"
#include "harness.h"
#include "pg_test.h"

#include "core/base64.h"
#include "core/batch.h"
#include "core/json_attrs.h"
#include "receivers/otlp/otlp_codec.h"
#include "storage/pg_int.h"
#include "storage/pg_schema.h"
#include "storage/pg_write.h"
#include "storage/store.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define DAY_S 86400ull
#define DAY_NS (DAY_S * 1000000000ull)
#define HOUR_NS (3600ull * 1000000000ull)

/* ---- stores -------------------------------------------------------------- */

/* A new database `db` (an admin connection to it in *admin, may be NULL)
 * and a store on it; NULL (said on stderr) on failure. */
static halo_store *pg_store_on(const char *db, bool ro, PGconn **admin,
                               halo_err *err)
{
    char dsn[320];
    PGconn *c = pg_new_db(db);
    if (!c || !pg_dsn_for(db, dsn, sizeof dsn)) {
        PQfinish(c);
        return NULL;
    }
    halo_store_opts o = {.read_only = ro};
    halo_store *st = NULL;
    if (halo_store_open_pg(dsn, &o, &st, err) != HALO_OK)
        fprintf(stderr, "  %s\n", err->msg);
    if (admin)
        *admin = c;
    else
        PQfinish(c);
    return st;
}

/* Open an existing database `db` through its DSN. */
static halo_status reopen(const char *db, bool ro, halo_store **st,
                          halo_err *err)
{
    char dsn[320];
    halo_store_opts o = {.read_only = ro};
    if (!pg_dsn_for(db, dsn, sizeof dsn))
        return halo_fail(err, HALO_EIO, "no server");
    return halo_store_open_pg(dsn, &o, st, err);
}

static halo_store *sqlite_store(const char *name)
{
    char path[600];
    halo_err err = {{0}};
    snprintf(path, sizeof path, "%s/%s.db", halo_test_tmpdir(), name);
    unlink(path);
    halo_store_opts o = {.path = path};
    halo_store *st = NULL;
    if (halo_store_open_sqlite(&o, &st, &err) != HALO_OK)
        fprintf(stderr, "  %s\n", err.msg);
    return st;
}

/* The day partitions of the test data's days (T0's, two before, four
 * after), so spans spread over several partitions. */
static bool test_days(PGconn *c)
{
    halo_err err = {{0}};
    int64_t from = (int64_t)(T0 / 1000000000ull) - 2 * (int64_t)DAY_S;
    if (halo_pg_ensure_partitions(c, from, 6, &err) != HALO_OK) {
        fprintf(stderr, "  %s\n", err.msg);
        return false;
    }
    return true;
}

/* Write b to every store of st[0..n); the stats must agree. */
static bool write_all(halo_store *const *st, int n, const halo_batch *b)
{
    halo_write_stats first = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        halo_err err = {{0}};
        halo_write_stats ws;
        if (halo_store_write_batch(st[i], b, &ws, &err) != HALO_OK) {
            fprintf(stderr, "  %s: %s\n", st[i]->ops->name, err.msg);
            return false;
        }
        if (i == 0)
            first = ws;
        if (ws.inserted != first.inserted || ws.fixed_up != first.fixed_up ||
            ws.duplicates != first.duplicates) {
            fprintf(stderr, "  write stats differ\n");
            return false;
        }
    }
    return true;
}

/* ---- the parity data set ------------------------------------------------- */

static const char *const agents[4] = {"alpha", "beta", "gamma", NULL};

/* Trace t: a root and 1-3 children, on day t % 3, ns offsets below the
 * microsecond; agent agents[t % 4] (none for t % 4 == 3); an ERROR child
 * every fifth trace; LLM children with tokens and exact binary costs. */
static size_t trace_spans(int t, span_opts *o)
{
    uint64_t start = (uint64_t)(t % 3) * DAY_NS + (uint64_t)t * 1000000007ull;
    size_t n = 1 + 1 + (size_t)(t % 3);
    for (size_t j = 0; j < n; j++) {
        o[j] = (span_opts){.trace = (uint64_t)t,
                           .span = j + 1,
                           .parent = j ? 1 : 0,
                           .start_ns = start + j * 1000003ull,
                           .dur_ns = j ? 2000000ull * j + 11 : 9000000ull,
                           .status = t % 5 == 0 && j == 1 ? HALO_STATUS_ERROR
                                                          : HALO_STATUS_OK,
                           .agent = agents[t % 4],
                           .type = j == 1   ? "LLM"
                                   : j == 2 ? "TOOL"
                                            : NULL};
    }
    return n;
}

/* Tokens and cost on the LLM child of every trace in b. */
static void add_usage(halo_batch *b)
{
    HALO_BATCH_FOREACH(b, c, sp)
    {
        if (!sp->d.span_type || strcmp(sp->d.span_type, "LLM") != 0)
            continue;
        int t = sp->trace_id[15];
        sp->d.has_input_tokens = sp->d.has_output_tokens = true;
        sp->d.input_tokens = 10 * t;
        sp->d.output_tokens = t;
        sp->d.has_cost = true;
        sp->d.cost = 0.25 * (t % 4);
        sp->d.model = "gpt-4o";
    }
}

enum { N_TRACES = 24 };

/* The batches: (1) every trace but beta's, and beta's children with their
 * agent from the resource fallback ("svc"); (2) beta's roots, which fix
 * the children's identity; (3) edge cases: a trace across midnight, two
 * traces starting at the same nanosecond, one 500 ns later (same
 * microsecond); (4) batch 1 again (all duplicates). */
static int parity_batches(halo_batch **out)
{
    span_opts o[4 * N_TRACES];
    size_t n = 0, nr = 0;
    span_opts roots[N_TRACES];
    for (int t = 1; t <= N_TRACES; t++) {
        span_opts s[4];
        size_t k = trace_spans(t, s);
        for (size_t j = 0; j < k; j++) {
            if (t % 4 == 1 && j == 0) {
                roots[nr++] = s[0];
                continue;
            }
            if (t % 4 == 1) {
                s[j].agent = "svc";
                s[j].fb_mask = HALO_FB_AGENT_ID | HALO_FB_AGENT_NAME;
            }
            o[n++] = s[j];
        }
    }
    out[0] = batch_of(o, n);
    out[1] = batch_of(roots, nr);
    uint64_t midnight = 15 * HOUR_NS; /* T0 is 09:00 UTC */
    span_opts edge[] = {
        {.trace = 100,
         .span = 1,
         .start_ns = midnight - 1000000000ull,
         .dur_ns = 3000000000ull,
         .agent = "alpha"},
        {.trace = 100,
         .span = 2,
         .parent = 1,
         .start_ns = midnight + 1000,
         .dur_ns = 1000,
         .agent = "alpha",
         .status = HALO_STATUS_ERROR},
        {.trace = 101,
         .span = 1,
         .start_ns = 12 * HOUR_NS,
         .dur_ns = 5,
         .agent = "beta"},
        {.trace = 102,
         .span = 1,
         .start_ns = 12 * HOUR_NS,
         .dur_ns = 5,
         .agent = "beta"},
        {.trace = 103,
         .span = 1,
         .start_ns = 12 * HOUR_NS + 500,
         .dur_ns = 7,
         .agent = "beta"},
    };
    out[2] = batch_of(edge, sizeof edge / sizeof *edge);
    out[3] = batch_of(o, n);
    for (int i = 0; i < 4; i++)
        if (out[i])
            add_usage(out[i]);
    return 4;
}

/* ---- comparing results --------------------------------------------------- */

#define SAME(cond) SAME_OR_FALSE("row", i, cond)

static bool traces_eq(const halo_trace_row *a, size_t na,
                      const halo_trace_row *b, size_t nb)
{
    size_t i = 0;
    SAME(na == nb);
    for (; i < na; i++) {
        const halo_trace_row *x = &a[i], *y = &b[i];
        SAME(strcmp(x->trace_id, y->trace_id) == 0);
        SAME(str_eq(x->agent_id, y->agent_id));
        SAME(str_eq(x->agent_name, y->agent_name));
        SAME(str_eq(x->session_id, y->session_id));
        SAME(str_eq(x->user_id, y->user_id));
        SAME(str_eq(x->root_name, y->root_name));
        SAME(str_eq(x->start_time, y->start_time));
        SAME(str_eq(x->end_time, y->end_time));
        SAME(x->start_ns == y->start_ns && x->end_ns == y->end_ns);
        SAME(x->duration_ms == y->duration_ms);
        SAME(x->span_count == y->span_count);
        SAME(x->error_count == y->error_count);
        SAME(x->llm_calls == y->llm_calls && x->tool_calls == y->tool_calls);
        SAME(x->input_tokens == y->input_tokens);
        SAME(x->output_tokens == y->output_tokens);
        SAME(x->cost == y->cost);
    }
    return true;
}

static bool stats_eq(const halo_agent_stats *a, size_t na,
                     const halo_agent_stats *b, size_t nb)
{
    size_t i = 0;
    SAME(na == nb);
    for (; i < na; i++) {
        const halo_agent_stats *x = &a[i], *y = &b[i];
        SAME(str_eq(x->agent_id, y->agent_id));
        SAME(x->runs == y->runs && x->error_runs == y->error_runs);
        SAME(x->error_rate == y->error_rate);
        SAME(x->p50_ms == y->p50_ms && x->p95_ms == y->p95_ms);
        SAME(x->spans == y->spans);
        SAME(x->input_tokens == y->input_tokens);
        SAME(x->output_tokens == y->output_tokens);
        SAME(x->cost == y->cost);
        SAME(x->priced_spans == y->priced_spans);
    }
    return true;
}

/* The derived fields, which OTLP JSON does not carry, and the sharing of
 * resources and scopes between spans. */
static bool derived_eq(const halo_span *a, const halo_span *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const halo_derived *x = &a[i].d, *y = &b[i].d;
        SAME(str_eq(x->agent_id, y->agent_id));
        SAME(str_eq(x->agent_name, y->agent_name));
        SAME(str_eq(x->session_id, y->session_id));
        SAME(str_eq(x->user_id, y->user_id));
        SAME(str_eq(x->service_name, y->service_name));
        SAME(str_eq(x->span_type, y->span_type));
        SAME(str_eq(x->model, y->model) && str_eq(x->tool_name, y->tool_name));
        SAME(str_eq(x->input, y->input) && str_eq(x->output, y->output));
        SAME(x->has_input_tokens == y->has_input_tokens &&
             x->input_tokens == y->input_tokens);
        SAME(x->has_output_tokens == y->has_output_tokens &&
             x->output_tokens == y->output_tokens);
        SAME(x->has_cost == y->has_cost && x->cost == y->cost);
        SAME(x->fallback_mask == y->fallback_mask);
        for (size_t j = 0; j < n; j++) {
            SAME((a[i].resource == a[j].resource) ==
                 (b[i].resource == b[j].resource));
            SAME((a[i].scope == a[j].scope) == (b[i].scope == b[j].scope));
        }
    }
    return true;
}

/* OTLP JSON of spans[0..n) (malloc'd, NUL-terminated); NULL on failure. */
static char *otlp_json(const halo_span *spans, size_t n)
{
    halo_buf b = HALO_BUF_INIT;
    if (halo_otlp_encode_json(spans, n, &b) != HALO_OK || b.oom) {
        halo_buf_free(&b);
        return NULL;
    }
    halo_buf_putc(&b, '\0');
    return halo_buf_steal(&b);
}

static bool same_json(const char *what, const char *a, const char *b)
{
    if (a && b && strcmp(a, b) == 0)
        return true;
    fprintf(stderr, "  %s differs:\n  %s\n  %s\n", what, a ? a : "(null)",
            b ? b : "(null)");
    return false;
}

/* get_trace of trace t on both stores: same spans, same OTLP JSON. */
static bool trace_same(halo_store *sq, halo_store *pg, uint64_t t)
{
    uint8_t tid[16];
    halo_span *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    halo_err err = {{0}};
    halo_arena *arena = halo_arena_new(0);
    make_tid(tid, t);
    bool ok = sq->ops->get_trace(sq, tid, arena, &a, &na, &err) == HALO_OK &&
              pg->ops->get_trace(pg, tid, arena, &b, &nb, &err) == HALO_OK;
    if (!ok)
        fprintf(stderr, "  trace %" PRIu64 ": %s\n", t, err.msg);
    ok = ok && na == nb && na > 0 && derived_eq(a, b, na);
    char *ja = ok ? otlp_json(a, na) : NULL, *jb = ok ? otlp_json(b, nb) : NULL;
    ok = ok && same_json("OTLP JSON", ja, jb);
    free(ja);
    free(jb);
    halo_arena_free(arena);
    return ok;
}

static bool list_same(halo_store *sq, halo_store *pg,
                      const halo_trace_filter *f, size_t want)
{
    halo_trace_row *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    halo_err err = {{0}};
    halo_arena *arena = halo_arena_new(0);
    bool ok = sq->ops->list_traces(sq, f, arena, &a, &na, &err) == HALO_OK &&
              pg->ops->list_traces(pg, f, arena, &b, &nb, &err) == HALO_OK;
    if (!ok)
        fprintf(stderr, "  list: %s\n", err.msg);
    if (ok && na != want)
        fprintf(stderr, "  list: %zu rows, expected %zu\n", na, want);
    ok = ok && na == want && traces_eq(a, na, b, nb);
    halo_arena_free(arena);
    return ok;
}

static bool stats_same(halo_store *sq, halo_store *pg, uint64_t since,
                       uint64_t until, size_t want)
{
    halo_agent_stats *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    halo_err err = {{0}};
    halo_arena *arena = halo_arena_new(0);
    bool ok =
        sq->ops->agent_stats(sq, since, until, arena, &a, &na, &err) ==
            HALO_OK &&
        pg->ops->agent_stats(pg, since, until, arena, &b, &nb, &err) == HALO_OK;
    if (!ok)
        fprintf(stderr, "  stats: %s\n", err.msg);
    if (ok && na != want)
        fprintf(stderr, "  stats: %zu agents, expected %zu\n", na, want);
    ok = ok && na == want && stats_eq(a, na, b, nb);
    halo_arena_free(arena);
    return ok;
}

/* ---- parity -------------------------------------------------------------- */

TEST(reads_match_sqlite)
{
    halo_err err = {{0}};
    PGconn *admin = NULL;
    halo_store *pg = pg_store_on("pgs_parity", false, &admin, &err);
    CHECK(pg);
    CHECK_STR(pg->ops->name, "postgres");
    CHECK(test_days(admin));
    halo_store *sq = sqlite_store("parity");
    CHECK(sq);
    halo_store *both[2] = {sq, pg};
    halo_batch *b[4];
    CHECK_INT(parity_batches(b), 4);
    for (int i = 0; i < 4; i++) {
        CHECK(b[i]);
        CHECK(write_all(both, 2, b[i]));
    }
    /* the data really is spread over several day partitions */
    CHECK(pg_q_int(admin, "SELECT count(DISTINCT tableoid) FROM span_rows") >=
          3);
    CHECK_INT(pg_q_int(admin, "SELECT count(*) FROM spans_default"), 0);

    size_t all = N_TRACES + 4;
    halo_trace_filter f = {0};
    CHECK(list_same(sq, pg, &f, all));
    f.limit = 5;
    CHECK(list_same(sq, pg, &f, 5));
    f = (halo_trace_filter){.agent_id = "alpha"};
    CHECK(list_same(sq, pg, &f, N_TRACES / 4 + 1));
    f.limit = 3;
    CHECK(list_same(sq, pg, &f, 3));
    f = (halo_trace_filter){.agent_id = "beta"}; /* fixed from the roots */
    CHECK(list_same(sq, pg, &f, N_TRACES / 4 + 3));
    f = (halo_trace_filter){.agent_id = "nobody"};
    CHECK(list_same(sq, pg, &f, 0));
    f = (halo_trace_filter){.errors_only = true};
    CHECK(list_same(sq, pg, &f, N_TRACES / 5 + 1));
    /* day 1 only: traces t % 3 == 1 */
    f = (halo_trace_filter){.since_ns = T0 + DAY_NS - HOUR_NS,
                            .until_ns = T0 + 2 * DAY_NS - HOUR_NS};
    CHECK(list_same(sq, pg, &f, N_TRACES / 3));
    /* a bound inside a microsecond: 103 starts 500 ns after 101 and 102 */
    f = (halo_trace_filter){.since_ns = T0 + 12 * HOUR_NS + 1,
                            .until_ns = T0 + 12 * HOUR_NS + 501};
    CHECK(list_same(sq, pg, &f, 1));
    f = (halo_trace_filter){.since_ns = T0 + 12 * HOUR_NS,
                            .until_ns = T0 + 12 * HOUR_NS + 500};
    CHECK(list_same(sq, pg, &f, 2));
    f = (halo_trace_filter){
        .agent_id = "alpha", .errors_only = true, .since_ns = T0, .limit = 2};
    CHECK(list_same(sq, pg, &f, 2));

    /* agents: alpha, beta, gamma and the agent-less traces */
    CHECK(stats_same(sq, pg, 0, 0, 4));
    CHECK(stats_same(sq, pg, T0 + DAY_NS - HOUR_NS, T0 + 2 * DAY_NS, 4));
    CHECK(stats_same(sq, pg, T0 + 12 * HOUR_NS, T0 + 12 * HOUR_NS + 1, 1));
    CHECK(stats_same(sq, pg, T0 + 100 * DAY_NS, 0, 0));

    for (uint64_t t = 1; t <= N_TRACES; t++)
        CHECK(trace_same(sq, pg, t));
    for (uint64_t t = 100; t <= 103; t++)
        CHECK(trace_same(sq, pg, t));
    /* unknown trace: the same answer */
    uint8_t tid[16];
    halo_span *spans;
    size_t n;
    halo_arena *arena = halo_arena_new(0);
    make_tid(tid, 999);
    CHECK_INT(pg->ops->get_trace(pg, tid, arena, &spans, &n, &err),
              HALO_ENOTFOUND);
    CHECK_STR(err.msg, "trace abababababababab00000000000003e7 not found");
    /* spans without a traces row are still found (every partition) */
    CHECK(pg_q_ok(admin, "DELETE FROM traces WHERE trace_id LIKE '%64'"));
    make_tid(tid, 100);
    CHECK_INT(pg->ops->get_trace(pg, tid, arena, &spans, &n, &err), HALO_OK);
    CHECK_INT(n, 2);
    halo_arena_free(arena);
    for (int i = 0; i < 4; i++)
        halo_batch_done(b[i], HALO_OK, "");
    halo_store_close(sq);
    halo_store_close(pg);
    PQfinish(admin);
}

/* Many agents (the agent table grows), durations that tie and costs that
 * are not exact in binary: both stores give the same bits. */
TEST(stats_of_many_agents_match_sqlite)
{
    static char names[40][16];
    span_opts o[400];
    for (int t = 0; t < 400; t++) {
        snprintf(names[t % 40], sizeof names[0], "agent-%02d", t % 40);
        o[t] = (span_opts){.trace = (uint64_t)t + 1,
                           .span = 1,
                           .start_ns = (uint64_t)t * 1000,
                           .dur_ms = (uint64_t)(t % 3),
                           .agent = t % 40 == 39 ? NULL : names[t % 40],
                           .status = t % 6 ? 0 : HALO_STATUS_ERROR};
    }
    halo_err err = {{0}};
    halo_store *pg = pg_store_on("pgs_agents", false, NULL, &err);
    CHECK(pg);
    halo_store *sq = sqlite_store("agents");
    CHECK(sq);
    halo_batch *b = batch_of(o, 400);
    CHECK(b);
    HALO_BATCH_FOREACH(b, c, sp)
    {
        sp->d.has_cost = true;
        sp->d.cost = 0.1 * (double)((sp - c->spans) % 7);
    }
    halo_store *both[2] = {sq, pg};
    CHECK(write_all(both, 2, b));
    CHECK(stats_same(sq, pg, 0, 0, 40));
    CHECK(stats_same(sq, pg, T0 + 100000, T0 + 300000, 40));
    halo_arena *arena = halo_arena_new(0);
    halo_agent_stats *st;
    size_t n;
    CHECK_INT(pg->ops->agent_stats(pg, 0, 0, arena, &st, &n, &err), HALO_OK);
    CHECK(!st[0].agent_id);
    CHECK_STR(st[1].agent_id, "agent-00");
    CHECK_STR(st[39].agent_id, "agent-38");
    CHECK_INT(st[1].runs, 10);
    halo_arena_free(arena);
    halo_batch_done(b, HALO_OK, "");
    halo_store_close(sq);
    halo_store_close(pg);
}

/* ---- fidelity ------------------------------------------------------------ */

TEST(every_field_round_trips)
{
    halo_err err = {{0}};
    halo_store *pg = pg_store_on("pgs_rich", false, NULL, &err);
    CHECK(pg);
    halo_store *sq = sqlite_store("rich");
    CHECK(sq);
    static const uint64_t start[3] = {123456789, 200000999, 500000001};
    static const uint64_t dur[3] = {1000000001, 300000000, 120000000};
    halo_span *in;
    halo_batch *b = rich_batch_at(start, dur, false, &in);
    in[1].status_message = "slow but fine";
    halo_store *both[2] = {sq, pg};
    CHECK(write_all(both, 2, b));

    halo_arena *arena = halo_arena_new(0);
    uint8_t tid[16];
    halo_span *out = NULL, *out_sq = NULL;
    size_t n = 0, n_sq = 0;
    make_tid(tid, 1);
    CHECK_INT(pg->ops->get_trace(pg, tid, arena, &out, &n, &err), HALO_OK);
    CHECK_INT(sq->ops->get_trace(sq, tid, arena, &out_sq, &n_sq, &err),
              HALO_OK);
    CHECK_INT(n, 3);
    CHECK(out[0].resource == out[1].resource &&
          out[0].resource != out[2].resource);
    CHECK(out[0].scope == out[2].scope);
    CHECK(derived_eq(in, out, 3));
    CHECK(derived_eq(out_sq, out, 3));
    CHECK_INT(out[0].start_ns, T0 + 123456789);

    /* exactly the input: bytes come back as bytes (value_types) */
    char *want = otlp_json(in, 3), *got = otlp_json(out, n),
         *got_sq = otlp_json(out_sq, n_sq);
    CHECK(want && strstr(want, "\"bytesValue\":\"AAEC/v8=\""));
    CHECK(strstr(want, "\"doubleValue\":1e+300"));
    bool ok =
        same_json("postgres", want, got) && same_json("sqlite", want, got_sq);
    free(want);
    free(got);
    free(got_sq);
    CHECK(ok);
    halo_arena_free(arena);
    halo_batch_done(b, HALO_OK, "");
    halo_store_close(sq);
    halo_store_close(pg);
}

/* Input and output stored once (schema migration 5), as in SQLite: the
 * store cuts the same attributes, the spans view gives each span's
 * attributes back as encoded (to the byte but for \f and \b), and the
 * spans read back as SQLite's do; the rows hold fewer bytes. */
TEST(input_output_stored_once)
{
    halo_err err = {{0}};
    PGconn *admin = NULL;
    halo_store *pg = pg_store_on("pgs_io", false, &admin, &err);
    CHECK(pg);
    halo_store *sq = sqlite_store("io");
    CHECK(sq);
    halo_batch *b = io_batch();
    CHECK(b);
    halo_store *both[2] = {sq, pg};
    CHECK(write_all(both, 2, b));
    const halo_span *sp = b->head->spans;
    for (int i = 0; i < IO_SPANS; i++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT (input_at IS NOT NULL)::int * 10 +"
                 " (output_at IS NOT NULL)::int FROM span_rows"
                 " WHERE span_id = '%016x'",
                 i + 1);
        CHECK_INT(pg_q_int(admin, sql),
                  (io_cut[i][0] - '0') * 10 + (io_cut[i][1] - '0'));
        if (i == IO_SPAN_FF)
            continue;
        halo_buf want = HALO_BUF_INIT;
        halo_json_encode_attrs(&want, &sp[i].attrs);
        char *lit = PQescapeLiteral(admin, want.data, want.len);
        CHECK(lit);
        halo_buf q = HALO_BUF_INIT;
        halo_buf_printf(&q,
                        "SELECT (attributes::text = %s)::int FROM spans"
                        " WHERE span_id = '%016x'",
                        lit, i + 1);
        halo_buf_putc(&q, '\0');
        CHECK_INT(pg_q_int(admin, q.data), 1);
        PQfreemem(lit);
        halo_buf_free(&q);
        halo_buf_free(&want);
    }
    CHECK(pg_q_int(admin, "SELECT sum(octet_length(attributes::text)) FROM"
                          " span_rows") <
          pg_q_int(admin, "SELECT sum(octet_length(attributes::text)) FROM"
                          " spans") -
              4 * (long long)strlen(IO_OUT));
    /* the spans read back as SQLite's (not trace_same: the input that is
     * not UTF-8 is U+FFFD in PostgreSQL's text column, its bytes in
     * SQLite's; the attributes are U+FFFD in both) */
    halo_arena *arena = halo_arena_new(0);
    uint8_t tid[16];
    halo_span *got[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    make_tid(tid, 1);
    for (int i = 0; i < 2; i++)
        CHECK_INT(
            both[i]->ops->get_trace(both[i], tid, arena, &got[i], &n[i], &err),
            HALO_OK);
    CHECK_INT(n[1], IO_SPANS);
    char *json[2] = {otlp_json(got[0], n[0]), otlp_json(got[1], n[1])};
    bool ok = same_json("postgres", json[0], json[1]);
    free(json[0]);
    free(json[1]);
    CHECK(ok);
    halo_arena_free(arena);
    halo_batch_done(b, HALO_OK, "");
    halo_store_close(sq);
    halo_store_close(pg);
    PQfinish(admin);
    /* a client encoding of the environment (or the DSN) cannot move the
     * positions: halo's connections are UTF8 whatever it says */
    setenv("PGCLIENTENCODING", "LATIN1", 1);
    halo_store *latin = pg_store_on("pgs_io_latin", false, NULL, &err);
    unsetenv("PGCLIENTENCODING");
    CHECK(latin);
    CHECK_STR(PQparameterStatus(((pg_store *)latin)->conn, "client_encoding"),
              "UTF8");
    CHECK(((pg_store *)latin)->utf8);
    halo_store_close(latin);
}

TEST(reports_upsert)
{
    halo_err err = {{0}};
    PGconn *admin = NULL;
    halo_store *pg = pg_store_on("pgs_reports", false, &admin, &err);
    CHECK(pg);
    halo_report_row r = {.id = "r1",
                         .agent_id = "alpha",
                         .schedule = "hourly",
                         .window_start = "2026-11-16T09:00:00Z",
                         .window_end = "2026-11-16T10:00:00Z",
                         .generated_at = "2026-11-16T10:05:00.123456789Z",
                         .mode = "detectors",
                         .json = "{\"schema\":\"halo.report/v1\",\"n\":1}",
                         .markdown = "# report"};
    CHECK_INT(pg->ops->put_report(pg, &r, &err), HALO_OK);
    r.json = "{\"schema\":\"halo.report/v1\",\"n\":2}";
    r.model = "m";
    CHECK_INT(pg->ops->put_report(pg, &r, &err), HALO_OK);
    CHECK_INT(pg_q_int(admin, "SELECT count(*) FROM reports"), 1);
    CHECK_INT(pg_q_int(admin, "SELECT (json->>'n')::int FROM reports"
                              " WHERE id = 'r1' AND model = 'm'"),
              2);
    r.json = "{not json";
    CHECK_INT(pg->ops->put_report(pg, &r, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "could not store a report in database "
                            "\"pgs_reports\"");
    r.id = "";
    CHECK_INT(pg->ops->put_report(pg, &r, &err), HALO_EINVAL);
    halo_store_close(pg);
    PQfinish(admin);
}

/* ---- read-only ----------------------------------------------------------- */

TEST(read_only_needs_a_schema)
{
    halo_err err = {{0}};
    PGconn *c = pg_new_db("pgs_empty");
    CHECK(c);
    halo_store *st = NULL;
    CHECK_INT(reopen("pgs_empty", true, &st, &err), HALO_ENOTFOUND);
    CHECK(!st);
    CHECK_STR(err.msg, "database \"pgs_empty\" has no halo schema: no halo "
                       "postgres exporter has written to it yet");
    /* nothing was created */
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM pg_tables WHERE schemaname"
                          " = 'public'"),
              0);
    /* a schema from a newer halo: refused by readers and writers */
    CHECK(pg_q_ok(c, "CREATE TABLE schema_migrations (version integer"
                     " PRIMARY KEY, name text, applied_at timestamptz)"));
    CHECK(pg_q_ok(c, "INSERT INTO schema_migrations VALUES (999, 'x', now())"));
    CHECK_INT(reopen("pgs_empty", true, &st, &err), HALO_EUNSUPPORTED);
    CHECK_CONTAINS(err.msg, "schema version 999, newer than this halo");
    CHECK_INT(reopen("pgs_empty", false, &st, &err), HALO_EUNSUPPORTED);
    PQfinish(c);
}

TEST(read_only_refuses_writes)
{
    halo_err err = {{0}};
    PGconn *admin = NULL;
    halo_store *w = pg_store_on("pgs_ro", false, &admin, &err);
    CHECK(w);
    span_opts o = {.trace = 1, .span = 1, .dur_ns = 5, .agent = "a"};
    span_opts o2 = {.trace = 2, .span = 1, .dur_ns = 5, .agent = "a"};
    halo_batch *b = batch_of(&o, 1), *b2 = batch_of(&o2, 1);
    CHECK(b && b2);
    CHECK_INT(halo_store_write_batch(w, b, NULL, &err), HALO_OK);
    halo_store_close(w);

    halo_store *ro = NULL;
    CHECK_INT(reopen("pgs_ro", true, &ro, &err), HALO_OK);
    CHECK_INT(halo_store_write_batch(ro, b2, NULL, &err), HALO_EINVAL);
    CHECK_STR(err.msg, "cannot write: database \"pgs_ro\" is open read-only");
    halo_store_rows *rows = NULL;
    CHECK_INT(ro->ops->prepare(ro, b2, &rows, &err), HALO_OK);
    CHECK_INT(ro->ops->write_rows(ro, &rows, 1, NULL, &err), HALO_EINVAL);
    ro->ops->free_rows(ro, rows);
    int64_t deleted = -1;
    bool more = true;
    CHECK_INT(
        ro->ops->retention_step(ro, T0 + DAY_NS, 100, &deleted, &more, &err),
        HALO_EINVAL);
    halo_report_row r = {.id = "x", .json = "{}"};
    CHECK_INT(ro->ops->put_report(ro, &r, &err), HALO_EINVAL);
    /* the session itself is read-only: a write past the vtable fails */
    PGconn *c = ((pg_store *)ro)->conn;
    CHECK(halo_pg_write_batch(c, b2, &err) != HALO_OK);
    CHECK_CONTAINS(err.msg, "read-only transaction");
    CHECK_INT(PQtransactionStatus(c), PQTRANS_IDLE);
    /* nothing stored; reads work */
    CHECK_INT(pg_q_int(admin, "SELECT count(*) FROM spans"), 1);
    CHECK_INT(pg_q_int(admin, "SELECT count(*) FROM traces"), 1);
    CHECK_INT(pg_q_int(admin, "SELECT count(*) FROM reports"), 0);
    halo_arena *arena = halo_arena_new(0);
    halo_trace_filter f = {0};
    halo_trace_row *tr;
    size_t n;
    CHECK_INT(ro->ops->list_traces(ro, &f, arena, &tr, &n, &err), HALO_OK);
    CHECK_INT(n, 1);
    CHECK_STR(tr[0].agent_id, "a");
    halo_arena_free(arena);
    halo_batch_done(b, HALO_OK, "");
    halo_batch_done(b2, HALO_OK, "");
    halo_store_close(ro);
    PQfinish(admin);
}

/* A lost connection fails the operation that meets it (retryable); the
 * next one reconnects. */
TEST(reconnects_after_a_lost_connection)
{
    halo_err err = {{0}};
    PGconn *admin = NULL;
    halo_store *st = pg_store_on("pgs_reset", true, &admin, &err);
    CHECK(!st); /* empty: no schema yet */
    halo_store *w = NULL;
    CHECK_INT(reopen("pgs_reset", false, &w, &err), HALO_OK);
    CHECK_INT(reopen("pgs_reset", true, &st, &err), HALO_OK);
    int pid = PQbackendPID(((pg_store *)st)->conn);
    char sql[96];
    /* waits (at most 5 s) until the backend is gone */
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d, 5000)", pid);
    CHECK(pg_q_ok(admin, sql));
    halo_arena *arena = halo_arena_new(0);
    halo_trace_filter f = {0};
    halo_trace_row *tr;
    size_t n;
    CHECK_INT(st->ops->list_traces(st, &f, arena, &tr, &n, &err), HALO_ERETRY);
    CHECK_INT(st->ops->list_traces(st, &f, arena, &tr, &n, &err), HALO_OK);
    CHECK(PQbackendPID(((pg_store *)st)->conn) != pid);
    /* still read-only after the reconnect */
    halo_report_row r = {.id = "x", .json = "{}"};
    PGresult *res =
        PQexec(((pg_store *)st)->conn, "INSERT INTO reports (id) VALUES ('x')");
    CHECK(PQresultStatus(res) == PGRES_FATAL_ERROR);
    PQclear(res);
    CHECK_INT(w->ops->put_report(w, &r, &err), HALO_OK);
    halo_arena_free(arena);
    halo_store_close(st);
    halo_store_close(w);
    PQfinish(admin);
}

/* ---- DSNs and specs ------------------------------------------------------ */

TEST(redact_dsn_masks_passwords)
{
    static const char *const cases[][2] = {
        {"postgresql://halo:s3cret@db.example:5432/halo?sslmode=require",
         "postgresql://halo:***@db.example:5432/halo?sslmode=require"},
        {"postgres://u:s3cret%40x@h/db", "postgres://u:***@h/db"},
        {"postgresql://u:s3c/ret?x@h/db", "postgresql://u:***@h/db"},
        {"postgresql://h/db?user=u&password=s3cret&sslmode=disable",
         "postgresql://h/db?user=u&password=***&sslmode=disable"},
        {"postgresql://h/db?pass%77ord=s3cret",
         "postgresql://h/db?pass%77ord=***"},
        {"host=db port=5432 password=s3cret dbname=halo",
         "host=db port=5432 password=*** dbname=halo"},
        {"host=db password = 's3 cr\\'et' user=u",
         "host=db password = *** user=u"},
        {"postgres:host=db password=s3cret", "postgres:host=db password=***"},
        {"sslpassword='s3cret' host=x", "sslpassword=*** host=x"},
        {"host=x password 's3cret'", "host=x password ***"},
        {"mysql://root:s3cret@h/db", "mysql://root:***@h/db"},
        {"postgresql://u@h/db", "postgresql://u@h/db"},
        {"postgresql://h:5432/db", "postgresql://h:5432/db"},
        {"host=db user=u", "host=db user=u"},
        {"sqlite:/tmp/x.db", "sqlite:/tmp/x.db"},
        {"", ""},
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK_STR(halo_pg_redact_dsn(cases[i][0], out, sizeof out),
                  cases[i][1]);
        CHECK(!strstr(out, "s3") && !strstr(out, "cret"));
    }
    /* truncated output never ends inside a secret */
    for (size_t cap = 1; cap < 40; cap++) {
        halo_pg_redact_dsn("postgresql://halo:s3cret@h/db", out, cap);
        CHECK(strlen(out) < cap && !strstr(out, "s3"));
    }
    CHECK_STR(halo_pg_redact_dsn(NULL, out, sizeof out), "");
}

/* host and port of the test server, for key=value specs. */
static bool server_addr(char *host, size_t hcap, char *port, size_t pcap)
{
    PGconn *c = pg_connect_db("postgres");
    if (!c)
        return false;
    snprintf(host, hcap, "%s", PQhost(c));
    snprintf(port, pcap, "%s", PQport(c));
    PQfinish(c);
    return true;
}

TEST(store_open_dispatch)
{
    halo_err err = {{0}};
    PGconn *c = pg_new_db("pgs_spec");
    CHECK(c);
    char dsn[320], spec[600], host[128], port[16];
    CHECK(pg_dsn_for("pgs_spec", dsn, sizeof dsn));
    CHECK(server_addr(host, sizeof host, port, sizeof port));
    halo_store *st = NULL;
    /* postgresql:// */
    CHECK_INT(halo_store_open(dsn, NULL, &st, &err), HALO_OK);
    CHECK_STR(st->ops->name, "postgres");
    halo_store_close(st);
    /* postgres:// */
    CHECK(strncmp(dsn, "postgresql://", 13) == 0);
    snprintf(spec, sizeof spec, "postgres://%s", dsn + 13);
    halo_store_opts ro = {.read_only = true};
    CHECK_INT(halo_store_open(spec, &ro, &st, &err), HALO_OK);
    CHECK_STR(st->ops->name, "postgres");
    halo_store_close(st);
    /* postgres:KEY=VALUE */
    snprintf(spec, sizeof spec,
             "postgres:host=%s port=%s user=postgres dbname=pgs_spec", host,
             port);
    CHECK_INT(halo_store_open(spec, &ro, &st, &err), HALO_OK);
    CHECK_STR(st->ops->name, "postgres");
    halo_store_close(st);
    /* sqlite:PATH, opts->path ignored */
    snprintf(spec, sizeof spec, "sqlite:%s/spec.db", halo_test_tmpdir());
    halo_store_opts o = {.path = "/nonexistent/ignored.db"};
    CHECK_INT(halo_store_open(spec, &o, &st, &err), HALO_OK);
    CHECK_STR(st->ops->name, "sqlite");
    halo_store_close(st);
    CHECK(access(spec + 7, F_OK) == 0);
    CHECK_INT(halo_store_open("sqlite:", NULL, &st, &err), HALO_EINVAL);
    /* bad specs: the password never shows */
    CHECK_INT(halo_store_open("mysql://root:hunter2@db/x", NULL, &st, &err),
              HALO_EINVAL);
    CHECK(!st);
    CHECK_STR(err.msg, "invalid store \"mysql://root:***@db/x\": expected "
                       "postgresql://..., postgres:KEY=VALUE... or "
                       "sqlite:PATH");
    CHECK_INT(halo_store_open("halo.db", NULL, &st, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "invalid store \"halo.db\"");
    CHECK_INT(halo_store_open(NULL, NULL, &st, &err), HALO_EINVAL);
    /* a refused connection: retryable, no password */
    CHECK_INT(halo_store_open("postgresql://u:hunter2@127.0.0.1:1/x"
                              "?connect_timeout=5",
                              NULL, &st, &err),
              HALO_ERETRY);
    CHECK(!strstr(err.msg, "hunter2"));
    CHECK_INT(halo_store_open("postgres:host=127.0.0.1 port=1 password="
                              "hunter2 connect_timeout=5",
                              &ro, &st, &err),
              HALO_ERETRY);
    CHECK(!strstr(err.msg, "hunter2"));
    PQfinish(c);
}

/* ---- query plans --------------------------------------------------------- */

/* EXPLAIN of q (text, one line per row, malloc'd). */
static char *explain(PGconn *c, const pgr_query *q)
{
    char sql[1100];
    snprintf(sql, sizeof sql, "EXPLAIN %s", q->sql);
    PGresult *r = PQexecParams(c, sql, q->n, NULL, q->params, NULL, NULL, 0);
    halo_buf b = HALO_BUF_INIT;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "  %s: %s", sql, PQerrorMessage(c));
    for (int i = 0; i < PQntuples(r); i++)
        halo_buf_printf(&b, "%s\n", PQgetvalue(r, i, 0));
    PQclear(r);
    halo_buf_putc(&b, '\0');
    return halo_buf_steal(&b);
}

/* The partitions of spans a plan reads: its scan lines on spans_*
 * (a bitmap scan counted once). */
static int scans_of(const char *plan)
{
    int n = 0;
    for (const char *p = plan; *p;) {
        size_t len = strcspn(p, "\n");
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        if (strstr(line, " on spans_") && !strstr(line, "Bitmap Index Scan"))
            n++;
        p += len + (p[len] == '\n');
    }
    return n;
}

/* n traces of 2 spans each, over 5 days, 4 agents, in batches. */
static bool write_many(halo_store *st, int n)
{
    enum { PER = 500 };
    span_opts o[2 * PER];
    for (int first = 0; first < n; first += PER) {
        int k = first + PER <= n ? PER : n - first;
        for (int i = 0; i < k; i++) {
            int t = first + i + 1;
            uint64_t start =
                (uint64_t)(t % 5) * DAY_NS + (uint64_t)t * 9000000000ull;
            o[2 * i] = (span_opts){.trace = (uint64_t)t,
                                   .span = 1,
                                   .start_ns = start,
                                   .dur_ns = 1000000,
                                   .agent = agents[t % 3],
                                   .status = t % 7 ? 0 : HALO_STATUS_ERROR};
            o[2 * i + 1] = (span_opts){.trace = (uint64_t)t,
                                       .span = 2,
                                       .parent = 1,
                                       .start_ns = start + 10,
                                       .dur_ns = 10,
                                       .agent = agents[t % 3],
                                       .type = "LLM"};
        }
        halo_batch *b = batch_of(o, 2 * (size_t)k);
        halo_err err = {{0}};
        halo_status s =
            b ? halo_store_write_batch(st, b, NULL, &err) : HALO_ENOMEM;
        if (b)
            halo_batch_done(b, HALO_OK, "");
        if (s != HALO_OK) {
            fprintf(stderr, "  %s\n", err.msg);
            return false;
        }
    }
    return true;
}

TEST(queries_use_indexes_and_pruning)
{
    halo_err err = {{0}};
    PGconn *c = NULL;
    halo_store *st = pg_store_on("pgs_plans", false, &c, &err);
    CHECK(st);
    CHECK(test_days(c));
    CHECK(write_many(st, 4000));
    CHECK(pg_q_ok(c, "ANALYZE"));

    pgr_query q;
    halo_trace_filter f = {.agent_id = "beta", .limit = 50};
    pgr_list_query(&f, &q);
    char *plan = explain(c, &q);
    fprintf(stderr, "  list, agent filter:\n%s", plan);
    CHECK(!strstr(plan, "Seq Scan on traces"));
    CHECK(strstr(plan, "traces_agent_start"));
    free(plan);
    f = (halo_trace_filter){.limit = 50};
    pgr_list_query(&f, &q);
    plan = explain(c, &q);
    CHECK(!strstr(plan, "Seq Scan on traces"));
    free(plan);
    f = (halo_trace_filter){.agent_id = "beta",
                            .since_ns = T0 + DAY_NS,
                            .until_ns = T0 + DAY_NS + 4 * HOUR_NS};
    pgr_list_query(&f, &q);
    plan = explain(c, &q);
    CHECK(!strstr(plan, "Seq Scan on traces"));
    free(plan);

    /* get_trace: only the partitions of the trace's days */
    long long parts = pg_q_int(c, "SELECT count(*) FROM pg_inherits"
                                  " WHERE inhparent = 'span_rows'::regclass");
    CHECK(parts >= 8);
    uint8_t tid[16];
    char hex[33];
    make_tid(tid, 1234);
    halo_hex_encode(tid, 16, hex);
    const char *params[1] = {hex};
    PGresult *r =
        PQexecParams(c, PGR_SQL_TRACE_RANGE, 1, NULL, params, NULL, NULL, 0);
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1);
    uint64_t t0 = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    uint64_t t1 = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    pgr_spans_query(hex, true, t0, t1, &q);
    plan = explain(c, &q);
    fprintf(stderr, "  get_trace (%lld partitions):\n%s", parts, plan);
    int scanned = scans_of(plan);
    CHECK(scanned >= 1 && scanned < parts);
    CHECK_INT(scanned, 1);
    free(plan);
    pgr_spans_query(hex, false, 0, 0, &q);
    plan = explain(c, &q);
    CHECK_INT(scans_of(plan), parts);
    free(plan);
    /* and the store answers through it */
    halo_arena *arena = halo_arena_new(0);
    halo_span *spans;
    size_t n;
    CHECK_INT(st->ops->get_trace(st, tid, arena, &spans, &n, &err), HALO_OK);
    CHECK_INT(n, 2);
    halo_arena_free(arena);

    pgr_stats_query(T0 + DAY_NS, T0 + DAY_NS + HOUR_NS, &q);
    plan = explain(c, &q);
    fprintf(stderr, "  agent_stats over 1h:\n%s", plan);
    CHECK(!strstr(plan, "Seq Scan on traces"));
    free(plan);
    halo_store_close(st);
    PQfinish(c);
}

/* Retention through the vtable: whole days, *more false. */
TEST(retention_drops_days)
{
    halo_err err = {{0}};
    PGconn *c = NULL;
    halo_store *st = pg_store_on("pgs_retention", false, &c, &err);
    CHECK(st);
    CHECK(test_days(c));
    span_opts o[3] = {
        {.trace = 1, .span = 1, .dur_ns = 5, .agent = "a"},
        {.trace = 2, .span = 1, .start_ns = DAY_NS, .dur_ns = 5, .agent = "a"},
        {.trace = 3,
         .span = 1,
         .start_ns = 2 * DAY_NS,
         .dur_ns = 5,
         .agent = "a"},
    };
    halo_batch *b = batch_of(o, 3);
    CHECK(b);
    CHECK_INT(halo_store_write_batch(st, b, NULL, &err), HALO_OK);
    long long before = pg_q_int(c, "SELECT count(*) FROM pg_inherits"
                                   " WHERE inhparent = 'span_rows'::regclass");
    int64_t deleted = -1;
    bool more = true;
    /* a cutoff in the middle of the second day: the first day goes */
    CHECK_INT(st->ops->retention_step(st, T0 + DAY_NS + HOUR_NS, 10, &deleted,
                                      &more, &err),
              HALO_OK);
    CHECK(!more);
    CHECK(deleted >= 1);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM pg_inherits"
                          " WHERE inhparent = 'span_rows'::regclass"),
              before - deleted);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM traces"), 2);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM spans"), 2);
    halo_batch_done(b, HALO_OK, "");
    halo_store_close(st);
    PQfinish(c);
}
