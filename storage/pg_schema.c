/*
 * pg_schema.c -- the PostgreSQL backend's schema: migrations, the daily
 * partitions of `spans`, retention (see pg_schema.h and storage/README.md).
 *
 * Migrations are numbered like SQLite's (a new one is a new entry at the end
 * of `migrations`; never edit a released one) and applied at start in ONE
 * transaction: PostgreSQL's DDL is transactional, so a failed migration
 * leaves nothing behind. The transaction first takes
 * pg_advisory_xact_lock(HALO_PG_LOCK_KEY) and only then reads the version,
 * so of several instances starting at once one migrates and the others,
 * after waiting, find the schema current. Partition creation and retention
 * take the same lock, so they never race each other either.
 *
 * Partitions: `span_rows` (the table behind the `spans` view since migration
 * 5) is PARTITION BY RANGE (start_time), one partition per
 * UTC day (spans_pYYYYMMDD, [midnight, next midnight)) plus spans_default.
 * The default partition is the safety net: a span whose day has no
 * partition (a late span older than the created days, a client clock far in
 * the future) is still stored instead of failing its whole batch, which
 * at-least-once redelivery would otherwise retry forever. Since PostgreSQL
 * refuses a new partition while the default holds rows of its range, a day
 * partition is created as a plain table (LIKE span_rows), that day's rows are
 * moved into it from spans_default, and it is then ATTACHed (which builds
 * the partition's indexes). spans_default is locked against writes while
 * that happens, so no row of the day can slip into it before the ATTACH
 * (inserts routed to other partitions do not wait).
 *
 * All SQL here is built from integers and names computed in this file; no
 * caller string ever reaches it.
 */
#include "pg_schema.h"

#include "../core/log.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_PREFIX "storage:postgres"
#define DAY_S INT64_C(86400)
/* Partition days are limited to [1970-01-01, 3000-01-01). */
#define MAX_UNIX_S INT64_C(32503680000)
#define MAX_DAYS_AHEAD 3660

/* ---- schema ------------------------------------------------------------ */

static const char SCHEMA_V1[] =
    "CREATE TABLE spans ("
    " trace_id text NOT NULL,"
    " span_id text NOT NULL,"
    " parent_span_id text,"
    " name text NOT NULL,"
    " kind text NOT NULL,"
    " span_type text,"
    " agent_id text,"
    " agent_name text,"
    " session_id text,"
    " user_id text,"
    " service_name text,"
    " model text,"
    " tool_name text,"
    " start_time timestamptz NOT NULL,"
    " end_time timestamptz NOT NULL,"
    " duration_ms double precision NOT NULL,"
    " status_code text NOT NULL,"
    " status_message text,"
    " input text,"
    " output text,"
    " input_tokens bigint,"
    " output_tokens bigint,"
    " cost double precision,"
    " attributes json NOT NULL,"
    " events json NOT NULL,"
    " resource json NOT NULL,"
    " start_unix_nano bigint NOT NULL,"
    " end_unix_nano bigint NOT NULL,"
    " trace_state text,"
    " flags bigint NOT NULL DEFAULT 0,"
    " links json,"
    " scope json,"
    " resource_schema_url text,"
    " resource_dropped_attributes_count bigint NOT NULL DEFAULT 0,"
    " dropped_attributes_count bigint NOT NULL DEFAULT 0,"
    " dropped_events_count bigint NOT NULL DEFAULT 0,"
    " dropped_links_count bigint NOT NULL DEFAULT 0,"
    " fallback_mask integer NOT NULL DEFAULT 0,"
    " PRIMARY KEY (trace_id, span_id, start_time)"
    ") PARTITION BY RANGE (start_time);"
    "CREATE TABLE spans_default PARTITION OF spans DEFAULT;"
    /* Lookups by trace_id use the primary key (trace_id leads it). */
    "CREATE INDEX spans_agent_start ON spans (agent_id, start_time);"
    "CREATE TABLE traces ("
    " trace_id text NOT NULL PRIMARY KEY,"
    " agent_id text,"
    " agent_name text,"
    " session_id text,"
    " user_id text,"
    " root_name text,"
    " start_time timestamptz NOT NULL,"
    " end_time timestamptz NOT NULL,"
    " duration_ms double precision NOT NULL,"
    " span_count bigint NOT NULL DEFAULT 0,"
    " error_count bigint NOT NULL DEFAULT 0,"
    " llm_calls bigint NOT NULL DEFAULT 0,"
    " tool_calls bigint NOT NULL DEFAULT 0,"
    " input_tokens bigint NOT NULL DEFAULT 0,"
    " output_tokens bigint NOT NULL DEFAULT 0,"
    " cost double precision NOT NULL DEFAULT 0,"
    " start_unix_nano bigint NOT NULL,"
    " end_unix_nano bigint NOT NULL,"
    " root_span_id text,"
    " identity_pending integer NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX traces_start ON traces (start_time);"
    "CREATE INDEX traces_agent_start ON traces (agent_id, start_time);"
    "CREATE TABLE reports ("
    " id text NOT NULL PRIMARY KEY,"
    " agent_id text,"
    " schedule text,"
    " window_start timestamptz,"
    " window_end timestamptz,"
    " generated_at timestamptz,"
    " mode text,"
    " model text,"
    " json jsonb,"
    " markdown text"
    ");"
    "CREATE INDEX reports_agent_window ON reports (agent_id, window_start);";

