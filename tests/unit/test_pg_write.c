/*
 * test_pg_write.c -- the PostgreSQL write path (storage/pg_write.c): spans
 * round-trip, writes are idempotent, the traces rollup and the identity
 * fix-up match the SQLite store's, a killed connection is retryable, data
 * PostgreSQL refuses is invalid, and a rough throughput figure.
 *
 * The reference is the SQLite store itself: the same batches are written
 * to a SQLite database and to PostgreSQL, and the columns both have are
 * compared as text (the JSON columns byte for byte). One real PostgreSQL
 * 15 per test binary (pg_test.h); each test in its own database.
 */
#include "fixture_spans.h"
#include "fixtures.h"
#include "harness.h"
#include "pg_test.h"

#include "core/batch.h"
#include "storage/pg_schema.h"
#include "storage/pg_write.h"
#include "storage/store.h"

#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* A connection to a new database `name` with the halo schema. */
static PGconn *fresh_db(const char *name)
{
    halo_err err = {{0}};
    PGconn *c = pg_new_db(name);
    if (c && halo_pg_migrate(c, &err) != HALO_OK) {
        fprintf(stderr, "  %s\n", err.msg);
        PQfinish(c);
        c = NULL;
    }
    return c;
}

/* The rows of sql, one per line, columns separated by '|' (malloc'd). */
static char *q_text(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    halo_buf b = HALO_BUF_INIT;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "  %s: %s", sql, PQerrorMessage(c));
    for (int i = 0; i < PQntuples(r); i++)
        for (int j = 0; j < PQnfields(r); j++)
            halo_buf_printf(&b, "%s%s",
                            PQgetisnull(r, i, j) ? "NULL" : PQgetvalue(r, i, j),
                            j + 1 < PQnfields(r) ? "|" : "\n");
    PQclear(r);
    halo_buf_putc(&b, '\0');
    return halo_buf_steal(&b);
}

/* The same for a SQLite database file. */
static char *sq_text(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    halo_buf b = HALO_BUF_INIT;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fprintf(stderr, "  %s: %s\n", sql, sqlite3_errmsg(db));
    while (st && sqlite3_step(st) == SQLITE_ROW)
        for (int j = 0; j < sqlite3_column_count(st); j++) {
            const char *v = (const char *)sqlite3_column_text(st, j);
            halo_buf_printf(&b, "%s%s", v ? v : "NULL",
                            j + 1 < sqlite3_column_count(st) ? "|" : "\n");
        }
    sqlite3_finalize(st);
    sqlite3_close(db);
    halo_buf_putc(&b, '\0');
    return halo_buf_steal(&b);
}

/* ---- the columns both stores have, as comparable text ------------------- */

static const char *const span_cols[] = {
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "span_type",
    "agent_id",
    "agent_name",
    "session_id",
    "user_id",
    "service_name",
    "model",
    "tool_name",
    "status_code",
    "status_message",
    "input",
    "output",
    "input_tokens",
    "output_tokens",
    "CAST(round(cost * 1e9) AS INTEGER)",
    "CAST(round(duration_ms * 1e3) AS INTEGER)",
    "attributes",
    "events",
    "resource",
    "start_unix_nano",
    "end_unix_nano",
    "trace_state",
    "flags",
    "links",
    "scope",
    "resource_schema_url",
    "resource_dropped_attributes_count",
    "dropped_attributes_count",
    "dropped_events_count",
    "dropped_links_count",
    "fallback_mask",
    NULL,
};

static const char *const trace_cols[] = {
    "trace_id",
    "agent_id",
    "agent_name",
    "session_id",
    "user_id",
    "root_name",
    "CAST(round(duration_ms * 1e3) AS INTEGER)",
    "span_count",
    "error_count",
    "llm_calls",
    "tool_calls",
    "input_tokens",
    "output_tokens",
    "CAST(round(cost * 1e9) AS INTEGER)",
    "start_unix_nano",
    "end_unix_nano",
    "root_span_id",
    "identity_pending",
    NULL,
};

/* "SELECT CAST(c1 AS TEXT), ... FROM table ORDER BY order" (both SQLs). */
static void select_of(char *out, size_t cap, const char *const *cols,
                      const char *table, const char *order)
{
    size_t o = (size_t)snprintf(out, cap, "SELECT ");
    for (int i = 0; cols[i] && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%sCAST(%s AS TEXT)",
                              i ? ", " : "", cols[i]);
    if (o < cap)
        snprintf(out + o, cap - o, " FROM %s ORDER BY %s", table, order);
}

/* Both stores hold the same spans and traces (the columns both have). */
static bool same_as_sqlite(PGconn *c, const char *path)
{
    char sql[4096];
    bool ok = true;
    for (int t = 0; t < 2; t++) {
        select_of(sql, sizeof sql, t ? trace_cols : span_cols,
                  t ? "traces" : "spans", t ? "trace_id" : "trace_id, span_id");
        char *a = q_text(c, sql), *b = sq_text(path, sql);
        if (!a || !b || strcmp(a, b) != 0 || !a[0]) {
            fprintf(stderr, "  postgres:\n%s  sqlite:\n%s", a ? a : "",
                    b ? b : "");
            ok = false;
        }
        free(a);
        free(b);
    }
    return ok;
}

