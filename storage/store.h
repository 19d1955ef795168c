/*
 * store.h -- the storage interface shared by exporters, CLI and analyzer.
 *
 * A store is a small vtable (Redis connection types): a backend fills a
 * halo_store_ops table and embeds `halo_store` as the first member of its
 * own struct. Every backend keeps the same relations with the same column
 * names (DESIGN §6, documented in storage/README.md), so users' SQL, the
 * analyzer and Grafana dashboards work on either:
 *
 *   spans     one row per span, idempotent on (trace_id, span_id)
 *   traces    one row per trace, a rollup kept current on every write
 *   reports   analyzer reports
 *   schema_migrations
 *
 * Writes: write_batches() stores every span of the given batches in ONE
 * transaction (group commit): spans already present are skipped, the
 * traces rollup counts only rows actually inserted, and spans whose
 * identity fields came from the resource fallback (HALO_FB_* bits) take
 * their root span's values once the root is stored. When it returns
 * HALO_OK the transaction is committed (durable with synchronous=full);
 * on failure it is rolled back and nothing was written.
 *
 * A write is two steps, so the costly one can run off the writing thread:
 * prepare() turns a batch into the backend's rows (hex ids, ISO times,
 * JSON columns, derived fields), on any thread and concurrently with the
 * writer; write_rows() then only binds and executes, in one transaction.
 * Rows are self-contained: once prepared, the batch's spans may be freed.
 * write_batches() is prepare + write_rows for callers that need no split.
 *
 * Threads: a store handle is used by one thread at a time (the sqlite
 * exporter's writer thread owns its handle; the CLI opens its own
 * read-only handle). Several handles may be open on one database.
 *
 * Results of reads are allocated in a caller-provided arena: free the arena
 * to free them.
 */
#ifndef HALO_STORE_H
#define HALO_STORE_H

#include "../core/arena.h"
#include "../core/batch.h"
#include "../core/span.h"
#include "../core/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct halo_store halo_store;

/* ---- open options ---------------------------------------------------- */

enum { HALO_SYNC_FULL = 0, HALO_SYNC_NORMAL = 1 };

typedef struct halo_store_opts {
    const char *path;        /* SQLite: the database file */
    bool read_only;          /* open an existing database for reading only */
    int synchronous;         /* HALO_SYNC_FULL (default) or HALO_SYNC_NORMAL */
    int64_t busy_timeout_ms; /* 0: 5000 */
    int64_t cache_kib;       /* page cache per connection; 0: 16384 (16 MiB) */
    /* SQLite: copy the write-ahead log into the database from a thread of
     * the store's own (a second connection) instead of in the writer's
     * commits, so a long-running writer spends its time writing. */
    bool background_checkpoint;
    /* SQLite with background_checkpoint: the log size past which the
     * writer copies the log back itself (0: 512 MiB). */
    int64_t wal_limit_bytes;
    /* SQLite, synchronous FULL: write_rows() commits without waiting for
     * the disk, and sync() makes every commit so far durable. The writer
     * goes on with its next transaction while the disk syncs the last one;
     * a caller confirms a write only after a sync() that began after the
     * write returned. Ignored when the backend has no sync(). */
    bool deferred_sync;
} halo_store_opts;

/* ---- read results ------------------------------------------------------ */

/* One row of `traces`. Strings are NULL when unknown. */
typedef struct halo_trace_row {
    char trace_id[33];
    const char *agent_id;
    const char *agent_name;
    const char *session_id;
    const char *user_id;
    const char *root_name;  /* NULL until the root span is stored */
    const char *start_time; /* ISO-8601 UTC, 9 fractional digits */
    const char *end_time;
    uint64_t start_ns;
    uint64_t end_ns;
    double duration_ms;
    int64_t span_count;
    int64_t error_count;
    int64_t llm_calls;
    int64_t tool_calls;
    int64_t input_tokens;
    int64_t output_tokens;
    double cost;
    int64_t priced_spans; /* spans with a cost (halo_cost_unpriced) */
} halo_trace_row;

