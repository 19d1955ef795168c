/*
 * test_store_tools.c -- the analyzer's `sql` and `search` tools of the
 * store (store.h: sql_query, search_spans) on SQLite and on a throwaway
 * PostgreSQL (pg_test.h).
 *
 * Every check is written once as a function of a `backend` and each TEST
 * runs it on both; the texts of a set of queries are also compared across
 * the backends, which must agree to the byte. The data: agent "a1" has
 * traces 100..109 inside the window [SINCE, UNTIL), trace 200 one ns
 * before it and 201 at UNTIL; agent "a2" has trace 300 inside. Each trace
 * is a root and three children, child 4 an ERROR ("boom").
 */
#include "fixture_spans.h"
#include "fixtures.h"
#include "harness.h"
#include "pg_test.h"

#include "core/buf.h"
#include "core/clock.h"
#include "storage/store.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define SEC 1000000000ull
#define SINCE (T0 + 10 * SEC)
#define UNTIL (T0 + 20 * SEC)

#define EXPECT(cond)                                                           \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "  %s:%d: [%s] EXPECT(%s) failed (%s)\n",          \
                    __FILE__, __LINE__, b->name, #cond, err.msg);              \
            return false;                                                      \
        }                                                                      \
    } while (0)

#define EXPECT_STR(a, want)                                                    \
    do {                                                                       \
        const char *a_ = (a), *w_ = (want);                                    \
        if (!a_ || strcmp(a_, w_) != 0) {                                      \
            fprintf(stderr, "  %s:%d: [%s] %s ==\n%s\nexpected\n%s\n(%s)\n",   \
                    __FILE__, __LINE__, b->name, #a, a_ ? a_ : "(null)", w_,   \
                    err.msg);                                                  \
            return false;                                                      \
        }                                                                      \
    } while (0)

/* ---- backends ------------------------------------------------------------ */

typedef struct backend {
    const char *name;
    halo_store *(*open)(const char *db);
} backend;

static halo_store *sq_open(const char *db)
{
    char path[600], side[640];
    halo_err err = {{0}};
    snprintf(path, sizeof path, "%s/%s.db", halo_test_tmpdir(), db);
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    halo_store_opts o = {.path = path, .synchronous = HALO_SYNC_NORMAL};
    halo_store *st = NULL;
    if (halo_store_open_sqlite(&o, &st, &err) != HALO_OK)
        fprintf(stderr, "  sqlite: %s\n", err.msg);
    return st;
}

static halo_store *pgb_open(const char *db)
{
    char dsn[320];
    halo_err err = {{0}};
    PGconn *c = pg_new_db(db);
    if (!c)
        return NULL;
    PQfinish(c);
    if (!pg_dsn_for(db, dsn, sizeof dsn))
        return NULL;
    halo_store *st = NULL;
    if (halo_store_open_pg(dsn, NULL, &st, &err) != HALO_OK)
        fprintf(stderr, "  postgres: %s\n", err.msg);
    return st;
}

static const backend backends[2] = {
    {"sqlite", sq_open},
    {"postgres", pgb_open},
};

/* ---- data ---------------------------------------------------------------- */

static char long_text[5000];

/* Inputs and outputs for the search and the escaping checks; some repeat
 * in input.value / output.value, which SQLite stores once (its spans view
 * puts them back: the texts must still agree to the byte). */
