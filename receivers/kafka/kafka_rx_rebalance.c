/*
 * kafka_rx_rebalance.c -- which partitions are ours, and handing them
 * over safely.
 *
 * The table of assigned partitions holds one tracker per partition (see
 * kafka_rx_offsets.h). librdkafka calls the rebalance callback from the
 * poll thread (inside rd_kafka_consumer_poll / rd_kafka_consumer_close):
 *
 *   assign   fresh trackers for the new partitions, then (incremental_)
 *            assign; the pause state is re-evaluated by the poll loop.
 *   revoke   emit what is gathered; drop the revoked partitions' pending
 *            retries (their next owner reads them again); wait, bounded by
 *            drain_timeout, until their messages downstream are confirmed
 *            (confirmations keep storing offsets meanwhile); commit the
 *            stored offsets synchronously; forget the trackers; then
 *            (incremental_)unassign. Partitions reported lost are not
 *            waited for nor committed: someone else owns them already.
 *
 * Both the eager and the cooperative protocol work: the callback asks
 * rd_kafka_rebalance_protocol() which one is in force. A confirmation that
 * arrives for a partition no longer ours finds its tracker marked revoked
 * (messages keep their partition alive by reference) and stores nothing.
 */
#include "kafka_rx_internal.h"

#include "../../core/buf.h"
#include "../../core/clock.h"
#include "../../core/log.h"

#include <stdlib.h>
#include <string.h>

/* ---- the partition table ----------------------------------------------- */

static krx_part *find_locked(krx_core *k, const char *topic, int32_t partition)
{
    for (krx_part *p = k->parts; p; p = p->next)
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return p;
    return NULL;
}

krx_part *krx_part_get_locked(krx_core *k, const char *topic, int32_t partition)
{
    krx_part *p = find_locked(k, topic, partition);
    if (p)
        return p;
    p = calloc(1, sizeof *p);
    if (!p || !(p->topic = strdup(topic))) {
        free(p);
        return NULL;
    }
    p->partition = partition;
    krx_track_init(&p->track);
    p->stored = -1;
    p->refs = 1; /* the table's */
    p->next = k->parts;
    k->parts = p;
    return p;
}

void krx_part_unref_locked(krx_part *p)
{
    if (--p->refs > 0)
        return;
    krx_track_free(&p->track);
    free(p->topic);
    free(p);
}

/* Not ours any more: unlink, never store again, drop the table's ref. */
static void detach_locked(krx_core *k, krx_part *p)
{
    for (krx_part **pp = &k->parts; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    p->revoked = true;
    p->next = NULL;
    krx_part_unref_locked(p);
}

void krx_parts_forget_locked(krx_core *k)
{
    while (k->parts)
        detach_locked(k, k->parts);
}

/* "otlp_spans[0,1,3], other[2]" (with "@offset" when offsets is true) */
static void describe(const rd_kafka_topic_partition_list_t *l, bool offsets,
                     halo_buf *out)
{
    for (int i = 0; i < l->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &l->elems[i];
        bool same = i > 0 && strcmp(l->elems[i - 1].topic, tp->topic) == 0;
        if (!same)
            halo_buf_printf(out, "%s%s[", i ? "], " : "", tp->topic);
        halo_buf_printf(out, "%s%d", same ? "," : "", (int)tp->partition);
        if (offsets)
            halo_buf_printf(out, "@%lld", (long long)tp->offset);
    }
    halo_buf_puts(out, l->cnt ? "]" : "none");
}

/* ---- assign ------------------------------------------------------------ */

static void on_assign(krx_core *k, rd_kafka_t *rk,
                      rd_kafka_topic_partition_list_t *parts)
{
    pthread_mutex_lock(&k->mu);
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        krx_part *old = find_locked(k, tp->topic, tp->partition);
        if (old)
            detach_locked(k, old); /* a fresh start from the committed */
        (void)krx_part_get_locked(k, tp->topic, tp->partition);
    }
    pthread_mutex_unlock(&k->mu);
    halo_buf d = HALO_BUF_INIT;
    describe(parts, false, &d);
    LOG_INFO(k->prefix, "assigned %d partition(s): %s", parts->cnt,
             d.oom ? "?" : d.data);
    halo_buf_free(&d);
    if (k->cooperative) {
        rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
        if (e) {
            LOG_ERROR(k->prefix, "could not assign partitions: %s",
                      rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
        if (e)
            LOG_ERROR(k->prefix, "could not assign partitions: %s",
                      rd_kafka_err2str(e));
    }
    k->paused = false; /* new partitions start unpaused: re-evaluated */
    halo_metric_set(k->m.paused, 0);
}

/* ---- revoke ------------------------------------------------------------ */

/* Mark the revoked partitions; drop their pending messages. */
static void mark_revoking_locked(krx_core *k,
                                 const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        krx_part *p =
            find_locked(k, parts->elems[i].topic, parts->elems[i].partition);
        if (p)
            p->revoking = true;
    }
    krx_msg **pp = &k->pending;
    uint64_t next = UINT64_MAX;
    while (*pp) {
        krx_msg *m = *pp;
        if (m->part->revoking) {
            *pp = m->next;
            (void)krx_finish_locked(k, m, false); /* core kept by us */
            continue;
        }
        if (m->due_ns < next)
            next = m->due_ns;
        pp = &m->next;
    }
    k->next_due = next;
}

static size_t revoking_inflight_locked(const krx_core *k)
{
    size_t n = 0;
    for (const krx_part *p = k->parts; p; p = p->next)
        if (p->revoking)
            n += p->inflight;
    return n;
}

/* Wait until the revoking partitions have nothing in flight, or until
 * drain_timeout. Returns what is left. */
static size_t wait_inflight_locked(krx_core *k)
{
    uint64_t deadline = halo_mono_ns() + k->drain_ns;
    size_t left;
    while ((left = revoking_inflight_locked(k)) > 0 &&
           halo_mono_ns() < deadline) {
        struct timespec ts = halo_timespec_of(deadline);
        pthread_cond_timedwait(&k->cv, &k->mu, &ts);
    }
    return left;
}

/* The stored offsets of the revoking partitions, then forget them. */
static rd_kafka_topic_partition_list_t *take_revoking_locked(krx_core *k)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    krx_part *p = k->parts;
    while (p) {
        krx_part *next = p->next;
        if (p->revoking) {
            if (l && p->stored >= 0)
                rd_kafka_topic_partition_list_add(l, p->topic, p->partition)
                    ->offset = p->stored;
            detach_locked(k, p);
        }
        p = next;
    }
    return l;
}

