/*
 * run.c -- one analysis of one agent's window, and saving its report.
 *
 * halo_analyze() reads, in this order: the window's statistics
 * (agent_stats), the previous window's runs (list_traces: the regressions
 * compare with them), then the window's runs streamed one trace at a time
 * (scan_window) into the detectors. Nothing here depends on the backend.
 *
 * halo_report_save() writes the `reports` row and the two files; each file
 * is written to a temporary name and renamed, so a reader never sees half
 * a report.
 */
#include "analyzer.h"

#include "../core/arena.h"
#include "../core/buf.h"
#include "../core/clock.h"
#include "../core/fs.h"
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct scan_ctx {
    halo_detect *d;
    const halo_analyze_req *req;
    int64_t done;
    int64_t total;
    uint64_t last_progress; /* monotonic ns */
    halo_status st;
    halo_err err;
} scan_ctx;

static int on_trace(void *ctx, const halo_scan_trace *t)
{
    scan_ctx *c = ctx;
    c->st = halo_detect_add(c->d, t, &c->err);
    if (c->st != HALO_OK)
        return 1;
    /* the clock is read every 64 runs, progress told once a second */
    if (++c->done % 64 != 0 || !c->req->progress)
        return 0;
    uint64_t now = halo_mono_ns();
    if (now - c->last_progress < 1000000000u)
        return 0;
    c->last_progress = now;
    if (!c->req->progress(c->req->progress_ctx, c->done, c->total)) {
        c->st = halo_fail(&c->err, HALO_ESHUTDOWN, "analysis stopped");
        return 1;
    }
    return 0;
}

/* The agent's row of the window's statistics (zeros: no runs). */
static halo_status window_stats(halo_store *st, const halo_analyze_req *req,
                                halo_report_stats *out, halo_err *err)
{
    memset(out, 0, sizeof *out);
    halo_arena *a = halo_arena_new(0);
    if (!a)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    halo_agent_stats *rows = NULL;
    size_t n = 0;
    halo_status s = st->ops->agent_stats(st, req->window_start_ns,
                                         req->window_end_ns, a, &rows, &n, err);
    for (size_t i = 0; s == HALO_OK && i < n; i++) {
        if (!rows[i].agent_id || strcmp(rows[i].agent_id, req->agent_id))
            continue;
        out->traces = rows[i].runs;
        out->spans = rows[i].spans;
        out->error_traces = rows[i].error_runs;
        out->p50_ms = rows[i].p50_ms;
        out->p95_ms = rows[i].p95_ms;
        out->input_tokens = rows[i].input_tokens;
        out->output_tokens = rows[i].output_tokens;
        out->cost = rows[i].cost;
        out->priced_spans = rows[i].priced_spans;
    }
    halo_arena_free(a);
    return s;
}

/* The runs of the window just before this one, for the regressions. */
static halo_status previous_window(halo_store *st, const halo_analyze_req *req,
                                   halo_detect *d, halo_err *err)
{
    uint64_t len = req->window_end_ns - req->window_start_ns;
    halo_trace_filter f = {0};
    f.agent_id = req->agent_id;
    f.until_ns = req->window_start_ns;
    f.since_ns = req->window_start_ns > len ? req->window_start_ns - len : 1;
    halo_arena *a = halo_arena_new(0);
    if (!a)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    halo_trace_row *rows = NULL;
    size_t n = 0;
    halo_status s = st->ops->list_traces(st, &f, a, &rows, &n, err);
    for (size_t i = 0; s == HALO_OK && i < n; i++)
        halo_detect_add_previous(d, &rows[i]);
    halo_arena_free(a);
    return s;
}

halo_status halo_analyze(halo_store *st, const halo_analyze_req *req,
                         halo_report **out, halo_err *err)
{
    *out = NULL;
    if (!req->agent_id || !*req->agent_id)
        return halo_fail(err, HALO_EINVAL, "no agent to analyze");
    if (req->window_end_ns <= req->window_start_ns)
        return halo_fail(err, HALO_EINVAL, "the window is empty");
    halo_report *r = calloc(1, sizeof *r);
    halo_detect *d = halo_detect_new(req->cfg);
    halo_status s = HALO_ENOMEM;
    if (!r || !d) {
        halo_errf(err, "out of memory");
        goto fail;
    }
    r->agent_id = strdup(req->agent_id);
    r->schedule = strdup(req->schedule ? req->schedule : "manual");
    if (!r->agent_id || !r->schedule) {
        halo_errf(err, "out of memory");
        goto fail;
    }
    r->window_start_ns = req->window_start_ns;
    r->window_end_ns = req->window_end_ns;
    r->mode = "detectors";
    halo_report_make_id(r->agent_id, r->schedule, r->window_start_ns, r->id);
    if ((s = window_stats(st, req, &r->stats, err)) != HALO_OK ||
        (s = previous_window(st, req, d, err)) != HALO_OK)
        goto fail;
    scan_ctx c = {d, req, 0, r->stats.traces, halo_mono_ns(), HALO_OK, {{0}}};
    halo_scan_filter f = {req->agent_id, req->window_start_ns,
                          req->window_end_ns, 0};
    if ((s = st->ops->scan_window(st, &f, on_trace, &c, err)) != HALO_OK)
        goto fail;
    if (c.st != HALO_OK) {
        s = c.st;
        *err = c.err;
        goto fail;
    }
    if ((s = halo_detect_finish(d, r, err)) != HALO_OK)
        goto fail;
    r->generated_at_ns = halo_real_ns();
    halo_detect_free(d);
    *out = r;
    return HALO_OK;
fail:
    halo_detect_free(d);
    halo_report_free(r);
    return s;
}

