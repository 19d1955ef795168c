/*
 * pg_tools.c -- the analyzer's `sql` and `search` tools on PostgreSQL
 * (store.h: sql_query, search_spans).
 *
 * sql_query runs on the store's own connection, inside one transaction
 * that is always rolled back, so nothing outlives the call:
 *
 *   BEGIN ISOLATION LEVEL REPEATABLE READ, READ WRITE   (a read-only
 *       store's default_transaction_read_only is overridden for the temp
 *       views only: nothing else is written, and all is rolled back)
 *   SELECT nspname FROM pg_namespace       (for the lexical check)
 *   CREATE TEMP VIEW spans / traces        (the scope's rows, the columns
 *       and order of SQLite's tables, times as ISO text from *_unix_nano)
 *   SET LOCAL search_path = pg_temp, pg_catalog;  (unqualified names find
 *       the temp views first and nothing of the store's schema)
 *   SET LOCAL transaction_read_only = on; SET LOCAL statement_timeout
 *   DECLARE halo_sql NO SCROLL CURSOR FOR <the statement>
 *   FETCH (in batches, up to max_rows + 1), MOVE (counting the rest)
 *   ROLLBACK
 *
 * The READ ONLY transaction refuses every write the server knows of; the
 * lexical check (tl_lex) before it refuses, outside strings and comments:
 *   - anything but one SELECT / WITH / VALUES statement (a `;` followed by
 *     more text, a first word other than those);
 *   - the words INSERT UPDATE DELETE MERGE TRUNCATE CREATE DROP ALTER
 *     GRANT REVOKE COPY INTO LOCK and FOR SHARE/KEY/NO (locking clauses,
 *     data-modifying CTEs, SELECT INTO);
 *   - X.Y where X names a schema of the database (or public,
 *     information_schema, pg_*): tables are reachable only unqualified,
 *     and the search_path holds only pg_temp (the views) and pg_catalog;
 *   - any name starting with pg_ (pg_catalog's relations and functions:
 *     pg_read_file, pg_ls_dir, pg_sleep, pg_advisory_lock, pg_stat_*...) or
 *     halo_ (the writer's session temp tables);
 *   - functions that read files or the server or run SQL text that the
 *     lexical check cannot see: lo_* / loread / lowrite, dblink*,
 *     set_config, current_setting, the query/table/schema/database/cursor
 *     _to_xml* family, ts_stat, ts_rewrite, nextval/setval/currval/lastval,
 *     txid_current*, gin_clean_pending_list, brin_*summarize*;
 *   - U& escapes (they could spell any of the above).
 * Rows are fetched from a cursor rather than by wrapping the statement in
 * `SELECT * FROM (...) LIMIT n`: the statement's own ORDER BY is kept as
 * written and VALUES or WITH need no special case.
 *
 * search_spans: one query over the scope's traces (index (agent_id,
 * start_time)) joined to their spans (day partitions pruned from the
 * window's start), matching strpos(translate(col, A-Z, a-z), lower(q)):
 * exactly SQLite's ASCII case-insensitive LIKE, with every byte of the
 * query literal (ILIKE would fold non-ASCII letters by the database's
 * locale, and the backends would then find different hits).
 */
#include "pg_int.h"
#include "pg_schema.h"
#include "store_tools.h"

#include "../core/clock.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ns -> the ISO text SQLite stores ("2025-11-16T09:00:00.123456789Z"). */
#define ISO(c)                                                                 \
    "(to_char(to_timestamp(" c " / 1000000000) AT TIME ZONE 'UTC', "           \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.') || lpad((" c " % 1000000000)::text, 9, "    \
    "'0') || 'Z')"

static const char SPAN_COLS[] =
    "s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind, s.span_type, "
    "s.agent_id, s.agent_name, s.session_id, s.user_id, s.service_name, "
    "s.model, s.tool_name, " ISO("s.start_unix_nano") " AS start_time, " ISO(
        "s.end_unix_nano") " AS end_time, s.duration_ms, s.status_code, "
                           "s.status_message, s.input, s.output, "
                           "s.input_tokens, s.output_tokens, s.cost, "
                           "s.attributes, s.events, s.resource, "
                           "s.start_unix_nano, s.end_unix_nano, "
                           "s.trace_state, s.flags, s.links, s.scope, "
                           "s.resource_schema_url, "
                           "s.resource_dropped_attributes_count, "
                           "s.dropped_attributes_count, "
                           "s.dropped_events_count, s.dropped_links_count, "
                           "s.fallback_mask, s.value_types";

