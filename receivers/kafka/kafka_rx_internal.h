/*
 * kafka_rx_internal.h -- what the Kafka receiver's files share.
 *
 * The receiver is split by concern:
 *   kafka_receiver.c    the component: config schema, create (builds and
 *                       checks the librdkafka confs), start, shutdown
 *   kafka_rx_poll.c     the poll thread: consume, decode, gather messages
 *                       into batches, emit; the per-message ack; retries,
 *                       poison messages, pause/resume, the final drain
 *   kafka_rx_rebalance.c the partition table and the rebalance callback
 *                       (wait for the revoked partitions' confirmations,
 *                       commit, unassign)
 *   kafka_rx_dlq.c      the dead-letter producer and its thread
 *   kafka_rx_offsets.c  the per-partition contiguous-done-prefix tracker
 *   kafka_rx_nudge.c    waking librdkafka's fetcher once its prefetch queue
 *                       drained (librdkafka < 2.2 idles it up to a second)
 *
 * At-least-once: a message's offset is stored (rd_kafka_offsets_store, then
 * committed by librdkafka's auto-commit, at revocation and at close) only
 * once the message and every earlier one of its partition are done: its
 * batch was confirmed durable downstream, or it was a poison message that
 * was skipped or delivered to the dead-letter topic. Everything else is
 * retried, or left uncommitted for the next owner of the partition.
 *
 * Threads and the one lock: the poll thread owns the consumer handle and
 * the batch being gathered. Acks run on whatever thread confirmed a batch
 * (an exporter's writer), dead-letter delivery reports on the DLQ thread.
 * Everything they share -- partitions, trackers, the pending list,
 * in-flight counts -- is guarded by core->mu. No lock is held while
 * calling halo_emit() (an ack may run inside it) or any blocking
 * librdkafka call.
 *
 * Lifetime: a message that went downstream may be confirmed after the
 * component was destroyed (an exporter slower than the drain deadline), so
 * the state its ack touches lives in krx_core, which is freed by whoever
 * drops its last user: the component (destroy) or the last live message.
 */
#ifndef HALO_KAFKA_RX_INTERNAL_H
#define HALO_KAFKA_RX_INTERNAL_H

#include "../../core/batch.h"
#include "../../core/component.h"
#include "../../core/kafka.h"
#include "../../core/metrics.h"
#include "kafka_rx_offsets.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- configuration (filled by the schema in kafka_receiver.c) ----------- */

enum { KRX_EARLIEST = 0, KRX_LATEST };
enum { KRX_OTLP_PROTO = 0, KRX_OTLP_JSON };

typedef struct krx_cfg {
    halo_strlist brokers;
    halo_strlist topics;
    char *group_id;
    int initial_offset;
    int encoding;
    char *dead_letter_topic;
    int64_t max_inflight_messages;
    int64_t max_inflight_bytes;
    int64_t commit_interval_ns;
    int64_t drain_timeout_ns;
    halo_kvlist rdkafka;
} krx_cfg;

/* ---- partitions and messages ------------------------------------------- */

typedef struct krx_part {
    char *topic;
    int32_t partition;
    krx_track track;
    int64_t stored;  /* last offset handed to rd_kafka_offsets_store; -1 */
    size_t inflight; /* messages tracked and not yet finished */
    int refs;        /* the table's (while assigned) + one per message */
    bool revoking;   /* being revoked: confirmations still store, retries
                        are dropped */
    bool revoked;    /* no longer ours: never store again */
    struct krx_part *next; /* in the table */
} krx_part;

typedef enum krx_state {
    KRX_DOWNSTREAM = 0, /* in a batch, waiting for its ack */
    KRX_RETRY,          /* on the pending list, to be emitted again */
    KRX_DEAD_LETTER,    /* on the pending list, to be produced to the DLQ */
    KRX_DLQ_SENT,       /* produced, waiting for the delivery report */
} krx_state;

typedef struct krx_core krx_core;

/* One consumed message, from the poll until it is finished. The payload
 * and key are copied behind the struct, so nothing of librdkafka's is
 * held (a late ack after the handle was destroyed stays safe). */
