/*
 * redaction.c -- strip secrets from spans before storage (redaction.h).
 *
 * Matching is not done here: analyzer/redact.h's redactor knows the
 * built-in detectors (API keys, bearer/Basic credentials, JWTs, private
 * keys, e-mails, card numbers, URL passwords), the user's extra patterns
 * (blocked_values) and the secret keys (blocked_keys, plus the default
 * list when defaults is on). This file walks the span model and decides
 * what replaces what:
 *
 *   - attributes of spans, events, links and resources (each resource
 *     once per batch: spans share them), recursively into arrays and
 *     kvlists down to MAX_DEPTH (deeper values become one mask token);
 *   - a value under a blocked key is removed whole (booleans and empty
 *     values excepted: they carry nothing); any other string or bytes value
 *     has the matched parts replaced; an integer that is a card number
 *     becomes a string;
 *   - the status message, event names and the derived fields (d.input,
 *     d.output, identities, model, tool): they may point into the original
 *     attribute values, so the processor is order-independent with
 *     agent_identity. A derived field that points at a value this span just
 *     rewrote takes the rewritten string (counted once).
 *   - allowed_keys: only matching attributes (exact, or prefix with a
 *     trailing '*') are kept in every attribute list the walk visits at
 *     top level; nested kvlist keys are not filtered. A derived field that
 *     pointed at a dropped value is cleared.
 *
 * action mask: the redactor's own replacement ("[REDACTED]", or typed
 * "[REDACTED:email]"). action hash: a second redactor replaces every match
 * by a sentinel (a control byte no rule redacts); the output's clean
 * segments are then located in the input to recover each matched part,
 * which becomes "[HASH:" + 16 hex digits of SipHash-2-4 under hash_key +
 * "]": equal secrets stay joinable, and without the key nobody can test a
 * guess. An input that itself contains the sentinel, or whose segments
 * cannot be aligned, is hashed whole.
 *
 * Strings are built with malloc by the redactor and copied into the
 * chunk's arena. Out of memory never leaks a secret: the value becomes the
 * static mask token instead.
 */
#include "processors/redaction.h"

#include "analyzer/redact.h"
#include "core/arena.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/secret.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { MAX_DEPTH = 32, HASH_TOKEN_LEN = 23 /* "[HASH:" 16 "]" */ };

static const char sentinel = '\x1e';

struct halo_redaction {
    halo_redactor *r; /* mask: the output redactor; hash: sentinels */
    bool hash;
    uint8_t key[16];
    char mask[32];  /* what a blocked value becomes */
    char **allowed; /* allowed_keys (NULL: keep everything) */
    size_t n_allowed;
};

/* ---- SipHash-2-4 ------------------------------------------------------ */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = ROTL(v[1], 13);
    v[1] ^= v[0];
    v[0] = ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = ROTL(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = ROTL(v[1], 17);
    v[1] ^= v[2];
    v[2] = ROTL(v[2], 32);
}

static void sip_block(uint64_t v[4], uint64_t m)
{
    v[3] ^= m;
    sip_round(v);
    sip_round(v);
    v[0] ^= m;
}

