/*
 * pg_write.c -- the PostgreSQL write path (pg_write.h): prepared rows into
 * `spans` by binary COPY (straight in, or through a staging table when some
 * are already stored), the `traces` rollup maintained from the rows
 * actually inserted, identity fix-up.
 *
 * Rows. The SQLite store's prepared rows (sqlite_rows.c, sq_prepare) are
 * used as they are: every text already encoded with its length, every
 * number copied, nothing pointing into the batch. One encoder for both
 * stores means the same JSON text in both, and prepare() stays off the
 * writer thread.
 *
 * The fast path (every row new, the common case), three round trips plus
 * two COPY streams (two more round trips when the rows have resource or
 * scope texts to share, the usual case: "shared texts" below):
 *   1. BEGIN, SET LOCALs (below); the shared texts lock, shared;
 *      CREATE TEMP TABLE IF NOT EXISTS halo_staging_v4 / halo_touched_v3 (ON
 *      COMMIT DELETE ROWS: created once per session, emptied by each
 *      commit); [the shared texts;] SAVEPOINT halo_fast; COPY span_rows
 *      FROM STDIN (FORMAT binary), the rows written by hand in the binary
 *      COPY format (below) and streamed in 256 KiB pieces.
 *   2. RELEASE SAVEPOINT; COPY halo_touched_v3 FROM STDIN: the per-trace
 *      deltas S1 would compute, computed here from the rows themselves
 *      (all were inserted): counts, sums, min/max times, the identity
 *      needs of the non-root spans, the last root span's values and the
 *      first span's, in batch order (struct delta).
 *   3. S2, S3, S4 (below), COMMIT.
 * The staging path, when the fast path's COPY fails with a unique
 * violation (a redelivered span, or one twice in the same write):
 *   ROLLBACK TO SAVEPOINT halo_fast; COPY halo_staging_v4 FROM STDIN (the
 *   rows again, with their batch position ord); then in one query string:
 *      S1 INSERT INTO span_rows SELECT ... FROM halo_staging_v4 ON CONFLICT
 *         (trace_id, span_id, start_time) DO NOTHING RETURNING ..., in a
 *         data-modifying CTE whose RETURNING rows (only those inserted)
 *         are aggregated per trace into halo_touched_v3 (as above);
 *      S2 INSERT INTO traces ... ON CONFLICT (trace_id) DO UPDATE: counts
 *         added, start/end min/max, duration recomputed, identity and
 *         root_name from the root when this write inserted it, else kept
 *         (the first span's values when the trace had none) -- the SQLite
 *         store's rules; the root's raw values are read from halo_touched_v3
 *         by primary key since `excluded` only has the inserted values;
 *      S3 the identity fix-up: for each touched trace whose root span is
 *         stored, the spans of the trace take the root's own values for
 *         the fields the trace still needs (identity_pending when the root
 *         came in this write, else the needs of this write's spans);
 *      S4 SELECT the number of spans inserted (the stats);
 *      COMMIT.
 *   A repeated write inserts nothing in S1, so S2..S3 touch nothing.
 *
 * Why (measured with perf on the server backends, bench/pg.sh, 4
 * connections): the staging path spent ~40% of the servers' CPU in the
 * COPY into the staging table, half of it in pglz compressing the large
 * JSON values, then copied every row a second time into `spans`. The fast
 * path writes each row once; lz4 instead of pglz (SET LOCAL
 * default_toast_compression, when the server has lz4) compresses ~3x
 * cheaper; jit = off removes the LLVM compilation the planner chose for
 * S2/S3 (15% of the servers' CPU). With these, OTLP -> PostgreSQL went
 * from ~15-29k to ~30-52k spans/s on this 2-core machine.
 *
 * Session temp tables rather than CREATE ... ON COMMIT DROP per write:
 * both measured the same within noise (26-32k spans/s for 8192-span
 * writes through the staging path, tests/unit/test_pg_write.c), and the session
 * tables do not churn the system catalogs with two creates and drops per
 * transaction.
 *
 * Binary COPY: the 11-byte signature "PGCOPY\n\377\r\n\0", int32 flags 0,
 * int32 header extension length 0; per row an int16 field count, per field
 * an int32 length (-1: NULL) and the value in the type's binary send
 * format, big-endian: text and json as their bytes, int4/int8 as integers,
 * float8 as the IEEE bits, timestamptz as int64 microseconds since
 * 2000-01-01 00:00 UTC; an int16 -1 ends the data.
 */
#include "pg_write.h"

#include "pg_schema.h"

#include "sqlite_int.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLUSH_AT (256 * 1024)
/* µs between 1970-01-01 and PostgreSQL's epoch 2000-01-01 */
#define PG_EPOCH_US INT64_C(946684800000000)
/* ord + the 39 span columns + input_at, output_at, resource_ref, scope_ref */
#define N_FIELDS 44

/* ---- SQL --------------------------------------------------------------- */

/* What a row writes into span_rows: the spans view's columns, then where
 * the attributes hold null for the input / output (sq_row.in_at, out_at),
 * then the shared texts its resource and scope are (NULL: in the row). */
#define PGW_COLUMNS                                                            \
    SQ_SPAN_COLUMNS ", input_at, output_at, resource_ref, scope_ref"

/* lz4 TOAST compression for this transaction's rows when the server has
 * it (pglz was the servers' hottest function: a fifth of their CPU); no
 * JIT (compiling S2/S3, costed high on halo_touched_v3 without statistics,
 * took 15% of the servers' CPU and saves nothing on these row counts). */
#define SQL_PROLOGUE                                                           \
    "BEGIN;"                                                                   \
    "SET LOCAL client_min_messages = warning;"                                 \
    "SET LOCAL work_mem = '64MB';"                                             \
    "SET LOCAL jit = off;"                                                     \
    "SELECT set_config('default_toast_compression', 'lz4', true)"              \
    " FROM pg_settings WHERE name = 'default_toast_compression'"               \
    " AND 'lz4' = ANY (enumvals);"

/* The session's temp tables. _v4 / _v3: a session a pooler kept from an
 * older halo would hold an older definition under the older name
 * (staging: resource_ref, scope_ref since v3; touched: priced since v2;
 * both: the id columns in the "C" collation of span_rows and traces since
 * v4 / v3 (schema migration 8), so that the lookups by trace_id, from
 * either side, use the indexes). */
#define SQL_TEMP_TABLES                                                        \
    "CREATE TEMP TABLE IF NOT EXISTS halo_staging_v4 ("                        \
    " ord integer NOT NULL, trace_id text COLLATE \"C\","                      \
    " span_id text COLLATE \"C\", parent_span_id text COLLATE \"C\","          \
    " name text, kind text, span_type text, agent_id text COLLATE \"C\","      \
    " agent_name text, session_id text, user_id text,"                         \
    " service_name text, model text, tool_name text,"                          \
    " start_time timestamptz, end_time timestamptz,"                           \
    " duration_ms double precision, status_code text, status_message text,"    \
    " input text, output text, input_tokens bigint, output_tokens bigint,"     \
    " cost double precision, attributes json, events json, resource json,"     \
    " start_unix_nano bigint, end_unix_nano bigint, trace_state text,"         \
    " flags bigint, links json, scope json, resource_schema_url text,"         \
    " resource_dropped_attributes_count bigint,"                               \
    " dropped_attributes_count bigint, dropped_events_count bigint,"           \
    " dropped_links_count bigint, fallback_mask integer, value_types json,"    \
    " input_at integer, output_at integer, resource_ref bigint,"               \
    " scope_ref bigint"                                                        \
    ") ON COMMIT DELETE ROWS;"                                                 \
    "CREATE TEMP TABLE IF NOT EXISTS halo_touched_v3 ("                        \
    " trace_id text COLLATE \"C\" PRIMARY KEY, spans bigint, errors bigint,"   \
    " llm bigint, tool bigint, in_tok bigint, out_tok bigint,"                 \
    " cost double precision, priced bigint, start_time timestamptz,"           \
    " end_time timestamptz, start_ns bigint, end_ns bigint, needs integer,"    \
    " root_id text COLLATE \"C\", root_name text,"                             \
    " r_agent_id text COLLATE \"C\", r_agent_name text, r_session_id text,"    \
    " r_user_id text, f_agent_id text COLLATE \"C\", f_agent_name text,"       \
    " f_session_id text, f_user_id text"                                       \
    ") ON COMMIT DELETE ROWS;"

