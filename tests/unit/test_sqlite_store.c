/*
 * test_sqlite_store.c -- the SQLite store (storage/) and the sqlite exporter.
 *
 * Spans are built by hand into arenas, written through the store API, and
 * checked both through the query API and with sqlite3 directly. The write
 * throughput test prints spans/s (it asserts nothing about time).
 */
#include "fixture_spans.h"
#include "fixtures.h"
#include "harness.h"

#include "core/batch.h"
#include "core/cli.h"
#include "core/component.h"
#include "core/config.h"
#include "core/json_attrs.h"
#include "core/metrics.h"
#include "exporters/sqlite.h"
#include "receivers/otlp/otlp_codec.h"
#include "storage/sqlite_int.h"
#include "storage/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- building spans (fixture_spans.h) ----------------------------------- */

/* A random-looking trace id (as SDKs make them) derived from n. */
static void make_tid_random(uint8_t out[16], uint64_t n)
{
    for (int half = 0; half < 2; half++) {
        uint64_t z = n * 2 + (uint64_t)half + 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        memcpy(out + 8 * half, &z, 8);
    }
}

static char *db_path(const char *name)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", halo_test_tmpdir(), name);
    return path;
}

static halo_store *open_store(const char *path, bool ro, halo_err *err)
{
    halo_store_opts o = {.path = path, .read_only = ro};
    halo_store *st = NULL;
    if (halo_store_open_sqlite(&o, &st, err) != HALO_OK)
        return NULL;
    return st;
}

/* One integer from a SQL query on a separate connection. */
static long long sql_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    long long v = -999;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return -1000;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    } else {
        fprintf(stderr, "  sql error: %s\n", sqlite3_errmsg(db));
    }
    sqlite3_close(db);
    return v;
}

/* One text value (malloc'd) from a SQL query; NULL for SQL NULL. */
static char *sql_text(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char *v = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            v = strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    } else {
        fprintf(stderr, "  sql error: %s\n", sqlite3_errmsg(db));
    }
    sqlite3_close(db);
    return v;
}

static int sql_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

/* A new database at schema version `version`: as a binary of that version
 * left it. */
static bool make_db_at(const char *path, int version)
{
    sq_store s;
    memset(&s, 0, sizeof s);
    s.path = (char *)path;
    s.wal_fd = -1;
    halo_err err = {{0}};
    if (sqlite3_open(path, &s.db) != SQLITE_OK)
        return false;
    halo_status st =
        sq_exec(&s, "PRAGMA journal_mode = WAL", "enable WAL", &err);
    if (st == HALO_OK)
        st = sq_migrate_to(&s, version, &err);
    if (st != HALO_OK)
        fprintf(stderr, "  %s\n", err.msg);
    sqlite3_close(s.db);
    return st == HALO_OK;
}

/* ---- deep comparison ----------------------------------------------------- */

static bool value_eq(const halo_value *in, const halo_value *out);

static bool attrs_eq(const halo_attrs *in, const halo_attrs *out)
{
    if (in->n != out->n)
        return false;
    for (size_t i = 0; i < in->n; i++) {
        if (strcmp(in->items[i].key, out->items[i].key) != 0 ||
            !value_eq(&in->items[i].value, &out->items[i].value)) {
            fprintf(stderr, "  attribute \"%s\" differs\n", in->items[i].key);
            return false;
        }
    }
    return true;
}

/* Equal values, types included (the value_types column gives BYTES and
 * NaN/Infinity doubles their types back). */
static bool value_eq(const halo_value *in, const halo_value *out)
{
    if (in->type != out->type)
        return false;
    switch (in->type) {
    case HALO_VAL_BYTES:
    case HALO_VAL_STRING:
        return in->u.s.len == out->u.s.len &&
               memcmp(in->u.s.ptr, out->u.s.ptr, in->u.s.len) == 0;
    case HALO_VAL_BOOL:
        return in->u.b == out->u.b;
    case HALO_VAL_INT:
        return in->u.i == out->u.i;
    case HALO_VAL_DOUBLE:
        return in->u.d == out->u.d || (isnan(in->u.d) && isnan(out->u.d));
    case HALO_VAL_ARRAY:
        if (in->u.arr.n != out->u.arr.n)
            return false;
        for (size_t i = 0; i < in->u.arr.n; i++)
            if (!value_eq(&in->u.arr.items[i], &out->u.arr.items[i]))
                return false;
        return true;
    case HALO_VAL_KVLIST: {
        halo_attrs a = {in->u.kv.items, in->u.kv.n};
        halo_attrs b = {out->u.kv.items, out->u.kv.n};
        return attrs_eq(&a, &b);
    }
    default:
        return true;
    }
}

#define SPAN_CHECK(cond) SAME_OR_FALSE("span", idx, cond)

static bool span_eq_opt(size_t idx, const halo_span *a, const halo_span *b,
                        bool derived)
{
    SPAN_CHECK(memcmp(a->trace_id, b->trace_id, 16) == 0);
    SPAN_CHECK(memcmp(a->span_id, b->span_id, 8) == 0);
    SPAN_CHECK(memcmp(a->parent_span_id, b->parent_span_id, 8) == 0);
    SPAN_CHECK(str_eq(a->trace_state, b->trace_state));
    SPAN_CHECK(a->flags == b->flags);
    SPAN_CHECK(str_eq(a->name, b->name));
    SPAN_CHECK(a->kind == b->kind);
    SPAN_CHECK(a->start_ns == b->start_ns && a->end_ns == b->end_ns);
    SPAN_CHECK(a->status_code == b->status_code);
    SPAN_CHECK(str_eq(a->status_message, b->status_message));
    SPAN_CHECK(attrs_eq(&a->attrs, &b->attrs));
    SPAN_CHECK(a->n_events == b->n_events && a->n_links == b->n_links);
    for (size_t i = 0; i < a->n_events; i++) {
        SPAN_CHECK(a->events[i].time_ns == b->events[i].time_ns);
        SPAN_CHECK(str_eq(a->events[i].name, b->events[i].name));
        SPAN_CHECK(attrs_eq(&a->events[i].attrs, &b->events[i].attrs));
        SPAN_CHECK(a->events[i].dropped_attrs == b->events[i].dropped_attrs);
    }
    for (size_t i = 0; i < a->n_links; i++) {
        const halo_link *x = &a->links[i], *y = &b->links[i];
        SPAN_CHECK(memcmp(x->trace_id, y->trace_id, 16) == 0);
        SPAN_CHECK(memcmp(x->span_id, y->span_id, 8) == 0);
        SPAN_CHECK(str_eq(x->trace_state, y->trace_state));
        SPAN_CHECK(x->flags == y->flags &&
                   x->dropped_attrs == y->dropped_attrs);
        SPAN_CHECK(attrs_eq(&x->attrs, &y->attrs));
    }
    SPAN_CHECK(a->dropped_attrs == b->dropped_attrs);
    SPAN_CHECK(a->dropped_events == b->dropped_events);
    SPAN_CHECK(a->dropped_links == b->dropped_links);
    SPAN_CHECK(attrs_eq(&a->resource->attrs, &b->resource->attrs));
    SPAN_CHECK(a->resource->dropped_attrs == b->resource->dropped_attrs);
    SPAN_CHECK(str_eq(a->resource->schema_url, b->resource->schema_url));
    SPAN_CHECK(str_eq(a->scope->name, b->scope->name));
    SPAN_CHECK(str_eq(a->scope->version, b->scope->version));
    SPAN_CHECK(str_eq(a->scope->schema_url, b->scope->schema_url));
    SPAN_CHECK(a->scope->dropped_attrs == b->scope->dropped_attrs);
    SPAN_CHECK(attrs_eq(&a->scope->attrs, &b->scope->attrs));
    if (!derived)
        return true;
    const halo_derived *x = &a->d, *y = &b->d;
    SPAN_CHECK(str_eq(x->agent_id, y->agent_id));
    SPAN_CHECK(str_eq(x->agent_name, y->agent_name));
    SPAN_CHECK(str_eq(x->session_id, y->session_id));
    SPAN_CHECK(str_eq(x->user_id, y->user_id));
    SPAN_CHECK(str_eq(x->service_name, y->service_name));
    SPAN_CHECK(str_eq(x->span_type, y->span_type));
    SPAN_CHECK(str_eq(x->model, y->model));
    SPAN_CHECK(str_eq(x->tool_name, y->tool_name));
    SPAN_CHECK(str_eq(x->input, y->input));
    SPAN_CHECK(str_eq(x->output, y->output));
    SPAN_CHECK(x->has_input_tokens == y->has_input_tokens &&
               x->input_tokens == y->input_tokens);
    SPAN_CHECK(x->has_output_tokens == y->has_output_tokens &&
               x->output_tokens == y->output_tokens);
    SPAN_CHECK(x->has_cost == y->has_cost && x->cost == y->cost);
    SPAN_CHECK(x->fallback_mask == y->fallback_mask);
    return true;
}

static bool span_eq(size_t idx, const halo_span *a, const halo_span *b)
{
    return span_eq_opt(idx, a, b, true);
}

/* ---- a rich trace: every field set --------------------------------------- */

/* fixture_spans.h's rich trace on whole milliseconds. */
static halo_batch *rich_batch(halo_span **out_spans)
{
    static const uint64_t start[3] = {0, 100000000, 500000000};
    static const uint64_t dur[3] = {1000000000, 300000000, 120000000};
    return rich_batch_at(start, dur, false, out_spans);
}

