/*
 * sqlite.c -- the SQLite backend of the store (store.h): open and close,
 * the write path, retention and storing reports. The queries (reading
 * reports, the analyzer's window scan too) are in sqlite_read.c, the
 * analyzer's run claims in sqlite_runs.c, the schema and its migrations in
 * sqlite_schema.c, the background checkpointer in sqlite_ckpt.c. Columns
 * are documented in storage/README.md.
 *
 * Write path, in two steps (store.h). prepare() (sqlite_rows.c) encodes a
 * batch into self-contained rows -- hex ids, ISO times, the JSON columns,
 * the derived fields -- on whichever thread calls it; the exporter calls it
 * on the thread handing it the batch, beside the writer. write_rows() runs
 * one BEGIN IMMEDIATE ... COMMIT for all the rows it is given (the
 * exporter's group commit), in three passes over the write's traces (an
 * open-addressing map keyed by trace id):
 *
 *   1. each trace's row in trace_rows: inserted with the totals of all the
 *      write's spans of it when it is new (INSERT ... ON CONFLICT DO
 *      NOTHING), else found. Spans are keyed by that row's id (schema
 *      migration 5), so it must be known first;
 *   2. each span: one execution of a prepared INSERT ... ON CONFLICT DO
 *      NOTHING whose parameters are bound SQLITE_STATIC with known lengths,
 *      nothing encoded or copied. sqlite3_changes() tells whether the row
 *      was new; only new rows feed the trace's delta;
 *   3. each trace that existed gets its delta (one UPSERT that updates);
 *      a new one whose spans repeated within the write is set to the totals
 *      of the spans actually inserted.
 *
 * That keeps the `traces` rollup exact under redelivery. write_batches()
 * is the two steps in one call.
 *
 * Identity fix-up (DESIGN §5: span, then the trace's root span, then the
 * resource). agent_identity can only consult a root that is in the same
 * batch; a span whose agent/session/user came from the resource fallback
 * carries HALO_FB_* bits, and a span with no value at all has NULL. When a
 * root span is stored, the spans of its trace take the root's value for
 * each field the root has from its own attributes (bit clear, value set)
 * where theirs is missing or from the fallback, and those bits are cleared.
 * `traces.identity_pending` ORs the HALO_FB_* bits of fields that stored
 * non-root spans lacked, so the fix-up UPDATE only runs for traces that
 * need it; a late child whose root is already stored (traces.root_span_id)
 * is fixed in the same write.
 *
 * Durability: WAL journal, synchronous FULL by default (a committed
 * transaction survives power loss), NORMAL optional. A handle opened with
 * deferred_sync commits without syncing and sq_sync() (sqlite_ckpt.c)
 * syncs the log afterwards, from another thread.
 */
#include "sqlite_int.h"

#include "../core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "storage:sqlite"

/* ---- statements ---------------------------------------------------------- */

static const char SQL_INSERT_SPAN[] =
    "INSERT INTO span_rows (trace_rowid, " SQ_SPAN_COLUMNS_AFTER_ID
    ", input_at, output_at, resource_ref, scope_ref) VALUES "
    "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
    "?,?,?,?,?,?,?) ON CONFLICT (trace_rowid, span_id) DO NOTHING";

#define TRACE_INSERT                                                           \
    "INSERT INTO trace_rows (trace_id, agent_id, agent_name, session_id,"      \
    " user_id, root_name, start_time, end_time, duration_ms, span_count,"      \
    " error_count, llm_calls, tool_calls, input_tokens, output_tokens, cost,"  \
    " start_unix_nano, end_unix_nano, root_span_id, identity_pending,"         \
    " priced_spans) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,"   \
    "?15,?16,?17,?18,?19,?20,?21)"

/* A trace first seen by this write, with the totals of all its spans. */
static const char SQL_INSERT_TRACE[] =
    TRACE_INSERT " ON CONFLICT (trace_id) DO NOTHING";

/* A stored trace plus the spans a write inserted. ?22: the write inserted
 * the root span; ?23..?26 the root's raw identity (NULL when it has none
 * of its own). */
static const char SQL_UPSERT_TRACE[] = TRACE_INSERT
    " ON CONFLICT (trace_id) DO UPDATE SET"
    " agent_id = CASE WHEN ?22 THEN coalesce(?23, agent_id)"
    "  ELSE coalesce(agent_id, excluded.agent_id) END,"
    " agent_name = CASE WHEN ?22 THEN coalesce(?24, agent_name)"
    "  ELSE coalesce(agent_name, excluded.agent_name) END,"
    " session_id = CASE WHEN ?22 THEN coalesce(?25, session_id)"
    "  ELSE coalesce(session_id, excluded.session_id) END,"
    " user_id = CASE WHEN ?22 THEN coalesce(?26, user_id)"
    "  ELSE coalesce(user_id, excluded.user_id) END,"
    " root_name = CASE WHEN ?22 THEN excluded.root_name ELSE root_name END,"
    " root_span_id = CASE WHEN ?22 THEN excluded.root_span_id"
    "  ELSE root_span_id END,"
    " start_time = CASE WHEN excluded.start_unix_nano < start_unix_nano"
    "  THEN excluded.start_time ELSE start_time END,"
    " end_time = CASE WHEN excluded.end_unix_nano > end_unix_nano"
    "  THEN excluded.end_time ELSE end_time END,"
    " start_unix_nano = min(start_unix_nano, excluded.start_unix_nano),"
    " end_unix_nano = max(end_unix_nano, excluded.end_unix_nano),"
    " duration_ms = (max(end_unix_nano, excluded.end_unix_nano)"
    "  - min(start_unix_nano, excluded.start_unix_nano)) / 1000000.0,"
    " span_count = span_count + excluded.span_count,"
    " error_count = error_count + excluded.error_count,"
    " llm_calls = llm_calls + excluded.llm_calls,"
    " tool_calls = tool_calls + excluded.tool_calls,"
    " input_tokens = input_tokens + excluded.input_tokens,"
    " output_tokens = output_tokens + excluded.output_tokens,"
    " cost = cost + excluded.cost,"
    " priced_spans = priced_spans + excluded.priced_spans,"
    " identity_pending = identity_pending | excluded.identity_pending";

