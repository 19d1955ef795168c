/*
 * sqlite_int.h -- internals shared by the SQLite backend's files:
 * sqlite.c (open, writes, retention), sqlite_read.c (the queries),
 * sqlite_schema.c (schema, migrations), sqlite_ckpt.c (the background
 * checkpointer). Not for use outside storage/.
 */
#ifndef HALO_SQLITE_INT_H
#define HALO_SQLITE_INT_H

#include "../core/buf.h"
#include "store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>

/* The columns of `spans`, in the order of SQ_SPAN_COLUMNS below; the
 * INSERT binds parameter C_x (C_TRACE_ID: the trace's row id) and
 * get_trace reads result column C_x - 1. */
enum {
    C_TRACE_ID = 1,
    C_SPAN_ID,
    C_PARENT,
    C_NAME,
    C_KIND,
    C_SPAN_TYPE,
    C_AGENT_ID,
    C_AGENT_NAME,
    C_SESSION_ID,
    C_USER_ID,
    C_SERVICE,
    C_MODEL,
    C_TOOL,
    C_START_TIME,
    C_END_TIME,
    C_DURATION,
    C_STATUS_CODE,
    C_STATUS_MSG,
    C_INPUT,
    C_OUTPUT,
    C_IN_TOK,
    C_OUT_TOK,
    C_COST,
    C_ATTRS,
    C_EVENTS,
    C_RESOURCE,
    C_START_NS,
    C_END_NS,
    C_TRACE_STATE,
    C_FLAGS,
    C_LINKS,
    C_SCOPE,
    C_RES_SCHEMA,
    C_RES_DROPPED,
    C_DROPPED_ATTRS,
    C_DROPPED_EVENTS,
    C_DROPPED_LINKS,
    C_FB_MASK,
    C_VALUE_TYPES,
    C_END_, /* one past the last */
    /* parameters of the insert only: span_rows' places of input and output
     * in its attributes (the view splices them back) */
    C_INPUT_AT = C_END_,
    C_OUTPUT_AT,
    /* shared_texts ids of the resource and scope texts (NULL: the row
     * holds its own text) */
    C_RESOURCE_REF,
    C_SCOPE_REF,
};

#define SQ_SPAN_COLUMNS "trace_id, " SQ_SPAN_COLUMNS_AFTER_ID
/* span_rows stores them after trace_rowid, the trace's trace_rows.id (the
 * `spans` view joins trace_id back in). */
#define SQ_SPAN_COLUMNS_AFTER_ID                                               \
    "span_id, parent_span_id, name, kind, span_type, agent_id, "               \
    "agent_name, session_id, user_id, service_name, model, tool_name, "        \
    "start_time, end_time, duration_ms, status_code, status_message, input, "  \
    "output, input_tokens, output_tokens, cost, attributes, events, "          \
    "resource, start_unix_nano, end_unix_nano, trace_state, flags, links, "    \
    "scope, resource_schema_url, resource_dropped_attributes_count, "          \
    "dropped_attributes_count, dropped_events_count, dropped_links_count, "    \
    "fallback_mask, value_types"

/* span_rows s's attributes as the span had them: where input_at /
 * output_at are set, the attribute that repeated the input / output holds
 * a 4-character null (core/json_attrs.h: halo_json_encode_attrs_cut), and
 * the column's JSON string goes back in its place. The later place is
 * spliced first, so the earlier keeps its position. Migration 7 creates
 * the spans view with it: frozen, a change is a new migration. */
