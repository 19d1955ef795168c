/*
 * store_tools.c -- the backend-neutral half of the `sql` and `search`
 * tools (store_tools.h): the result text, the SQL lexer, the snippets.
 *
 * The text is built row by row: a row is assembled in a scratch buffer and
 * moved into the output only when it fits both caps (rows and bytes, with
 * room kept for the footer); from the first row that does not fit, rows are
 * only counted, up to TL_COUNT_MORE past the last shown. The header is
 * always shown. Both backends hand every value to the same cell functions,
 * and numbers go through one formatter, which is why SQLite and PostgreSQL
 * print the same text for the same rows.
 */
#include "store_tools.h"

#include "../core/arena.h"
#include "../core/buf.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room kept for the footer line in max_bytes. */
#define FOOTER_ROOM 64

halo_status tl_sql_defaults(const halo_sql_req *req, halo_sql_req *out,
                            halo_err *err)
{
    *out = *req;
    if (!req->agent_id || !*req->agent_id)
        return halo_fail(err, HALO_EINVAL, "invalid scope: no agent id");
    if (!req->sql || !*req->sql)
        return halo_fail(err, HALO_EINVAL, "no SQL statement given");
    if (out->max_rows <= 0)
        out->max_rows = TL_MAX_ROWS;
    if (out->max_bytes == 0)
        out->max_bytes = TL_MAX_BYTES;
    if (out->max_cell == 0)
        out->max_cell = TL_MAX_CELL;
    if (out->timeout_ms <= 0)
        out->timeout_ms = TL_TIMEOUT_MS;
    return HALO_OK;
}

halo_status tl_search_defaults(const halo_search_req *req, halo_search_req *out,
                               halo_err *err)
{
    *out = *req;
    if (!req->agent_id || !*req->agent_id)
        return halo_fail(err, HALO_EINVAL, "invalid scope: no agent id");
    if (!req->query || !*req->query)
        return halo_fail(err, HALO_EINVAL, "no search text given");
    if (out->limit <= 0)
        out->limit = TL_SEARCH_LIMIT;
    if (out->limit > TL_SEARCH_MAX)
        out->limit = TL_SEARCH_MAX;
    if (out->snippet == 0)
        out->snippet = TL_SNIPPET;
    return HALO_OK;
}

/* ---- the result text ---------------------------------------------------- */

void tl_text_init(tl_text *t, const halo_sql_req *req)
{
    memset(t, 0, sizeof *t);
    t->max_bytes = req->max_bytes;
    t->max_cell = req->max_cell;
    t->max_rows = req->max_rows;
    t->total = -1; /* the header is not a row */
}

void tl_text_free(tl_text *t)
{
    halo_buf_free(&t->out);
    halo_buf_free(&t->row);
}

static void cell_sep(tl_text *t)
{
    if (t->ncells++ > 0)
        halo_buf_putc(&t->row, '\t');
}

static void put_escaped(halo_buf *b, const char *p, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c != '\\' && c != 0x7f)
            continue;
        halo_buf_append(b, p + run, i - run);
        run = i + 1;
        if (c == '\\')
            halo_buf_puts(b, "\\\\");
        else if (c == '\t')
            halo_buf_puts(b, "\\t");
        else if (c == '\n')
            halo_buf_puts(b, "\\n");
        else if (c == '\r')
            halo_buf_puts(b, "\\r");
        else
            halo_buf_printf(b, "\\x%02x", c);
    }
    halo_buf_append(b, p + run, n - run);
}

void tl_cell_text(tl_text *t, const char *p, size_t n)
{
    cell_sep(t);
    size_t keep = halo_utf8_prefix(p, n, t->max_cell);
    put_escaped(&t->row, p, keep);
    if (keep < n)
        halo_buf_puts(&t->row, "...");
}

void tl_cell_null(tl_text *t)
{
    cell_sep(t);
    halo_buf_puts(&t->row, "NULL");
}

void tl_cell_int(tl_text *t, int64_t v)
{
    cell_sep(t);
    halo_buf_printf(&t->row, "%" PRId64, v);
}