/* A stored trace's row id and identity state, read when SQL_INSERT_TRACE
 * found it there. Not RETURNING: SQLite materializes RETURNING rows in an
 * ephemeral table, opened and closed (a pager, page-sized buffers) on
 * every execution, on the writer thread, for every trace. */
static const char SQL_GET_TRACE_STATE[] = "SELECT id, root_span_id,"
                                          " identity_pending FROM trace_rows"
                                          " WHERE trace_id = ?1";

/* A trace this write inserted, set to what SQL_INSERT_TRACE would have
 * stored from the spans actually inserted: some of the write's spans had
 * the same ids (rare: a retried batch in the same group commit). */
static const char SQL_SET_TRACE[] =
    "UPDATE trace_rows SET agent_id = ?2, agent_name = ?3, session_id = ?4,"
    " user_id = ?5, root_name = ?6, start_time = ?7, end_time = ?8,"
    " duration_ms = ?9, span_count = ?10, error_count = ?11, llm_calls = ?12,"
    " tool_calls = ?13, input_tokens = ?14, output_tokens = ?15, cost = ?16,"
    " start_unix_nano = ?17, end_unix_nano = ?18, root_span_id = ?19,"
    " identity_pending = ?20, priced_spans = ?21 WHERE trace_id = ?1";

/* ?2: the HALO_FB_* bits the root can resolve; ?3..?6 its values. A field
 * is replaced where it is NULL or came from the resource fallback. */
#define FIX_FIELD(col, bit, param)                                             \
    " " col " = CASE WHEN ?2 & " bit " AND (fallback_mask & " bit " OR " col   \
    " IS NULL) THEN " param " ELSE " col " END"
#define FIX_NEEDED(col, bit) " OR (?2 & " bit " AND " col " IS NULL)"
static const char SQL_FIX_SPANS[] =
    "UPDATE span_rows SET" FIX_FIELD("agent_id", "1", "?3") "," FIX_FIELD(
        "agent_name", "2",
        "?4") "," FIX_FIELD("session_id", "4",
                            "?5") "," FIX_FIELD("user_id", "8",
                                                "?6") ","
                                                      " fallback_mask = "
                                                      "fallback_mask & ~?2"
                                                      " WHERE trace_rowid = ?1 "
                                                      "AND ((fallback_mask & "
                                                      "?2) != 0" FIX_NEEDED(
                                                          "agent_id", "1")
                                                          FIX_NEEDED(
                                                              "agent_name", "2")
                                                              FIX_NEEDED(
                                                                  "session_id",
                                                                  "4")
                                                                  FIX_NEEDED(
                                                                      "user_id",
                                                                      "8") ")";

static const char SQL_GET_ROOT[] =
    "SELECT agent_id, agent_name, session_id, user_id, fallback_mask"
    " FROM span_rows WHERE trace_rowid = ?1 AND span_id = ?2";

/* Retention works trace by trace: the oldest ?2 traces that started
 * before ?1, their spans first (a trace starts with its earliest span, so
 * every span older than the cutoff belongs to such a trace). Both
 * statements select the same traces: the first does not change `traces`. */
static const char SQL_DEL_SPANS[] =
    "DELETE FROM span_rows WHERE trace_rowid IN"
    " (SELECT id FROM trace_rows WHERE start_time < ?1"
    " ORDER BY start_time, id LIMIT ?2)";

static const char SQL_DEL_TRACES[] =
    "DELETE FROM trace_rows WHERE id IN"
    " (SELECT id FROM trace_rows WHERE start_time < ?1"
    " ORDER BY start_time, id LIMIT ?2)";

static const char SQL_PUT_REPORT[] =
    "INSERT INTO reports (id, agent_id, schedule, window_start, window_end,"
    " generated_at, mode, model, json, markdown)"
    " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"
    " ON CONFLICT (id) DO UPDATE SET agent_id = excluded.agent_id,"
    " schedule = excluded.schedule, window_start = excluded.window_start,"
    " window_end = excluded.window_end, generated_at = excluded.generated_at,"
    " mode = excluded.mode, model = excluded.model, json = excluded.json,"
    " markdown = excluded.markdown";

static const char SQL_GET_TRACE[] =
    "SELECT " SQ_SPAN_COLUMNS " FROM spans WHERE trace_id = ?1"
    " ORDER BY start_unix_nano, span_id";

/* ---- small helpers ------------------------------------------------------- */

halo_status sq_fail(sq_store *s, halo_err *err, const char *what)
{
    int code = sqlite3_errcode(s->db);
    halo_status st =
        (code == SQLITE_BUSY || code == SQLITE_LOCKED) ? HALO_ERETRY : HALO_EIO;
    if (code == SQLITE_NOTADB) /* whatever we tried first, this is the news */
        return halo_fail(err, st,
                         "\"%s\" is not a SQLite database (is it the right "
                         "file?)",
                         s->path);
    return halo_fail(err, st, "could not %s in database \"%s\": %s", what,
                     s->path, sqlite3_errmsg(s->db));
}