TEST(rich_trace_roundtrip)
{
    const char *path = db_path("rich.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    halo_span *in;
    halo_batch *b = rich_batch(&in);
    halo_write_stats ws;
    CHECK_INT(halo_store_write_batch(st, b, &ws, &err), HALO_OK);
    CHECK_INT(ws.inserted, 3);
    CHECK_INT(ws.duplicates, 0);

    /* columns, read with sqlite3 directly */
    const char *tid = "abababababababab0000000000000001";
    char *s = sql_text(path, "SELECT start_time FROM spans WHERE "
                             "span_id = '000000000000000a'");
    CHECK_STR(s, "2025-11-16T09:00:00.000000000Z");
    free(s);
    s = sql_text(path, "SELECT trace_id || '|' || kind || '|' || "
                       "status_code || '|' || coalesce(parent_span_id, "
                       "'NULL') || '|' || span_type FROM spans WHERE "
                       "span_id = '000000000000000a'");
    CHECK_STR(s, "abababababababab0000000000000001|SERVER|OK|NULL|AGENT");
    free(s);
    s = sql_text(path, "SELECT parent_span_id || '|' || kind || '|' || "
                       "status_code || '|' || status_message || '|' || "
                       "tool_name FROM spans WHERE span_id = "
                       "'000000000000000c'");
    CHECK_STR(s, "000000000000000a|INTERNAL|ERROR|boom|search_docs");
    free(s);
    s = sql_text(path, "SELECT attributes FROM spans WHERE span_id = "
                       "'000000000000000a'");
    CHECK_STR(s, "{\"s\":\"hello\\nworld\",\"quote\\\"key\":\"x\","
                 "\"i\":9223372036854775807,\"neg\":-42,\"d\":0.1,"
                 "\"dint\":2.0,\"dbig\":1e+300,\"b\":true,"
                 "\"bytes\":\"AAEC/v8=\",\"arr\":[1,\"two\",3.0],"
                 "\"kv\":{\"inner\":false,\"list\":[1,\"two\"]},"
                 "\"empty\":null,\"utf8\":\"h\xc3\xa9llo \xe2\x82\xac\"}");
    free(s);
    s = sql_text(path, "SELECT events FROM spans WHERE span_id = "
                       "'000000000000000a'");
    CHECK_STR(s, "[{\"name\":\"exception\",\"time_unix_nano\":"
                 "1763283600000000005,\"attributes\":{\"exception.message\":"
                 "\"bad thing\",\"count\":3},\"dropped_attributes_count\":4},"
                 "{\"name\":\"empty\",\"time_unix_nano\":1763283600000000006,"
                 "\"attributes\":{},\"dropped_attributes_count\":0}]");
    free(s);
    s = sql_text(path, "SELECT resource FROM spans WHERE span_id = "
                       "'000000000000000c'");
    CHECK_STR(s, "{\"service.name\":\"svc-two\",\"host.cores\":2}");
    free(s);
    s = sql_text(path, "SELECT json_extract(attributes, '$.kv.inner') || '|' "
                       "|| json_extract(resource, '$.\"service.name\"') FROM "
                       "spans WHERE span_id = '000000000000000a'");
    CHECK_STR(s, "0|svc-one");
    free(s);
    CHECK_INT(sql_int(path, "SELECT input_tokens + output_tokens FROM spans "
                            "WHERE span_id = '000000000000000b'"),
              1500);
    CHECK_INT(sql_int(path, "SELECT cost * 10000 FROM spans WHERE span_id = "
                            "'000000000000000b'"),
              125);
    CHECK_INT(sql_int(path, "SELECT input_tokens IS NULL AND cost IS NULL "
                            "FROM spans WHERE span_id = '000000000000000a'"),
              1);
    CHECK_INT(sql_int(path, "SELECT duration_ms FROM spans WHERE span_id = "
                            "'000000000000000c'"),
              120);
    CHECK_INT(sql_int(path, "SELECT flags FROM spans WHERE span_id = "
                            "'000000000000000a'"),
              0x301);
    CHECK_INT(sql_int(path, "SELECT julianday(end_time) > julianday("
                            "start_time) FROM spans WHERE span_id = "
                            "'000000000000000a'"),
              1);

    /* the traces rollup */
    char q[256];
    snprintf(q, sizeof q,
             "SELECT span_count * 1000000 + error_count * 100000 + "
             "llm_calls * 10000 + tool_calls * 1000 + (root_name = 'root') "
             "FROM traces WHERE trace_id = '%s'",
             tid);
    CHECK_INT(sql_int(path, q), 3111001);
    snprintf(q, sizeof q,
             "SELECT input_tokens * 1000 + output_tokens FROM traces WHERE "
             "trace_id = '%s'",
             tid);
    CHECK_INT(sql_int(path, q), 1205300);
    snprintf(q, sizeof q,
             "SELECT agent_id || '|' || session_id || '|' || user_id || '|' "
             "|| start_time || '|' || end_time || '|' || duration_ms FROM "
             "traces WHERE trace_id = '%s'",
             tid);
    s = sql_text(path, q);
    CHECK_STR(s, "support-agent|sess-1|user-1|2025-11-16T09:00:00.000000000Z|"
                 "2025-11-16T09:00:01.000000000Z|1000.0");
    free(s);

    /* the query API: rebuild equals the input */
    halo_arena *ra = halo_arena_new(0);
    halo_span *outs;
    size_t n;
    uint8_t tidb[16];
    make_tid(tidb, 1);
    CHECK_INT(st->ops->get_trace(st, tidb, ra, &outs, &n, &err), HALO_OK);
    CHECK_INT(n, 3);
    for (size_t i = 0; i < 3; i++)
        CHECK(span_eq(i, &in[i], &outs[i]));
    CHECK(outs[0].resource == outs[1].resource); /* shared again */
    CHECK(outs[0].resource != outs[2].resource);
    CHECK(outs[0].scope == outs[2].scope);

    /* an unknown trace */
    make_tid(tidb, 12345);
    CHECK_INT(st->ops->get_trace(st, tidb, ra, &outs, &n, &err),
              HALO_ENOTFOUND);
    CHECK_CONTAINS(err.msg, "not found");
    halo_arena_free(ra);
    halo_batch_done(b, HALO_OK, "");
    halo_store_close(st);
}

/* Every column of the one trace stored, as one JSON array. */
#define TRACE_ROW                                                              \
    "SELECT json_array(trace_id, agent_id, agent_name, session_id, user_id,"   \
    " root_name, start_time, end_time, duration_ms, span_count, error_count,"  \
    " llm_calls, tool_calls, input_tokens, output_tokens, cost, root_span_id," \
    " identity_pending, priced_spans) FROM traces"

TEST(idempotent_rewrite)
{
    const char *path = db_path("idem.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    halo_span *in;
    halo_batch *b = rich_batch(&in);
    halo_write_stats ws;
    CHECK_INT(halo_store_write_batch(st, b, &ws, &err), HALO_OK);
    char *before = sql_text(path, TRACE_ROW);
    CHECK(before);
    /* the same batch again, twice in one group */
    const halo_batch *two[2] = {b, b};
    CHECK_INT(st->ops->write_batches(st, two, 2, &ws, &err), HALO_OK);
    CHECK_INT(ws.inserted, 0);
    CHECK_INT(ws.duplicates, 6);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans"), 3);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM traces"), 1);
    char *after = sql_text(path, TRACE_ROW);
    CHECK_STR(after, before);
    free(after);
    halo_store_close(st);
    /* a new trace whose spans come twice in its first write: the trace row
     * (written before the spans, from all of them) ends as if they came
     * once */
    path = db_path("idem2.db");
    st = open_store(path, false, &err);
    CHECK(st);
    CHECK_INT(st->ops->write_batches(st, two, 2, &ws, &err), HALO_OK);
    CHECK_INT(ws.inserted, 3);
    CHECK_INT(ws.duplicates, 3);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans"), 3);
    after = sql_text(path, TRACE_ROW);
    CHECK_STR(after, before);
    free(after);
    free(before);
    halo_batch_done(b, HALO_OK, "");
    halo_store_close(st);
}

/* A new trace whose spans come twice in one group commit (a retried
 * batch beside the original) is stored as from one copy: its row, written
 * before the spans from all of them, is set again from those inserted.
 * The root has no agent of its own; the child, first in the batch, has. */
TEST(new_trace_repeated_in_one_write)
{
    span_opts o[3] = {
        {.trace = 41,
         .span = 2,
         .parent = 1,
         .start_ms = 5,
         .dur_ms = 5,
         .agent = "a",
         .status = HALO_STATUS_ERROR,
         .type = "LLM"},
        {.trace = 41, .span = 1, .start_ms = 1, .dur_ms = 20},
        {.trace = 41,
         .span = 3,
         .parent = 1,
         .start_ms = 7,
         .dur_ms = 1,
         .agent = "a",
         .type = "TOOL"},
    };
    halo_batch *b = batch_of(o, 3);
    CHECK(b);
    halo_err err = {{0}};
    halo_write_stats ws;
    char *row[2];
    for (int i = 0; i < 2; i++) {
        const char *path = db_path(i ? "repeat2.db" : "repeat1.db");
        halo_store *st = open_store(path, false, &err);
        CHECK(st);
        const halo_batch *two[2] = {b, b};
        CHECK_INT(st->ops->write_batches(st, two, (size_t)i + 1, &ws, &err),
                  HALO_OK);
        CHECK_INT(ws.inserted, 3);
        CHECK_INT(ws.duplicates, i ? 3 : 0);
        row[i] = sql_text(path, TRACE_ROW);
        halo_store_close(st);
    }
    CHECK(row[0] && strstr(row[0], ",\"a\",") && strstr(row[0], ",3,1,1,1,"));
    CHECK_STR(row[1], row[0]);
    free(row[0]);
    free(row[1]);
    halo_batch_done(b, HALO_OK, "");
}

/* prepare() + write_rows(): the rows outlive the batch (freed before the
 * write; ASan checks), and a resource shared by content across chunks
 * (different pointers, same JSON) is stored the same on every span. */
TEST(prepared_rows_outlive_batch)
{
    const char *path = db_path("prepared.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    span_opts o[3] = {
        {.trace = 31, .span = 1, .start_ms = 1, .dur_ms = 5, .agent = "a"},
        {.trace = 32, .span = 1, .start_ms = 2, .dur_ms = 5, .agent = "a"},
        {.trace = 33, .span = 1, .start_ms = 3, .dur_ms = 5, .agent = "b"},
    };
    halo_batch *b = batch_of(&o[0], 1), *b2 = batch_of(&o[1], 1),
               *b3 = batch_of(&o[2], 1);
    CHECK(b && b2 && b3);
    /* the third chunk's resource differs */
    halo_span *sp3 = b3->head->spans;
    sp3->resource = make_resource(b3->head->arena, "other");
    CHECK_INT(halo_batch_merge(b, b2), HALO_OK);
    CHECK_INT(halo_batch_merge(b, b3), HALO_OK);
    halo_store_rows *rows = NULL;
    CHECK_INT(st->ops->prepare(st, b, &rows, &err), HALO_OK);
    CHECK(rows && rows->n_spans == 3);
    halo_batch_done(b, HALO_OK, "");
    halo_write_stats ws;
    CHECK_INT(st->ops->write_rows(st, &rows, 1, &ws, &err), HALO_OK);
    CHECK_INT(ws.inserted, 3);
    CHECK_INT(st->ops->write_rows(st, &rows, 1, &ws, &err), HALO_OK);
    CHECK_INT(ws.duplicates, 3);
    st->ops->free_rows(st, rows);
    char *s = sql_text(path, "SELECT group_concat(r, '|') FROM (SELECT "
                             "json_extract(resource, '$.\"service.name\"') "
                             "|| json_extract(scope, '$.name') AS r FROM "
                             "spans ORDER BY trace_id)");
    CHECK_STR(s, "svcmy.lib|svcmy.lib|othermy.lib");
    free(s);
    s = sql_text(path, "SELECT group_concat(agent_id || start_time || "
                       "span_count, '|') FROM (SELECT * FROM traces ORDER "
                       "BY trace_id)");
    CHECK_STR(s, "a2025-11-16T09:00:00.001000000Z1|"
                 "a2025-11-16T09:00:00.002000000Z1|"
                 "b2025-11-16T09:00:00.003000000Z1");
    free(s);
    halo_store_close(st);
}

/* A batch whose text is many times the scratch buffer's seal size, in
 * three chunks, with rows larger than the seal size and than an arena
 * block's room among them: every row's text slots point at its own text
 * once prepared, the text fills whole arena blocks, and the rows store. */
TEST(prepared_rows_seal_many_segments)
{
    const char *path = db_path("sealed.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    enum { PER_CHUNK = 1500, CHUNKS = 3, N = PER_CHUNK * CHUNKS };
    static span_opts o[N];
    static char *inputs[N];
    size_t total = 0;
    for (size_t i = 0; i < N; i++) {
        o[i] = (span_opts){
            .trace = 1000 + i, .span = 1, .dur_ms = 1, .agent = "a"};
        size_t len = i % 700 == 350 ? (700u << 10) : 300 + i * 37 % 3000;
        inputs[i] = malloc(len + 1);
        CHECK(inputs[i]);
        memset(inputs[i], 'a' + (int)(i % 26), len);
        inputs[i][len] = '\0';
        total += len;
    }
    halo_batch *b = NULL;
    for (size_t c = 0; c < CHUNKS; c++) {
        halo_batch *bc = batch_of(&o[c * PER_CHUNK], PER_CHUNK);
        CHECK(bc);
        for (size_t i = 0; i < PER_CHUNK; i++)
            bc->head->spans[i].d.input = inputs[c * PER_CHUNK + i];
        if (!b)
            b = bc;
        else
            CHECK_INT(halo_batch_merge(b, bc), HALO_OK);
    }
    halo_store_rows *rows = NULL;
    CHECK_INT(st->ops->prepare(st, b, &rows, &err), HALO_OK);
    CHECK(rows && rows->n_spans == N);
    sq_rows *rs = (sq_rows *)rows;
    CHECK(rs->row_arena && rs->text_arena);
    size_t bad = 0;
    for (size_t i = 0; i < N; i++) {
        const sq_row *r = &rs->rows[i];
        uint8_t tid[16];
        char want[33];
        make_tid(tid, 1000 + i);
        halo_hex_encode(tid, 16, want);
        size_t len = strlen(inputs[i]);
        if (r->rel || (size_t)r->t[T_INPUT].len != len ||
            memcmp(r->t[T_INPUT].p, inputs[i], len) != 0 ||
            r->t[T_TRACE_ID].len != 32 ||
            memcmp(r->t[T_TRACE_ID].p, want, 32) != 0 ||
            !strstr(r->t[T_RESOURCE].p, "\"svc\""))
            bad++;
    }
    CHECK_INT(bad, 0);
    /* the text, the ids and the JSON in whole blocks: not a block per row
     * or per chunk */
    size_t reserved = halo_arena_reserved(rs->text_arena);
    CHECK(reserved > total);
    CHECK(reserved < total + total / 4 + ((size_t)4 << 20));
    halo_batch_done(b, HALO_OK, "");
    halo_write_stats ws;
    CHECK_INT(st->ops->write_rows(st, &rows, 1, &ws, &err), HALO_OK);
    CHECK_INT(ws.inserted, N);
    st->ops->free_rows(st, rows);
    CHECK_INT(sql_int(path, "SELECT sum(length(input)) FROM spans"),
              (long long)total);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans WHERE "
                            "substr(input, 1, 1) = substr(input, -1, 1)"),
              N);
    for (size_t i = 0; i < N; i++)
        free(inputs[i]);
    halo_store_close(st);
}