void tl_format_double(double v, char out[40])
{
    if (isnan(v)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v > 0 ? "Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, 40, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    if (!strpbrk(out, ".e"))
        strcat(out, ".0");
}

void tl_cell_double(tl_text *t, double v)
{
    char num[40];
    tl_format_double(v, num);
    cell_sep(t);
    halo_buf_puts(&t->row, num);
}

void tl_cell_number_text(tl_text *t, const char *s)
{
    bool integral = s[0] != '\0';
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p) && !(p == s && *p == '-'))
            integral = false;
    if (integral) {
        cell_sep(t);
        halo_buf_puts(&t->row, s);
        return;
    }
    if (strcmp(s, "Infinity") == 0 || strcmp(s, "-Infinity") == 0)
        tl_cell_double(t, s[0] == '-' ? -INFINITY : INFINITY);
    else
        tl_cell_double(t, strtod(s, NULL));
}

void tl_row_count(tl_text *t)
{
    t->total++;
    t->ncells = 0;
    halo_buf_reset(&t->row);
}

void tl_row_end(tl_text *t)
{
    bool header = t->total < 0;
    halo_buf_putc(&t->row, '\n');
    bool fits =
        header || (!t->full && t->shown < t->max_rows &&
                   t->out.len + t->row.len + FOOTER_ROOM <= t->max_bytes);
    if (fits) {
        halo_buf_append(&t->out, t->row.data, t->row.len);
        if (!header)
            t->shown++;
    } else {
        t->full = true;
    }
    tl_row_count(t);
}

bool tl_counted_enough(const tl_text *t)
{
    return t->full && t->total - t->shown >= TL_COUNT_MORE;
}

halo_status tl_text_finish(tl_text *t, halo_arena *arena, char **text,
                           halo_err *err)
{
    int64_t total = t->total < 0 ? 0 : t->total;
    bool more = t->partial || tl_counted_enough(t);
    if (!t->full && !more)
        halo_buf_printf(&t->out, "(%" PRId64 " row%s)\n", total,
                        total == 1 ? "" : "s");
    else
        halo_buf_printf(&t->out,
                        "(showing %" PRId64 " of %" PRId64 "%s rows)\n",
                        t->shown, total, more ? "+" : "");
    if (t->out.oom || t->row.oom)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    *text = halo_arena_strndup(arena, t->out.data, t->out.len);
    if (!*text)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    return HALO_OK;
}

/* ---- the lexer ---------------------------------------------------------- */

void tl_lex_init(tl_lex *lx, const char *s)
{
    lx->s = s;
    lx->n = strlen(s);
    lx->i = 0;
}

static bool word_start(unsigned char c)
{
    return isalpha(c) || c == '_' || c >= 0x80;
}

static bool word_char(unsigned char c)
{
    return word_start(c) || isdigit(c) || c == '$';
}

/* Skip white space and comments; false on an unterminated comment. */
static bool skip_space(tl_lex *lx)
{
    const char *s = lx->s;
    for (;;) {
        while (lx->i < lx->n && isspace((unsigned char)s[lx->i]))
            lx->i++;
        if (lx->i + 1 < lx->n && s[lx->i] == '-' && s[lx->i + 1] == '-') {
            while (lx->i < lx->n && s[lx->i] != '\n')
                lx->i++;
            continue;
        }
        if (lx->i + 1 < lx->n && s[lx->i] == '/' && s[lx->i + 1] == '*') {
            int depth = 0;
            while (lx->i < lx->n) {
                if (lx->i + 1 < lx->n && s[lx->i] == '/' &&
                    s[lx->i + 1] == '*') {
                    depth++;
                    lx->i += 2;
                } else if (lx->i + 1 < lx->n && s[lx->i] == '*' &&
                           s[lx->i + 1] == '/') {
                    lx->i += 2;
                    if (--depth == 0)
                        break;
                } else {
                    lx->i++;
                }
            }
            if (depth > 0)
                return false;
            continue;
        }
        return true;
    }
}

static void bad(tl_tok *tok, const char *why)
{
    tok->kind = TL_BAD;
    snprintf(tok->text, sizeof tok->text, "%s", why);
}

/* A quoted run from s[i] (the opening quote q); backslash escapes when
 * esc. Returns the offset past the closing quote, or 0 when unterminated. */