static void adjust(halo_span *sp, size_t n)
{
    static halo_kv a100[2], a101[3], a103[1];
    a100[0] = S("input.value", "Hello WORLD, 100% sure_thing");
    a100[1] = I("n", 1);
    a101[0] = S("note", "h\xc3\xa9 \"q\" \xe2\x82\xac");
    a101[1] = S("output.value", "line1\nline2\ttab\\");
    a101[2] = S("after", "x");
    a103[0] = S("output.value", long_text);
    for (size_t i = 0; i < n; i++) {
        unsigned t = sp[i].trace_id[15] | (unsigned)sp[i].trace_id[14] << 8;
        unsigned s = sp[i].span_id[7];
        if (s == 2) {
            sp[i].d.model = "gpt-4o";
            sp[i].d.has_input_tokens = true;
            sp[i].d.input_tokens = 100 + t;
            sp[i].d.has_cost = true;
            sp[i].d.cost = 0.25;
        }
        if (t == 100 && s == 2) {
            sp[i].d.input = "Hello WORLD, 100% sure_thing";
            sp[i].attrs = (halo_attrs){a100, 2};
        }
        if (t == 101 && s == 2) {
            sp[i].d.output = "line1\nline2\ttab\\";
            sp[i].attrs = (halo_attrs){a101, 3};
        }
        if (t == 103 && s == 3) {
            sp[i].d.output = long_text;
            sp[i].attrs = (halo_attrs){a103, 1};
        }
        if ((t == 200 || t == 300) && s == 2)
            sp[i].d.input = "hello world from elsewhere";
    }
}

static bool put_data(halo_store *st)
{
    /* 1000 euro signs, " NeEdLe ", 600 more */
    size_t k = 0;
    for (int i = 0; i < 1000; i++, k += 3)
        memcpy(long_text + k, "\xe2\x82\xac", 3);
    memcpy(long_text + k, " NeEdLe ", 8);
    k += 8;
    for (int i = 0; i < 600; i++, k += 3)
        memcpy(long_text + k, "\xe2\x82\xac", 3);
    long_text[k] = '\0';
    span_opts o[64];
    size_t n = 0;
    for (uint64_t t = 0; t < 10; t++)
        n += fixture_trace(o + n, 100 + t, "a1", 10 * SEC + t * SEC / 2);
    n += fixture_trace(o + n, 200, "a1", 10 * SEC - 1);
    n += fixture_trace(o + n, 201, "a1", 20 * SEC);
    n += fixture_trace(o + n, 300, "a2", 15 * SEC);
    halo_batch *bt = batch_of(o, n);
    halo_err err = {{0}};
    if (!bt)
        return false;
    adjust(bt->head->spans, n);
    halo_status s = halo_store_write_batch(st, bt, NULL, &err);
    if (s != HALO_OK)
        fprintf(stderr, "  %s: %s\n", st->ops->name, err.msg);
    halo_batch_done(bt, HALO_OK, "");
    return s == HALO_OK;
}

static halo_store *open_with_data(const backend *b, const char *db)
{
    halo_store *st = b->open(db);
    if (st && !put_data(st)) {
        halo_store_close(st);
        return NULL;
    }
    return st;
}

/* ---- running the tool ---------------------------------------------------- */

typedef struct q {
    const char *sql;
    int64_t max_rows;
    size_t max_bytes, max_cell;
    int64_t timeout_ms;
    const char *agent; /* NULL: "a1" */
    bool unbounded;    /* no window */
} q;

static halo_status run_q(halo_store *st, const q *x, halo_arena *a, char **text,
                         halo_err *err)
{
    halo_sql_req r = {.agent_id = x->agent ? x->agent : "a1",
                      .since_ns = x->unbounded ? 0 : SINCE,
                      .until_ns = x->unbounded ? 0 : UNTIL,
                      .sql = x->sql,
                      .max_rows = x->max_rows,
                      .max_bytes = x->max_bytes,
                      .max_cell = x->max_cell,
                      .timeout_ms = x->timeout_ms};
    return st->ops->sql_query(st, &r, a, text, err);
}

/* ---- scope ----------------------------------------------------------------
 */