typedef struct halo_trace_filter {
    const char *agent_id; /* NULL: every agent */
    uint64_t since_ns;    /* trace start >= since; 0: no lower bound */
    uint64_t until_ns;    /* trace start < until; 0: no upper bound */
    bool errors_only;     /* only traces with error_count > 0 */
    int64_t limit;        /* <= 0: no limit */
} halo_trace_filter;

/* Per agent over a window of trace start times. */
typedef struct halo_agent_stats {
    const char *agent_id; /* NULL: spans without an agent */
    int64_t runs;         /* traces */
    int64_t error_runs;   /* traces with at least one ERROR span */
    double error_rate;    /* error_runs / runs */
    double p50_ms;        /* trace duration percentiles (nearest rank) */
    double p95_ms;
    int64_t spans;
    int64_t input_tokens;
    int64_t output_tokens;
    double cost;
    int64_t priced_spans; /* spans that carried a cost (traces.priced_spans) */
} halo_agent_stats;

/* The stores roll a cost nobody knows up as 0, so a cost of 0 is "free"
 * only when some span carried a cost (priced at 0: a local model). Runs
 * with tokens and no priced span had no price for their models. Traces
 * stored before the rollup counted priced spans (SQLite schema 6,
 * PostgreSQL 4) count none: for them a cost above 0 is the sign. When
 * only some spans were priced the cost is a lower bound, shown as is.
 * How `halo agents` and report Markdown tell the two apart. */
static inline bool halo_cost_unpriced(double cost, int64_t priced_spans,
                                      int64_t input_tokens,
                                      int64_t output_tokens)
{
    return cost == 0 && priced_spans == 0 && input_tokens + output_tokens > 0;
}

/* One analyzer report (the `reports` table). */
typedef struct halo_report_row {
    const char *id;
    const char *agent_id;
    const char *schedule;
    const char *window_start; /* ISO-8601 UTC */
    const char *window_end;
    const char *generated_at;
    const char *mode; /* "rlm" | "detectors" */
    const char *model;
    const char *json;
    const char *markdown;
} halo_report_row;

/* Which reports list_reports() returns: newest window first (ties: id). */
typedef struct halo_report_filter {
    const char *agent_id; /* NULL: every agent */
    const char *schedule; /* NULL: every schedule */
    int64_t limit;        /* <= 0: no limit */
} halo_report_filter;

/* ---- the analyzer's window scan (scan_window) ------------------------- */

/* One span as the detectors read it: the normalized fields only (DESIGN §5),
 * never the raw attributes. Strings are NULL when the column is NULL;
 * input/output are cut to the filter's max_text bytes (at a UTF-8
 * character boundary). Valid only during the callback. */
typedef struct halo_scan_span {
    char span_id[17];        /* 16 hex digits */
    char parent_span_id[17]; /* "" for a root span */
    const char *name;
    const char *span_type; /* "LLM", "TOOL", ...; never NULL ("UNKNOWN") */
    const char *tool_name;
    const char *model;
    const char *status_message;
    const char *input;
    const char *output;
    uint64_t start_ns;
    uint64_t end_ns;
    double duration_ms;
    int status_code;       /* HALO_STATUS_* */
    int64_t input_tokens;  /* -1 when unknown */
    int64_t output_tokens; /* -1 when unknown */
    double cost;           /* -1 when unknown */
} halo_scan_span;

/* One trace (run) of the window: its `traces` row and its spans ordered by
 * start time (ties: span id). Valid only during the callback. */
typedef struct halo_scan_trace {
    const halo_trace_row *trace;
    const halo_scan_span *spans;
    size_t n;
} halo_scan_trace;

/* Called once per trace; a non-zero return stops the scan (scan_window
 * then returns HALO_OK). */
typedef int (*halo_scan_fn)(void *ctx, const halo_scan_trace *t);

