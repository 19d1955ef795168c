/*
 * kafka_rx_poll.c -- the poll thread, and what happens to each message.
 *
 * A message's life:
 *
 *   consumer_poll --copy, track--> decode --> gathered into a batch with an
 *   ack of its own --halo_emit--> ... downstream ... --> ack:
 *     HALO_OK          done: its partition's tracker may move the stored
 *                      offset (kafka_rx_offsets.h), which librdkafka's
 *                      auto-commit, the revoke handler and close commit
 *     retryable        back on the pending list, emitted again after a
 *                      bounded exponential backoff (100 ms .. 5 s), never
 *                      skipped -- a synchronous refusal from halo_emit
 *                      arrives through the same ack
 *     EINVAL/ETOOBIG   permanent: if other messages shared its batch it is
 *                      first retried alone (one bad message must not sink
 *                      its neighbours), else it is a poison message
 *
 * A poison message (undecodable, every span in it invalid, or rejected
 * alone downstream) is logged with
 * topic/partition/offset (rate-limited), counted, and then either marked
 * done at once or, with dead_letter_topic, produced there and marked done
 * only on a successful delivery report -- so it never stalls its partition.
 *
 * Batching: consecutive messages are gathered into one batch (one chunk
 * and one ack per message) and emitted when the poll runs dry or a size cap
 * is reached, so a busy topic feeds the pipeline large batches and an idle
 * one adds no delay.
 *
 * Backpressure: above max_inflight_messages / max_inflight_bytes (consumed,
 * not yet finished -- retries included) the thread stops polling and waits
 * for confirmations (librdkafka's queue keeps what it prefetched; its own
 * limit stops the fetcher). Only if that lasts PAUSE_AFTER_NS are the
 * assigned partitions paused (which drops the prefetched messages): then
 * the thread polls again so rebalances and the retry schedule are served,
 * and resumes below three quarters of the limits. kafka_rx_nudge.c wakes
 * librdkafka's fetcher when its queue drained (librdkafka < 2.2).
 *
 * At stop: emit what is gathered, pause everything, keep serving retries
 * until every in-flight message is finished or drain_timeout passed, then
 * close the consumer (the revoke handler commits the stored offsets) and
 * destroy it. Messages not confirmed by then are never stored: the next
 * owner of their partition reads them again.
 */
#include "kafka_rx_internal.h"

#include "../../core/clock.h"
#include "../../core/log.h"
#include "../otlp/otlp_codec.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 100               /* longest poll while idle */
#define DRAIN_POLL_MS 20          /* poll while draining */
#define EMIT_SPANS 8192           /* a gathered batch is emitted at ... spans */
#define EMIT_MSGS 4096            /* ... or messages */
#define EMIT_BYTES (16u << 20)    /* ... or arena bytes */
#define GATHER_BLOCK (256u << 10) /* first block of a gather's arena */
#define BACKOFF_MIN_NS 100000000ull
#define BACKOFF_MAX_NS 5000000000ull
#define WARN_PER_SECOND 10
#define HOLD_SLICE_NS 50000000ull    /* full: re-check at least this often */
#define PAUSE_AFTER_NS 2000000000ull /* full this long: pause */

/* ---- small helpers ----------------------------------------------------- */

static uint64_t backoff_ns(unsigned attempts)
{
    uint64_t ns = BACKOFF_MIN_NS;
    for (unsigned i = 1; i < attempts && ns < BACKOFF_MAX_NS; i++)
        ns *= 2;
    return ns < BACKOFF_MAX_NS ? ns : BACKOFF_MAX_NS;
}

/* Statuses that say the message itself can never be stored. */
static bool permanent(halo_status st)
{
    return st == HALO_EINVAL || st == HALO_ETOOBIG;
}

void krx_warn_limited(krx_core *k, const char *fmt, ...)
{
    uint64_t window = halo_mono_ns() / 1000000000u;
    unsigned suppressed = 0;
    pthread_mutex_lock(&k->log_mu);
    if (window != k->log_window) {
        suppressed = k->log_suppressed;
        k->log_window = window;
        k->log_count = 0;
        k->log_suppressed = 0;
    }
    bool show = k->log_count < WARN_PER_SECOND;
    if (show)
        k->log_count++;
    else
        k->log_suppressed++;
    pthread_mutex_unlock(&k->log_mu);
    if (suppressed)
        LOG_WARN(k->prefix, "%u similar warning(s) suppressed", suppressed);
    if (!show)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    LOG_WARN(k->prefix, "%s", line);
}

