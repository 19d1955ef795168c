/*
 * sqlite_schema.c -- the SQLite backend's schema and its migrations
 * (documented in storage/README.md).
 *
 * Migrations are numbered and applied at open, each in its own
 * BEGIN IMMEDIATE transaction that re-reads the version under the lock, so
 * two processes opening a fresh database at once do not both apply one. A
 * database newer than this binary is refused (HALO_EUNSUPPORTED); read-only
 * handles never migrate and accept only the current version. A new
 * migration is a new entry at the end of `migrations` (never edit a
 * released one); PostgreSQL's backend keeps the same column names.
 */
#include "../core/clock.h"
#include "sqlite_int.h"

#include "../core/log.h"

#include <stdio.h>
#include <time.h>

#define LOG_PREFIX "storage:sqlite"

/* ---- schema -------------------------------------------------------------- */

/* The columns of `traces` after trace_id, as migrations 1 and 4 create
 * them. Frozen: both are released migrations; a change is a new one. */
#define TRACES_COLS_AFTER_ID                                                   \
    " agent_id TEXT,"                                                          \
    " agent_name TEXT,"                                                        \
    " session_id TEXT,"                                                        \
    " user_id TEXT,"                                                           \
    " root_name TEXT,"                                                         \
    " start_time TEXT NOT NULL,"                                               \
    " end_time TEXT NOT NULL,"                                                 \
    " duration_ms REAL NOT NULL,"                                              \
    " span_count INTEGER NOT NULL DEFAULT 0,"                                  \
    " error_count INTEGER NOT NULL DEFAULT 0,"                                 \
    " llm_calls INTEGER NOT NULL DEFAULT 0,"                                   \
    " tool_calls INTEGER NOT NULL DEFAULT 0,"                                  \
    " input_tokens INTEGER NOT NULL DEFAULT 0,"                                \
    " output_tokens INTEGER NOT NULL DEFAULT 0,"                               \
    " cost REAL NOT NULL DEFAULT 0,"                                           \
    " start_unix_nano INTEGER NOT NULL,"                                       \
    " end_unix_nano INTEGER NOT NULL,"                                         \
    " root_span_id TEXT,"                                                      \
    " identity_pending INTEGER NOT NULL DEFAULT 0"

/* The columns of spans after span_id, as migration 1 creates them and
 * migration 5 copies them into span_rows. Frozen: both are released
 * migrations; a change is a new one. */
#define SPANS_COLS_AFTER_SPAN_ID                                               \
    " parent_span_id TEXT,"                                                    \
    " name TEXT NOT NULL,"                                                     \
    " kind TEXT NOT NULL,"                                                     \
    " span_type TEXT,"                                                         \
    " agent_id TEXT,"                                                          \
    " agent_name TEXT,"                                                        \
    " session_id TEXT,"                                                        \
    " user_id TEXT,"                                                           \
    " service_name TEXT,"                                                      \
    " model TEXT,"                                                             \
    " tool_name TEXT,"                                                         \
    " start_time TEXT NOT NULL,"                                               \
    " end_time TEXT NOT NULL,"                                                 \
    " duration_ms REAL NOT NULL,"                                              \
    " status_code TEXT NOT NULL,"                                              \
    " status_message TEXT,"                                                    \
    " input TEXT,"                                                             \
    " output TEXT,"                                                            \
    " input_tokens INTEGER,"                                                   \
    " output_tokens INTEGER,"                                                  \
    " cost REAL,"                                                              \
    " attributes TEXT NOT NULL,"                                               \
    " events TEXT NOT NULL,"                                                   \
    " resource TEXT NOT NULL,"                                                 \
    " start_unix_nano INTEGER NOT NULL,"                                       \
    " end_unix_nano INTEGER NOT NULL,"                                         \
    " trace_state TEXT,"                                                       \
    " flags INTEGER NOT NULL DEFAULT 0,"                                       \
    " links TEXT,"                                                             \
    " scope TEXT,"                                                             \
    " resource_schema_url TEXT,"                                               \
    " resource_dropped_attributes_count INTEGER NOT NULL DEFAULT 0,"           \
    " dropped_attributes_count INTEGER NOT NULL DEFAULT 0,"                    \
    " dropped_events_count INTEGER NOT NULL DEFAULT 0,"                        \
    " dropped_links_count INTEGER NOT NULL DEFAULT 0,"                         \
    " fallback_mask INTEGER NOT NULL DEFAULT 0"

