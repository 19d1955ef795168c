/*
 * test_analyzer_store.c -- the analyzer's side of the store (store.h):
 * scan_window, claim_run / finish_run, list_reports / get_report, on
 * SQLite and on a throwaway PostgreSQL (pg_test.h).
 *
 * Every check is written once, as a function of a `backend` (how to open a
 * fresh store, a second handle on it, run SQL beside it), and each TEST
 * runs it on both; the scans of both backends are also compared as text
 * digests, so SQLite and PostgreSQL give the same results.
 *
 * HALO_SCAN_BENCH=N (spans, e.g. 200000) adds a timing print of the scan
 * over N spans in each backend (never asserted: this machine is shared).
 */
#include "fixture_spans.h"
#include "fixtures.h"
#include "harness.h"
#include "pg_test.h"

#include "core/buf.h"
#include "core/clock.h"
#include "storage/pg_int.h"
#include "storage/pg_schema.h"
#include "storage/store.h"

#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define SEC 1000000000ull
#define DAY_NS (86400ull * SEC)

/* In a function returning bool: say which check failed, return false. */
#define EXPECT(cond)                                                           \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "  %s:%d: [%s] EXPECT(%s) failed\n", __FILE__,     \
                    __LINE__, b->name, #cond);                                 \
            return false;                                                      \
        }                                                                      \
    } while (0)

#define EXPECT_INT(a, want)                                                    \
    do {                                                                       \
        long long a_ = (long long)(a), w_ = (long long)(want);                 \
        if (a_ != w_) {                                                        \
            fprintf(stderr, "  %s:%d: [%s] %s == %lld, expected %lld (%s)\n",  \
                    __FILE__, __LINE__, b->name, #a, a_, w_, err.msg);         \
            return false;                                                      \
        }                                                                      \
    } while (0)

/* ---- backends ------------------------------------------------------------ */

typedef struct backend {
    const char *name;
    /* A store on a fresh database `db` (read-only: on the existing one). */
    halo_store *(*open)(const char *db, bool fresh, bool ro);
    /* sql's single integer result on db, beside the store; -1 on failure. */
    long long (*q_int)(const char *db, const char *sql);
} backend;

static const char *sq_path(const char *db, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s.db", halo_test_tmpdir(), db);
    return buf;
}

static halo_store *sq_open(const char *db, bool fresh, bool ro)
{
    char path[600];
    halo_err err = {{0}};
    sq_path(db, path, sizeof path);
    if (fresh) {
        unlink(path);
        char wal[640];
        snprintf(wal, sizeof wal, "%s-wal", path);
        unlink(wal);
        snprintf(wal, sizeof wal, "%s-shm", path);
        unlink(wal);
    }
    halo_store_opts o = {
        .path = path, .read_only = ro, .synchronous = HALO_SYNC_NORMAL};
    halo_store *st = NULL;
    if (halo_store_open_sqlite(&o, &st, &err) != HALO_OK)
        fprintf(stderr, "  sqlite: %s\n", err.msg);
    return st;
}

static long long sq_q_int(const char *db, const char *sql)
{
    char path[600];
    sqlite3 *c = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_open(sq_path(db, path, sizeof path), &c) == SQLITE_OK &&
        sqlite3_prepare_v2(c, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else
        fprintf(stderr, "  sqlite: %s: %s\n", sql, sqlite3_errmsg(c));
    sqlite3_finalize(st);
    sqlite3_close(c);
    return v;
}

static halo_store *pgb_open(const char *db, bool fresh, bool ro)
{
    char dsn[320];
    halo_err err = {{0}};
    if (fresh) {
        PGconn *c = pg_new_db(db);
        if (!c)
            return NULL;
        PQfinish(c);
    }
    if (!pg_dsn_for(db, dsn, sizeof dsn))
        return NULL;
    halo_store_opts o = {.read_only = ro};
    halo_store *st = NULL;
    if (halo_store_open_pg(dsn, &o, &st, &err) != HALO_OK)
        fprintf(stderr, "  postgres: %s\n", err.msg);
    return st;
}

static long long pgb_q_int(const char *db, const char *sql)
{
    PGconn *c = pg_connect_db(db);
    long long v = c ? pg_q_int(c, sql) : -1;
    PQfinish(c);
    return v;
}

static const backend backends[2] = {
    {"sqlite", sq_open, sq_q_int},
    {"postgres", pgb_open, pgb_q_int},
};

/* ---- writing ------------------------------------------------------------- */

/* Write the spans of opts[0..n); adjust (may be NULL) sees them first. */
static bool put_spans(halo_store *st, const span_opts *opts, size_t n,
                      void (*adjust)(halo_span *spans, size_t n))
{
    halo_batch *bt = batch_of(opts, n);
    halo_err err = {{0}};
    if (!bt)
        return false;
    if (adjust)
        adjust(bt->head->spans, n);
    halo_status s = halo_store_write_batch(st, bt, NULL, &err);
    if (s != HALO_OK)
        fprintf(stderr, "  %s: %s\n", st->ops->name, err.msg);
    halo_batch_done(bt, HALO_OK, "");
    return s == HALO_OK;
}

/* 2000 euro signs: 6000 bytes of 3-byte characters. */
static char long_input[6001];

/* Trace 100's LLM span: model, tokens, cost, a long multi-byte input. */
static void adjust_rich(halo_span *sp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (sp[i].trace_id[15] != 100 || !sp[i].parent_span_id[7] ||
            sp[i].span_id[7] != 2)
            continue;
        sp[i].d.model = "gpt-4o";
        sp[i].d.tool_name = NULL;
        sp[i].d.has_input_tokens = sp[i].d.has_output_tokens = true;
        sp[i].d.input_tokens = 1200;
        sp[i].d.output_tokens = 0;
        sp[i].d.has_cost = true;
        sp[i].d.cost = 0.5;
        sp[i].d.input = long_input;
        sp[i].d.output = "short \xc3\xa9";
    }
    for (size_t i = 0; i < n; i++)
        if (sp[i].span_id[7] == 4)
            sp[i].d.tool_name = "search";
}

#define SINCE (T0 + 10 * SEC)
#define UNTIL (T0 + 20 * SEC)

/* The scan data set: agent "a1" has traces 100..109 inside [SINCE, UNTIL)
 * (100 exactly at SINCE, 109 one ns before UNTIL); outside: 200 one ns
 * before SINCE, 201 exactly at UNTIL, 202 whose root starts before SINCE
 * although a child is inside; agent "a2" has 300 inside. */
static bool put_scan_data(halo_store *st)
{
    for (size_t i = 0; i < sizeof long_input - 1; i += 3)
        memcpy(long_input + i, "\xe2\x82\xac", 3);
    span_opts o[64];
    size_t n = 0;
    for (uint64_t t = 0; t < 10; t++)
        n += fixture_trace(o + n, 100 + t, "a1",
                           t == 9 ? 20 * SEC - 1 : 10 * SEC + t * SEC / 2);
    n += fixture_trace(o + n, 200, "a1", 10 * SEC - 1);
    n += fixture_trace(o + n, 201, "a1", 20 * SEC);
    n += fixture_trace(o + n, 202, "a1", 9 * SEC);
    o[n - 1].start_ns = 11 * SEC;
    n += fixture_trace(o + n, 300, "a2", 15 * SEC);
    return put_spans(st, o, n, adjust_rich);
}

/* ---- scan results -------------------------------------------------------- */

typedef struct scan_log {
    halo_buf digest; /* every field of every trace, in trace id order */
    char ids[64][33];
    size_t n_traces;
    size_t stop_after; /* 0: never */
    bool order_ok;
    bool fields_ok;
    char why[256];
} scan_log;

static void log_span(halo_buf *d, const halo_scan_span *s)
{
    halo_buf_printf(
        d,
        "  %s<%s %s %s tool=%s model=%s msg=%s in=%zu:%.12s "
        "out=%s %" PRIu64 "-%" PRIu64 " %.6f st=%d tok=%" PRId64 "/%" PRId64
        " cost=%.4f\n",
        s->span_id, s->parent_span_id, s->name, s->span_type,
        s->tool_name ? s->tool_name : "-", s->model ? s->model : "-",
        s->status_message ? s->status_message : "-",
        s->input ? strlen(s->input) : 0, s->input ? s->input : "-",
        s->output ? s->output : "-", s->start_ns, s->end_ns, s->duration_ms,
        s->status_code, s->input_tokens, s->output_tokens, s->cost);
}

/* Valid UTF-8 (no character cut). */
static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : *p >= 0xF0 ? 3 : *p >= 0xE0 ? 2 : 1;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80)
                return false;
    }
    return true;
}