void krx_core_free(krx_core *k)
{
    if (!k)
        return;
    krx_parts_forget_locked(k); /* none left in practice */
    pthread_mutex_destroy(&k->mu);
    pthread_mutex_destroy(&k->log_mu);
    pthread_cond_destroy(&k->cv);
    if (k->gather.arena) /* a gather never flushed (start failed) */
        halo_arena_free(k->gather.arena);
    free(k->gather.runs);
    free(k->dlq_topic);
    free(k->prefix);
    free(k);
}

/* ---- finishing, scheduling, poison ------------------------------------- */

/* Hand the partition's committable offset to librdkafka (k->mu held). */
static void store_locked(krx_core *k, krx_part *p)
{
    if (!k->rk)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    if (!l)
        return; /* a later confirmation stores a later offset */
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset =
        p->track.next;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(k->rk, l);
    if (!e)
        e = l->elems[0].err;
    if (!e)
        p->stored = p->track.next;
    else
        LOG_DEBUG(k->prefix, "%s/%d: could not store offset %lld: %s", p->topic,
                  (int)p->partition, (long long)p->track.next,
                  rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

bool krx_finish_locked(krx_core *k, krx_msg *m, bool done)
{
    krx_part *p = m->part;
    if (done && !p->revoked && !k->closing && krx_track_done(&p->track, m->seq))
        store_locked(k, p);
    p->inflight--;
    k->inflight--;
    k->inflight_bytes -= m->len;
    k->alive--;
    halo_metric_set(k->m.inflight, (double)k->inflight);
    krx_part_unref_locked(p);
    free(m);
    pthread_cond_broadcast(&k->cv);
    return k->destroyed && k->alive == 0;
}

bool krx_schedule_locked(krx_core *k, krx_msg *m, krx_state st, uint64_t due_ns)
{
    /* a partition we are giving up: its next owner reads it again */
    if (k->closing || m->part->revoking || m->part->revoked)
        return krx_finish_locked(k, m, false);
    m->state = st;
    m->due_ns = due_ns;
    m->next = k->pending;
    k->pending = m;
    if (due_ns < k->next_due)
        k->next_due = due_ns;
    return false;
}

bool krx_poison(krx_core *k, krx_msg *m, const char *reason, const char *why)
{
    bool decode = strcmp(reason, "decode") == 0;
    snprintf(m->why, sizeof m->why, "%s", why && *why ? why : reason);
    krx_warn_limited(k, "%s/%d/%lld: %s (%zu bytes): %s; %s%s", m->part->topic,
                     (int)m->part->partition, (long long)m->offset,
                     decode ? "cannot decode the message"
                            : "the pipeline rejected the message",
                     m->len, m->why,
                     k->dlq_topic ? "producing it to dead-letter topic "
                                  : "skipped",
                     k->dlq_topic ? k->dlq_topic : "");
    halo_metric_add(decode ? k->m.skip_decode : k->m.skip_refused, 1);
    pthread_mutex_lock(&k->mu);
    bool last = k->dlq_topic
                    ? krx_schedule_locked(k, m, KRX_DEAD_LETTER, halo_mono_ns())
                    : krx_finish_locked(k, m, true);
    pthread_mutex_unlock(&k->mu);
    return last;
}

/* ---- the ack: one per message ------------------------------------------ */

static void on_ack(void *ud, halo_status st, const char *msg)
{
    krx_msg *m = ud;
    krx_core *k = m->k;
    bool last;
    if (st == HALO_OK) {
        halo_metric_add(k->m.accepted, (double)m->n_spans);
        pthread_mutex_lock(&k->mu);
        last = krx_finish_locked(k, m, true);
        pthread_mutex_unlock(&k->mu);
    } else if (permanent(st) && (m->alone || m->isolated)) {
        halo_metric_add(k->m.refused, (double)m->n_spans);
        last = krx_poison(k, m, "rejected", msg);
    } else if (permanent(st)) {
        /* maybe a neighbour's fault: try it in a batch of its own */
        pthread_mutex_lock(&k->mu);
        m->isolated = true;
        last = krx_schedule_locked(k, m, KRX_RETRY, halo_mono_ns());
        pthread_mutex_unlock(&k->mu);
    } else {
        halo_metric_add(k->m.retried, 1);
        pthread_mutex_lock(&k->mu);
        m->attempts++;
        uint64_t wait = backoff_ns(m->attempts);
        if (m->attempts == 1 || m->attempts % 10 == 0)
            LOG_DEBUG(k->prefix, "%s/%d/%lld: %s (%s); retry %u in %llu ms",
                      m->part->topic, (int)m->part->partition,
                      (long long)m->offset, halo_status_str(st),
                      msg && *msg ? msg : "no detail", m->attempts,
                      (unsigned long long)(wait / 1000000u));
        last = krx_schedule_locked(k, m, KRX_RETRY, halo_mono_ns() + wait);
        pthread_mutex_unlock(&k->mu);
    }
    if (last)
        krx_core_free(k);
}

/* ---- gathering and emitting -------------------------------------------- */

/* The gathered spans as one chunk of the shared arena; the batch owns the
 * arena from here on (also on failure). */
static halo_status gather_chunk(krx_gather *g, halo_batch *b)
{
    halo_span *all = halo_arena_alloc(g->arena, g->n_spans * sizeof *all);
    if (!all) {
        halo_arena_free(g->arena);
        return HALO_ENOMEM;
    }
    size_t at = 0;
    for (size_t i = 0; i < g->n_runs; i++) {
        memcpy(all + at, g->runs[i].spans, g->runs[i].n * sizeof *all);
        at += g->runs[i].n;
    }
    return halo_batch_add_chunk(b, g->arena, all, at);
}

void krx_flush(krx_core *k)
{
    krx_gather *g = &k->gather;
    halo_batch *b = g->b;
    halo_status st = HALO_OK;
    if (b && g->arena)
        st = gather_chunk(g, b);
    else if (g->arena) /* only poison or empty messages were decoded */
        halo_arena_free(g->arena);
    for (krx_msg *m = g->head; m; m = m->next)
        m->alone = g->n_msgs == 1;
    krx_run *runs = g->runs;
    size_t cap = g->cap_runs;
    memset(g, 0, sizeof *g);
    g->runs = runs; /* reused by the next gather */
    g->cap_runs = cap;
    if (!b)
        return;
    if (st != HALO_OK) { /* every message's ack takes the retry path */
        halo_batch_done(b, HALO_ERETRY, "out of memory");
        return;
    }
    (void)halo_emit(k->self, b); /* refusals reach each message's ack */
}

/* The arena the next message decodes into: the gather's, started for a
 * batch of messages (at least the message's own need). */
static halo_arena *gather_arena(krx_gather *g, size_t need)
{
    if (!g->arena)
        g->arena = halo_arena_new(need > GATHER_BLOCK ? need : GATHER_BLOCK);
    return g->arena;
}

/* A message that could not be emitted for want of memory: try later. */
static void retry_later(krx_core *k, krx_msg *m)
{
    pthread_mutex_lock(&k->mu);
    m->attempts++;
    bool last = krx_schedule_locked(k, m, KRX_RETRY,
                                    halo_mono_ns() + backoff_ns(m->attempts));
    pthread_mutex_unlock(&k->mu);
    if (last)
        krx_core_free(k);
}

static void gather(krx_core *k, krx_msg *m, const halo_otlp_result *res)
{
    krx_gather *g = &k->gather;
    if (g->n_runs == g->cap_runs) {
        size_t cap = g->cap_runs ? g->cap_runs * 2 : 256;
        krx_run *p = realloc(g->runs, cap * sizeof *p);
        if (!p) {
            retry_later(k, m);
            return;
        }
        g->runs = p;
        g->cap_runs = cap;
    }
    if (!g->b && !(g->b = halo_batch_new())) {
        retry_later(k, m);
        return;
    }
    halo_ack *ack = halo_ack_new(on_ack, m);
    if (!ack) {
        retry_later(k, m);
        return;
    }
    m->n_spans = res->n;
    m->state = KRX_DOWNSTREAM;
    if (halo_batch_add_ack(g->b, ack) != HALO_OK) {
        /* the ack answers right here, through the retry path */
        halo_ack_fail(ack, HALO_ERETRY, "out of memory");
        halo_ack_unref(ack);
        return;
    }
    halo_ack_unref(ack); /* the batch holds it now */
    g->runs[g->n_runs++] = (krx_run){res->spans, res->n};
    m->next = NULL;
    if (g->tail)
        g->tail->next = m;
    else
        g->head = m;
    g->tail = m;
    g->n_msgs++;
    g->n_spans += res->n;
}

static bool gather_full(const krx_gather *g)
{
    return g->n_spans >= EMIT_SPANS || g->n_msgs >= EMIT_MSGS ||
           g->bytes >= EMIT_BYTES;
}

/* Decode m and gather it, or finish it (empty), or treat it as poison. */
static void process(krx_core *k, krx_msg *m, bool first_time)
{
    bool last = false;
    if (m->len == 0) { /* a tombstone or an empty value: nothing to store */
        pthread_mutex_lock(&k->mu);
        last = krx_finish_locked(k, m, true);
        pthread_mutex_unlock(&k->mu);
        goto out;
    }
    bool alone = m->isolated;
    if (alone) /* decoded into an arena of its own, emitted by itself */
        krx_flush(k);
    halo_arena *arena = gather_arena(&k->gather, halo_otlp_arena_first(m->len));
    if (!arena) {
        retry_later(k, m);
        return;
    }
    size_t before = halo_arena_reserved(arena);
    halo_otlp_result res;
    halo_err err = {{0}};
    memset(&res, 0, sizeof res);
    halo_status st =
        k->json ? halo_otlp_decode_json((const char *)m->payload, m->len, arena,
                                        &res, &err)
                : halo_otlp_decode_pb(m->payload, m->len, arena, &res, &err);
    /* what a failed or empty decode used stays in the arena until the
     * flush: counted, so the gather's byte cap bounds it too (a run of
     * poison messages would otherwise grow the arena until the poll runs
     * dry) */
    k->gather.bytes += halo_arena_reserved(arena) - before;
    if (st != HALO_OK) {
        if (st == HALO_ENOMEM) {
            retry_later(k, m);
            return;
        }
        last = krx_poison(k, m, "decode",
                          err.msg[0] ? err.msg : halo_status_str(st));
        goto out;
    }
    if (res.n == 0 && res.rejected > 0) {
        /* every span invalid: nothing to store, but the message is kept
         * for inspection like any poison message (dead-lettered when
         * configured) */
        if (first_time)
            halo_metric_add(k->m.refused, (double)res.rejected);
        last = krx_poison(k, m, "rejected", res.reject_msg);
        goto out;
    }
    if (first_time && res.rejected > 0) {
        halo_metric_add(k->m.refused, (double)res.rejected);
        krx_warn_limited(k, "%s/%d/%lld: %lld invalid span(s) left out: %s",
                         m->part->topic, (int)m->part->partition,
                         (long long)m->offset, (long long)res.rejected,
                         res.reject_msg);
    }
    if (res.n == 0) {
        pthread_mutex_lock(&k->mu);
        last = krx_finish_locked(k, m, true);
        pthread_mutex_unlock(&k->mu);
        goto out;
    }
    gather(k, m, &res); /* m may be gone after this */
    if (alone)
        krx_flush(k);
out:
    if (gather_full(&k->gather))
        krx_flush(k);
    if (last)
        krx_core_free(k);
}

/* ---- taking messages from the consumer --------------------------------- */

/* Could not track a message: rewind its partition so it is fetched again
 * (nothing after it may be stored before it). */
static void rewind_to(krx_core *k, const rd_kafka_message_t *rkm)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    if (l) {
        rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(rkm->rkt),
                                          rkm->partition)
            ->offset = rkm->offset;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(k->rk, l, 0);
        if (e)
            rd_kafka_error_destroy(e);
        rd_kafka_topic_partition_list_destroy(l);
    }
    krx_warn_limited(k,
                     "%s/%d/%lld: out of memory taking the message; "
                     "reading it again",
                     rd_kafka_topic_name(rkm->rkt), (int)rkm->partition,
                     (long long)rkm->offset);
}