static bool check_scope(const backend *b)
{
    halo_err err = {{0}};
    halo_store *st = open_with_data(b, "tools_scope");
    EXPECT(st);
    halo_arena *a = halo_arena_new(0);
    static const struct {
        q x;
        const char *want;
    } cases[] = {
        {{.sql = "SELECT count(*) AS n FROM spans"}, "n\n40\n(1 row)\n"},
        {{.sql = "select count(*) as n from traces;"}, "n\n10\n(1 row)\n"},
        {{.sql = "SELECT count(*) AS n FROM spans", .unbounded = true},
         "n\n48\n(1 row)\n"},
        {{.sql = "SELECT count(*) AS n FROM spans", .agent = "a2"},
         "n\n4\n(1 row)\n"},
        {{.sql = "SELECT count(*) AS n FROM spans WHERE agent_id <> 'a1'"},
         "n\n0\n(1 row)\n"},
        {{.sql = "SELECT count(*) AS n FROM (SELECT * FROM spans WHERE "
                 "trace_id IN "
                 "(SELECT trace_id FROM traces)) q"},
         "n\n40\n(1 row)\n"},
        {{.sql = "WITH x AS (SELECT trace_id FROM spans UNION SELECT trace_id "
                 "FROM "
                 "traces) SELECT count(*) AS n FROM x"},
         "n\n10\n(1 row)\n"},
        {{.sql =
              "SELECT count(*) AS n, count(DISTINCT t.agent_id) AS agents FROM "
              "spans s JOIN traces t ON t.trace_id = s.trace_id"},
         "n\tagents\n40\t1\n(1 row)\n"},
        {{.sql =
              "SELECT min(start_unix_nano) >= 1763283610000000000 AS inside, "
              "max(start_unix_nano) < 1763283620000000000 AS before FROM "
              "traces"},
         "inside\tbefore\n1\t1\n(1 row)\n"},
        {{.sql =
              "SELECT count(*) AS n FROM spans WHERE input LIKE '%elsewhere%'"},
         "n\n0\n(1 row)\n"},
        {{.sql =
              "SELECT count(*) AS n FROM spans WHERE input LIKE '%elsewhere%'",
          .unbounded = true},
         "n\n1\n(1 row)\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *text = NULL;
        halo_status s = run_q(st, &cases[i].x, a, &text, &err);
        EXPECT(s == HALO_OK);
        EXPECT_STR(text, cases[i].want);
    }
    halo_arena_free(a);
    halo_store_close(st);
    return true;
}

TEST(sql_sees_only_the_scope)
{
    for (int i = 0; i < 2; i++)
        CHECK(check_scope(&backends[i]));
}

/* ---- refusals ---------------------------------------------------------------
 */

static bool check_refusals(const backend *b)
{
    halo_err err = {{0}};
    halo_store *st = open_with_data(b, "tools_refuse");
    EXPECT(st);
    halo_arena *a = halo_arena_new(0);
    /* the statement, what SQLite says, what PostgreSQL says */
    static const char *const cases[][3] = {
        {"INSERT INTO spans (trace_id) VALUES ('x')",
         "write access is not allowed", "write access is not allowed"},
        {"UPDATE spans SET name = 'x'", "write access is not allowed",
         "write access is not allowed"},
        {"DELETE FROM traces", "write access is not allowed",
         "write access is not allowed"},
        {"CREATE TABLE x (a int)", "write access is not allowed",
         "write access is not allowed"},
        {"DROP TABLE spans", "write access is not allowed",
         "write access is not allowed"},
        {"ATTACH DATABASE '/tmp/x.db' AS x", "ATTACH is not allowed",
         "only SELECT statements are allowed"},
        {"PRAGMA table_info(spans)", "PRAGMA is not allowed",
         "only SELECT statements are allowed"},
        {"SELECT * FROM pragma_table_info('spans')", "not allowed",
         "pragma_table_info"},
        {"SELECT 1; DELETE FROM spans", "only one statement is allowed",
         "only one statement is allowed"},
        {"SELECT 1; SELECT 2", "only one statement is allowed",
         "only one statement is allowed"},
        {"SELECT count(*) FROM main.spans",
         "table \"spans\" is not available: query spans and traces",
         "table \"main.spans\" is not available: query spans and traces"},
        {"WITH spans AS (SELECT * FROM main.spans) SELECT count(*) FROM spans",
         "table \"spans\" is not available", "is not available"},
        {"SELECT count(*) FROM public.spans", "is not available",
         "schema-qualified names are not allowed: query spans and traces"},
        {"SELECT count(*) FROM \"public\".\"spans\"", "is not available",
         "schema-qualified names are not allowed"},
        {"SELECT * FROM sqlite_master",
         "table \"sqlite_master\" is not available: query spans and traces",
         "table \"sqlite_master\" is not available: query spans and traces"},
        {"SELECT * FROM pg_catalog.pg_tables", "is not available",
         "schema-qualified names are not allowed"},
        {"SELECT * FROM pg_tables",
         "table \"pg_tables\" is not available: query spans and traces",
         "table \"pg_tables\" is not available: query spans and traces"},
        {"WITH halo_scope_spans AS (SELECT * FROM span_rows) SELECT * "
         "FROM halo_scope_spans",
         "table \"span_rows\" is not available", "is not available"},
        {"WITH x AS (SELECT * FROM reports) SELECT * FROM x",
         "table \"reports\" is not available", "is not available"},
        {"WITH spans AS (SELECT * FROM main.spans) SELECT * FROM spans",
         "table \"spans\" is not available", "is not available"},
        {"SELECT count(*) FROM reports", "table \"reports\" is not available",
         "table \"reports\" is not available"},
        {"SELECT count(*) FROM main.span_rows",
         "table \"span_rows\" is not available", "is not available"},
        {"SELECT count(*) FROM sqlite_master",
         "table \"sqlite_master\" is not available",
         "table \"sqlite_master\" is not available"},
        {"SELECT * FROM sqlite_temp_master", "is not available",
         "is not available"},
        {"SELECT span_id FROM span_rows",
         "table \"span_rows\" is not available", "is not available"},
        {"SELECT max(trace_id) FROM main.trace_rows",
         "table \"trace_rows\" is not available", "is not available"},
        {"SELECT * FROM main.traces",
         "table \"traces\" is not available: query spans and traces",
         "table \"main.traces\" is not available: query spans and traces"},
        {"SELECT * FROM reports", "table \"reports\" is not available",
         "table \"reports\" is not available"},
        {"SELECT * FROM analyzer_runs", "is not available", "is not available"},
        {"SELECT * FROM halo_staging", "is not available", "is not available"},
        {"SELECT load_extension('/tmp/evil')",
         "function load_extension is not allowed", "load_extension"},
        {"SELECT pg_read_file('/etc/passwd')", "pg_read_file",
         "function pg_read_file is not allowed"},
        {"SELECT lo_import('/etc/passwd')", "lo_import",
         "function lo_import is not allowed"},
        {"SELECT set_config('transaction_read_only', 'off', true)",
         "set_config", "function set_config is not allowed"},
        {"SELECT query_to_xml('select * from public.spans', true, true, '')",
         "query_to_xml", "function query_to_xml is not allowed"},
        {"SELECT * FROM U&\"\\0070g_tables\"", "", "unicode escapes"},
        {"WITH d AS (DELETE FROM spans RETURNING 1) SELECT * FROM d", "",
         "write access is not allowed"},
        {"SELECT * FROM spans FOR UPDATE", "", "write access is not allowed"},
        {"BEGIN", "only SELECT statements are allowed",
         "only SELECT statements are allowed"},
        {"EXPLAIN SELECT 1", "only SELECT statements are allowed",
         "only SELECT statements are allowed"},
        {"SELECT nosuchcol FROM spans", "nosuchcol", "nosuchcol"},
        {"SELEC 1", "syntax error", "only SELECT statements are allowed"},
        {"-- nothing", "no SQL statement given", "no SQL statement given"},
    };
    bool pg = strcmp(b->name, "postgres") == 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *text = NULL;
        q x = {.sql = cases[i][0]};
        err.msg[0] = '\0';
        halo_status s = run_q(st, &x, a, &text, &err);
        if (s != HALO_EINVAL || !strstr(err.msg, cases[i][pg ? 2 : 1])) {
            fprintf(stderr, "  [%s] %s: status %d, \"%s\", expected \"%s\"\n",
                    b->name, cases[i][0], (int)s, err.msg,
                    cases[i][pg ? 2 : 1]);
            return false;
        }
    }
    /* nothing was written, and the store still works */
    char *text = NULL;
    q x = {.sql = "SELECT count(*) AS n FROM spans", .unbounded = true};
    EXPECT(run_q(st, &x, a, &text, &err) == HALO_OK);
    EXPECT_STR(text, "n\n48\n(1 row)\n");
    halo_trace_filter f = {0};
    halo_trace_row *rows = NULL;
    size_t n = 0;
    EXPECT(st->ops->list_traces(st, &f, a, &rows, &n, &err) == HALO_OK);
    EXPECT(n == 13);
    halo_arena_free(a);
    halo_store_close(st);
    return true;
}