static size_t quoted_end(const char *s, size_t n, size_t i, char q, bool esc)
{
    for (i++; i < n; i++) {
        if (esc && s[i] == '\\') {
            i++;
            continue;
        }
        if (s[i] == q) {
            if (i + 1 < n && s[i + 1] == q) {
                i++;
                continue;
            }
            return i + 1;
        }
    }
    return 0;
}

/* $tag$...$tag$ from s[i]; 0 when s[i] does not start one or it does not
 * end. *is_tag false when it is not a dollar quote at all. */
static size_t dollar_end(const char *s, size_t n, size_t i, bool *is_tag)
{
    size_t j = i + 1;
    *is_tag = false;
    if (j < n && isdigit((unsigned char)s[j]))
        return 0;
    while (j < n && s[j] != '$' &&
           (word_start((unsigned char)s[j]) || isdigit((unsigned char)s[j])))
        j++;
    if (j >= n || s[j] != '$')
        return 0;
    *is_tag = true;
    size_t tl = j + 1 - i;
    for (size_t k = j + 1; k + tl <= n; k++)
        if (memcmp(s + k, s + i, tl) == 0)
            return k + tl;
    return 0;
}

static void lex_word(tl_lex *lx, tl_tok *tok)
{
    size_t k = 0;
    while (lx->i < lx->n && word_char((unsigned char)lx->s[lx->i])) {
        if (k + 1 < sizeof tok->text)
            tok->text[k++] = (char)tolower((unsigned char)lx->s[lx->i]);
        lx->i++;
    }
    tok->text[k] = '\0';
    tok->kind = TL_WORD;
}

static void lex_qident(tl_lex *lx, tl_tok *tok)
{
    size_t e = quoted_end(lx->s, lx->n, lx->i, '"', false);
    if (!e) {
        bad(tok, "unterminated quoted identifier");
        lx->i = lx->n;
        return;
    }
    size_t k = 0;
    for (size_t j = lx->i + 1; j + 1 < e; j++) {
        if (lx->s[j] == '"')
            j++; /* "" */
        if (k + 1 < sizeof tok->text)
            tok->text[k++] = lx->s[j];
    }
    tok->text[k] = '\0';
    tok->kind = TL_QIDENT;
    lx->i = e;
}

static void lex_string(tl_lex *lx, tl_tok *tok, bool esc)
{
    size_t e = quoted_end(lx->s, lx->n, lx->i, '\'', esc);
    if (!e) {
        bad(tok, "unterminated string");
        lx->i = lx->n;
        return;
    }
    tok->kind = TL_STRING;
    lx->i = e;
}

void tl_lex_next(tl_lex *lx, tl_tok *tok)
{
    memset(tok, 0, sizeof *tok);
    if (!skip_space(lx)) {
        bad(tok, "unterminated comment");
        tok->pos = tok->end = lx->i = lx->n;
        return;
    }
    const char *s = lx->s;
    tok->pos = lx->i;
    if (lx->i >= lx->n) {
        tok->kind = TL_END;
        tok->end = lx->i;
        return;
    }
    unsigned char c = (unsigned char)s[lx->i];
    unsigned char c1 = lx->i + 1 < lx->n ? (unsigned char)s[lx->i + 1] : 0;
    if ((c == 'u' || c == 'U') && c1 == '&') {
        bad(tok, "unicode escapes (U&) are not allowed");
        lx->i = lx->n;
    } else if ((c == 'e' || c == 'E') && c1 == '\'') {
        lx->i++;
        lex_string(lx, tok, true);
    } else if (c == '\'') {
        lex_string(lx, tok, false);
    } else if (c == '"') {
        lex_qident(lx, tok);
    } else if (c == '$') {
        bool is_tag;
        size_t e = dollar_end(s, lx->n, lx->i, &is_tag);
        if (e) {
            tok->kind = TL_STRING;
            lx->i = e;
        } else if (is_tag) {
            bad(tok, "unterminated dollar-quoted string");
            lx->i = lx->n;
        } else {
            lx->i++;
            while (lx->i < lx->n && isdigit((unsigned char)s[lx->i]))
                lx->i++;
            tok->kind = TL_PARAM;
        }
    } else if (word_start(c)) {
        lex_word(lx, tok);
    } else if (isdigit(c) || (c == '.' && isdigit(c1))) {
        while (lx->i < lx->n && (isalnum((unsigned char)s[lx->i]) ||
                                 s[lx->i] == '.' || s[lx->i] == '_'))
            lx->i++;
        tok->kind = TL_NUMBER;
    } else {
        tok->kind = TL_PUNCT;
        tok->c = (char)c;
        lx->i++;
    }
    tok->end = lx->i;
}