/* ---- building spans ------------------------------------------------------ */

/* fixture_spans.h's rich trace with times below the microsecond, the
 * attributes plain JSON cannot give back, text to escape, a tiny cost and
 * a user id the TOOL child has from the resource fallback (fixed from the
 * root in the same write). */
static halo_batch *rich_batch(void)
{
    static const uint64_t start[3] = {123456789, 200000999, 500000001};
    static const uint64_t dur[3] = {1000000001, 300000000, 120000000};
    halo_span *sp;
    halo_batch *b = rich_batch_at(start, dur, true, &sp);
    sp[0].d.input = "question? \"quoted\" \\ \t";
    sp[0].d.output = "answer! \xe2\x82\xac";
    sp[1].d.service_name = "svc-one";
    sp[2].d.service_name = "svc-two";
    sp[2].d.user_id = "fallback-user";
    sp[2].d.fallback_mask = HALO_FB_USER_ID;
    sp[2].d.has_cost = true;
    sp[2].d.cost = 1e-6;
    return b;
}

/* ---- the SQLite twin ------------------------------------------------------
 */

static const char *sqlite_path(const char *name)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/%s.db", halo_test_tmpdir(), name);
    return path;
}

static halo_store *open_sqlite(const char *path)
{
    halo_err err = {{0}};
    halo_store_opts o = {.path = path};
    halo_store *st = NULL;
    unlink(path);
    if (halo_store_open_sqlite(&o, &st, &err) != HALO_OK) {
        fprintf(stderr, "  %s\n", err.msg);
        return NULL;
    }
    return st;
}

/* Write b to both stores; the stats must agree. */
static bool write_both(PGconn *c, halo_store *sq, const halo_batch *b,
                       halo_write_stats *ws)
{
    halo_err err = {{0}};
    halo_write_stats a = {0, 0, 0}, s = {0, 0, 0};
    if (halo_pg_write_batches(c, &b, 1, &a, &err) != HALO_OK) {
        fprintf(stderr, "  postgres: %s\n", err.msg);
        return false;
    }
    if (halo_store_write_batch(sq, b, &s, &err) != HALO_OK) {
        fprintf(stderr, "  sqlite: %s\n", err.msg);
        return false;
    }
    if (a.inserted != s.inserted || a.duplicates != s.duplicates ||
        a.fixed_up != s.fixed_up) {
        fprintf(stderr,
                "  stats differ: postgres %lld/%lld/%lld, sqlite "
                "%lld/%lld/%lld\n",
                (long long)a.inserted, (long long)a.duplicates,
                (long long)a.fixed_up, (long long)s.inserted,
                (long long)s.duplicates, (long long)s.fixed_up);
        return false;
    }
    if (ws)
        *ws = a;
    return true;
}

/* ---- tests --------------------------------------------------------------- */