/* One row per scheduled analyzer run (store.h claim_run/finish_run): the
 * key is the run, the rest its claim (owner, lease), state and outcome. */
static const char SCHEMA_V3[] =
    "CREATE TABLE analyzer_runs ("
    " schedule text NOT NULL,"
    " agent_id text NOT NULL,"
    " window_start timestamptz NOT NULL,"
    " window_end timestamptz NOT NULL,"
    " window_start_unix_nano bigint NOT NULL,"
    " owner text NOT NULL,"
    " lease_until_unix_nano bigint NOT NULL,"
    " status text NOT NULL CHECK (status IN ('running', 'done', 'failed')),"
    " attempts integer NOT NULL DEFAULT 0,"
    " last_error text,"
    " report_id text,"
    " claimed_at timestamptz,"
    " finished_at timestamptz,"
    " PRIMARY KEY (schedule, agent_id, window_start_unix_nano)"
    ");";

/* The spans view: the columns of `spans` as they were stored before
 * migration 5, in their order. CREATE names the statement, RES and SCOPE
 * the expressions of those two columns (each with its alias, if any), FROM
 * the relations after FROM. */
#define SPANS_VIEW(CREATE, RES, SCOPE, FROM)                                   \
    CREATE " spans AS SELECT s.trace_id, s.span_id, s.parent_span_id,"         \
           " s.name, s.kind, s.span_type, s.agent_id, s.agent_name,"           \
           " s.session_id,"                                                    \
           " s.user_id, s.service_name, s.model, s.tool_name, s.start_time,"   \
           " s.end_time, s.duration_ms, s.status_code, s.status_message,"      \
           " s.input,"                                                         \
           " s.output, s.input_tokens, s.output_tokens, s.cost,"               \
           " CASE WHEN s.input_at IS NULL AND s.output_at IS NULL THEN"        \
           " s.attributes"                                                     \
           " WHEN s.output_at IS NULL THEN overlay(s.attributes::text placing" \
           " to_json(s.input)::text from s.input_at for 4)::json"              \
           " WHEN s.input_at IS NULL THEN overlay(s.attributes::text placing"  \
           " to_json(s.output)::text from s.output_at for 4)::json"            \
           " WHEN s.input_at < s.output_at THEN"                               \
           " overlay(overlay(s.attributes::text"                               \
           " placing to_json(s.output)::text from s.output_at for 4) placing"  \
           " to_json(s.input)::text from s.input_at for 4)::json"              \
           " ELSE overlay(overlay(s.attributes::text placing"                  \
           " to_json(s.input)::text"                                           \
           " from s.input_at for 4) placing to_json(s.output)::text from"      \
           " s.output_at for 4)::json END AS attributes,"                      \
           " s.events, " RES ", s.start_unix_nano, s.end_unix_nano,"           \
           " s.trace_state, s.flags, s.links, " SCOPE                          \
           ", s.resource_schema_url,"                                          \
           " s.resource_dropped_attributes_count, s.dropped_attributes_count," \
           " s.dropped_events_count, s.dropped_links_count, s.fallback_mask,"  \
           " s.value_types FROM " FROM ";"

/* The spans view since migration 6: resource and scope joined back from
 * shared_texts. */