bool tl_only_space(const char *s)
{
    tl_lex lx;
    tl_tok tok;
    tl_lex_init(&lx, s);
    for (;;) {
        tl_lex_next(&lx, &tok);
        if (tok.kind == TL_END)
            return true;
        if (tok.kind != TL_PUNCT || tok.c != ';')
            return false;
    }
}

/* ---- search ------------------------------------------------------------- */

size_t tl_find_ci(const char *hay, size_t m, const char *needle, size_t n)
{
    if (n == 0)
        return 0;
    if (n > m)
        return SIZE_MAX;
    for (size_t i = 0; i + n <= m; i++) {
        size_t k = 0;
        while (k < n && tolower((unsigned char)hay[i + k]) ==
                            tolower((unsigned char)needle[k]))
            k++;
        if (k == n)
            return i;
    }
    return SIZE_MAX;
}

/* Move a cut at b forward (dir > 0) or backward to a character start. */
static size_t utf8_boundary(const char *p, size_t len, size_t b, int dir)
{
    while (b > 0 && b < len && ((unsigned char)p[b] & 0xC0) == 0x80)
        b = dir > 0 ? b + 1 : b - 1;
    return b;
}

char *tl_snippet(halo_arena *arena, const char *text, size_t len, size_t off,
                 size_t qlen, size_t width)
{
    size_t start = 0, end = len;
    if (len > width) {
        size_t ctx = width > qlen ? (width - qlen) / 2 : 0;
        start = off > ctx ? off - ctx : 0;
        end = start + width;
        if (end < off + qlen)
            end = off + qlen;
        if (end > len) {
            end = len;
            start = len > width ? len - width : 0;
            if (start > off)
                start = off;
        }
        start = utf8_boundary(text, len, start, 1);
        end = utf8_boundary(text, len, end, -1);
    }
    size_t n = end - start + (start > 0 ? 3 : 0) + (end < len ? 3 : 0);
    char *out = halo_arena_alloc(arena, n + 1);
    if (!out)
        return NULL;
    char *p = out;
    if (start > 0) {
        memcpy(p, "...", 3);
        p += 3;
    }
    memcpy(p, text + start, end - start);
    p += end - start;
    if (end < len) {
        memcpy(p, "...", 3);
        p += 3;
    }
    *p = '\0';
    return out;
}

halo_status tl_add_hits(halo_arena *arena, const halo_search_req *req,
                        const char *trace_id, const char *span_id,
                        const char *name, uint64_t start_ns,
                        const char *const fields[3], const size_t lens[3],
                        halo_search_hit *hits, size_t cap, size_t *n,
                        halo_err *err)
{
    static const char *const names[3] = {"input", "output", "status_message"};
    size_t qlen = strlen(req->query);
    for (int f = 0; f < 3 && *n < cap; f++) {
        if (!fields[f])
            continue;
        size_t off = tl_find_ci(fields[f], lens[f], req->query, qlen);
        if (off == SIZE_MAX)
            continue;
        halo_search_hit *h = &hits[(*n)++];
        memset(h, 0, sizeof *h);
        snprintf(h->trace_id, sizeof h->trace_id, "%s", trace_id);
        snprintf(h->span_id, sizeof h->span_id, "%s", span_id);
        h->name = name ? halo_arena_strdup(arena, name) : NULL;
        h->field = names[f];
        h->snippet =
            tl_snippet(arena, fields[f], lens[f], off, qlen, req->snippet);
        h->match_off = off;
        h->start_ns = start_ns;
        if (!h->snippet || (name && !h->name))
            return halo_fail(err, HALO_ENOMEM, "out of memory");
    }
    return HALO_OK;
}