typedef struct halo_scan_filter {
    const char *agent_id; /* required: the agent whose runs to read */
    uint64_t since_ns;    /* trace start >= since */
    uint64_t until_ns;    /* trace start < until */
    size_t max_text;      /* input/output cut to this many bytes; 0: 4096 */
} halo_scan_filter;

/* ---- analyzer run claims (claim_run / finish_run) ---------------------- */

/* One scheduled run: (schedule, agent_id, window_start) is unique in the
 * store (`analyzer_runs`), which is how several halo instances on one
 * database run each window exactly once. Times are the caller's clock (an
 * injected one in tests), never the database's. */
typedef struct halo_run_key {
    const char *schedule;
    const char *agent_id;
    uint64_t window_start_ns;
    uint64_t window_end_ns;
} halo_run_key;

typedef enum halo_claim_result {
    HALO_CLAIM_TAKEN = 0, /* the caller holds the run now: do it */
    HALO_CLAIM_DONE,      /* finished before (by anyone): skip */
    HALO_CLAIM_HELD,      /* another owner holds a live lease: skip */
} halo_claim_result;

/* Spans of one batch, encoded for one backend (prepare()). Backends embed
 * this as the first member of their own row set. */
typedef struct halo_store_rows {
    size_t n_spans;
} halo_store_rows;

typedef struct halo_write_stats {
    int64_t inserted;   /* new span rows */
    int64_t duplicates; /* spans already stored (skipped) */
    int64_t fixed_up;   /* stored spans that took their root's identity */
} halo_write_stats;

/* ---- the analyzer's tools (sql_query / search_spans) -------------------- */

/* The RLM engine's `sql` tool (DESIGN §7): one read-only statement of the
 * model's over the relations `spans` and `traces`, which inside the tool
 * hold only the scope's rows: the traces of agent_id that started in
 * [since_ns, until_ns) (0: unbounded) and their spans. Both relations have
 * the columns and column order of SQLite's tables (storage/README.md),
 * times as ISO-8601 text with 9 digits in both backends (use
 * *_unix_nano for arithmetic); nothing else in the database is visible.
 *
 * The result is text for a model: a header line of column names, then one
 * line per row, cells separated by tabs (backslash, tab, newline, CR and
 * other control bytes escaped as \\ \t \n \r \xNN; NULL as "NULL";
 * numbers formatted the same way by both backends), each cell cut at
 * max_cell bytes (at a UTF-8 boundary, "..." appended), then a footer:
 *
 *   (N rows)                         every row shown
 *   (showing N of M rows)            max_rows or max_bytes reached; M the
 *   (showing N of M+ rows)           total, "M+" when counting stopped
 *                                    (10000 rows past the last shown, or
 *                                    the timeout)
 *
 * A refused or failed statement is HALO_EINVAL with text for the model in
 * err->msg: "only one statement is allowed", "only SELECT statements are
 * allowed", "write access is not allowed", "table "X" is not available:
 * query spans and traces", "function X is not allowed", "schema-qualified
 * names are not allowed: query spans and traces", "statement timed out
 * after N ms", or the database's own error text. Other statuses (HALO_EIO,
 * HALO_ERETRY) are the store's failures, not the model's. */
typedef struct halo_sql_req {
    const char *agent_id; /* required */
    uint64_t since_ns;    /* trace start >= since; 0: no lower bound */
    uint64_t until_ns;    /* trace start < until; 0: no upper bound */
    const char *sql;      /* ONE SELECT (or WITH ... SELECT, VALUES) */
    int64_t max_rows;     /* rows shown; <= 0: 100 */
    size_t max_bytes;     /* bytes of the whole text; 0: 16384 */
    size_t max_cell;      /* bytes of one cell; 0: 500 */
    int64_t timeout_ms;   /* the whole call; <= 0: 5000 */
} halo_sql_req;