uint64_t halo_siphash24(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull,
                     k0 ^ 0x6c7967656e657261ull, k1 ^ 0x7465646279746573ull};
    size_t full = len - len % 8;
    for (size_t i = 0; i < full; i += 8)
        sip_block(v, le64(in + i));
    uint64_t last = (uint64_t)(len & 0xff) << 56;
    for (size_t i = 0; i < len % 8; i++)
        last |= (uint64_t)in[full + i] << (8 * i);
    sip_block(v, last);
    v[2] ^= 0xff;
    for (int i = 0; i < 4; i++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- construction ----------------------------------------------------- */

/* The redactor's messages name analyzer.redaction.*: say ours instead. */
static void rename_error(halo_err *err, const char *where)
{
    static const struct {
        const char *from, *to;
    } map[] = {{"analyzer.redaction.patterns", "blocked_values"},
               {"analyzer.redaction.keys", "blocked_keys"},
               {"analyzer.redaction.", ""}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        size_t fl = strlen(map[i].from);
        if (strncmp(err->msg, map[i].from, fl) != 0)
            continue;
        char msg[2 * sizeof err->msg];
        int n = snprintf(msg, sizeof msg, "%s.%s%s", where, map[i].to,
                         err->msg + fl);
        if (n < 0)
            return;
        size_t len =
            (size_t)n < sizeof err->msg ? (size_t)n : sizeof err->msg - 1;
        memcpy(err->msg, msg, len);
        err->msg[len] = '\0';
        return;
    }
}

static bool parse_key(const char *hex, uint8_t key[16])
{
    return hex && strlen(hex) == 32 && halo_hex_decode(hex, 32, key, 16);
}

static halo_status setup_hash(halo_redaction *rd, const halo_redaction_cfg *cfg,
                              const char *where, halo_err *err)
{
    const char *hex = cfg->hash_key && cfg->hash_key[0]
                          ? cfg->hash_key
                          : getenv("HALO_REDACTION_HASH_KEY");
    if (!hex || !hex[0])
        return halo_fail(err, HALO_EINVAL,
                         "%s.hash_key: required when action is hash (32 hex "
                         "digits, or set $HALO_REDACTION_HASH_KEY)",
                         where);
    halo_secret_register(hex); /* also when it came from the environment */
    if (!parse_key(hex, rd->key))
        return halo_fail(err, HALO_EINVAL,
                         "%s.hash_key: invalid key (expected 32 hex digits, "
                         "got %zu characters)",
                         where, strlen(hex));
    rd->hash = true;
    return HALO_OK;
}

static halo_status copy_allowed(halo_redaction *rd, const halo_strlist *l,
                                const char *where, halo_err *err)
{
    if (!l->n)
        return HALO_OK;
    if (!(rd->allowed = calloc(l->n, sizeof *rd->allowed)))
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    for (size_t i = 0; i < l->n; i++) {
        if (!l->items[i][0] || !strcmp(l->items[i], "*"))
            return halo_fail(err, HALO_EINVAL,
                             "%s.allowed_keys[%zu]: \"%s\" is not a key (an "
                             "empty list keeps every attribute)",
                             where, i, l->items[i]);
        if (!(rd->allowed[i] = strdup(l->items[i])))
            return halo_fail(err, HALO_ENOMEM, "out of memory");
        rd->n_allowed++;
    }
    return HALO_OK;
}

halo_status halo_redaction_new(const halo_redaction_cfg *cfg, const char *where,
                               halo_redaction **out, halo_err *err)
{
    halo_status st = HALO_ENOMEM;
    halo_redaction *rd = calloc(1, sizeof *rd);
    char rep[2] = {sentinel, '\0'};
    *out = NULL;
    if (!where)
        where = "processors.redaction";
    if (!rd)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    if (cfg->action == HALO_REDACT_HASH &&
        (st = setup_hash(rd, cfg, where, err)) != HALO_OK)
        goto cleanup;
    snprintf(rd->mask, sizeof rd->mask, "%s",
             cfg->typed && !rd->hash ? "[REDACTED:secret]" : "[REDACTED]");
    halo_redact_cfg rc = {.defaults = cfg->defaults,
                          .keys = cfg->blocked_keys,
                          .patterns = cfg->blocked_values,
                          .replacement = rd->hash ? rep : NULL,
                          .typed = cfg->typed && !rd->hash};
    if ((st = halo_redactor_new(&rc, &rd->r, err)) != HALO_OK) {
        rename_error(err, where);
        goto cleanup;
    }
    if ((st = copy_allowed(rd, &cfg->allowed_keys, where, err)) != HALO_OK)
        goto cleanup;
    *out = rd;
    return HALO_OK;
cleanup:
    halo_redaction_free(rd);
    return st;
}

void halo_redaction_free(halo_redaction *rd)
{
    if (!rd)
        return;
    halo_redactor_free(rd->r);
    for (size_t i = 0; i < rd->n_allowed; i++)
        free(rd->allowed[i]);
    free(rd->allowed);
    free(rd);
}

/* ---- per-batch work ---------------------------------------------------- */

typedef struct swap {
    const char *from, *to; /* to NULL: the value was dropped */
} swap;

typedef struct work {
    const halo_redaction *rd;
    halo_arena *arena;
    halo_redaction_stats st;
    size_t span_changes;
    /* the current span's rewritten top-level values, for its d fields */
    swap *swaps;
    size_t n_swaps, cap_swaps;
    /* resources already redacted in this batch */
    const halo_resource **res;
    size_t n_res, cap_res;
} work;

static void note_swap(work *w, const char *from, const char *to)
{
    if (!from)
        return;
    if (w->n_swaps == w->cap_swaps) {
        size_t cap = w->cap_swaps ? 2 * w->cap_swaps : 16;
        swap *n = realloc(w->swaps, cap * sizeof *n);
        if (!n)
            return; /* the d field is then redacted on its own */
        w->swaps = n;
        w->cap_swaps = cap;
    }
    w->swaps[w->n_swaps++] = (swap){from, to};
}

static void count(work *w, size_t n)
{
    w->st.redactions += n;
    w->span_changes += n;
}

/* s[0..len) copied into the arena; the mask token when that fails. */
static const char *keep(work *w, const char *s, size_t len, size_t *olen)
{
    char *p = w->arena ? halo_arena_strndup(w->arena, s, len) : NULL;
    if (p) {
        *olen = len;
        return p;
    }
    *olen = strlen(w->rd->mask);
    return w->rd->mask;
}

static void hash_token(const halo_redaction *rd, const char *s, size_t len,
                       char out[HASH_TOKEN_LEN + 1])
{
    uint64_t h = halo_siphash24(rd->key, s, len);
    snprintf(out, HASH_TOKEN_LEN + 1, "[HASH:%016" PRIx64 "]", h);
}

/* Rebuild the redactor's sentinel output with the hashes of the matched
 * parts of s. False when out's segments do not align with s. */
static bool align_hashes(const halo_redaction *rd, const char *s, size_t len,
                         const char *out, size_t olen, halo_buf *b)
{
    const char *seg, *end = out + olen;
    const char *first = memchr(out, sentinel, olen);
    if (!first)
        return false;
    size_t p = (size_t)(first - out);
    if (p > len || memcmp(s, out, p) != 0)
        return false;
    halo_buf_append(b, out, p);
    seg = first + 1;
    while (seg <= end) {
        const char *nx = memchr(seg, sentinel, (size_t)(end - seg));
        size_t sl = (size_t)((nx ? nx : end) - seg), q;
        if (!nx) { /* the last segment is the suffix of s */
            if (sl + p + 1 > len || memcmp(s + len - sl, seg, sl) != 0)
                return false;
            q = len - sl;
        } else {
            if (p + 1 > len)
                return false;
            const char *at = memmem(s + p + 1, len - p - 1, seg, sl);
            if (!at)
                return false;
            q = (size_t)(at - s);
        }
        char tok[HASH_TOKEN_LEN + 1];
        hash_token(rd, s + p, q - p, tok);
        halo_buf_append(b, tok, HASH_TOKEN_LEN);
        halo_buf_append(b, seg, sl);
        p = q + sl;
        if (!nx)
            break;
        seg = nx + 1;
    }
    return p == len;
}

/* The hash of every matched part (out: the sentinel redactor's output). */
static const char *hashed(work *w, const char *s, size_t len, const char *out,
                          size_t olen, size_t *rlen)
{
    halo_buf b = HALO_BUF_INIT;
    const char *res;
    if (memchr(s, sentinel, len) ||
        !align_hashes(w->rd, s, len, out, olen, &b)) {
        char tok[HASH_TOKEN_LEN + 1];
        hash_token(w->rd, s, len, tok);
        halo_buf_free(&b);
        return keep(w, tok, HASH_TOKEN_LEN, rlen);
    }
    if (!b.data || b.oom) {
        halo_buf_free(&b);
        *rlen = strlen(w->rd->mask);
        return w->rd->mask;
    }
    res = keep(w, b.data, b.len, rlen);
    halo_buf_free(&b);
    return res;
}

/* s[0..len) redacted; NULL when it had nothing to redact. */
static const char *redact_str(work *w, const char *s, size_t len, size_t *rlen)
{
    if (!s || !len || !halo_redact_scan(w->rd->r, s, len))
        return NULL;
    size_t olen = 0, n = 0;
    char *out = halo_redact_text_n(w->rd->r, s, len, &olen, &n);
    const char *res;
    if (!out) {
        *rlen = strlen(w->rd->mask);
        res = w->rd->mask;
        n = 1;
    } else if (w->rd->hash) {
        res = hashed(w, s, len, out, olen, rlen);
    } else {
        res = keep(w, out, olen, rlen);
    }
    free(out);
    count(w, n ? n : 1);
    return res;
}

static void set_string(halo_value *v, const char *s, size_t len)
{
    v->type = HALO_VAL_STRING;
    v->u.s.ptr = s;
    v->u.s.len = len;
}

/* A value under a blocked key: removed whole. */
static void blank_value(work *w, halo_value *v)
{
    char text[40];
    int tl = -1;
    size_t rlen = 0;
    switch (v->type) {
    case HALO_VAL_EMPTY:
    case HALO_VAL_BOOL:
        return;
    case HALO_VAL_STRING:
    case HALO_VAL_BYTES:
        if (w->rd->hash && v->u.s.ptr) {
            char tok[HASH_TOKEN_LEN + 1];
            hash_token(w->rd, v->u.s.ptr, v->u.s.len, tok);
            set_string(v, keep(w, tok, HASH_TOKEN_LEN, &rlen), rlen);
            count(w, 1);
            return;
        }
        break;
    case HALO_VAL_INT:
        tl = snprintf(text, sizeof text, "%" PRId64, v->u.i);
        break;
    case HALO_VAL_DOUBLE:
        tl = snprintf(text, sizeof text, "%.17g", v->u.d);
        break;
    default:
        break;
    }
    if (w->rd->hash && tl > 0) {
        char tok[HASH_TOKEN_LEN + 1];
        hash_token(w->rd, text, (size_t)tl, tok);
        set_string(v, keep(w, tok, HASH_TOKEN_LEN, &rlen), rlen);
    } else {
        set_string(v, w->rd->mask, strlen(w->rd->mask));
    }
    count(w, 1);
}

static bool blocked(const work *w, const char *key)
{
    return key && halo_redact_is_secret_key(w->rd->r, key, strlen(key));
}

static void redact_value(work *w, halo_value *v, int depth);

static void redact_kvs(work *w, halo_kv *kv, size_t n, int depth)
{
    for (size_t i = 0; i < n; i++) {
        if (blocked(w, kv[i].key))
            blank_value(w, &kv[i].value);
        else
            redact_value(w, &kv[i].value, depth);
    }
}

static void redact_value(work *w, halo_value *v, int depth)
{
    size_t rlen = 0;
    if (depth > MAX_DEPTH) {
        if (v->type != HALO_VAL_EMPTY && v->type != HALO_VAL_BOOL) {
            set_string(v, w->rd->mask, strlen(w->rd->mask));
            count(w, 1);
        }
        return;
    }
    switch (v->type) {
    case HALO_VAL_STRING:
    case HALO_VAL_BYTES: {
        const char *r = redact_str(w, v->u.s.ptr, v->u.s.len, &rlen);
        if (r) {
            v->u.s.ptr = r;
            v->u.s.len = rlen;
        }
        return;
    }
    case HALO_VAL_INT: {
        char digits[24];
        int n = snprintf(digits, sizeof digits, "%" PRId64, v->u.i);
        const char *r = redact_str(w, digits, (size_t)n, &rlen);
        if (r)
            set_string(v, r, rlen);
        return;
    }
    case HALO_VAL_ARRAY:
        for (size_t i = 0; i < v->u.arr.n; i++)
            redact_value(w, &v->u.arr.items[i], depth + 1);
        return;
    case HALO_VAL_KVLIST:
        redact_kvs(w, v->u.kv.items, v->u.kv.n, depth + 1);
        return;
    default:
        return;
    }
}

static bool allowed(const halo_redaction *rd, const char *key)
{
    if (!rd->n_allowed)
        return true;
    if (!key)
        return false;
    for (size_t i = 0; i < rd->n_allowed; i++) {
        const char *a = rd->allowed[i];
        size_t al = strlen(a);
        if (a[al - 1] == '*' ? strncmp(key, a, al - 1) == 0
                             : strcmp(key, a) == 0)
            return true;
    }
    return false;
}

static const char *value_ptr(const halo_value *v)
{
    return v->type == HALO_VAL_STRING || v->type == HALO_VAL_BYTES ? v->u.s.ptr
                                                                   : NULL;
}

/* One top-level attribute list: filter by allowed_keys, then redact. With
 * track, rewritten and dropped values are noted for the span's d fields. */
static void redact_attrs(work *w, halo_attrs *a, bool track)
{
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++) {
        halo_kv *kv = &a->items[i];
        if (!allowed(w->rd, kv->key)) {
            if (track)
                note_swap(w, value_ptr(&kv->value), NULL);
            w->st.dropped_attrs++;
            w->span_changes++;
            continue;
        }
        const char *before = value_ptr(&kv->value);
        if (blocked(w, kv->key))
            blank_value(w, &kv->value);
        else
            redact_value(w, &kv->value, 0);
        const char *after = value_ptr(&kv->value);
        if (track && before && after != before)
            note_swap(w, before, after);
        if (k != i)
            a->items[k] = *kv;
        k++;
    }
    if (k != a->n)
        a->n = k;
}