static const char TRACE_COLS[] =
    "t.trace_id, t.agent_id, t.agent_name, t.session_id, t.user_id, "
    "t.root_name, " ISO("t.start_unix_nano") " AS start_time, " ISO(
        "t.end_unix_nano") " AS end_time, t.duration_ms, t.span_count, "
                           "t.error_count, t.llm_calls, t.tool_calls, "
                           "t.input_tokens, t.output_tokens, t.cost, "
                           "t.start_unix_nano, t.end_unix_nano, "
                           "t.root_span_id, t.identity_pending, "
                           "t.priced_spans";

#define FETCH_BATCH 1000

/* ---- the lexical check ------------------------------------------------- */

typedef struct toks {
    tl_tok *v;
    size_t n, cap;
} toks;

static bool toks_push(toks *t, const tl_tok *tok)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        tl_tok *v = realloc(t->v, cap * sizeof *v);
        if (!v)
            return false;
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n++] = *tok;
    return true;
}

static bool in_list(const char *w, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(w, list[i]) == 0)
            return true;
    return false;
}

#define IN(w, arr) in_list(w, arr, sizeof arr / sizeof *arr)

static const char *const WRITES[] = {
    "insert", "update", "delete", "merge", "truncate", "create", "drop",
    "alter",  "grant",  "revoke", "copy",  "into",     "lock"};
static const char *const LOCKS[] = {"update", "share", "key", "no"};
static const char *const DENY_FN[] = {"set_config",
                                      "current_setting",
                                      "query_to_xml",
                                      "query_to_xmlschema",
                                      "query_to_xml_and_xmlschema",
                                      "cursor_to_xml",
                                      "cursor_to_xmlschema",
                                      "table_to_xml",
                                      "table_to_xmlschema",
                                      "table_to_xml_and_xmlschema",
                                      "schema_to_xml",
                                      "schema_to_xmlschema",
                                      "schema_to_xml_and_xmlschema",
                                      "database_to_xml",
                                      "database_to_xmlschema",
                                      "database_to_xml_and_xmlschema",
                                      "ts_stat",
                                      "ts_rewrite",
                                      "nextval",
                                      "setval",
                                      "currval",
                                      "lastval",
                                      "txid_current",
                                      "txid_current_if_assigned",
                                      "gin_clean_pending_list",
                                      "brin_summarize_new_values",
                                      "brin_summarize_range",
                                      "brin_desummarize_range",
                                      "loread",
                                      "lowrite"};

static bool prefixed(const char *w, const char *p)
{
    return strncmp(w, p, strlen(p)) == 0;
}

static bool is_name(const tl_tok *t)
{
    return t->kind == TL_WORD || t->kind == TL_QIDENT;
}

static bool is_punct(const tl_tok *t, char c)
{
    return t->kind == TL_PUNCT && t->c == c;
}

/* The schemas of the database (the lexical check's qualified names). */
typedef struct schemas {
    PGresult *res;
} schemas;

static bool is_schema(const schemas *sc, const char *w)
{
    if (strcmp(w, "public") == 0 || strcmp(w, "information_schema") == 0 ||
        prefixed(w, "pg_"))
        return true;
    for (int i = 0; sc->res && i < PQntuples(sc->res); i++)
        if (strcmp(w, PQgetvalue(sc->res, i, 0)) == 0)
            return true;
    return false;
}