static int on_trace(void *ctx, const halo_scan_trace *t)
{
    scan_log *l = ctx;
    if (l->n_traces < 64)
        snprintf(l->ids[l->n_traces], 33, "%s", t->trace->trace_id);
    l->n_traces++;
    for (size_t i = 1; i < t->n; i++) {
        const halo_scan_span *p = &t->spans[i - 1], *q = &t->spans[i];
        if (p->start_ns > q->start_ns ||
            (p->start_ns == q->start_ns && strcmp(p->span_id, q->span_id) >= 0))
            l->order_ok = false;
    }
    for (size_t i = 0; i < t->n; i++) {
        const halo_scan_span *s = &t->spans[i];
        if (!s->span_type || !s->name || (s->input && !utf8_ok(s->input)) ||
            strlen(s->span_id) != 16) {
            snprintf(l->why, sizeof l->why, "span %s of %s", s->span_id,
                     t->trace->trace_id);
            l->fields_ok = false;
        }
    }
    return l->stop_after && l->n_traces >= l->stop_after;
}

/* The digest of one trace: kept per trace so the digest can be sorted by
 * trace id (scan order is free). */
typedef struct trace_text {
    char *text;
} trace_text;

typedef struct digest_log {
    scan_log base;
    char *texts[64];
} digest_log;

