/*
 * metrics.h -- internal metrics, rendered as Prometheus text by the
 * `metrics` extension (GET /metrics).
 *
 * Metrics are registered once (at component creation) and updated lock-free
 * on hot paths. A metric is identified by name + label text; registering the
 * same pair twice returns the same metric. Histograms take a mutex per
 * observation (cheap: one per batch or request, not per span).
 *
 * Names used across halo (labels in braces):
 *   halo_receiver_accepted_spans_total{receiver,transport}
 *   halo_receiver_refused_spans_total{receiver,transport}
 *   halo_receiver_requests_total{receiver,transport,code}
 *   halo_exporter_sent_spans_total{exporter}
 *   halo_exporter_failed_spans_total{exporter}
 *   halo_exporter_queue_depth{exporter}            (gauge, batches)
 *   halo_exporter_write_seconds{exporter}          (histogram)
 *   halo_processor_batch_size{processor}           (histogram, spans)
 *   halo_processor_refused_spans_total{processor}
 *   halo_memory_inflight_bytes                     (gauge)
 *   halo_export_latency_seconds{receiver,transport} (histogram: request in
 *                                                    to answer out)
 * Security (issue 8):
 *   halo_receiver_auth_failures_total{receiver,transport,reason}
 *   halo_receiver_auth_rejected_spans_total{receiver,transport}
 *   halo_receiver_tls_refused_total{receiver,transport} (HTTP mTLS: no
 *                                                       valid client cert)
 *   halo_receiver_limit_dropped_attributes_total{receiver}
 *   halo_receiver_limit_truncated_values_total{receiver}
 *   halo_receiver_limit_refused_requests_total{receiver}
 *   halo_http_slow_headers_closed_total{...} (read_header_timeout cuts)
 *   halo_processor_redactions_total{processor}
 *   halo_processor_redacted_spans_total{processor}
 */
#ifndef HALO_METRICS_H
#define HALO_METRICS_H

#include "buf.h"

#include <stddef.h>

typedef struct halo_metric halo_metric;

/* labels: Prometheus label text without braces, e.g.
 * "receiver=\"otlp\",transport=\"grpc\"", or NULL. Never returns NULL
 * (falls back to a process-wide sink metric on OOM). */
halo_metric *halo_counter(const char *name, const char *help,
                          const char *labels);
halo_metric *halo_gauge(const char *name, const char *help, const char *labels);
/* bounds: ascending upper bounds (the +Inf bucket is implicit). */
halo_metric *halo_histogram(const char *name, const char *help,
                            const char *labels, const double *bounds,
                            size_t n_bounds);

void halo_metric_add(halo_metric *m, double v);     /* counter, gauge */
void halo_metric_set(halo_metric *m, double v);     /* gauge */
void halo_metric_observe(halo_metric *m, double v); /* histogram */
double halo_metric_value(const halo_metric *m);     /* counter, gauge */
/* The sum of every series of the counter or gauge family `name` (0 when
 * none is registered). */
double halo_metric_family_sum(const char *name);

/* The metrics every exporter keeps, one series each labelled
 * exporter="<id>", with one HELP text per family whatever the exporter. */
typedef struct halo_exporter_metrics {
    halo_metric *sent;   /* halo_exporter_sent_spans_total */
    halo_metric *failed; /* halo_exporter_failed_spans_total */
    halo_metric *depth;  /* halo_exporter_queue_depth */
    halo_metric *write;  /* halo_exporter_write_seconds */
    /* halo_exporter_duplicate_spans_total: spans the store already held
     * (a redelivery, a re-import; sqlite, postgres) */
    halo_metric *dup;
} halo_exporter_metrics;
void halo_exporter_metrics_register(halo_exporter_metrics *m, const char *id);

/* Standard bucket sets. */
extern const double halo_latency_buckets[]; /* seconds, 0.5ms .. 10s */
extern const size_t halo_latency_buckets_n;
extern const double halo_size_buckets[]; /* counts, 1 .. 65536 */
extern const size_t halo_size_buckets_n;

/* Every registered metric in the text exposition format 0.0.4. */
void halo_metrics_render(halo_buf *out);
/* Forget every metric (tests, and the end of main under sanitizers). */
void halo_metrics_reset(void);

#endif