/* Commit synchronously, but wait at most drain_timeout (at least 1 s):
 * with the coordinator unreachable a plain rd_kafka_commit() would block
 * for socket.timeout.ms. The commit goes on in the background after the
 * wait gives up. */
static rd_kafka_resp_err_t commit_bounded(krx_core *k, rd_kafka_t *rk,
                                          rd_kafka_topic_partition_list_t *l)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    if (!q)
        return rd_kafka_commit(rk, l, 0);
    rd_kafka_resp_err_t e = rd_kafka_commit_queue(rk, l, q, NULL, NULL);
    if (!e) {
        uint64_t ms = k->drain_ns / 1000000u;
        ms = ms < 1000 ? 1000 : ms;
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)ms);
        e = ev ? rd_kafka_event_error(ev) : RD_KAFKA_RESP_ERR__TIMED_OUT;
        if (ev)
            rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return e;
}

static void commit(krx_core *k, rd_kafka_t *rk,
                   rd_kafka_topic_partition_list_t *offsets)
{
    if (!offsets || offsets->cnt == 0)
        return;
    rd_kafka_resp_err_t e = commit_bounded(k, rk, offsets);
    halo_buf d = HALO_BUF_INIT;
    describe(offsets, true, &d);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        LOG_WARN(k->prefix, "could not commit %s: %s", d.oom ? "?" : d.data,
                 rd_kafka_err2str(e));
    else
        LOG_INFO(k->prefix, "committed %s", d.oom ? "?" : d.data);
    halo_buf_free(&d);
}

static void on_revoke(krx_core *k, rd_kafka_t *rk,
                      rd_kafka_topic_partition_list_t *parts, bool lost)
{
    krx_flush(k); /* give gathered messages their chance */
    lost = lost || rd_kafka_assignment_lost(rk);
    pthread_mutex_lock(&k->mu);
    mark_revoking_locked(k, parts);
    size_t left = lost || k->closing ? 0 : wait_inflight_locked(k);
    rd_kafka_topic_partition_list_t *offsets = take_revoking_locked(k);
    pthread_mutex_unlock(&k->mu);
    if (left)
        LOG_WARN(k->prefix,
                 "%zu message(s) of the revoked partitions still unconfirmed "
                 "after %.1f s; their next owner reads them again",
                 left, (double)k->drain_ns / 1e9);
    halo_buf d = HALO_BUF_INIT;
    describe(parts, false, &d);
    LOG_INFO(k->prefix, "%s %d partition(s): %s", lost ? "lost" : "revoked",
             parts->cnt, d.oom ? "?" : d.data);
    halo_buf_free(&d);
    if (!lost)
        commit(k, rk, offsets);
    if (offsets)
        rd_kafka_topic_partition_list_destroy(offsets);
    if (k->cooperative) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e) {
            LOG_ERROR(k->prefix, "could not unassign partitions: %s",
                      rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_assign(rk, NULL);
        k->paused = false;
        halo_metric_set(k->m.paused, 0);
    }
}

void krx_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    krx_core *k = opaque; /* its first member is the halo_kafka_opaque */
    const char *proto = rd_kafka_rebalance_protocol(rk);
    k->cooperative = proto && strcmp(proto, "COOPERATIVE") == 0;
    switch (err) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        on_assign(k, rk, parts);
        break;
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        on_revoke(k, rk, parts, false);
        break;
    default:
        LOG_ERROR(k->prefix, "rebalance failed: %s", rd_kafka_err2str(err));
        on_revoke(k, rk, parts, true);
        break;
    }
}