/* One name token against the rules; false with why set when refused. */
static bool check_name(const schemas *sc, const tl_tok *t, const tl_tok *next,
                       char *why, size_t cap)
{
    const char *w = t->text;
    bool call = next && is_punct(next, '(');
    if (next && is_punct(next, '.') && is_schema(sc, w)) {
        snprintf(why, cap,
                 "schema-qualified names are not allowed: query "
                 "spans and traces");
        return false;
    }
    if (t->kind == TL_WORD && IN(w, WRITES)) {
        snprintf(why, cap, "write access is not allowed");
        return false;
    }
    if (prefixed(w, "pg_") || prefixed(w, "halo_")) {
        if (call)
            snprintf(why, cap, "function %s is not allowed", w);
        else
            snprintf(why, cap,
                     "table \"%s\" is not available: query spans and traces",
                     w);
        return false;
    }
    if (call &&
        (IN(w, DENY_FN) || prefixed(w, "lo_") || prefixed(w, "dblink"))) {
        snprintf(why, cap, "function %s is not allowed", w);
        return false;
    }
    return true;
}

static bool check_first(const toks *tk, char *why, size_t cap)
{
    size_t i = 0;
    while (i < tk->n && is_punct(&tk->v[i], '('))
        i++;
    const tl_tok *t = i < tk->n ? &tk->v[i] : NULL;
    if (t && t->kind == TL_WORD &&
        (strcmp(t->text, "select") == 0 || strcmp(t->text, "with") == 0 ||
         strcmp(t->text, "values") == 0))
        return true;
    if (!t || t->kind == TL_END)
        snprintf(why, cap, "no SQL statement given");
    else if (t->kind == TL_WORD && IN(t->text, WRITES))
        snprintf(why, cap, "write access is not allowed");
    else
        snprintf(why, cap, "only SELECT statements are allowed");
    return false;
}

/* The lexical check; *len the statement's length without its `;`. */
static bool check_sql(const char *sql, const schemas *sc, size_t *len,
                      char *why, size_t cap)
{
    toks tk = {NULL, 0, 0};
    tl_lex lx;
    tl_tok tok;
    bool ok = true;
    tl_lex_init(&lx, sql);
    *len = strlen(sql);
    do {
        tl_lex_next(&lx, &tok);
        if (tok.kind == TL_BAD) {
            snprintf(why, cap, "%s", tok.text);
            ok = false;
        } else if (is_punct(&tok, ';')) {
            *len = tok.pos;
            if (!tl_only_space(sql + tok.pos)) {
                snprintf(why, cap, "only one statement is allowed");
                ok = false;
            }
            break;
        } else if (tok.kind != TL_END && !toks_push(&tk, &tok)) {
            snprintf(why, cap, "out of memory");
            ok = false;
        }
    } while (ok && tok.kind != TL_END);
    if (ok)
        ok = check_first(&tk, why, cap);
    for (size_t i = 0; ok && i < tk.n; i++) {
        const tl_tok *t = &tk.v[i], *next = i + 1 < tk.n ? &tk.v[i + 1] : NULL;
        if (t->kind == TL_WORD && strcmp(t->text, "for") == 0 && next &&
            next->kind == TL_WORD && IN(next->text, LOCKS)) {
            snprintf(why, cap, "write access is not allowed");
            ok = false;
        } else if (is_name(t)) {
            ok = check_name(sc, t, next, why, cap);
        }
    }
    free(tk.v);
    return ok;
}

/* ---- running ----------------------------------------------------------- */

/* A failure of the model's statement as its text (HALO_EINVAL), or the
 * store's failure (lost connection) through pgs_fail. */
static halo_status model_error(pg_store *s, PGresult *res, int64_t timeout_ms,
                               halo_err *err)
{
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (PQstatus(s->conn) != CONNECTION_OK || !code || !msg)
        return pgs_fail(s, res, "run the sql tool", err);
    if (strcmp(code, "57014") == 0)
        return halo_fail(err, HALO_EINVAL,
                         "statement timed out after %" PRId64 " ms",
                         timeout_ms);
    if (strcmp(code, "25006") == 0)
        return halo_fail(err, HALO_EINVAL, "write access is not allowed");
    const char *q1 = strchr(msg, '"'), *q2 = q1 ? strchr(q1 + 1, '"') : NULL;
    if (strcmp(code, "42P01") == 0 && q2)
        return halo_fail(err, HALO_EINVAL,
                         "table \"%.*s\" is not available: query spans and "
                         "traces",
                         (int)(q2 - q1 - 1), q1 + 1);
    return halo_fail(err, HALO_EINVAL, "%s", msg);
}

