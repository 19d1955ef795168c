/*
 * store_tools.h -- the backend-neutral half of the analyzer's `sql` and
 * `search` tools (store.h: sql_query, search_spans), shared by
 * sqlite_tools.c and pg_tools.c so both give the same text:
 *
 *   tl_text     the result as text for the model: header, tab-separated
 *               rows, escaped and cut cells, one number format for both
 *               databases, the row and byte caps and the footer;
 *   tl_lex      a small SQL lexer (strings, quoted identifiers, dollar
 *               quotes, nested comments) for PostgreSQL's lexical checks
 *               and SQLite's "one statement" check;
 *   tl_find_ci  ASCII case-insensitive search and the hit snippets.
 *
 * Not for use outside storage/.
 */
#ifndef HALO_STORE_TOOLS_H
#define HALO_STORE_TOOLS_H

#include "../core/buf.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults of halo_sql_req / halo_search_req. */
#define TL_MAX_ROWS 100
#define TL_MAX_BYTES 16384
#define TL_MAX_CELL 500
#define TL_TIMEOUT_MS 5000
#define TL_SEARCH_LIMIT 20
#define TL_SEARCH_MAX 1000 /* limits above this are cut to it */
#define TL_SNIPPET 160
/* Rows counted past the last one shown before the footer says "M+". */
#define TL_COUNT_MORE 10000

/* req with its defaults applied; HALO_EINVAL when the scope or the
 * statement is missing. */
halo_status tl_sql_defaults(const halo_sql_req *req, halo_sql_req *out,
                            halo_err *err);
halo_status tl_search_defaults(const halo_search_req *req, halo_search_req *out,
                               halo_err *err);

/* ---- the result text ---------------------------------------------------- */

typedef struct tl_text {
    halo_buf out; /* header and the rows shown */
    halo_buf row; /* the row being built */
    size_t max_bytes, max_cell;
    int64_t max_rows;
    int64_t shown; /* rows in out */
    int64_t total; /* rows seen (shown and counted) */
    int ncells;    /* cells in the current row */
    bool full;     /* no more rows are shown: only counted */
    bool partial;  /* counting stopped early: the total is a lower bound */
} tl_text;

void tl_text_init(tl_text *t, const halo_sql_req *req);
void tl_text_free(tl_text *t);
/* The header: one call per column name, then tl_row_end(). */
void tl_cell_text(tl_text *t, const char *p, size_t n);
void tl_cell_null(tl_text *t);
void tl_cell_int(tl_text *t, int64_t v);
void tl_cell_double(tl_text *t, double v);
/* A number PostgreSQL printed (numeric, float): integers as they are,
 * anything with a fraction or exponent through tl_cell_double. */
void tl_cell_number_text(tl_text *t, const char *s);
/* End of the header (the first call) or of a row: the row is shown when
 * max_rows and max_bytes allow, else only counted. */
void tl_row_end(tl_text *t);
/* A row that is only counted (once full). */
void tl_row_count(tl_text *t);
/* True once the rows past the ones shown reach TL_COUNT_MORE: stop (and
 * the footer says "M+"). */
bool tl_counted_enough(const tl_text *t);
/* The footer appended; *text the whole in arena. HALO_ENOMEM on failure. */
halo_status tl_text_finish(tl_text *t, halo_arena *arena, char **text,
                           halo_err *err);

/* Doubles as both backends print them: the shortest of %.15g..%.17g that
 * reads back exactly, ".0" added to integral values, NaN, Inf, -Inf. */
void tl_format_double(double v, char out[40]);

/* ---- the lexer ---------------------------------------------------------- */

typedef enum {
    TL_END = 0,
    TL_WORD,   /* unquoted identifier or keyword, lower-cased in tok.text */
    TL_QIDENT, /* "quoted identifier", unescaped in tok.text */
    TL_STRING, /* '...', E'...', $tag$...$tag$ */
    TL_NUMBER,
    TL_PARAM, /* $1 */
    TL_PUNCT, /* one byte in tok.c */
    TL_BAD,   /* unterminated string/comment, U& escapes: tok.text says */
} tl_kind;

typedef struct tl_tok {
    tl_kind kind;
    char c;
    char text[64]; /* words and identifiers, cut to 63 bytes */
    size_t pos;    /* offset of the token in the statement */
    size_t end;    /* offset just past it */
} tl_tok;

typedef struct tl_lex {
    const char *s;
    size_t n, i;
} tl_lex;

void tl_lex_init(tl_lex *lx, const char *s);
/* The next token, skipping white space and comments. */
void tl_lex_next(tl_lex *lx, tl_tok *tok);
/* True when s holds only white space, comments and semicolons. */
bool tl_only_space(const char *s);

/* ---- search ------------------------------------------------------------- */

/* The first offset of needle (n bytes) in hay (m bytes), ASCII letters
 * matching either case; SIZE_MAX when absent. */
size_t tl_find_ci(const char *hay, size_t m, const char *needle, size_t n);
/* About width bytes of text (len bytes) around [off, off + qlen), cut at
 * UTF-8 character boundaries, "..." where the text goes on; in arena. */
char *tl_snippet(halo_arena *arena, const char *text, size_t len, size_t off,
                 size_t qlen, size_t width);
/* Append a hit for each field of one span that holds req->query, until
 * *n reaches cap. fields[3]: input, output, status_message (NULL: none). */
halo_status tl_add_hits(halo_arena *arena, const halo_search_req *req,
                        const char *trace_id, const char *span_id,
                        const char *name, uint64_t start_ns,
                        const char *const fields[3], const size_t lens[3],
                        halo_search_hit *hits, size_t cap, size_t *n,
                        halo_err *err);

#endif