/* Copy the message, track it in its partition, then process it. Destroys
 * rkm. */
static void take(krx_core *k, rd_kafka_message_t *rkm)
{
    size_t key_len = rkm->key ? rkm->key_len : 0;
    krx_msg *m = malloc(sizeof *m + rkm->len + key_len);
    if (!m) {
        rewind_to(k, rkm);
        rd_kafka_message_destroy(rkm);
        return;
    }
    memset(m, 0, sizeof *m);
    uint8_t *data = (uint8_t *)(m + 1);
    if (rkm->len)
        memcpy(data, rkm->payload, rkm->len);
    if (key_len)
        memcpy(data + rkm->len, rkm->key, key_len);
    m->k = k;
    m->offset = rkm->offset;
    m->payload = data;
    m->len = rkm->len;
    m->key = rkm->key ? data + rkm->len : NULL;
    m->key_len = key_len;
    pthread_mutex_lock(&k->mu);
    krx_part *p =
        krx_part_get_locked(k, rd_kafka_topic_name(rkm->rkt), rkm->partition);
    if (!p || krx_track_push(&p->track, m->offset, &m->seq) != HALO_OK) {
        pthread_mutex_unlock(&k->mu);
        rewind_to(k, rkm);
        rd_kafka_message_destroy(rkm);
        free(m);
        return;
    }
    m->part = p;
    p->refs++;
    p->inflight++;
    k->inflight++;
    k->inflight_bytes += m->len;
    k->alive++;
    halo_metric_set(k->m.inflight, (double)k->inflight);
    pthread_mutex_unlock(&k->mu);
    rd_kafka_message_destroy(rkm);
    krx_nudge_taken(k, m->len);
    process(k, m, true);
}

