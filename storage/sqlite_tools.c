/*
 * sqlite_tools.c -- the analyzer's `sql` and `search` tools on SQLite
 * (store.h: sql_query, search_spans).
 *
 * sql_query runs the model's statement on a connection of its own, opened
 * read-only on the store's file for this one call (the store's handle is
 * never touched: temp views there would shadow `spans` and `traces` for
 * the store's own statements). On that connection:
 *
 *   - TEMP VIEWs `spans` and `traces` hold the scope's rows (temp objects
 *     shadow main's views of the same names for unqualified names). Each
 *     reads a TEMP VIEW named halo_scope_<random>_s / _t, which reads
 *     main's tables span_rows and trace_rows: the authorizer is told only
 *     the name of the innermost view (or CTE) behind a read. main's own
 *     `spans` and `traces` (unscoped) have the outer names, and a CTE can
 *     have any name the model can write, so the scope views have names it
 *     cannot know (64 random bits per call). They are
 *     created before the authorizer is installed, with json_each/json_tree
 *     warmed up (their first use writes the connection's schema, which the
 *     authorizer would refuse);
 *   - the authorizer (sqlite3_set_authorizer) allows SELECT, recursive
 *     CTEs, reads of CTEs, reads of main's tables only from inside the
 *     scope views (its 4th argument is the innermost view responsible),
 *     count(*) of a CTE but not of any of main's names,
 * json_each/json_tree, and functions except a deny-list (load_extension,
 * readfile, writefile, edit, fts3_tokenizer); everything else -- any write,
 *     CREATE/DROP/ALTER, ATTACH/DETACH, PRAGMA (also the pragma_* table
 *     functions), transactions, reads of sqlite_master or of any other
 *     table -- is denied, and the first denial's reason is the model's
 *     error text;
 *   - SQLITE_DBCONFIG_DEFENSIVE, no extension loading, no attached
 *     databases (SQLITE_LIMIT_ATTACHED 0), 256 MiB per value;
 *   - sqlite3_prepare_v2 must consume the whole text but for white space,
 *     comments and semicolons (a second statement is refused), and the
 *     statement must be read-only and not an EXPLAIN;
 *   - a progress handler ends the statement at the timeout; the step loop
 *     shows rows within the caps (store_tools.c) and counts the rest.
 *
 * search_spans runs on the store's own handle: the scope's spans by the
 * index trace_rows (agent_id, start_time), a LIKE prefilter (ASCII
 * case-insensitive in SQLite, % _ and \ escaped), then the exact match and
 * the snippet in C (tl_add_hits), so both backends give the same hits.
 */
#include "sqlite_int.h"
#include "store_tools.h"

#include "../core/clock.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACE_COLS                                                             \
    "trace_id, agent_id, agent_name, session_id, user_id, root_name, "         \
    "start_time, end_time, duration_ms, span_count, error_count, llm_calls, "  \
    "tool_calls, input_tokens, output_tokens, cost, start_unix_nano, "         \
    "end_unix_nano, root_span_id, identity_pending, priced_spans"

/* What one call of the sql tool keeps beside its connection. */
typedef struct sqt_ctx {
    char reason[256];  /* the first denial, for the model */
    uint64_t deadline; /* monotonic ns */
    bool timed_out;
    /* the scope views' names, random per call: a name the model could
     * write would let a CTE of that name read main's tables */
    char scope[2][40];
    /* main's tables, views and indexes, "\nname\n..." (sqlite3_free) */
    char *main_names;
} sqt_ctx;

static void deny_reason(sqt_ctx *c, const char *fmt, const char *arg)
{
    if (!c->reason[0])
        snprintf(c->reason, sizeof c->reason, fmt, arg ? arg : "");
}

/* The names the model queries (in main: the unscoped views). */
static bool is_main_view(const char *name)
{
    return name && (strcmp(name, "spans") == 0 || strcmp(name, "traces") == 0);
}

static bool is_scope_view(const sqt_ctx *c, const char *name)
{
    return name &&
           (strcmp(name, c->scope[0]) == 0 || strcmp(name, c->scope[1]) == 0);
}