/* The transaction up to the fast path's COPY: the texts lock, shared
 * (pg_schema.h: retention takes it to delete texts), the temp tables. */
#define SQL_OPEN                                                               \
    SQL_PROLOGUE "SELECT pg_advisory_xact_lock_shared(" HALO_PG_STR(           \
        HALO_PG_TEXTS_LOCK_KEY) ");" SQL_TEMP_TABLES
#define SQL_FAST_COPY                                                          \
    "SAVEPOINT halo_fast;"                                                     \
    "COPY span_rows (" PGW_COLUMNS ") FROM STDIN (FORMAT binary)"

/* Without shared texts in the write, one round trip to the COPY; with
 * them, SQL_OPEN, the texts (share_texts), then SQL_FAST_COPY. */
static const char SQL_BEGIN[] = SQL_OPEN SQL_FAST_COPY;
static const char SQL_BEGIN_OPEN[] = SQL_OPEN;
static const char SQL_BEGIN_COPY[] = SQL_FAST_COPY;

/* The fast path's COPY hit a stored span: back to the staging path. */
static const char SQL_FALLBACK[] =
    "ROLLBACK TO SAVEPOINT halo_fast;"
    "COPY halo_staging_v4 (ord, " PGW_COLUMNS ") FROM STDIN (FORMAT binary)";

/* The fast path's COPY stored every row: its per-trace deltas next. */
static const char SQL_TOUCHED[] =
    "RELEASE SAVEPOINT halo_fast;"
    "COPY halo_touched_v3 FROM STDIN (FORMAT binary)";

/* The HALO_FB_* bits (1 agent_id, 2 agent_name, 4 session_id, 8 user_id)
 * of the identity fields a non-root span lacks or has from the fallback. */
#define NEEDS_EXPR                                                             \
    "fallback_mask | CASE WHEN agent_id IS NULL THEN 1 ELSE 0 END"             \
    " | CASE WHEN agent_name IS NULL THEN 2 ELSE 0 END"                        \
    " | CASE WHEN session_id IS NULL THEN 4 ELSE 0 END"                        \
    " | CASE WHEN user_id IS NULL THEN 8 ELSE 0 END"

/* S1: insert, then the per-trace deltas of the rows inserted. */
#define SQL_S1                                                                 \
    "WITH ins AS (INSERT INTO span_rows (" PGW_COLUMNS ")"                     \
    " SELECT " PGW_COLUMNS " FROM halo_staging_v4 ORDER BY ord"                \
    " ON CONFLICT (trace_id, span_id, start_time) DO NOTHING"                  \
    " RETURNING trace_id, span_id, start_time, end_time, parent_span_id,"      \
    " name, status_code, span_type, agent_id, agent_name, session_id,"         \
    " user_id, input_tokens, output_tokens, cost, start_unix_nano,"            \
    " end_unix_nano, fallback_mask),"                                          \
    " pos AS (SELECT trace_id, span_id, start_time, min(ord) AS ord"           \
    " FROM halo_staging_v4 GROUP BY 1, 2, 3),"                                 \
    " k AS (SELECT i.*, p.ord FROM ins i JOIN pos p"                           \
    " ON p.trace_id = i.trace_id AND p.span_id = i.span_id"                    \
    " AND p.start_time = i.start_time),"                                       \
    " agg AS (SELECT trace_id, count(*) AS spans,"                             \
    " count(*) FILTER (WHERE status_code = 'ERROR') AS errors,"                \
    " count(*) FILTER (WHERE span_type = 'LLM') AS llm,"                       \
    " count(*) FILTER (WHERE span_type = 'TOOL') AS tool,"                     \
    " coalesce(sum(input_tokens), 0) AS in_tok,"                               \
    " coalesce(sum(output_tokens), 0) AS out_tok,"                             \
    " coalesce(sum(cost), 0) AS cost, count(cost) AS priced,"                  \
    " min(start_time) AS start_time, max(end_time) AS end_time,"               \
    " min(start_unix_nano) AS start_ns, max(end_unix_nano) AS end_ns,"         \
    " coalesce(bit_or(" NEEDS_EXPR ")"                                         \
    " FILTER (WHERE parent_span_id IS NOT NULL), 0) AS needs,"                 \
    " min(ord) AS first_ord,"                                                  \
    " max(ord) FILTER (WHERE parent_span_id IS NULL) AS root_ord"              \
    " FROM k GROUP BY trace_id)"                                               \
    " INSERT INTO halo_touched_v3 SELECT a.trace_id, a.spans, a.errors,"       \
    " a.llm, a.tool, a.in_tok, a.out_tok, a.cost, a.priced, a.start_time,"     \
    " a.end_time, a.start_ns, a.end_ns, a.needs, r.span_id, r.name,"           \
    " r.agent_id, r.agent_name, r.session_id, r.user_id, f.agent_id,"          \
    " f.agent_name, f.session_id, f.user_id"                                   \
    " FROM agg a JOIN k f ON f.ord = a.first_ord"                              \
    " LEFT JOIN k r ON r.ord = a.root_ord;"

/* S2: the traces upsert. */
#define IDENT(col)                                                             \
    " CASE WHEN h.root_id IS NOT NULL THEN coalesce(h.r_" col ", t." col ")"   \
    " ELSE coalesce(t." col ", h.f_" col ") END"
/* clang-format off */
#define SQL_S2                                                                 \
    "INSERT INTO traces AS t (trace_id, agent_id, agent_name,"                 \
    " session_id, user_id, root_name, start_time, end_time,"                   \
    " duration_ms, span_count, error_count, llm_calls, tool_calls,"            \
    " input_tokens, output_tokens, cost, start_unix_nano,"                     \
    " end_unix_nano, root_span_id, identity_pending, priced_spans)"            \
    " SELECT trace_id,"                                                        \
    " coalesce(r_agent_id, f_agent_id), coalesce(r_agent_name,"                \
    " f_agent_name), coalesce(r_session_id, f_session_id),"                    \
    " coalesce(r_user_id, f_user_id), root_name, start_time, end_time,"        \
    " (end_ns - start_ns)::float8 / 1000000.0::float8, spans, errors,"         \
    " llm, tool, in_tok, out_tok, cost, start_ns, end_ns, root_id,"            \
    " needs, priced FROM halo_touched_v3 ORDER BY trace_id"                    \
    " ON CONFLICT (trace_id)"                                                  \
    " DO UPDATE SET (agent_id, agent_name, session_id, user_id) ="             \
    " (SELECT" IDENT("agent_id")                                               \
    "," IDENT("agent_name")                                                    \
    "," IDENT("session_id")                                                    \
    "," IDENT("user_id")                                                       \
    " FROM halo_touched_v3 h WHERE h.trace_id = excluded.trace_id),"           \
    " root_name = CASE WHEN excluded.root_span_id IS NOT NULL  THEN"           \
    " excluded.root_name ELSE t.root_name END, root_span_id ="                 \
    " coalesce(excluded.root_span_id, t.root_span_id), start_time ="           \
    " least(t.start_time, excluded.start_time), end_time ="                    \
    " greatest(t.end_time, excluded.end_time), start_unix_nano ="              \
    " least(t.start_unix_nano, excluded.start_unix_nano), end_unix_nano"       \
    " = greatest(t.end_unix_nano, excluded.end_unix_nano), duration_ms"        \
    " = (greatest(t.end_unix_nano, excluded.end_unix_nano)  -"                 \
    " least(t.start_unix_nano, excluded.start_unix_nano))::float8  /"          \
    " 1000000.0::float8, span_count = t.span_count +"                          \
    " excluded.span_count, error_count = t.error_count +"                      \
    " excluded.error_count, llm_calls = t.llm_calls +"                         \
    " excluded.llm_calls, tool_calls = t.tool_calls +"                         \
    " excluded.tool_calls, input_tokens = t.input_tokens +"                    \
    " excluded.input_tokens, output_tokens = t.output_tokens +"                \
    " excluded.output_tokens, cost = t.cost + excluded.cost,"                  \
    " priced_spans = t.priced_spans + excluded.priced_spans,"                  \
    " identity_pending = t.identity_pending |"                                 \
    " excluded.identity_pending;"