#define SQ_ATTRS_V7                                                            \
    "CASE WHEN s.input_at IS NULL AND s.output_at IS NULL THEN s.attributes"   \
    " WHEN s.output_at IS NULL THEN substr(s.attributes, 1, s.input_at - 1)"   \
    " || json_quote(s.input) || substr(s.attributes, s.input_at + 4)"          \
    " WHEN s.input_at IS NULL THEN substr(s.attributes, 1, s.output_at - 1)"   \
    " || json_quote(s.output) || substr(s.attributes, s.output_at + 4)"        \
    " WHEN s.input_at < s.output_at THEN"                                      \
    " substr(s.attributes, 1, s.input_at - 1) || json_quote(s.input)"          \
    " || substr(s.attributes, s.input_at + 4, s.output_at - s.input_at - 4)"   \
    " || json_quote(s.output) || substr(s.attributes, s.output_at + 4)"        \
    " ELSE substr(s.attributes, 1, s.output_at - 1) || json_quote(s.output)"   \
    " || substr(s.attributes, s.output_at + 4, s.input_at - s.output_at - 4)"  \
    " || json_quote(s.input) || substr(s.attributes, s.input_at + 4) END"

/* The spans view's columns after span_id, from span_rows s (frozen with
 * SQ_ATTRS_V7: migration 7 creates the view with it). */
#define SQ_SPANS_V7_S_COLS                                                     \
    "s.parent_span_id, s.name, s.kind, s.span_type, s.agent_id,"               \
    " s.agent_name, s.session_id, s.user_id, s.service_name, s.model,"         \
    " s.tool_name, s.start_time, s.end_time, s.duration_ms, s.status_code,"    \
    " s.status_message, s.input, s.output, s.input_tokens, s.output_tokens,"   \
    " s.cost, " SQ_ATTRS_V7 " AS attributes, s.events, s.resource,"            \
    " s.start_unix_nano, s.end_unix_nano, s.trace_state, s.flags, s.links,"    \
    " s.scope, s.resource_schema_url, s.resource_dropped_attributes_count,"    \
    " s.dropped_attributes_count, s.dropped_events_count,"                     \
    " s.dropped_links_count, s.fallback_mask, s.value_types"

/* The spans view's columns after span_id since migration 8: as V7, but
 * the resource and scope texts come from DB.shared_texts (DB: "" or
 * "main.") where the row refers to one (its own column holds '' / NULL
 * then). Subqueries, not joins: the sql tool's authorizer sees their reads
 * inside its scope view. Frozen: a change is a new migration. */
#define SQ_SHARED_TEXT_V8(DB, REF, OWN)                                        \
    " COALESCE((SELECT x.body FROM " DB "shared_texts x WHERE x.id = s." REF   \
    "), s." OWN ")"
/* clang-format off */
#define SQ_SPANS_V8_S_COLS(DB)                                                 \
    "s.parent_span_id, s.name, s.kind, s.span_type, s.agent_id,"               \
    " s.agent_name, s.session_id, s.user_id, s.service_name, s.model,"         \
    " s.tool_name, s.start_time, s.end_time, s.duration_ms, s.status_code,"    \
    " s.status_message, s.input, s.output, s.input_tokens, s.output_tokens,"   \
    " s.cost, " SQ_ATTRS_V7 " AS attributes, s.events,"                        \
    SQ_SHARED_TEXT_V8(DB, "resource_ref", "resource") " AS resource,"          \
    " s.start_unix_nano, s.end_unix_nano, s.trace_state, s.flags, s.links,"    \
    SQ_SHARED_TEXT_V8(DB, "scope_ref", "scope") " AS scope,"                   \
    " s.resource_schema_url, s.resource_dropped_attributes_count,"             \
    " s.dropped_attributes_count, s.dropped_events_count,"                     \
    " s.dropped_links_count, s.fallback_mask, s.value_types"
/* clang-format on */

/* The text columns of a prepared row (sq_row.t), each bound to the span
 * insert's parameter sq_text_col[T_x]. kind and status_code are bound from
 * static names, the numbers from the row's fields. */
