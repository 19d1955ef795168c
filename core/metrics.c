/*
 * metrics.c -- internal metrics registry (metrics.h).
 *
 * A fixed-capacity array of metrics guarded by a mutex for registration and
 * rendering; values are atomics (counters and gauges keep doubles as bit
 * patterns updated by compare-and-swap), histograms take their own mutex.
 * Registration happens at component creation, never on hot paths.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mtype { M_COUNTER, M_GAUGE, M_HISTOGRAM };

#define MAX_METRICS 512
#define MAX_BUCKETS 24

struct halo_metric {
    enum mtype type;
    char *name;
    char *help;
    char *labels;
    _Atomic uint64_t bits; /* double, counters and gauges */
    pthread_mutex_t mu;    /* histograms */
    double bounds[MAX_BUCKETS];
    uint64_t counts[MAX_BUCKETS + 1];
    size_t n_bounds;
    double sum;
    uint64_t count;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static halo_metric *metrics[MAX_METRICS];
static size_t n_metrics;
static halo_metric sink; /* used when the registry is full or OOM */

const double halo_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                       0.025,  0.05,  0.1,    0.25,  0.5,
                                       1,      2.5,   5,      10};
const size_t halo_latency_buckets_n =
    sizeof halo_latency_buckets / sizeof *halo_latency_buckets;
const double halo_size_buckets[] = {1,    4,    16,   64,    256,   1024,
                                    2048, 4096, 8192, 16384, 32768, 65536};
const size_t halo_size_buckets_n =
    sizeof halo_size_buckets / sizeof *halo_size_buckets;

static double from_bits(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static halo_metric *reg(enum mtype type, const char *name, const char *help,
                        const char *labels, const double *bounds, size_t nb)
{
    const char *l = labels ? labels : "";
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < n_metrics; i++) {
        if (strcmp(metrics[i]->name, name) == 0 &&
            strcmp(metrics[i]->labels, l) == 0) {
            pthread_mutex_unlock(&reg_mu);
            return metrics[i];
        }
    }
    halo_metric *m = NULL;
    if (n_metrics < MAX_METRICS && (m = calloc(1, sizeof *m))) {
        m->type = type;
        m->name = strdup(name);
        m->help = strdup(help ? help : "");
        m->labels = strdup(l);
        if (!m->name || !m->help || !m->labels) {
            free(m->name);
            free(m->help);
            free(m->labels);
            free(m);
            m = NULL;
        }
    }
    if (m) {
        pthread_mutex_init(&m->mu, NULL);
        if (nb > MAX_BUCKETS)
            nb = MAX_BUCKETS;
        if (nb)
            memcpy(m->bounds, bounds, nb * sizeof *bounds);
        m->n_bounds = nb;
        metrics[n_metrics++] = m;
    }
    pthread_mutex_unlock(&reg_mu);
    return m ? m : &sink;
}

halo_metric *halo_counter(const char *name, const char *help,
                          const char *labels)
{
    return reg(M_COUNTER, name, help, labels, NULL, 0);
}

halo_metric *halo_gauge(const char *name, const char *help, const char *labels)
{
    return reg(M_GAUGE, name, help, labels, NULL, 0);
}

halo_metric *halo_histogram(const char *name, const char *help,
                            const char *labels, const double *bounds,
                            size_t n_bounds)
{
    return reg(M_HISTOGRAM, name, help, labels, bounds, n_bounds);
}

void halo_metric_add(halo_metric *m, double v)
{
    uint64_t old = atomic_load(&m->bits);
    while (!atomic_compare_exchange_weak(&m->bits, &old,
                                         to_bits(from_bits(old) + v)))
        ;
}

void halo_metric_set(halo_metric *m, double v)
{
    atomic_store(&m->bits, to_bits(v));
}

void halo_metric_observe(halo_metric *m, double v)
{
    if (m == &sink)
        return;
    pthread_mutex_lock(&m->mu);
    size_t i = 0;
    while (i < m->n_bounds && v > m->bounds[i])
        i++;
    m->counts[i]++;
    m->sum += v;
    m->count++;
    pthread_mutex_unlock(&m->mu);
}