/* clang-format on */

/* S3: the identity fix-up. */
#define PROVIDES(col, bit)                                                     \
    "CASE WHEN r.fallback_mask & " bit " = 0 AND r." col " IS NOT NULL"        \
    " THEN " bit " ELSE 0 END"
#define FIX(col, bit)                                                          \
    " " col " = CASE WHEN f.m & " bit " <> 0 AND (x.fallback_mask & " bit      \
    " <> 0 OR x." col " IS NULL) THEN f." col " ELSE x." col " END"
#define FIX_NEEDED(col, bit) " OR (f.m & " bit " <> 0 AND x." col " IS NULL)"
/* The statement is laid out by hand: clang-format cannot lay out a macro
 * built from macros legibly. */
/* clang-format off */
#define SQL_S3                                                                 \
    "WITH src AS (SELECT h.trace_id, t.root_span_id,"                          \
    " CASE WHEN h.root_id IS NOT NULL THEN t.identity_pending"                 \
    " ELSE h.needs END AS want"                                                \
    " FROM halo_touched_v3 h JOIN traces t ON t.trace_id = h.trace_id"         \
    " WHERE t.root_span_id IS NOT NULL),"                                      \
    " f AS (SELECT DISTINCT ON (s.trace_id) s.trace_id, r.agent_id,"           \
    " r.agent_name, r.session_id, r.user_id, s.want & ("                       \
    PROVIDES("agent_id", "1") " | " PROVIDES("agent_name", "2") " | "          \
    PROVIDES("session_id", "4") " | " PROVIDES("user_id", "8") ") AS m"        \
    " FROM src s JOIN span_rows r ON r.trace_id = s.trace_id"                  \
    " AND r.span_id = s.root_span_id WHERE s.want <> 0"                        \
    " ORDER BY s.trace_id, r.start_time)"                                      \
    " UPDATE span_rows x SET"                                                  \
    FIX("agent_id", "1") "," FIX("agent_name", "2") ","                        \
    FIX("session_id", "4") "," FIX("user_id", "8") ","                         \
    " fallback_mask = x.fallback_mask & ~f.m"                                  \
    " FROM f WHERE x.trace_id = f.trace_id AND f.m <> 0"                       \
    " AND ((x.fallback_mask & f.m) <> 0"                                       \
    FIX_NEEDED("agent_id", "1") FIX_NEEDED("agent_name", "2")                  \
    FIX_NEEDED("session_id", "4") FIX_NEEDED("user_id", "8") ");"
/* clang-format on */

#define SQL_S4 "SELECT coalesce(sum(spans), 0) FROM halo_touched_v3;"

/* S2..S3 touch the rows of the traces in halo_touched_v3 only. That table
 * has no statistics either: the planner guessed ~700 rows and chose hash
 * joins over sequential scans of ALL of `traces` (S3's src) and, when a
 * trace needed its identity fixed, of ALL of `spans` (S3's UPDATE): every
 * write cost O(stored rows), 590 ms at 515k spans (EXPLAIN ANALYZE).
 * No sequential scans: index lookups by trace_id, O(touched). */
#define SQL_PLAN_ROLLUP                                                        \
    "SELECT set_config('enable_nestloop', 'on', true),"                        \
    " set_config('enable_seqscan', 'off', true);"

/* S1's inputs have no statistics (a temporary table filled by COPY, CTEs
 * of it): the planner then estimates one row per join and picks nested
 * loops, quadratic in the batch (4 s for 8192 spans, measured). Hash joins
 * for S1 only; S3 needs its index lookups into `spans`. */
static const char SQL_APPLY[] =
    "SET LOCAL enable_nestloop = off;" SQL_S1 SQL_PLAN_ROLLUP SQL_S2 SQL_S3
        SQL_S4 "COMMIT";

/* The fast path: halo_touched_v3 already filled from the rows themselves. */
static const char SQL_APPLY_FAST[] =
    SQL_PLAN_ROLLUP SQL_S2 SQL_S3 SQL_S4 "COMMIT";

/* ---- errors ------------------------------------------------------------ */

/* The status for a failed result: see pg_write.h. */
static halo_status classify(PGconn *c, const PGresult *res)
{
    if (PQstatus(c) != CONNECTION_OK)
        return HALO_ERETRY;
    const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!code || strlen(code) != 5)
        return HALO_ERETRY; /* a client-side (connection) failure */
    if (strncmp(code, "22", 2) == 0 || strncmp(code, "23", 2) == 0)
        return HALO_EINVAL;
    if (strncmp(code, "08", 2) == 0 || strncmp(code, "40", 2) == 0 ||
        strncmp(code, "53", 2) == 0 || strncmp(code, "57", 2) == 0 ||
        strcmp(code, "55P03") == 0)
        return HALO_ERETRY;
    return HALO_EIO;
}

/* "could not WHAT: <server message> (<detail>)". */
static halo_status pgw_fail(PGconn *c, const PGresult *res, const char *what,
                            halo_err *err)
{
    char msg[HALO_ERR_MAX];
    halo_pg_error_text(c, res, msg, sizeof msg);
    if (!msg[0])
        snprintf(msg, sizeof msg, "connection lost");
    return halo_fail(err, classify(c, res), "could not %s: %s", what, msg);
}

/* Read every pending result; the first failure becomes the error (*dup,
 * when dup is not NULL: it was a unique violation). A PGRES_COPY_IN result
 * stops the loop and sets *copy_in (the caller streams the data). last, when
 * not NULL, gets the last PGRES_TUPLES_OK result (caller PQclear()s). */
static halo_status drain(PGconn *c, const char *what, bool *copy_in,
                         PGresult **last, bool *dup, halo_err *err)
{
    halo_status st = HALO_OK;
    PGresult *res;
    while ((res = PQgetResult(c)) != NULL) {
        ExecStatusType s = PQresultStatus(res);
        if (s == PGRES_COPY_IN && copy_in && st == HALO_OK) {
            *copy_in = true;
            PQclear(res);
            return HALO_OK;
        }
        if (s == PGRES_COPY_IN || s == PGRES_COPY_OUT) {
            /* not expected: end it so the connection stays usable */
            if (s == PGRES_COPY_IN)
                PQputCopyEnd(c, "unexpected COPY");
            if (st == HALO_OK)
                st = halo_fail(err, HALO_EIO, "could not %s: unexpected COPY",
                               what);
        } else if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
            const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            if (st == HALO_OK && dup)
                *dup = code && strcmp(code, "23505") == 0;
            if (st == HALO_OK)
                st = pgw_fail(c, res, what, err);
        } else if (s == PGRES_TUPLES_OK && last && st == HALO_OK) {
            PQclear(*last);
            *last = res;
            continue;
        }
        PQclear(res);
        if (PQstatus(c) != CONNECTION_OK)
            break;
    }
    return st;
}