TEST(rollup_across_batches)
{
    const char *path = db_path("rollup.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    /* children first (no root yet), then the root, then a late child that
     * starts before everything else */
    span_opts c[2] = {
        {.trace = 7,
         .span = 2,
         .parent = 1,
         .start_ms = 100,
         .dur_ms = 50,
         .agent = "a",
         .type = "LLM",
         .status = HALO_STATUS_ERROR},
        {.trace = 7,
         .span = 3,
         .parent = 1,
         .start_ms = 200,
         .dur_ms = 50,
         .agent = "a",
         .type = "TOOL"},
    };
    span_opts r = {
        .trace = 7, .span = 1, .start_ms = 50, .dur_ms = 500, .agent = "a"};
    span_opts late = {.trace = 7,
                      .span = 4,
                      .parent = 1,
                      .start_ms = 10,
                      .dur_ms = 900,
                      .agent = "a",
                      .type = "TOOL"};
    halo_batch *b1 = batch_of(c, 2), *b2 = batch_of(&r, 1),
               *b3 = batch_of(&late, 1);
    CHECK_INT(halo_store_write_batch(st, b1, NULL, &err), HALO_OK);
    const char *q = "SELECT coalesce(root_name, 'NULL') || '|' || span_count "
                    "|| '|' || error_count || '|' || llm_calls || '|' || "
                    "tool_calls || '|' || start_time || '|' || duration_ms "
                    "FROM traces";
    char *s = sql_text(path, q);
    CHECK_STR(s, "NULL|2|1|1|1|2025-11-16T09:00:00.100000000Z|150.0");
    free(s);
    CHECK_INT(halo_store_write_batch(st, b2, NULL, &err), HALO_OK);
    s = sql_text(path, q);
    CHECK_STR(s, "root|3|1|1|1|2025-11-16T09:00:00.050000000Z|500.0");
    free(s);
    CHECK_INT(halo_store_write_batch(st, b3, NULL, &err), HALO_OK);
    s = sql_text(path, q);
    CHECK_STR(s, "root|4|1|1|2|2025-11-16T09:00:00.010000000Z|900.0");
    free(s);
    s = sql_text(path, "SELECT end_unix_nano - start_unix_nano FROM traces");
    CHECK_STR(s, "900000000");
    free(s);
    s = sql_text(path, "SELECT root_span_id FROM traces");
    CHECK_STR(s, "0000000000000001");
    free(s);
    halo_batch_done(b1, HALO_OK, "");
    halo_batch_done(b2, HALO_OK, "");
    halo_batch_done(b3, HALO_OK, "");
    halo_store_close(st);
}

TEST(identity_fixup)
{
    const char *path = db_path("fixup.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    /* children carry the resource fallback ("svc") for agent and session;
     * child 3 has its own agent (bit clear) and must keep it */
    uint32_t fb = HALO_FB_AGENT_ID | HALO_FB_AGENT_NAME | HALO_FB_SESSION_ID;
    span_opts c[2] = {
        {.trace = 5,
         .span = 2,
         .parent = 1,
         .start_ms = 1,
         .dur_ms = 1,
         .agent = "svc",
         .fb_mask = fb},
        {.trace = 5,
         .span = 3,
         .parent = 1,
         .start_ms = 2,
         .dur_ms = 1,
         .agent = "own-agent",
         .fb_mask = HALO_FB_SESSION_ID},
    };
    halo_batch *b1 = batch_of(c, 2);
    /* a child of another trace, untouched by this root */
    span_opts other = {.trace = 6,
                       .span = 2,
                       .parent = 1,
                       .start_ms = 1,
                       .dur_ms = 1,
                       .agent = "svc",
                       .fb_mask = fb};
    halo_batch *bo = batch_of(&other, 1);
    CHECK_INT(halo_store_write_batch(st, b1, NULL, &err), HALO_OK);
    CHECK_INT(halo_store_write_batch(st, bo, NULL, &err), HALO_OK);
    char *s = sql_text(path, "SELECT agent_id FROM traces WHERE trace_id "
                             "LIKE '%05'");
    CHECK_STR(s, "svc"); /* the first span's value while no root */
    free(s);

    /* the root: its own agent (bit clear); session from its resource
     * (bit set: cannot resolve the children's session) */
    span_opts r = {.trace = 5,
                   .span = 1,
                   .start_ms = 0,
                   .dur_ms = 10,
                   .agent = "real-agent",
                   .fb_mask = HALO_FB_SESSION_ID};
    halo_batch *b2 = batch_of(&r, 1);
    b2->head->spans[0].d.session_id = "res-session";
    b2->head->spans[0].d.user_id = "root-user";
    halo_write_stats ws;
    CHECK_INT(halo_store_write_batch(st, b2, &ws, &err), HALO_OK);
    CHECK_INT(ws.fixed_up, 2);
    /* agent from the fallback -> the root's; user missing -> the root's;
     * session from the fallback stays (the root's is a fallback too) */
    s = sql_text(path, "SELECT agent_id || '|' || agent_name || '|' || "
                       "user_id || '|' || coalesce(session_id, 'NULL') || "
                       "'|' || fallback_mask FROM spans WHERE span_id = "
                       "'0000000000000002' AND trace_id LIKE '%05'");
    CHECK_STR(s, "real-agent|real-agent|root-user|NULL|4");
    free(s);
    /* its own agent stays; the missing user is filled */
    s = sql_text(path, "SELECT agent_id || '|' || user_id || '|' || "
                       "fallback_mask FROM spans WHERE span_id = "
                       "'0000000000000003'");
    CHECK_STR(s, "own-agent|root-user|4");
    free(s);
    s = sql_text(path, "SELECT agent_id || '|' || fallback_mask FROM spans "
                       "WHERE trace_id LIKE '%06'");
    CHECK_STR(s, "svc|7");
    free(s);
    s = sql_text(path, "SELECT agent_id || '|' || session_id || '|' || "
                       "user_id FROM traces WHERE trace_id LIKE '%05'");
    CHECK_STR(s, "real-agent|res-session|root-user");
    free(s);

    /* a late child with fallback bits: fixed from the stored root */
    span_opts l = {.trace = 5,
                   .span = 9,
                   .parent = 1,
                   .start_ms = 3,
                   .dur_ms = 1,
                   .agent = "svc",
                   .fb_mask = fb};
    halo_batch *b3 = batch_of(&l, 1);
    CHECK_INT(halo_store_write_batch(st, b3, &ws, &err), HALO_OK);
    CHECK_INT(ws.fixed_up, 1);
    s = sql_text(path, "SELECT agent_id || '|' || user_id || '|' || "
                       "fallback_mask FROM spans WHERE span_id = "
                       "'0000000000000009'");
    CHECK_STR(s, "real-agent|root-user|4");
    free(s);
    /* children and root in one batch, children first */
    span_opts same[2] = {
        {.trace = 8,
         .span = 2,
         .parent = 1,
         .start_ms = 1,
         .dur_ms = 1,
         .agent = "svc",
         .fb_mask = fb},
        {.trace = 8, .span = 1, .start_ms = 0, .dur_ms = 5, .agent = "boss"},
    };
    halo_batch *b4 = batch_of(same, 2);
    CHECK_INT(halo_store_write_batch(st, b4, &ws, &err), HALO_OK);
    CHECK_INT(ws.fixed_up, 1);
    s = sql_text(path, "SELECT agent_id || '|' || fallback_mask FROM spans "
                       "WHERE trace_id LIKE '%08' AND span_id LIKE '%2'");
    CHECK_STR(s, "boss|4");
    free(s);
    halo_batch_done(b1, HALO_OK, "");
    halo_batch_done(bo, HALO_OK, "");
    halo_batch_done(b2, HALO_OK, "");
    halo_batch_done(b3, HALO_OK, "");
    halo_batch_done(b4, HALO_OK, "");
    halo_store_close(st);
}

TEST(retention_deletes_old_rows_only)
{
    const char *path = db_path("retention.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    /* 12 old traces (the first ones, minutes after T0; their child spans
     * start after the cutoff but go with their trace) and 3 recent ones */
    span_opts o[30];
    for (int i = 0; i < 15; i++) {
        uint64_t start = i < 12 ? (uint64_t)i * 1000 : 86400000ull * 10;
        o[2 * i] = (span_opts){.trace = 100 + i,
                               .span = 1,
                               .start_ms = start,
                               .dur_ms = 5,
                               .agent = "a"};
        o[2 * i + 1] = (span_opts){.trace = 100 + i,
                                   .span = 2,
                                   .parent = 1,
                                   .start_ms = start + 86400000ull * 2,
                                   .dur_ms = 1,
                                   .agent = "a"};
    }
    halo_batch *b = batch_of(o, 30);
    CHECK_INT(halo_store_write_batch(st, b, NULL, &err), HALO_OK);
    uint64_t cutoff = T0 + 86400000000000ull; /* one day after T0 */
    int64_t deleted, total = 0;
    bool more = true;
    int steps = 0;
    while (more) {
        CHECK_INT(st->ops->retention_step(st, cutoff, 5, &deleted, &more, &err),
                  HALO_OK);
        total += deleted;
        CHECK(++steps < 20);
    }
    CHECK_INT(steps, 3); /* 12 traces in steps of 5 */
    CHECK_INT(total, 24 + 12);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans"), 6);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM traces"), 3);
    CHECK_INT(sql_int(path, "SELECT min(start_unix_nano) >= 1763283600000000000"
                            " + 86400000000000 FROM spans"),
              1);
    halo_batch_done(b, HALO_OK, "");
    halo_store_close(st);
}

/* Traces of agent "a" with durations 1..100 ms (every 10th an error) and
 * of agent "b" with 1000 and 3000 ms. */
static halo_batch *stats_batch(void)
{
    span_opts o[102];
    for (int i = 0; i < 100; i++)
        o[i] = (span_opts){.trace = 1000 + i,
                           .span = 1,
                           .start_ms = (uint64_t)(99 - i) * 10,
                           .dur_ms = (uint64_t)i + 1,
                           .agent = "a",
                           .status = i % 10 == 0 ? HALO_STATUS_ERROR : 0};
    o[100] = (span_opts){.trace = 2000,
                         .span = 1,
                         .start_ms = 5000,
                         .dur_ms = 3000,
                         .agent = "b"};
    o[101] = (span_opts){.trace = 2001,
                         .span = 1,
                         .start_ms = 6000,
                         .dur_ms = 1000,
                         .agent = "b"};
    halo_batch *b = batch_of(o, 102);
    halo_span *sp = b->head->spans;
    for (int i = 0; i < 100; i++) {
        sp[i].d.has_input_tokens = sp[i].d.has_output_tokens = true;
        sp[i].d.input_tokens = 10;
        sp[i].d.output_tokens = 1;
        sp[i].d.has_cost = true;
        sp[i].d.cost = 0.5;
    }
    return b;
}

