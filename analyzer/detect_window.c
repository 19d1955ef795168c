/*
 * detect_window.c -- the detectors that need the whole window: slow steps
 * (a step's latency distribution) and regressions (a change point in the
 * per-run series of cost or duration, over the previous window and this
 * one). README.md documents both algorithms.
 *
 * Both build a temporary group (not in the accumulator's map) and hand it
 * to finding_from_group(), like the per-run detectors' groups.
 */
#include "detect_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, size_t n, double q)
{
    return halo_percentile(v, n, q);
}

static void group_release(group *g)
{
    free(g->subject);
    free(g->example);
    free(g->runs);
    free(g->spans);
}

/* ---- slow_span ----------------------------------------------------------- */

/* Spans a log-normal body with the step's median and spread (estimated
 * robustly: the median absolute deviation of log durations, which slow
 * spans in a minority of calls barely move) would put at or above thr. */
static double expected_above(const double *sorted, size_t n, double thr,
                             double *dev)
{
    double mu = log(pct(sorted, n, 0.5) > 1e-3 ? pct(sorted, n, 0.5) : 1e-3);
    for (size_t i = 0; i < n; i++)
        dev[i] = fabs(log(sorted[i] > 1e-3 ? sorted[i] : 1e-3) - mu);
    qsort(dev, n, sizeof *dev, cmp_double);
    double sd = 1.4826 * pct(dev, n, 0.5);
    if (sd < 0.05)
        sd = 0.05;
    double z = (log(thr) - mu) / sd;
    return (double)n * 0.5 * erfc(z / sqrt(2.0));
}

static bool slow_step(halo_detect *d, size_t step, double *tmp, double *dev,
                      int32_t *mark, double *p50_out, bool *reported,
                      halo_report *r)
{
    const step_samples *v = &d->step_lat[step];
    *p50_out = -1;
    if ((int64_t)v->n < d->cfg.slow_min_samples)
        return true;
    for (size_t i = 0; i < v->n; i++)
        tmp[i] = v->v[i].ms;
    qsort(tmp, v->n, sizeof *tmp, cmp_double);
    double p25 = pct(tmp, v->n, 0.25), p50 = pct(tmp, v->n, 0.5),
           p95 = pct(tmp, v->n, 0.95);
    *p50_out = p50;
    double thr = d->cfg.slow_factor * p25;
    double excess = (double)d->cfg.slow_min_excess / 1e6;
    if (thr < p50 + excess)
        thr = p50 + excess;
    if (!(thr > 0))
        return true;
    double expected = expected_above(tmp, v->n, thr, dev);
    size_t runs = 0, n_slow = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (v->v[i].ms < thr)
            continue;
        tmp[n_slow++] = v->v[i].ms;
        if (mark[v->v[i].run] != (int32_t)step) {
            mark[v->v[i].run] = (int32_t)step;
            runs++;
        }
    }
    /* A slow mode apart from the step's body, not the tail of a wide
     * distribution: far more slow spans than the body itself explains. */
    if ((int64_t)runs < detect_needed_runs(d) ||
        (double)n_slow <= 3 * expected + 3)
        return true;
    *reported = true; /* not judged against its peers again */
    group g = {0};
    g.kind = HALO_KIND_SLOW_SPAN;
    g.subject = strdup(d->steps.keys[step]);
    g.last_unrec = -1;
    bool ok = g.subject != NULL;
    for (size_t i = 0; ok && i < v->n; i++) {
        if (v->v[i].ms < thr)
            continue;
        group_add_run(d, &g, v->v[i].run);
        group_add_span_bytes(d, &g, v->v[i].span_id);
        g.occurrences++;
        g.wasted_ms += v->v[i].ms - p50;
    }
    qsort(tmp, n_slow, sizeof *tmp, cmp_double);
    g.num[0] = p50;
    g.num[1] = p95;
    g.num[2] = pct(tmp, n_slow, 0.5);
    g.num[3] = thr;
    ok = ok && !d->oom && finding_from_group(d, &g, r);
    group_release(&g);
    return ok;
}