static void rollback(PGconn *c)
{
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
        PQclear(PQexec(c, "ROLLBACK"));
}

/* ---- binary COPY encoding ------------------------------------------------ */

/* A record (a row, a delta, the header or the trailer) is written through a
 * cursor into room reserved once for the most it can take (rec_begin): no
 * bounds check per field. Measured on the Kafka -> PostgreSQL persist node
 * (bench/README.md, session 15): put_row was 7.5% of halo's CPU when every
 * field was appended with a check of its own (about 90 appends per row);
 * with the cursor, halo's CPU per 600,000 spans fell from 2.28-2.41 s to
 * 2.24-2.29 s (user time 5% less, four runs each, alternating). */

/* Room for a record of n_fields fields whose texts total text_bytes: per
 * field its length word and at most 8 bytes of a number, or its text with
 * every byte possibly replaced by the 3-byte U+FFFD (field_text). The
 * cursor, or NULL when out of memory (b->oom, which send_copy reports). */
static char *rec_begin(halo_buf *b, size_t n_fields, size_t text_bytes)
{
    if (!halo_buf_reserve(b, 2 + n_fields * 12 + 3 * text_bytes))
        return NULL;
    return b->data + b->len;
}

static void rec_end(halo_buf *b, char *w)
{
    b->len = (size_t)(w - b->data);
    b->data[b->len] = '\0';
}

static char *put_i16(char *w, int16_t v)
{
    uint16_t u = (uint16_t)v;
    w[0] = (char)(u >> 8);
    w[1] = (char)u;
    return w + 2;
}

static char *put_i32(char *w, int32_t v)
{
    uint32_t u = (uint32_t)v;
    w[0] = (char)(u >> 24);
    w[1] = (char)(u >> 16);
    w[2] = (char)(u >> 8);
    w[3] = (char)u;
    return w + 4;
}

/* v big-endian, as the binary formats of int8 and timestamptz are. */
static void be64(char out[8], int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        out[i] = (char)(u >> (56 - 8 * i));
}

static char *field_i32(char *w, int32_t v)
{
    return put_i32(put_i32(w, 4), v);
}

static char *field_i64(char *w, int64_t v)
{
    w = put_i32(w, 8);
    be64(w, v);
    return w + 8;
}

static char *field_opt_i64(char *w, bool has, int64_t v)
{
    return has ? field_i64(w, v) : put_i32(w, -1);
}

/* A halo_json_cut position: NULL when 0 (nothing cut). */
static char *field_opt_i32(char *w, int64_t v)
{
    return v > 0 && v <= INT32_MAX ? field_i32(w, (int32_t)v) : put_i32(w, -1);
}

static char *field_f64(char *w, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return field_i64(w, (int64_t)u);
}

/* ns since the epoch -> timestamptz (µs since 2000-01-01, truncated). */
static char *field_ts(char *w, uint64_t ns)
{
    return field_i64(w, (int64_t)(ns / 1000u) - PG_EPOCH_US);
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 when invalid:
 * PostgreSQL's own rules (no overlongs, surrogates, or past U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len = c >= 0xC2 && c <= 0xDF   ? 2
                 : c >= 0xE0 && c <= 0xEF ? 3
                 : c >= 0xF0 && c <= 0xF4 ? 4
                                          : 0;
    if (!len || len > n)
        return 0;
    uint32_t cp = c & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* The number of leading bytes of p[0..n) that are valid UTF-8 without NUL. */
static size_t utf8_valid_prefix(const unsigned char *p, size_t n)
{
    size_t i = 0;
    const uint64_t ones = 0x0101010101010101ull, highs = ones << 7;
    while (i < n) {
        /* 16, then 8 bytes at a time while they are ASCII and not NUL (a
         * zero byte sets its high bit in (w - ones) & ~w) */
        for (; n - i >= 16; i += 16) {
            uint64_t w, v;
            memcpy(&w, p + i, 8);
            memcpy(&v, p + i + 8, 8);
            if ((w | ((w - ones) & ~w) | v | ((v - ones) & ~v)) & highs)
                break;
        }
        for (; n - i >= 8; i += 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if ((w | ((w - ones) & ~w)) & highs)
                break;
        }
        if (i >= n)
            break;
        if (p[i] >= 0x01 && p[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = p[i] ? utf8_seq(p + i, n - i) : 0;
        if (!l)
            return i;
        i += l;
    }
    return n;
}

/* A text field: NULL, the bytes as they are, or (invalid UTF-8, NUL) a copy
 * with each offending byte replaced by U+FFFD (3 bytes for 1: rec_begin's
 * bound). */
static char *field_text(char *w, sq_str s)
{
    if (!s.p)
        return put_i32(w, -1);
    const unsigned char *p = (const unsigned char *)s.p;
    size_t n = (size_t)s.len, ok = utf8_valid_prefix(p, n);
    if (ok == n) {
        w = put_i32(w, (int32_t)n);
        memcpy(w, p, n);
        return w + n;
    }
    char *at = w, *start = w + 4;
    w = start;
    for (size_t i = 0; i < n;) {
        ok = utf8_valid_prefix(p + i, n - i);
        memcpy(w, p + i, ok);
        w += ok;
        i += ok;
        if (i < n) {
            memcpy(w, "\xEF\xBF\xBD", 3);
            w += 3;
            i++;
        }
    }
    put_i32(at, (int32_t)(w - start));
    return w;
}

/* JSON is valid UTF-8 by construction (core/buf.c's encoder). */
static char *field_json(char *w, sq_str s)
{
    if (!s.p)
        return put_i32(w, -1);
    w = put_i32(w, s.len);
    memcpy(w, s.p, (size_t)s.len);
    return w + s.len;
}

/* The bytes of a text slot (0 for NULL). */
static size_t text_len(sq_str s)
{
    return s.p ? (size_t)s.len : 0;
}

/* One row: ord when with_ord (the staging table), then the columns in
 * PGW_COLUMNS order; ref[0] / ref[1], when not 0, the shared texts its
 * resource / scope are (the row's own columns then NULL). */
static void put_row(halo_buf *b, bool with_ord, int32_t ord, const sq_row *r,
                    const int64_t ref[2])
{
    sq_str kind = {sq_kind_name(r->kind), 0};
    sq_str status = {halo_status_code_name(r->status_code), 0};
    kind.len = (int)strlen(kind.p);
    status.len = (int)strlen(status.p);
    size_t text = text_len(kind) + text_len(status);
    for (int t = 0; t < T_N_; t++)
        text += text_len(r->t[t]);
    char *w = rec_begin(b, N_FIELDS, text);
    if (!w)
        return;
    w = put_i16(w, with_ord ? N_FIELDS : N_FIELDS - 1);
    if (with_ord)
        w = field_i32(w, ord);
    w = field_text(w, r->t[T_TRACE_ID]);
    w = field_text(w, r->t[T_SPAN_ID]);
    w = field_text(w, r->t[T_PARENT]);
    w = field_text(w, r->t[T_NAME]);
    w = field_text(w, kind);
    for (int t = T_SPAN_TYPE; t <= T_TOOL; t++)
        w = field_text(w, r->t[t]); /* span_type .. tool_name */
    w = field_ts(w, r->start_ns);
    w = field_ts(w, r->end_ns);
    w = field_f64(w, (double)(int64_t)(r->end_ns - r->start_ns) / 1e6);
    w = field_text(w, status);
    w = field_text(w, r->t[T_STATUS_MSG]);
    w = field_text(w, r->t[T_INPUT]);
    w = field_text(w, r->t[T_OUTPUT]);
    w = field_opt_i64(w, r->has_in_tok, r->in_tok);
    w = field_opt_i64(w, r->has_out_tok, r->out_tok);
    w = r->has_cost ? field_f64(w, r->cost) : put_i32(w, -1);
    w = field_json(w, r->t[T_ATTRS]);
    w = field_json(w, r->t[T_EVENTS]);
    w = field_json(w, ref[0] ? (sq_str){NULL, 0} : r->t[T_RESOURCE]);
    w = field_i64(w, (int64_t)r->start_ns);
    w = field_i64(w, (int64_t)r->end_ns);
    w = field_text(w, r->t[T_TRACE_STATE]);
    w = field_i64(w, r->flags);
    w = field_json(w, r->t[T_LINKS]);
    w = field_json(w, ref[1] ? (sq_str){NULL, 0} : r->t[T_SCOPE]);
    w = field_text(w, r->t[T_RES_SCHEMA]);
    w = field_i64(w, r->res_dropped);
    w = field_i64(w, r->dropped_attrs);
    w = field_i64(w, r->dropped_events);
    w = field_i64(w, r->dropped_links);
    w = field_i32(w, (int32_t)r->fb_mask);
    w = field_json(w, r->t[T_VALUE_TYPES]);
    w = field_opt_i32(w, r->in_at);
    w = field_opt_i32(w, r->out_at);
    w = field_opt_i64(w, ref[0] != 0, ref[0]);
    w = field_opt_i64(w, ref[1] != 0, ref[1]);
    rec_end(b, w);
}

/* ---- the fast path's rollup deltas --------------------------------------- */

/* S1's per-trace aggregate (halo_touched_v3's row), computed from the rows
 * themselves when the fast path stored every one of them. */
typedef struct delta {
    sq_str trace_id;
    int64_t spans, errors, llm, tool, in_tok, out_tok;
    double cost;
    int64_t priced;           /* spans with a cost */
    int64_t start_ns, end_ns; /* as PostgreSQL compares them: signed */
    uint64_t start_u, end_u;  /* the same, for the timestamptz columns */
    uint32_t needs;
    const sq_row *root;  /* the last root span in batch order */
    const sq_row *first; /* the first span in batch order */
} delta;

typedef struct deltas {
    delta *v;
    size_t n;
    uint32_t *slot; /* open addressing: index + 1 into v, 0 free */
    size_t mask;
} deltas;

/* A row's trace, for the table of deltas: its 16-byte id mixed (the text
 * id is the hex of the same bytes, so equal texts hash equal). */
static uint64_t hash_tid(const uint8_t tid[16])
{
    uint64_t a, b;
    memcpy(&a, tid, 8);
    memcpy(&b, tid + 8, 8);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull)) * 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 31);
}