enum {
    T_TRACE_ID,
    T_SPAN_ID,
    T_PARENT,
    T_NAME,
    T_SPAN_TYPE,
    T_AGENT_ID,
    T_AGENT_NAME,
    T_SESSION_ID,
    T_USER_ID,
    T_SERVICE,
    T_MODEL,
    T_TOOL,
    T_START_TIME,
    T_END_TIME,
    T_STATUS_MSG,
    T_INPUT,
    T_OUTPUT,
    T_ATTRS,
    T_EVENTS,
    T_RESOURCE,
    T_TRACE_STATE,
    T_LINKS,
    T_SCOPE,
    T_RES_SCHEMA,
    T_VALUE_TYPES,
    T_N_
};
extern const int sq_text_col[T_N_];

/* A text value: p == NULL is SQL NULL; len in bytes (no NUL needed). */
typedef struct sq_str {
    const char *p;
    int len;
} sq_str;

/* Span type classes the traces rollup counts. */
enum { SQ_TYPE_OTHER = 0, SQ_TYPE_LLM, SQ_TYPE_TOOL };

/* One span, ready to bind: every text encoded, every number copied. A row
 * does not refer to the span it came from. */
typedef struct sq_row {
    sq_str t[T_N_];
    uint8_t tid[16];
    uint64_t start_ns, end_ns;
    int64_t in_tok, out_tok;
    double cost;
    uint32_t flags;
    uint32_t res_dropped, dropped_attrs, dropped_events, dropped_links;
    uint32_t fb_mask;      /* HALO_FB_* */
    int64_t in_at, out_at; /* halo_json_cut.at of input, output (0: none) */
    uint32_t rel;          /* while preparing: t[] slots that are offsets */
    uint8_t kind, status_code, type_class;
    bool has_in_tok, has_out_tok, has_cost, is_root;
} sq_row;

/* store.h's halo_store_rows for this backend: the rows and their text in
 * two arenas (arenas, so that the memory_limiter counts them). */
typedef struct sq_rows {
    halo_store_rows base;
    halo_arena *row_arena;
    halo_arena *text_arena; /* NULL until the first seal */
    sq_row *rows;
    size_t n;
} sq_rows;

/* Totals over some of one write's spans of a trace (the traces rollup). */
typedef struct sq_agg {
    int64_t spans, errors, llm, tool, in_tok, out_tok;
    int64_t priced; /* spans with a cost */
    uint32_t needs; /* identity_needs() of the non-root spans */
    double cost;
    uint64_t start_ns, end_ns;
    const sq_row *root;  /* a root span among them */
    const sq_row *first; /* the first of them */
} sq_agg;

/* One trace a write touches. Its row in trace_rows is found or inserted
 * (from `all`) before the spans, which are keyed by that row's id; the
 * spans actually inserted make `ins`. */
typedef struct sq_delta {
    uint8_t tid[16];
    sq_agg all; /* every span of the write */
    sq_agg ins; /* the spans the write inserted */
    int64_t rowid;
    uint32_t pending;  /* stored identity_pending (existing trace) */
    char root[17];     /* stored root_span_id, "" when none (existing) */
    bool is_new;       /* this write inserted the trace row */
    bool dup_in_write; /* new, but some of its spans repeat within the write */
} sq_delta;

/* A second-resolution cache for ISO timestamps. */
typedef struct sq_timecache {
    int64_t sec;
    char prefix[20]; /* "YYYY-MM-DDTHH:MM:SS" */
} sq_timecache;

/* ns -> "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" (30 chars + NUL) through tc. */
void sq_iso_cached(sq_timecache *tc, uint64_t ns, char out[31]);

