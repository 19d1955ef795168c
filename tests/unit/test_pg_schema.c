/*
 * test_pg_schema.c -- the PostgreSQL schema: migrations (fresh, re-run,
 * concurrent), column names equal to the SQLite store's, daily partitions,
 * retention by dropping partitions, password-free connection errors.
 *
 * One real PostgreSQL 15 server per test binary (pg_test.h); each test
 * works in its own fresh database.
 */
#include "harness.h"
#include "pg_test.h"

#include "storage/pg_schema.h"
#include "storage/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* ---- queries ------------------------------------------------------------- */

/* The rows of sql, one per line, columns separated by '|'. */
static char *q_text(PGconn *c, const char *sql, char *buf, size_t cap)
{
    PGresult *r = PQexec(c, sql);
    size_t o = 0;
    buf[0] = '\0';
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "  %s: %s", sql, PQerrorMessage(c));
    for (int i = 0; i < PQntuples(r) && o < cap; i++)
        for (int j = 0; j < PQnfields(r) && o < cap; j++)
            o += (size_t)snprintf(buf + o, cap - o, "%s%s", PQgetvalue(r, i, j),
                                  j + 1 < PQnfields(r) ? "|" : "\n");
    PQclear(r);
    return buf;
}

/* A minimal span row (and its trace row when with_trace). */
static bool put_span(PGconn *c, const char *trace, const char *span,
                     const char *start, const char *end)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO span_rows (trace_id, span_id, name, kind, start_time,"
             " end_time, duration_ms, status_code, attributes, events,"
             " resource, start_unix_nano, end_unix_nano) VALUES ('%s', '%s',"
             " 'op', 'INTERNAL', '%s', '%s', 1, 'UNSET', '{}', '[]', '{}',"
             " (extract(epoch from timestamptz '%s') * 1e9)::bigint + 7,"
             " (extract(epoch from timestamptz '%s') * 1e9)::bigint + 7)",
             trace, span, start, end, start, end);
    return pg_q_ok(c, sql);
}

static bool put_trace(PGconn *c, const char *trace, const char *start,
                      const char *end)
{
    char sql[768];
    snprintf(sql, sizeof sql,
             "INSERT INTO traces (trace_id, start_time, end_time,"
             " duration_ms, start_unix_nano, end_unix_nano) VALUES ('%s',"
             " '%s', '%s', 0, 0, 0)",
             trace, start, end);
    return pg_q_ok(c, sql);
}

#define UTC(y, m, d, h)                                                        \
    ((int64_t)timegm(&(struct tm){0, 0, h, d, m - 1, y - 1900, 0, 0, 0, 0, 0}))

/* ---- migrations ---------------------------------------------------------- */

/* Column names of table in a SQLite store's database, one per line,
 * sorted. */