/* A consumer event (not a message): log it. */
static void on_event(krx_core *k, const rd_kafka_message_t *rkm)
{
    if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    if (rkm->err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(k->rk, why, sizeof why);
        LOG_ERROR(k->prefix, "fatal consumer error: %s: %s",
                  rd_kafka_err2name(orig), why);
        return;
    }
    if (rkm->rkt)
        krx_warn_limited(k, "consumer: %s [%d]: %s",
                         rd_kafka_topic_name(rkm->rkt), (int)rkm->partition,
                         rd_kafka_message_errstr(rkm));
    else
        krx_warn_limited(k, "consumer: %s", rd_kafka_message_errstr(rkm));
}

/* ---- the pending list -------------------------------------------------- */

/* Emit again (or produce to the DLQ) every pending message that is due. */
static void serve_pending(krx_core *k)
{
    uint64_t now = halo_mono_ns();
    pthread_mutex_lock(&k->mu);
    if (now < k->next_due) {
        pthread_mutex_unlock(&k->mu);
        return;
    }
    krx_msg *due = NULL, **pp = &k->pending;
    uint64_t next = UINT64_MAX;
    while (*pp) {
        krx_msg *m = *pp;
        if (m->due_ns <= now) {
            *pp = m->next;
            m->next = due;
            due = m;
        } else {
            if (m->due_ns < next)
                next = m->due_ns;
            pp = &m->next;
        }
    }
    k->next_due = next;
    pthread_mutex_unlock(&k->mu);
    while (due) {
        krx_msg *m = due;
        due = m->next;
        m->next = NULL;
        if (m->state == KRX_DEAD_LETTER) {
            krx_dlq_send(k, m);
        } else {
            process(k, m, false);
        }
    }
}