TEST(agent_stats_percentiles)
{
    const char *path = db_path("stats.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    halo_batch *b = stats_batch();
    CHECK_INT(halo_store_write_batch(st, b, NULL, &err), HALO_OK);
    halo_arena *a = halo_arena_new(0);
    halo_agent_stats *rows;
    size_t n;
    CHECK_INT(st->ops->agent_stats(st, 0, 0, a, &rows, &n, &err), HALO_OK);
    CHECK_INT(n, 2);
    CHECK_STR(rows[0].agent_id, "a");
    CHECK_INT(rows[0].runs, 100);
    CHECK_INT(rows[0].error_runs, 10);
    CHECK(fabs(rows[0].error_rate - 0.1) < 1e-12);
    CHECK(rows[0].p50_ms == 50.0);
    CHECK(rows[0].p95_ms == 95.0);
    CHECK_INT(rows[0].input_tokens, 1000);
    CHECK_INT(rows[0].output_tokens, 100);
    CHECK(fabs(rows[0].cost - 50.0) < 1e-9);
    CHECK_INT(rows[0].priced_spans, 100);
    CHECK_STR(rows[1].agent_id, "b");
    CHECK_INT(rows[1].priced_spans, 0);
    CHECK_INT(rows[1].runs, 2);
    CHECK(rows[1].p50_ms == 1000.0);
    CHECK(rows[1].p95_ms == 3000.0);
    CHECK_INT(rows[1].error_runs, 0);
    /* a window: the traces of "a" starting in [T0+100ms, T0+200ms) are the
     * 10 with durations 81..90 */
    uint64_t since = T0 + 100000000ull, until = T0 + 200000000ull;
    CHECK_INT(st->ops->agent_stats(st, since, until, a, &rows, &n, &err),
              HALO_OK);
    CHECK_INT(n, 1);
    CHECK_INT(rows[0].runs, 10);
    CHECK(rows[0].p50_ms == 85.0);
    CHECK(rows[0].p95_ms == 90.0);
    CHECK_INT(rows[0].error_runs, 1); /* the 81 ms one (i = 80) */
    /* percentile helper edge cases */
    double one = 7;
    CHECK(halo_percentile(&one, 1, 0.95) == 7);
    CHECK(halo_percentile(NULL, 0, 0.5) == 0);
    halo_arena_free(a);
    halo_batch_done(b, HALO_OK, "");
    halo_store_close(st);
}

/* A model priced at 0 (a local one) costs 0, which is not "no price
 * known": the rollup counts the spans that carried a cost, also when a
 * trace's spans come in two writes. */
TEST(zero_price_is_a_price)
{
    const char *path = db_path("zero_price.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    span_opts o[3] = {
        {.trace = 1, .span = 1, .start_ms = 0, .dur_ms = 10, .agent = "local"},
        {.trace = 2, .span = 1, .start_ms = 0, .dur_ms = 10, .agent = "none"},
        {.trace = 1,
         .span = 2,
         .parent = 1,
         .start_ms = 1,
         .dur_ms = 5,
         .agent = "local"},
    };
    halo_batch *b1 = batch_of(o, 2), *b2 = batch_of(o + 2, 1);
    halo_span *sp = b1->head->spans;
    for (int i = 0; i < 2; i++) {
        sp[i].d.has_input_tokens = true;
        sp[i].d.input_tokens = 100;
    }
    sp[0].d.has_cost = true; /* "local": priced at 0 */
    sp[0].d.cost = 0;
    b2->head->spans[0].d.has_cost = true;
    b2->head->spans[0].d.cost = 0;
    CHECK_INT(halo_store_write_batch(st, b1, NULL, &err), HALO_OK);
    CHECK_INT(halo_store_write_batch(st, b2, NULL, &err), HALO_OK);
    halo_arena *a = halo_arena_new(0);
    halo_agent_stats *rows;
    size_t n;
    CHECK_INT(st->ops->agent_stats(st, 0, 0, a, &rows, &n, &err), HALO_OK);
    CHECK_INT(n, 2);
    CHECK_STR(rows[0].agent_id, "local");
    CHECK_INT(rows[0].priced_spans, 2);
    CHECK(rows[0].cost == 0);
    CHECK(!halo_cost_unpriced(rows[0].cost, rows[0].priced_spans,
                              rows[0].input_tokens, rows[0].output_tokens));
    CHECK_STR(rows[1].agent_id, "none");
    CHECK_INT(rows[1].priced_spans, 0);
    CHECK(halo_cost_unpriced(rows[1].cost, rows[1].priced_spans,
                             rows[1].input_tokens, rows[1].output_tokens));
    /* a trace stored before the count (priced_spans 0) with a cost above
     * 0 is priced */
    CHECK(!halo_cost_unpriced(0.5, 0, 100, 0));
    CHECK_INT(sql_int(path, "SELECT priced_spans FROM traces WHERE"
                            " agent_id = 'local'"),
              2);
    halo_arena_free(a);
    halo_batch_done(b1, HALO_OK, "");
    halo_batch_done(b2, HALO_OK, "");
    halo_store_close(st);
}

/* Input and output are stored once: the attribute that repeats one holds
 * null in span_rows, and the spans view gives the attributes back as they
 * were encoded, to the byte: in either order, after characters of several
 * bytes, when input and output are the same text. A text that splicing
 * could not give back exactly (invalid UTF-8), a short one and a value
 * that is not a string are kept whole. */
TEST(input_output_stored_once)
{
    const char *path = db_path("io_once.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    halo_batch *b = io_batch();
    CHECK(b);
    halo_span *sp = b->head->spans;
    CHECK_INT(halo_store_write_batch(st, b, NULL, &err), HALO_OK);

    char q[200];
    for (int i = 0; i < IO_SPANS; i++) {
        snprintf(q, sizeof q,
                 "SELECT (input_at IS NOT NULL) || (output_at IS NOT NULL) "
                 "FROM span_rows WHERE span_id = '%016x'",
                 i + 1);
        char *cut = sql_text(path, q);
        CHECK_STR(cut, io_cut[i]);
        free(cut);
        if (i == IO_SPAN_FF)
            continue; /* \f and \b: SQLite escapes them differently */
        halo_buf want = HALO_BUF_INIT;
        halo_json_encode_attrs(&want, &sp[i].attrs);
        halo_buf_putc(&want, '\0');
        snprintf(q, sizeof q,
                 "SELECT attributes FROM spans WHERE span_id = '%016x'", i + 1);
        char *got = sql_text(path, q);
        CHECK_STR(got, want.data);
        free(got);
        halo_buf_free(&want);
    }
    /* what is stored: null in place of the text */
    char *raw = sql_text(path, "SELECT attributes FROM span_rows WHERE "
                               "span_id = '0000000000000004'");
    CHECK_STR(raw, "{\"output.value\":null}");
    free(raw);
    CHECK(sql_int(path, "SELECT sum(length(attributes)) FROM span_rows") <
          sql_int(path, "SELECT sum(length(attributes)) FROM spans") -
              4 * (long long)strlen(IO_OUT));

    /* the query API gives every span back as it came */
    halo_arena *ra = halo_arena_new(0);
    halo_span *got;
    size_t n;
    uint8_t tid[16];
    make_tid(tid, 1);
    CHECK_INT(st->ops->get_trace(st, tid, ra, &got, &n, &err), HALO_OK);
    CHECK_INT(n, IO_SPANS);
    for (size_t i = 0; i < IO_SPANS; i++)
        if (i != IO_SPAN_BAD) /* invalid UTF-8 comes back as U+FFFD */
            CHECK(span_eq(i, &sp[i], &got[i]));
    halo_arena_free(ra);
    halo_batch_done(b, HALO_OK, "");
    halo_store_close(st);
}

/* Resource and scope texts are stored once in shared_texts, whoever
 * writes them (a second handle on the file finds the first's rows), and the
 * spans view gives every span its texts back; a short text stays in its
 * row. Retention deletes a text with the last spans that refer to it, and
 * a writer whose cache still has the deleted text stores it again. */
TEST(resource_and_scope_stored_once)
{
    const char *path = db_path("shared.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    halo_store *st2 = open_store(path, false, &err);
    CHECK(st && st2);
    span_opts o[4];
    for (int i = 0; i < 4; i++)
        o[i] = (span_opts){.trace = 500 + (uint64_t)i,
                           .span = 1,
                           .start_ms = (uint64_t)i * 1000,
                           .dur_ms = 5,
                           .agent = "a"};
    halo_batch *b1 = batch_of(o, 2), *b2 = batch_of(o + 2, 1);
    CHECK_INT(halo_store_write_batch(st, b1, NULL, &err), HALO_OK);
    CHECK_INT(halo_store_write_batch(st2, b2, NULL, &err), HALO_OK);

    halo_buf res = HALO_BUF_INIT, scope = HALO_BUF_INIT;
    halo_json_encode_attrs(&res, &b1->head->spans[0].resource->attrs);
    halo_json_encode_scope(&scope, b1->head->spans[0].scope);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM shared_texts"), 2);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM span_rows WHERE resource = ''"
                            " AND scope IS NULL AND resource_ref IS NOT NULL"
                            " AND scope_ref IS NOT NULL"),
              3);
    char *got = sql_text(path, "SELECT group_concat(DISTINCT resource) || '|'"
                               " || group_concat(DISTINCT scope) FROM spans");
    halo_buf want = HALO_BUF_INIT;
    halo_buf_printf(&want, "%s|%s", res.data, scope.data);
    CHECK_STR(got, want.data);
    free(got);
    /* last_start covers the latest span that refers to the text */
    CHECK_INT(sql_int(path, "SELECT min(last_start) >= (SELECT max("
                            "start_unix_nano) FROM span_rows) FROM "
                            "shared_texts"),
              1);

    /* a short resource stays in its row */
    halo_batch *b3 = batch_of(o + 3, 1);
    halo_resource tiny = {.attrs = {NULL, 0}, .schema_url = ""};
    b3->head->spans[0].resource = &tiny;
    CHECK_INT(halo_store_write_batch(st, b3, NULL, &err), HALO_OK);
    got = sql_text(path, "SELECT resource || (resource_ref IS NULL) FROM "
                         "span_rows WHERE start_unix_nano = (SELECT max("
                         "start_unix_nano) FROM span_rows)");
    CHECK_STR(got, "{}1");
    free(got);

    /* retention past every span: the texts go with them */
    int64_t deleted;
    bool more = true;
    while (more)
        CHECK_INT(st2->ops->retention_step(st2, T0 + 86400000000000ull * 30,
                                           100, &deleted, &more, &err),
                  HALO_OK);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM span_rows"), 0);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM shared_texts"), 0);
    /* st's cache still has them: it must store them again */
    halo_batch *b4 = batch_of(o, 1);
    CHECK_INT(halo_store_write_batch(st, b4, NULL, &err), HALO_OK);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM shared_texts"), 2);
    got = sql_text(path, "SELECT resource FROM spans");
    CHECK_STR(got, res.data);
    free(got);

    halo_buf_free(&res);
    halo_buf_free(&scope);
    halo_buf_free(&want);
    halo_batch *bs[] = {b1, b2, b3, b4};
    for (int i = 0; i < 4; i++)
        halo_batch_done(bs[i], HALO_OK, "");
    halo_store_close(st);
    halo_store_close(st2);
}

TEST(list_traces_filters)
{
    const char *path = db_path("list.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    halo_batch *b = stats_batch();
    CHECK_INT(halo_store_write_batch(st, b, NULL, &err), HALO_OK);
    halo_store_close(st);
    /* read through a read-only handle */
    st = open_store(path, true, &err);
    CHECK(st);
    halo_arena *a = halo_arena_new(0);
    halo_trace_row *rows;
    size_t n;
    halo_trace_filter f = {.limit = 5};
    CHECK_INT(st->ops->list_traces(st, &f, a, &rows, &n, &err), HALO_OK);
    CHECK_INT(n, 5);
    CHECK_STR(rows[0].agent_id, "b"); /* newest first */
    CHECK_STR(rows[0].trace_id, "abababababababab00000000000007d1");
    CHECK(rows[0].start_ns == T0 + 6000000000ull);
    CHECK_STR(rows[0].start_time, "2025-11-16T09:00:06.000000000Z");
    CHECK_STR(rows[0].root_name, "root");
    CHECK(rows[0].duration_ms == 1000.0);
    CHECK_INT(rows[2].span_count, 1);
    CHECK_STR(rows[2].agent_id, "a");
    f = (halo_trace_filter){.agent_id = "a", .errors_only = true};
    CHECK_INT(st->ops->list_traces(st, &f, a, &rows, &n, &err), HALO_OK);
    CHECK_INT(n, 10);
    for (size_t i = 0; i < n; i++)
        CHECK_INT(rows[i].error_count, 1);
    f = (halo_trace_filter){.since_ns = T0 + 100000000ull,
                            .until_ns = T0 + 200000000ull};
    CHECK_INT(st->ops->list_traces(st, &f, a, &rows, &n, &err), HALO_OK);
    CHECK_INT(n, 10);
    f = (halo_trace_filter){.agent_id = "nobody"};
    CHECK_INT(st->ops->list_traces(st, &f, a, &rows, &n, &err), HALO_OK);
    CHECK_INT(n, 0);
    /* writes are refused on a read-only handle */
    CHECK_INT(halo_store_write_batch(st, b, NULL, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "read-only");
    halo_arena_free(a);
    halo_batch_done(b, HALO_OK, "");
    halo_store_close(st);
}

TEST(migrations_and_versions)
{
    const char *path = db_path("migr.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    halo_store_close(st);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM schema_migrations"),
              halo_store_schema_version());
    /* reopening applies nothing */
    st = open_store(path, false, &err);
    CHECK(st);
    halo_store_close(st);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM schema_migrations"),
              halo_store_schema_version());
    CHECK_INT(sql_int(path, "SELECT max(version) FROM schema_migrations"),
              halo_store_schema_version());
    CHECK_INT(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name IN"
                            " ('spans', 'traces', 'reports', 'analyzer_runs')"),
              4);
    CHECK_INT(halo_store_schema_version(), 8);
    /* a database as a binary of schema version 2 left it: no
     * analyzer_runs, traces WITHOUT ROWID keyed by trace_id, spans keyed
     * by (trace_id, span_id), two traces of three spans. A reader refuses
     * it until it is migrated. */
    path = db_path("migr2.db");
    CHECK(make_db_at(path, 2));
    CHECK_INT(
        sql_exec(
            path,
            "INSERT INTO traces VALUES ('bb', 'a', 'a', 's', 'u', 'r', "
            "'2026-01-02', '2026-01-02', 1.5, 3, 1, 1, 1, 10, 20, 0.5, 2, "
            "3, 'r1', 0), ('aa', 'b', NULL, NULL, NULL, NULL, "
            "'2026-01-03', '2026-01-03', 0, 1, 0, 0, 0, 0, 0, 0, 5, 5, "
            "NULL, 4);"
            "INSERT INTO spans VALUES ('bb', 'r1', NULL, 'root', 'SERVER', "
            "'AGENT', 'a', 'a', 's', 'u', 'svc', NULL, NULL, '2026-01-02', "
            "'2026-01-02', 1.5, 'OK', NULL, 'in', 'out', 10, 20, 0.5, '{}', "
            "'[]', '{}', 2, 3, 'ts', 1, '[]', '{}', 'url', 1, 2, 3, 4, 0, "
            "'{\"k\":\"int\"}'), ('bb', 'c1', 'r1', 'llm', 'CLIENT', 'LLM', "
            "'a', 'a', 's', 'u', 'svc', 'm', NULL, '2026-01-02', "
            "'2026-01-02', 0, 'ERROR', 'boom', NULL, NULL, NULL, NULL, NULL,"
            " '{\"x\":1}', '[]', '{}', 2, 2, NULL, 0, NULL, NULL, NULL, 0, 0,"
            " 0, 0, 5, NULL), ('aa', 'z9', NULL, 'solo', 'INTERNAL', NULL, "
            "'b', NULL, NULL, NULL, NULL, NULL, NULL, '2026-01-03', "
            "'2026-01-03', 0, 'UNSET', NULL, NULL, NULL, NULL, NULL, NULL, "
            "'{}', '[]', '{}', 5, 5, NULL, 0, NULL, NULL, NULL, 0, 0, 0, 0, "
            "4, NULL);"
            "CREATE TABLE traces_before AS SELECT * FROM traces;"
            "CREATE TABLE spans_before AS SELECT * FROM spans"),
        SQLITE_OK);
    CHECK(!open_store(path, true, &err));
    CHECK_CONTAINS(err.msg, "has schema version 2, older than");
    st = open_store(path, false, &err);
    CHECK(st);
    halo_store_close(st);
    CHECK_INT(sql_int(path, "SELECT max(version) FROM schema_migrations"), 8);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM analyzer_runs"), 0);
    /* traces and spans kept every value of every column, in the same
     * column order; the traces' rows are numbered in start order (not
     * trace id order) */
    CHECK_INT(sql_int(path, "SELECT count(*) FROM (SELECT * FROM "
                            "traces_before EXCEPT SELECT trace_id, agent_id,"
                            " agent_name, session_id, user_id, root_name,"
                            " start_time, end_time, duration_ms, span_count,"
                            " error_count, llm_calls, tool_calls,"
                            " input_tokens, output_tokens, cost,"
                            " start_unix_nano, end_unix_nano, root_span_id,"
                            " identity_pending FROM traces)"),
              0);
    /* migration 6: traces stored before count no priced span */
    CHECK_INT(sql_int(path, "SELECT sum(priced_spans) FROM traces"), 0);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM traces"), 2);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM (SELECT * FROM "
                            "spans_before EXCEPT SELECT * FROM spans)"),
              0);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans"), 3);
    char *rows = sql_text(path, "SELECT group_concat(trace_id, ' ') FROM "
                                "(SELECT * FROM trace_rows ORDER BY id)");
    CHECK_STR(rows, "bb aa");
    free(rows);
    rows = sql_text(path, "SELECT group_concat(t.trace_id || '/' || "
                          "s.span_id, ' ') FROM (SELECT * FROM span_rows "
                          "ORDER BY rowid) s JOIN trace_rows t ON t.id = "
                          "s.trace_rowid");
    CHECK_STR(rows, "bb/c1 bb/r1 aa/z9");
    free(rows);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type = "
                            "'index' AND name IN ('trace_rows_trace', "
                            "'trace_rows_start', 'trace_rows_agent_start', "
                            "'span_rows_key')"),
              4);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type = "
                            "'view' AND name IN ('spans', 'traces')"),
              2);
    CHECK_INT(sql_exec(path, "INSERT INTO trace_rows (trace_id, start_time, "
                             "end_time, duration_ms, start_unix_nano, "
                             "end_unix_nano) VALUES ('aa', '', '', 0, 0, 0)"),
              SQLITE_CONSTRAINT);
    CHECK_INT(sql_exec(path, "INSERT INTO span_rows SELECT * FROM span_rows "
                             "LIMIT 1"),
              SQLITE_CONSTRAINT);
    /* the migrated store is written to like a new one */
    st = open_store(path, false, &err);
    CHECK(st);
    halo_store_close(st);
    char *jm = sql_text(path, "PRAGMA journal_mode");
    CHECK_STR(jm, "wal");
    free(jm);
    /* a newer schema: refused by both modes */
    CHECK_INT(sql_exec(path, "INSERT INTO schema_migrations VALUES (99, 'x')"),
              SQLITE_OK);
    CHECK(!open_store(path, false, &err));
    CHECK_CONTAINS(err.msg, "schema version 99, newer than");
    CHECK(!open_store(path, true, &err));
    CHECK_CONTAINS(err.msg, "newer than");
    /* a missing database in read-only mode */
    const char *missing = db_path("nope.db");
    CHECK(!open_store(missing, true, &err));
    char want[700];
    snprintf(want, sizeof want,
             "database \"%s\" does not exist (has `halo serve` or `halo "
             "import` written to it?)",
             missing);
    CHECK_STR(err.msg, want);
    CHECK(access(missing, F_OK) != 0);
    /* a file that is not a halo database */
    const char *other = db_path("other.db");
    CHECK_INT(sql_exec(other, "CREATE TABLE t (x)"), SQLITE_OK);
    CHECK(!open_store(other, true, &err));
    CHECK_CONTAINS(err.msg, "not a halo database");
}