static bool same_str(sq_str a, sq_str b)
{
    return a.len == b.len &&
           (a.len == 0 || memcmp(a.p, b.p, (size_t)a.len) == 0);
}

static bool text_is(sq_str s, const char *lit)
{
    return s.p && (size_t)s.len == strlen(lit) &&
           memcmp(s.p, lit, (size_t)s.len) == 0;
}

/* NEEDS_EXPR for one row. */
static uint32_t row_needs(const sq_row *r)
{
    return r->fb_mask | (r->t[T_AGENT_ID].p ? 0 : 1u) |
           (r->t[T_AGENT_NAME].p ? 0 : 2u) | (r->t[T_SESSION_ID].p ? 0 : 4u) |
           (r->t[T_USER_ID].p ? 0 : 8u);
}

/* The delta of r's trace, created on first sight. */
static delta *delta_of(deltas *d, const sq_row *r)
{
    sq_str id = r->t[T_TRACE_ID];
    size_t i = (size_t)hash_tid(r->tid) & d->mask;
    while (d->slot[i]) {
        delta *x = &d->v[d->slot[i] - 1];
        if (same_str(x->trace_id, id))
            return x;
        i = (i + 1) & d->mask;
    }
    delta *x = &d->v[d->n++];
    d->slot[i] = (uint32_t)d->n;
    *x = (delta){
        .trace_id = id, .start_ns = INT64_MAX, .end_ns = INT64_MIN, .first = r};
    return x;
}

static void delta_add(delta *x, const sq_row *r)
{
    x->spans++;
    x->errors += strcmp(halo_status_code_name(r->status_code), "ERROR") == 0;
    x->llm += text_is(r->t[T_SPAN_TYPE], "LLM");
    x->tool += text_is(r->t[T_SPAN_TYPE], "TOOL");
    x->in_tok += r->has_in_tok ? r->in_tok : 0;
    x->out_tok += r->has_out_tok ? r->out_tok : 0;
    x->cost += r->has_cost ? r->cost : 0.0;
    x->priced += r->has_cost;
    if ((int64_t)r->start_ns < x->start_ns) {
        x->start_ns = (int64_t)r->start_ns;
        x->start_u = r->start_ns;
    }
    if ((int64_t)r->end_ns > x->end_ns) {
        x->end_ns = (int64_t)r->end_ns;
        x->end_u = r->end_ns;
    }
    if (r->t[T_PARENT].p)
        x->needs |= row_needs(r);
    else
        x->root = r;
}

/* Every row of rows[0..n) aggregated per trace, in batch order. */
static halo_status deltas_build(deltas *d, halo_store_rows *const *rows,
                                size_t n, size_t total, halo_err *err)
{
    size_t cap = 16;
    while (cap < 2 * total)
        cap *= 2;
    d->v = malloc(total * sizeof *d->v);
    d->slot = calloc(cap, sizeof *d->slot);
    d->n = 0;
    d->mask = cap - 1;
    if (!d->v || !d->slot)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const sq_rows *rs = (const sq_rows *)rows[i];
        for (size_t j = 0; j < rs->n; j++)
            delta_add(delta_of(d, &rs->rows[j]), &rs->rows[j]);
    }
    return HALO_OK;
}

static void deltas_free(deltas *d)
{
    free(d->v);
    free(d->slot);
}

static char *put_opt_text(char *w, const sq_row *r, int t)
{
    return r ? field_text(w, r->t[t]) : put_i32(w, -1);
}

/* The text slots of a delta's root row and first row that put_delta
 * writes. */
static const int delta_root_texts[] = {T_SPAN_ID,    T_NAME,       T_AGENT_ID,
                                       T_AGENT_NAME, T_SESSION_ID, T_USER_ID};
static const int delta_first_texts[] = {T_AGENT_ID, T_AGENT_NAME, T_SESSION_ID,
                                        T_USER_ID};
#define N_DELTA_FIELDS 24
#define N_OF(a) (sizeof(a) / sizeof *(a))