static void redact_field(work *w, const char **f)
{
    size_t rlen = 0;
    if (!*f)
        return;
    for (size_t i = 0; i < w->n_swaps; i++)
        if (w->swaps[i].from == *f) {
            *f = w->swaps[i].to;
            return;
        }
    const char *r = redact_str(w, *f, strlen(*f), &rlen);
    if (r)
        *f = r;
}

static void redact_derived(work *w, halo_derived *d)
{
    const char **fields[] = {&d->agent_id,  &d->agent_name,   &d->session_id,
                             &d->user_id,   &d->service_name, &d->model,
                             &d->tool_name, &d->input,        &d->output};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        redact_field(w, fields[i]);
}

static bool resource_seen(work *w, const halo_resource *r)
{
    for (size_t i = 0; i < w->n_res; i++)
        if (w->res[i] == r)
            return true;
    if (w->n_res == w->cap_res) {
        size_t cap = w->cap_res ? 2 * w->cap_res : 8;
        const halo_resource **n = realloc(w->res, cap * sizeof *n);
        if (!n)
            return false; /* redacting twice is harmless */
        w->res = n;
        w->cap_res = cap;
    }
    w->res[w->n_res++] = r;
    return false;
}

static void redact_text_field(work *w, const char **f)
{
    size_t rlen = 0;
    const char *r = *f ? redact_str(w, *f, strlen(*f), &rlen) : NULL;
    if (r)
        *f = r;
}

