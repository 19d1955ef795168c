/*
 * kafka_rx_nudge.c -- waking librdkafka's fetcher when its queue drained.
 *
 * librdkafka before 2.2 stops fetching a partition while the consumer
 * queue (all partitions' prefetched messages, they are forwarded into one
 * queue) holds queued.max.messages.kbytes or queued.min.messages, and the
 * broker thread re-evaluates that only when something wakes it: a fetch
 * response, an op, or its one-second timer. Once the whole queue filled,
 * no fetch is outstanding, so the fetcher idles for up to a second however
 * fast the queue drains: throughput is capped at about one queue per
 * second (32 MiB/s with halo's queue), the rest of the second idle.
 * librdkafka 2.2 made that backoff configurable (fetch.queue.backoff.ms,
 * which kafka_receiver.c sets when the library has it); with an older one
 * this file wakes the broker threads itself.
 *
 * The poll thread tracks an estimate of the queue's bytes (its length from
 * rd_kafka_queue_length times the mean payload of the messages taken).
 * When a message is taken from a queue whose estimate (that message
 * included) reached three quarters of a limit, the fetcher may have
 * stopped ("armed"); once the queue fell to half, the receiver sends
 * ListOffsets for the assigned partitions (rd_kafka_offsets_for_times,
 * one small request per leader broker): the request is an op on each
 * leader's broker thread, which wakes it, and the thread re-decides which
 * partitions to fetch. Nothing of the fetch state is touched (a seek or a
 * pause would drop the prefetched messages), the answer is ignored. A
 * consumer that keeps up never fills its queue and never sends one.
 *
 * The request waits for its answer, so a thread of its own sends it: the
 * poll thread only raises a flag and goes on taking the half of the queue
 * still there. In the poll thread, the waits for the answers were ~80 ms
 * per 600,000 spans of the Kafka -> PostgreSQL benchmark in which nothing
 * was decoded (bench/README.md, session 13).
 */
#include "kafka_rx_internal.h"

#include "../../core/clock.h"
#include "../../core/log.h"

#include <stdlib.h>

#define NUDGE_TIMEOUT_MS 200 /* the request is answered in one round trip */
#define NUDGE_MIN_GAP_NS 5000000ull /* at most one nudge per 5 ms */
#define AVG_WEIGHT 16               /* mean payload: 1/16 per new message */

/* fetch.queue.backoff.ms appeared in librdkafka 2.2.0 */
bool krx_fetch_backoff_supported(void)
{
    return rd_kafka_version() >= 0x020200ff;
}

void krx_nudge_init(krx_core *k, const rd_kafka_conf_t *conf)
{
    krx_nudge *n = &k->nudge;
    char v[64];
    size_t sz = sizeof v;
    n->max_bytes = 65536u * 1024u; /* librdkafka's defaults */
    n->max_msgs = 100000;
    if (rd_kafka_conf_get(conf, "queued.max.messages.kbytes", v, &sz) ==
        RD_KAFKA_CONF_OK)
        n->max_bytes = (size_t)strtoull(v, NULL, 10) * 1024u;
    sz = sizeof v;
    if (rd_kafka_conf_get(conf, "queued.min.messages", v, &sz) ==
        RD_KAFKA_CONF_OK)
        n->max_msgs = (size_t)strtoull(v, NULL, 10);
    n->enabled = !krx_fetch_backoff_supported();
}

static void nudge(krx_core *k);

static void *nudge_main(void *arg)
{
    krx_core *k = arg;
    krx_nudge *n = &k->nudge;
    pthread_setname_np(pthread_self(), "kafka-rx-nudge");
    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (!n->want && !n->quit)
            pthread_cond_wait(&n->cv, &n->mu);
        if (n->quit)
            break;
        n->want = false;
        pthread_mutex_unlock(&n->mu);
        nudge(k);
        pthread_mutex_lock(&n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

void krx_nudge_start(krx_core *k)
{
    krx_nudge *n = &k->nudge;
    if (!n->enabled)
        return;
    n->cq = rd_kafka_queue_get_consumer(k->rk);
    n->want = n->quit = false;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    n->threaded = pthread_create(&n->thread, NULL, nudge_main, k) == 0;
    if (!n->threaded) {
        LOG_WARN(k->prefix, "could not start the fetcher wake-up thread; "
                            "the poll thread sends the wake-ups");
        pthread_cond_destroy(&n->cv);
        pthread_mutex_destroy(&n->mu);
    }
}

/* Before the consumer closes: no request is under way after it. */
void krx_nudge_stop(krx_core *k)
{
    krx_nudge *n = &k->nudge;
    if (n->threaded) {
        pthread_mutex_lock(&n->mu);
        n->quit = true;
        pthread_cond_signal(&n->cv);
        pthread_mutex_unlock(&n->mu);
        pthread_join(n->thread, NULL);
        pthread_cond_destroy(&n->cv);
        pthread_mutex_destroy(&n->mu);
        n->threaded = false;
    }
    if (n->cq)
        rd_kafka_queue_destroy(n->cq);
    n->cq = NULL;
}

/* Whether a queue of len messages may have stopped the fetcher. */
static bool near_limit(const krx_nudge *n, size_t len)
{
    return (double)len * 4 >= (double)n->max_msgs * 3 ||
           (double)len * n->avg_len * 4 >= (double)n->max_bytes * 3;
}

void krx_nudge_taken(krx_core *k, size_t len)
{
    krx_nudge *n = &k->nudge;
    if (!n->cq)
        return;
    if (n->avg_len == 0)
        n->avg_len = (double)len;
    else
        n->avg_len += ((double)len - n->avg_len) / AVG_WEIGHT;
    /* the queue as the fetcher last saw it held this message too */
    if (!n->armed && near_limit(n, rd_kafka_queue_length(n->cq) + 1))
        n->armed = true;
}

/* Ask every leader of an assigned partition for its end offset: the
 * request wakes the leader's broker thread. */
static void nudge(krx_core *k)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(k->rk, &a) != RD_KAFKA_RESP_ERR_NO_ERROR || !a)
        return;
    if (a->cnt > 0) {
        for (int i = 0; i < a->cnt; i++)
            a->elems[i].offset = RD_KAFKA_OFFSET_END;
        rd_kafka_resp_err_t e =
            rd_kafka_offsets_for_times(k->rk, a, NUDGE_TIMEOUT_MS);
        if (e)
            LOG_DEBUG(k->prefix, "fetcher wake-up: %s", rd_kafka_err2str(e));
        k->nudge.sent++;
        halo_metric_add(k->m.nudges, 1);
    }
    rd_kafka_topic_partition_list_destroy(a);
}

void krx_nudge_check(krx_core *k)
{
    krx_nudge *n = &k->nudge;
    if (!n->cq || !n->armed || k->paused)
        return;
    size_t len = rd_kafka_queue_length(n->cq);
    if ((double)len * 2 > (double)n->max_msgs ||
        (double)len * n->avg_len * 2 > (double)n->max_bytes)
        return; /* still more than half full */
    uint64_t now = halo_mono_ns();
    if (now - n->last_ns < NUDGE_MIN_GAP_NS)
        return;
    n->armed = false;
    n->last_ns = now;
    if (!n->threaded) {
        nudge(k);
        return;
    }
    pthread_mutex_lock(&n->mu);
    n->want = true;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
}