#define SPANS_VIEW_SHARED(CREATE)                                              \
    SPANS_VIEW(CREATE, "coalesce(r.body, s.resource) AS resource",             \
               "coalesce(o.body, s.scope) AS scope",                           \
               "span_rows s LEFT JOIN shared_texts r ON r.id = s.resource_ref" \
               " LEFT JOIN shared_texts o ON o.id = s.scope_ref")

/* The role of aclexplode()'s grantee g, as GRANT names it. */
#define GRANTEE_SQL                                                            \
    "CASE WHEN g.grantee = 0 THEN 'PUBLIC'"                                    \
    " ELSE quote_ident(pg_get_userbyid(g.grantee)) END"

/* Input and output stored once, as in SQLite's migration 7 (storage/
 * README.md): the partitioned table becomes span_rows (its partitions and
 * indexes keep their names), where the attribute that repeats a span's
 * input / output (input.value, output.value) holds null and input_at /
 * output_at give its place in characters; `spans` becomes a view with
 * exactly the old columns, in their order, that splices the texts back
 * (the later place first, so the earlier keeps its position). Rows stored
 * before have both NULL. Metadata only: no row is rewritten. */
static const char SCHEMA_V5[] =
    "ALTER TABLE spans RENAME TO span_rows;"
    "ALTER TABLE span_rows ADD COLUMN input_at integer,"
    " ADD COLUMN output_at integer;" SPANS_VIEW("CREATE VIEW", "s.resource",
                                                "s.scope", "span_rows s")
    /* the roles that could read spans (Grafana's...) read the view: the
     * grants stayed with the renamed table */
    "DO $$ DECLARE g record; BEGIN"
    " FOR g IN SELECT DISTINCT a.grantee FROM pg_class c,"
    " aclexplode(c.relacl) a WHERE c.oid = 'span_rows'::regclass"
    " AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner LOOP"
    " EXECUTE 'GRANT SELECT ON spans TO ' || " GRANTEE_SQL ";"
    " END LOOP; END $$;";

/* Resource and scope texts stored once, as in SQLite's migration 8
 * (storage/README.md): shared_texts keeps each distinct text once under a
 * 64-bit hash of its bytes (pg_write.c: the writer checks the text, so a
 * collision only keeps a text in its row); span_rows.resource_ref /
 * scope_ref refer to it, the row's own column then NULL. last_start is at
 * least the start (ns) of every span that refers to the text, which is how
 * retention knows when it may go. The view joins the texts back (the join
 * is removed from the plans of queries that read neither column). CREATE OR
 * REPLACE keeps the view's grants. Metadata only: no row is rewritten. */
static const char SCHEMA_V6[] =
    "CREATE TABLE shared_texts ("
    " id bigint PRIMARY KEY,"
    " body json NOT NULL,"
    " last_start bigint NOT NULL"
    ");"
    "ALTER TABLE span_rows ADD COLUMN resource_ref bigint,"
    " ADD COLUMN scope_ref bigint, ALTER COLUMN resource DROP NOT "
    "NULL;" SPANS_VIEW_SHARED("CREATE OR REPLACE VIEW");

/* The agent/time index of `spans` as two cheaper ones (bench/README.md,
 * session 12): a B-tree on agent_id (few distinct values: its entries
 * deduplicate into posting lists) and a BRIN on start_time (rows arrive in
 * about start order, so each range of pages holds a narrow time range).
 * An agent-and-time query ANDs the two bitmaps inside the day partitions
 * the time bounds leave; the one B-tree on (agent_id, start_time) took as
 * long to maintain as the primary key, a fifth of every COPY. halo's own
 * reads go through `traces` and the primary key, not these. New ranges of
 * pages are summarized by VACUUM (autovacuum runs on insert-only tables
 * too); until then a range is read whole, never missed. Not autosummarize:
 * it queues an autovacuum work item per filled range (256 slots per
 * server), which at 100k spans/s fills in seconds and then logs a
 * "not recorded" line per range. */
static const char SCHEMA_V7[] =
    "DROP INDEX IF EXISTS spans_agent_start;"
    "CREATE INDEX spans_agent ON span_rows (agent_id);"
    "CREATE INDEX spans_start ON span_rows USING brin (start_time);";