static void redact_span(work *w, halo_span *sp)
{
    w->n_swaps = 0;
    w->span_changes = 0;
    /* the resources of a batch are the chunk's, not shared across
     * batches: mutating them (once) is safe */
    if (sp->resource && !resource_seen(w, sp->resource))
        redact_attrs(w, &((halo_resource *)sp->resource)->attrs, true);
    redact_attrs(w, &sp->attrs, true);
    for (size_t i = 0; i < sp->n_events; i++) {
        redact_text_field(w, &sp->events[i].name);
        redact_attrs(w, &sp->events[i].attrs, false);
    }
    for (size_t i = 0; i < sp->n_links; i++)
        redact_attrs(w, &sp->links[i].attrs, false);
    redact_text_field(w, &sp->status_message);
    redact_derived(w, &sp->d);
    if (w->span_changes)
        w->st.spans++;
}

void halo_redaction_apply(const halo_redaction *rd, halo_batch *b,
                          halo_redaction_stats *stats)
{
    work w = {.rd = rd};
    for (halo_chunk *c = b->head; c; c = c->next) {
        if (!c->arena && c->n)
            c->arena = halo_arena_new(0); /* NULL: mask tokens only */
        w.arena = c->arena;
        for (size_t i = 0; i < c->n; i++)
            redact_span(&w, &c->spans[i]);
    }
    free(w.swaps);
    free(w.res);
    if (stats)
        *stats = w.st;
}