/* One command; HALO_OK or the model's / the store's error. */
static halo_status exec_cmd(pg_store *s, const char *sql, int64_t timeout_ms,
                            PGresult **keep, halo_err *err)
{
    PGresult *res = PQexec(s->conn, sql);
    ExecStatusType es = PQresultStatus(res);
    halo_status st = HALO_OK;
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK)
        st = model_error(s, res, timeout_ms, err);
    if (keep && st == HALO_OK)
        *keep = res;
    else
        PQclear(res);
    return st;
}

static void append_scope(halo_buf *b, const char *agent_lit, uint64_t since,
                         uint64_t until)
{
    char ts[HALO_ISO_NS_LEN];
    halo_buf_printf(b, "t.agent_id = %s", agent_lit);
    if (since) {
        halo_iso_from_us(since / 1000u, ts);
        halo_buf_printf(b,
                        " AND t.start_time >= '%s' AND t.start_unix_nano >= "
                        "%" PRIu64,
                        ts, since);
    }
    if (until) {
        halo_iso_from_us(until / 1000u + 1, ts);
        halo_buf_printf(b,
                        " AND t.start_time <= '%s' AND t.start_unix_nano < "
                        "%" PRIu64,
                        ts, until);
    }
}

/* The temp views and the session's limits for the statement. */
static halo_status make_views(pg_store *s, const halo_sql_req *r, halo_err *err)
{
    char *lit = PQescapeLiteral(s->conn, r->agent_id, strlen(r->agent_id));
    if (!lit)
        return pgs_fail(s, NULL, "quote the agent id", err);
    halo_buf b = HALO_BUF_INIT;
    halo_buf_printf(&b,
                    "CREATE TEMP VIEW spans AS SELECT %s FROM spans s WHERE "
                    "s.trace_id IN (SELECT t.trace_id FROM traces t WHERE ",
                    SPAN_COLS);
    append_scope(&b, lit, r->since_ns, r->until_ns);
    halo_buf_puts(&b, ")");
    if (r->since_ns) {
        char ts[HALO_ISO_NS_LEN];
        halo_iso_from_us(r->since_ns / 1000u, ts);
        halo_buf_printf(&b, " AND s.start_time >= '%s'", ts);
    }
    halo_buf_printf(&b,
                    "; CREATE TEMP VIEW traces AS SELECT %s FROM traces t "
                    "WHERE ",
                    TRACE_COLS);
    append_scope(&b, lit, r->since_ns, r->until_ns);
    halo_buf_puts(&b, "; SET LOCAL search_path = pg_temp, pg_catalog; "
                      "SET LOCAL transaction_read_only = on");
    PQfreemem(lit);
    halo_status st = HALO_OK;
    if (b.oom) {
        st = halo_fail(err, HALO_ENOMEM, "out of memory");
    } else {
        PGresult *res = PQexec(s->conn, b.data);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            st = pgs_fail(s, res, "prepare the sql tool", err);
        PQclear(res);
    }
    halo_buf_free(&b);
    return st;
}

static halo_status set_timeout(pg_store *s, int64_t ms, halo_err *err)
{
    char sql[80];
    snprintf(sql, sizeof sql, "SET LOCAL statement_timeout = %" PRId64,
             ms < 1 ? 1 : ms);
    return exec_cmd(s, sql, ms, NULL, err);
}

static void pg_cell(tl_text *t, const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) {
        tl_cell_null(t);
        return;
    }
    const char *v = PQgetvalue(res, row, col);
    switch (PQftype(res, col)) {
    case 20:   /* int8 */
    case 21:   /* int2 */
    case 23:   /* int4 */
    case 1700: /* numeric: integers as printed, fractions as doubles */
        tl_cell_number_text(t, v);
        break;
    case 700: /* float4 */
    case 701: /* float8 */
        tl_cell_double(t, strcmp(v, "Infinity") == 0    ? INFINITY
                          : strcmp(v, "-Infinity") == 0 ? -INFINITY
                                                        : strtod(v, NULL));
        break;
    case 16: /* bool: SQLite's 1 / 0 */
        tl_cell_text(t, v[0] == 't' ? "1" : "0", 1);
        break;
    default:
        tl_cell_text(t, v, (size_t)PQgetlength(res, row, col));
    }
}

