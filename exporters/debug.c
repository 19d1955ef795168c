/*
 * debug.c -- the debug exporter: logs what reaches it, then confirms it.
 *
 * Like the Collector's debug exporter, for seeing what a pipeline delivers
 * without a store. Three verbosities:
 *   basic     one line per batch: "N spans, M traces"
 *   normal    that line, then one line per span: ids, name, span_type,
 *             agent_id, duration, status
 *   detailed  also the span's attributes and events, and the resource's
 *             attributes whenever the resource changes, as compact JSON
 *             (core/json_attrs.h's encoding, as the stores write it)
 * Everything goes through core/log.h at INFO (stderr). Log lines are
 * limited in size, so long JSON is split over continuation lines. Nothing is
 * stored: every batch is completed with HALO_OK once logged.
 */
#include "core/buf.h"
#include "core/component.h"
#include "core/json_attrs.h"
#include "core/log.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum { V_BASIC = 0, V_NORMAL, V_DETAILED };

static const char *const verbosity_values[] = {"basic", "normal", "detailed",
                                               NULL};

typedef struct debug_cfg {
    int verbosity;
} debug_cfg;

/* The largest piece of text put on one log line (log.c caps a line at
 * 4 KiB including its timestamp and prefix). */
#define PIECE 3500

static const char *prefix_of(const halo_component *self)
{
    return self->log_prefix ? self->log_prefix : "exporter:debug";
}

/* ---- distinct traces -------------------------------------------------- */

static size_t id_hash(const uint8_t *id)
{
    uint64_t a, b;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
    return (size_t)(h ^ (h >> 32));
}

/* Distinct trace ids of b, or -1 when out of memory. */
static long count_traces(const halo_batch *b)
{
    size_t cap = 16, n = 0;
    while (cap < 2 * b->n_spans)
        cap *= 2;
    const uint8_t **set = calloc(cap, sizeof *set);
    if (!set)
        return -1;
    HALO_BATCH_FOREACH(b, c, sp)
    {
        size_t i = id_hash(sp->trace_id) & (cap - 1);
        while (set[i] && memcmp(set[i], sp->trace_id, 16) != 0)
            i = (i + 1) & (cap - 1);
        if (!set[i]) {
            set[i] = sp->trace_id;
            n++;
        }
    }
    free(set);
    return (long)n;
}

/* ---- lines ------------------------------------------------------------ */

static void put_json_str(halo_buf *out, const char *s)
{
    if (!s)
        halo_buf_puts(out, "null");
    else
        halo_buf_json_str(out, s, strlen(s));
}

static void span_line(halo_buf *out, const halo_span *sp)
{
    char tid[33], sid[17];
    halo_hex_encode(sp->trace_id, 16, tid);
    halo_hex_encode(sp->span_id, 8, sid);
    uint64_t dur = sp->end_ns > sp->start_ns ? sp->end_ns - sp->start_ns : 0;
    halo_buf_printf(out, "trace=%s span=%s name=", tid, sid);
    put_json_str(out, sp->name);
    halo_buf_printf(out,
                    " type=%s agent=", sp->d.span_type ? sp->d.span_type : "-");
    put_json_str(out, sp->d.agent_id);
    halo_buf_printf(out, " duration=%" PRIu64 ".%03" PRIu64 "ms status=%s",
                    dur / 1000000, dur / 1000 % 1000,
                    halo_status_code_name(sp->status_code));
    if (sp->status_message && *sp->status_message) {
        halo_buf_putc(out, ' ');
        put_json_str(out, sp->status_message);
    }
}

/* Log label + text, split into pieces that fit a log line (never inside a
 * UTF-8 sequence). */
static void log_long(const char *prefix, const char *label, const char *s,
                     size_t n)
{
    size_t off = 0;
    do {
        size_t len = n - off > PIECE ? PIECE : n - off;
        while (len < n - off && len > 0 &&
               ((unsigned char)s[off + len] & 0xC0) == 0x80)
            len--;
        if (len == 0) /* not UTF-8 after all: cut anywhere */
            len = n - off > PIECE ? PIECE : n - off;
        LOG_INFO(prefix, "  %s%s %.*s", off ? "... " : "", label, (int)len,
                 s + off);
        off += len;
    } while (off < n);
}