TEST(every_field_round_trips)
{
    PGconn *c = fresh_db("pgw_rich");
    CHECK(c);
    const char *path = sqlite_path("rich");
    halo_store *sq = open_sqlite(path);
    CHECK(sq);
    halo_batch *b = rich_batch();
    halo_write_stats ws;
    CHECK(write_both(c, sq, b, &ws));
    CHECK_INT(ws.inserted, 3);
    CHECK_INT(ws.duplicates, 0);
    CHECK_INT(PQtransactionStatus(c), PQTRANS_IDLE);
    /* every column both stores have, JSON byte for byte */
    CHECK(same_as_sqlite(c, path));

    /* spot checks against literal values, not only against SQLite */
    char *s = q_text(c, "SELECT attributes::text, json_typeof(attributes),"
                        " events->0->>'name',"
                        " links->0->>'trace_id', scope->>'version',"
                        " resource->>'service.name'"
                        " FROM spans WHERE span_id = '000000000000000a'");
    CHECK_STR(s, "{\"s\":\"hello\\nworld\",\"quote\\\"key\":\"x\","
                 "\"i\":9223372036854775807,\"neg\":-42,\"d\":0.1,"
                 "\"dint\":2.0,\"dbig\":1e+300,\"nan\":\"NaN\",\"b\":true,"
                 "\"bytes\":\"AAEC/v8=\",\"arr\":[1,\"two\",3.0],"
                 "\"kv\":{\"inner\":false,\"list\":[1,\"two\"]},"
                 "\"empty\":null,\"utf8\":\"h\xc3\xa9llo \xe2\x82\xac\","
                 "\"nul\":\"a\\u0000b\",\"s\":\"duplicate key\"}|object|"
                 "exception|"
                 "abababababababab0000000000000063|1.2.3|svc-one\n");
    free(s);
    /* ns exact in *_unix_nano, timestamptz truncated to the microsecond */
    CHECK(pg_q_ok(c, "SET TimeZone = 'UTC'"));
    s = q_text(c, "SELECT start_unix_nano, end_unix_nano, start_time,"
                  " end_time, duration_ms FROM spans ORDER BY span_id");
    CHECK_STR(s, "1763283600123456789|1763283601123456790|"
                 "2025-11-16 09:00:00.123456+00|2025-11-16 09:00:01.123456+00|"
                 "1000.000001\n"
                 "1763283600200000999|1763283600500000999|"
                 "2025-11-16 09:00:00.2+00|2025-11-16 09:00:00.5+00|"
                 "300\n"
                 "1763283600500000001|1763283600620000001|"
                 "2025-11-16 09:00:00.5+00|2025-11-16 09:00:00.62+00|120\n");
    free(s);
    s = q_text(c, "SELECT parent_span_id, kind, status_code,"
                  " status_message, tool_name, cost, input_tokens,"
                  " output_tokens, fallback_mask, user_id"
                  " FROM spans WHERE span_id = '000000000000000c'");
    CHECK_STR(s, "000000000000000a|INTERNAL|ERROR|boom|search_docs|1e-06|5|"
                 "NULL|0|user-1\n");
    free(s);
    s = q_text(c, "SELECT trace_state, flags, links IS NULL, input, output,"
                  " dropped_links_count FROM spans ORDER BY span_id");
    CHECK_STR(s, "vendor=x|769|f|question? \"quoted\" \\ \t|answer! "
                 "\xe2\x82\xac|3\n"
                 "NULL|0|t|NULL|NULL|0\n"
                 "NULL|0|t|NULL|NULL|0\n");
    free(s);
    /* the rollup */
    s = q_text(c, "SELECT agent_id, session_id, user_id, root_name,"
                  " span_count, error_count, llm_calls, tool_calls,"
                  " input_tokens, output_tokens, cost, start_time,"
                  " end_time, duration_ms, root_span_id FROM traces");
    CHECK_STR(s, "support-agent|sess-1|user-1|root|3|1|1|1|1205|300|"
                 "0.012501|2025-11-16 09:00:00.123456+00|"
                 "2025-11-16 09:00:01.123456+00|1000.000001|"
                 "000000000000000a\n");
    free(s);
    /* the fallback user of span c was fixed from the root (same write) */
    CHECK_INT(ws.fixed_up, 1);
    halo_batch_done(b, HALO_OK, "");
    halo_store_close(sq);
    PQfinish(c);
}

TEST(same_batch_twice_is_one_copy)
{
    PGconn *c = fresh_db("pgw_idem");
    CHECK(c);
    halo_batch *b = rich_batch();
    halo_err err = {{0}};
    halo_write_stats ws;
    /* twice inside the first write: duplicates within one COPY */
    const halo_batch *two[2] = {b, b};
    CHECK_INT(halo_pg_write_batches(c, two, 2, &ws, &err), HALO_OK);
    CHECK_INT(ws.inserted, 3);
    CHECK_INT(ws.duplicates, 3);
    const char *q = "SELECT t.*, (SELECT count(*) FROM spans),"
                    " (SELECT string_agg(agent_id || user_id || fallback_mask,"
                    " ',' ORDER BY span_id) FROM spans) FROM traces t";
    char *before = q_text(c, q);
    CHECK(strstr(before, "|3|1|1|1|1205|300|"));
    /* again, alone and twice in one transaction */
    CHECK_INT(halo_pg_write_batch(c, b, &err), HALO_OK);
    CHECK_INT(halo_pg_write_batches(c, two, 2, &ws, &err), HALO_OK);
    CHECK_INT(ws.inserted, 0);
    CHECK_INT(ws.duplicates, 6);
    CHECK_INT(ws.fixed_up, 0);
    char *after = q_text(c, q);
    CHECK_STR(after, before);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM spans"), 3);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM traces"), 1);
    free(before);
    free(after);
    halo_batch_done(b, HALO_OK, "");
    PQfinish(c);
}

/* Children first, then the root, then a late child starting before
 * everything, then a repeat: both stores agree after every write. */