/* The `search` tool: spans of the scope (as halo_sql_req's) whose input,
 * output or status_message contains query, ASCII case-insensitively (every
 * other byte, % and _ included, matches itself). One hit per matching
 * field, spans ordered by start time (ties: trace id, span id), fields in
 * the order input, output, status_message; at most limit hits. */
typedef struct halo_search_req {
    const char *agent_id; /* required */
    uint64_t since_ns;    /* as halo_sql_req */
    uint64_t until_ns;
    const char *query; /* not empty */
    int64_t limit;     /* <= 0: 20 */
    size_t snippet;    /* bytes of text around the first match; 0: 160 */
} halo_search_req;

typedef struct halo_search_hit {
    char trace_id[33];
    char span_id[17];
    const char *name;
    const char *field; /* "input" | "output" | "status_message" */
    /* About `snippet` bytes around the first match, cut at UTF-8
     * boundaries, "..." where the field's text goes on. */
    const char *snippet;
    size_t match_off; /* byte offset of the match in the field */
    uint64_t start_ns;
} halo_search_hit;

/* ---- the vtable -------------------------------------------------------- */

typedef struct halo_store_ops {
    const char *name; /* "sqlite", "postgres" */
    /* All spans of batches[0..n) in one transaction; stats may be NULL. */
    halo_status (*write_batches)(halo_store *st,
                                 const halo_batch *const *batches, size_t n,
                                 halo_write_stats *stats, halo_err *err);
    /* Encode every span of b into rows for write_rows(). Thread-safe: it
     * does not touch the database and may run on any thread, concurrently
     * with the thread that writes and with other prepare() calls. The
     * rows do not refer to b (release b's spans whenever convenient);
     * free them with free_rows(). */
    halo_status (*prepare)(halo_store *st, const halo_batch *b,
                           halo_store_rows **out, halo_err *err);
    /* All rows of rows[0..n) in one transaction (the same contract as
     * write_batches); stats may be NULL. The rows stay the caller's. */
    halo_status (*write_rows)(halo_store *st, halo_store_rows *const *rows,
                              size_t n, halo_write_stats *stats, halo_err *err);
    /* NULL is allowed. Thread-safe like prepare(). */
    void (*free_rows)(halo_store *st, halo_store_rows *rows);
    /* Make every transaction committed so far durable (NULL: the backend
     * has no deferred sync; a handle opened without deferred_sync, or
     * whose log could not be opened for it, succeeds at once: its commits
     * synced themselves). Thread-safe: it may run on another thread while
     * write_rows() commits the next one. A failed sync is final: the
     * handle refuses every later write and sync (HALO_EIO) until the
     * database is reopened. */
    halo_status (*sync)(halo_store *st, halo_err *err);
    /* Delete the oldest max_rows traces that started before cutoff_ns,
     * with all their spans, in one short transaction (so a writer is never
     * blocked for long). *deleted gets the rows removed (spans + traces),
     * *more is true while older traces may remain: call again. */
    halo_status (*retention_step)(halo_store *st, uint64_t cutoff_ns,
                                  int64_t max_rows, int64_t *deleted,
                                  bool *more, halo_err *err);
    /* Newest first (ties: trace id descending), the same order in every
     * backend. */
    halo_status (*list_traces)(halo_store *st, const halo_trace_filter *f,
                               halo_arena *arena, halo_trace_row **rows,
                               size_t *n, halo_err *err);
    /* The trace's spans rebuilt (attributes, events, links, resource,
     * scope, derived fields), ordered by start time. Spans with the same
     * resource (and scope) share one pointer. HALO_ENOTFOUND when the
     * trace has no span. */
    halo_status (*get_trace)(halo_store *st, const uint8_t trace_id[16],
                             halo_arena *arena, halo_span **spans, size_t *n,
                             halo_err *err);
    /* Traces starting in [since_ns, until_ns) (0: unbounded) grouped by
     * agent, ordered by agent id (NULL first, then byte order). */
    halo_status (*agent_stats)(halo_store *st, uint64_t since_ns,
                               uint64_t until_ns, halo_arena *arena,
                               halo_agent_stats **rows, size_t *n,
                               halo_err *err);
    /* Insert or replace a report by id. */
    halo_status (*put_report)(halo_store *st, const halo_report_row *r,
                              halo_err *err);
    /* Reports matching f (json and markdown left NULL: get_report reads
     * them), newest window first (ties: id descending). */
    halo_status (*list_reports)(halo_store *st, const halo_report_filter *f,
                                halo_arena *arena, halo_report_row **rows,
                                size_t *n, halo_err *err);
    /* One report by id, or by a unique prefix of at least 6 characters
     * (HALO_EINVAL "report id prefix "X" is ambiguous" when several match).
     * HALO_ENOTFOUND when none matches. */
    halo_status (*get_report)(halo_store *st, const char *id, halo_arena *arena,
                              halo_report_row *out, halo_err *err);
    /* Every trace of f->agent_id starting in [since, until), one callback
     * per trace (in any trace order), spans ordered inside each trace. The
     * whole scan reads one consistent snapshot and holds at most a bounded
     * number of traces in memory (it streams: a window of 1M spans must
     * not be loaded at once). */
    halo_status (*scan_window)(halo_store *st, const halo_scan_filter *f,
                               halo_scan_fn fn, void *ctx, halo_err *err);
    /* Claim run k for owner until now_ns + lease_ns. TAKEN when there was
     * no claim, or the claim is owner's own (a renewal), or its lease
     * expired before now_ns without the run finishing (its instance died
     * mid-run); DONE when the run finished; HELD when another owner's lease
     * is live. Atomic across processes and hosts sharing the database. */
    halo_status (*claim_run)(halo_store *st, const halo_run_key *k,
                             const char *owner, uint64_t now_ns,
                             uint64_t lease_ns, halo_claim_result *res,
                             halo_err *err);
    /* End owner's claim on k. ok: the run is DONE for good (report_id
     * recorded). !ok: the claim is released (the error recorded, attempts
     * counted) so the next claim_run takes it again. HALO_ENOTFOUND when
     * owner does not hold k (its lease was taken over). */
    halo_status (*finish_run)(halo_store *st, const halo_run_key *k,
                              const char *owner, uint64_t now_ns, bool ok,
                              const char *report_id, const char *error,
                              halo_err *err);
    /* The `sql` tool (halo_sql_req above): *text (in arena) is the result
     * for the model; HALO_EINVAL with the model's error in err otherwise.
     * Runs in a read-only snapshot on a connection of its own (SQLite) or
     * in a READ ONLY transaction that leaves nothing behind (PostgreSQL);
     * allowed on read-only stores. */
    halo_status (*sql_query)(halo_store *st, const halo_sql_req *req,
                             halo_arena *arena, char **text, halo_err *err);
    /* The `search` tool (halo_search_req above): hits[0..*n) in arena. */
    halo_status (*search_spans)(halo_store *st, const halo_search_req *req,
                                halo_arena *arena, halo_search_hit **hits,
                                size_t *n, halo_err *err);
    void (*close)(halo_store *st);
} halo_store_ops;