TEST(reports_table)
{
    const char *path = db_path("reports.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    halo_report_row r = {.id = "r1",
                         .agent_id = "a",
                         .schedule = "hourly",
                         .window_start = "2025-11-16T09:00:00Z",
                         .window_end = "2025-11-16T10:00:00Z",
                         .generated_at = "2025-11-16T10:05:00Z",
                         .mode = "detectors",
                         .json = "{}",
                         .markdown = "# r"};
    CHECK_INT(st->ops->put_report(st, &r, &err), HALO_OK);
    r.markdown = "# r v2";
    CHECK_INT(st->ops->put_report(st, &r, &err), HALO_OK);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM reports"), 1);
    char *s = sql_text(path, "SELECT markdown || '|' || coalesce(model, "
                             "'NULL') FROM reports");
    CHECK_STR(s, "# r v2|NULL");
    free(s);
    halo_store_close(st);
}

/* ---- json_attrs ---------------------------------------------------------- */

TEST(json_attrs_decode_rejects_bad_shapes)
{
    halo_arena *a = halo_arena_new(0);
    halo_err err = {{0}};
    halo_attrs at;
    halo_event *ev;
    halo_link *ln;
    size_t n;
    halo_scope sc;
    CHECK_INT(halo_json_decode_attrs("[1]", 3, a, &at, "attributes", &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "attributes");
    CHECK_INT(halo_json_decode_attrs("{\"a\":", 5, a, &at, "attributes", &err),
              HALO_EINVAL);
    CHECK_INT(halo_json_decode_attrs(NULL, 0, a, &at, "attributes", &err),
              HALO_OK);
    CHECK_INT(at.n, 0);
    CHECK_INT(halo_json_decode_events("{}", 2, a, &ev, &n, &err), HALO_EINVAL);
    const char *bad_ev = "[{\"name\":\"x\",\"time_unix_nano\":\"soon\"}]";
    CHECK_INT(halo_json_decode_events(bad_ev, strlen(bad_ev), a, &ev, &n, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "events[0].time_unix_nano");
    const char *bad_ln = "[{\"trace_id\":\"abc\",\"span_id\":\"00\"}]";
    CHECK_INT(halo_json_decode_links(bad_ln, strlen(bad_ln), a, &ln, &n, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "links[0].trace_id");
    CHECK_INT(halo_json_decode_scope("7", 1, a, &sc, &err), HALO_EINVAL);
    const char *bad_cnt = "{\"dropped_attributes_count\":-1}";
    CHECK_INT(halo_json_decode_scope(bad_cnt, strlen(bad_cnt), a, &sc, &err),
              HALO_EINVAL);
    /* embedded NUL survives */
    const char *nul = "{\"k\":\"a\\u0000b\"}";
    CHECK_INT(halo_json_decode_attrs(nul, strlen(nul), a, &at, "x", &err),
              HALO_OK);
    CHECK_INT(at.items[0].value.u.s.len, 3);
    halo_buf b = HALO_BUF_INIT;
    halo_base64_encode(&b, "f", 1);
    halo_base64_encode(&b, "fo", 2);
    halo_base64_encode(&b, "foo", 3);
    halo_base64_encode(&b, "foob", 4);
    CHECK_STR(b.data, "Zg==Zm8=Zm9vZm9vYg==");
    halo_buf_free(&b);
    halo_arena_free(a);
}

/* A string attribute value is written exactly as halo_buf_json_str writes
 * the string, for any bytes (test_core checks that encoder against a
 * byte-by-byte reference). */
TEST(json_string_encoding_matches_buf)
{
    uint64_t seed = 42;
    halo_buf a = HALO_BUF_INIT, b = HALO_BUF_INIT, in = HALO_BUF_INIT;
    for (int iter = 0; iter < 20000; iter++) {
        halo_buf_reset(&in);
        fx_tricky_string(&in, &seed, 12);
        halo_value v = {.type = HALO_VAL_STRING};
        v.u.s.ptr = in.data ? in.data : "";
        v.u.s.len = in.len;
        halo_buf_reset(&a);
        halo_buf_reset(&b);
        halo_json_encode_value(&a, &v);
        halo_buf_json_str(&b, v.u.s.ptr, v.u.s.len);
        CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    }
    halo_buf_free(&a);
    halo_buf_free(&b);
    halo_buf_free(&in);
}

/* ---- throughput ---------------------------------------------------------- */

/* A batch of realistic agent spans: traces of 8 spans, ~12 attributes. */
static halo_batch *perf_batch(uint64_t first_trace, size_t n)
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
                                 "tool.name",
                                 "http.status_code",
                                 "retry",
                                 "temperature"};
    for (size_t i = 0; i < n; i++) {
        uint64_t t = first_trace + i / 8;
        span_opts o = {.trace = t,
                       .span = i % 8 + 1,
                       .parent = i % 8 ? 1 : 0,
                       .start_ms = i,
                       .dur_ms = 3,
                       .agent = "support-bot",
                       .type = i % 8 ? (i % 2 ? "LLM" : "TOOL") : "AGENT",
                       .status = i % 50 == 0 ? HALO_STATUS_ERROR : 0};
        fill_span(&sp[i], res, scope, &o);
        make_tid_random(sp[i].trace_id, t);
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
            v_str("search_docs"),
            v_int(200),
            v_bool(false),
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

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mono_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* Write total spans in transactions of group batches of per spans each;
 * prints the figures. */
static bool measure(const char *name, size_t total, size_t per, size_t group)
{
    const char *path = db_path(name);
    halo_err err = {{0}};
    halo_store_opts o = {.path = path,
                         .background_checkpoint = true,
                         .wal_limit_bytes = 128 << 20};
    halo_store *st = NULL;
    if (halo_store_open_sqlite(&o, &st, &err) != HALO_OK) {
        fprintf(stderr, "  %s\n", err.msg);
        return false;
    }
    double spent = 0, cpu = 0;
    bool ok = true;
    halo_batch *bs[16];
    for (size_t done = 0; ok && done < total; done += per * group) {
        size_t n = 0;
        for (; n < group && done + n * per < total; n++) {
            size_t first = done + n * per;
            size_t k = total - first < per ? total - first : per;
            bs[n] = perf_batch(1 + first / 8, k);
        }
        double t0 = mono_s(), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        halo_status s = st->ops->write_batches(
            st, (const halo_batch *const *)bs, n, NULL, &err);
        spent += mono_s() - t0;
        cpu += clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        for (size_t i = 0; i < n; i++)
            halo_batch_done(bs[i], HALO_OK, "");
        if (s != HALO_OK) {
            fprintf(stderr, "  %s\n", err.msg);
            ok = false;
        }
    }
    /* the checkpointer keeps the log bounded: 128 MiB + one transaction
     * (~25 MB at 8192 spans: the rows and the index pages they touch);
     * without checkpoints it would hold every transaction, ~600 MB */
    char wal[700];
    snprintf(wal, sizeof wal, "%s-wal", path);
    struct stat sb;
    long long wal_size = stat(wal, &sb) == 0 ? (long long)sb.st_size : -1;
    halo_store_close(st);
    printf("  write-ahead log: %lld bytes at the end\n", wal_size);
    if (per * group <= 8192 && wal_size > 192ll << 20) {
        fprintf(stderr, "  the WAL grew to %lld bytes\n", wal_size);
        ok = false;
    }
    printf("  sqlite store, %zu-span transactions: %zu spans in %.2fs = "
           "%.0f spans/s (writer thread CPU %.2fs = %.0f spans per "
           "CPU-second; synchronous=full)\n",
           per * group, total, spent, (double)total / spent, cpu,
           (double)total / cpu);
    printf("  database: %lld bytes per span\n",
           sql_int(path, "SELECT page_count * page_size FROM "
                         "pragma_page_count(), pragma_page_size()") /
               (long long)total);
    return ok;
}

TEST(write_throughput)
{
    const size_t total = 200000;
    CHECK(measure("perf.db", total, 8192, 1));
    const char *path = db_path("perf.db");
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans"), (long long)total);
    CHECK_INT(sql_int(path, "SELECT sum(span_count) FROM traces"),
              (long long)total);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM traces"),
              (long long)total / 8);
    /* the exporter's group commit under load: 8 batches per transaction */
    CHECK(measure("perf-group.db", total, 8192, 8));
    CHECK_INT(sql_int(db_path("perf-group.db"), "SELECT count(*) FROM spans"),
              (long long)total);
}

/* The page cache stays within cache_size during a transaction bigger than
 * it, on a new database too: SQLite 3.40 kept ~4 times the cache when
 * cache_size was set before the page size changed from 4 to 16 KiB. The
 * pages stay cached after the commit, so the heap grows by about the
 * cache (SQLite's own memory statistics are off in halo, for speed). */
static size_t heap_in_use(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

TEST(page_cache_bounded_by_cache_size)
{
    const char *path = db_path("cache.db");
    halo_err err = {{0}};
    halo_store_opts o = {.path = path, .cache_kib = 4096};
    halo_store *st = NULL;
    CHECK(halo_store_open_sqlite(&o, &st, &err) == HALO_OK);
    if (!st)
        return;
    halo_batch *bs[6];
    for (size_t i = 0; i < 6; i++)
        bs[i] = perf_batch(1 + i * 1024, 8192); /* ~50 MB of rows */
    size_t before = heap_in_use();
    CHECK(st->ops->write_batches(st, (const halo_batch *const *)bs, 6, NULL,
                                 &err) == HALO_OK);
    size_t after = heap_in_use();
    for (size_t i = 0; i < 6; i++)
        halo_batch_done(bs[i], HALO_OK, "");
    halo_store_close(st);
    double grew = after > before ? (double)(after - before) / 1048576.0 : 0;
    printf("  heap grew %.1f MiB over a 49k-span transaction with a 4 MiB "
           "page cache\n",
           grew);
    CHECK(grew < 8.0); /* the cache and statements; 16+ MiB before */
}

/* ---- the exporter -------------------------------------------------------- */

typedef struct ack_result {
    atomic_int done;
    atomic_int status;
    char msg[HALO_ERR_MAX];
} ack_result;

static void on_ack(void *ud, halo_status st, const char *msg)
{
    ack_result *r = ud;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
    atomic_store(&r->status, (int)st);
    atomic_store(&r->done, 1);
}

static bool wait_ack(ack_result *r, double seconds)
{
    double deadline = mono_s() + seconds;
    while (!atomic_load(&r->done) && mono_s() < deadline)
        usleep(1000);
    return atomic_load(&r->done);
}

/* A batch of one trace (id) carrying an ack reporting into r. */
static halo_batch *acked_batch(uint64_t trace, ack_result *r)
{
    span_opts o[2] = {
        {.trace = trace,
         .span = 1,
         .start_ms = 0,
         .dur_ms = 10,
         .agent = "exp"},
        {.trace = trace,
         .span = 2,
         .parent = 1,
         .start_ms = 1,
         .dur_ms = 2,
         .agent = "exp"},
    };
    halo_batch *b = batch_of(o, 2);
    halo_ack *ack = halo_ack_new(on_ack, r);
    halo_batch_add_ack(b, ack);
    halo_ack_unref(ack); /* the batch holds it now */
    return b;
}

typedef struct exp_fixture {
    halo_component c;
    halo_node *node;
} exp_fixture;

extern const halo_component_def halo_exporter_sqlite;

static bool exp_init(exp_fixture *f, const char *yaml, halo_err *err)
{
    halo_errlist errs = {0};
    memset(f, 0, sizeof *f);
    f->node = halo_config_parse(yaml, strlen(yaml), "test.yaml", &errs);
    f->c.def = &halo_exporter_sqlite;
    f->c.id = "sqlite";
    f->c.log_prefix = "exporter:sqlite";
    f->c.cfg = calloc(1, halo_exporter_sqlite.cfg_size);
    bool ok = f->node && halo_config_apply(halo_exporter_sqlite.schema, f->node,
                                           f->c.cfg, "exporters.sqlite", &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "  %s\n", errs.msgs[i]);
    halo_errlist_free(&errs);
    return ok && halo_exporter_sqlite.create(&f->c, err) == HALO_OK;
}

static void exp_free(exp_fixture *f)
{
    f->c.def->destroy(&f->c);
    halo_config_release(f->c.def->schema, f->c.cfg);
    free(f->c.cfg);
    halo_node_free(f->node);
}

TEST(exporter_acks_after_commit)
{
    char yaml[800];
    const char *path = db_path("sub/dir/exp.db");
    snprintf(yaml, sizeof yaml, "path: %s\nretention: 0\n", path);
    exp_fixture f;
    halo_err err = {{0}};
    CHECK(exp_init(&f, yaml, &err));
    CHECK_INT(f.c.def->start(&f.c, &err), HALO_OK);
    ack_result r[3];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 3; i++)
        CHECK_INT(f.c.def->consume(&f.c, acked_batch(300 + i, &r[i])), HALO_OK);
    for (int i = 0; i < 3; i++) {
        CHECK(wait_ack(&r[i], 10));
        CHECK_INT(atomic_load(&r[i].status), HALO_OK);
    }
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans"), 6);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM traces WHERE "
                            "span_count = 2 AND agent_id = 'exp'"),
              3);
    halo_metric *sent = halo_counter("halo_exporter_sent_spans_total", "",
                                     "exporter=\"sqlite\"");
    CHECK(halo_metric_value(sent) >= 6);
    /* shutdown drains, then refuses */
    ack_result late = {0};
    f.c.def->shutdown(&f.c);
    f.c.def->shutdown(&f.c); /* safe twice */
    CHECK_INT(f.c.def->consume(&f.c, acked_batch(400, &late)), HALO_ESHUTDOWN);
    CHECK(wait_ack(&late, 1));
    CHECK_INT(atomic_load(&late.status), HALO_ESHUTDOWN);
    exp_free(&f);
}