TEST(rollup_adds_up_across_batches)
{
    PGconn *c = fresh_db("pgw_rollup");
    CHECK(c);
    const char *path = sqlite_path("rollup");
    halo_store *sq = open_sqlite(path);
    CHECK(sq);
    span_opts ch[2] = {
        {.trace = 7,
         .span = 2,
         .parent = 1,
         .start_ns = 100000000,
         .dur_ns = 50000000,
         .agent = "a",
         .type = "LLM",
         .status = HALO_STATUS_ERROR},
        {.trace = 7,
         .span = 3,
         .parent = 1,
         .start_ns = 200000000,
         .dur_ns = 50000000,
         .agent = "a",
         .type = "TOOL"},
    };
    span_opts r = {.trace = 7,
                   .span = 1,
                   .start_ns = 50000000,
                   .dur_ns = 500000000,
                   .agent = "a"};
    span_opts late = {.trace = 7,
                      .span = 4,
                      .parent = 1,
                      .start_ns = 10000007,
                      .dur_ns = 900000000,
                      .agent = "a",
                      .type = "TOOL"};
    halo_batch *b[4] = {batch_of(ch, 2), batch_of(&r, 1), batch_of(&late, 1),
                        batch_of(ch, 2)};
    b[0]->head->spans[0].d.has_input_tokens = true;
    b[0]->head->spans[0].d.input_tokens = 10;
    b[2]->head->spans[0].d.has_output_tokens = true;
    b[2]->head->spans[0].d.output_tokens = 7;
    b[2]->head->spans[0].d.has_cost = true;
    b[2]->head->spans[0].d.cost = 0.5;
    const char *q = "SELECT root_name, span_count, error_count, llm_calls,"
                    " tool_calls, input_tokens, output_tokens, cost,"
                    " duration_ms, end_unix_nano - start_unix_nano"
                    " FROM traces";
    static const char *const want[4] = {
        "NULL|2|1|1|1|10|0|0|150|150000000\n",
        "root|3|1|1|1|10|0|0|500|500000000\n",
        "root|4|1|1|2|10|7|0.5|900|900000000\n",
        "root|4|1|1|2|10|7|0.5|900|900000000\n",
    };
    for (int i = 0; i < 4; i++) {
        CHECK(write_both(c, sq, b[i], NULL));
        CHECK(same_as_sqlite(c, path));
        char *s = q_text(c, q);
        CHECK_STR(s, want[i]);
        free(s);
    }
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM spans"), 4);
    for (int i = 0; i < 4; i++)
        halo_batch_done(b[i], HALO_OK, "");
    halo_store_close(sq);
    PQfinish(c);
}

/* The SQLite store's identity fix-up scenario, compared after each write. */
TEST(identity_fixup_matches_sqlite)
{
    PGconn *c = fresh_db("pgw_fixup");
    CHECK(c);
    const char *path = sqlite_path("fixup");
    halo_store *sq = open_sqlite(path);
    CHECK(sq);
    uint32_t fb = HALO_FB_AGENT_ID | HALO_FB_AGENT_NAME | HALO_FB_SESSION_ID;
    span_opts ch[2] = {
        {.trace = 5,
         .span = 2,
         .parent = 1,
         .start_ns = 1,
         .dur_ns = 1,
         .agent = "svc",
         .fb_mask = fb},
        {.trace = 5,
         .span = 3,
         .parent = 1,
         .start_ns = 2,
         .dur_ns = 1,
         .agent = "own-agent",
         .fb_mask = HALO_FB_SESSION_ID},
    };
    span_opts other = {.trace = 6,
                       .span = 2,
                       .parent = 1,
                       .start_ns = 1,
                       .dur_ns = 1,
                       .agent = "svc",
                       .fb_mask = fb};
    span_opts root = {.trace = 5,
                      .span = 1,
                      .dur_ns = 10,
                      .agent = "real-agent",
                      .fb_mask = HALO_FB_SESSION_ID};
    span_opts late = {.trace = 5,
                      .span = 9,
                      .parent = 1,
                      .start_ns = 3,
                      .dur_ns = 1,
                      .agent = "svc",
                      .fb_mask = fb};
    span_opts same[2] = {
        {.trace = 8,
         .span = 2,
         .parent = 1,
         .start_ns = 1,
         .dur_ns = 1,
         .agent = "svc",
         .fb_mask = fb},
        {.trace = 8, .span = 1, .dur_ns = 5, .agent = "boss"},
    };
    halo_batch *b[5] = {batch_of(ch, 2), batch_of(&other, 1),
                        batch_of(&root, 1), batch_of(&late, 1),
                        batch_of(same, 2)};
    b[2]->head->spans[0].d.session_id = "res-session";
    b[2]->head->spans[0].d.user_id = "root-user";
    static const int64_t fixed[5] = {0, 0, 2, 1, 1};
    for (int i = 0; i < 5; i++) {
        halo_write_stats ws;
        CHECK(write_both(c, sq, b[i], &ws));
        CHECK_INT(ws.fixed_up, fixed[i]);
        CHECK(same_as_sqlite(c, path));
    }
    char *s = q_text(c, "SELECT span_id, agent_id, user_id, session_id,"
                        " fallback_mask FROM spans WHERE trace_id LIKE '%05'"
                        " ORDER BY span_id");
    CHECK_STR(s, "0000000000000001|real-agent|root-user|res-session|4\n"
                 "0000000000000002|real-agent|root-user|NULL|4\n"
                 "0000000000000003|own-agent|root-user|NULL|4\n"
                 "0000000000000009|real-agent|root-user|NULL|4\n");
    free(s);
    for (int i = 0; i < 5; i++)
        halo_batch_done(b[i], HALO_OK, "");
    halo_store_close(sq);
    PQfinish(c);
}

/* Invalid UTF-8 in plain text columns becomes U+FFFD instead of failing
 * the batch (PostgreSQL refuses it in text). */