typedef struct krx_msg {
    krx_core *k;
    krx_part *part;
    uint64_t seq; /* in part->track */
    int64_t offset;
    const uint8_t *payload;
    size_t len;
    const uint8_t *key; /* NULL: no key */
    size_t key_len;
    size_t n_spans;    /* spans in its last emitted batch */
    unsigned attempts; /* retryable failures so far */
    bool alone;        /* its last batch carried no other message */
    bool isolated;     /* already retried alone after a permanent failure */
    krx_state state;
    uint64_t due_ns;      /* KRX_RETRY / KRX_DEAD_LETTER: not before */
    char why[256];        /* poison reason (log, dead-letter header) */
    struct krx_msg *next; /* pending list, or the batch being gathered */
} krx_msg;

/* The batch the poll thread is gathering (poll thread only). */
/* The messages being gathered into one batch. They are all decoded into
 * ONE arena and their spans become ONE chunk at the flush: a message holds
 * one trace (~10 spans), and an arena per message cost ~70 KB of blocks per
 * message, 7x the spans themselves. Each message keeps its own ack. */
typedef struct krx_run {
    halo_span *spans;
    size_t n;
} krx_run;

typedef struct krx_gather {
    halo_batch *b;
    halo_arena *arena; /* shared by the gathered messages; NULL: none yet */
    krx_run *runs;     /* each gathered message's spans, in order */
    size_t n_runs;
    size_t cap_runs;
    krx_msg *head;
    krx_msg *tail;
    size_t n_msgs;
    size_t n_spans;
    size_t bytes;
} krx_gather;

typedef struct krx_metrics {
    halo_metric *accepted;     /* halo_receiver_accepted_spans_total */
    halo_metric *refused;      /* halo_receiver_refused_spans_total */
    halo_metric *skip_decode;  /* ..._skipped_messages_total{reason=decode} */
    halo_metric *skip_refused; /* {reason="rejected"} (downstream) */
    halo_metric *dead_letter;  /* ..._dead_letter_messages_total */
    halo_metric *retried;      /* ..._retried_messages_total */
    halo_metric *inflight;     /* ..._inflight_messages (gauge) */
    halo_metric *paused;       /* ..._paused (gauge, 0/1) */
    halo_metric *pauses;       /* ..._pauses_total */
    halo_metric *nudges;       /* ..._fetch_wakeups_total */
} krx_metrics;

/* Waking librdkafka's fetcher (kafka_rx_nudge.c; poll thread only). */
typedef struct krx_nudge {
    bool enabled;         /* librdkafka < 2.2 (no fetch.queue.backoff.ms) */
    rd_kafka_queue_t *cq; /* the consumer queue, while started */
    size_t max_bytes;     /* queued.max.messages.kbytes, in bytes */
    size_t max_msgs;      /* queued.min.messages */
    double avg_len;       /* mean payload of the messages taken */
    bool armed;           /* the queue was near a limit since the last one */
    uint64_t last_ns;
    uint64_t sent; /* the nudge thread's (or the poll thread's) */
    /* The request is sent from a thread of its own, so the poll thread
     * goes on decoding while it waits for the answer (a round trip per
     * leader). mu guards want and quit. */
    pthread_t thread;
    bool threaded; /* the thread runs; else the poll thread sends */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool want, quit;
} krx_nudge;

struct krx_core {
    halo_kafka_opaque opaque; /* FIRST: librdkafka's opaque (log prefix) */
    char *prefix;             /* owned copy of the component's log prefix */
    halo_component *self;     /* poll thread only, until shutdown */
    bool json;
    uint64_t drain_ns;
    size_t max_msgs;
    size_t max_bytes;
    char *dlq_topic; /* NULL: poison messages are skipped */

    rd_kafka_conf_t *conf;     /* until start hands it to rd_kafka_new */
    rd_kafka_conf_t *dlq_conf; /* likewise */
    rd_kafka_topic_partition_list_t *topics;
    rd_kafka_t *rk;  /* consumer; NULL before start and after close */
    rd_kafka_t *dlq; /* dead-letter producer, or NULL */