static int poll_timeout_ms(krx_core *k)
{
    if (k->gather.b)
        return 0; /* emit as soon as the poll runs dry */
    pthread_mutex_lock(&k->mu);
    uint64_t due = k->next_due;
    pthread_mutex_unlock(&k->mu);
    uint64_t now = halo_mono_ns();
    if (due == UINT64_MAX || due >= now + POLL_MS * 1000000ull)
        return POLL_MS;
    return due <= now ? 0 : (int)((due - now) / 1000000u) + 1;
}

/* ---- pause and resume -------------------------------------------------- */

static void set_paused(krx_core *k, bool on)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(k->rk, &a) != RD_KAFKA_RESP_ERR_NO_ERROR || !a)
        return;
    rd_kafka_resp_err_t e = on ? rd_kafka_pause_partitions(k->rk, a)
                               : rd_kafka_resume_partitions(k->rk, a);
    int n = a->cnt;
    rd_kafka_topic_partition_list_destroy(a);
    if (e) {
        LOG_WARN(k->prefix, "could not %s the partitions: %s",
                 on ? "pause" : "resume", rd_kafka_err2str(e));
        return;
    }
    k->paused = on;
    halo_metric_set(k->m.paused, on ? 1 : 0);
    LOG_DEBUG(k->prefix, "%s %d partition(s)", on ? "paused" : "resumed", n);
}

/* Above max_inflight_*: stop taking messages, first by not polling (the
 * prefetched messages stay in librdkafka's queue, whose own limit stops its
 * fetcher), and only if the pipeline stays full for PAUSE_AFTER_NS by
 * pausing the partitions -- which drops what was prefetched (it is fetched
 * again on resume) but lets the thread poll, so rebalances are served.
 * Returns true when the thread waited instead of polling. */