TEST(sql_refuses_writes_and_escapes)
{
    for (int i = 0; i < 2; i++)
        CHECK(check_refusals(&backends[i]));
}

/* ---- caps, timeout, text ----------------------------------------------------
 */

static bool check_caps(const backend *b, char **digest)
{
    halo_err err = {{0}};
    halo_store *st = open_with_data(b, "tools_caps");
    EXPECT(st);
    halo_arena *a = halo_arena_new(0);
    char *text = NULL;

    q rows = {.sql =
                  "SELECT span_id FROM spans ORDER BY start_unix_nano, span_id",
              .max_rows = 3};
    EXPECT(run_q(st, &rows, a, &text, &err) == HALO_OK);
    EXPECT_STR(text, "span_id\n0000000000000001\n0000000000000003\n"
                     "0000000000000004\n(showing 3 of 40 rows)\n");

    q many = {
        .sql = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c "
               "WHERE n < 20000) SELECT n FROM c",
        .max_rows = 2};
    EXPECT(run_q(st, &many, a, &text, &err) == HALO_OK);
    EXPECT_STR(text, "n\n1\n2\n(showing 2 of 10002+ rows)\n");

    q bytes = {
        .sql = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM "
               "c WHERE n < 50) SELECT n, 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' "
               "AS pad FROM c",
        .max_bytes = 300};
    EXPECT(run_q(st, &bytes, a, &text, &err) == HALO_OK);
    EXPECT(strlen(text) <= 300);
    EXPECT(strstr(text, "n\tpad\n1\txxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n") == text);
    EXPECT(strstr(text, "(showing 6 of 50 rows)\n"));

    q cell = {.sql = "SELECT output FROM spans WHERE output LIKE '%NeEdLe%'",
              .max_cell = 10};
    EXPECT(run_q(st, &cell, a, &text, &err) == HALO_OK);
    EXPECT_STR(text, "output\n\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac...\n"
                     "(1 row)\n");

    q esc = {.sql = "SELECT output, NULL AS nul FROM spans WHERE output LIKE "
                    "'line1%'"};
    EXPECT(run_q(st, &esc, a, &text, &err) == HALO_OK);
    EXPECT_STR(text, "output\tnul\nline1\\nline2\\ttab\\\\\tNULL\n"
                     "(1 row)\n");

    /* a statement that runs forever is stopped near its timeout */
    q forever = {.sql =
                     "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 "
                     "FROM c) SELECT count(*) FROM c",
                 .timeout_ms = 300};
    uint64_t t0 = halo_mono_ns();
    EXPECT(run_q(st, &forever, a, &text, &err) == HALO_EINVAL);
    uint64_t took_ms = (halo_mono_ns() - t0) / 1000000u;
    EXPECT(strcmp(err.msg, "statement timed out after 300 ms") == 0);
    EXPECT(took_ms >= 250 && took_ms < 3000);
    /* ... and the store is usable after it */
    q after = {.sql = "SELECT count(*) AS n FROM traces"};
    EXPECT(run_q(st, &after, a, &text, &err) == HALO_OK);
    EXPECT_STR(text, "n\n10\n(1 row)\n");

    /* the same text in both backends */
    static const char *const same[] = {
        "SELECT * FROM traces ORDER BY start_unix_nano",
        "SELECT * FROM spans ORDER BY start_unix_nano, span_id",
        ("SELECT span_type, count(*) AS n, min(duration_ms) AS lo, "
         "max(duration_ms) AS hi, avg(input_tokens) AS tok, sum(cost) AS cost "
         "FROM spans GROUP BY span_type ORDER BY span_type"),
        ("SELECT 1.5 * 2 AS x, 7 / 2 AS y, "
         "CAST(0.1 AS DOUBLE PRECISION) + CAST(0.2 AS DOUBLE PRECISION) AS z, "
         "-3 AS neg, 'a' || 'b' AS w"),
        ("SELECT t.trace_id, count(*) AS spans, sum(s.input_tokens) AS tok "
         "FROM traces t JOIN spans s ON s.trace_id = t.trace_id "
         "GROUP BY t.trace_id ORDER BY tok DESC, t.trace_id LIMIT 4"),
        ("SELECT status_code, status_message, count(*) AS n FROM spans "
         "GROUP BY status_code, status_message ORDER BY n DESC"),
        "VALUES (1, 'one'), (2, NULL)",
    };
    halo_buf d = HALO_BUF_INIT;
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        q x = {.sql = same[i], .max_rows = 20};
        if (run_q(st, &x, a, &text, &err) != HALO_OK)
            halo_buf_printf(&d, "QUERY FAILED %s\n", err.msg);
        else
            halo_buf_puts(&d, text);
    }
    *digest = halo_buf_steal(&d);
    halo_arena_free(a);
    halo_store_close(st);
    return *digest != NULL;
}