TEST(exporter_queue_full_and_write_failure)
{
    char yaml[800];
    const char *path = db_path("full.db");
    snprintf(yaml, sizeof yaml,
             "path: %s\nqueue_size: 1\nbusy_timeout: 2s\nretention: 0\n", path);
    exp_fixture f;
    halo_err err = {{0}};
    CHECK(exp_init(&f, yaml, &err));
    CHECK_INT(f.c.def->start(&f.c, &err), HALO_OK);
    halo_metric *depth =
        halo_gauge("halo_exporter_queue_depth", "", "exporter=\"sqlite\"");

    /* hold the write lock from another connection: the writer blocks */
    sqlite3 *db;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    ack_result r[3];
    memset(r, 0, sizeof r);
    CHECK_INT(f.c.def->consume(&f.c, acked_batch(500, &r[0])), HALO_OK);
    double deadline = mono_s() + 5; /* until the writer took it */
    while (halo_metric_value(depth) != 0 && mono_s() < deadline)
        usleep(500);
    CHECK(halo_metric_value(depth) == 0);
    CHECK_INT(f.c.def->consume(&f.c, acked_batch(501, &r[1])), HALO_OK);
    CHECK_INT(f.c.def->consume(&f.c, acked_batch(502, &r[2])), HALO_ERETRY);
    CHECK(wait_ack(&r[2], 1));
    CHECK_INT(atomic_load(&r[2].status), HALO_ERETRY);
    CHECK_STR(r[2].msg, "sqlite exporter queue full");

    /* the lock outlives busy_timeout: the first write fails, retryable */
    CHECK(wait_ack(&r[0], 10));
    CHECK_INT(atomic_load(&r[0].status), HALO_ERETRY);
    CHECK_CONTAINS(r[0].msg, "locked");
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    /* the queued batch goes through once the lock is gone */
    CHECK(wait_ack(&r[1], 10));
    CHECK_INT(atomic_load(&r[1].status), HALO_OK);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM traces"), 1);
    f.c.def->shutdown(&f.c);
    exp_free(&f);
}

/* synchronous=full: a commit is confirmed only after the sync that
 * follows it (deferred sync). The store's sync() is wrapped so the test
 * holds it: the rows are committed (another connection reads them) while
 * the client has no answer yet; a failed sync answers retryably. */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool hold;   /* sync() waits while set */
    int waiting; /* sync() calls waiting */
    int calls;   /* sync() calls in all */
    bool fail;   /* the next sync() fails */
    halo_status (*real)(halo_store *, halo_err *);
} held_sync = {PTHREAD_MUTEX_INITIALIZER,
               PTHREAD_COND_INITIALIZER,
               false,
               0,
               0,
               false,
               NULL};

static halo_status held_sync_fn(halo_store *st, halo_err *err)
{
    pthread_mutex_lock(&held_sync.mu);
    held_sync.calls++;
    held_sync.waiting++;
    pthread_cond_broadcast(&held_sync.cv);
    while (held_sync.hold)
        pthread_cond_wait(&held_sync.cv, &held_sync.mu);
    held_sync.waiting--;
    bool fail = held_sync.fail;
    held_sync.fail = false;
    pthread_mutex_unlock(&held_sync.mu);
    if (fail)
        return halo_fail(err, HALO_EIO, "could not sync: test failure");
    return held_sync.real(st, err);
}

static bool held_sync_wait_waiting(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)seconds;
    pthread_mutex_lock(&held_sync.mu);
    while (!held_sync.waiting &&
           pthread_cond_timedwait(&held_sync.cv, &held_sync.mu, &ts) == 0)
        ;
    bool ok = held_sync.waiting > 0;
    pthread_mutex_unlock(&held_sync.mu);
    return ok;
}

static void held_sync_set(bool hold, bool fail)
{
    pthread_mutex_lock(&held_sync.mu);
    held_sync.hold = hold;
    held_sync.fail = fail;
    pthread_cond_broadcast(&held_sync.cv);
    pthread_mutex_unlock(&held_sync.mu);
}

TEST(exporter_confirms_only_after_sync)
{
    char yaml[800];
    const char *path = db_path("deferred.db");
    snprintf(yaml, sizeof yaml, "path: %s\nretention: 0\n", path);
    exp_fixture f;
    halo_err err = {{0}};
    CHECK(exp_init(&f, yaml, &err));
    CHECK_INT(f.c.def->start(&f.c, &err), HALO_OK);
    halo_store *st = halo_sqlite_exporter_store(&f.c);
    CHECK(st && st->ops->sync);
    halo_store_ops ops = *st->ops;
    held_sync.real = ops.sync;
    held_sync.calls = 0;
    ops.sync = held_sync_fn;
    held_sync_set(true, false);
    st->ops = &ops; /* the writer has nothing to do yet: no race */

    ack_result r = {0};
    CHECK_INT(f.c.def->consume(&f.c, acked_batch(700, &r)), HALO_OK);
    CHECK(held_sync_wait_waiting(10));
    /* committed, readable by another connection, and not yet confirmed */
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans"), 2);
    CHECK(!atomic_load(&r.done));
    /* the writer goes on committing while the sync is held */
    ack_result r2 = {0};
    CHECK_INT(f.c.def->consume(&f.c, acked_batch(701, &r2)), HALO_OK);
    double deadline = mono_s() + 10;
    while (sql_int(path, "SELECT count(*) FROM spans") != 4 &&
           mono_s() < deadline)
        usleep(1000);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans"), 4);
    CHECK(!atomic_load(&r.done) && !atomic_load(&r2.done));
    held_sync_set(false, false);
    CHECK(wait_ack(&r, 10) && wait_ack(&r2, 10));
    CHECK_INT(atomic_load(&r.status), HALO_OK);
    CHECK_INT(atomic_load(&r2.status), HALO_OK);
    CHECK(held_sync.calls >= 2); /* one sync at least after each commit */

    /* a failed sync: the client is told to retry, with the reason */
    held_sync_set(false, true);
    ack_result r3 = {0};
    CHECK_INT(f.c.def->consume(&f.c, acked_batch(702, &r3)), HALO_OK);
    CHECK(wait_ack(&r3, 10));
    CHECK_INT(atomic_load(&r3.status), HALO_ERETRY);
    CHECK_CONTAINS(r3.msg, "could not sync");
    f.c.def->shutdown(&f.c);
    exp_free(&f);

    /* synchronous: normal confirms after the commit alone: no sync */
    const char *p2 = db_path("normal.db");
    snprintf(yaml, sizeof yaml, "path: %s\nretention: 0\nsynchronous: normal\n",
             p2);
    CHECK(exp_init(&f, yaml, &err));
    CHECK_INT(f.c.def->start(&f.c, &err), HALO_OK);
    st = halo_sqlite_exporter_store(&f.c);
    ops = *st->ops;
    held_sync.real = ops.sync;
    ops.sync = held_sync_fn;
    held_sync_set(true, false);
    st->ops = &ops;
    ack_result r4 = {0};
    CHECK_INT(f.c.def->consume(&f.c, acked_batch(703, &r4)), HALO_OK);
    CHECK(wait_ack(&r4, 10));
    CHECK_INT(atomic_load(&r4.status), HALO_OK);
    held_sync_set(false, false);
    f.c.def->shutdown(&f.c);
    exp_free(&f);
}

/* fdatasync, wrapped at link time (CMakeLists.txt: -Wl,--wrap=fdatasync):
 * how often the watched file is synced, and a way to fail the next sync. */
int __real_fdatasync(int fd);
static struct {
    atomic_ulong dev, ino; /* the watched file */
    atomic_int on_watched; /* fdatasync calls on it */
    atomic_int fail_next;  /* the next call on it fails with EIO */
} fsync_watch;

int __wrap_fdatasync(int fd);
int __wrap_fdatasync(int fd)
{
    struct stat sb;
    if (fstat(fd, &sb) == 0 &&
        (unsigned long)sb.st_dev == atomic_load(&fsync_watch.dev) &&
        (unsigned long)sb.st_ino == atomic_load(&fsync_watch.ino)) {
        atomic_fetch_add(&fsync_watch.on_watched, 1);
        if (atomic_exchange(&fsync_watch.fail_next, 0)) {
            errno = EIO;
            return -1;
        }
    }
    return __real_fdatasync(fd);
}