static bool hold_back(krx_core *k)
{
    pthread_mutex_lock(&k->mu);
    size_t n = k->inflight, bytes = k->inflight_bytes;
    bool full = n >= k->max_msgs || bytes >= k->max_bytes;
    if (k->paused || !full) {
        pthread_mutex_unlock(&k->mu);
        k->full_since = 0;
        if (k->paused && n * 4 <= k->max_msgs * 3 &&
            bytes <= k->max_bytes / 4 * 3)
            set_paused(k, false);
        return false;
    }
    uint64_t now = halo_mono_ns();
    if (!k->full_since)
        k->full_since = now;
    if (now - k->full_since >= PAUSE_AFTER_NS) {
        pthread_mutex_unlock(&k->mu);
        k->full_since = 0;
        set_paused(k, true);
        if (k->paused)
            halo_metric_add(k->m.pauses, 1);
        return false;
    }
    if (k->gather.b) { /* what is gathered is in flight: send it first */
        pthread_mutex_unlock(&k->mu);
        krx_flush(k);
        return true;
    }
    uint64_t until = now + HOLD_SLICE_NS;
    if (k->next_due < until) /* a retry falls due */
        until = k->next_due > now ? k->next_due : now;
    struct timespec ts = halo_timespec_of(until);
    while (!atomic_load(&k->stop) && k->inflight == n && halo_mono_ns() < until)
        pthread_cond_timedwait(&k->cv, &k->mu, &ts);
    pthread_mutex_unlock(&k->mu);
    return true;
}

/* ---- the thread -------------------------------------------------------- */

/* Stop consuming and wait (bounded) for what is in flight. */
static void drain(krx_core *k)
{
    krx_flush(k);
    set_paused(k, true);
    uint64_t deadline = halo_mono_ns() + k->drain_ns;
    size_t left;
    for (;;) {
        pthread_mutex_lock(&k->mu);
        left = k->inflight;
        pthread_mutex_unlock(&k->mu);
        if (left == 0 || halo_mono_ns() >= deadline)
            break;
        serve_pending(k);
        krx_flush(k);
        /* serves rebalances; a message of a partition assigned meanwhile
         * is dropped untracked (read again by whoever owns it next) */
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(k->rk, DRAIN_POLL_MS);
        if (rkm)
            rd_kafka_message_destroy(rkm);
    }
    if (left)
        LOG_WARN(k->prefix,
                 "%zu message(s) still unconfirmed after the drain deadline "
                 "(%.1f s); their offsets are not committed, so they are "
                 "read again after a restart",
                 left, (double)k->drain_ns / 1e9);
}

/* Give up what was not finished, close (commits through the revoke
 * handler and auto-commit) and destroy the consumer. */
static void close_consumer(krx_core *k)
{
    pthread_mutex_lock(&k->mu);
    k->closing = true;
    bool last = false;
    while (k->pending) {
        krx_msg *m = k->pending;
        k->pending = m->next;
        last = krx_finish_locked(k, m, false);
    }
    k->next_due = UINT64_MAX;
    pthread_mutex_unlock(&k->mu);
    (void)last; /* the component holds the core until destroy */
    krx_nudge_stop(k);
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(k->rk);
    if (e)
        LOG_WARN(k->prefix, "closing the consumer: %s", rd_kafka_err2str(e));
    pthread_mutex_lock(&k->mu);
    krx_parts_forget_locked(k);
    rd_kafka_t *rk = k->rk;
    k->rk = NULL;
    pthread_mutex_unlock(&k->mu);
    rd_kafka_destroy(rk);
}

void *krx_poll_main(void *arg)
{
    pthread_setname_np(pthread_self(), "kafka-rx-poll");
    krx_core *k = arg;
    krx_nudge_start(k);
    while (!atomic_load(&k->stop)) {
        serve_pending(k);
        if (hold_back(k))
            continue;
        krx_nudge_check(k);
        rd_kafka_message_t *rkm =
            rd_kafka_consumer_poll(k->rk, poll_timeout_ms(k));
        if (!rkm) {
            krx_flush(k);
            continue;
        }
        if (rkm->err) {
            on_event(k, rkm);
            rd_kafka_message_destroy(rkm);
            continue;
        }
        take(k, rkm);
    }
    drain(k);
    close_consumer(k);
    return NULL;
}