static const char SCHEMA_V1[] =
    "CREATE TABLE spans ("
    " trace_id TEXT NOT NULL,"
    " span_id TEXT NOT NULL," SPANS_COLS_AFTER_SPAN_ID ");"
    "CREATE UNIQUE INDEX spans_trace_span ON spans (trace_id, span_id);"
    "CREATE TABLE traces ("
    " trace_id TEXT NOT NULL PRIMARY KEY," TRACES_COLS_AFTER_ID
    ") WITHOUT ROWID;"
    "CREATE INDEX traces_start ON traces (start_time);"
    "CREATE INDEX traces_agent_start ON traces (agent_id, start_time);"
    "CREATE TABLE reports ("
    " id TEXT NOT NULL PRIMARY KEY,"
    " agent_id TEXT,"
    " schedule TEXT,"
    " window_start TEXT,"
    " window_end TEXT,"
    " generated_at TEXT,"
    " mode TEXT,"
    " model TEXT,"
    " json TEXT,"
    " markdown TEXT"
    ");"
    "CREATE INDEX reports_agent_window ON reports (agent_id, window_start);";

/* One row per scheduled analyzer run (store.h claim_run/finish_run):
 * the key is the run, the rest its claim (owner, lease), its state and
 * its outcome. */
static const char SCHEMA_V3[] =
    "CREATE TABLE analyzer_runs ("
    " schedule TEXT NOT NULL,"
    " agent_id TEXT NOT NULL,"
    " window_start TEXT NOT NULL,"
    " window_end TEXT NOT NULL,"
    " window_start_unix_nano INTEGER NOT NULL,"
    " owner TEXT NOT NULL,"
    " lease_until_unix_nano INTEGER NOT NULL,"
    " status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " report_id TEXT,"
    " claimed_at TEXT,"
    " finished_at TEXT,"
    " PRIMARY KEY (schedule, agent_id, window_start_unix_nano)"
    ") WITHOUT ROWID;";

/* `traces` as a rowid table with a unique index on trace_id, instead of
 * WITHOUT ROWID keyed by trace_id. Trace ids are random (SDKs make them
 * so): keyed by them, every write dirtied about one 16 KiB leaf of whole
 * ~250-byte rows per trace, all over the table. Now a new trace's row is
 * appended and only its index entry (~45 bytes, ~6x more per leaf) lands
 * at random: 12% fewer bytes written per span and 9-11% more spans/s with
 * random ids (bench/README.md, 2026-11-23). Same columns, same order; the
 * rows are copied in start order (by the traces_start index: no sort). It
 * runs with the default temp_store (configure() sets MEMORY only after the
 * migrations), so the index builds sort on disk, not in RAM. */
#define TRACES_V4_COLS                                                         \
    "trace_id, agent_id, agent_name, session_id, user_id, root_name,"          \
    " start_time, end_time, duration_ms, span_count, error_count, llm_calls,"  \
    " tool_calls, input_tokens, output_tokens, cost, start_unix_nano,"         \
    " end_unix_nano, root_span_id, identity_pending"
static const char SCHEMA_V4[] =
    "CREATE TABLE traces_v4 ("
    " trace_id TEXT NOT NULL," TRACES_COLS_AFTER_ID ");"
    "INSERT INTO traces_v4 (" TRACES_V4_COLS ") SELECT " TRACES_V4_COLS
    " FROM traces ORDER BY start_time;"
    "DROP TABLE traces;"
    "ALTER TABLE traces_v4 RENAME TO traces;"
    "CREATE UNIQUE INDEX traces_trace ON traces (trace_id);"
    "CREATE INDEX traces_start ON traces (start_time);"
    "CREATE INDEX traces_agent_start ON traces (agent_id, start_time);";