static bool watch_file(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return false;
    atomic_store(&fsync_watch.dev, (unsigned long)sb.st_dev);
    atomic_store(&fsync_watch.ino, (unsigned long)sb.st_ino);
    atomic_store(&fsync_watch.on_watched, 0);
    return true;
}

/* The writer connection's PRAGMA synchronous: 1 NORMAL, 2 FULL. */
static int writer_synchronous(halo_store *st)
{
    sqlite3_stmt *q;
    int v = -1;
    if (sqlite3_prepare_v2(((sq_store *)st)->db, "PRAGMA synchronous", -1, &q,
                           NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return v;
}

static halo_status write_one(halo_store *st, uint64_t trace, halo_err *err)
{
    halo_batch *b = perf_batch(trace, 10);
    halo_status s =
        st->ops->write_batches(st, (const halo_batch *const *)&b, 1, NULL, err);
    halo_batch_done(b, HALO_OK, "");
    return s;
}

/* Deferred sync: commits do not sync (NORMAL) and sync() fdatasyncs the
 * write-ahead log itself. A failed sync is final: later syncs and writes
 * are refused until the database is reopened. Without a log to sync (an
 * in-memory database) commits keep syncing themselves (FULL) and sync()
 * succeeds at once. */
TEST(deferred_sync_syncs_the_log_and_fails_for_good)
{
    halo_err err = {{0}};
    halo_store *st = NULL;
    const char *path = db_path("deferred-store.db");
    halo_store_opts o = {.path = path, .deferred_sync = true};
    CHECK_INT(halo_store_open_sqlite(&o, &st, &err), HALO_OK);
    CHECK_INT(writer_synchronous(st), 1);
    char wal[700];
    snprintf(wal, sizeof wal, "%s-wal", path);
    CHECK(watch_file(wal));
    CHECK_INT(write_one(st, 1, &err), HALO_OK);
    CHECK_INT(atomic_load(&fsync_watch.on_watched), 0); /* commit: no sync */
    CHECK_INT(st->ops->sync(st, &err), HALO_OK);
    CHECK_INT(atomic_load(&fsync_watch.on_watched), 1);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans"), 10);

    atomic_store(&fsync_watch.fail_next, 1);
    CHECK_INT(st->ops->sync(st, &err), HALO_EIO);
    CHECK_CONTAINS(err.msg, "could not sync the write-ahead log");
    CHECK_INT(st->ops->sync(st, &err), HALO_EIO); /* no second chance */
    CHECK_CONTAINS(err.msg, "restart halo");
    CHECK_INT(write_one(st, 100, &err), HALO_EIO);
    CHECK_CONTAINS(err.msg, "restart halo");
    halo_store_close(st);
    /* reopened (SQLite recovers the log): writes are taken again */
    CHECK_INT(halo_store_open_sqlite(&o, &st, &err), HALO_OK);
    CHECK_INT(write_one(st, 100, &err), HALO_OK);
    CHECK_INT(st->ops->sync(st, &err), HALO_OK);
    halo_store_close(st);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans"), 20);
    atomic_store(&fsync_watch.ino, 0);

    o.path = ":memory:";
    CHECK_INT(halo_store_open_sqlite(&o, &st, &err), HALO_OK);
    CHECK_INT(writer_synchronous(st), 2);
    CHECK_INT(st->ops->sync(st, &err), HALO_OK);
    halo_store_close(st);
    /* without deferred_sync: FULL */
    o = (halo_store_opts){.path = db_path("plain.db")};
    CHECK_INT(halo_store_open_sqlite(&o, &st, &err), HALO_OK);
    CHECK_INT(writer_synchronous(st), 2);
    halo_store_close(st);
}

/* Producers still inside consume() (encoding rows) while shutdown runs:
 * every batch is answered exactly once, stored or refused retryably, and
 * nothing touches the store after shutdown closed it (a refused batch used
 * to free its rows through e->store after shutdown could clear it). */
typedef struct race_acks {
    atomic_int ok, refused, other;
} race_acks;

static void on_race_ack(void *ud, halo_status st, const char *msg)
{
    (void)msg;
    race_acks *a = ud;
    if (st == HALO_OK)
        atomic_fetch_add(&a->ok, 1);
    else if (st == HALO_ESHUTDOWN || st == HALO_ERETRY)
        atomic_fetch_add(&a->refused, 1);
    else
        atomic_fetch_add(&a->other, 1);
}

typedef struct race_producer {
    halo_component *c;
    race_acks *acks;
    uint64_t first_trace;
    int n;
} race_producer;

static void *race_produce(void *arg)
{
    race_producer *p = arg;
    for (int i = 0; i < p->n; i++) {
        span_opts o = {.trace = p->first_trace + (uint64_t)i,
                       .span = 1,
                       .start_ms = 0,
                       .dur_ms = 1,
                       .agent = "race"};
        halo_batch *b = batch_of(&o, 1);
        halo_ack *ack = halo_ack_new(on_race_ack, p->acks);
        halo_batch_add_ack(b, ack);
        halo_ack_unref(ack);
        p->c->def->consume(p->c, b);
    }
    return NULL;
}

TEST(exporter_shutdown_while_producers_consume)
{
    char yaml[800];
    const char *path = db_path("race.db");
    snprintf(yaml, sizeof yaml,
             "path: %s\nqueue_size: 4\nsynchronous: normal\nretention: 0\n",
             path);
    exp_fixture f;
    halo_err err = {{0}};
    CHECK(exp_init(&f, yaml, &err));
    CHECK_INT(f.c.def->start(&f.c, &err), HALO_OK);
    race_acks acks = {0};
    enum { PRODUCERS = 3, PER = 300 };
    race_producer p[PRODUCERS];
    pthread_t t[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (race_producer){&f.c, &acks, 10000 + (uint64_t)i * PER, PER};
        CHECK_INT(pthread_create(&t[i], NULL, race_produce, &p[i]), 0);
    }
    /* shut down once the producers are well under way */
    double deadline = mono_s() + 10;
    while (atomic_load(&acks.ok) + atomic_load(&acks.refused) < PER / 2 &&
           mono_s() < deadline)
        usleep(200);
    f.c.def->shutdown(&f.c);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);
    int ok = atomic_load(&acks.ok), refused = atomic_load(&acks.refused);
    CHECK_INT(atomic_load(&acks.other), 0);
    CHECK_INT(ok + refused, PRODUCERS * PER);
    CHECK(refused > 0); /* shutdown happened while they were producing */
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans"), ok);
    exp_free(&f);
}

TEST(exporter_retention_at_start)
{
    const char *path = db_path("ret-exp.db");
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    span_opts o = {.trace = 1, .span = 1, .dur_ms = 1, .agent = "old"};
    halo_batch *b = batch_of(&o, 1); /* at T0: older than 1h */
    CHECK_INT(halo_store_write_batch(st, b, NULL, &err), HALO_OK);
    halo_batch_done(b, HALO_OK, "");
    halo_store_close(st);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans"), 1);

    char yaml[800];
    snprintf(yaml, sizeof yaml, "path: %s\nretention: 1h\n", path);
    exp_fixture f;
    CHECK(exp_init(&f, yaml, &err));
    CHECK_INT(f.c.def->start(&f.c, &err), HALO_OK);
    /* a fresh span (now) that must survive */
    ack_result r = {0};
    halo_batch *nb = acked_batch(77, &r);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull;
    HALO_BATCH_FOREACH(nb, c, sp)
    {
        sp->start_ns = now;
        sp->end_ns = now + 1000;
    }
    CHECK_INT(f.c.def->consume(&f.c, nb), HALO_OK);
    CHECK(wait_ack(&r, 10));
    double deadline = mono_s() + 10;
    while (sql_int(path, "SELECT count(*) FROM spans WHERE agent_id = 'old'") !=
               0 &&
           mono_s() < deadline)
        usleep(2000);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans WHERE agent_id = "
                            "'old'"),
              0);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM traces WHERE agent_id = "
                            "'old'"),
              0);
    CHECK_INT(sql_int(path, "SELECT count(*) FROM spans"), 2);
    f.c.def->shutdown(&f.c);
    exp_free(&f);
}

/* ---- the CLI (core/cmd_query.c) ------------------------------------------ */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    halo_buf b = HALO_BUF_INIT;
    char tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        halo_buf_append(&b, tmp, k);
    fclose(f);
    halo_buf_putc(&b, '\0');
    return halo_buf_steal(&b);
}

typedef struct run_out {
    int rc;
    char *out;
    char *err;
} run_out;