static int64_t remaining_ms(uint64_t deadline)
{
    uint64_t now = halo_mono_ns();
    return now >= deadline ? 0 : (int64_t)((deadline - now) / 1000000u);
}

/* FETCH until max_rows + 1 rows were seen or the result ended, then MOVE
 * to count what is left (up to TL_COUNT_MORE past the shown rows). */
static halo_status fetch_rows(pg_store *s, const halo_sql_req *r,
                              uint64_t deadline, tl_text *t, halo_err *err)
{
    bool header = false, ended = false;
    while (!ended && t->total < r->max_rows + 1) {
        char sql[80];
        int64_t want = r->max_rows + 1 - (t->total < 0 ? 0 : t->total);
        snprintf(sql, sizeof sql, "FETCH FORWARD %" PRId64 " FROM halo_sql",
                 want < FETCH_BATCH ? want : FETCH_BATCH);
        PGresult *res = NULL;
        halo_status st = exec_cmd(s, sql, r->timeout_ms, &res, err);
        if (st != HALO_OK)
            return st;
        int nf = PQnfields(res), nt = PQntuples(res);
        for (int c = 0; !header && c < nf; c++)
            tl_cell_text(t, PQfname(res, c), strlen(PQfname(res, c)));
        if (!header)
            tl_row_end(t);
        header = true;
        for (int i = 0; i < nt; i++) {
            if (t->full) {
                tl_row_count(t);
                continue;
            }
            for (int c = 0; c < nf; c++)
                pg_cell(t, res, i, c);
            tl_row_end(t);
        }
        ended = nt == 0 || nt < (want < FETCH_BATCH ? want : FETCH_BATCH);
        PQclear(res);
    }
    if (ended || tl_counted_enough(t))
        return HALO_OK;
    int64_t left = remaining_ms(deadline);
    int64_t more = TL_COUNT_MORE - (t->total - t->shown);
    char sql[80];
    snprintf(sql, sizeof sql, "MOVE FORWARD %" PRId64 " IN halo_sql", more);
    PGresult *res = NULL;
    halo_err ignored;
    if (left <= 0 || set_timeout(s, left, &ignored) != HALO_OK ||
        exec_cmd(s, sql, left, &res, &ignored) != HALO_OK) {
        t->partial = true; /* counting ran out of time */
        return PQstatus(s->conn) == CONNECTION_OK
                   ? HALO_OK
                   : pgs_fail(s, NULL, "run the sql tool", err);
    }
    t->total += strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return HALO_OK;
}