static bool sqlite_columns(const char *table, char *buf, size_t cap)
{
    char path[600], sql[200];
    halo_err err = {{0}};
    halo_store *st = NULL;
    snprintf(path, sizeof path, "%s/cols.db", halo_test_tmpdir());
    halo_store_opts o = {.path = path};
    if (halo_store_open_sqlite(&o, &st, &err) != HALO_OK)
        return false;
    halo_store_close(st);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    size_t n = 0;
    buf[0] = '\0';
    snprintf(sql, sizeof sql,
             "SELECT name FROM pragma_table_info('%s') ORDER BY name", table);
    bool ok = sqlite3_open(path, &db) == SQLITE_OK &&
              sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK;
    while (ok && sqlite3_step(s) == SQLITE_ROW && n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "%s\n",
                              (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return ok && n > 0;
}

TEST(migrate_empty_database)
{
    PGconn *c = pg_new_db("t_migrate");
    CHECK(c);
    halo_err err = {{0}};
    int rc = halo_pg_migrate(c, &err);
    if (rc != HALO_OK)
        fprintf(stderr, "  %s\n", err.msg);
    char got[4096], want[4096], sql[512];
    CHECK_INT(rc, HALO_OK);
    CHECK_STR(q_text(c,
                     "SELECT table_name FROM information_schema.tables"
                     " WHERE table_schema = 'public' ORDER BY 1",
                     got, sizeof got),
              "analyzer_runs\nreports\nschema_migrations\nshared_texts\n"
              "span_rows\nspans\nspans_default\ntraces\n");
    /* the same column names as SQLite's */
    static const char *const tables[] = {"spans", "traces", "reports",
                                         "analyzer_runs"};
    for (int i = 0; i < 4; i++) {
        CHECK(sqlite_columns(tables[i], want, sizeof want));
        snprintf(sql, sizeof sql,
                 "SELECT column_name FROM information_schema.columns WHERE "
                 "table_name = '%s' ORDER BY column_name COLLATE \"C\"",
                 tables[i]);
        CHECK_STR(q_text(c, sql, got, sizeof got), want);
    }
    /* partitioned by range on start_time, with a default partition */
    CHECK_STR(q_text(c,
                     "SELECT p.partstrat, a.attname FROM pg_partitioned_table"
                     " p JOIN pg_attribute a ON a.attrelid = p.partrelid AND"
                     " a.attnum = p.partattrs[0]"
                     " WHERE p.partrelid = 'span_rows'::regclass",
                     got, sizeof got),
              "r|start_time\n");
    CHECK_STR(q_text(c,
                     "SELECT inhrelid::regclass, pg_get_expr(relpartbound,"
                     " inhrelid) FROM pg_inherits JOIN pg_class ON oid ="
                     " inhrelid WHERE inhparent = 'span_rows'::regclass",
                     got, sizeof got),
              "spans_default|DEFAULT\n");
    /* indexes: by agent_id and by start_time (BRIN: ANDed for both); by
     * trace_id through the key */
    CHECK_STR(q_text(c,
                     "SELECT indexname, regexp_replace(indexdef, '.* USING ',"
                     " '') FROM pg_indexes WHERE tablename IN ('span_rows',"
                     " 'spans_default', 'traces', 'reports',"
                     " 'analyzer_runs', 'shared_texts') ORDER BY 1",
                     got, sizeof got),
              "analyzer_runs_pkey|btree (schedule, agent_id, "
              "window_start_unix_nano)\n"
              "reports_agent_window|btree (agent_id, window_start)\n"
              "reports_pkey|btree (id)\n"
              "shared_texts_pkey|btree (id)\n"
              "spans_agent|btree (agent_id)\n"
              "spans_default_agent_id_idx|btree (agent_id)\n"
              "spans_default_pkey|btree (trace_id, span_id, start_time)\n"
              "spans_default_start_time_idx|brin (start_time)\n"
              "spans_pkey|btree (trace_id, span_id, start_time)\n"
              "spans_start|brin (start_time)\n"
              "traces_agent_start|btree (agent_id, start_time)\n"
              "traces_pkey|btree (trace_id)\n"
              "traces_start|btree (start_time)\n");
    CHECK_STR(q_text(c,
                     "SELECT column_name, data_type FROM"
                     " information_schema.columns WHERE table_name = 'spans'"
                     " AND column_name IN ('start_time', 'start_unix_nano',"
                     " 'attributes', 'events', 'resource', 'links', 'scope')"
                     " ORDER BY 1",
                     got, sizeof got),
              "attributes|json\nevents|json\nlinks|json\nresource|json\n"
              "scope|json\nstart_time|timestamp with time zone\n"
              "start_unix_nano|bigint\n");
    CHECK_STR(q_text(c,
                     "SELECT version, name FROM schema_migrations "
                     "ORDER BY version",
                     got, sizeof got),
              "1|spans, traces, reports\n2|spans.value_types\n"
              "3|analyzer_runs\n4|traces.priced_spans\n"
              "5|span_rows, input and output once\n"
              "6|shared_texts, resource and scope once\n"
              "7|spans_agent, spans_start (BRIN)\n"
              "8|id columns in the C collation\n");
    /* the id columns compare bytewise */
    CHECK_STR(q_text(c,
                     "SELECT attrelid::regclass || '.' || attname FROM"
                     " pg_attribute WHERE attrelid IN ('span_rows'::regclass,"
                     " 'spans_default'::regclass, 'traces'::regclass,"
                     " 'spans'::regclass) AND attcollation ="
                     " '\"C\"'::regcollation ORDER BY 1",
                     got, sizeof got),
              "span_rows.agent_id\nspan_rows.parent_span_id\n"
              "span_rows.span_id\nspan_rows.trace_id\n"
              "spans.agent_id\nspans.parent_span_id\nspans.span_id\n"
              "spans.trace_id\nspans_default.agent_id\n"
              "spans_default.parent_span_id\nspans_default.span_id\n"
              "spans_default.trace_id\ntraces.agent_id\n"
              "traces.root_span_id\ntraces.trace_id\n");
    /* nanoseconds survive in the bigint column; an insert with no day
     * partition lands in the default one */
    CHECK(put_span(c, "t1", "s1", "2026-11-16 09:00:00.123456+00",
                   "2026-11-16 09:00:01+00"));
    CHECK_STR(
        q_text(c, "SELECT tableoid::regclass, start_unix_nano FROM span_rows",
               got, sizeof got),
        "spans_default|1794819600123456007\n");
    /* each index serves its column (with one row the planner would scan
     * the table: that choice is taken away, the index used is the check) */
    char plan[4096];
    CHECK(pg_q_ok(c, "SET enable_seqscan = off"));
    CHECK(q_text(c,
                 "EXPLAIN (COSTS OFF) SELECT span_id FROM span_rows WHERE"
                 " agent_id = 'a'",
                 plan, sizeof plan));
    CHECK_CONTAINS(plan, "spans_default_agent_id_idx");
    /* text of the database's collation (a user's column, a parameter)
     * compares in the column's "C": the keys still serve it */
    CHECK(q_text(c,
                 "EXPLAIN (COSTS OFF) SELECT span_id FROM spans WHERE"
                 " trace_id = (SELECT 't1'::text)",
                 plan, sizeof plan));
    CHECK_CONTAINS(plan, "spans_default_pkey");
    CHECK(q_text(c,
                 "EXPLAIN (COSTS OFF) SELECT span_id FROM spans WHERE"
                 " agent_id = (SELECT 'a'::text)",
                 plan, sizeof plan));
    CHECK_CONTAINS(plan, "spans_default_agent_id_idx");
    CHECK(q_text(c,
                 "EXPLAIN (COSTS OFF) SELECT 1 FROM traces WHERE trace_id ="
                 " (SELECT 't1'::text)",
                 plan, sizeof plan));
    CHECK_CONTAINS(plan, "traces_pkey");
    /* 20,000 spans a minute apart, in start order, as they arrive */
    CHECK(pg_q_ok(c, "INSERT INTO span_rows (trace_id, span_id, name, kind,"
                     " agent_id, start_time, end_time, duration_ms,"
                     " status_code, attributes, events, start_unix_nano,"
                     " end_unix_nano) SELECT 'b' || g, 's', 'op', 'INTERNAL',"
                     " 'agent-' || g % 10, t, t, 0, 'UNSET', '{}', '[]', 1,"
                     " 2 FROM generate_series(1, 20000) g, LATERAL (SELECT"
                     " '2026-11-01 00:00+00'::timestamptz + g * interval"
                     " '1 minute' AS t) x;"
                     " ANALYZE span_rows"));
    CHECK(q_text(c,
                 "EXPLAIN (COSTS OFF) SELECT span_id FROM span_rows WHERE"
                 " start_time >= '2026-11-10 08:00+00' AND start_time <"
                 " '2026-11-10 09:00+00'",
                 plan, sizeof plan));
    CHECK_CONTAINS(plan, "spans_default_start_time_idx");
    CHECK(pg_q_ok(c, "RESET enable_seqscan"));
    PQfinish(c);
}

TEST(migrate_again_is_a_noop)
{
    PGconn *c = pg_new_db("t_noop");
    CHECK(c);
    halo_err err = {{0}};
    char before[512], after[512];
    CHECK_INT(halo_pg_migrate(c, &err), HALO_OK);
    const char *sql = "SELECT version, name, applied_at FROM "
                      "schema_migrations ORDER BY version";
    q_text(c, sql, before, sizeof before);
    CHECK_INT(halo_pg_migrate(c, &err), HALO_OK);
    CHECK_STR(q_text(c, sql, after, sizeof after), before);
    CHECK_INT(pg_q_int(c, "SELECT max(version) FROM schema_migrations"),
              halo_pg_schema_version());
    CHECK_INT(PQtransactionStatus(c), PQTRANS_IDLE);
    CHECK_INT(halo_pg_schema_version(), 8);
    /* a database of an older binary (version 2) gets analyzer_runs,
     * traces.priced_spans (its traces counting no priced span) and the
     * spans view over span_rows (its spans read as they were stored) */
    CHECK(pg_q_ok(c, "INSERT INTO traces (trace_id, start_time, end_time,"
                     " duration_ms, cost, start_unix_nano, end_unix_nano)"
                     " VALUES ('0af7651916cd43dd8448eb211c80319c', now(),"
                     " now(), 0, 0.5, 1, 2)"));
    CHECK(pg_q_ok(c, "DROP TABLE analyzer_runs;"
                     " ALTER TABLE traces DROP COLUMN priced_spans;"
                     " DROP VIEW spans;"
                     " ALTER TABLE span_rows ALTER COLUMN trace_id TYPE text"
                     " COLLATE \"default\", ALTER COLUMN span_id TYPE text"
                     " COLLATE \"default\", ALTER COLUMN parent_span_id TYPE"
                     " text COLLATE \"default\", ALTER COLUMN agent_id TYPE"
                     " text COLLATE \"default\";"
                     " ALTER TABLE traces ALTER COLUMN trace_id TYPE text"
                     " COLLATE \"default\", ALTER COLUMN root_span_id TYPE"
                     " text COLLATE \"default\", ALTER COLUMN agent_id TYPE"
                     " text COLLATE \"default\";"
                     " DROP TABLE shared_texts;"
                     " ALTER TABLE span_rows DROP COLUMN resource_ref,"
                     " DROP COLUMN scope_ref,"
                     " ALTER COLUMN resource SET NOT NULL;"
                     " ALTER TABLE span_rows DROP COLUMN input_at,"
                     " DROP COLUMN output_at;"
                     " ALTER TABLE span_rows RENAME TO spans;"
                     " DROP INDEX spans_agent, spans_start;"
                     " CREATE INDEX spans_agent_start ON spans"
                     " (agent_id, start_time);"
                     " DELETE FROM schema_migrations WHERE version >= 3"));
    /* a role that could read spans reads the view after it */
    CHECK(pg_q_ok(c, "DO $$ BEGIN CREATE ROLE halo_t_reader; EXCEPTION WHEN"
                     " duplicate_object THEN NULL; END $$;"
                     " GRANT SELECT ON spans TO halo_t_reader"));
    CHECK(pg_q_ok(c, "INSERT INTO spans (trace_id, span_id, name, kind,"
                     " start_time, end_time, duration_ms, status_code, input,"
                     " attributes, events, resource, start_unix_nano,"
                     " end_unix_nano) VALUES ('t0', 's0', 'op', 'INTERNAL',"
                     " now(), now(), 0, 'UNSET', 'a question, long enough',"
                     " '{\"input.value\":\"a question, long enough\"}', '[]',"
                     " '{}', 1, 2)"));
    /* a view of the user's own on the id columns stops migration 8 with
     * the server's reason, and nothing of 3..8 is left applied */
    CHECK(pg_q_ok(c, "CREATE VIEW t_user_view AS SELECT trace_id FROM spans"));
    CHECK_INT(halo_pg_migrate(c, &err), HALO_EIO);
    CHECK_CONTAINS(err.msg, "could not apply a schema migration");
    CHECK_CONTAINS(err.msg, "t_user_view");
    CHECK_INT(pg_q_int(c, "SELECT max(version) FROM schema_migrations"), 2);
    CHECK_INT(PQtransactionStatus(c), PQTRANS_IDLE);
    CHECK(pg_q_ok(c, "DROP VIEW t_user_view"));
    CHECK_INT(halo_pg_migrate(c, &err), HALO_OK);
    CHECK_INT(pg_q_int(c, "SELECT max(version) FROM schema_migrations"), 8);
    /* migration 8: the id columns bytewise, the view made again */
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM pg_attribute WHERE attrelid"
                          " IN ('span_rows'::regclass, 'traces'::regclass,"
                          " 'spans'::regclass) AND attcollation ="
                          " '\"C\"'::regcollation"),
              11);
    char row[256];
    /* migration 7 replaced the (agent_id, start_time) B-tree */
    CHECK_STR(q_text(c,
                     "SELECT string_agg(indexname, ',' ORDER BY indexname)"
                     " FROM pg_indexes WHERE tablename = 'span_rows'",
                     row, sizeof row),
              "spans_agent,spans_pkey,spans_start\n");
    CHECK_STR(
        q_text(c,
               "SELECT v.attributes::text, r.input_at IS NULL FROM spans v"
               " JOIN span_rows r USING (trace_id, span_id)",
               row, sizeof row),
        "{\"input.value\":\"a question, long enough\"}|t\n");
    CHECK_INT(pg_q_int(c, "SELECT has_table_privilege('halo_t_reader',"
                          " 'spans', 'SELECT')::int"),
              1);
    CHECK(pg_q_ok(c, "DELETE FROM span_rows"));
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM analyzer_runs"), 0);
    CHECK_INT(pg_q_int(c, "SELECT priced_spans FROM traces"), 0);
    CHECK(pg_q_ok(c, "DELETE FROM traces"));
    /* a database newer than this binary is refused, and left alone */
    CHECK(pg_q_ok(c, "INSERT INTO schema_migrations (version, name) VALUES "
                     "(99, 'future')"));
    CHECK_INT(halo_pg_migrate(c, &err), HALO_EUNSUPPORTED);
    CHECK_CONTAINS(err.msg, "has schema version 99, newer than this halo");
    CHECK_INT(PQtransactionStatus(c), PQTRANS_IDLE);
    PQfinish(c);
}