static void log_json(const char *prefix, const char *label, halo_buf *buf)
{
    if (buf->oom)
        LOG_INFO(prefix, "  %s (out of memory)", label);
    else
        log_long(prefix, label, buf->data ? buf->data : "", buf->len);
    halo_buf_reset(buf);
}

static void events_json(halo_buf *out, const halo_span *sp)
{
    halo_buf_putc(out, '[');
    for (size_t i = 0; i < sp->n_events; i++) {
        const halo_event *e = &sp->events[i];
        if (i)
            halo_buf_putc(out, ',');
        halo_buf_puts(out, "{\"name\":");
        put_json_str(out, e->name ? e->name : "");
        halo_buf_printf(
            out, ",\"time_unix_nano\":%" PRIu64 ",\"attributes\":", e->time_ns);
        halo_json_encode_attrs(out, &e->attrs);
        halo_buf_putc(out, '}');
    }
    halo_buf_putc(out, ']');
}

static void log_spans(const char *prefix, const halo_batch *b, bool detailed)
{
    halo_buf buf = HALO_BUF_INIT;
    const halo_resource *last_res = NULL;
    HALO_BATCH_FOREACH(b, c, sp)
    {
        if (detailed && sp->resource && sp->resource != last_res) {
            halo_json_encode_attrs(&buf, &sp->resource->attrs);
            log_json(prefix, "resource:", &buf);
            last_res = sp->resource;
        }
        span_line(&buf, sp);
        if (buf.oom)
            LOG_INFO(prefix, "(span line: out of memory)");
        else
            LOG_INFO(prefix, "%s", buf.data);
        halo_buf_reset(&buf);
        if (!detailed)
            continue;
        halo_json_encode_attrs(&buf, &sp->attrs);
        log_json(prefix, "attributes:", &buf);
        if (sp->n_events) {
            events_json(&buf, sp);
            log_json(prefix, "events:", &buf);
        }
    }
    halo_buf_free(&buf);
}

/* ---- the component ---------------------------------------------------- */

static const halo_field schema[] = {
    {.key = "verbosity",
     .type = HALO_F_ENUM,
     .offset = offsetof(debug_cfg, verbosity),
     .def = "basic",
     .enum_values = verbosity_values,
     .description = "basic: a line per batch; normal: also a line per span; "
                    "detailed: also attributes, events and resources"},
    {.key = NULL},
};

static halo_status debug_create(halo_component *self, halo_err *err)
{
    const debug_cfg *cfg = self->cfg;
    if (!cfg || cfg->verbosity < V_BASIC || cfg->verbosity > V_DETAILED)
        return halo_fail(err, HALO_EINVAL, "invalid verbosity");
    return HALO_OK;
}

static halo_status debug_consume(halo_component *self, halo_batch *b)
{
    const debug_cfg *cfg = self->cfg;
    const char *prefix = prefix_of(self);
    if (HALO_LOG_INFO >= halo_log_min_level) {
        long traces = count_traces(b);
        if (traces < 0)
            LOG_INFO(prefix, "%zu spans", b->n_spans);
        else
            LOG_INFO(prefix, "%zu spans, %ld traces", b->n_spans, traces);
        if (cfg->verbosity >= V_NORMAL)
            log_spans(prefix, b, cfg->verbosity == V_DETAILED);
    }
    halo_batch_done(b, HALO_OK, "");
    return HALO_OK;
}

static void debug_shutdown(halo_component *self)
{
    (void)self;
}

static void debug_destroy(halo_component *self)
{
    (void)self;
}

const halo_component_def halo_exporter_debug = {
    .kind = HALO_EXPORTER,
    .type = "debug",
    .description = "logs the spans it receives (nothing is stored)",
    .schema = schema,
    .cfg_size = sizeof(debug_cfg),
    .create = debug_create,
    .start = NULL,
    .consume = debug_consume,
    .shutdown = debug_shutdown,
    .destroy = debug_destroy,
};