static halo_status run_sql(pg_store *s, const halo_sql_req *r, tl_text *t,
                           halo_err *err)
{
    uint64_t deadline = halo_mono_ns() + (uint64_t)r->timeout_ms * 1000000u;
    schemas sc = {NULL};
    char why[256];
    size_t len = 0;
    PGresult *res =
        PQexec(s->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ WRITE");
    halo_status st = PQresultStatus(res) == PGRES_COMMAND_OK
                         ? HALO_OK
                         : pgs_fail(s, res, "run the sql tool", err);
    PQclear(res);
    if (st == HALO_OK) {
        sc.res = PQexec(s->conn, "SELECT nspname FROM pg_namespace");
        if (PQresultStatus(sc.res) != PGRES_TUPLES_OK)
            st = pgs_fail(s, sc.res, "list the schemas", err);
    }
    if (st == HALO_OK && !check_sql(r->sql, &sc, &len, why, sizeof why))
        st = halo_fail(err, HALO_EINVAL, "%s", why);
    PQclear(sc.res);
    if (st == HALO_OK)
        st = make_views(s, r, err);
    if (st == HALO_OK)
        st = set_timeout(s, remaining_ms(deadline), err);
    if (st == HALO_OK) {
        halo_buf b = HALO_BUF_INIT;
        halo_buf_puts(&b, "DECLARE halo_sql NO SCROLL CURSOR FOR ");
        halo_buf_append(&b, r->sql, len);
        if (b.oom)
            st = halo_fail(err, HALO_ENOMEM, "out of memory");
        else
            st = exec_cmd(s, b.data, r->timeout_ms, NULL, err);
        halo_buf_free(&b);
    }
    if (st == HALO_OK)
        st = fetch_rows(s, r, deadline, t, err);
    return st;
}

halo_status pgt_sql_query(halo_store *base, const halo_sql_req *req,
                          halo_arena *arena, char **text, halo_err *err)
{
    pg_store *s = (pg_store *)base;
    halo_sql_req r;
    tl_text t;
    *text = NULL;
    halo_status st = tl_sql_defaults(req, &r, err);
    if (st != HALO_OK)
        return st;
    st = pgs_ready(s, "run the sql tool", err);
    if (st != HALO_OK)
        return st;
    tl_text_init(&t, &r);
    st = run_sql(s, &r, &t, err);
    if (PQstatus(s->conn) == CONNECTION_OK &&
        PQtransactionStatus(s->conn) != PQTRANS_IDLE)
        PQclear(PQexec(s->conn, "ROLLBACK"));
    if (st == HALO_OK)
        st = tl_text_finish(&t, arena, text, err);
    tl_text_free(&t);
    return st;
}

/* ---- search ---------------------------------------------------------------
 */

#define LOWER_ASCII(c)                                                         \
    "translate(" c ", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', "                          \
    "'abcdefghijklmnopqrstuvwxyz')"

halo_status pgt_search_spans(halo_store *base, const halo_search_req *req,
                             halo_arena *arena, halo_search_hit **hits,
                             size_t *n, halo_err *err)
{
    pg_store *s = (pg_store *)base;
    halo_search_req r;
    *hits = NULL;
    *n = 0;
    halo_status st = tl_search_defaults(req, &r, err);
    if (st != HALO_OK)
        return st;
    st = pgs_ready(s, "search spans", err);
    if (st != HALO_OK)
        return st;
    size_t cap = (size_t)r.limit;
    *hits = halo_arena_calloc(arena, cap, sizeof **hits);
    char *lower = strdup(r.query);
    halo_buf b = HALO_BUF_INIT;
    PGresult *res = NULL;
    if (!*hits || !lower) {
        st = halo_fail(err, HALO_ENOMEM, "out of memory");
        goto cleanup;
    }
    for (char *p = lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    halo_buf_puts(&b, "SELECT s.trace_id, s.span_id, s.name, "
                      "s.start_unix_nano, s.input, s.output, "
                      "s.status_message FROM traces t JOIN spans s ON "
                      "s.trace_id = t.trace_id WHERE ");
    append_scope(&b, "$1", r.since_ns, r.until_ns);
    if (r.since_ns) {
        char ts[HALO_ISO_NS_LEN];
        halo_iso_from_us(r.since_ns / 1000u, ts);
        halo_buf_printf(&b, " AND s.start_time >= '%s'", ts);
    }
    halo_buf_printf(
        &b,
        " AND (strpos(" LOWER_ASCII(
            "s.input") ", $2) > 0 OR "
                       "strpos(" LOWER_ASCII(
                           "s.output") ", $2) > 0 OR "
                                       "strpos(" LOWER_ASCII(
                                           "s.status_message") ", $2) > 0) "
                                                               "ORDER BY "
                                                               "s.start_unix_"
                                                               "nano, "
                                                               "s.trace_id "
                                                               "COLLATE \"C\", "
                                                               "s.span_id "
                                                               "COLLATE \"C\" "
                                                               "LIMIT %zu",
        cap);
    if (b.oom) {
        st = halo_fail(err, HALO_ENOMEM, "out of memory");
        goto cleanup;
    }
    const char *params[2] = {r.agent_id, lower};
    res = PQexecParams(s->conn, b.data, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        st = pgs_fail(s, res, "search spans", err);
        goto cleanup;
    }
    for (int i = 0; i < PQntuples(res) && *n < cap && st == HALO_OK; i++) {
        const char *f[3];
        size_t lens[3];
        for (int k = 0; k < 3; k++)
            f[k] = pgr_value(res, i, 4 + k, &lens[k]);
        st =
            tl_add_hits(arena, &r, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                        PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2),
                        strtoull(PQgetvalue(res, i, 3), NULL, 10), f, lens,
                        *hits, cap, n, err);
    }
cleanup:
    PQclear(res);
    halo_buf_free(&b);
    free(lower);
    return st;
}