/* ---- the component ------------------------------------------------------
 */

typedef struct redaction_ctx {
    halo_redaction *rd;
    halo_metric *m_redactions;
    halo_metric *m_spans;
    halo_metric *m_dropped;
} redaction_ctx;

static halo_status redaction_create(halo_component *self, halo_err *err)
{
    char where[300], labels[256];
    snprintf(where, sizeof where, "processors.%s", self->id);
    redaction_ctx *x = calloc(1, sizeof *x);
    if (!x)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    halo_status st = halo_redaction_new(self->cfg, where, &x->rd, err);
    if (st != HALO_OK) {
        free(x);
        return st;
    }
    snprintf(labels, sizeof labels, "processor=\"%s\"", self->id);
    x->m_redactions =
        halo_counter("halo_processor_redactions_total",
                     "values (or parts of values) redacted", labels);
    x->m_spans = halo_counter("halo_processor_redacted_spans_total",
                              "spans with at least one redaction", labels);
    x->m_dropped =
        halo_counter("halo_processor_redaction_dropped_attributes_total",
                     "attributes removed because allowed_keys did not list "
                     "them",
                     labels);
    self->ctx = x;
    return HALO_OK;
}

static halo_status redaction_consume(halo_component *self, halo_batch *b)
{
    redaction_ctx *x = self->ctx;
    halo_redaction_stats st;
    halo_redaction_apply(x->rd, b, &st);
    if (st.redactions)
        halo_metric_add(x->m_redactions, (double)st.redactions);
    if (st.spans)
        halo_metric_add(x->m_spans, (double)st.spans);
    if (st.dropped_attrs)
        halo_metric_add(x->m_dropped, (double)st.dropped_attrs);
    return halo_emit(self, b);
}

