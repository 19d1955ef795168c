/*
 * sqlite_rows.c -- the SQLite backend's prepared rows (store.h: prepare,
 * free_rows): every span of a batch turned into what its INSERT binds.
 *
 * Building a row is most of a span's cost outside SQLite itself: hex ids,
 * ISO-8601 times, the attributes/events/links/resource/scope JSON. The
 * exporter calls prepare() on the thread that hands it the batch (a
 * receiver or the batch processor), so this work runs beside the single
 * writer thread instead of inside it; the writer then only binds
 * (SQLITE_STATIC, lengths known) and steps.
 *
 * Layout. One sq_row per span (fixed size: text slots as pointer + length,
 * the numbers copied) in one arena; the rows' text is encoded into a
 * scratch buffer and sealed into a second arena every SEAL_AT bytes (and
 * before the arena's current block would overflow): copied there, and the
 * row slots that were offsets into the scratch buffer become pointers. So
 * the scratch buffer stays small and in cache, and the text fills whole 2
 * MiB arena blocks that the pool hands back batch after batch (sealing
 * each chunk whole made a scratch buffer and a block of every size up to
 * 16 MiB per batch: bench/README.md, session 14). Arenas, so that the
 * memory_limiter counts prepared rows like decoded spans. Rows keep no
 * pointer into the batch: the exporter releases the batch's arenas (about
 * four times as large) as soon as its rows exist.
 *
 * Shared text: the resource JSON (and the scope's) is encoded once per
 * distinct resource pointer, and a resource whose JSON equals the previous
 * one's (the same client, request after request) reuses that text, so a
 * batch holds one copy per distinct resource rather than one per span.
 *
 * Thread safety: prepare() reads nothing of the store but constants and
 * allocates everything per call.
 */
#include "sqlite_int.h"

#include "core/json_attrs.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const int sq_text_col[T_N_] = {
    [T_TRACE_ID] = C_TRACE_ID,
    [T_SPAN_ID] = C_SPAN_ID,
    [T_PARENT] = C_PARENT,
    [T_NAME] = C_NAME,
    [T_SPAN_TYPE] = C_SPAN_TYPE,
    [T_AGENT_ID] = C_AGENT_ID,
    [T_AGENT_NAME] = C_AGENT_NAME,
    [T_SESSION_ID] = C_SESSION_ID,
    [T_USER_ID] = C_USER_ID,
    [T_SERVICE] = C_SERVICE,
    [T_MODEL] = C_MODEL,
    [T_TOOL] = C_TOOL,
    [T_START_TIME] = C_START_TIME,
    [T_END_TIME] = C_END_TIME,
    [T_STATUS_MSG] = C_STATUS_MSG,
    [T_INPUT] = C_INPUT,
    [T_OUTPUT] = C_OUTPUT,
    [T_ATTRS] = C_ATTRS,
    [T_EVENTS] = C_EVENTS,
    [T_RESOURCE] = C_RESOURCE,
    [T_TRACE_STATE] = C_TRACE_STATE,
    [T_LINKS] = C_LINKS,
    [T_SCOPE] = C_SCOPE,
    [T_RES_SCHEMA] = C_RES_SCHEMA,
    [T_VALUE_TYPES] = C_VALUE_TYPES,
};