    pthread_t poll_thread;
    bool poll_running;
    atomic_bool stop;
    pthread_t dlq_thread;
    bool dlq_running;
    atomic_bool dlq_stop;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* a message finished (in-flight went down) */
    krx_part *parts;   /* the assignment's partitions */
    krx_msg *pending;  /* KRX_RETRY and KRX_DEAD_LETTER messages */
    uint64_t next_due; /* earliest due_ns on the pending list; 0: none */
    size_t inflight;   /* messages consumed and not finished */
    size_t inflight_bytes;
    size_t alive;        /* krx_msg structs allocated */
    bool closing;        /* drain over: never store again */
    bool destroyed;      /* the component let go; last message frees */
    bool paused;         /* poll thread only */
    uint64_t full_since; /* poll thread: in-flight limit reached at; 0 */
    bool cooperative;    /* poll thread only: incremental rebalance protocol */

    krx_gather gather; /* poll thread only */
    krx_nudge nudge;   /* poll thread, and its own thread (mu) */
    krx_metrics m;

    pthread_mutex_t log_mu; /* rate limit of per-message warnings */
    uint64_t log_window;
    unsigned log_count;
    unsigned log_suppressed;
};

/* ---- kafka_rx_poll.c --------------------------------------------------- */

/* The poll thread's body (arg: krx_core). Returns after stop is set, the
 * in-flight messages were drained (bounded) and the consumer was closed. */
void *krx_poll_main(void *arg);

/* Emit the batch being gathered (poll thread; no lock held). */
void krx_flush(krx_core *k);

/* Finish a message for good (done: store its offset when that moves the
 * partition's committable offset). With k->mu held; the caller frees the
 * core afterwards when this returns true. */
bool krx_finish_locked(krx_core *k, krx_msg *m, bool done);

/* A message that cannot be stored: log, count, then skip it or send it to
 * the dead-letter topic. reason is the metric label ("decode" or
 * "rejected"). Takes k->mu itself; true when the caller must free the core.
 */
bool krx_poison(krx_core *k, krx_msg *m, const char *reason, const char *why);

/* Put a message on the pending list, due at due_ns (k->mu held). Messages
 * of partitions being revoked are finished without storing instead. */
bool krx_schedule_locked(krx_core *k, krx_msg *m, krx_state st,
                         uint64_t due_ns);

/* Free the core once nobody uses it. */
void krx_core_free(krx_core *k);

/* A warning about one message, at most a few per second. */
void krx_warn_limited(krx_core *k, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- kafka_rx_rebalance.c ---------------------------------------------- */

void krx_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts, void *opaque);
/* The tracker of topic/partition, made when missing (k->mu held). NULL
 * when out of memory. */
krx_part *krx_part_get_locked(krx_core *k, const char *topic,
                              int32_t partition);
/* Drop one reference (k->mu held). */
void krx_part_unref_locked(krx_part *p);
/* Mark every partition revoked and forget them (k->mu held). */
void krx_parts_forget_locked(krx_core *k);

/* ---- kafka_rx_nudge.c ------------------------------------------------- */

/* Whether librdkafka has fetch.queue.backoff.ms (2.2+): then no nudges. */
bool krx_fetch_backoff_supported(void);
/* Read the queue limits from the consumer conf (create). */
void krx_nudge_init(krx_core *k, const rd_kafka_conf_t *conf);
/* Take / release the consumer queue handle (poll thread, k->rk set). */
void krx_nudge_start(krx_core *k);
void krx_nudge_stop(krx_core *k);
/* A message of len payload bytes was taken from the queue. */
void krx_nudge_taken(krx_core *k, size_t len);
/* Wake the fetcher when the queue drained after being near a limit. */
void krx_nudge_check(krx_core *k);

/* ---- kafka_rx_dlq.c ---------------------------------------------------- */

/* The producer conf: brokers, acks=all, idempotence, and the rdkafka.*
 * keys that are not consumer-only. */
rd_kafka_conf_t *krx_dlq_conf_new(krx_core *k, const krx_cfg *cfg,
                                  halo_err *err);
halo_status krx_dlq_start(krx_core *k, halo_err *err);
/* Produce m (KRX_DEAD_LETTER) with its key and bytes, plus headers naming
 * where it came from and why; on a local failure it is rescheduled. */
void krx_dlq_send(krx_core *k, krx_msg *m);
/* Purge what is queued, serve the delivery reports, stop the thread,
 * destroy the producer. */
void krx_dlq_stop(krx_core *k);

#endif