TEST(invalid_utf8_is_replaced)
{
    PGconn *c = fresh_db("pgw_utf8");
    CHECK(c);
    span_opts o = {.trace = 3, .span = 1, .dur_ns = 1, .agent = "a\xff"};
    halo_batch *b = batch_of(&o, 1);
    b->head->spans[0].name = "bad \xc3( \xed\xa0\x80 end";
    b->head->spans[0].status_message = "\xe2\x82";
    halo_err err = {{0}};
    CHECK_INT(halo_pg_write_batch(c, b, &err), HALO_OK);
    char *s = q_text(c, "SELECT name, status_message, agent_id FROM spans");
    CHECK_STR(s, "bad \xef\xbf\xbd( \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end|"
                 "\xef\xbf\xbd\xef\xbf\xbd|a\xef\xbf\xbd\n");
    free(s);
    /* past the 8-byte ASCII runs: a bad byte mid-word, a valid 3-byte
     * sequence across a word boundary, a cut sequence at the end */
    b->head->spans[0].name = "0123456789abcdef\xffghijklm\xe2\x82\xacnopqrstu"
                             "vwxyz012345\xe2\x82";
    make_sid(b->head->spans[0].span_id, 2);
    CHECK_INT(halo_pg_write_batch(c, b, &err), HALO_OK);
    s = q_text(c, "SELECT name FROM spans WHERE span_id = '0000000000000002'");
    CHECK_STR(s, "0123456789abcdef\xef\xbf\xbdghijklm\xe2\x82\xacnopqrstu"
                 "vwxyz012345\xef\xbf\xbd\xef\xbf\xbd\n");
    free(s);
    /* every byte replaced: the text triples, the most a row's room in the
     * COPY buffer is reserved for */
    char worst[301];
    memset(worst, 0xff, 300);
    worst[300] = '\0';
    b->head->spans[0].name = worst;
    make_sid(b->head->spans[0].span_id, 3);
    CHECK_INT(halo_pg_write_batch(c, b, &err), HALO_OK);
    s = q_text(c, "SELECT length(name), octet_length(name) FROM spans"
                  " WHERE span_id = '0000000000000003'");
    CHECK_STR(s, "300|900\n");
    free(s);
    halo_batch_done(b, HALO_OK, "");
    PQfinish(c);
}

static bool backend_gone(PGconn *admin, int pid)
{
    char sql[128];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid);
    for (int i = 0; i < 1000; i++) { /* 10 s deadline */
        if (pg_q_int(admin, sql) == 0)
            return true;
        usleep(10000);
    }
    return false;
}

TEST(killed_connection_is_retryable)
{
    PGconn *c = fresh_db("pgw_kill");
    CHECK(c);
    PGconn *admin = pg_connect_db("pgw_kill");
    CHECK(admin);
    span_opts o1 = {.trace = 1, .span = 1, .dur_ns = 1, .agent = "a"};
    span_opts o2 = {.trace = 2, .span = 1, .dur_ns = 1, .agent = "a"};
    halo_batch *b1 = batch_of(&o1, 1), *b2 = batch_of(&o2, 1);
    halo_err err = {{0}};
    CHECK_INT(halo_pg_write_batch(c, b1, &err), HALO_OK);
    int pid = PQbackendPID(c);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", pid);
    CHECK(pg_q_ok(admin, sql));
    CHECK(backend_gone(admin, pid));
    CHECK_INT(halo_pg_write_batch(c, b2, &err), HALO_ERETRY);
    fprintf(stderr, "  (expected) %s\n", err.msg);
    CHECK_CONTAINS(err.msg, "could not ");
    CHECK(strstr(err.msg, "terminating connection") ||
          strstr(err.msg, "server closed the connection"));
    /* the dead connection stays an ERETRY, never a crash */
    CHECK_INT(halo_pg_write_batch(c, b2, &err), HALO_ERETRY);
    CHECK_CONTAINS(err.msg, "could not write spans");
    CHECK_INT(pg_q_int(admin, "SELECT count(*) FROM spans"), 1);
    halo_batch_done(b1, HALO_OK, "");
    halo_batch_done(b2, HALO_OK, "");
    PQfinish(admin);
    PQfinish(c);
}

/* A row PostgreSQL refuses fails the whole write as HALO_EINVAL and leaves
 * nothing behind; the connection stays usable. */