#define N_RACERS 4

typedef struct racer {
    const char *dsn;
    pthread_barrier_t *start;
    halo_status st;
    halo_err err;
} racer;

static void *race_migrate(void *arg)
{
    racer *r = arg;
    PGconn *c = NULL;
    pthread_barrier_wait(r->start);
    r->st = halo_pg_connect(r->dsn, &c, &r->err);
    if (r->st == HALO_OK)
        r->st = halo_pg_migrate(c, &r->err);
    PQfinish(c);
    return NULL;
}

TEST(concurrent_migrations_apply_once)
{
    PGconn *c = pg_new_db("t_race");
    CHECK(c);
    char dsn[320];
    pg_dsn_for("t_race", dsn, sizeof dsn);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N_RACERS);
    pthread_t th[N_RACERS];
    racer r[N_RACERS];
    for (int i = 0; i < N_RACERS; i++) {
        r[i] = (racer){.dsn = dsn, .start = &start};
        pthread_create(&th[i], NULL, race_migrate, &r[i]);
    }
    for (int i = 0; i < N_RACERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < N_RACERS; i++) {
        if (r[i].st != HALO_OK)
            fprintf(stderr, "  racer %d: %s\n", i, r[i].err.msg);
        CHECK_INT(r[i].st, HALO_OK);
    }
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM schema_migrations"),
              halo_pg_schema_version());
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM pg_inherits WHERE inhparent ="
                          " 'span_rows'::regclass"),
              1);
    PQfinish(c);
}