/* A name in main's schema (or one of SQLite's own tables). */
static bool is_main_name(const sqt_ctx *c, const char *name)
{
    if (!name || strncmp(name, "sqlite_", 7) == 0)
        return true;
    for (const char *p = c->main_names; p && (p = strstr(p, name)); p++)
        if (p[-1] == '\n' && p[strlen(name)] == '\n')
            return true;
    return false;
}

static bool denied_function(const char *f)
{
    static const char *const deny[] = {"load_extension", "readfile",
                                       "writefile", "edit", "fts3_tokenizer"};
    for (size_t i = 0; i < sizeof deny / sizeof *deny; i++)
        if (f && sqlite3_stricmp(f, deny[i]) == 0)
            return true;
    return false;
}

static int authorize_read(sqt_ctx *c, const char *table, const char *column,
                          const char *db, const char *inner)
{
    bool main_db = db && strcmp(db, "main") == 0;
    bool temp_db = db && strcmp(db, "temp") == 0;
    if (temp_db && (is_scope_view(c, table) || is_main_view(table)))
        return SQLITE_OK; /* the model reads a view of the scope */
    if (column && !*column) {
        /* no value read (count(*)), and SQLite has dropped the view
         * context by then; the scope views always read columns, so this
         * is a CTE's (no db, a name main does not have) or a refusal */
        if (!db && !is_main_name(c, table))
            return SQLITE_OK;
    } else if (!db) {
        return SQLITE_OK; /* a CTE or a subquery, no table */
    } else if (main_db && is_scope_view(c, inner)) {
        return SQLITE_OK; /* the scope reads main's tables */
    } else if (main_db && table &&
               (strcmp(table, "json_each") == 0 ||
                strcmp(table, "json_tree") == 0)) {
        return SQLITE_OK;
    }
    /* main.spans (unscoped) reads span_rows: name what the model wrote */
    const char *what = main_db && is_main_view(inner) ? inner : table;
    deny_reason(c, "table \"%s\" is not available: query spans and traces",
                what);
    return SQLITE_DENY;
}

static int authorize(void *ctx, int action, const char *a, const char *b,
                     const char *db, const char *inner)
{
    sqt_ctx *c = ctx;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    case SQLITE_READ:
        return authorize_read(c, a, b, db, inner);
    case SQLITE_FUNCTION:
        if (!denied_function(b))
            return SQLITE_OK;
        deny_reason(c, "function %s is not allowed", b);
        return SQLITE_DENY;
    case SQLITE_PRAGMA:
        deny_reason(c, "PRAGMA is not allowed%s", "");
        return SQLITE_DENY;
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
        deny_reason(c, "ATTACH is not allowed%s", "");
        return SQLITE_DENY;
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
        deny_reason(c, "only SELECT statements are allowed%s", "");
        return SQLITE_DENY;
    default:
        deny_reason(c, "write access is not allowed%s", "");
        return SQLITE_DENY;
    }
}

static int progress(void *ctx)
{
    sqt_ctx *c = ctx;
    if (halo_mono_ns() < c->deadline)
        return 0;
    c->timed_out = true;
    return 1;
}

/* The scope view's span columns: the spans view's, from main's tables. */
#define SCOPE_SPAN_COLS SQ_SPANS_V8_S_COLS("main.")

/* The scope as a WHERE condition over main.trace_rows t (sqlite3_free
 * it). */
static char *scope_sql(const char *agent, uint64_t since, uint64_t until)
{
    char lo[HALO_ISO_NS_LEN], hi[HALO_ISO_NS_LEN];
    sqlite3_str *q = sqlite3_str_new(NULL);
    sqlite3_str_appendf(q, "t.agent_id = %Q", agent);
    if (since) {
        halo_iso_from_ns(since, lo);
        sqlite3_str_appendf(q, " AND t.start_time >= %Q", lo);
    }
    if (until) {
        halo_iso_from_ns(until, hi);
        sqlite3_str_appendf(q, " AND t.start_time < %Q", hi);
    }
    return sqlite3_str_finish(q);
}

