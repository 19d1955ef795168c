/*
 * kafka_rx_offsets.h -- which offset of one partition may be committed.
 *
 * The Kafka receiver hands messages downstream in offset order but their
 * confirmations come back in any order (batches are merged, retried,
 * written by different threads). Committing offset N+1 tells the group
 * "everything below N+1 is stored", so the committable offset may only
 * move past a message once it AND every message before it are done.
 *
 * A tracker is a ring of the partition's unfinished messages in the order
 * they were consumed. Each message is identified by a sequence number (its
 * position since the tracker began), so marking it done is O(1); finishing
 * the oldest one pops the done prefix and moves `next` to the offset after
 * the last popped message. A message confirmed out of order just waits in
 * the ring until everything before it is done.
 *
 * Offsets only grow within a partition (librdkafka delivers them in order;
 * gaps from compaction or transaction markers are fine). Not thread-safe:
 * the receiver guards its trackers with its mutex.
 */
#ifndef HALO_KAFKA_RX_OFFSETS_H
#define HALO_KAFKA_RX_OFFSETS_H

#include "../../core/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct krx_track {
    int64_t *offsets;    /* ring: slot of sequence s is s & (cap - 1) */
    unsigned char *done; /* same slots */
    size_t cap;          /* 0 or a power of two */
    uint64_t head;       /* sequence of the oldest unfinished message */
    uint64_t tail;       /* sequence the next message gets */
    int64_t next;        /* committable: everything below is done; -1 none */
} krx_track;

void krx_track_init(krx_track *t);
void krx_track_free(krx_track *t);

/* Track a consumed message; *seq names it for krx_track_done. HALO_ENOMEM
 * when the ring cannot grow. */
halo_status krx_track_push(krx_track *t, int64_t offset, uint64_t *seq);

/* Mark a message done. True when t->next moved (the caller stores it);
 * false when an earlier message is still unfinished, or seq is unknown. */
bool krx_track_done(krx_track *t, uint64_t seq);

/* Messages tracked and not yet popped (unfinished, or done but waiting for
 * an earlier one). */
size_t krx_track_pending(const krx_track *t);

#endif