void sq_iso_cached(sq_timecache *tc, uint64_t ns, char out[31])
{
    int64_t sec = (int64_t)(ns / 1000000000u);
    uint32_t frac = (uint32_t)(ns % 1000000000u);
    if (sec != tc->sec || !tc->prefix[0]) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        unsigned v[6] = {(unsigned)(tm.tm_year + 1900) % 10000u,
                         (unsigned)(tm.tm_mon + 1) % 100u,
                         (unsigned)tm.tm_mday % 100u,
                         (unsigned)tm.tm_hour % 100u,
                         (unsigned)tm.tm_min % 100u,
                         (unsigned)tm.tm_sec % 100u};
        char *p = tc->prefix;
        p[0] = (char)('0' + v[0] / 1000);
        p[1] = (char)('0' + v[0] / 100 % 10);
        p[2] = (char)('0' + v[0] / 10 % 10);
        p[3] = (char)('0' + v[0] % 10);
        static const char sep[5] = {'-', '-', 'T', ':', ':'};
        for (int i = 0; i < 5; i++) {
            p[4 + 3 * i] = sep[i];
            p[5 + 3 * i] = (char)('0' + v[i + 1] / 10);
            p[6 + 3 * i] = (char)('0' + v[i + 1] % 10);
        }
        p[19] = '\0';
        tc->sec = sec;
    }
    memcpy(out, tc->prefix, 19);
    out[19] = '.';
    for (int i = 28; i >= 20; i--) {
        out[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    out[29] = 'Z';
    out[30] = '\0';
}

/* ---- building one chunk's rows ------------------------------------------- */

/* A shared text (resource or scope JSON) and whether it is still an offset
 * into the scratch buffer. */
typedef struct shared_txt {
    const void *key; /* the resource / scope pointer it was encoded for */
    sq_str txt;
    bool rel;
    bool set;
} shared_txt;

/* The scratch text is sealed into the arena at this size ... */
#define SEAL_AT ((size_t)256 << 10)
/* ... or when the arena block's room left is less than this more */
#define SEAL_SLACK ((size_t)16 << 10)

typedef struct prep {
    halo_buf buf; /* the text of the rows not sealed yet */
    sq_timecache tc0, tc1;
    shared_txt res, scope;
    bool cut_io; /* sq_prepare_rows */
} prep;

static void slot_rel(prep *p, sq_row *r, int slot, size_t off, size_t len)
{
    (void)p;
    r->t[slot].p = (const char *)(uintptr_t)off;
    r->t[slot].len = (int)len;
    r->rel |= 1u << slot; /* a pointer once seal() ran */
}

static void put_text(prep *p, sq_row *r, int slot, const char *s, size_t len)
{
    size_t off = p->buf.len;
    halo_buf_append(&p->buf, s, len);
    slot_rel(p, r, slot, off, len);
}

/* NULL stays NULL. */
static void put_sized(prep *p, sq_row *r, int slot, const char *s, size_t len)
{
    if (!s) {
        r->t[slot].p = NULL;
        r->t[slot].len = 0;
        return;
    }
    put_text(p, r, slot, s, len);
}

static void put_cstr(prep *p, sq_row *r, int slot, const char *s)
{
    put_sized(p, r, slot, s, s ? strlen(s) : 0);
}

/* NULL for "" (absent OTLP strings). */
static void put_opt(prep *p, sq_row *r, int slot, const char *s)
{
    put_cstr(p, r, slot, s && *s ? s : NULL);
}

static void put_hex(prep *p, sq_row *r, int slot, const uint8_t *b, size_t n)
{
    if (!halo_buf_reserve(&p->buf, 2 * n))
        return;
    size_t off = p->buf.len;
    halo_hex_encode(b, n, p->buf.data + off);
    p->buf.len += 2 * n;
    slot_rel(p, r, slot, off, 2 * n);
}

static void put_time(prep *p, sq_row *r, int slot, sq_timecache *tc,
                     uint64_t ns)
{
    if (!halo_buf_reserve(&p->buf, 30))
        return;
    size_t off = p->buf.len;
    sq_iso_cached(tc, ns, p->buf.data + off);
    p->buf.len += 30;
    slot_rel(p, r, slot, off, 30);
}

static const char *shared_text(const prep *p, const shared_txt *sh)
{
    return sh->rel ? p->buf.data + (uintptr_t)sh->txt.p : sh->txt.p;
}

/* The JSON text just appended at buf[off..len) for a new key: reuse the
 * previous shared text instead when it is identical. */
static void shared_update(prep *p, shared_txt *sh, const void *key, size_t off)
{
    size_t len = p->buf.len - off;
    sh->key = key;
    if (sh->set && !p->buf.oom && (size_t)sh->txt.len == len &&
        memcmp(shared_text(p, sh), p->buf.data + off, len) == 0) {
        p->buf.len = off; /* same text: keep the old copy */
        return;
    }
    sh->txt.p = (const char *)(uintptr_t)off;
    sh->txt.len = (int)len;
    sh->rel = true;
    sh->set = true;
}

static void put_shared(prep *p, sq_row *r, int slot, const shared_txt *sh)
{
    if (sh->rel) {
        slot_rel(p, r, slot, (uintptr_t)sh->txt.p, (size_t)sh->txt.len);
    } else {
        r->t[slot] = sh->txt;
    }
}

static void put_resource_scope(prep *p, sq_row *r, const halo_span *sp)
{
    if (!p->res.set || sp->resource != p->res.key) {
        size_t off = p->buf.len;
        halo_json_encode_attrs(&p->buf,
                               sp->resource ? &sp->resource->attrs : NULL);
        shared_update(p, &p->res, sp->resource, off);
    }
    put_shared(p, r, T_RESOURCE, &p->res);
    if (!p->scope.set || sp->scope != p->scope.key) {
        size_t off = p->buf.len;
        halo_json_encode_scope(&p->buf, sp->scope);
        shared_update(p, &p->scope, sp->scope, off);
    }
    put_shared(p, r, T_SCOPE, &p->scope);
}

static uint8_t type_class(const char *t)
{
    if (!t)
        return SQ_TYPE_OTHER;
    if (strcmp(t, "LLM") == 0)
        return SQ_TYPE_LLM;
    if (strcmp(t, "TOOL") == 0)
        return SQ_TYPE_TOOL;
    return SQ_TYPE_OTHER;
}

static void copy_numbers(sq_row *r, const halo_span *sp)
{
    const halo_derived *d = &sp->d;
    memcpy(r->tid, sp->trace_id, 16);
    r->start_ns = sp->start_ns;
    r->end_ns = sp->end_ns;
    r->in_tok = d->input_tokens;
    r->out_tok = d->output_tokens;
    r->cost = d->cost;
    r->has_in_tok = d->has_input_tokens;
    r->has_out_tok = d->has_output_tokens;
    r->has_cost = d->has_cost;
    r->flags = sp->flags;
    r->res_dropped = sp->resource ? sp->resource->dropped_attrs : 0;
    r->dropped_attrs = sp->dropped_attrs;
    r->dropped_events = sp->dropped_events;
    r->dropped_links = sp->dropped_links;
    r->fb_mask = d->fallback_mask;
    r->kind = (uint8_t)(sp->kind >= 0 && sp->kind <= 5 ? sp->kind : 0);
    r->status_code =
        (uint8_t)(sp->status_code >= 0 && sp->status_code <= 2 ? sp->status_code
                                                               : 0);
    r->type_class = type_class(d->span_type);
    r->is_root = halo_span_is_root(sp);
}

/* One span's row; its text slots are offsets into p->buf (p->rel). */
static void build_row(prep *p, sq_row *r, const halo_span *sp)
{
    const halo_derived *d = &sp->d;
    r->rel = 0;
    copy_numbers(r, sp);
    put_hex(p, r, T_TRACE_ID, sp->trace_id, 16);
    put_hex(p, r, T_SPAN_ID, sp->span_id, 8);
    if (r->is_root)
        put_cstr(p, r, T_PARENT, NULL);
    else
        put_hex(p, r, T_PARENT, sp->parent_span_id, 8);
    put_cstr(p, r, T_NAME, sp->name ? sp->name : "");
    put_cstr(p, r, T_SPAN_TYPE, d->span_type);
    put_cstr(p, r, T_AGENT_ID, d->agent_id);
    put_cstr(p, r, T_AGENT_NAME, d->agent_name);
    put_cstr(p, r, T_SESSION_ID, d->session_id);
    put_cstr(p, r, T_USER_ID, d->user_id);
    put_cstr(p, r, T_SERVICE, d->service_name);
    put_cstr(p, r, T_MODEL, d->model);
    put_cstr(p, r, T_TOOL, d->tool_name);
    put_time(p, r, T_START_TIME, &p->tc0, sp->start_ns);
    put_time(p, r, T_END_TIME, &p->tc1, sp->end_ns);
    put_opt(p, r, T_STATUS_MSG, sp->status_message);
    /* input and output are stored once: the attribute that repeats one
     * (input.value, output.value) holds null, and the spans view splices
     * the column back in (sqlite_schema.c, migration 7) */
    halo_json_cut cut[2] = {{d->input, d->input ? strlen(d->input) : 0, 0},
                            {d->output, d->output ? strlen(d->output) : 0, 0}};
    put_sized(p, r, T_INPUT, d->input, cut[0].len);
    put_sized(p, r, T_OUTPUT, d->output, cut[1].len);

    size_t off = p->buf.len;
    halo_json_encode_attrs_cut(&p->buf, &sp->attrs, cut, p->cut_io ? 2 : 0);
    slot_rel(p, r, T_ATTRS, off, p->buf.len - off);
    r->in_at = cut[0].at;
    r->out_at = cut[1].at;
    off = p->buf.len;
    halo_json_encode_events(&p->buf, sp->events, sp->n_events);
    slot_rel(p, r, T_EVENTS, off, p->buf.len - off);
    if (sp->n_links) {
        off = p->buf.len;
        halo_json_encode_links(&p->buf, sp->links, sp->n_links);
        slot_rel(p, r, T_LINKS, off, p->buf.len - off);
    } else {
        put_cstr(p, r, T_LINKS, NULL);
    }
    put_resource_scope(p, r, sp);
    put_opt(p, r, T_TRACE_STATE, sp->trace_state);
    put_opt(p, r, T_RES_SCHEMA, sp->resource ? sp->resource->schema_url : NULL);
    off = p->buf.len;
    if (halo_json_encode_value_types(&p->buf, sp))
        slot_rel(p, r, T_VALUE_TYPES, off, p->buf.len - off);
    else
        put_cstr(p, r, T_VALUE_TYPES, NULL);
}

/* Copy the scratch text into the text arena (rs->text_arena, made at the
 * first seal: one 2 MiB block when more rows follow, else the text's exact
 * size) and turn the offsets of rows[0..n) (and of the shared texts) into
 * pointers. */
static halo_status seal(prep *p, sq_rows *rs, sq_row *rows, size_t n, bool more,
                        halo_err *err)
{
    if (p->buf.oom)
        return halo_fail(err, HALO_ENOMEM, "out of memory encoding spans");
    size_t len = p->buf.len ? p->buf.len : 1;
    if (!rs->text_arena) {
        rs->text_arena = halo_arena_new(
            more && len < HALO_ARENA_BLOCK_MAX ? HALO_ARENA_BLOCK_MAX : len);
        if (!rs->text_arena)
            return halo_fail(err, HALO_ENOMEM, "out of memory encoding spans");
    }
    char *base = halo_arena_alloc(rs->text_arena, len);
    if (!base)
        return halo_fail(err, HALO_ENOMEM, "out of memory encoding spans");
    if (p->buf.len)
        memcpy(base, p->buf.data, p->buf.len);
    for (size_t i = 0; i < n; i++) {
        sq_row *r = &rows[i];
        for (uint32_t m = r->rel; m; m &= m - 1) {
            int slot = __builtin_ctz(m);
            r->t[slot].p = base + (uintptr_t)r->t[slot].p;
        }
        r->rel = 0;
    }
    shared_txt *sh[2] = {&p->res, &p->scope};
    for (int i = 0; i < 2; i++) {
        if (sh[i]->rel) {
            sh[i]->txt.p = base + (uintptr_t)sh[i]->txt.p;
            sh[i]->rel = false;
        }
    }
    halo_buf_reset(&p->buf);
    return HALO_OK;
}

/* After a row: whether the scratch text should be sealed now. */
static bool seal_due(const prep *p, const sq_rows *rs)
{
    size_t room =
        rs->text_arena ? halo_arena_room(rs->text_arena) : HALO_ARENA_BLOCK_MAX;
    return p->buf.len >= SEAL_AT || p->buf.len + SEAL_SLACK > room;
}

/* ---- prepare / free_rows ---------------------------------------------------
 */

void sq_free_rows(halo_store *st, halo_store_rows *base)
{
    (void)st;
    sq_rows *rs = (sq_rows *)base;
    if (!rs)
        return;
    halo_arena_free(rs->row_arena);
    halo_arena_free(rs->text_arena);
    free(rs);
}

halo_status sq_prepare(halo_store *st, const halo_batch *b,
                       halo_store_rows **out, halo_err *err)
{
    (void)st;
    return sq_prepare_rows(b, true, out, err);
}

halo_status sq_prepare_rows(const halo_batch *b, bool cut_io,
                            halo_store_rows **out, halo_err *err)
{
    *out = NULL;
    size_t n_spans = 0;
    for (const halo_chunk *c = b->head; c; c = c->next)
        n_spans += c->n;
    sq_rows *rs = calloc(1, sizeof *rs);
    halo_status ret = HALO_OK;
    prep p = {.buf = HALO_BUF_INIT, .cut_io = cut_io};
    if (!rs || !(rs->row_arena =
                     halo_arena_new(n_spans ? n_spans * sizeof(sq_row) : 16)))
        goto oom;
    rs->rows = n_spans
                   ? halo_arena_alloc(rs->row_arena, n_spans * sizeof(sq_row))
                   : NULL;
    if (n_spans && !rs->rows)
        goto oom;
    size_t sealed = 0; /* rows before this one have pointers */
    for (const halo_chunk *c = b->head; c && ret == HALO_OK; c = c->next) {
        for (size_t i = 0; i < c->n && ret == HALO_OK; i++) {
            build_row(&p, &rs->rows[rs->n++], &c->spans[i]);
            bool last = rs->n == n_spans;
            if (last || seal_due(&p, rs)) {
                ret =
                    seal(&p, rs, rs->rows + sealed, rs->n - sealed, !last, err);
                sealed = rs->n;
            }
        }
    }
    halo_buf_free(&p.buf);
    if (ret != HALO_OK) {
        sq_free_rows(NULL, &rs->base);
        return ret;
    }
    rs->base.n_spans = rs->n;
    *out = &rs->base;
    return HALO_OK;
oom:
    halo_buf_free(&p.buf);
    sq_free_rows(NULL, rs ? &rs->base : NULL);
    return halo_fail(err, HALO_ENOMEM, "out of memory preparing spans");
}