struct halo_store {
    const halo_store_ops *ops;
};

/* ---- backends ---------------------------------------------------------- */

/* Open (creating unless read_only) a SQLite database and apply pending
 * migrations. Errors: a missing database in read-only mode, a schema newer
 * than this binary, an unreadable file. */
halo_status halo_store_open_sqlite(const halo_store_opts *opts,
                                   halo_store **out, halo_err *err);

/* The newest schema version this binary knows. */
int halo_store_schema_version(void);

/* Open a PostgreSQL store (pg_store.c). dsn is a libpq connection string:
 * a URI (postgresql://user:pw@host:5432/db) or key=value pairs. Writable
 * (opts->read_only false, opts may be NULL): apply pending migrations and
 * create the daily partitions of `spans` from yesterday to 2 days ahead.
 * Read-only: never migrate; the database must hold a halo schema no newer
 * than this binary's (HALO_ENOTFOUND "database "X" has no halo schema: ...",
 * HALO_EUNSUPPORTED for a newer one), and the session runs with
 * default_transaction_read_only, so every write fails. The other opts are
 * SQLite's and ignored. Errors never contain the DSN's password. A lost
 * connection fails the call that meets it (HALO_ERETRY) and is re-made at
 * the next call.
 *
 * Differences from SQLite, within the same contract: retention_step drops
 * whole day partitions (the granularity is a UTC day: the cutoff is rounded
 * down to midnight), ignores max_rows, always sets *more = false, and
 * *deleted counts the day partitions dropped, not rows. */