TEST(refused_data_is_invalid_and_rolled_back)
{
    PGconn *c = fresh_db("pgw_refuse");
    CHECK(c);
    CHECK(pg_q_ok(c, "ALTER TABLE span_rows ADD CONSTRAINT no_forbidden"
                     " CHECK (name <> 'forbidden')"));
    span_opts o[2] = {
        {.trace = 1, .span = 1, .dur_ns = 1, .agent = "a"},
        {.trace = 1, .span = 2, .parent = 1, .dur_ns = 1, .agent = "a"}};
    halo_batch *b = batch_of(o, 2);
    b->head->spans[1].name = "forbidden";
    halo_err err = {{0}};
    CHECK_INT(halo_pg_write_batch(c, b, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "could not insert spans: ");
    CHECK_CONTAINS(err.msg, "no_forbidden");
    CHECK_INT(PQtransactionStatus(c), PQTRANS_IDLE);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM spans"), 0);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM traces"), 0);
    b->head->spans[1].name = "fine";
    CHECK_INT(halo_pg_write_batch(c, b, &err), HALO_OK);
    CHECK_INT(pg_q_int(c, "SELECT span_count FROM traces"), 2);
    /* a connection inside a transaction is refused, untouched */
    CHECK(pg_q_ok(c, "BEGIN"));
    CHECK_INT(halo_pg_write_batch(c, b, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "inside a transaction");
    CHECK_INT(PQtransactionStatus(c), PQTRANS_INTRANS);
    CHECK(pg_q_ok(c, "ROLLBACK"));
    halo_batch_done(b, HALO_OK, "");
    PQfinish(c);
}

/* ---- throughput (printed, not asserted) ---------------------------------- */

static halo_batch *perf_batch(uint64_t first, size_t n)
{
    halo_arena *a = halo_arena_new(1 << 20);
    halo_span *sp = halo_arena_calloc(a, n, sizeof *sp);
    halo_resource *res = make_resource(a, "support-bot");
    halo_scope *scope = make_scope(a);
    static const char *keys[] = {"openinference.span.kind",
                                 "llm.model_name",
                                 "input.value",
                                 "output.value",
                                 "llm.token_count.prompt",
                                 "llm.token_count.completion",
                                 "agent.id",
                                 "session.id",
                                 "http.status_code",
                                 "temperature"};
    for (size_t i = 0; i < n; i++) {
        uint64_t k = first + i;
        span_opts o = {.trace = k / 8 + 1,
                       .span = k % 8 + 1,
                       .parent = k % 8 ? 1 : 0,
                       .start_ns = k * 1000000,
                       .dur_ns = 3000000,
                       .agent = "support-bot",
                       .type = k % 8 ? (k % 2 ? "LLM" : "TOOL") : "AGENT",
                       .status = k % 50 == 0 ? HALO_STATUS_ERROR : 0};
        fill_span(&sp[i], res, scope, &o);
        halo_value vals[] = {
            v_str("LLM"),
            v_str("gpt-4o-mini"),
            v_str("Find the refund policy for order 12345 and summarize it "
                  "for the customer in two sentences."),
            v_str("Refunds are accepted within 30 days of delivery. The "
                  "item must be unused and in its original packaging."),
            v_int(1200),
            v_int(85),
            v_str("support-bot"),
            v_str("session-4711"),
            v_int(200),
            v_dbl(0.2)};
        sp[i].attrs = attrs_of(a, keys, vals, sizeof vals / sizeof *vals);
        sp[i].d.model = "gpt-4o-mini";
        sp[i].d.session_id = "session-4711";
        sp[i].d.has_input_tokens = sp[i].d.has_output_tokens = true;
        sp[i].d.input_tokens = 1200;
        sp[i].d.output_tokens = 85;
    }
    halo_batch *b = halo_batch_new();
    halo_batch_add_chunk(b, a, sp, n);
    return b;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TEST(write_throughput)
{
    const size_t total = 50000, per = 8192;
    PGconn *c = fresh_db("pgw_perf");
    CHECK(c);
    halo_err err = {{0}};
    double spent = 0, spent_dup = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t done = 0; done < total; done += per) {
            size_t n = total - done < per ? total - done : per;
            halo_batch *b = perf_batch(done, n);
            halo_store_rows *rows = NULL;
            CHECK_INT(halo_pg_prepare(b, true, &rows, &err), HALO_OK);
            halo_batch_done(b, HALO_OK, "");
            double t0 = mono_s();
            halo_status st = halo_pg_write_rows(c, &rows, 1, NULL, &err);
            *(pass ? &spent_dup : &spent) += mono_s() - t0;
            halo_pg_free_rows(rows);
            if (st != HALO_OK)
                fprintf(stderr, "  %s\n", err.msg);
            CHECK_INT(st, HALO_OK);
        }
    }
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM spans"), (long long)total);
    CHECK_INT(pg_q_int(c, "SELECT sum(span_count) FROM traces"),
              (long long)total);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM traces"),
              (long long)(total + 7) / 8);
    printf("  postgres write_rows, %zu-span transactions: %zu spans in "
           "%.2fs = %.0f spans/s (fsync on, one connection); the same "
           "spans again (all duplicates): %.0f spans/s\n",
           per, total, spent, (double)total / spent, (double)total / spent_dup);
    PQfinish(c);
}

/* ---- resource and scope texts once ----------------------------------------
 */

/* One root span of trace `trace`, start_ms after T0, under the resource of
 * service (an empty one, "{}", when service is NULL) and the fixture scope
 * (none when !scope). */