static void redaction_destroy(halo_component *self)
{
    redaction_ctx *x = self->ctx;
    if (!x)
        return;
    halo_redaction_free(x->rd);
    free(x);
    self->ctx = NULL;
}

static const char *const action_values[] = {"mask", "hash", NULL};

#define COFF(f) offsetof(halo_redaction_cfg, f)
const halo_field halo_redaction_schema[] = {
    {.key = "defaults",
     .type = HALO_F_BOOL,
     .offset = COFF(defaults),
     .def = "true",
     .description = "the built-in detectors (API keys, bearer tokens, JWTs, "
                    "private keys, e-mails, card numbers...) and secret keys "
                    "(password, token, api_key, authorization...)"},
    {.key = "blocked_keys",
     .type = HALO_F_STRLIST,
     .offset = COFF(blocked_keys),
     .description = "more attribute keys whose values are removed whole "
                    "(case-insensitive; also matches as a dotted/underscored "
                    "suffix: api_key covers http.request.header.x-api-key)"},
    {.key = "blocked_values",
     .type = HALO_F_STRLIST,
     .offset = COFF(blocked_values),
     .description = "more POSIX extended regular expressions; each match is "
                    "replaced"},
    {.key = "allowed_keys",
     .type = HALO_F_STRLIST,
     .offset = COFF(allowed_keys),
     .description = "when set, only these attributes are kept (exact keys, "
                    "or prefixes ending in '*': \"gen_ai.*\")"},
    {.key = "action",
     .type = HALO_F_ENUM,
     .offset = COFF(action),
     .def = "mask",
     .enum_values = action_values,
     .description = "mask: \"[REDACTED]\"; hash: \"[HASH:<16 hex>]\", a keyed "
                    "SipHash so equal values stay joinable"},
    {.key = "typed",
     .type = HALO_F_BOOL,
     .offset = COFF(typed),
     .def = "true",
     .description = "mask: say what was removed, \"[REDACTED:email]\""},
    {.key = "hash_key",
     .type = HALO_F_SECRET,
     .offset = COFF(hash_key),
     .description = "action hash: 32 hex digits (128-bit SipHash key); "
                    "default $HALO_REDACTION_HASH_KEY"},
    {.key = NULL},
};
#undef COFF

const halo_component_def halo_processor_redaction = {
    .kind = HALO_PROCESSOR,
    .type = "redaction",
    .description = "removes secrets (API keys, tokens, e-mails, card "
                   "numbers, blocked keys) from attributes, events and "
                   "input/output before they are stored",
    .schema = halo_redaction_schema,
    .cfg_size = sizeof(halo_redaction_cfg),
    .create = redaction_create,
    .consume = redaction_consume,
    .destroy = redaction_destroy,
};