TEST(sql_caps_timeout_and_same_text)
{
    char *digest[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++)
        CHECK(check_caps(&backends[i], &digest[i]));
    if (strcmp(digest[0], digest[1]) != 0) {
        /* the first line that differs */
        const char *p = digest[0], *q = digest[1], *line = digest[0];
        while (*p && *p == *q) {
            if (*p == '\n')
                line = p + 1;
            p++, q++;
        }
        fprintf(stderr, "  sqlite:   %.*s\n  postgres: %.*s\n",
                (int)strcspn(line, "\n"), line,
                (int)strcspn(digest[1] + (line - digest[0]), "\n"),
                digest[1] + (line - digest[0]));
    }
    CHECK(strcmp(digest[0], digest[1]) == 0);
    CHECK(!strstr(digest[0], "QUERY FAILED"));
    free(digest[0]);
    free(digest[1]);
}

/* ---- search
 * ------------------------------------------------------------------ */

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80    ? 0
                : *p >= 0xF0 ? 3
                : *p >= 0xE0 ? 2
                : *p >= 0xC0 ? 1
                             : -1;
        if (n < 0)
            return false;
        for (int i = 1; i <= n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return false;
        p += n + 1;
    }
    return true;
}

static halo_status search(halo_store *st, const char *query, int64_t limit,
                          size_t snippet, halo_arena *a, halo_search_hit **h,
                          size_t *n, halo_err *err)
{
    halo_search_req r = {.agent_id = "a1",
                         .since_ns = SINCE,
                         .until_ns = UNTIL,
                         .query = query,
                         .limit = limit,
                         .snippet = snippet};
    return st->ops->search_spans(st, &r, a, h, n, err);
}