halo_status halo_store_open_pg(const char *dsn, const halo_store_opts *opts,
                               halo_store **out, halo_err *err);

/* What a store spec names (below): the backend and its target (the DSN
 * for PostgreSQL, the path for SQLite), a suffix of the spec.
 * HALO_STORE_INVALID when it fits no form. */
typedef enum {
    HALO_STORE_INVALID = 0,
    HALO_STORE_SQLITE,
    HALO_STORE_POSTGRES
} halo_store_kind;
halo_store_kind halo_store_spec_parse(const char *spec, const char **target);

/* Open the store a spec names (store_open.c):
 *   postgresql://... or postgres://...   PostgreSQL, the spec is the DSN
 *   postgres:KEY=VALUE ...               PostgreSQL, libpq key=value DSN
 *   sqlite:PATH                          SQLite at PATH (opts->path unused)
 * opts may be NULL (writable, defaults). Anything else is HALO_EINVAL
 * "invalid store "...": expected ...", the spec quoted with its password
 * masked. */
halo_status halo_store_open(const char *spec, const halo_store_opts *opts,
                            halo_store **out, halo_err *err);

/* A DSN fit to print: dsn (a scheme://... URI, or key=value pairs after
 * an optional "postgres:" prefix) into out (cap bytes, always NUL-terminated,
 * truncated to fit) with every password -- a URI's user:PASSWORD@, a
 * password= (or sslpassword=) value, quoted or not, in key=value pairs or
 * URI query parameters -- replaced by "***". Returns out. */
char *halo_pg_redact_dsn(const char *dsn, char *out, size_t cap);

/* ---- helpers ----------------------------------------------------------- */

static inline halo_status halo_store_write_batch(halo_store *st,
                                                 const halo_batch *b,
                                                 halo_write_stats *stats,
                                                 halo_err *err)
{
    return st->ops->write_batches(st, &b, 1, stats, err);
}

static inline void halo_store_close(halo_store *st)
{
    if (st)
        st->ops->close(st);
}

/* HALO_EINVAL unless k names a schedule and an agent and owner is not
 * empty (claim_run and finish_run of every backend check this first). */
halo_status halo_run_key_check(const halo_run_key *k, const char *owner,
                               halo_err *err);

/* ns since the epoch -> "2026-11-16T09:00:00.123456789Z" (31 bytes with
 * the NUL). */
#define HALO_ISO_NS_LEN 31
void halo_iso_from_ns(uint64_t ns, char out[HALO_ISO_NS_LEN]);
/* us microseconds since the epoch -> "2026-11-16T09:00:00.123456Z" (28
 * bytes with the NUL; out has room for halo_iso_from_ns's text): the
 * precision of PostgreSQL's timestamptz, so halo_iso_from_us(ns / 1000) is
 * a time as stored there. Every ns / 1000 + 1 of a uint64_t ns is valid. */
void halo_iso_from_us(uint64_t us, char out[HALO_ISO_NS_LEN]);

/* Nearest-rank percentile (q in [0,1]) of sorted[0..n); 0 when n == 0. */
double halo_percentile(const double *sorted, size_t n, double q);

#endif