static int on_trace_digest(void *ctx, const halo_scan_trace *t)
{
    digest_log *d = ctx;
    size_t k = d->base.n_traces;
    int stop = on_trace(&d->base, t);
    halo_buf b = HALO_BUF_INIT;
    const halo_trace_row *r = t->trace;
    halo_buf_printf(
        &b,
        "%s %s root=%s %s..%s %.6f n=%" PRId64 " err=%" PRId64 " llm=%" PRId64
        " tool=%" PRId64 " tok=%" PRId64 "/%" PRId64 " cost=%.4f\n",
        r->trace_id, r->agent_id ? r->agent_id : "-",
        r->root_name ? r->root_name : "-", r->start_time, r->end_time,
        r->duration_ms, r->span_count, r->error_count, r->llm_calls,
        r->tool_calls, r->input_tokens, r->output_tokens, r->cost);
    for (size_t i = 0; i < t->n; i++)
        log_span(&b, &t->spans[i]);
    halo_buf_putc(&b, '\0');
    if (k < 64)
        d->texts[k] = halo_buf_steal(&b);
    else
        halo_buf_free(&b);
    return stop;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Scan [since, until) of agent into a digest sorted by trace id
 * (malloc'd; NULL on failure). */
static char *scan_digest(halo_store *st, const char *agent, uint64_t since,
                         uint64_t until, size_t max_text, size_t *n_traces)
{
    digest_log d;
    memset(&d, 0, sizeof d);
    d.base.order_ok = d.base.fields_ok = true;
    halo_scan_filter f = {agent, since, until, max_text};
    halo_err err = {{0}};
    halo_status s = st->ops->scan_window(st, &f, on_trace_digest, &d, &err);
    size_t n = d.base.n_traces < 64 ? d.base.n_traces : 64;
    halo_buf out = HALO_BUF_INIT;
    qsort(d.texts, n, sizeof *d.texts, cmp_str);
    for (size_t i = 0; i < n; i++) {
        halo_buf_puts(&out, d.texts[i]);
        free(d.texts[i]);
    }
    halo_buf_putc(&out, '\0');
    *n_traces = d.base.n_traces;
    if (s != HALO_OK || !d.base.order_ok || !d.base.fields_ok) {
        fprintf(stderr, "  %s scan: %s%s%s %s\n", st->ops->name, err.msg,
                d.base.order_ok ? "" : " spans out of order",
                d.base.fields_ok ? "" : " bad fields:", d.base.why);
        halo_buf_free(&out);
        return NULL;
    }
    return halo_buf_steal(&out);
}

static bool contains(const char *hay, const char *needle)
{
    if (hay && strstr(hay, needle))
        return true;
    fprintf(stderr, "  digest lacks \"%s\"\n", needle);
    return false;
}

/* The digest of the data set's window with max_text (the same for both
 * backends: compared by the caller). */
static bool check_scan(const backend *b, char **digest)
{
    halo_err err = {{0}};
    halo_store *st = b->open("an_scan", true, false);
    EXPECT(st);
    EXPECT(put_scan_data(st));
    size_t n = 0;
    char *d = scan_digest(st, "a1", SINCE, UNTIL, 0, &n);
    EXPECT(d);
    *digest = d;
    EXPECT_INT(n, 10);
    char tid[33];
    uint8_t raw[16];
    /* exactly traces 100..109, not 200-202 nor a2's 300 */
    for (uint64_t t = 100; t < 110; t++) {
        make_tid(raw, t);
        halo_hex_encode(raw, 16, tid);
        EXPECT(contains(d, tid));
    }
    for (uint64_t t = 200; t < 301; t += t == 202 ? 98 : 1) {
        make_tid(raw, t);
        halo_hex_encode(raw, 16, tid);
        EXPECT(!strstr(d, tid));
    }
    /* spans ordered by start then id; NULL tokens and cost are -1; the
     * 6000-byte input cut at 4096 bytes, on a character: 4095 */
    EXPECT(contains(d, "0000000000000001< root AGENT tool=- model=- msg=- "
                       "in=0:- out=-"));
    EXPECT(contains(d, "st=1 tok=-1/-1 cost=-1.0000\n"
                       "  0000000000000003<0000000000000001 child AGENT"));
    EXPECT(contains(d, "  0000000000000004<0000000000000001 child TOOL "
                       "tool=search model=- msg=boom"));
    EXPECT(contains(d, "0000000000000002<0000000000000001 child LLM "
                       "tool=- model=gpt-4o msg=- in=4095:\xe2\x82\xac"));
    EXPECT(contains(d, "out=short \xc3\xa9 "));
    EXPECT(contains(d, "tok=1200/0 cost=0.5000"));
    EXPECT(contains(d, " root=root 2025-11-16T09:00:10.000000000Z.."));
    /* a smaller cut, also on a character boundary */
    scan_log l;
    memset(&l, 0, sizeof l);
    l.order_ok = l.fields_ok = true;
    char *d100 = scan_digest(st, "a1", SINCE, UNTIL, 100, &n);
    EXPECT(d100);
    bool cut_ok = strstr(d100, " in=99:") != NULL;
    free(d100);
    EXPECT(cut_ok);
    /* the boundaries: [SINCE, SINCE + 1) holds trace 100 only;
     * [UNTIL - 1, UNTIL) trace 109 only */
    EXPECT_INT(
        st->ops->scan_window(st, &(halo_scan_filter){"a1", SINCE, SINCE + 1, 0},
                             on_trace, &l, &err),
        HALO_OK);
    EXPECT_INT(l.n_traces, 1);
    make_tid(raw, 100);
    halo_hex_encode(raw, 16, tid);
    EXPECT(strcmp(l.ids[0], tid) == 0);
    l.n_traces = 0;
    EXPECT_INT(
        st->ops->scan_window(st, &(halo_scan_filter){"a1", UNTIL - 1, UNTIL, 0},
                             on_trace, &l, &err),
        HALO_OK);
    EXPECT_INT(l.n_traces, 1);
    make_tid(raw, 109);
    halo_hex_encode(raw, 16, tid);
    EXPECT(strcmp(l.ids[0], tid) == 0);
    /* empty windows call nothing: no traces there, since == until, an
     * unknown agent */
    l.n_traces = 0;
    EXPECT_INT(st->ops->scan_window(st,
                                    &(halo_scan_filter){"a1", T0, T0 + SEC, 0},
                                    on_trace, &l, &err),
               HALO_OK);
    EXPECT_INT(st->ops->scan_window(st,
                                    &(halo_scan_filter){"a1", SINCE, SINCE, 0},
                                    on_trace, &l, &err),
               HALO_OK);
    EXPECT_INT(st->ops->scan_window(
                   st, &(halo_scan_filter){"nobody", 0, UINT64_MAX / 2, 0},
                   on_trace, &l, &err),
               HALO_OK);
    EXPECT_INT(l.n_traces, 0);
    EXPECT_INT(st->ops->scan_window(st,
                                    &(halo_scan_filter){NULL, SINCE, UNTIL, 0},
                                    on_trace, &l, &err),
               HALO_EINVAL);
    halo_store_close(st);
    /* a read-only handle scans the same */
    st = b->open("an_scan", false, true);
    EXPECT(st);
    char *ro = scan_digest(st, "a1", SINCE, UNTIL, 0, &n);
    bool same = ro && strcmp(ro, d) == 0;
    free(ro);
    halo_store_close(st);
    EXPECT(same);
    return true;
}

TEST(scan_window_both_backends_agree)
{
    char *d[2] = {NULL, NULL};
    bool ok = true;
    for (int i = 0; i < 2 && ok; i++)
        ok = check_scan(&backends[i], &d[i]);
    if (ok && strcmp(d[0], d[1]) != 0) {
        fprintf(stderr, "  sqlite:\n%s  postgres:\n%s", d[0], d[1]);
        ok = false;
    }
    free(d[0]);
    free(d[1]);
    CHECK(ok);
}

/* ---- early stop ---------------------------------------------------------- */

static bool check_early_stop(const backend *b)
{
    halo_err err = {{0}};
    halo_store *st = b->open("an_stop", true, false);
    EXPECT(st);
    /* 2500 traces of 4 spans: PostgreSQL reads them in two FETCHes of
     * the trace cursor and three span queries (groups of 1000 traces) */
    enum { N = 2500 };
    static span_opts o[4 * N];
    size_t n = 0;
    for (uint64_t t = 0; t < N; t++)
        n += fixture_trace(o + n, 1000 + t, "a1", 10 * SEC + t * 1000);
    EXPECT(put_spans(st, o, n, NULL));
    scan_log l;
    memset(&l, 0, sizeof l);
    l.order_ok = l.fields_ok = true;
    l.stop_after = 2;
    halo_scan_filter f = {"a1", SINCE, UNTIL, 0};
    EXPECT_INT(st->ops->scan_window(st, &f, on_trace, &l, &err), HALO_OK);
    EXPECT_INT(l.n_traces, 2);
    /* the store is usable: a full scan, a claim, a write */
    l.n_traces = 0;
    l.stop_after = 0;
    EXPECT_INT(st->ops->scan_window(st, &f, on_trace, &l, &err), HALO_OK);
    EXPECT_INT(l.n_traces, N);
    EXPECT(l.order_ok && l.fields_ok);
    l.n_traces = 0;
    l.stop_after = N - 1; /* stop in the last chunk */
    EXPECT_INT(st->ops->scan_window(st, &f, on_trace, &l, &err), HALO_OK);
    EXPECT_INT(l.n_traces, N - 1);
    halo_run_key k = {"hourly", "a1", SINCE, UNTIL};
    halo_claim_result res;
    EXPECT_INT(st->ops->claim_run(st, &k, "me", 100, 10, &res, &err), HALO_OK);
    EXPECT_INT(res, HALO_CLAIM_TAKEN);
    span_opts one[4];
    EXPECT(put_spans(st, one, fixture_trace(one, 5000, "a1", 12 * SEC), NULL));
    halo_store_close(st);
    return true;
}

TEST(scan_early_stop_leaves_the_store_usable)
{
    for (int i = 0; i < 2; i++)
        CHECK(check_early_stop(&backends[i]));
}

/* ---- claims -------------------------------------------------------------- */

static bool claim_is(const backend *b, halo_store *st, const halo_run_key *k,
                     const char *owner, uint64_t now, uint64_t lease,
                     halo_claim_result want)
{
    halo_err err = {{0}};
    halo_claim_result res = (halo_claim_result)-1;
    EXPECT_INT(st->ops->claim_run(st, k, owner, now, lease, &res, &err),
               HALO_OK);
    EXPECT_INT(res, want);
    return true;
}

static bool check_claims(const backend *b)
{
    halo_err err = {{0}};
    halo_store *st = b->open("an_claims", true, false);
    EXPECT(st);
    halo_run_key k = {"hourly", "a1", T0, T0 + 3600 * SEC};
    halo_run_key k2 = {"hourly", "a1", T0 + 3600 * SEC, T0 + 7200 * SEC};
    halo_run_key k3 = {"daily", "a1", T0, T0 + 86400 * SEC};
    EXPECT(claim_is(b, st, &k, "A", 100, 50, HALO_CLAIM_TAKEN));
    EXPECT(claim_is(b, st, &k, "B", 120, 50, HALO_CLAIM_HELD));
    /* other keys are other runs */
    EXPECT(claim_is(b, st, &k2, "B", 120, 50, HALO_CLAIM_TAKEN));
    EXPECT(claim_is(b, st, &k3, "B", 120, 50, HALO_CLAIM_TAKEN));
    /* a renewal by the owner: not a new attempt; the lease moves on */
    EXPECT(claim_is(b, st, &k, "A", 130, 50, HALO_CLAIM_TAKEN));
    EXPECT(claim_is(b, st, &k, "B", 179, 50, HALO_CLAIM_HELD));
    EXPECT(claim_is(b, st, &k, "B", 180, 50, HALO_CLAIM_HELD));
    const char *q_att = "SELECT attempts FROM analyzer_runs WHERE schedule ="
                        " 'hourly' AND window_start_unix_nano = "
                        "1763283600000000000";
    EXPECT_INT(b->q_int("an_claims", q_att), 1);
    /* past the lease: taken over */
    EXPECT(claim_is(b, st, &k, "B", 181, 50, HALO_CLAIM_TAKEN));
    EXPECT_INT(b->q_int("an_claims", q_att), 2);
    /* the old owner cannot finish it */
    EXPECT_INT(st->ops->finish_run(st, &k, "A", 190, true, "r", NULL, &err),
               HALO_ENOTFOUND);
    EXPECT(strstr(err.msg, "run hourly of agent \"a1\" at "
                           "2025-11-16T09:00:00.000000000Z is not held by "
                           "\"A\""));
    /* a failed run is claimable at once, by anyone */
    EXPECT_INT(
        st->ops->finish_run(st, &k, "B", 190, false, NULL, "model down", &err),
        HALO_OK);
    EXPECT_INT(b->q_int("an_claims", "SELECT count(*) FROM analyzer_runs WHERE"
                                     " status = 'failed' AND last_error ="
                                     " 'model down' AND"
                                     " lease_until_unix_nano = 0"),
               1);
    EXPECT_INT(st->ops->finish_run(st, &k, "B", 191, true, "r", NULL, &err),
               HALO_ENOTFOUND);
    EXPECT(claim_is(b, st, &k, "A", 191, 50, HALO_CLAIM_TAKEN));
    EXPECT_INT(b->q_int("an_claims", q_att), 3);
    EXPECT_INT(
        st->ops->finish_run(st, &k, "A", 200, true, "report-1", NULL, &err),
        HALO_OK);
    /* done for good: for everyone, even long after */
    EXPECT(claim_is(b, st, &k, "A", 300, 50, HALO_CLAIM_DONE));
    EXPECT(claim_is(b, st, &k, "C", 1000 * SEC, 50, HALO_CLAIM_DONE));
    EXPECT_INT(st->ops->finish_run(st, &k, "A", 301, true, "x", NULL, &err),
               HALO_ENOTFOUND);
    EXPECT_INT(b->q_int("an_claims", "SELECT count(*) FROM analyzer_runs WHERE"
                                     " status = 'done' AND report_id ="
                                     " 'report-1' AND last_error IS NULL AND"
                                     " owner = 'A'"),
               1);
    EXPECT_INT(b->q_int("an_claims", q_att), 3);
    /* invalid arguments */
    halo_claim_result res;
    halo_run_key bad = {NULL, "a1", T0, T0 + 1};
    EXPECT_INT(st->ops->claim_run(st, &bad, "A", 1, 1, &res, &err),
               HALO_EINVAL);
    EXPECT_INT(st->ops->claim_run(st, &k2, "", 1, 1, &res, &err), HALO_EINVAL);
    halo_store_close(st);
    /* a read-only store refuses claims and finishes clearly */
    st = b->open("an_claims", false, true);
    EXPECT(st);
    EXPECT_INT(st->ops->claim_run(st, &k2, "B", 130, 50, &res, &err),
               HALO_EINVAL);
    EXPECT(strstr(err.msg, "cannot claim a run"));
    EXPECT(strstr(err.msg, "read-only"));
    EXPECT_INT(st->ops->finish_run(st, &k2, "B", 130, true, "r", NULL, &err),
               HALO_EINVAL);
    EXPECT(strstr(err.msg, "read-only"));
    halo_store_close(st);
    return true;
}

TEST(claims_taken_done_held)
{
    for (int i = 0; i < 2; i++)
        CHECK(check_claims(&backends[i]));
}

/* Two handles (two connections) race for the same runs. */
typedef struct racer {
    halo_store *st;
    const char *owner;
    pthread_barrier_t *go;
    int rounds;
    halo_claim_result res[64];
    halo_status status[64];
    halo_err err;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < r->rounds; i++) {
        halo_run_key k = {"hourly", "a1", T0 + (uint64_t)i * SEC,
                          T0 + (uint64_t)(i + 1) * SEC};
        pthread_barrier_wait(r->go);
        r->status[i] = r->st->ops->claim_run(r->st, &k, r->owner, 1000,
                                             60 * SEC, &r->res[i], &r->err);
    }
    return NULL;
}

static bool check_race(const backend *b)
{
    enum { ROUNDS = 50 };
    halo_err err = {{0}};
    halo_store *s1 = b->open("an_race", true, false);
    halo_store *s2 = b->open("an_race", false, false);
    EXPECT(s1 && s2);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    racer r[2] = {{.st = s1, .owner = "host-1", .go = &go, .rounds = ROUNDS},
                  {.st = s2, .owner = "host-2", .go = &go, .rounds = ROUNDS}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, race, &r[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    int wins[2] = {0, 0};
    for (int i = 0; i < ROUNDS; i++) {
        for (int j = 0; j < 2; j++)
            if (r[j].status[i] != HALO_OK)
                fprintf(stderr, "  [%s] racer %d: %s\n", b->name, j,
                        r[j].err.msg);
        EXPECT_INT(r[0].status[i], HALO_OK);
        EXPECT_INT(r[1].status[i], HALO_OK);
        int taken = (r[0].res[i] == HALO_CLAIM_TAKEN) +
                    (r[1].res[i] == HALO_CLAIM_TAKEN);
        EXPECT_INT(taken, 1);
        EXPECT(r[0].res[i] == HALO_CLAIM_HELD ||
               r[1].res[i] == HALO_CLAIM_HELD);
        wins[r[0].res[i] == HALO_CLAIM_TAKEN ? 0 : 1]++;
    }
    fprintf(stderr, "  [%s] %d rounds: host-1 won %d, host-2 %d\n", b->name,
            ROUNDS, wins[0], wins[1]);
    EXPECT_INT(b->q_int("an_race", "SELECT count(*) FROM analyzer_runs WHERE"
                                   " attempts = 1 AND status = 'running'"),
               ROUNDS);
    halo_store_close(s1);
    halo_store_close(s2);
    return true;
}

TEST(claims_race_exactly_one_wins)
{
    for (int i = 0; i < 2; i++)
        CHECK(check_race(&backends[i]));
}

/* ---- reports ------------------------------------------------------------- */

/* The report fields in one line. */
static void report_line(halo_buf *o, const halo_report_row *r)
{
    halo_buf_printf(o, "%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n", r->id,
                    r->agent_id ? r->agent_id : "-",
                    r->schedule ? r->schedule : "-",
                    r->window_start ? r->window_start : "-",
                    r->window_end ? r->window_end : "-",
                    r->generated_at ? r->generated_at : "-",
                    r->mode ? r->mode : "-", r->model ? r->model : "-",
                    r->json ? r->json : "-", r->markdown ? r->markdown : "-");
}

static bool list_is(const backend *b, halo_store *st,
                    const halo_report_filter *f, const char *want)
{
    halo_err err = {{0}};
    halo_arena *a = halo_arena_new(0);
    halo_report_row *rows = NULL;
    size_t n = 0;
    halo_status s = st->ops->list_reports(st, f, a, &rows, &n, &err);
    halo_buf o = HALO_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        report_line(&o, &rows[i]);
    halo_buf_putc(&o, '\0');
    bool ok = s == HALO_OK && strcmp(o.data, want) == 0;
    if (!ok)
        fprintf(stderr, "  [%s] list: %s\n%s  expected\n%s", b->name, err.msg,
                o.data, want);
    halo_buf_free(&o);
    halo_arena_free(a);
    return ok;
}

static bool check_reports(const backend *b)
{
    halo_err err = {{0}};
    halo_store *st = b->open("an_reports", true, false);
    EXPECT(st);
    /* json in jsonb's own spelling, so PostgreSQL gives it back as is */
    static const halo_report_row reps[] = {
        {"rep-aaaaaa-1", "a1", "hourly", "2025-11-16T09:00:00.000000000Z",
         "2025-11-16T10:00:00.000000000Z", "2025-11-16T10:00:05.123456000Z",
         "detectors", NULL, "{\"n\": 1, \"schema\": \"halo.report/v1\"}",
         "# one"},
        {"rep-aaaaaa-2", "a1", "hourly", "2025-11-16T10:00:00.000000000Z",
         "2025-11-16T11:00:00.000000000Z", "2025-11-16T11:00:05.000000000Z",
         "rlm", "gpt-4o", "{\"n\": 2}", "# two"},
        {"rep-bbbbbb", "a2", "daily", "2025-11-16T00:00:00.000000000Z",
         "2025-11-17T00:00:00.000000000Z", "2025-11-17T00:10:00.000000000Z",
         "detectors", NULL, "{\"n\": 3}", "# three"},
        {"x", "a1", "daily", "2025-11-16T00:00:00.000000000Z",
         "2025-11-17T00:00:00.000000000Z", "2025-11-17T00:10:00.000000000Z",
         "detectors", NULL, "{}", "# x"},
    };
    for (size_t i = 0; i < sizeof reps / sizeof *reps; i++)
        EXPECT_INT(st->ops->put_report(st, &reps[i], &err), HALO_OK);
    halo_report_filter all = {0};
    EXPECT(list_is(b, st, &all,
                   "rep-aaaaaa-2|a1|hourly|2025-11-16T10:00:00.000000000Z|"
                   "2025-11-16T11:00:00.000000000Z|2025-11-16T11:00:05."
                   "000000000Z|rlm|gpt-4o|-|-\n"
                   "rep-aaaaaa-1|a1|hourly|2025-11-16T09:00:00.000000000Z|"
                   "2025-11-16T10:00:00.000000000Z|2025-11-16T10:00:05."
                   "123456000Z|detectors|-|-|-\n"
                   "x|a1|daily|2025-11-16T00:00:00.000000000Z|2025-11-17T00:"
                   "00:00.000000000Z|2025-11-17T00:10:00.000000000Z|"
                   "detectors|-|-|-\n"
                   "rep-bbbbbb|a2|daily|2025-11-16T00:00:00.000000000Z|2025-"
                   "11-17T00:00:00.000000000Z|2025-11-17T00:10:00.000000000Z|"
                   "detectors|-|-|-\n"));
    halo_report_filter f = {.agent_id = "a1", .schedule = "hourly", .limit = 1};
    EXPECT(list_is(b, st, &f,
                   "rep-aaaaaa-2|a1|hourly|2025-11-16T10:00:00.000000000Z|"
                   "2025-11-16T11:00:00.000000000Z|2025-11-16T11:00:05."
                   "000000000Z|rlm|gpt-4o|-|-\n"));
    f = (halo_report_filter){.schedule = "daily"};
    EXPECT(list_is(b, st, &f,
                   "x|a1|daily|2025-11-16T00:00:00.000000000Z|2025-11-17T00:"
                   "00:00.000000000Z|2025-11-17T00:10:00.000000000Z|"
                   "detectors|-|-|-\n"
                   "rep-bbbbbb|a2|daily|2025-11-16T00:00:00.000000000Z|2025-"
                   "11-17T00:00:00.000000000Z|2025-11-17T00:10:00.000000000Z|"
                   "detectors|-|-|-\n"));
    f = (halo_report_filter){.agent_id = "nobody"};
    EXPECT(list_is(b, st, &f, ""));

    halo_arena *a = halo_arena_new(0);
    halo_report_row r;
    halo_buf o = HALO_BUF_INIT;
    /* exact ids, also short ones; unique prefixes of 6+ characters */
    EXPECT_INT(st->ops->get_report(st, "x", a, &r, &err), HALO_OK);
    report_line(&o, &r);
    EXPECT_INT(st->ops->get_report(st, "rep-aaaaaa-1", a, &r, &err), HALO_OK);
    report_line(&o, &r);
    EXPECT_INT(st->ops->get_report(st, "rep-bb", a, &r, &err), HALO_OK);
    report_line(&o, &r);
    halo_buf_putc(&o, '\0');
    bool same =
        strcmp(o.data, "x|a1|daily|2025-11-16T00:00:00.000000000Z|2025-11-"
                       "17T00:00:00.000000000Z|2025-11-17T00:10:00.000000000Z|"
                       "detectors|-|{}|# x\n"
                       "rep-aaaaaa-1|a1|hourly|2025-11-16T09:00:00.000000000Z|"
                       "2025-11-16T10:00:00.000000000Z|2025-11-16T10:00:05."
                       "123456000Z|detectors|-|{\"n\": 1, \"schema\": "
                       "\"halo.report/v1\"}|# one\n"
                       "rep-bbbbbb|a2|daily|2025-11-16T00:00:00.000000000Z|"
                       "2025-11-17T00:00:00.000000000Z|2025-11-17T00:10:00."
                       "000000000Z|detectors|-|{\"n\": 3}|# three\n") == 0;
    if (!same)
        fprintf(stderr, "  [%s] got\n%s", b->name, o.data);
    halo_buf_free(&o);
    EXPECT(same);
    /* ambiguous, too short, unknown */
    EXPECT_INT(st->ops->get_report(st, "rep-aaaaaa", a, &r, &err), HALO_EINVAL);
    EXPECT(strcmp(err.msg, "report id prefix \"rep-aaaaaa\" is ambiguous") ==
           0);
    EXPECT(!r.id);
    EXPECT_INT(st->ops->get_report(st, "rep-b", a, &r, &err), HALO_ENOTFOUND);
    EXPECT(strcmp(err.msg, "report \"rep-b\" not found (an id prefix needs "
                           "at least 6 characters; halo reports list shows "
                           "the ids)") == 0);
    EXPECT_INT(st->ops->get_report(st, "rep-cccccc", a, &r, &err),
               HALO_ENOTFOUND);
    EXPECT(strcmp(err.msg, "report \"rep-cccccc\" not found") == 0);
    EXPECT_INT(st->ops->get_report(st, "", a, &r, &err), HALO_EINVAL);
    halo_arena_free(a);
    halo_store_close(st);
    /* a read-only handle reads them */
    st = b->open("an_reports", false, true);
    EXPECT(st);
    f = (halo_report_filter){.agent_id = "a2"};
    EXPECT(list_is(b, st, &f,
                   "rep-bbbbbb|a2|daily|2025-11-16T00:00:00.000000000Z|2025-"
                   "11-17T00:00:00.000000000Z|2025-11-17T00:10:00.000000000Z|"
                   "detectors|-|-|-\n"));
    halo_store_close(st);
    return true;
}

TEST(reports_list_and_get)
{
    for (int i = 0; i < 2; i++)
        CHECK(check_reports(&backends[i]));
}

/* ---- PostgreSQL: the scan's plans ---------------------------------------- */

static char *explain(PGconn *c, const char *sql, int n, const char **params)
{
    char q[2048];
    snprintf(q, sizeof q, "EXPLAIN %s", sql);
    PGresult *r = PQexecParams(c, q, n, NULL, params, NULL, NULL, 0);
    halo_buf b = HALO_BUF_INIT;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "  %s: %s", q, PQerrorMessage(c));
    for (int i = 0; i < PQntuples(r); i++)
        halo_buf_printf(&b, "%s\n", PQgetvalue(r, i, 0));
    PQclear(r);
    halo_buf_putc(&b, '\0');
    return halo_buf_steal(&b);
}

/* Spans on four days; the chunk query of one day's traces reads that
 * day's partition only, by its primary key. */
TEST(pg_scan_prunes_partitions)
{
    halo_err err = {{0}};
    halo_store *st = pgb_open("an_plans", true, false);
    CHECK(st);
    PGconn *c = pg_connect_db("an_plans");
    CHECK(c);
    CHECK_INT(
        halo_pg_ensure_partitions(c, (int64_t)(T0 / SEC) - 86400, 5, &err),
        HALO_OK);
    enum { N = 2000 };
    static span_opts o[4 * N];
    size_t n = 0;
    for (uint64_t t = 0; t < N; t++)
        n += fixture_trace(o + n, 1 + t, t % 2 ? "a1" : "a2",
                           (t % 4) * DAY_NS + t * SEC);
    CHECK(put_spans(st, o, n, NULL));
    CHECK(pg_q_ok(c, "ANALYZE"));
    const char *params[4] = {("{abababababababab0000000000000001,"
                              "abababababababab0000000000000005}"),
                             "2025-11-16T09:00:00.000000Z",
                             "2025-11-16T10:00:00.000000Z", "4096"};
    char *plan = explain(c, PGR_SQL_SCAN_SPANS, 4, params);
    fprintf(stderr, "  chunk spans:\n%s", plan);
    bool one_part = strstr(plan, "spans_p20251116") &&
                    !strstr(plan, "spans_p20251117") &&
                    !strstr(plan, "spans_default") && !strstr(plan, "Seq Scan");
    free(plan);
    CHECK(one_part);
    pgr_query q;
    halo_scan_filter f = {"a1", T0, T0 + DAY_NS, 0};
    pgr_scan_traces_query(&f, &q);
    const char *sel = strstr(q.sql, "SELECT");
    CHECK(sel);
    plan = explain(c, sel, q.n, q.params);
    fprintf(stderr, "  window traces:\n%s", plan);
    bool indexed = !strstr(plan, "Seq Scan");
    free(plan);
    CHECK(indexed);
    /* and the scan finds a1's traces of day 0: t % 4 == 0 and t odd never
     * meet, day 1 holds them (t % 4 == 1) */
    scan_log l;
    memset(&l, 0, sizeof l);
    l.order_ok = l.fields_ok = true;
    f = (halo_scan_filter){"a1", T0 + DAY_NS, T0 + 2 * DAY_NS, 0};
    CHECK_INT(st->ops->scan_window(st, &f, on_trace, &l, &err), HALO_OK);
    CHECK_INT(l.n_traces, N / 4);
    CHECK(l.order_ok && l.fields_ok);
    PQfinish(c);
    halo_store_close(st);
}

/* ---- timing (HALO_SCAN_BENCH=spans) -------------------------------------- */

typedef struct bench_count {
    int64_t traces, spans, bytes;
} bench_count;

static int count_trace(void *ctx, const halo_scan_trace *t)
{
    bench_count *c = ctx;
    c->traces++;
    c->spans += (int64_t)t->n;
    for (size_t i = 0; i < t->n; i++)
        c->bytes += t->spans[i].input ? (int64_t)strlen(t->spans[i].input) : 0;
    return 0;
}

static const char bench_text[] =
    "You are a helpful support agent. The customer asks about their "
    "invoice, the refund policy and the delivery date of order 12345; "
    "look the order up, check the policy and answer politely. ";

static void bench_text_adjust(halo_span *sp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sp[i].d.input = bench_text;
        sp[i].d.output = bench_text + 40;
        if (sp[i].span_id[7] == 2) {
            sp[i].d.model = "gpt-4o";
            sp[i].d.has_input_tokens = true;
            sp[i].d.input_tokens = 900;
        }
    }
}

static bool bench_one(const backend *b, int64_t spans)
{
    halo_err err = {{0}};
    halo_store *st = b->open("an_bench", true, false);
    EXPECT(st);
    if (strcmp(b->name, "postgres") == 0) {
        PGconn *c = pg_connect_db("an_bench");
        EXPECT(c);
        EXPECT_INT(
            halo_pg_ensure_partitions(c, (int64_t)(T0 / SEC) - 86400, 3, &err),
            HALO_OK);
        PQfinish(c);
    }
    /* 10 spans per trace (4-span traces_of + 6 more children), two
     * agents, the window's agent has 9 traces in 10 */
    enum { PER = 2000 };
    static span_opts o[PER * 10];
    int64_t traces = spans / 10;
    uint64_t t0 = halo_mono_ns();
    for (int64_t first = 0; first < traces; first += PER) {
        size_t n = 0;
        for (int64_t t = first; t < first + PER && t < traces; t++) {
            size_t k =
                fixture_trace(o + n, (uint64_t)t + 1, t % 10 ? "a1" : "a2",
                              (uint64_t)t * (SEC / 2));
            for (size_t j = 0; j < 6; j++)
                o[n + k + j] =
                    (span_opts){.trace = (uint64_t)t + 1,
                                .span = 10 + j,
                                .parent = 1,
                                .start_ns = o[n].start_ns + 100 + j * 1000,
                                .dur_ns = 500,
                                .agent = o[n].agent,
                                .type = j % 2 ? "LLM" : "TOOL"};
            n += k + 6;
        }
        EXPECT(put_spans(st, o, n, bench_text_adjust));
    }
    uint64_t t1 = halo_mono_ns();
    if (strcmp(b->name, "postgres") == 0) {
        PGconn *c = pg_connect_db("an_bench");
        EXPECT(c);
        pg_q_ok(c, "VACUUM ANALYZE");
        PQfinish(c);
    }
    bench_count cnt = {0, 0, 0};
    halo_scan_filter f = {"a1", T0, T0 + 2 * DAY_NS, 0};
    uint64_t t2 = halo_mono_ns();
    EXPECT_INT(st->ops->scan_window(st, &f, count_trace, &cnt, &err), HALO_OK);
    uint64_t t3 = halo_mono_ns();
    double secs = (double)(t3 - t2) / 1e9;
    fprintf(stderr,
            "  [%s] wrote %" PRId64 " spans in %.1f s; scanned %" PRId64
            " traces, %" PRId64 " spans (%" PRId64 " input bytes) in %.3f s:"
            " %.0f spans/s\n",
            b->name, spans, (double)(t1 - t0) / 1e9, cnt.traces, cnt.spans,
            cnt.bytes, secs, (double)cnt.spans / secs);
    EXPECT_INT(cnt.traces, traces - traces / 10);
    halo_store_close(st);
    return true;
}

TEST(scan_speed_when_asked)
{
    const char *env = getenv("HALO_SCAN_BENCH");
    if (!env || !*env)
        return;
    int64_t spans = strtoll(env, NULL, 10);
    for (int i = 0; i < 2; i++)
        CHECK(bench_one(&backends[i], spans > 0 ? spans : 200000));
}