halo_status sq_exec(sq_store *s, const char *sql, const char *what,
                    halo_err *err)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sq_fail(s, err, what);
    return HALO_OK;
}

void sq_rollback(sq_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static const char *kind_names[] = {"UNSPECIFIED", "INTERNAL", "SERVER",
                                   "CLIENT",      "PRODUCER", "CONSUMER"};

const char *sq_kind_name(int kind)
{
    if (kind < 0 || kind > 5)
        return "UNSPECIFIED";
    return kind_names[kind];
}

int sq_kind_parse(const char *name)
{
    for (int i = 0; name && i < 6; i++)
        if (strcmp(name, kind_names[i]) == 0)
            return i;
    return 0;
}

void halo_iso_from_ns(uint64_t ns, char out[HALO_ISO_NS_LEN])
{
    sq_timecache tc = {0, {0}};
    sq_iso_cached(&tc, ns, out);
}

double halo_percentile(const double *sorted, size_t n, double q)
{
    if (n == 0)
        return 0;
    if (q <= 0)
        return sorted[0];
    if (q >= 1)
        return sorted[n - 1];
    /* nearest rank: the ceil(q * n)-th smallest value */
    double r = q * (double)n;
    size_t rank = (size_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (!s)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* ---- the per-write trace map --------------------------------------------- */

/* Every bit of the id mixed into the low bits the map uses (clients'
 * trace ids are not always random: some count up in a few bytes). */
static uint64_t tid_hash(const uint8_t tid[16])
{
    uint64_t a, b;
    memcpy(&a, tid, 8);
    memcpy(&b, tid + 8, 8);
    uint64_t z = a ^ (b * 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Make room for up to n_spans distinct traces and clear the map. */
static bool map_reset(sq_store *s, size_t n_spans)
{
    size_t want = 64;
    while (want < 2 * n_spans)
        want *= 2;
    if (want > s->slot_cap) {
        uint32_t *slots = realloc(s->slots, want * sizeof *slots);
        if (!slots)
            return false;
        s->slots = slots;
        s->slot_cap = want;
    }
    memset(s->slots, 0, s->slot_cap * sizeof *s->slots);
    s->n_deltas = 0;
    return true;
}

/* The trace's entry, or NULL; *slot is its slot, or the free one it would
 * take. */
static sq_delta *map_find(const sq_store *s, const uint8_t tid[16],
                          size_t *slot)
{
    size_t mask = s->slot_cap - 1;
    size_t i = tid_hash(tid) & mask;
    while (s->slots[i]) {
        sq_delta *d = &s->deltas[s->slots[i] - 1];
        if (memcmp(d->tid, tid, 16) == 0)
            break;
        i = (i + 1) & mask;
    }
    *slot = i;
    return s->slots[i] ? &s->deltas[s->slots[i] - 1] : NULL;
}

/* The trace's entry, added when it is not there; NULL when out of
 * memory. */
static sq_delta *map_get(sq_store *s, const uint8_t tid[16])
{
    size_t i;
    sq_delta *found = map_find(s, tid, &i);
    if (found)
        return found;
    if (s->n_deltas == s->cap_deltas) {
        size_t cap = s->cap_deltas ? 2 * s->cap_deltas : 256;
        sq_delta *nd = realloc(s->deltas, cap * sizeof *nd);
        if (!nd)
            return NULL;
        s->deltas = nd;
        s->cap_deltas = cap;
    }
    sq_delta *d = &s->deltas[s->n_deltas++];
    memset(d, 0, sizeof *d);
    memcpy(d->tid, tid, 16);
    d->all.start_ns = UINT64_MAX;
    d->ins.start_ns = UINT64_MAX;
    s->slots[i] = (uint32_t)s->n_deltas;
    return d;
}

/* The HALO_FB_* bits of the identity fields a span lacks or has only from
 * the resource fallback: what its root span could still provide. */
static uint32_t identity_needs(const sq_row *r)
{
    uint32_t m = r->fb_mask;
    if (!r->t[T_AGENT_ID].p)
        m |= HALO_FB_AGENT_ID;
    if (!r->t[T_AGENT_NAME].p)
        m |= HALO_FB_AGENT_NAME;
    if (!r->t[T_SESSION_ID].p)
        m |= HALO_FB_SESSION_ID;
    if (!r->t[T_USER_ID].p)
        m |= HALO_FB_USER_ID;
    return m;
}

static void agg_add(sq_agg *d, const sq_row *r)
{
    d->spans++;
    if (r->status_code == HALO_STATUS_ERROR)
        d->errors++;
    if (r->type_class == SQ_TYPE_LLM)
        d->llm++;
    else if (r->type_class == SQ_TYPE_TOOL)
        d->tool++;
    if (r->has_in_tok)
        d->in_tok += r->in_tok;
    if (r->has_out_tok)
        d->out_tok += r->out_tok;
    if (r->has_cost) {
        d->cost += r->cost;
        d->priced++;
    }
    if (r->start_ns < d->start_ns)
        d->start_ns = r->start_ns;
    if (r->end_ns > d->end_ns)
        d->end_ns = r->end_ns;
    if (!d->first)
        d->first = r;
    if (r->is_root)
        d->root = r;
    else
        d->needs |= identity_needs(r);
}

/* ---- inserting one row --------------------------------------------------- */

static int bind_str(sqlite3_stmt *st, int i, sq_str v)
{
    if (!v.p)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_text(st, i, v.p, v.len, SQLITE_STATIC);
}

static void bind_opt_i64(sqlite3_stmt *st, int i, bool has, int64_t v)
{
    if (has)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/* Everything was encoded by prepare(): bind, no copy. ref[0] / ref[1]:
 * the shared_texts ids of the resource / scope text, 0 for none (the row
 * holds the text itself). */
static void bind_row(sqlite3_stmt *st, const sq_row *r, int64_t trace_rowid,
                     const int64_t ref[2])
{
    for (int i = 0; i < T_N_; i++)
        if (i != T_TRACE_ID)
            bind_str(st, sq_text_col[i], r->t[i]);
    if (ref[0]) {
        sqlite3_bind_text(st, C_RESOURCE, "", 0, SQLITE_STATIC);
        sqlite3_bind_int64(st, C_RESOURCE_REF, ref[0]);
    } else {
        sqlite3_bind_null(st, C_RESOURCE_REF);
    }
    if (ref[1]) {
        sqlite3_bind_null(st, C_SCOPE);
        sqlite3_bind_int64(st, C_SCOPE_REF, ref[1]);
    } else {
        sqlite3_bind_null(st, C_SCOPE_REF);
    }
    sqlite3_bind_int64(st, C_TRACE_ID, trace_rowid);
    sqlite3_bind_text(st, C_KIND, sq_kind_name(r->kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, C_STATUS_CODE, halo_status_code_name(r->status_code),
                      -1, SQLITE_STATIC);
    sqlite3_bind_double(st, C_DURATION,
                        (double)(int64_t)(r->end_ns - r->start_ns) / 1e6);
    bind_opt_i64(st, C_IN_TOK, r->has_in_tok, r->in_tok);
    bind_opt_i64(st, C_OUT_TOK, r->has_out_tok, r->out_tok);
    if (r->has_cost)
        sqlite3_bind_double(st, C_COST, r->cost);
    else
        sqlite3_bind_null(st, C_COST);
    sqlite3_bind_int64(st, C_START_NS, (int64_t)r->start_ns);
    sqlite3_bind_int64(st, C_END_NS, (int64_t)r->end_ns);
    sqlite3_bind_int64(st, C_FLAGS, r->flags);
    sqlite3_bind_int64(st, C_RES_DROPPED, r->res_dropped);
    sqlite3_bind_int64(st, C_DROPPED_ATTRS, r->dropped_attrs);
    sqlite3_bind_int64(st, C_DROPPED_EVENTS, r->dropped_events);
    sqlite3_bind_int64(st, C_DROPPED_LINKS, r->dropped_links);
    sqlite3_bind_int64(st, C_FB_MASK, r->fb_mask);
    bind_opt_i64(st, C_INPUT_AT, r->in_at > 0, r->in_at);
    bind_opt_i64(st, C_OUTPUT_AT, r->out_at > 0, r->out_at);
}

/* Insert one row; *inserted is false when (trace_id, span_id) existed. */
static halo_status insert_row(sq_store *s, const sq_row *r, int64_t trace_rowid,
                              bool *inserted, halo_err *err)
{
    int64_t ref[2] = {0, 0};
    const int cols[2] = {T_RESOURCE, T_SCOPE};
    for (int k = 0; k < 2; k++) {
        sq_str txt = r->t[cols[k]];
        if (!txt.p || txt.len < SQ_SHARED_MIN)
            continue;
        halo_status st = sq_shared_ref(s, k, txt, r->start_ns, &ref[k], err);
        if (st != HALO_OK)
            return st;
    }
    bind_row(s->ins_span, r, trace_rowid, ref);
    int rc = sqlite3_step(s->ins_span);
    *inserted = rc == SQLITE_DONE && sqlite3_changes(s->db) == 1;
    halo_status st = HALO_OK;
    if (rc != SQLITE_DONE)
        st = sq_fail(s, err, "insert a span");
    sqlite3_reset(s->ins_span);
    return st;
}

/* ---- the traces rollup and the identity fix-up --------------------------- */

/* The HALO_FB_* bits the root can resolve: fields it has from its own
 * attributes (bit clear, value set). */
static uint32_t root_provides(uint32_t root_mask, const sq_str vals[4])
{
    static const uint32_t bits[4] = {HALO_FB_AGENT_ID, HALO_FB_AGENT_NAME,
                                     HALO_FB_SESSION_ID, HALO_FB_USER_ID};
    uint32_t m = 0;
    for (int i = 0; i < 4; i++)
        if (!(root_mask & bits[i]) && vals[i].p)
            m |= bits[i];
    return m;
}

static halo_status fix_spans(sq_store *s, int64_t trace_rowid, uint32_t m,
                             const sq_str vals[4], int64_t *fixed,
                             halo_err *err)
{
    sqlite3_stmt *st = s->fix_spans;
    sqlite3_bind_int64(st, 1, trace_rowid);
    sqlite3_bind_int64(st, 2, m);
    for (int i = 0; i < 4; i++)
        bind_str(st, 3 + i, vals[i]);
    int rc = sqlite3_step(st);
    halo_status ret = HALO_OK;
    if (rc != SQLITE_DONE)
        ret = sq_fail(s, err, "update the identity of a trace's spans");
    else
        *fixed += sqlite3_changes(s->db);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

/* Late children lacking `needs`, their root already stored: look the root
 * up and fix the trace's spans from it. */
static halo_status fix_from_stored_root(sq_store *s, int64_t trace_rowid,
                                        const char *root_sid, uint32_t needs,
                                        int64_t *fixed, halo_err *err)
{
    sqlite3_stmt *st = s->get_root;
    sqlite3_bind_int64(st, 1, trace_rowid);
    bind_text(st, 2, root_sid);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) { /* root removed by retention */
        sqlite3_reset(st);
        return HALO_OK;
    }
    if (rc != SQLITE_ROW) {
        halo_status ret = sq_fail(s, err, "read a root span");
        sqlite3_reset(st);
        return ret;
    }
    /* copy: the column texts die at reset */
    char *copy[4] = {NULL, NULL, NULL, NULL};
    halo_status ret = HALO_OK;
    for (int i = 0; i < 4; i++) {
        const char *v = (const char *)sqlite3_column_text(st, i);
        if (v && !(copy[i] = strdup(v)))
            ret = halo_fail(err, HALO_ENOMEM, "out of memory");
    }
    uint32_t mask = (uint32_t)sqlite3_column_int64(st, 4);
    sqlite3_reset(st);
    const sq_str vals[4] = {
        {copy[0], -1}, {copy[1], -1}, {copy[2], -1}, {copy[3], -1}};
    uint32_t m = root_provides(mask, vals) & needs;
    if (ret == HALO_OK && m)
        ret = fix_spans(s, trace_rowid, m, vals, fixed, err);
    for (int i = 0; i < 4; i++)
        free(copy[i]);
    return ret;
}

static sq_str first_nonnull(const sq_row *root, const sq_row *first, int t)
{
    return root && root->t[t].p ? root->t[t] : first->t[t];
}

/* SQL_INSERT_TRACE's (and SQL_SET_TRACE's) parameters, and
 * SQL_UPSERT_TRACE's ?22..?26. */
static void bind_trace(sqlite3_stmt *st, const sq_agg *d, const char *tid,
                       char *t0, char *t1)
{
    const sq_row *r = d->root;
    const sq_str none = {NULL, 0};
    halo_iso_from_ns(d->start_ns, t0);
    halo_iso_from_ns(d->end_ns, t1);
    bind_text(st, 1, tid);
    bind_str(st, 2, first_nonnull(r, d->first, T_AGENT_ID));
    bind_str(st, 3, first_nonnull(r, d->first, T_AGENT_NAME));
    bind_str(st, 4, first_nonnull(r, d->first, T_SESSION_ID));
    bind_str(st, 5, first_nonnull(r, d->first, T_USER_ID));
    bind_str(st, 6, r ? r->t[T_NAME] : none);
    bind_text(st, 7, t0);
    bind_text(st, 8, t1);
    sqlite3_bind_double(st, 9,
                        (double)(int64_t)(d->end_ns - d->start_ns) / 1e6);
    sqlite3_bind_int64(st, 10, d->spans);
    sqlite3_bind_int64(st, 11, d->errors);
    sqlite3_bind_int64(st, 12, d->llm);
    sqlite3_bind_int64(st, 13, d->tool);
    sqlite3_bind_int64(st, 14, d->in_tok);
    sqlite3_bind_int64(st, 15, d->out_tok);
    sqlite3_bind_double(st, 16, d->cost);
    sqlite3_bind_int64(st, 17, (int64_t)d->start_ns);
    sqlite3_bind_int64(st, 18, (int64_t)d->end_ns);
    bind_str(st, 19, r ? r->t[T_SPAN_ID] : none);
    sqlite3_bind_int64(st, 20, d->needs);
    sqlite3_bind_int64(st, 21, d->priced);
    if (sqlite3_bind_parameter_count(st) < 26)
        return;
    sqlite3_bind_int(st, 22, r != NULL);
    bind_str(st, 23, r ? r->t[T_AGENT_ID] : none);
    bind_str(st, 24, r ? r->t[T_AGENT_NAME] : none);
    bind_str(st, 25, r ? r->t[T_SESSION_ID] : none);
    bind_str(st, 26, r ? r->t[T_USER_ID] : none);
}

/* The row id, stored root span id ("" when none) and identity_pending of
 * a trace that exists. */
static halo_status get_trace_state(sq_store *s, const char *tid, sq_delta *d,
                                   halo_err *err)
{
    sqlite3_stmt *st = s->get_trace_state;
    sqlite3_bind_text(st, 1, tid, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        halo_status ret = sq_fail(s, err, "read the traces rollup");
        sqlite3_reset(st);
        return ret;
    }
    d->rowid = sqlite3_column_int64(st, 0);
    const char *r = (const char *)sqlite3_column_text(st, 1);
    if (r && strlen(r) == 16)
        memcpy(d->root, r, 17);
    d->pending = (uint32_t)sqlite3_column_int64(st, 2);
    sqlite3_reset(st);
    return HALO_OK;
}

/* Before the spans: the trace's row, inserted with the totals of all the
 * write's spans when it is new (the common case: all of a run's spans in
 * one write), else found. */
static halo_status find_or_insert_trace(sq_store *s, sq_delta *d, halo_err *err)
{
    char tid[33], t0[31], t1[31];
    halo_hex_encode(d->tid, 16, tid);
    sqlite3_stmt *st = s->ins_trace;
    bind_trace(st, &d->all, tid, t0, t1);
    int rc = sqlite3_step(st);
    d->is_new = rc == SQLITE_DONE && sqlite3_changes(s->db) == 1;
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, err, "insert a trace");
    if (!d->is_new)
        return get_trace_state(s, tid, d, err);
    d->rowid = sqlite3_last_insert_rowid(s->db);
    return HALO_OK;
}

/* After the spans: add what was inserted to a trace that existed (or, for
 * a new one, replace the totals of spans that repeated within the write
 * by those of the spans inserted), then fix up identities when needed. */
static halo_status apply_delta(sq_store *s, const sq_delta *d,
                               halo_write_stats *ws, halo_err *err)
{
    const sq_agg *a = &d->ins;
    uint32_t pending = d->pending | a->needs; /* of every stored span */
    if (d->is_new && !d->dup_in_write) {
        a = &d->all; /* stored by find_or_insert_trace */
        pending = a->needs;
    } else if (a->spans == 0) {
        return HALO_OK; /* every span was there before */
    } else {
        char tid[33], t0[31], t1[31];
        halo_hex_encode(d->tid, 16, tid);
        sqlite3_stmt *st = d->is_new ? s->set_trace : s->upsert_trace;
        bind_trace(st, a, tid, t0, t1);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            return sq_fail(s, err, "update the traces rollup");
    }

    if (a->root) {
        const sq_row *r = a->root;
        const sq_str vals[4] = {r->t[T_AGENT_ID], r->t[T_AGENT_NAME],
                                r->t[T_SESSION_ID], r->t[T_USER_ID]};
        uint32_t m = root_provides(r->fb_mask, vals) & pending;
        if (m)
            return fix_spans(s, d->rowid, m, vals, &ws->fixed_up, err);
        return HALO_OK;
    }
    if (a->needs && d->root[0])
        return fix_from_stored_root(s, d->rowid, d->root, a->needs,
                                    &ws->fixed_up, err);
    return HALO_OK;
}

/* ---- write_rows, write_batches ------------------------------------------- */

/* Every trace of the write in the map, with the totals of all its spans,
 * and its row in trace_rows. */
static halo_status find_traces(sq_store *s, halo_store_rows *const *rows,
                               size_t n, halo_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const sq_rows *rs = (const sq_rows *)rows[i];
        for (size_t j = 0; j < rs->n; j++) {
            sq_delta *d = map_get(s, rs->rows[j].tid);
            if (!d)
                return halo_fail(err, HALO_ENOMEM, "out of memory");
            agg_add(&d->all, &rs->rows[j]);
        }
    }
    halo_status st = HALO_OK;
    for (size_t i = 0; st == HALO_OK && i < s->n_deltas; i++)
        st = find_or_insert_trace(s, &s->deltas[i], err);
    return st;
}

static halo_status insert_all(sq_store *s, halo_store_rows *const *rows,
                              size_t n, halo_write_stats *ws, halo_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const sq_rows *rs = (const sq_rows *)rows[i];
        for (size_t j = 0; j < rs->n; j++) {
            const sq_row *r = &rs->rows[j];
            size_t slot;
            sq_delta *d = map_find(s, r->tid, &slot); /* added: find_traces */
            bool inserted;
            halo_status st = insert_row(s, r, d->rowid, &inserted, err);
            if (st != HALO_OK)
                return st;
            if (!inserted) {
                ws->duplicates++;
                d->dup_in_write |= d->is_new;
                continue;
            }
            ws->inserted++;
            agg_add(&d->ins, r);
        }
    }
    return HALO_OK;
}

halo_status sq_check_writable(const sq_store *s, const char *verb,
                              halo_err *err)
{
    if (!s->read_only)
        return HALO_OK;
    return halo_fail(err, HALO_EINVAL,
                     "cannot %s: database \"%s\" is open read-only", verb,
                     s->path);
}

static halo_status sq_write_rows(halo_store *base, halo_store_rows *const *rows,
                                 size_t n, halo_write_stats *stats,
                                 halo_err *err)
{
    sq_store *s = (sq_store *)base;
    halo_write_stats ws = {0, 0, 0};
    halo_status wst = sq_check_writable(s, "write", err);
    if (wst == HALO_OK)
        wst = sq_check_synced(s, err);
    if (wst != HALO_OK)
        return wst;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += rows[i]->n_spans;
    if (!map_reset(s, total))
        return halo_fail(err, HALO_ENOMEM, "out of memory");

    halo_status st = sq_exec(s, "BEGIN IMMEDIATE", "begin a transaction", err);
    if (st != HALO_OK)
        return st;
    sq_shared_begin(s);
    st = find_traces(s, rows, n, err);
    if (st == HALO_OK)
        st = insert_all(s, rows, n, &ws, err);
    for (size_t i = 0; st == HALO_OK && i < s->n_deltas; i++)
        st = apply_delta(s, &s->deltas[i], &ws, err);
    if (st == HALO_OK)
        st = sq_exec(s, "COMMIT", "commit", err);
    if (st != HALO_OK) {
        sq_rollback(s);
        return st;
    }
    sq_after_commit(s);
    if (stats)
        *stats = ws;
    return HALO_OK;
}

static halo_status sq_write_batches(halo_store *base,
                                    const halo_batch *const *batches, size_t n,
                                    halo_write_stats *stats, halo_err *err)
{
    sq_store *s = (sq_store *)base;
    halo_status wst = sq_check_writable(s, "write", err);
    if (wst != HALO_OK)
        return wst;
    halo_store_rows **rows = calloc(n ? n : 1, sizeof *rows);
    if (!rows)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    halo_status st = HALO_OK;
    for (size_t i = 0; st == HALO_OK && i < n; i++)
        st = sq_prepare(base, batches[i], &rows[i], err);
    if (st == HALO_OK)
        st = sq_write_rows(base, rows, n, stats, err);
    for (size_t i = 0; i < n; i++)
        sq_free_rows(base, rows[i]);
    free(rows);
    return st;
}

/* ---- retention and reports ----------------------------------------------- */

static halo_status delete_step(sq_store *s, sqlite3_stmt *st,
                               const char *cutoff, int64_t max_rows,
                               int64_t *deleted, halo_err *err)
{
    bind_text(st, 1, cutoff);
    sqlite3_bind_int64(st, 2, max_rows);
    int rc = sqlite3_step(st);
    *deleted = rc == SQLITE_DONE ? sqlite3_changes(s->db) : 0;
    halo_status ret = HALO_OK;
    if (rc != SQLITE_DONE)
        ret = sq_fail(s, err, "delete old rows");
    sqlite3_reset(st);
    return ret;
}

static halo_status sq_retention_step(halo_store *base, uint64_t cutoff_ns,
                                     int64_t max_rows, int64_t *deleted,
                                     bool *more, halo_err *err)
{
    sq_store *s = (sq_store *)base;
    char cutoff[31];
    int64_t d_spans = 0, d_traces = 0, d_texts = 0;
    *deleted = 0;
    *more = false;
    halo_status wst = sq_check_writable(s, "delete", err);
    if (wst != HALO_OK)
        return wst;
    halo_iso_from_ns(cutoff_ns, cutoff);
    halo_status st = sq_exec(s, "BEGIN IMMEDIATE", "begin a transaction", err);
    if (st == HALO_OK)
        st = delete_step(s, s->del_spans, cutoff, max_rows, &d_spans, err);
    if (st == HALO_OK)
        st = delete_step(s, s->del_traces, cutoff, max_rows, &d_traces, err);
    /* the pass's last step: no span before the cutoff is left, so neither
     * is any span referring to a text whose last_start is before it */
    if (st == HALO_OK && d_traces < max_rows)
        st = sq_shared_expire(s, cutoff_ns, &d_texts, err);
    if (st == HALO_OK)
        st = sq_exec(s, "COMMIT", "commit", err);
    if (st != HALO_OK) {
        sq_rollback(s);
        return st;
    }
    *deleted = d_spans + d_traces + d_texts;
    *more = d_traces >= max_rows;
    return HALO_OK;
}

static halo_status sq_put_report(halo_store *base, const halo_report_row *r,
                                 halo_err *err)
{
    sq_store *s = (sq_store *)base;
    halo_status wst = sq_check_writable(s, "write", err);
    if (wst != HALO_OK)
        return wst;
    if (!r->id || !*r->id)
        return halo_fail(err, HALO_EINVAL, "invalid report: empty id");
    sqlite3_stmt *st = s->put_report;
    const char *vals[10] = {r->id,           r->agent_id,   r->schedule,
                            r->window_start, r->window_end, r->generated_at,
                            r->mode,         r->model,      r->json,
                            r->markdown};
    for (int i = 0; i < 10; i++)
        bind_text(st, i + 1, vals[i]);
    int rc = sqlite3_step(st);
    halo_status ret = HALO_OK;
    if (rc != SQLITE_DONE)
        ret = sq_fail(s, err, "store a report");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

/* ---- open, close --------------------------------------------------------- */

halo_status sq_prepare_stmt(sq_store *s, const char *sql, sqlite3_stmt **out,
                            halo_err *err)
{
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out,
                           NULL) != SQLITE_OK)
        return sq_fail(s, err, "prepare a statement");
    return HALO_OK;
}

static halo_status prepare_all(sq_store *s, halo_err *err)
{
    halo_status st = sq_prepare_stmt(s, SQL_GET_TRACE, &s->get_trace, err);
    if (st != HALO_OK || s->read_only)
        return st;
    struct {
        const char *sql;
        sqlite3_stmt **out;
    } w[] = {
        {SQL_INSERT_SPAN, &s->ins_span},
        {SQL_INSERT_TRACE, &s->ins_trace},
        {SQL_UPSERT_TRACE, &s->upsert_trace},
        {SQL_SET_TRACE, &s->set_trace},
        {SQL_FIX_SPANS, &s->fix_spans},
        {SQL_GET_ROOT, &s->get_root},
        {SQL_GET_TRACE_STATE, &s->get_trace_state},
        {SQL_DEL_SPANS, &s->del_spans},
        {SQL_DEL_TRACES, &s->del_traces},
        {SQL_PUT_REPORT, &s->put_report},
    };
    for (size_t i = 0; st == HALO_OK && i < sizeof w / sizeof *w; i++)
        st = sq_prepare_stmt(s, w[i].sql, w[i].out, err);
    if (st == HALO_OK)
        st = sq_shared_prepare(s, err);
    if (st == HALO_OK &&
        sqlite3_bind_parameter_count(s->ins_span) != C_SCOPE_REF)
        return halo_fail(err, HALO_EINVAL,
                         "internal error: span insert "
                         "has %d parameters",
                         sqlite3_bind_parameter_count(s->ins_span));
    return st;
}

static halo_status configure(sq_store *s, const halo_store_opts *o,
                             halo_err *err)
{
    char sql[128];
    int64_t busy = o->busy_timeout_ms > 0 ? o->busy_timeout_ms : 5000;
    int64_t cache = o->cache_kib > 0 ? o->cache_kib : 16384;
    sqlite3_busy_timeout(s->db, busy > INT32_MAX ? INT32_MAX : (int)busy);
    halo_status st = HALO_OK;
    /* 16 KiB pages (a new database only): spans rows are ~1 KiB, and
     * fewer, larger pages measured 15-30% faster writes than 4 KiB. Before
     * cache_size: on a new database, a cache sized in KiB while the page
     * size was still 4 KiB kept that many pages once they became 16 KiB
     * (SQLite 3.40: a 16 MiB cache held 59 MiB during a big transaction,
     * measured with heaptrack under bench/run.sh). */
    if (!s->read_only)
        st = sq_exec(s, "PRAGMA page_size = 16384", "set the page size", err);
    snprintf(sql, sizeof sql, "PRAGMA cache_size = -%lld", (long long)cache);
    if (st == HALO_OK)
        st = sq_exec(s, sql, "set the cache size", err);
    if (st != HALO_OK || s->read_only)
        return st;
    st = sq_exec(s, "PRAGMA journal_mode = WAL", "enable WAL", err);
    if (st == HALO_OK)
        st = sq_exec(s,
                     o->synchronous == HALO_SYNC_NORMAL
                         ? "PRAGMA synchronous = NORMAL"
                         : "PRAGMA synchronous = FULL",
                     "set synchronous", err);
    if (st == HALO_OK) /* Debian's default: retention would zero pages */
        st = sq_exec(s, "PRAGMA secure_delete = OFF", "set secure_delete", err);
    return st;
}

static void sq_close(halo_store *base)
{
    sq_store *s = (sq_store *)base;
    sq_stop_checkpointer(s);
    sqlite3_stmt *stmts[] = {s->ins_span,  s->ins_trace,      s->upsert_trace,
                             s->set_trace, s->fix_spans,      s->get_root,
                             s->del_spans, s->del_traces,     s->put_report,
                             s->get_trace, s->get_trace_state};
    for (size_t i = 0; i < sizeof stmts / sizeof *stmts; i++)
        sqlite3_finalize(stmts[i]);
    sq_shared_free(s);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        LOG_WARN(LOG_PREFIX, "could not close database \"%s\": %s", s->path,
                 sqlite3_errmsg(s->db));
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    free(s->slots);
    free(s->deltas);
    free(s->path);
    free(s);
}

/* Process-wide SQLite settings, before the first connection: no memory
 * statistics (they take a global mutex on every allocation; measured 5-10%
 * of the write path). sqlite3_config() refuses (harmlessly) once SQLite is
 * initialized; every connection halo makes is opened after this. */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* Deferred sync when the log can be opened; otherwise commits keep
 * syncing themselves (synchronous=FULL), which is as durable, only
 * slower. */
static halo_status deferred_sync_or_full(sq_store *s, halo_err *err)
{
    halo_err why = {{0}};
    if (sq_open_deferred_sync(s, &why) == HALO_OK)
        return sq_exec(s, "PRAGMA synchronous = NORMAL", "set synchronous",
                       err);
    LOG_WARN(LOG_PREFIX, "%s: every commit syncs itself instead", why.msg);
    return HALO_OK;
}

static const halo_store_ops sq_ops = {
    .name = "sqlite",
    .write_batches = sq_write_batches,
    .prepare = sq_prepare,
    .write_rows = sq_write_rows,
    .free_rows = sq_free_rows,
    .sync = sq_sync,
    .retention_step = sq_retention_step,
    .list_traces = sq_list_traces,
    .get_trace = sq_get_trace,
    .agent_stats = sq_agent_stats,
    .put_report = sq_put_report,
    .list_reports = sq_list_reports,
    .get_report = sq_get_report,
    .scan_window = sq_scan_window,
    .claim_run = sq_claim_run,
    .finish_run = sq_finish_run,
    .sql_query = sq_sql_query,
    .search_spans = sq_search_spans,
    .close = sq_close,
};

halo_status halo_store_open_sqlite(const halo_store_opts *o, halo_store **out,
                                   halo_err *err)
{
    *out = NULL;
    if (!o->path || !*o->path)
        return halo_fail(err, HALO_EINVAL, "invalid database path: empty");
    struct stat stbuf;
    if (o->read_only && stat(o->path, &stbuf) != 0)
        return halo_fail(err, errno == ENOENT ? HALO_ENOTFOUND : HALO_EIO,
                         errno == ENOENT
                             ? "database \"%s\" does not exist (has `halo "
                               "serve` or `halo import` written to it?)"
                             : "could not open database \"%s\"",
                         o->path);
    if (stat(o->path, &stbuf) == 0 && S_ISDIR(stbuf.st_mode))
        return halo_fail(err, HALO_EINVAL,
                         "could not open database \"%s\": it is a directory "
                         "(give the database file's path)",
                         o->path);
    pthread_once(&global_once, global_init);
    sq_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(o->path))) {
        free(s);
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    }
    s->base.ops = &sq_ops;
    s->read_only = o->read_only;
    s->wal_fd = -1;
    int flags = (o->read_only ? SQLITE_OPEN_READONLY
                              : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                SQLITE_OPEN_NOMUTEX;
    halo_status st = HALO_OK;
    if (sqlite3_open_v2(o->path, &s->db, flags, NULL) != SQLITE_OK) {
        st = halo_fail(err, HALO_EIO, "could not open database \"%s\": %s",
                       o->path, s->db ? sqlite3_errmsg(s->db) : "no memory");
        goto cleanup;
    }
    st = configure(s, o, err);
    if (st == HALO_OK)
        st = o->read_only ? sq_check_schema_ro(s, err) : sq_migrate(s, err);
    /* after the migrations: a rebuild's sorts spill to disk, not RAM */
    if (st == HALO_OK && !o->read_only)
        st = sq_exec(s, "PRAGMA temp_store = MEMORY", "set temp_store", err);
    if (st == HALO_OK)
        st = prepare_all(s, err);
    if (st == HALO_OK && o->background_checkpoint && !o->read_only)
        st = sq_start_checkpointer(s, o, err);
    if (st == HALO_OK && o->deferred_sync && !o->read_only &&
        o->synchronous != HALO_SYNC_NORMAL)
        st = deferred_sync_or_full(s, err);
cleanup:
    if (st != HALO_OK) {
        sq_close(&s->base);
        return st;
    }
    *out = &s->base;
    return HALO_OK;
}