/* Every grant on the view saved in halo_spans_acl given again (its
 * owner's own excepted). */
#define SPANS_GRANTS_AGAIN                                                     \
    "DO $$ DECLARE g record; BEGIN"                                            \
    " FOR g IN SELECT a.grantee, a.privilege_type, a.is_grantable"             \
    " FROM halo_spans_acl x, aclexplode(x.relacl) a"                           \
    " WHERE a.grantee <> x.relowner LOOP"                                      \
    " EXECUTE 'GRANT ' || g.privilege_type || ' ON spans TO ' || " GRANTEE_SQL \
    " || CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END;"      \
    " END LOOP; END $$;"

/* The id columns compared in every write and lookup in the "C" collation
 * (bytewise, as SQLite's BINARY): their B-tree keys then compare with
 * memcmp instead of the database's collation (strcoll on copies of both
 * strings), and the primary keys and agent indexes cost less to maintain
 * (bench/README.md, session 13). Equality is unchanged (the database's
 * collation is deterministic); only ORDER BY of non-ASCII agent ids
 * changes, to SQLite's order. A query that compares these columns with
 * text of the database's default collation uses "C" (a column's own
 * collation wins over the default), so it still uses the indexes. The
 * spans view reads these columns, so it is dropped and made again (same
 * definition as migration 6), its grants replayed. The rows are not
 * rewritten; the indexes over these columns are rebuilt. */
static const char SCHEMA_V8[] =
    "CREATE TEMP TABLE halo_spans_acl ON COMMIT DROP AS"
    " SELECT relacl, relowner FROM pg_class WHERE oid = 'spans'::regclass;"
    "DROP VIEW spans;"
    "ALTER TABLE span_rows ALTER COLUMN trace_id TYPE text COLLATE \"C\","
    " ALTER COLUMN span_id TYPE text COLLATE \"C\","
    " ALTER COLUMN parent_span_id TYPE text COLLATE \"C\","
    " ALTER COLUMN agent_id TYPE text COLLATE \"C\";"
    "ALTER TABLE traces ALTER COLUMN trace_id TYPE text COLLATE \"C\","
    " ALTER COLUMN root_span_id TYPE text COLLATE \"C\","
    " ALTER COLUMN agent_id TYPE text COLLATE \"C\";" SPANS_VIEW_SHARED(
        "CREATE VIEW") SPANS_GRANTS_AGAIN;

static const struct migration {
    int version;
    const char *name; /* recorded in schema_migrations; no quotes */
    const char *sql;
} migrations[] = {
    {1, "spans, traces, reports", SCHEMA_V1},
    /* where plain JSON loses a value's type (core/json_types.c); added to
     * every partition */
    {2, "spans.value_types", "ALTER TABLE spans ADD COLUMN value_types json;"},
    /* the analyzer's scheduled runs, claimed by one instance each */
    {3, "analyzer_runs", SCHEMA_V3},
    /* a cost of 0 is "free" only when spans had one (store.h:
     * halo_cost_unpriced); traces stored before count none */
    {4, "traces.priced_spans",
     "ALTER TABLE traces ADD COLUMN priced_spans bigint NOT NULL DEFAULT 0;"},
    /* spans' rows in span_rows, input/output once; spans a view */
    {5, "span_rows, input and output once", SCHEMA_V5},
    /* resource and scope texts once, in shared_texts */
    {6, "shared_texts, resource and scope once", SCHEMA_V6},
    /* spans (agent_id, start_time) as a B-tree and a BRIN */
    {7, "spans_agent, spans_start (BRIN)", SCHEMA_V7},
    /* the id columns bytewise */
    {8, "id columns in the C collation", SCHEMA_V8},
};
#define N_MIGRATIONS (sizeof migrations / sizeof *migrations)

int halo_pg_schema_version(void)
{
    return migrations[N_MIGRATIONS - 1].version;
}

/* ---- errors and statements --------------------------------------------- */

/* "could not WHAT: <server message>", from the result when there is one
 * (its primary message and detail), else from the connection. */
static halo_status pg_fail(PGconn *c, const PGresult *res, const char *what,
                           halo_err *err)
{
    char msg[HALO_ERR_MAX];
    halo_pg_error_text(c, res, msg, sizeof msg);
    halo_status st = PQstatus(c) == CONNECTION_OK ? HALO_EIO : HALO_ERETRY;
    return halo_fail(err, st, "could not %s: %s", what, msg);
}