/* Spans keyed by their trace's row, not by its random id (bench/README.md,
 * 2026-11-23: the unique (trace_id, span_id) index cost ~30% of the write
 * throughput and kept the half-load p99 over its target). A trace's spans
 * arrive within seconds of its first one, so their (trace_rowid, span_id)
 * entries land at the end of the index, and the rows no longer repeat the
 * 32-character trace id. `trace_rows.id` is an explicit INTEGER PRIMARY
 * KEY: VACUUM may renumber implicit rowids, and span_rows refer to it.
 * `spans` and `traces` become views with exactly the columns and the order
 * they had (DESIGN §6: the relations users and the sql tool read); every
 * write goes to the tables. Spans without a `traces` row cannot exist (the
 * writer and retention change both in one transaction) and would not be
 * copied. span_rows takes the columns of spans in their order, after
 * trace_rowid, so the copy lists them once, as the view does. Frozen like
 * every released migration: its column lists are spelled out, not taken
 * from the macros the code uses. */
#define SPANS_V5_S_COLS                                                        \
    "s.parent_span_id, s.name, s.kind, s.span_type, s.agent_id,"               \
    " s.agent_name, s.session_id, s.user_id, s.service_name, s.model,"         \
    " s.tool_name, s.start_time, s.end_time, s.duration_ms, s.status_code,"    \
    " s.status_message, s.input, s.output, s.input_tokens, s.output_tokens,"   \
    " s.cost, s.attributes, s.events, s.resource, s.start_unix_nano,"          \
    " s.end_unix_nano, s.trace_state, s.flags, s.links, s.scope,"              \
    " s.resource_schema_url, s.resource_dropped_attributes_count,"             \
    " s.dropped_attributes_count, s.dropped_events_count,"                     \
    " s.dropped_links_count, s.fallback_mask, s.value_types"
static const char SCHEMA_V5[] =
    "CREATE TABLE trace_rows ("
    " id INTEGER PRIMARY KEY,"
    " trace_id TEXT NOT NULL," TRACES_COLS_AFTER_ID ");"
    "INSERT INTO trace_rows (" TRACES_V4_COLS ") SELECT " TRACES_V4_COLS
    " FROM traces ORDER BY rowid;"
    "CREATE TABLE span_rows ("
    " trace_rowid INTEGER NOT NULL,"
    " span_id TEXT NOT NULL," SPANS_COLS_AFTER_SPAN_ID ","
    " value_types TEXT"
    ");"
    "INSERT INTO span_rows SELECT t.id, s.span_id, " SPANS_V5_S_COLS
    " FROM trace_rows t JOIN spans s ON s.trace_id = t.trace_id"
    " ORDER BY t.id;"
    "DROP TABLE spans;"
    "DROP TABLE traces;"
    "CREATE UNIQUE INDEX span_rows_key ON span_rows (trace_rowid, span_id);"
    "CREATE UNIQUE INDEX trace_rows_trace ON trace_rows (trace_id);"
    "CREATE INDEX trace_rows_start ON trace_rows (start_time);"
    "CREATE INDEX trace_rows_agent_start ON trace_rows (agent_id, start_time);"
    "CREATE VIEW spans AS SELECT t.trace_id AS trace_id, s.span_id AS span_id,"
    " " SPANS_V5_S_COLS
    " FROM span_rows s JOIN trace_rows t ON t.id = s.trace_rowid;"
    "CREATE VIEW traces AS SELECT " TRACES_V4_COLS " FROM trace_rows;";

/* Traces stored before it count no priced spans (store.h:
 * halo_cost_unpriced); counting them would read every span. */