/* One halo_touched_v3 row, its columns in the table's order. */
static void put_delta(halo_buf *b, const delta *x)
{
    size_t text = text_len(x->trace_id);
    for (size_t i = 0; x->root && i < N_OF(delta_root_texts); i++)
        text += text_len(x->root->t[delta_root_texts[i]]);
    for (size_t i = 0; i < N_OF(delta_first_texts); i++)
        text += text_len(x->first->t[delta_first_texts[i]]);
    char *w = rec_begin(b, N_DELTA_FIELDS, text);
    if (!w)
        return;
    w = put_i16(w, N_DELTA_FIELDS);
    w = field_text(w, x->trace_id);
    const int64_t counts[] = {x->spans, x->errors, x->llm,
                              x->tool,  x->in_tok, x->out_tok};
    for (size_t i = 0; i < N_OF(counts); i++)
        w = field_i64(w, counts[i]);
    w = field_f64(w, x->cost);
    w = field_i64(w, x->priced);
    w = field_ts(w, x->start_u);
    w = field_ts(w, x->end_u);
    w = field_i64(w, x->start_ns);
    w = field_i64(w, x->end_ns);
    w = field_i32(w, (int32_t)x->needs);
    for (size_t i = 0; i < N_OF(delta_root_texts); i++)
        w = put_opt_text(w, x->root, delta_root_texts[i]);
    for (size_t i = 0; i < N_OF(delta_first_texts); i++)
        w = field_text(w, x->first->t[delta_first_texts[i]]);
    rec_end(b, w);
}

/* ---- shared texts (schema migration 6) ----------------------------------- */

/* A write's distinct resource and scope texts (those of SQ_SHARED_MIN
 * bytes or more) are put into shared_texts before its COPY, each under the
 * 64-bit hash of its bytes as id, and the rows refer to those that are
 * there with the same bytes (usable). A text stays in its rows when it is
 * not: another text of the write has the same id (lone), shared_texts
 * holds another text under it (a hash collision), or another writer
 * inserted it meanwhile and committed after this write's check began
 * (the next write will use it).
 *
 * Two statements, in this order, so that two writers never wait on each
 * other in a cycle: TEXTS_INS inserts the missing texts in id order (it
 * waits only for another writer's uncommitted insert of the same id);
 * TEXTS_CHECK raises the last_start of the stored texts that need it,
 * locking them in id order first, and returns the ids stored with the
 * same bytes, as seen when it starts (after TEXTS_INS and what it waited
 * for). */
#define TEXTS_PER_STMT 1000
#define TEXTS_U " (id, body, need, raise) AS (VALUES "
#define TEXTS_INS_END                                                          \
    ") INSERT INTO shared_texts (id, body, last_start)"                        \
    " SELECT id, body::json, raise FROM u ORDER BY id"                         \
    " ON CONFLICT (id) DO NOTHING"
#define TEXTS_CHECK_END                                                        \
    "), lk AS (SELECT s.id FROM shared_texts s JOIN u ON u.id = s.id"          \
    " WHERE s.last_start < u.need AND s.body::text = u.body"                   \
    " ORDER BY s.id FOR UPDATE OF s),"                                         \
    " bump AS (UPDATE shared_texts s SET last_start ="                         \
    " greatest(s.last_start, u.raise) FROM u"                                  \
    " WHERE u.id = s.id AND s.id IN (SELECT id FROM lk))"                      \
    " SELECT s.id FROM shared_texts s JOIN u ON u.id = s.id"                   \
    " WHERE s.body::text = u.body"

typedef struct shtext {
    sq_str body;
    uint64_t hash;
    int64_t need; /* the latest start (ns, signed as stored) of its spans */
    bool lone;    /* another text of the write has the same hash */
    bool usable;  /* in shared_texts with these bytes: rows refer to it */
} shtext;

typedef struct shtexts {
    shtext *v;
    size_t n, cap;
    uint32_t *slot; /* open addressing by hash: index + 1 into v, 0 free */
    size_t mask;
    uint32_t *ref; /* 2 per row (resource, scope): index + 1, 0 in the row */
} shtexts;

/* Twice the slots, the texts placed again. */
static bool slots_grow(shtexts *x)
{
    size_t cap = 2 * (x->mask + 1);
    uint32_t *slot = calloc(cap, sizeof *slot);
    if (!slot)
        return false;
    for (size_t k = 0; k < x->n; k++) {
        size_t i = (size_t)x->v[k].hash & (cap - 1);
        while (slot[i])
            i = (i + 1) & (cap - 1);
        slot[i] = (uint32_t)(k + 1);
    }
    free(x->slot);
    x->slot = slot;
    x->mask = cap - 1;
    return true;
}

/* The index + 1 of txt in x, added when new; 0 when out of memory. */
static uint32_t text_index(shtexts *x, sq_str txt)
{
    uint64_t h = halo_hash_bytes(txt.p, (size_t)txt.len);
    bool collides = false;
    size_t i = (size_t)h & x->mask;
    for (; x->slot[i]; i = (i + 1) & x->mask) {
        shtext *e = &x->v[x->slot[i] - 1];
        if (e->hash != h)
            continue;
        if (same_str(e->body, txt))
            return x->slot[i];
        e->lone = collides = true;
    }
    if (x->n == x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 16;
        shtext *v = realloc(x->v, cap * sizeof *v);
        if (!v)
            return 0;
        x->v = v;
        x->cap = cap;
    }
    if (2 * (x->n + 1) > x->mask + 1) { /* at most half full */
        if (!slots_grow(x))
            return 0;
        for (i = (size_t)h & x->mask; x->slot[i]; i = (i + 1) & x->mask)
            ;
    }
    x->v[x->n] =
        (shtext){.body = txt, .hash = h, .need = INT64_MIN, .lone = collides};
    x->slot[i] = (uint32_t)++x->n;
    return x->slot[i];
}

/* x->ref for every row of rows[0..n) (total of them). Rows of one request
 * share their texts' bytes, so the last text of each column skips the
 * hash. */
static halo_status texts_build(shtexts *x, halo_store_rows *const *rows,
                               size_t n, size_t total, halo_err *err)
{
    *x = (shtexts){.slot = calloc(64, sizeof *x->slot),
                   .mask = 63,
                   .ref = calloc(2 * total, sizeof *x->ref)};
    if (!x->slot || !x->ref)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    const int cols[2] = {T_RESOURCE, T_SCOPE};
    sq_str last[2] = {{NULL, 0}, {NULL, 0}};
    uint32_t last_ref[2] = {0, 0};
    size_t g = 0;
    for (size_t i = 0; i < n; i++) {
        const sq_rows *rs = (const sq_rows *)rows[i];
        for (size_t j = 0; j < rs->n; j++, g++) {
            const sq_row *r = &rs->rows[j];
            for (int k = 0; k < 2; k++) {
                sq_str txt = r->t[cols[k]];
                if (!txt.p || txt.len < SQ_SHARED_MIN)
                    continue;
                if (txt.p != last[k].p || txt.len != last[k].len) {
                    last[k] = txt;
                    last_ref[k] = text_index(x, txt);
                    if (!last_ref[k])
                        return halo_fail(err, HALO_ENOMEM, "out of memory");
                }
                shtext *e = &x->v[last_ref[k] - 1];
                if ((int64_t)r->start_ns > e->need)
                    e->need = (int64_t)r->start_ns;
                x->ref[2 * g + (size_t)k] = last_ref[k];
            }
        }
    }
    return HALO_OK;
}

static void texts_free(shtexts *x)
{
    free(x->v);
    free(x->slot);
    free(x->ref);
}

/* The id of row g's resource (k 0) or scope (k 1) text; 0: in the row. */
static int64_t text_ref(const shtexts *x, size_t g, int k)
{
    uint32_t i = x->ref ? x->ref[2 * g + (size_t)k] : 0;
    return i && x->v[i - 1].usable ? (int64_t)x->v[i - 1].hash : 0;
}

static int cmp_text_id(const void *a, const void *b)
{
    int64_t x = (int64_t)(*(shtext *const *)a)->hash;
    int64_t y = (int64_t)(*(shtext *const *)b)->hash;
    return (x > y) - (x < y);
}