/* ---- partitions ---------------------------------------------------------- */

static const char PARTS[] =
    "SELECT inhrelid::regclass, pg_get_expr(relpartbound, inhrelid) FROM"
    " pg_inherits JOIN pg_class ON oid = inhrelid WHERE inhparent ="
    " 'span_rows'::regclass ORDER BY 1::text";

TEST(ensure_partitions_is_idempotent)
{
    PGconn *c = pg_new_db("t_parts");
    CHECK(c);
    halo_err err = {{0}};
    char got[2048], again[2048];
    CHECK_INT(halo_pg_migrate(c, &err), HALO_OK);
    CHECK(pg_q_ok(c, "SET TimeZone = 'UTC'"));
    /* a late span for 2026-11-18 is in the default partition, then moves */
    CHECK(put_span(c, "t1", "s1", "2026-11-18 23:59:59.999999+00",
                   "2026-11-19 00:00:01+00"));
    CHECK(put_span(c, "t2", "s1", "2026-11-19 00:00:00+00",
                   "2026-11-19 00:00:01+00"));
    int64_t from = UTC(2026, 11, 16, 13);
    CHECK_INT(halo_pg_ensure_partitions(c, from, 2, &err), HALO_OK);
    CHECK_STR(q_text(c, PARTS, got, sizeof got),
              "spans_default|DEFAULT\n"
              "spans_p20261116|FOR VALUES FROM ('2026-11-16 00:00:00+00') TO "
              "('2026-11-17 00:00:00+00')\n"
              "spans_p20261117|FOR VALUES FROM ('2026-11-17 00:00:00+00') TO "
              "('2026-11-18 00:00:00+00')\n"
              "spans_p20261118|FOR VALUES FROM ('2026-11-18 00:00:00+00') TO "
              "('2026-11-19 00:00:00+00')\n");
    CHECK_STR(q_text(c,
                     "SELECT trace_id, tableoid::regclass FROM span_rows ORDER "
                     "BY 1",
                     got, sizeof got),
              "t1|spans_p20261118\nt2|spans_default\n");
    /* the new partitions have the parent's indexes */
    CHECK_STR(q_text(c,
                     "SELECT regexp_replace(indexdef, '.* USING ', '') FROM"
                     " pg_indexes WHERE tablename = 'spans_p20261117'"
                     " ORDER BY 1",
                     got, sizeof got),
              "brin (start_time)\n"
              "btree (agent_id)\n"
              "btree (trace_id, span_id, start_time)\n");
    q_text(c, PARTS, got, sizeof got);
    CHECK_INT(halo_pg_ensure_partitions(c, from, 2, &err), HALO_OK);
    CHECK_INT(halo_pg_ensure_partitions(c, from + 86400, 0, &err), HALO_OK);
    CHECK_STR(q_text(c, PARTS, again, sizeof again), got);
    /* redelivery of a stored span conflicts on the key in its partition */
    CHECK(pg_q_ok(
        c, "INSERT INTO span_rows SELECT * FROM span_rows WHERE trace_id ="
           " 't1' ON CONFLICT (trace_id, span_id, start_time) DO"
           " NOTHING"));
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM spans"), 2);
    CHECK_INT(halo_pg_ensure_partitions(c, from, -1, &err), HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "invalid days ahead -1");
    CHECK_INT(halo_pg_ensure_partitions(c, -5, 1, &err), HALO_EINVAL);
    CHECK_INT(PQtransactionStatus(c), PQTRANS_IDLE);
    PQfinish(c);
}