static bool check_search(const backend *b, char **digest)
{
    halo_err err = {{0}};
    halo_store *st = open_with_data(b, "tools_search");
    EXPECT(st);
    halo_arena *a = halo_arena_new(0);
    halo_search_hit *h = NULL;
    size_t n = 0;
    halo_buf d = HALO_BUF_INIT;

    /* case-insensitive; a2's and the out-of-window spans are not seen */
    EXPECT(search(st, "hello world", 0, 0, a, &h, &n, &err) == HALO_OK);
    EXPECT(n == 1);
    EXPECT(strcmp(h[0].field, "input") == 0);
    EXPECT(strcmp(h[0].snippet, "Hello WORLD, 100% sure_thing") == 0);
    EXPECT(strcmp(h[0].span_id, "0000000000000002") == 0);
    EXPECT(strcmp(h[0].trace_id, "abababababababab0000000000000064") == 0);
    EXPECT(h[0].start_ns == T0 + 10 * SEC + 30);

    /* % and _ are literal */
    EXPECT(search(st, "0% S", 0, 0, a, &h, &n, &err) == HALO_OK);
    EXPECT(n == 1);
    EXPECT(search(st, "0_ s", 0, 0, a, &h, &n, &err) == HALO_OK);
    EXPECT(n == 0);
    EXPECT(search(st, "E_T", 0, 0, a, &h, &n, &err) == HALO_OK);
    EXPECT(n == 1);
    EXPECT(search(st, "e%t", 0, 0, a, &h, &n, &err) == HALO_OK);
    EXPECT(n == 0);
    EXPECT(search(st, "\\", 0, 0, a, &h, &n, &err) == HALO_OK);
    EXPECT(n == 1 && strcmp(h[0].field, "output") == 0);

    /* status messages, ordered by start time, limited */
    EXPECT(search(st, "BOOM", 3, 0, a, &h, &n, &err) == HALO_OK);
    EXPECT(n == 3);
    for (size_t i = 0; i < n; i++) {
        EXPECT(strcmp(h[i].field, "status_message") == 0);
        EXPECT(strcmp(h[i].snippet, "boom") == 0);
        EXPECT(h[i].trace_id[31] == "456"[i]);
        halo_buf_printf(&d, "%s %s %s %s\n", h[i].trace_id, h[i].span_id,
                        h[i].field, h[i].snippet);
    }
    EXPECT(search(st, "boom", 0, 0, a, &h, &n, &err) == HALO_OK);
    EXPECT(n == 10);

    /* snippets cut at UTF-8 boundaries around the match */
    EXPECT(search(st, "needle", 0, 20, a, &h, &n, &err) == HALO_OK);
    EXPECT(n == 1);
    EXPECT(strcmp(h[0].field, "output") == 0);
    EXPECT(h[0].match_off == 3001);
    EXPECT(strncmp(h[0].snippet, "...", 3) == 0);
    EXPECT(strstr(h[0].snippet, " NeEdLe "));
    EXPECT(strlen(h[0].snippet) >= 20 && strlen(h[0].snippet) <= 26);
    EXPECT(strcmp(h[0].snippet + strlen(h[0].snippet) - 3, "...") == 0);
    EXPECT(utf8_valid(h[0].snippet));
    halo_buf_printf(&d, "%s %s %zu\n", h[0].span_id, h[0].snippet,
                    h[0].match_off);

    /* nothing, and refused requests */
    EXPECT(search(st, "no such text", 0, 0, a, &h, &n, &err) == HALO_OK);
    EXPECT(n == 0);
    EXPECT(search(st, "", 0, 0, a, &h, &n, &err) == HALO_EINVAL);

    *digest = halo_buf_steal(&d);
    halo_arena_free(a);
    halo_store_close(st);
    return *digest != NULL;
}