/* One of the two statements over e[0..n) (sorted by id); check: mark
 * the ids it returns usable. */
static halo_status texts_stmt(PGconn *c, shtext *const *e, size_t n, bool check,
                              halo_err *err)
{
    enum { INT8OID = 20, TEXTOID = 25 };
    size_t np = 4 * n;
    Oid *types = malloc(np * sizeof *types);
    const char **vals = malloc(np * sizeof *vals);
    int *lens = malloc(np * sizeof *lens), *fmts = malloc(np * sizeof *fmts);
    char(*num)[8] = malloc(3 * n * sizeof *num);
    halo_buf sql = HALO_BUF_INIT;
    halo_status st = HALO_OK;
    if (!types || !vals || !lens || !fmts || !num)
        st = halo_fail(err, HALO_ENOMEM, "out of memory");
    halo_buf_puts(&sql, "WITH u" TEXTS_U);
    for (size_t i = 0; st == HALO_OK && i < n; i++) {
        int64_t raise = e[i]->need > INT64_MAX - SQ_SHARED_SLACK_NS
                            ? INT64_MAX
                            : e[i]->need + SQ_SHARED_SLACK_NS;
        be64(num[3 * i], (int64_t)e[i]->hash);
        be64(num[3 * i + 1], e[i]->need);
        be64(num[3 * i + 2], raise);
        const char *v[4] = {num[3 * i], e[i]->body.p, num[3 * i + 1],
                            num[3 * i + 2]};
        for (int k = 0; k < 4; k++) {
            types[4 * i + (size_t)k] = k == 1 ? TEXTOID : INT8OID;
            vals[4 * i + (size_t)k] = v[k];
            lens[4 * i + (size_t)k] = k == 1 ? e[i]->body.len : 8;
            fmts[4 * i + (size_t)k] = 1;
        }
        halo_buf_printf(&sql, "%s($%zu, $%zu, $%zu, $%zu)", i ? ", " : "",
                        4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4);
    }
    halo_buf_puts(&sql, check ? TEXTS_CHECK_END : TEXTS_INS_END);
    halo_buf_putc(&sql, '\0');
    if (st == HALO_OK && sql.oom)
        st = halo_fail(err, HALO_ENOMEM, "out of memory");
    PGresult *res = NULL;
    if (st == HALO_OK) {
        res = PQexecParams(c, sql.data, (int)np, types, vals, lens, fmts, 0);
        ExecStatusType want = check ? PGRES_TUPLES_OK : PGRES_COMMAND_OK;
        if (!res || PQresultStatus(res) != want)
            st = pgw_fail(c, res, "store the resource and scope texts", err);
    }
    for (int i = 0; st == HALO_OK && check && i < PQntuples(res); i++) {
        int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        size_t lo = 0, hi = n;
        while (lo < hi) { /* e is sorted by id */
            size_t mid = lo + (hi - lo) / 2;
            if ((int64_t)e[mid]->hash < id)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < n && (int64_t)e[lo]->hash == id)
            e[lo]->usable = true;
    }
    PQclear(res);
    halo_buf_free(&sql);
    free(types);
    free(vals);
    free(lens);
    free(fmts);
    free(num);
    return st;
}

/* Store the write's texts (both statements, TEXTS_PER_STMT texts at a
 * time) and mark those its rows may refer to. */
static halo_status share_texts(PGconn *c, shtexts *x, halo_err *err)
{
    shtext **e = malloc((x->n ? x->n : 1) * sizeof *e);
    if (!e)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < x->n; i++)
        if (!x->v[i].lone)
            e[n++] = &x->v[i];
    qsort(e, n, sizeof *e, cmp_text_id);
    halo_status st = HALO_OK;
    for (int check = 0; check < 2; check++)
        for (size_t i = 0; st == HALO_OK && i < n; i += TEXTS_PER_STMT) {
            size_t k = n - i < TEXTS_PER_STMT ? n - i : TEXTS_PER_STMT;
            st = texts_stmt(c, e + i, k, check, err);
        }
    free(e);
    return st;
}

/* ---- the COPY ------------------------------------------------------------ */

static halo_status send_copy(PGconn *c, halo_buf *b, halo_err *err)
{
    if (b->oom)
        return halo_fail(err, HALO_ENOMEM, "out of memory encoding COPY data");
    if (b->len && PQputCopyData(c, b->data, (int)b->len) != 1)
        return pgw_fail(c, NULL, "send spans to PostgreSQL", err);
    halo_buf_reset(b);
    return HALO_OK;
}

static void copy_header(halo_buf *b)
{
    static const char sig[11] = "PGCOPY\n\377\r\n"; /* and a NUL */
    char *w = rec_begin(b, 2, sizeof sig);
    if (!w)
        return;
    memcpy(w, sig, sizeof sig);
    w = put_i32(w + sizeof sig, 0); /* flags */
    w = put_i32(w, 0);              /* header extension length */
    rec_end(b, w);
}

/* End the COPY whose data is in b (the trailer still to add) and read its
 * result; *dup as drain()'s. */
static halo_status copy_finish(PGconn *c, halo_buf *b, halo_status st,
                               const char *what, bool *dup, halo_err *err)
{
    char *w = rec_begin(b, 0, 0);
    if (w)
        rec_end(b, put_i16(w, -1));
    if (st == HALO_OK)
        st = send_copy(c, b, err);
    halo_buf_free(b);
    if (st != HALO_OK) {
        PQputCopyEnd(c, "could not encode the spans");
        PQclear(PQgetResult(c));
        return st;
    }
    if (PQputCopyEnd(c, NULL) != 1)
        return pgw_fail(c, NULL, "send spans to PostgreSQL", err);
    return drain(c, what, NULL, NULL, dup, err);
}

/* The rows, into `spans` (fast path) or with their ord into the staging
 * table. */
static halo_status copy_rows(PGconn *c, halo_store_rows *const *rows, size_t n,
                             const shtexts *x, bool staging, bool *dup,
                             halo_err *err)
{
    halo_buf b = HALO_BUF_INIT;
    halo_status st = HALO_OK;
    int32_t ord = 0;
    copy_header(&b);
    for (size_t i = 0; st == HALO_OK && i < n; i++) {
        const sq_rows *rs = (const sq_rows *)rows[i];
        for (size_t j = 0; st == HALO_OK && j < rs->n; j++) {
            int64_t ref[2] = {text_ref(x, (size_t)ord, 0),
                              text_ref(x, (size_t)ord, 1)};
            put_row(&b, staging, ord++, &rs->rows[j], ref);
            if (b.len >= FLUSH_AT)
                st = send_copy(c, &b, err);
        }
    }
    return copy_finish(c, &b, st,
                       staging ? "copy spans into the staging table"
                               : "insert spans",
                       dup, err);
}

static halo_status copy_deltas(PGconn *c, const deltas *d, halo_err *err)
{
    halo_buf b = HALO_BUF_INIT;
    halo_status st = HALO_OK;
    copy_header(&b);
    for (size_t i = 0; st == HALO_OK && i < d->n; i++) {
        put_delta(&b, &d->v[i]);
        if (b.len >= FLUSH_AT)
            st = send_copy(c, &b, err);
    }
    return copy_finish(c, &b, st, "copy the traces' deltas", NULL, err);
}

/* ---- write_rows ---------------------------------------------------------- */

/* Send sql and read its results (drain(): up to a COPY FROM STDIN when
 * copy_in is not NULL). */