typedef struct part_racer {
    const char *dsn;
    pthread_barrier_t *start;
    halo_status st;
    halo_err err;
} part_racer;

static void *race_partitions(void *arg)
{
    part_racer *r = arg;
    PGconn *c = NULL;
    pthread_barrier_wait(r->start);
    r->st = halo_pg_connect(r->dsn, &c, &r->err);
    if (r->st == HALO_OK)
        r->st = halo_pg_migrate(c, &r->err);
    if (r->st == HALO_OK)
        r->st = halo_pg_ensure_partitions(c, UTC(2026, 1, 1, 0), 7, &r->err);
    PQfinish(c);
    return NULL;
}

TEST(concurrent_ensure_partitions)
{
    PGconn *c = pg_new_db("t_part_race");
    CHECK(c);
    char dsn[320];
    pg_dsn_for("t_part_race", dsn, sizeof dsn);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 3);
    pthread_t th[3];
    part_racer r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = (part_racer){.dsn = dsn, .start = &start};
        pthread_create(&th[i], NULL, race_partitions, &r[i]);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < 3; i++) {
        if (r[i].st != HALO_OK)
            fprintf(stderr, "  racer %d: %s\n", i, r[i].err.msg);
        CHECK_INT(r[i].st, HALO_OK);
    }
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM pg_inherits WHERE inhparent ="
                          " 'span_rows'::regclass"),
              9);
    PQfinish(c);
}