/* main's names into c->main_names (before the authorizer). */
static int add_name(void *str, int n, char **vals, char **cols)
{
    (void)cols;
    if (n == 1 && vals[0])
        sqlite3_str_appendf(str, "%s\n", vals[0]);
    return 0;
}

static halo_status open_conn(sq_store *s, const halo_sql_req *r, sqt_ctx *c,
                             sqlite3 **out, halo_err *err)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(s->path, &db, flags, NULL) != SQLITE_OK) {
        halo_status st =
            halo_fail(err, HALO_EIO, "could not open database \"%s\": %s",
                      s->path, db ? sqlite3_errmsg(db) : "no memory");
        sqlite3_close(db);
        return st;
    }
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
    sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 256 * 1024 * 1024);
    sqlite3_busy_timeout(db, 1000);
    uint64_t rnd;
    sqlite3_randomness(sizeof rnd, &rnd);
    snprintf(c->scope[0], sizeof c->scope[0], "halo_scope_%016" PRIx64 "_s",
             rnd);
    snprintf(c->scope[1], sizeof c->scope[1], "halo_scope_%016" PRIx64 "_t",
             rnd);
    char *scope = scope_sql(r->agent_id, r->since_ns, r->until_ns);
    char *sql = NULL;
    if (scope) {
        sql = sqlite3_mprintf(
            "CREATE TEMP VIEW %s AS SELECT t.trace_id AS trace_id,"
            " s.span_id AS span_id, " SCOPE_SPAN_COLS " FROM main.span_rows s"
            " JOIN main.trace_rows t ON t.id = s.trace_rowid WHERE %s;"
            "CREATE TEMP VIEW %s AS SELECT " TRACE_COLS
            " FROM main.trace_rows t WHERE %s;"
            "CREATE TEMP VIEW spans AS SELECT * FROM %s;"
            "CREATE TEMP VIEW traces AS SELECT * FROM %s;"
            "SELECT count(*) FROM json_each('[]'), json_tree('[]');",
            c->scope[0], scope, c->scope[1], scope, c->scope[0], c->scope[1]);
    }
    char *msg = NULL;
    halo_status st = HALO_OK;
    sqlite3_str *names = sqlite3_str_new(NULL);
    sqlite3_str_appendchar(names, 1, '\n');
    if (!sql)
        st = halo_fail(err, HALO_ENOMEM, "out of memory");
    else if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK ||
             sqlite3_exec(db, "SELECT name FROM main.sqlite_master", add_name,
                          names, &msg) != SQLITE_OK)
        st = halo_fail(err, HALO_EIO,
                       "could not prepare the sql tool in database \"%s\": %s",
                       s->path, msg ? msg : sqlite3_errmsg(db));
    c->main_names = sqlite3_str_finish(names);
    if (st == HALO_OK && !c->main_names)
        st = halo_fail(err, HALO_ENOMEM, "out of memory");
    sqlite3_free(msg);
    sqlite3_free(sql);
    sqlite3_free(scope);
    if (st != HALO_OK) {
        sqlite3_close(db);
        return st;
    }
    *out = db;
    return HALO_OK;
}

/* The model's error text for a failed prepare or step. */
static halo_status model_error(sqlite3 *db, const sqt_ctx *c,
                               const halo_sql_req *r, halo_err *err)
{
    if (c->timed_out)
        return halo_fail(err, HALO_EINVAL,
                         "statement timed out after %" PRId64 " ms",
                         r->timeout_ms);
    if (c->reason[0])
        return halo_fail(err, HALO_EINVAL, "%s", c->reason);
    const char *m = sqlite3_errmsg(db);
    if (strncmp(m, "cannot modify ", 14) == 0)
        return halo_fail(err, HALO_EINVAL, "write access is not allowed");
    if (strncmp(m, "no such table: ", 15) == 0)
        return halo_fail(err, HALO_EINVAL,
                         "table \"%s\" is not available: query spans and "
                         "traces",
                         m + 15);
    return halo_fail(err, HALO_EINVAL, "%s", m);
}