/* A step consistently far slower than its peers (the other steps of its
 * span type): its median at least slow_peer_factor x the median of theirs
 * and at least slow_peer_min_ms. Every run that used it is affected. */
static bool slow_vs_peers(halo_detect *d, size_t step, const double *p50s,
                          double *tmp, halo_report *r)
{
    const char *key = d->steps.keys[step];
    const char *colon = strchr(key, ':');
    size_t tl = colon ? (size_t)(colon - key) : strlen(key);
    size_t n = 0;
    for (size_t s = 0; s < d->steps.n; s++)
        if (s != step && p50s[s] >= 0 && !strncmp(d->steps.keys[s], key, tl) &&
            d->steps.keys[s][tl] == ':')
            tmp[n++] = p50s[s];
    if (n < 2)
        return true;
    qsort(tmp, n, sizeof *tmp, cmp_double);
    double peers = pct(tmp, n, 0.5), p50 = p50s[step];
    if (p50 < d->cfg.slow_peer_factor * peers ||
        p50 < (double)d->cfg.slow_peer_min / 1e6)
        return true;
    const step_samples *v = &d->step_lat[step];
    group g = {0};
    g.kind = HALO_KIND_SLOW_SPAN;
    g.subject = strdup(key);
    g.last_unrec = -1;
    bool ok = g.subject != NULL;
    for (size_t i = 0; ok && i < v->n; i++) {
        group_add_run(d, &g, v->v[i].run); /* samples are in run order */
        group_add_span_bytes(d, &g, v->v[i].span_id);
        g.occurrences++;
        if (v->v[i].ms > peers)
            g.wasted_ms += v->v[i].ms - peers;
        tmp[i] = v->v[i].ms;
    }
    qsort(tmp, v->n, sizeof *tmp, cmp_double);
    g.num[0] = p50;
    g.num[1] = pct(tmp, v->n, 0.95);
    g.num[2] = peers;
    g.num[3] = -1; /* the peers form of the wording */
    ok = ok && !d->oom && finding_from_group(d, &g, r);
    group_release(&g);
    return ok;
}

static bool slow_spans(halo_detect *d, halo_report *r)
{
    size_t max = 0;
    for (size_t s = 0; s < d->steps.n; s++)
        if (d->step_lat[s].n > max)
            max = d->step_lat[s].n;
    if (max < d->steps.n)
        max = d->steps.n;
    double *tmp = malloc((max ? max : 1) * sizeof *tmp);
    double *dev = malloc((max ? max : 1) * sizeof *dev);
    double *p50s = malloc((d->steps.n ? d->steps.n : 1) * sizeof *p50s);
    bool *rep = calloc(d->steps.n ? d->steps.n : 1, sizeof *rep);
    int32_t *mark = malloc((d->n_runs ? d->n_runs : 1) * sizeof *mark);
    bool ok = tmp && dev && mark && p50s && rep;
    for (size_t i = 0; ok && i < d->n_runs; i++)
        mark[i] = -1;
    for (size_t s = 0; ok && s < d->steps.n; s++)
        ok = slow_step(d, s, tmp, dev, mark, &p50s[s], &rep[s], r);
    for (size_t s = 0; ok && s < d->steps.n; s++)
        if (p50s[s] >= 0 && !rep[s])
            ok = slow_vs_peers(d, s, p50s, tmp, r);
    free(rep);
    free(dev);
    free(tmp);
    free(p50s);
    free(mark);
    return ok;
}

/* ---- regressions --------------------------------------------------------- */

typedef struct point {
    uint64_t start_ns;
    double x;
    int32_t run; /* -1: a run of the previous window */
} point;

static int cmp_point(const void *a, const void *b)
{
    const point *p = a, *q = b;
    if (p->start_ns != q->start_ns)
        return p->start_ns < q->start_ns ? -1 : 1;
    return p->run < q->run ? -1 : p->run > q->run;
}