/* ---- retention ----------------------------------------------------------- */

TEST(retention_drops_only_old_partitions)
{
    PGconn *c = pg_new_db("t_retention");
    CHECK(c);
    halo_err err = {{0}};
    char got[2048];
    CHECK_INT(halo_pg_migrate(c, &err), HALO_OK);
    CHECK_INT(halo_pg_ensure_partitions(c, UTC(2026, 11, 10, 0), 4, &err),
              HALO_OK);
    static const struct {
        const char *trace, *span, *start, *end;
    } rows[] = {
        {"old_default", "a", "2026-11-01 10:00:00+00",
         "2026-11-01 10:00:01+00"},
        {"d10", "a", "2026-11-10 10:00:00+00", "2026-11-10 10:00:01+00"},
        {"d11", "a", "2026-11-11 23:59:59.999999+00", "2026-11-12 00:00:01+00"},
        {"cross", "a", "2026-11-11 23:59:00+00", "2026-11-12 00:00:30+00"},
        {"cross", "b", "2026-11-12 00:00:10+00", "2026-11-12 00:00:30+00"},
        {"d12", "a", "2026-11-12 00:00:00+00", "2026-11-12 00:00:01+00"},
        {"d13", "a", "2026-11-13 12:00:00+00", "2026-11-13 12:00:01+00"},
        {"d14", "a", "2026-11-14 12:00:00+00", "2026-11-14 12:00:01+00"},
        {"future", "a", "2026-12-30 12:00:00+00", "2026-12-30 12:00:01+00"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        CHECK(put_span(c, rows[i].trace, rows[i].span, rows[i].start,
                       rows[i].end));
        if (strcmp(rows[i].span, "a") == 0)
            CHECK(put_trace(c, rows[i].trace, rows[i].start, rows[i].end));
    }
    /* cutoff 2026-11-12 06:00: whole days before 2026-11-12 go */
    int dropped = -1;
    CHECK_INT(halo_pg_retention(c, UTC(2026, 11, 12, 6), &dropped, &err),
              HALO_OK);
    CHECK_INT(dropped, 2);
    CHECK_STR(q_text(c,
                     "SELECT string_agg(inhrelid::regclass::text, ' ' ORDER"
                     " BY 1) FROM pg_inherits WHERE inhparent ="
                     " 'span_rows'::regclass",
                     got, sizeof got),
              "spans_default spans_p20261112 spans_p20261113 "
              "spans_p20261114\n");
    CHECK_STR(
        q_text(c,
               "SELECT trace_id, span_id, tableoid::regclass FROM span_rows"
               " ORDER BY 1, 2",
               got, sizeof got),
        "d12|a|spans_p20261112\nd13|a|spans_p20261113\n"
        "d14|a|spans_p20261114\nfuture|a|spans_default\n");
    CHECK_STR(
        q_text(c, "SELECT trace_id FROM traces ORDER BY 1", got, sizeof got),
        "d12\nd13\nd14\nfuture\n");
    /* again: nothing more to drop, nothing newer touched */
    CHECK_INT(halo_pg_retention(c, UTC(2026, 11, 12, 23), &dropped, &err),
              HALO_OK);
    CHECK_INT(dropped, 0);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM spans"), 4);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM traces"), 4);
    /* a cutoff at midnight exactly drops the day before it */
    CHECK_INT(halo_pg_retention(c, UTC(2026, 11, 14, 0), &dropped, &err),
              HALO_OK);
    CHECK_INT(dropped, 2);
    CHECK_STR(
        q_text(c, "SELECT trace_id FROM spans ORDER BY 1", got, sizeof got),
        "d14\nfuture\n");
    CHECK_INT(PQtransactionStatus(c), PQTRANS_IDLE);
    PQfinish(c);
}