static halo_status prepare_model(sqlite3 *db, sqt_ctx *c, const halo_sql_req *r,
                                 sqlite3_stmt **out, halo_err *err)
{
    const char *tail = NULL;
    sqlite3_stmt *stmt = NULL;
    *out = NULL;
    if (sqlite3_prepare_v2(db, r->sql, -1, &stmt, &tail) != SQLITE_OK)
        return model_error(db, c, r, err);
    halo_status st = HALO_OK;
    if (!stmt)
        st = halo_fail(err, HALO_EINVAL, "no SQL statement given");
    else if (tail && !tl_only_space(tail))
        st = halo_fail(err, HALO_EINVAL, "only one statement is allowed");
    else if (sqlite3_stmt_isexplain(stmt))
        st = halo_fail(err, HALO_EINVAL, "only SELECT statements are allowed");
    else if (!sqlite3_stmt_readonly(stmt))
        st = halo_fail(err, HALO_EINVAL, "write access is not allowed");
    if (st != HALO_OK) {
        sqlite3_finalize(stmt);
        return st;
    }
    *out = stmt;
    return HALO_OK;
}

static void blob_cell(tl_text *t, const unsigned char *p, int n)
{
    halo_buf hex = HALO_BUF_INIT;
    halo_buf_puts(&hex, "\\x");
    for (int i = 0; i < n; i++)
        halo_buf_printf(&hex, "%02x", p[i]);
    tl_cell_text(t, hex.data, hex.len);
    halo_buf_free(&hex);
}

static void row_cells(sqlite3_stmt *stmt, int ncol, tl_text *t)
{
    for (int i = 0; i < ncol; i++) {
        switch (sqlite3_column_type(stmt, i)) {
        case SQLITE_NULL:
            tl_cell_null(t);
            break;
        case SQLITE_INTEGER:
            tl_cell_int(t, sqlite3_column_int64(stmt, i));
            break;
        case SQLITE_FLOAT:
            tl_cell_double(t, sqlite3_column_double(stmt, i));
            break;
        case SQLITE_BLOB:
            blob_cell(t, sqlite3_column_blob(stmt, i),
                      sqlite3_column_bytes(stmt, i));
            break;
        default:
            tl_cell_text(t, (const char *)sqlite3_column_text(stmt, i),
                         (size_t)sqlite3_column_bytes(stmt, i));
        }
    }
}

/* Step through the result: rows shown within the caps, the rest counted
 * up to TL_COUNT_MORE. A timeout while counting only makes the total a
 * lower bound. */
static halo_status run(sqlite3 *db, sqlite3_stmt *stmt, sqt_ctx *c,
                       const halo_sql_req *r, tl_text *t, halo_err *err)
{
    int ncol = sqlite3_column_count(stmt);
    for (int i = 0; i < ncol; i++) {
        const char *name = sqlite3_column_name(stmt, i);
        tl_cell_text(t, name ? name : "?", name ? strlen(name) : 1);
    }
    tl_row_end(t);
    for (;;) {
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_DONE)
            return HALO_OK;
        if (rc != SQLITE_ROW) {
            if (t->full && c->timed_out) {
                t->partial = true;
                return HALO_OK;
            }
            return model_error(db, c, r, err);
        }
        if (t->full) {
            tl_row_count(t);
            if (tl_counted_enough(t))
                return HALO_OK;
            continue;
        }
        row_cells(stmt, ncol, t);
        tl_row_end(t);
    }
}

halo_status sq_sql_query(halo_store *base, const halo_sql_req *req,
                         halo_arena *arena, char **text, halo_err *err)
{
    sq_store *s = (sq_store *)base;
    halo_sql_req r;
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    sqt_ctx c = {{0}, 0, false, {{0}}, NULL};
    tl_text t;
    *text = NULL;
    halo_status st = tl_sql_defaults(req, &r, err);
    if (st != HALO_OK)
        return st;
    tl_text_init(&t, &r);
    st = open_conn(s, &r, &c, &db, err);
    if (st != HALO_OK)
        goto cleanup;
    c.deadline = halo_mono_ns() + (uint64_t)r.timeout_ms * 1000000u;
    sqlite3_set_authorizer(db, authorize, &c);
    sqlite3_progress_handler(db, 1000, progress, &c);
    st = prepare_model(db, &c, &r, &stmt, err);
    if (st == HALO_OK)
        st = run(db, stmt, &c, &r, &t, err);
    if (st == HALO_OK)
        st = tl_text_finish(&t, arena, text, err);
cleanup:
    sqlite3_finalize(stmt);
    if (db)
        sqlite3_set_authorizer(db, NULL, NULL);
    sqlite3_close(db);
    sqlite3_free(c.main_names);
    tl_text_free(&t);
    return st;
}