double halo_metric_value(const halo_metric *m)
{
    return from_bits(atomic_load(&((halo_metric *)m)->bits));
}

double halo_metric_family_sum(const char *name)
{
    double sum = 0;
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < n_metrics; i++)
        if (metrics[i]->type != M_HISTOGRAM &&
            strcmp(metrics[i]->name, name) == 0)
            sum += halo_metric_value(metrics[i]);
    pthread_mutex_unlock(&reg_mu);
    return sum;
}

static void render_labels(halo_buf *out, const char *labels, const char *extra)
{
    bool any = labels[0] || extra;
    if (!any)
        return;
    halo_buf_putc(out, '{');
    halo_buf_puts(out, labels);
    if (extra) {
        if (labels[0])
            halo_buf_putc(out, ',');
        halo_buf_puts(out, extra);
    }
    halo_buf_putc(out, '}');
}

void halo_metrics_render(halo_buf *out)
{
    static const char *const tnames[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < n_metrics; i++) {
        halo_metric *m = metrics[i];
        bool first = true; /* HELP/TYPE once per name */
        for (size_t j = 0; j < i; j++)
            if (strcmp(metrics[j]->name, m->name) == 0)
                first = false;
        if (first)
            halo_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name,
                            m->help, m->name, tnames[m->type]);
        if (m->type != M_HISTOGRAM) {
            halo_buf_puts(out, m->name);
            render_labels(out, m->labels, NULL);
            halo_buf_printf(out, " %.17g\n", halo_metric_value(m));
            continue;
        }
        pthread_mutex_lock(&m->mu);
        uint64_t cum = 0;
        char le[64];
        for (size_t b = 0; b <= m->n_bounds; b++) {
            cum += m->counts[b];
            if (b < m->n_bounds)
                snprintf(le, sizeof le, "le=\"%g\"", m->bounds[b]);
            else
                snprintf(le, sizeof le, "le=\"+Inf\"");
            halo_buf_printf(out, "%s_bucket", m->name);
            render_labels(out, m->labels, le);
            halo_buf_printf(out, " %llu\n", (unsigned long long)cum);
        }
        halo_buf_printf(out, "%s_sum", m->name);
        render_labels(out, m->labels, NULL);
        halo_buf_printf(out, " %.17g\n", m->sum);
        halo_buf_printf(out, "%s_count", m->name);
        render_labels(out, m->labels, NULL);
        halo_buf_printf(out, " %llu\n", (unsigned long long)m->count);
        pthread_mutex_unlock(&m->mu);
    }
    pthread_mutex_unlock(&reg_mu);
}

void halo_metrics_reset(void)
{
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < n_metrics; i++) {
        pthread_mutex_destroy(&metrics[i]->mu);
        free(metrics[i]->name);
        free(metrics[i]->help);
        free(metrics[i]->labels);
        free(metrics[i]);
    }
    n_metrics = 0;
    pthread_mutex_unlock(&reg_mu);
}

void halo_exporter_metrics_register(halo_exporter_metrics *m, const char *id)
{
    char labels[256];
    snprintf(labels, sizeof labels, "exporter=\"%s\"", id);
    m->sent = halo_counter("halo_exporter_sent_spans_total",
                           "spans confirmed durable by the exporter", labels);
    m->failed = halo_counter("halo_exporter_failed_spans_total",
                             "spans the exporter answered with a failure "
                             "(write error, queue full, store or brokers "
                             "down, shutting down)",
                             labels);
    m->depth = halo_gauge("halo_exporter_queue_depth",
                          "work waiting in the exporter (sqlite, postgres: "
                          "batches; kafka: messages awaiting delivery "
                          "reports)",
                          labels);
    m->write = halo_histogram(
        "halo_exporter_write_seconds",
        "time of one exporter write (sqlite, postgres: a transaction; kafka: "
        "a batch from consume to its last delivery report)",
        labels, halo_latency_buckets, halo_latency_buckets_n);
    m->dup = halo_counter("halo_exporter_duplicate_spans_total",
                          "spans the store already held, so not written "
                          "again (a redelivery or a re-import; sqlite, "
                          "postgres)",
                          labels);
}