TEST(search_spans_both_backends)
{
    char *digest[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++)
        CHECK(check_search(&backends[i], &digest[i]));
    CHECK_STR(digest[0], digest[1]);
    free(digest[0]);
    free(digest[1]);
}

/* A read-only store (the CLI's) runs the tools too, and stays read-only. */
TEST(sql_on_read_only_stores)
{
    halo_err err = {{0}};
    const backend *b = &backends[1];
    halo_store *st = open_with_data(b, "tools_ro");
    CHECK(st);
    halo_store_close(st);
    char dsn[320];
    CHECK(pg_dsn_for("tools_ro", dsn, sizeof dsn));
    halo_store_opts o = {.read_only = true};
    CHECK(halo_store_open_pg(dsn, &o, &st, &err) == HALO_OK);
    halo_arena *a = halo_arena_new(0);
    char *text = NULL;
    q x = {.sql = "SELECT count(*) AS n FROM spans"};
    CHECK(run_q(st, &x, a, &text, &err) == HALO_OK);
    CHECK_STR(text, "n\n40\n(1 row)\n");
    /* the session is read-only again afterwards */
    halo_report_row r = {.id = "r1", .agent_id = "a1", .mode = "rlm"};
    CHECK(st->ops->put_report(st, &r, &err) != HALO_OK);
    halo_arena_free(a);
    halo_store_close(st);
}