/* Run a subcommand with stdout and stderr captured. args ends with NULL. */
static run_out run_cmd(int (*fn)(int, char **), const char *const *args)
{
    char *argv[32];
    int argc = 0;
    while (args[argc] && argc < 31) {
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    char po[600], pe[600];
    snprintf(po, sizeof po, "%s/cmd.out", halo_test_tmpdir());
    snprintf(pe, sizeof pe, "%s/cmd.err", halo_test_tmpdir());
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    int fo = open(po, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    int fe = open(pe, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    dup2(fo, 1);
    dup2(fe, 2);
    close(fo);
    close(fe);
    run_out r;
    r.rc = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    r.out = slurp(po);
    r.err = slurp(pe);
    return r;
}

static void run_free(run_out *r)
{
    free(r->out);
    free(r->err);
}

TEST(cli_traces_agents_export)
{
    const char *path = strdup(db_path("cli.db"));
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    halo_span *in;
    halo_batch *b = rich_batch(&in);
    CHECK_INT(halo_store_write_batch(st, b, NULL, &err), HALO_OK);
    halo_store_close(st);

    const char *list[] = {"traces", "list", "--db", path, NULL};
    run_out r = run_cmd(halo_cmd_traces, list);
    CHECK_INT(r.rc, 0);
    CHECK_CONTAINS(r.out, "TRACE ID");
    CHECK_CONTAINS(r.out, "abababababababab0000000000000001  "
                          "2025-11-16T09:00:00Z      1.00s  support-agent"
                          "       3       1       1505  root");
    run_free(&r);
    const char *list_json[] = {"traces",        "list", "--json", "--agent",
                               "support-agent", "--db", path,     NULL};
    r = run_cmd(halo_cmd_traces, list_json);
    CHECK_INT(r.rc, 0);
    CHECK_CONTAINS(r.out, "\"span_count\":3,\"error_count\":1,\"llm_calls\":1"
                          ",\"tool_calls\":1,\"input_tokens\":1205");
    CHECK_CONTAINS(r.out, "\"duration_ms\":1000.0");
    CHECK_CONTAINS(r.out, "\"cost\":0.0125,\"priced_spans\":1}");
    run_free(&r);

    /* the store found in a configuration with a mistake elsewhere: read,
     * and the mistake said as validate would; a correct one says nothing */
    for (int good = 0; good < 2; good++) {
        char cfg[700];
        snprintf(cfg, sizeof cfg, "%s/cli%d.yaml", halo_test_tmpdir(), good);
        FILE *f = fopen(cfg, "w");
        CHECK(f);
        fprintf(f,
                "receivers:\n  otlp:\n    protocols:\n      grpc:\n"
                "        endpoint: 127.0.0.1:4317\n"
                "exporters:\n  sqlite:\n    path: %s\n    %s: 7d\n"
                "service:\n  pipelines:\n    traces:\n"
                "      receivers: [otlp]\n      exporters: [sqlite]\n",
                path, good ? "retention" : "retentoin");
        fclose(f);
        const char *by_cfg[] = {"traces", "list", "--config", cfg, NULL};
        r = run_cmd(halo_cmd_traces, by_cfg);
        CHECK_INT(r.rc, 0);
        CHECK_CONTAINS(r.out, "abababababababab0000000000000001");
        if (good) {
            CHECK_STR(r.err, "");
        } else {
            CHECK_CONTAINS(r.err, "cli0.yaml:9:5: warning: exporters.sqlite: "
                                  "unknown key \"retentoin\" (did you mean "
                                  "\"retention\"?)\n");
            CHECK_CONTAINS(r.err, "halo traces list: the configuration has "
                                  "errors");
        }
        run_free(&r);
    }

    const char *show[] = {"traces", "show", "ABABABABABABABAB0000000000000001",
                          "--db",   path,   NULL};
    r = run_cmd(halo_cmd_traces, show);
    CHECK_INT(r.rc, 0);
    CHECK_CONTAINS(r.out, "\nroot      AGENT    1.00s  OK\n");
    CHECK_CONTAINS(r.out, "\xe2\x94\x9c\xe2\x94\x80 child  LLM    300.0ms  "
                          "UNSET  model=gpt-4o  in=1200  out=300  "
                          "cost=0.0125\n");
    CHECK_CONTAINS(r.out, "\xe2\x94\x94\xe2\x94\x80 child  TOOL   120.0ms  "
                          "ERROR: boom  tool=search_docs  in=5\n");
    run_free(&r);

    const char *unknown[] = {
        "traces", "show", "abababababababab0000000000000002",
        "--db",   path,   NULL};
    r = run_cmd(halo_cmd_traces, unknown);
    CHECK_INT(r.rc, 1);
    CHECK_CONTAINS(r.err, "not found");
    run_free(&r);
    const char *bad[] = {"traces", "show", "xyz", "--db", path, NULL};
    r = run_cmd(halo_cmd_traces, bad);
    CHECK_INT(r.rc, 2);
    CHECK_CONTAINS(r.err, "expected 32 hex digits");
    run_free(&r);
    const char *missing[] = {"traces", "list", "--db", "/nonexistent/x.db",
                             NULL};
    r = run_cmd(halo_cmd_traces, missing);
    CHECK_INT(r.rc, 1);
    CHECK_CONTAINS(r.err, "does not exist (has `halo serve` or `halo "
                          "import` written to it?)");
    run_free(&r);
    /* a --store that is no store is a usage error naming it, in every
     * command (exit 2, before anything is opened) */
    static const struct {
        int (*cmd)(int, char **);
        const char *argv[8];
        const char *msg;
    } usage[] = {
        {halo_cmd_traces,
         {"traces", "list", "--store", "foo", NULL},
         "halo traces list: invalid --store \"foo\": expected postgresql://"},
        {halo_cmd_agents,
         {"agents", "--store", "sqlite:", NULL},
         "halo agents: invalid --store \"sqlite:\": the SQLite path is empty"},
        {halo_cmd_export,
         {"export", "--trace-id", "abababababababab0000000000000001", "--store",
          "mysql://u:secret@h/db", NULL},
         "invalid --store \"mysql://u:***@h/db\""},
        {halo_cmd_import,
         {"import", "--store", "foo", "x.json", NULL},
         "halo import: invalid --store \"foo\""},
        {halo_cmd_reports,
         {"reports", "list", "--store", "foo", NULL},
         "halo reports: invalid --store \"foo\""},
        {halo_cmd_analyze,
         {"analyze", "--agent", "a", "--store", "foo", NULL},
         "halo analyze: invalid --store \"foo\""},
        {halo_cmd_agents,
         {"agents", "--since", "1h", "--until", "2h", "--db", NULL},
         "option --db needs a value"},
        {halo_cmd_agents,
         {"agents", "--since", "1h", "--until", "2h", NULL},
         "--since is not before --until"},
        {halo_cmd_reports,
         {"reports", "show", "r-123456", "--agent", "a", NULL},
         "--agent does not apply to reports show"},
        {halo_cmd_reports,
         {"reports", "list", "--format", "json", NULL},
         "--format does not apply to reports list"},
        {halo_cmd_reports,
         {"reports", "show", "r-123456", "--format", "md", "--json", NULL},
         "--json and --format md exclude each other"},
    };
    for (size_t i = 0; i < sizeof usage / sizeof *usage; i++) {
        r = run_cmd(usage[i].cmd, usage[i].argv);
        CHECK_INT(r.rc, 2);
        CHECK_CONTAINS(r.err, usage[i].msg);
        CHECK(!strstr(r.err, "secret"));
        run_free(&r);
    }
    /* more traces than --limit shows: said */
    const char *limited[] = {"traces", "list", "--limit", "1",
                             "--db",   path,   NULL};
    r = run_cmd(halo_cmd_traces, limited);
    CHECK_INT(r.rc, 0);
    CHECK_CONTAINS(r.out, "abababababababab0000000000000001");
    CHECK_STR(r.err, "");
    run_free(&r);
    char two[600];
    snprintf(two, sizeof two, "%s", db_path("cli-two.db"));
    st = open_store(two, false, &err);
    CHECK(st);
    span_opts o[8];
    size_t n = fixture_trace(o, 1, "a", 0);
    n += fixture_trace(o + n, 2, "a", 1000);
    halo_batch *b2 = batch_of(o, n);
    CHECK_INT(halo_store_write_batch(st, b2, NULL, &err), HALO_OK);
    halo_batch_done(b2, HALO_OK, "");
    halo_store_close(st);
    const char *limited2[] = {"traces", "list", "--limit", "1",
                              "--db",   two,    NULL};
    r = run_cmd(halo_cmd_traces, limited2);
    CHECK_INT(r.rc, 0);
    CHECK_CONTAINS(r.out, "abababababababab0000000000000002");
    CHECK(!strstr(r.out, "abababababababab0000000000000001"));
    CHECK_CONTAINS(r.err, "(the newest 1 traces; --limit N shows more");
    run_free(&r);

    const char *help[] = {"agents", "--help", NULL};
    r = run_cmd(halo_cmd_agents, help);
    CHECK_INT(r.rc, 0);
    CHECK_CONTAINS(r.out, "usage: halo agents");
    run_free(&r);

    const char *agents[] = {
        "agents", "--since", "2025-11-16", "--until", "2025-11-17T00:00:00Z",
        "--db",   path,      NULL};
    r = run_cmd(halo_cmd_agents, agents);
    CHECK_INT(r.rc, 0);
    CHECK_CONTAINS(r.out, "support-agent       1      100.0%      1.00s      "
                          "1.00s        1205         300      0.0125");
    run_free(&r);
    const char *agents_json[] = {
        "agents", "--since", "2025-11-16", "--until", "2025-11-17T00:00:00Z",
        "--json", "--db",    path,         NULL};
    r = run_cmd(halo_cmd_agents, agents_json);
    CHECK_INT(r.rc, 0);
    CHECK_CONTAINS(r.out, "\"cost\":0.0125,\"priced_spans\":1}");
    run_free(&r);
    /* --until alone: the 24 h before it */
    const char *agents_until[] = {"agents", "--until", "2025-11-17T00:00:00Z",
                                  "--db",   path,      NULL};
    r = run_cmd(halo_cmd_agents, agents_until);
    CHECK_INT(r.rc, 0);
    CHECK_CONTAINS(r.out, "support-agent       1");
    CHECK_CONTAINS(r.err, "the 24h before --until");
    run_free(&r);
    const char *agents_old[] = {"agents", "--db", path, NULL}; /* last 24h */
    r = run_cmd(halo_cmd_agents, agents_old);
    CHECK_INT(r.rc, 0);
    CHECK(!strstr(r.out, "support-agent"));
    run_free(&r);

    /* export, then decode what `halo import` would read */
    char out_path[600];
    snprintf(out_path, sizeof out_path, "%s/export.json", halo_test_tmpdir());
    const char *exp[] = {
        "export", "--trace-id", "abababababababab0000000000000001",
        "-o",     out_path,     "--db",
        path,     NULL};
    r = run_cmd(halo_cmd_export, exp);
    CHECK_INT(r.rc, 0);
    run_free(&r);
    char *json = slurp(out_path);
    CHECK(json);
    size_t len = strlen(json);
    CHECK(len > 2 && json[len - 1] == '\n' && !memchr(json, '\n', len - 1));
    halo_arena *a = halo_arena_new(0);
    halo_otlp_result res;
    memset(&res, 0, sizeof res);
    CHECK_INT(halo_otlp_decode_json(json, len - 1, a, &res, &err), HALO_OK);
    CHECK_INT(res.n, 3);
    /* decoded spans come grouped by resource: match them by span id */
    for (size_t i = 0; i < 3; i++) {
        size_t j = 0;
        while (j < 3 && memcmp(res.spans[j].span_id, in[i].span_id, 8) != 0)
            j++;
        CHECK(j < 3);
        CHECK(span_eq_opt(i, &in[i], &res.spans[j], false));
    }
    free(json);
    halo_arena_free(a);
    halo_batch_done(b, HALO_OK, "");
    free((char *)path);
}

/* One OTLP/JSON line: a root span whose user.id is an integer, which
 * agent_identity must render as text (it allocates in the chunk's arena). */
static void otlp_line(FILE *f, int trace, int user)
{
    fprintf(f,
            "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":"
            "\"service.name\",\"value\":{\"stringValue\":\"svc\"}}]},"
            "\"scopeSpans\":[{\"scope\":{\"name\":\"s\"},\"spans\":[{"
            "\"traceId\":\"%032x\",\"spanId\":\"%016x\",\"name\":\"root\","
            "\"kind\":1,\"startTimeUnixNano\":\"1700000000000000000\","
            "\"endTimeUnixNano\":\"1700000001000000000\",\"attributes\":[{"
            "\"key\":\"user.id\",\"value\":{\"intValue\":\"%d\"}}]}]}]}]}\n",
            trace, trace, user);
}

/* halo import groups many lines into one batch: every line's spans must be
 * normalized, not only the first line's (the others used to share the first
 * line's arena through arena-less chunks, so agent_identity could not
 * allocate for them and left user_id empty). */
TEST(cli_import_normalizes_every_line_of_a_batch)
{
    const char *db = strdup(db_path("import.db"));
    char src[600];
    snprintf(src, sizeof src, "%s/import.jsonl", halo_test_tmpdir());
    FILE *f = fopen(src, "w");
    CHECK(f);
    for (int i = 1; i <= 3; i++)
        otlp_line(f, i, 40 + i);
    fclose(f);
    const char *args[] = {"import", "--db", db, src, NULL};
    run_out r = run_cmd(halo_cmd_import, args);
    CHECK_INT(r.rc, 0);
    CHECK_CONTAINS(r.err, "imported 3 spans");
    run_free(&r);
    CHECK_INT(sql_int(db, "SELECT count(*) FROM spans"), 3);
    CHECK_INT(sql_int(db, "SELECT count(*) FROM spans WHERE "
                          "user_id = CAST(40 + CAST(substr(trace_id, 32) "
                          "AS INTEGER) AS TEXT)"),
              3);
    free((void *)db);
}

TEST(corrupt_rows_do_not_crash)
{
    const char *path = strdup(db_path("corrupt.db"));
    halo_err err = {{0}};
    halo_store *st = open_store(path, false, &err);
    CHECK(st);
    halo_span *in;
    halo_batch *b = rich_batch(&in);
    CHECK_INT(halo_store_write_batch(st, b, NULL, &err), HALO_OK);
    halo_batch_done(b, HALO_OK, "");
    uint8_t tid[16];
    make_tid(tid, 1);
    halo_arena *a = halo_arena_new(0);
    halo_span *sp;
    size_t n;
    /* a parent cycle: the root becomes the child of its own child */
    CHECK_INT(sql_exec(path, "UPDATE span_rows SET parent_span_id = "
                             "'000000000000000b' WHERE span_id = "
                             "'000000000000000a'"),
              SQLITE_OK);
    CHECK_INT(st->ops->get_trace(st, tid, a, &sp, &n, &err), HALO_OK);
    CHECK_INT(n, 3);
    const char *show[] = {"traces", "show", "abababababababab0000000000000001",
                          "--db",   path,   NULL};
    run_out r = run_cmd(halo_cmd_traces, show);
    CHECK_INT(r.rc, 0);
    CHECK_CONTAINS(r.out, "(in a parent cycle)");
    CHECK_CONTAINS(r.out, "root      AGENT");
    CHECK_CONTAINS(r.out, "child  LLM    ");
    CHECK_CONTAINS(r.out, "child  TOOL   ");
    run_free(&r);
    /* malformed JSON and ids in the columns: EINVAL naming the column */
    static const struct {
        const char *sql;
        const char *msg;
    } bad[] = {
        {"UPDATE span_rows SET attributes = '{\"a\":' WHERE span_id = "
         "'000000000000000c'",
         "attributes"},
        {"UPDATE span_rows SET events = '[1]' WHERE span_id = "
         "'000000000000000c'",
         "events[0]"},
        {"UPDATE span_rows SET links = '{}' WHERE span_id = '000000000000000c'",
         "links"},
        {"UPDATE span_rows SET scope = '[]', scope_ref = NULL WHERE span_id = "
         "'000000000000000c'",
         "scope"},
        {"UPDATE span_rows SET resource = '\"x\"', resource_ref = NULL WHERE "
         "span_id = '000000000000000c'",
         "resource"},
        {"UPDATE span_rows SET parent_span_id = 'zz' WHERE span_id = "
         "'000000000000000c'",
         "parent_span_id"},
        /* places of input/output that are not a null of the attributes */
        {"UPDATE span_rows SET input = 'x', input_at = 2 WHERE span_id = "
         "'000000000000000c'",
         "attributes"},
        {"UPDATE span_rows SET output_at = -5, input_at = 1000000 WHERE "
         "span_id = '000000000000000c'",
         "attributes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_INT(sql_exec(path, bad[i].sql), SQLITE_OK);
        CHECK_INT(st->ops->get_trace(st, tid, a, &sp, &n, &err), HALO_EINVAL);
        CHECK_CONTAINS(err.msg, bad[i].msg);
        /* put the row back */
        b = rich_batch(&in);
        CHECK_INT(sql_exec(path, "DELETE FROM span_rows WHERE span_id = "
                                 "'000000000000000c'"),
                  SQLITE_OK);
        CHECK_INT(halo_store_write_batch(st, b, NULL, &err), HALO_OK);
        halo_batch_done(b, HALO_OK, "");
    }
    halo_arena_free(a);
    halo_store_close(st);
    free((char *)path);
}