typedef struct sq_store {
    halo_store base;
    sqlite3 *db;
    char *path;
    bool read_only;

    /* write path (NULL when read-only) */
    sqlite3_stmt *ins_span;
    sqlite3_stmt *ins_trace;
    sqlite3_stmt *upsert_trace;
    sqlite3_stmt *set_trace;
    sqlite3_stmt *fix_spans;
    sqlite3_stmt *get_root;
    sqlite3_stmt *get_trace_state;
    sqlite3_stmt *del_spans;
    sqlite3_stmt *del_traces;
    sqlite3_stmt *put_report;
    /* read path */
    sqlite3_stmt *get_trace;

    /* the background checkpointer (store.h: background_checkpoint) */
    bool ckpt_on;
    bool ckpt_stop;
    bool ckpt_wanted;
    pthread_t ckpt_thread;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cv;
    sqlite3 *ckpt_db;
    int wal_frames; /* WAL size after the last commit (wal hook) */
    int ckpt_soft;  /* frames: wake the checkpointer */
    int ckpt_hard;  /* frames: the writer checkpoints itself */

    /* deferred sync (store.h): the write-ahead log, synced by sq_sync();
     * sync_failed is set for good by the first failed sync (writes are
     * refused from then on, see sq_check_synced) */
    bool defer_sync;
    int wal_fd;
    atomic_bool sync_failed;

    /* shared_texts (sqlite_shared.c): a cache of the distinct texts
     * written, open addressing; entries are checked against the table
     * again in each write transaction (gen) */
    sqlite3_stmt *sh_get, *sh_find, *sh_ins, *sh_bump, *sh_del;
    struct sq_shared *sh;
    size_t sh_cap, sh_n;
    uint32_t sh_gen;
    struct {
        const char *p; /* the last text looked up for this column */
        size_t i;      /* its entry */
    } sh_last[2];

    /* the per-write trace map: open addressing, slot = index + 1 */
    uint32_t *slots;
    size_t slot_cap;
    sq_delta *deltas;
    size_t n_deltas;
    size_t cap_deltas;
} sq_store;

/* Resource and scope texts shorter than this stay in the row, in both
 * stores (a reference is not smaller). */
#define SQ_SHARED_MIN 16
/* How far beyond a span's start a shared text's last_start is raised, so
 * that it rarely has to be raised again (an hour, in ns). */
#define SQ_SHARED_SLACK_NS INT64_C(3600000000000)

/* Shared texts (sqlite_shared.c). sq_shared_prepare prepares the
 * statements (write handles); sq_shared_begin is called in each write
 * transaction before the first sq_shared_ref, which gives the id of txt's
 * row in shared_texts (inserting it, and raising its last_start to cover
 * start_ns); which is 0 for resource texts, 1 for scope texts (a cache
 * of the last one of each). sq_shared_expire deletes the texts only spans
 * older than cutoff_ns referred to (retention, in its transaction). */
halo_status sq_shared_prepare(sq_store *s, halo_err *err);
void sq_shared_begin(sq_store *s);
halo_status sq_shared_ref(sq_store *s, int which, sq_str txt, uint64_t start_ns,
                          int64_t *id, halo_err *err);
halo_status sq_shared_expire(sq_store *s, uint64_t cutoff_ns, int64_t *deleted,
                             halo_err *err);
void sq_shared_free(sq_store *s);

/* halo_fail with "could not <what> in database "<path>": <sqlite msg>". */
halo_status sq_fail(sq_store *s, halo_err *err, const char *what);
/* A statement of s's for the life of the handle (persistent), failing
 * through sq_fail. */
halo_status sq_prepare_stmt(sq_store *s, const char *sql, sqlite3_stmt **out,
                            halo_err *err);
/* sqlite3_exec, failing through sq_fail. */
halo_status sq_exec(sq_store *s, const char *sql, const char *what,
                    halo_err *err);
/* ROLLBACK when a transaction is open. */
void sq_rollback(sq_store *s);
/* The text of column col of the statement stmt (a sqlite3_stmt *) at its
 * current row, and its length in bytes; NULL (and *len 0) for SQL NULL
 * (sqlite_read.c). */
const char *sq_col_text(void *stmt, int col, size_t *len);

/* Schema (sqlite_schema.c): apply pending migrations / check that a
 * read-only handle sees the current schema. */
halo_status sq_migrate(sq_store *s, halo_err *err);
/* The migrations up to version upto only: for the tests of a migration,
 * which need a database as an older binary left it. */