static halo_batch *texts_batch(uint64_t trace, uint64_t start_ms,
                               const char *service, bool scope)
{
    halo_arena *a = halo_arena_new(0);
    halo_span *sp = halo_arena_calloc(a, 1, sizeof *sp);
    halo_resource *res = service ? make_resource(a, service)
                                 : halo_arena_calloc(a, 1, sizeof *res);
    if (!service)
        res->schema_url = "";
    span_opts o = {.trace = trace,
                   .span = 1,
                   .start_ms = start_ms,
                   .agent = "texts-agent"};
    fill_span(sp, res, scope ? make_scope(a) : NULL, &o);
    halo_batch *b = halo_batch_new();
    if (!b || halo_batch_add_chunk(b, a, sp, 1) != HALO_OK)
        return NULL;
    return b;
}

/* n spans of trace `trace` under k resources in turn (svc-0, svc-1, ...,
 * svc-0, ...: one struct per span), one scope. */
static halo_batch *many_resources_batch(uint64_t trace, size_t n, size_t k)
{
    halo_arena *a = halo_arena_new(0);
    halo_span *sp = halo_arena_calloc(a, n, sizeof *sp);
    halo_scope *scope = make_scope(a);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "svc-%zu", i % k);
        span_opts o = {.trace = trace,
                       .span = i + 1,
                       .parent = i ? 1 : 0,
                       .start_ms = i,
                       .agent = "texts-agent"};
        fill_span(&sp[i], make_resource(a, halo_arena_strdup(a, name)), scope,
                  &o);
    }
    halo_batch *b = halo_batch_new();
    if (!b || halo_batch_add_chunk(b, a, sp, n) != HALO_OK)
        return NULL;
    return b;
}

/* Texts spans refer to whose last_start is not the latest start of those
 * spans plus the hour of slack. */
#define TEXTS_OFF                                                              \
    "SELECT count(*) FROM shared_texts t, LATERAL (SELECT"                     \
    " max(start_unix_nano) AS m FROM span_rows s"                              \
    " WHERE t.id IN (s.resource_ref, s.scope_ref)) x"                          \
    " WHERE x.m IS NOT NULL AND t.last_start <> x.m + 3600000000000"

/* b written to both stores: the columns equal, shared_texts holds `texts`
 * texts, every row of trace `trace` (< 16) refers to both its texts and
 * holds neither, and last_start follows the spans. */
static bool wrote_shared(PGconn *c, halo_store *sq, const char *path,
                         const halo_batch *b, int trace, long long texts)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM span_rows WHERE trace_id LIKE '%%%x' AND"
             " (resource IS NOT NULL OR scope IS NOT NULL OR resource_ref IS"
             " NULL OR scope_ref IS NULL)",
             trace);
    long long n = 0, in_row = 0, off = 0;
    bool ok = write_both(c, sq, b, NULL) && same_as_sqlite(c, path) &&
              (n = pg_q_int(c, "SELECT count(*) FROM shared_texts")) == texts &&
              (in_row = pg_q_int(c, sql)) == 0 &&
              (off = pg_q_int(c, TEXTS_OFF)) == 0;
    if (!ok)
        fprintf(stderr,
                "  %lld texts (want %lld), %lld rows with a text"
                " of their own, %lld texts off\n",
                n, texts, in_row, off);
    return ok;
}

/* Resource and scope texts stored once (schema migration 6): each distinct
 * text once in shared_texts, shared by every connection; rows refer to it
 * and hold NULL; the spans view gives every text back (the columns equal
 * SQLite's after each write); last_start follows the latest span; a short
 * text stays in its row, and so does a text whose id shared_texts holds
 * with other bytes (a hash collision); retention deletes the texts with the
 * spans. */