/* Run sql (one or more statements); the last result must be `want`. The
 * result is returned in *out when out is not NULL (caller PQclear()s). */
static halo_status pg_exec(PGconn *c, const char *sql, ExecStatusType want,
                           const char *what, PGresult **out, halo_err *err)
{
    PGresult *res = PQexec(c, sql);
    if (!res || PQresultStatus(res) != want) {
        halo_status st = pg_fail(c, res, what, err);
        PQclear(res);
        return st;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return HALO_OK;
}

static halo_status pg_cmd(PGconn *c, const char *sql, const char *what,
                          halo_err *err)
{
    return pg_exec(c, sql, PGRES_COMMAND_OK, what, NULL, err);
}

static void pg_rollback(PGconn *c)
{
    if (PQtransactionStatus(c) != PQTRANS_IDLE)
        PQclear(PQexec(c, "ROLLBACK"));
}

/* BEGIN, quiet notices ("already exists, skipping"), UTC for the partition
 * bounds, then wait for the halo schema lock. */
static halo_status begin_locked(PGconn *c, const char *what, halo_err *err)
{
    char sql[256];
    if (PQstatus(c) != CONNECTION_OK)
        return pg_fail(c, NULL, what, err);
    if (PQtransactionStatus(c) != PQTRANS_IDLE)
        return halo_fail(err, HALO_EINVAL,
                         "cannot %s: the connection is inside a transaction",
                         what);
    snprintf(sql, sizeof sql,
             "BEGIN; SET LOCAL client_min_messages = warning;"
             " SET LOCAL TimeZone = 'UTC';"
             " SELECT pg_advisory_xact_lock(%" PRId64 ")",
             HALO_PG_LOCK_KEY);
    halo_status st = pg_exec(c, sql, PGRES_TUPLES_OK, what, NULL, err);
    if (st != HALO_OK)
        pg_rollback(c);
    return st;
}

static halo_status commit(PGconn *c, const char *what, halo_err *err)
{
    halo_status st = pg_cmd(c, "COMMIT", what, err);
    if (st != HALO_OK)
        pg_rollback(c);
    return st;
}

/* First column of the first row as an integer. */
static halo_status query_int(PGconn *c, const char *sql, const char *what,
                             int64_t *out, halo_err *err)
{
    PGresult *res = NULL;
    halo_status st = pg_exec(c, sql, PGRES_TUPLES_OK, what, &res, err);
    if (st != HALO_OK)
        return st;
    if (PQntuples(res) < 1 || PQnfields(res) < 1)
        st = halo_fail(err, HALO_EIO, "could not %s: no row", what);
    else
        *out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return st;
}

/* ---- migrations ---------------------------------------------------------- */

static halo_status apply_pending(PGconn *c, int version, halo_err *err)
{
    for (size_t i = 0; i < N_MIGRATIONS; i++) {
        const struct migration *m = &migrations[i];
        if (m->version <= version)
            continue;
        char sql[256];
        halo_status st = pg_cmd(c, m->sql, "apply a schema migration", err);
        snprintf(sql, sizeof sql,
                 "INSERT INTO schema_migrations (version, name)"
                 " VALUES (%d, '%s')",
                 m->version, m->name);
        if (st == HALO_OK)
            st = pg_cmd(c, sql, "record a schema migration", err);
        if (st != HALO_OK)
            return st;
        LOG_INFO(LOG_PREFIX, "applied schema migration %d (%s)", m->version,
                 m->name);
    }
    return HALO_OK;
}

halo_status halo_pg_migrate(PGconn *c, halo_err *err)
{
    int64_t version = 0;
    int latest = halo_pg_schema_version();
    halo_status st = begin_locked(c, "begin a schema migration", err);
    if (st != HALO_OK)
        return st;
    st = pg_cmd(c,
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                "create schema_migrations", err);
    if (st == HALO_OK)
        st = query_int(c,
                       "SELECT coalesce(max(version), 0) FROM "
                       "schema_migrations",
                       "read the schema version", &version, err);
    if (st == HALO_OK && version > latest)
        st = halo_fail(err, HALO_EUNSUPPORTED,
                       "database \"%s\" has schema version %" PRId64
                       ", newer than this halo binary supports (%d): upgrade "
                       "halo",
                       PQdb(c), version, latest);
    if (st == HALO_OK && version < latest)
        st = apply_pending(c, (int)version, err);
    if (st == HALO_OK)
        return commit(c, "commit the schema migrations", err);
    pg_rollback(c);
    return st;
}

/* ---- partitions ---------------------------------------------------------- */

/* "YYYYMMDD" and "YYYY-MM-DD 00:00:00+00" of the UTC day starting at s. */
static void day_strings(int64_t s, char name[16], char bound[32])
{
    time_t t = (time_t)s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(name, 16, "%Y%m%d", &tm);
    strftime(bound, 32, "%Y-%m-%d 00:00:00+00", &tm);
}

/* 1 when spans_pNAME is already a partition of span_rows. */
static halo_status partition_exists(PGconn *c, const char *table, bool *yes,
                                    halo_err *err)
{
    char sql[384];
    int64_t n = 0;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_inherits"
             " WHERE inhparent = 'span_rows'::regclass"
             " AND inhrelid = to_regclass('%s')",
             table);
    halo_status st = query_int(c, sql, "look up a partition", &n, err);
    *yes = n > 0;
    return st;
}