static halo_status send_sql(PGconn *c, const char *sql, const char *what,
                            bool *copy_in, halo_err *err)
{
    if (PQstatus(c) != CONNECTION_OK)
        return pgw_fail(c, NULL, "write spans", err);
    if (!PQsendQuery(c, sql))
        return pgw_fail(c, NULL, what, err);
    return drain(c, what, copy_in, NULL, NULL, err);
}

/* Send sql, which has no COPY, and read its results. */
static halo_status run(PGconn *c, const char *sql, const char *what,
                       halo_err *err)
{
    return send_sql(c, sql, what, NULL, err);
}

/* Send sql, whose last statement is a COPY FROM STDIN, and wait for it. */
static halo_status start_copy(PGconn *c, const char *sql, const char *what,
                              halo_err *err)
{
    bool copy_in = false;
    halo_status st = send_sql(c, sql, what, &copy_in, err);
    if (st == HALO_OK && !copy_in)
        st = halo_fail(err, HALO_EIO,
                       "could not %s: the server did not start the COPY", what);
    return st;
}

/* What each result of SQL_APPLY is, for the error message. */
enum { R_SET1, R_S1, R_SET2, R_S2, R_S3, R_S4, R_COMMIT, R_N_ };
static const char *const apply_what[R_N_] = {
    "plan the span insert",
    "insert spans",
    "plan the rollup",
    "update the traces rollup",
    "update the identity of a trace's spans",
    "count the inserted spans",
    "commit",
};

/* SQL_APPLY (or, fast, SQL_APPLY_FAST: its results from R_SET2 on);
 * *inserted from S4, *fixed from S3's row count. */
static halo_status apply(PGconn *c, bool fast, int64_t *inserted,
                         int64_t *fixed, halo_err *err)
{
    if (!PQsendQuery(c, fast ? SQL_APPLY_FAST : SQL_APPLY))
        return pgw_fail(c, NULL, "store spans", err);
    halo_status st = HALO_OK;
    PGresult *res;
    int i = fast ? R_SET2 : 0;
    for (; (res = PQgetResult(c)) != NULL; i++) {
        ExecStatusType s = PQresultStatus(res);
        if (st == HALO_OK && s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
            st = pgw_fail(c, res, apply_what[i < R_N_ ? i : R_COMMIT], err);
        else if (st == HALO_OK && i == R_S3)
            *fixed = strtoll(PQcmdTuples(res), NULL, 10);
        else if (st == HALO_OK && i == R_S4 && PQntuples(res) == 1)
            *inserted = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        if (PQstatus(c) != CONNECTION_OK)
            break;
    }
    if (st == HALO_OK && i != R_N_)
        st = pgw_fail(c, NULL, "store spans", err);
    return st;
}

/* The fast path's rollup: the deltas of every row into halo_touched_v3, then
 * S2..S4 and COMMIT. */
static halo_status apply_fast(PGconn *c, halo_store_rows *const *rows, size_t n,
                              size_t total, halo_write_stats *ws, halo_err *err)
{
    deltas d = {0};
    halo_status st = deltas_build(&d, rows, n, total, err);
    if (st == HALO_OK)
        st = start_copy(c, SQL_TOUCHED, "begin the traces rollup", err);
    if (st == HALO_OK)
        st = copy_deltas(c, &d, err);
    if (st == HALO_OK)
        st = apply(c, true, &ws->inserted, &ws->fixed_up, err);
    deltas_free(&d);
    return st;
}

static atomic_uint_fast64_t fallbacks;

uint64_t halo_pg_write_fallbacks(void)
{
    return (uint64_t)atomic_load(&fallbacks);
}

/* The staging path, after the fast path's COPY met a stored span. */
static halo_status apply_staged(PGconn *c, halo_store_rows *const *rows,
                                size_t n, const shtexts *x,
                                halo_write_stats *ws, halo_err *err)
{
    atomic_fetch_add(&fallbacks, 1);
    halo_status st =
        start_copy(c, SQL_FALLBACK, "begin writing spans again", err);
    if (st == HALO_OK)
        st = copy_rows(c, rows, n, x, true, NULL, err);
    if (st == HALO_OK)
        st = apply(c, false, &ws->inserted, &ws->fixed_up, err);
    return st;
}

halo_status halo_pg_write_rows(PGconn *c, halo_store_rows *const *rows,
                               size_t n, halo_write_stats *stats, halo_err *err)
{
    halo_write_stats ws = {0, 0, 0};
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ((const sq_rows *)rows[i])->n;
    if (total > INT32_MAX)
        return halo_fail(err, HALO_ETOOBIG,
                         "cannot write %zu spans in one transaction", total);
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
        return halo_fail(err, HALO_EINVAL,
                         "cannot write spans: the connection is inside a "
                         "transaction");
    if (total == 0) {
        if (stats)
            *stats = ws;
        return HALO_OK;
    }
    bool dup = false;
    shtexts x;
    halo_status st = texts_build(&x, rows, n, total, err);
    if (st == HALO_OK && x.n == 0)
        st = start_copy(c, SQL_BEGIN, "begin writing spans", err);
    else if (st == HALO_OK) {
        /* the texts before the savepoint: the staging path keeps them */
        st = run(c, SQL_BEGIN_OPEN, "begin writing spans", err);
        if (st == HALO_OK)
            st = share_texts(c, &x, err);
        if (st == HALO_OK)
            st = start_copy(c, SQL_BEGIN_COPY, "begin writing spans", err);
    }
    if (st == HALO_OK)
        st = copy_rows(c, rows, n, &x, false, &dup, err);
    if (st == HALO_OK)
        st = apply_fast(c, rows, n, total, &ws, err);
    else if (dup && PQstatus(c) == CONNECTION_OK)
        st = apply_staged(c, rows, n, &x, &ws, err);
    texts_free(&x);
    if (st != HALO_OK) {
        rollback(c);
        return st;
    }
    ws.duplicates = (int64_t)total - ws.inserted;
    if (stats)
        *stats = ws;
    return HALO_OK;
}

/* ---- prepare, batches ---------------------------------------------------- */

bool halo_pg_utf8(PGconn *c)
{
    /* both: the positions count the characters of the text the server
     * receives (halo_pg_connect fixes client_encoding to UTF8; a role's
     * setting could still change it later in the session) */
    const char *srv = c ? PQparameterStatus(c, "server_encoding") : NULL;
    const char *cli = c ? PQparameterStatus(c, "client_encoding") : NULL;
    return srv && cli && strcmp(srv, "UTF8") == 0 && strcmp(cli, "UTF8") == 0;
}

halo_status halo_pg_prepare(const halo_batch *b, bool cut_io,
                            halo_store_rows **out, halo_err *err)
{
    return sq_prepare_rows(b, cut_io, out, err);
}

void halo_pg_free_rows(halo_store_rows *rows)
{
    sq_free_rows(NULL, rows);
}

halo_status halo_pg_write_batches(PGconn *c, const halo_batch *const *batches,
                                  size_t n, halo_write_stats *stats,
                                  halo_err *err)
{
    halo_store_rows **rows = calloc(n ? n : 1, sizeof *rows);
    if (!rows)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    halo_status st = HALO_OK;
    bool cut_io = halo_pg_utf8(c);
    for (size_t i = 0; st == HALO_OK && i < n; i++)
        st = halo_pg_prepare(batches[i], cut_io, &rows[i], err);
    if (st == HALO_OK)
        st = halo_pg_write_rows(c, rows, n, stats, err);
    for (size_t i = 0; i < n; i++)
        halo_pg_free_rows(rows[i]);
    free(rows);
    return st;
}

halo_status halo_pg_write_batch(PGconn *c, const halo_batch *b, halo_err *err)
{
    return halo_pg_write_batches(c, &b, 1, NULL, err);
}