/* ---- errors -------------------------------------------------------------- */

TEST(connection_errors_hide_the_password)
{
    PGconn *c = NULL;
    halo_err err = {{0}};
    CHECK_INT(
        halo_pg_connect("postgresql://halo:s3cr3tpw@127.0.0.1:1/db", &c, &err),
        HALO_ERETRY);
    CHECK(!c);
    CHECK_CONTAINS(err.msg, "could not connect to PostgreSQL at "
                            "\"127.0.0.1:1/db\"");
    CHECK(!strstr(err.msg, "s3cr3tpw"));
    static const char *const bad[] = {
        "host=127.0.0.1 password=s3cr3tpw bogus=1",
        "host=127.0.0.1 password=s3cr3tpw oops",
        "postgresql://halo:s3cr3tpw@127.0.0.1:notaport/db",
        "postgresql://halo:s3cr3tpw@[::1/db",
        "port=1 host=127.0.0.1 password='s3cr3tpw'",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        halo_status st = halo_pg_connect(bad[i], &c, &err);
        CHECK(st != HALO_OK);
        CHECK(!c);
        CHECK(err.msg[0]);
        if (strstr(err.msg, "s3cr3tpw"))
            fprintf(stderr, "  leaked: %s\n", err.msg);
        CHECK(!strstr(err.msg, "s3cr3tpw"));
    }
    /* the server's own errors come through */
    char dsn[320];
    CHECK(pg_dsn_for("no_such_db", dsn, sizeof dsn));
    CHECK(halo_pg_connect(dsn, &c, &err) != HALO_OK);
    CHECK_CONTAINS(err.msg, "database \"no_such_db\" does not exist");
}