TEST(resource_and_scope_stored_once)
{
    PGconn *c = fresh_db("pgw_texts");
    CHECK(c);
    PGconn *c2 = pg_connect_db("pgw_texts");
    CHECK(c2);
    const char *path = sqlite_path("texts");
    halo_store *sq = open_sqlite(path);
    CHECK(sq);
    halo_err err = {{0}};

    /* two resources (svc-one, svc-two) and one scope over three spans */
    halo_batch *b[4] = {rich_batch(), texts_batch(2, 7200000, "svc-one", true),
                        texts_batch(3, 0, NULL, false),
                        texts_batch(4, 0, "svc-three", true)};
    CHECK(b[0] && b[1] && b[2] && b[3]);
    CHECK(wrote_shared(c, sq, path, b[0], 1, 3));

    /* another connection, two hours later: the same texts, svc-one's and
     * the scope's last_start raised */
    CHECK(write_both(c2, sq, b[1], NULL));
    CHECK(same_as_sqlite(c, path));
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM shared_texts"), 3);
    CHECK_INT(pg_q_int(c, TEXTS_OFF), 0);

    /* "{}" and no scope ({"name":""}): in the row */
    CHECK(write_both(c, sq, b[2], NULL));
    char *row = q_text(c, "SELECT resource::text, resource_ref IS NULL,"
                          " scope::text, scope_ref IS NULL FROM span_rows"
                          " WHERE trace_id LIKE '%3'");
    CHECK_STR(row, "{}|t|{\"name\":\"\"}|t\n");
    free(row);

    /* svc-three's resource id holding other bytes: its rows keep the
     * text (its id taken from a database where it was shared) */
    PGconn *other = fresh_db("pgw_texts_other");
    CHECK(other);
    halo_write_stats ws;
    CHECK_INT(
        halo_pg_write_batches(other, (const halo_batch **)&b[3], 1, &ws, &err),
        HALO_OK);
    long long id = pg_q_int(other, "SELECT resource_ref FROM span_rows");
    CHECK(id != -1 && id != 0);
    PQfinish(other);
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO shared_texts VALUES (%lld, '{\"other\":1}', 0)", id);
    CHECK(pg_q_ok(c, sql));
    CHECK(write_both(c2, sq, b[3], NULL));
    row = q_text(c, "SELECT resource->>'service.name', resource_ref IS NULL,"
                    " scope_ref IS NULL FROM span_rows"
                    " WHERE trace_id LIKE '%4'");
    CHECK_STR(row, "svc-three|t|f\n");
    free(row);
    CHECK(same_as_sqlite(c, path));

    /* 100 resources in turn over 300 spans of one write (the write's
     * table of texts grows, then finds them again) */
    halo_batch *many = many_resources_batch(5, 300, 100);
    CHECK(many);
    CHECK(wrote_shared(c, sq, path, many, 5, 104));
    halo_batch_done(many, HALO_OK, "");

    /* retention: before the spans, only the text no span refers to goes;
     * after them, every text */
    CHECK_INT(
        halo_pg_retention(c, (int64_t)(T0 / 1000000000ull) - 86400, NULL, &err),
        HALO_OK);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM shared_texts"), 103);
    CHECK_INT(pg_q_int(c, TEXTS_OFF), 0);
    CHECK_INT(halo_pg_retention(c, (int64_t)(T0 / 1000000000ull) + 2 * 86400,
                                NULL, &err),
              HALO_OK);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM span_rows"), 0);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM shared_texts"), 0);
    /* and a later write stores its texts again */
    CHECK_INT(
        halo_pg_write_batches(c, (const halo_batch **)&b[1], 1, &ws, &err),
        HALO_OK);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM shared_texts"), 2);
    CHECK_INT(pg_q_int(c, TEXTS_OFF), 0);
    for (int i = 0; i < 4; i++)
        halo_batch_done(b[i], HALO_OK, "");
    halo_store_close(sq);
    PQfinish(c2);
    PQfinish(c);
}

/* ---- the fast path and its fallback ------------------------------------- */

/* New spans take the fast path (COPY straight into spans); a redelivered
 * batch falls back to the staging path and inserts nothing; a batch mixing
 * stored and new spans (one trace split across both) falls back and adds
 * only the new ones to the rollup. Hundreds of traces per write, every
 * column compared with SQLite after each write. */
TEST(fast_path_and_fallback)
{
    PGconn *c = fresh_db("pgw_fast");
    CHECK(c);
    const char *path = sqlite_path("fast");
    halo_store *sq = open_sqlite(path);
    CHECK(sq);
    /* trace 375 (spans 2992..2999) is split: 5 spans in the first write,
     * 3 new ones in the mixed write */
    halo_batch *b[3] = {perf_batch(0, 2997), perf_batch(0, 2997),
                        perf_batch(1500, 3004)};
    halo_write_stats ws;
    const char *q = "SELECT sum(span_count), sum(error_count),"
                    " sum(llm_calls), sum(tool_calls), sum(input_tokens),"
                    " count(*) FROM traces";

    uint64_t fb = halo_pg_write_fallbacks();
    CHECK(write_both(c, sq, b[0], &ws));
    CHECK_INT(ws.inserted, 2997);
    CHECK_INT(halo_pg_write_fallbacks(), fb); /* the fast path */
    CHECK(same_as_sqlite(c, path));
    char *first = q_text(c, q);
    CHECK_STR(first, "2997|60|1498|1124|3596400|375\n");

    CHECK(write_both(c, sq, b[1], &ws)); /* redelivery */
    CHECK_INT(ws.inserted, 0);
    CHECK_INT(ws.duplicates, 2997);
    CHECK_INT(halo_pg_write_fallbacks(), fb + 1);
    CHECK(same_as_sqlite(c, path));
    char *again = q_text(c, q);
    CHECK_STR(again, first);

    CHECK(write_both(c, sq, b[2], &ws)); /* 1497 stored, 1507 new */
    CHECK_INT(ws.inserted, 1507);
    CHECK_INT(ws.duplicates, 1497);
    CHECK_INT(halo_pg_write_fallbacks(), fb + 2);
    CHECK(same_as_sqlite(c, path));
    char *mixed = q_text(c, q);
    CHECK_STR(mixed, "4504|91|2252|1689|5404800|563\n");
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM traces WHERE span_count <> 8"),
              0);
    free(first);
    free(again);
    free(mixed);
    for (int i = 0; i < 3; i++)
        halo_batch_done(b[i], HALO_OK, "");
    halo_store_close(sq);
    PQfinish(c);
}