/* ---- saving -------------------------------------------------------------- */

/* A name safe as one path component: '/', control characters and a
 * leading '.' become '_', at most 200 bytes; when anything had to change,
 * "-" and 8 hex digits of the name's hash follow, so two different names
 * ("a/b", "a_b") never share a directory. */
static void safe_component(const char *s, char *out, size_t cap)
{
    size_t n = 0, len = strlen(s);
    bool changed = len == 0 || len > 200;
    for (const char *p = s; *p && n < 200 && n + 1 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        bool bad = c == '/' || c < 0x20 || c == 0x7f || (n == 0 && c == '.');
        out[n++] = bad ? '_' : (char)c;
        changed |= bad;
    }
    if (n == 0)
        out[n++] = '_';
    out[n] = '\0';
    if (changed && n + 10 < cap)
        snprintf(out + n, cap - n, "-%08x",
                 (unsigned)(halo_text_hash(s, len) & 0xffffffffu));
}

static halo_status write_file(const char *path, const char *text, halo_err *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return halo_fail(err, HALO_EIO, "could not write \"%s\": %s", tmp,
                         strerror(errno));
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return halo_fail(err, HALO_EIO, "could not write \"%s\": %s", tmp,
                             strerror(e));
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return halo_fail(err, HALO_EIO, "could not write \"%s\": %s", path,
                         strerror(e));
    }
    return HALO_OK;
}

halo_status halo_report_base_path(const char *dir, const char *agent_id,
                                  const char *schedule,
                                  uint64_t window_start_ns, char *out,
                                  size_t cap, halo_err *err)
{
    char agent[256], sched[256], start[HALO_ISO_NS_LEN];
    safe_component(agent_id, agent, sizeof agent);
    safe_component(schedule, sched, sizeof sched);
    halo_iso_from_ns(window_start_ns, start);
    if (window_start_ns % 1000000000u == 0)
        strcpy(start + 19, "Z");
    int n = snprintf(out, cap, "%s/%s/%s", dir, agent, sched);
    if (n < 0 || (size_t)n + HALO_ISO_NS_LEN + 2 >= cap)
        return halo_fail(err, HALO_EINVAL, "reports_dir path is too long");
    halo_status s = halo_mkdir_p(out, 0755, err);
    if (s == HALO_OK)
        snprintf(out + n, cap - (size_t)n, "/%s", start);
    return s;
}

static halo_status save_files(const halo_report *r, const char *dir,
                              const char *json, const char *md, halo_err *err)
{
    char path[4096];
    halo_status s =
        halo_report_base_path(dir, r->agent_id, r->schedule, r->window_start_ns,
                              path, sizeof path - 8, err);
    if (s != HALO_OK)
        return s;
    size_t base = strlen(path);
    snprintf(path + base, sizeof path - base, ".json");
    if ((s = write_file(path, json, err)) != HALO_OK)
        return s;
    snprintf(path + base, sizeof path - base, ".md");
    return write_file(path, md, err);
}

halo_status halo_report_save(halo_store *st, const halo_report *r,
                             const char *reports_dir, halo_err *err)
{
    char *json = halo_report_json(r);
    char *md = halo_report_markdown(r);
    halo_status s = HALO_OK;
    if (!json || !md) {
        s = halo_fail(err, HALO_ENOMEM, "out of memory rendering a report");
        goto done;
    }
    char ws[HALO_ISO_NS_LEN], we[HALO_ISO_NS_LEN], gen[HALO_ISO_NS_LEN];
    halo_iso_from_ns(r->window_start_ns, ws);
    halo_iso_from_ns(r->window_end_ns, we);
    halo_iso_from_ns(r->generated_at_ns, gen);
    halo_report_row row = {r->id, r->agent_id, r->schedule, ws,   we,
                           gen,   r->mode,     r->model,    json, md};
    if (st && (s = st->ops->put_report(st, &row, err)) != HALO_OK)
        goto done;
    if (reports_dir && *reports_dir)
        s = save_files(r, reports_dir, json, md, err);
done:
    free(json);
    free(md);
    return s;
}