static double median_of(const point *p, size_t n, double *tmp)
{
    for (size_t i = 0; i < n; i++)
        tmp[i] = p[i].x;
    qsort(tmp, n, sizeof *tmp, cmp_double);
    return pct(tmp, n, 0.5);
}

/* The split k (points [0,k) before, [k,n) after) with the largest t
 * statistic of an increase in log values; *t_out its t. -1: none. */
static long best_split(const point *p, size_t n, size_t m, double *tmp,
                       double *t_out)
{
    double med = median_of(p, n, tmp);
    double c = med * 0.01 > 1e-12 ? med * 0.01 : 1e-12;
    double *S = malloc((n + 1) * sizeof *S), *Q = malloc((n + 1) * sizeof *Q);
    long best = -1;
    double best_t = 0;
    if (S && Q) {
        S[0] = Q[0] = 0;
        for (size_t i = 0; i < n; i++) {
            double y = log((p[i].x > 0 ? p[i].x : 0) + c);
            S[i + 1] = S[i] + y;
            Q[i + 1] = Q[i] + y * y;
        }
        for (size_t k = m; k + m <= n; k++) {
            double n1 = (double)k, n2 = (double)(n - k);
            double m1 = S[k] / n1, m2 = (S[n] - S[k]) / n2;
            double ss = (Q[k] - n1 * m1 * m1) + (Q[n] - Q[k] - n2 * m2 * m2);
            double var = ss / (double)(n - 2);
            if (var < 1e-12)
                var = 1e-12;
            double t = (m2 - m1) / sqrt(var * (1 / n1 + 1 / n2));
            if (t > best_t) {
                best_t = t;
                best = (long)k;
            }
        }
    }
    free(S);
    free(Q);
    *t_out = best_t;
    return best;
}

/* The most common main model among points [a, b) of the window (-1). */
static int32_t common_model(const halo_detect *d, const point *p, size_t a,
                            size_t b)
{
    int32_t best = -1;
    size_t best_n = 0;
    size_t nm = d->models.n;
    size_t *cnt = calloc(nm ? nm : 1, sizeof *cnt);
    if (!cnt)
        return -1;
    for (size_t i = a; i < b; i++) {
        if (p[i].run < 0)
            continue;
        int32_t m = d->runs[p[i].run].main_model;
        if (m >= 0 && ++cnt[m] > best_n) {
            best_n = cnt[m];
            best = m;
        }
    }
    free(cnt);
    return best;
}

/* The step whose median latency grew most across the change; "" none. */
static void slowest_growth(const halo_detect *d, const bool *after, char *out,
                           size_t cap, double *before_ms, double *after_ms)
{
    out[0] = '\0';
    double best = 0;
    for (size_t s = 0; s < d->steps.n; s++) {
        const step_samples *v = &d->step_lat[s];
        double *a = malloc((v->n ? v->n : 1) * sizeof *a);
        double *b = malloc((v->n ? v->n : 1) * sizeof *b);
        size_t na = 0, nb = 0;
        if (a && b)
            for (size_t i = 0; i < v->n; i++) {
                if (after[v->v[i].run])
                    b[nb++] = v->v[i].ms;
                else
                    a[na++] = v->v[i].ms;
            }
        if (na >= 5 && nb >= 5) {
            qsort(a, na, sizeof *a, cmp_double);
            qsort(b, nb, sizeof *b, cmp_double);
            double ma = pct(a, na, 0.5), mb = pct(b, nb, 0.5);
            if (mb - ma > best) {
                best = mb - ma;
                snprintf(out, cap, "%s", d->steps.keys[s]);
                *before_ms = ma;
                *after_ms = mb;
            }
        }
        free(a);
        free(b);
    }
}