static const char SCHEMA_V6[] =
    "ALTER TABLE trace_rows ADD COLUMN priced_spans INTEGER NOT NULL"
    " DEFAULT 0;"
    "DROP VIEW traces;"
    "CREATE VIEW traces AS SELECT " TRACES_V4_COLS ", priced_spans"
    " FROM trace_rows;";

/* Input and output stored once (bench/README.md, 2026-11-23, session 7): the
 * attribute that repeats one (input.value / output.value) holds null in
 * span_rows, input_at / output_at say where, and the view splices the
 * column back (SQ_ATTRS_V7). Rows stored before keep their attributes
 * whole (both NULL). */
static const char SCHEMA_V7[] =
    "ALTER TABLE span_rows ADD COLUMN input_at INTEGER;"
    "ALTER TABLE span_rows ADD COLUMN output_at INTEGER;"
    "DROP VIEW spans;"
    "CREATE VIEW spans AS SELECT t.trace_id AS trace_id, s.span_id AS span_id,"
    " " SQ_SPANS_V7_S_COLS
    " FROM span_rows s JOIN trace_rows t ON t.id = s.trace_rowid;";

/* Resource and scope texts stored once (bench/README.md, 2026-11-23,
 * session 8): every span of a service repeats the same resource JSON
 * (~230 bytes) and scope JSON (~70). The writer keeps each distinct text
 * once in shared_texts and the row refers to it; last_start is at least
 * the start time of every span that refers to it, so retention deletes a
 * text with its last spans. Rows stored before keep their own texts. */
static const char SCHEMA_V8[] =
    "CREATE TABLE shared_texts ("
    " id INTEGER PRIMARY KEY,"
    " body TEXT NOT NULL,"
    " last_start INTEGER NOT NULL"
    ");"
    "CREATE UNIQUE INDEX shared_texts_body ON shared_texts (body);"
    "ALTER TABLE span_rows ADD COLUMN resource_ref INTEGER;"
    "ALTER TABLE span_rows ADD COLUMN scope_ref INTEGER;"
    "DROP VIEW spans;"
    "CREATE VIEW spans AS SELECT t.trace_id AS trace_id, s.span_id AS span_id,"
    " " SQ_SPANS_V8_S_COLS("") " FROM span_rows s JOIN trace_rows t"
                               " ON t.id = s.trace_rowid;";

static const struct migration {
    int version;
    const char *sql;
    const char *what; /* logged before it runs on an existing database */
} migrations[] = {
    {1, SCHEMA_V1, "create the tables"},
    /* where plain JSON loses a value's type (core/json_types.c) */
    {2, "ALTER TABLE spans ADD COLUMN value_types TEXT;",
     "add spans.value_types"},
    /* the analyzer's scheduled runs, claimed by one instance each */
    {3, SCHEMA_V3, "create analyzer_runs"},
    /* traces: appended rows and a trace_id index, not a random-keyed table */
    {4, SCHEMA_V4,
     "rebuild traces as a rowid table (one copy of the table and its "
     "indexes: on a large database this takes a while)"},
    /* spans keyed by (trace row, span id); spans and traces become views */
    {5, SCHEMA_V5,
     "key spans by their trace's row (one copy of both tables and their "
     "indexes: about 25 s per million spans, and the file keeps the old "
     "tables' space for new spans; an index you added on spans is dropped "
     "with it: create it again on span_rows)"},
    /* traces.priced_spans: a cost of 0 is "free" only when spans had one */
    {6, SCHEMA_V6, "add traces.priced_spans"},
    /* input/output not repeated in attributes (the view puts them back) */
    {7, SCHEMA_V7, "store span input and output once"},
    /* one copy of each distinct resource and scope text */
    {8, SCHEMA_V8, "store resource and scope texts once"},
};
#define N_MIGRATIONS (sizeof migrations / sizeof *migrations)

int halo_store_schema_version(void)
{
    return migrations[N_MIGRATIONS - 1].version;
}

/* ---- migrations ---------------------------------------------------------- */