/* ---- search ---------------------------------------------------------------
 */

/* "%text%" with % _ and \ escaped by \ (sqlite3_free it). */
static char *like_pattern(const char *q)
{
    size_t n = strlen(q);
    char *p = sqlite3_malloc64(2 * n + 3);
    if (!p)
        return NULL;
    size_t k = 0;
    p[k++] = '%';
    for (size_t i = 0; i < n; i++) {
        if (q[i] == '%' || q[i] == '_' || q[i] == '\\')
            p[k++] = '\\';
        p[k++] = q[i];
    }
    p[k++] = '%';
    p[k] = '\0';
    return p;
}

halo_status sq_search_spans(halo_store *base, const halo_search_req *req,
                            halo_arena *arena, halo_search_hit **hits,
                            size_t *n, halo_err *err)
{
    sq_store *s = (sq_store *)base;
    halo_search_req r;
    sqlite3_stmt *stmt = NULL;
    char *pattern = NULL, *sql = NULL;
    char lo[HALO_ISO_NS_LEN], hi[HALO_ISO_NS_LEN];
    *hits = NULL;
    *n = 0;
    halo_status st = tl_search_defaults(req, &r, err);
    if (st != HALO_OK)
        return st;
    size_t cap = (size_t)r.limit;
    *hits = halo_arena_calloc(arena, cap, sizeof **hits);
    pattern = like_pattern(r.query);
    sql = sqlite3_mprintf(
        "SELECT t.trace_id, s.span_id, s.name, s.start_unix_nano, s.input, "
        "s.output, s.status_message FROM trace_rows t JOIN span_rows s ON "
        "s.trace_rowid = t.id WHERE t.agent_id = ?1%s%s AND "
        "(s.input LIKE ?4 ESCAPE '\\' OR s.output LIKE ?4 ESCAPE '\\' OR "
        "s.status_message LIKE ?4 ESCAPE '\\') "
        "ORDER BY s.start_unix_nano, t.trace_id, s.span_id",
        r.since_ns ? " AND t.start_time >= ?2" : "",
        r.until_ns ? " AND t.start_time < ?3" : "");
    if (!*hits || !pattern || !sql) {
        st = halo_fail(err, HALO_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (sqlite3_prepare_v2(s->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        st = sq_fail(s, err, "search spans");
        goto cleanup;
    }
    halo_iso_from_ns(r.since_ns, lo);
    halo_iso_from_ns(r.until_ns, hi);
    sqlite3_bind_text(stmt, 1, r.agent_id, -1, SQLITE_STATIC);
    if (r.since_ns)
        sqlite3_bind_text(stmt, 2, lo, -1, SQLITE_STATIC);
    if (r.until_ns)
        sqlite3_bind_text(stmt, 3, hi, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, pattern, -1, SQLITE_STATIC);
    int rc;
    while (*n < cap && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *f[3];
        size_t lens[3], l;
        for (int i = 0; i < 3; i++)
            f[i] = sq_col_text(stmt, 4 + i, &lens[i]);
        const char *tid = sq_col_text(stmt, 0, &l),
                   *sid = sq_col_text(stmt, 1, &l);
        st = tl_add_hits(arena, &r, tid ? tid : "", sid ? sid : "",
                         (const char *)sqlite3_column_text(stmt, 2),
                         (uint64_t)sqlite3_column_int64(stmt, 3), f, lens,
                         *hits, cap, n, err);
        if (st != HALO_OK)
            goto cleanup;
    }
    if (*n < cap && rc != SQLITE_DONE)
        st = sq_fail(s, err, "search spans");
cleanup:
    sqlite3_finalize(stmt);
    sqlite3_free(sql);
    sqlite3_free(pattern);
    return st;
}