static bool regression(halo_detect *d, const char *kind, halo_report *r)
{
    bool latency = !strcmp(kind, HALO_KIND_LATENCY_REGRESSION);
    size_t n = d->n_runs + d->n_prev;
    size_t m = (size_t)d->cfg.regression_min_runs;
    if (n < 2 * m || d->n_runs == 0)
        return true;
    point *p = malloc(n * sizeof *p);
    double *tmp = malloc(n * sizeof *tmp);
    bool *after = calloc(d->n_runs, sizeof *after);
    bool ok = p && tmp && after;
    if (!ok)
        goto done;
    /* cost when (nearly) every run has one, else tokens */
    size_t with_cost = 0;
    for (size_t i = 0; i < d->n_runs; i++)
        with_cost += d->runs[i].cost > 0;
    for (size_t i = 0; i < d->n_prev; i++)
        with_cost += d->prev[i].cost > 0;
    bool use_cost = (double)with_cost >= 0.8 * (double)n;
    for (size_t i = 0; i < d->n_runs; i++) {
        const run_info *ri = &d->runs[i];
        p[i] = (point){ri->start_ns,
                       latency    ? ri->duration_ms
                       : use_cost ? ri->cost
                                  : (double)ri->tokens,
                       (int32_t)i};
    }
    for (size_t i = 0; i < d->n_prev; i++) {
        const prev_run *pr = &d->prev[i];
        p[d->n_runs + i] = (point){pr->start_ns,
                                   latency    ? pr->duration_ms
                                   : use_cost ? pr->cost
                                              : (double)pr->tokens,
                                   -1};
    }
    qsort(p, n, sizeof *p, cmp_point);
    double t;
    long k = best_split(p, n, m, tmp, &t);
    if (k < 0 || p[k].run < 0 || t < d->cfg.regression_min_t)
        goto done;
    double before = median_of(p, (size_t)k, tmp);
    double aft = median_of(p + k, n - (size_t)k, tmp);
    if (!(aft >= d->cfg.regression_ratio * before) || !(aft > 0))
        goto done;
    group g = {0};
    g.kind = kind;
    g.last_unrec = -1;
    g.at_ns = p[k].start_ns;
    g.num[0] = before;
    g.num[1] = aft;
    g.num[2] = t;
    g.num[3] = latency ? 0 : use_cost;
    char label[600] = "";
    if (latency) {
        char step[512];
        double b_ms = 0, a_ms = 0;
        for (size_t i = (size_t)k; i < n; i++)
            if (p[i].run >= 0)
                after[p[i].run] = true;
        slowest_growth(d, after, step, sizeof step, &b_ms, &a_ms);
        if (step[0])
            snprintf(label, sizeof label, "%s\x1f%.0f\x1f%.0f", step, b_ms,
                     a_ms);
    } else {
        int32_t mb = common_model(d, p, 0, (size_t)k);
        int32_t ma = common_model(d, p, (size_t)k, n);
        if (ma >= 0 && mb >= 0 && ma != mb)
            snprintf(label, sizeof label, "%s\x1f%s", d->models.keys[mb],
                     d->models.keys[ma]);
    }
    g.subject = strdup(label);
    ok = g.subject != NULL;
    for (size_t i = (size_t)k; ok && i < n; i++) {
        if (p[i].run < 0)
            continue;
        group_add_run(d, &g, p[i].run);
        static const uint8_t none[8];
        if (memcmp(d->runs[p[i].run].root_span, none, 8))
            group_add_span_bytes(d, &g, d->runs[p[i].run].root_span);
        g.occurrences++;
        double extra = p[i].x - before;
        if (extra <= 0)
            continue;
        if (latency)
            g.wasted_ms += extra;
        else if (use_cost)
            g.wasted_cost += extra;
        else
            g.wasted_tokens = tok_add(
                g.wasted_tokens, extra < 9e18 ? (int64_t)extra : INT64_MAX);
    }
    ok = ok && !d->oom && finding_from_group(d, &g, r);
    group_release(&g);
done:
    free(p);
    free(tmp);
    free(after);
    return ok;
}

halo_status detect_window_findings(halo_detect *d, halo_report *r,
                                   halo_err *err)
{
    if (!slow_spans(d, r) || !regression(d, HALO_KIND_COST_REGRESSION, r) ||
        !regression(d, HALO_KIND_LATENCY_REGRESSION, r))
        return halo_fail(err, HALO_ENOMEM, "out of memory analyzing runs");
    return HALO_OK;
}