/* Create the day partition [day_s, day_s + 1 day): a plain table, the
 * day's rows moved in from spans_default, then attached. */
static halo_status create_day(PGconn *c, int64_t day_s, halo_err *err)
{
    char name[16], lo[32], hi[32], table[32], sql[1024], what[96];
    char hi_name[16];
    bool exists = false;
    day_strings(day_s, name, lo);
    day_strings(day_s + DAY_S, hi_name, hi);
    snprintf(table, sizeof table, "spans_p%s", name);
    halo_status st = partition_exists(c, table, &exists, err);
    if (st != HALO_OK || exists)
        return st;
    snprintf(what, sizeof what, "create partition %s", table);
    snprintf(sql, sizeof sql,
             "LOCK TABLE spans_default IN EXCLUSIVE MODE;"
             "CREATE TABLE %s (LIKE span_rows INCLUDING DEFAULTS);"
             "WITH moved AS (DELETE FROM spans_default"
             " WHERE start_time >= '%s' AND start_time < '%s' RETURNING *)"
             " INSERT INTO %s SELECT * FROM moved;"
             "ALTER TABLE span_rows ATTACH PARTITION %s"
             " FOR VALUES FROM ('%s') TO ('%s')",
             table, lo, hi, table, table, lo, hi);
    st = pg_cmd(c, sql, what, err);
    if (st == HALO_OK)
        LOG_INFO(LOG_PREFIX, "created partition %s", table);
    return st;
}

halo_status halo_pg_ensure_partitions(PGconn *c, int64_t from_unix_s,
                                      int days_ahead, halo_err *err)
{
    if (days_ahead < 0 || days_ahead > MAX_DAYS_AHEAD)
        return halo_fail(err, HALO_EINVAL, "invalid days ahead %d (0 to %d)",
                         days_ahead, MAX_DAYS_AHEAD);
    if (from_unix_s < 0 ||
        from_unix_s > MAX_UNIX_S - (int64_t)(days_ahead + 1) * DAY_S)
        return halo_fail(err, HALO_EINVAL,
                         "invalid partition start %" PRId64
                         " (1970 to 3000 only)",
                         from_unix_s);
    int64_t first = from_unix_s / DAY_S * DAY_S;
    halo_status st = begin_locked(c, "begin creating partitions", err);
    for (int d = 0; st == HALO_OK && d <= days_ahead; d++)
        st = create_day(c, first + d * DAY_S, err);
    if (st == HALO_OK)
        return commit(c, "commit the new partitions", err);
    pg_rollback(c);
    return st;
}

/* ---- retention ----------------------------------------------------------- */

/* Partitions of spans whose upper bound is <= boundary (bounds printed in
 * UTC: begin_locked set the TimeZone), schema-qualified and quoted. The
 * default partition and MAXVALUE bounds do not match the pattern. */
