/*
 * kafka_rx_offsets.c -- the contiguous-done-prefix tracker (see
 * kafka_rx_offsets.h).
 */
#include "kafka_rx_offsets.h"

#include <stdlib.h>
#include <string.h>

#define FIRST_CAP 64

void krx_track_init(krx_track *t)
{
    memset(t, 0, sizeof *t);
    t->next = -1;
}

void krx_track_free(krx_track *t)
{
    free(t->offsets);
    free(t->done);
    krx_track_init(t);
}

/* Double the ring; every live sequence keeps its slot rule s & (cap-1). */
static halo_status grow(krx_track *t)
{
    size_t cap = t->cap ? t->cap * 2 : FIRST_CAP;
    int64_t *offs = malloc(cap * sizeof *offs);
    unsigned char *done = malloc(cap);
    if (!offs || !done || cap < t->cap) {
        free(offs);
        free(done);
        return HALO_ENOMEM;
    }
    for (uint64_t s = t->head; s < t->tail; s++) {
        offs[s & (cap - 1)] = t->offsets[s & (t->cap - 1)];
        done[s & (cap - 1)] = t->done[s & (t->cap - 1)];
    }
    free(t->offsets);
    free(t->done);
    t->offsets = offs;
    t->done = done;
    t->cap = cap;
    return HALO_OK;
}

halo_status krx_track_push(krx_track *t, int64_t offset, uint64_t *seq)
{
    if (t->tail - t->head == t->cap && grow(t) != HALO_OK)
        return HALO_ENOMEM;
    size_t slot = t->tail & (t->cap - 1);
    t->offsets[slot] = offset;
    t->done[slot] = 0;
    *seq = t->tail++;
    return HALO_OK;
}

bool krx_track_done(krx_track *t, uint64_t seq)
{
    if (seq < t->head || seq >= t->tail)
        return false;
    t->done[seq & (t->cap - 1)] = 1;
    bool moved = false;
    while (t->head < t->tail && t->done[t->head & (t->cap - 1)]) {
        int64_t next = t->offsets[t->head & (t->cap - 1)] + 1;
        if (next > t->next) {
            t->next = next;
            moved = true;
        }
        t->head++;
    }
    return moved;
}

size_t krx_track_pending(const krx_track *t)
{
    return (size_t)(t->tail - t->head);
}