halo_status sq_migrate_to(sq_store *s, int upto, halo_err *err);
halo_status sq_check_schema_ro(sq_store *s, halo_err *err);

/* The background checkpointer (sqlite_ckpt.c). */
halo_status sq_start_checkpointer(sq_store *s, const halo_store_opts *o,
                                  halo_err *err);
void sq_stop_checkpointer(sq_store *s);
/* After each commit of the writer. */
void sq_after_commit(sq_store *s);
/* Deferred sync (store.h): open the write-ahead log for sq_sync(), after
 * the schema is in place (the log exists then). */
halo_status sq_open_deferred_sync(sq_store *s, halo_err *err);
halo_status sq_sync(halo_store *base, halo_err *err);
/* HALO_EIO once a sync has failed: a write would be stored (visible) but
 * could never be made durable, and a retry would find its spans there
 * already and be confirmed. Only a restart (SQLite's recovery of the log,
 * which checks every frame) makes the store trustworthy again. */
halo_status sq_check_synced(sq_store *s, halo_err *err);

/* Read-side operations (sqlite_read.c). */
halo_status sq_list_traces(halo_store *st, const halo_trace_filter *f,
                           halo_arena *arena, halo_trace_row **rows, size_t *n,
                           halo_err *err);
halo_status sq_get_trace(halo_store *st, const uint8_t trace_id[16],
                         halo_arena *arena, halo_span **spans, size_t *n,
                         halo_err *err);
halo_status sq_agent_stats(halo_store *st, uint64_t since_ns, uint64_t until_ns,
                           halo_arena *arena, halo_agent_stats **rows,
                           size_t *n, halo_err *err);
halo_status sq_scan_window(halo_store *st, const halo_scan_filter *f,
                           halo_scan_fn fn, void *ctx, halo_err *err);
halo_status sq_list_reports(halo_store *st, const halo_report_filter *f,
                            halo_arena *arena, halo_report_row **rows,
                            size_t *n, halo_err *err);
halo_status sq_get_report(halo_store *st, const char *id, halo_arena *arena,
                          halo_report_row *out, halo_err *err);

/* The analyzer's sql and search tools (sqlite_tools.c). */
halo_status sq_sql_query(halo_store *st, const halo_sql_req *req,
                         halo_arena *arena, char **text, halo_err *err);
halo_status sq_search_spans(halo_store *st, const halo_search_req *req,
                            halo_arena *arena, halo_search_hit **hits,
                            size_t *n, halo_err *err);

/* Analyzer run claims (sqlite_runs.c). */
halo_status sq_claim_run(halo_store *st, const halo_run_key *k,
                         const char *owner, uint64_t now_ns, uint64_t lease_ns,
                         halo_claim_result *res, halo_err *err);
halo_status sq_finish_run(halo_store *st, const halo_run_key *k,
                          const char *owner, uint64_t now_ns, bool ok,
                          const char *report_id, const char *error,
                          halo_err *err);
/* The error for a write to a store opened read-only, else HALO_OK. */
halo_status sq_check_writable(const sq_store *s, const char *verb,
                              halo_err *err);

/* Prepared rows (sqlite_rows.c): store.h's prepare and free_rows. */
halo_status sq_prepare(halo_store *st, const halo_batch *b,
                       halo_store_rows **out, halo_err *err);
/* The same rows; cut_io: input and output are stored once (the attribute
 * repeating one holds null, sq_row.in_at/out_at say where: the SQLite
 * store); otherwise the attributes are whole and in_at/out_at 0. */
halo_status sq_prepare_rows(const halo_batch *b, bool cut_io,
                            halo_store_rows **out, halo_err *err);
void sq_free_rows(halo_store *st, halo_store_rows *rows);

/* OTLP SpanKind <-> the kind column. */
const char *sq_kind_name(int kind);
int sq_kind_parse(const char *name);

#endif