/* Highest applied migration; -1 when schema_migrations does not exist. */
static halo_status schema_version(sq_store *s, int *version, halo_err *err)
{
    sqlite3_stmt *st = NULL;
    *version = -1;
    int rc = sqlite3_prepare_v2(
        s->db,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND "
        "name = 'schema_migrations'",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(s, err, "read the schema");
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return HALO_OK;
    if (rc != SQLITE_ROW)
        return sq_fail(s, err, "read the schema");
    rc = sqlite3_prepare_v2(
        s->db, "SELECT coalesce(max(version), 0) FROM schema_migrations", -1,
        &st, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(s, err, "read the schema version");
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return sq_fail(s, err, "read the schema version");
    return HALO_OK;
}

static halo_status check_not_newer(sq_store *s, int version, halo_err *err)
{
    int latest = halo_store_schema_version();
    if (version > latest)
        return halo_fail(err, HALO_EUNSUPPORTED,
                         "database \"%s\" has schema version %d, newer than "
                         "this halo binary supports (%d): upgrade halo",
                         s->path, version, latest);
    return HALO_OK;
}

/* existing: the database had a schema when it was opened (a fresh one
 * gets every migration at once, without a line for each). */
static halo_status apply_migration(sq_store *s, const struct migration *m,
                                   bool existing, halo_err *err)
{
    int version;
    halo_status st = sq_exec(s, "BEGIN IMMEDIATE", "begin a migration", err);
    if (st == HALO_OK) /* re-read under the lock: another process may have */
        st = schema_version(s, &version, err);
    if (st == HALO_OK)
        st = check_not_newer(s, version, err);
    if (st == HALO_OK && version < m->version) {
        char sql[160], now[31];
        if (existing)
            LOG_INFO(LOG_PREFIX, "applying schema migration %d to %s: %s",
                     m->version, s->path, m->what);
        halo_iso_from_ns(halo_real_ns(), now);
        st = sq_exec(s, m->sql, "apply a schema migration", err);
        snprintf(sql, sizeof sql,
                 "INSERT INTO schema_migrations VALUES (%d, '%s')", m->version,
                 now);
        if (st == HALO_OK)
            st = sq_exec(s, sql, "record a schema migration", err);
        if (st == HALO_OK)
            LOG_INFO(LOG_PREFIX, "applied schema migration %d to %s",
                     m->version, s->path);
    }
    if (st == HALO_OK)
        st = sq_exec(s, "COMMIT", "commit a migration", err);
    if (st != HALO_OK)
        sq_rollback(s);
    return st;
}

halo_status sq_migrate(sq_store *s, halo_err *err)
{
    return sq_migrate_to(s, halo_store_schema_version(), err);
}

halo_status sq_migrate_to(sq_store *s, int upto, halo_err *err)
{
    int version = -1;
    halo_status st =
        sq_exec(s,
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
                "create schema_migrations", err);
    if (st == HALO_OK)
        st = schema_version(s, &version, err);
    if (st == HALO_OK)
        st = check_not_newer(s, version, err);
    bool existing = version > 0;
    for (size_t i = 0; st == HALO_OK && i < N_MIGRATIONS; i++)
        if (migrations[i].version > version && migrations[i].version <= upto)
            st = apply_migration(s, &migrations[i], existing, err);
    return st;
}

/* Read-only handles cannot migrate: the schema must be exactly current. */
halo_status sq_check_schema_ro(sq_store *s, halo_err *err)
{
    int version;
    halo_status st = schema_version(s, &version, err);
    if (st != HALO_OK)
        return st;
    if (version < 0)
        return halo_fail(err, HALO_EINVAL,
                         "database \"%s\" is not a halo database (it has no "
                         "schema_migrations table)",
                         s->path);
    st = check_not_newer(s, version, err);
    if (st == HALO_OK && version < halo_store_schema_version())
        return halo_fail(err, HALO_EINVAL,
                         "database \"%s\" has schema version %d, older than "
                         "this binary's %d: run `halo serve` once to migrate "
                         "it",
                         s->path, version, halo_store_schema_version());
    return st;
}