static halo_status old_partitions(PGconn *c, const char *boundary,
                                  PGresult **res, halo_err *err)
{
    char sql[768];
    snprintf(sql, sizeof sql,
             "SELECT format('%%I.%%I', n.nspname, k.relname) FROM pg_inherits i"
             " JOIN pg_class k ON k.oid = i.inhrelid"
             " JOIN pg_namespace n ON n.oid = k.relnamespace"
             " WHERE i.inhparent = 'span_rows'::regclass"
             " AND (regexp_match(pg_get_expr(k.relpartbound, k.oid),"
             " 'TO \\(''([^'']+)''\\)'))[1]::timestamptz <= '%s'"
             " ORDER BY k.relname",
             boundary);
    return pg_exec(c, sql, PGRES_TUPLES_OK, "list old partitions", res, err);
}

static halo_status drop_old(PGconn *c, const char *boundary, int *dropped,
                            halo_err *err)
{
    PGresult *res = NULL;
    halo_status st = old_partitions(c, boundary, &res, err);
    for (int i = 0; st == HALO_OK && i < PQntuples(res); i++) {
        char sql[256], what[200];
        const char *table = PQgetvalue(res, i, 0);
        snprintf(sql, sizeof sql, "DROP TABLE %s", table);
        snprintf(what, sizeof what, "drop partition %s", table);
        st = pg_cmd(c, sql, what, err);
        if (st == HALO_OK) {
            (*dropped)++;
            LOG_INFO(LOG_PREFIX, "retention dropped partition %s", table);
        }
    }
    PQclear(res);
    return st;
}

/* Traces that started before the boundary go, with their spans in newer
 * partitions (a trace crossing midnight) and any old rows left in
 * spans_default: no trace is left half-deleted. */
static halo_status delete_old_traces(PGconn *c, const char *boundary,
                                     halo_err *err)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "DELETE FROM span_rows WHERE start_time >= '%s' AND trace_id IN"
             " (SELECT trace_id FROM traces WHERE start_time < '%s'"
             " AND end_time >= '%s');"
             "DELETE FROM traces WHERE start_time < '%s';"
             "DELETE FROM span_rows WHERE start_time < '%s'",
             boundary, boundary, boundary, boundary, boundary);
    return pg_cmd(c, sql, "delete the traces older than the retention", err);
}

/* The shared texts (migration 6) no remaining span refers to: those whose
 * last_start is before the boundary, in a transaction of its own after the
 * spans went. It first waits for the span writes in progress (they hold the
 * texts lock shared) and holds off new ones; a write that committed a span
 * older than the boundary after the spans were deleted would otherwise
 * refer to a text deleted here, so those spans are deleted again first
 * (spans_default only: the old day partitions are gone). */
static halo_status expire_texts(PGconn *c, const char *boundary,
                                int64_t boundary_s, halo_err *err)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "BEGIN; SET LOCAL TimeZone = 'UTC';"
             " SELECT pg_advisory_xact_lock(%" PRId64 ");"
             " DELETE FROM span_rows WHERE start_time < '%s';"
             " DELETE FROM shared_texts WHERE last_start < %" PRId64
             "000000000;"
             " COMMIT",
             (int64_t)HALO_PG_TEXTS_LOCK_KEY, boundary, boundary_s);
    halo_status st = pg_cmd(c, sql, "delete the texts of deleted spans", err);
    if (st != HALO_OK)
        pg_rollback(c);
    return st;
}

halo_status halo_pg_retention(PGconn *c, int64_t older_than_unix_s,
                              int *dropped, halo_err *err)
{
    int n = 0;
    char name[16], boundary[32];
    if (dropped)
        *dropped = 0;
    if (older_than_unix_s < 0 || older_than_unix_s > MAX_UNIX_S)
        return halo_fail(err, HALO_EINVAL,
                         "invalid retention cutoff %" PRId64
                         " (1970 to 3000 only)",
                         older_than_unix_s);
    day_strings(older_than_unix_s / DAY_S * DAY_S, name, boundary);
    halo_status st = begin_locked(c, "begin retention", err);
    if (st == HALO_OK)
        st = drop_old(c, boundary, &n, err);
    if (st == HALO_OK)
        st = delete_old_traces(c, boundary, err);
    if (st == HALO_OK)
        st = commit(c, "commit retention", err);
    else
        pg_rollback(c);
    if (st == HALO_OK)
        st = expire_texts(c, boundary, older_than_unix_s / DAY_S * DAY_S, err);
    if (st == HALO_OK && dropped)
        *dropped = n;
    return st;
}
