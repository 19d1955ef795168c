/*
 * scheduler.h -- the analyzer's scheduler inside `halo serve`.
 *
 * Each tick, for every schedule, it computes the windows that are due
 * (fire time + grace has passed; up to catch_up of them after downtime,
 * oldest first), the agents to report on (the listed ones, or every agent
 * with runs in the window for "*"), and for each (schedule, agent, window)
 * claims the run in the store (claim_run: exactly once across every halo
 * instance on one database), analyzes, saves the report, and marks the run
 * done. A failed run is logged and released, and tried again after a
 * back-off (30 s, doubling up to an hour); nothing a run does can stop the
 * daemon. A long run renews its claim while it reads, and checks it is
 * still its own before saving; stopping the scheduler ends a run early. A run
 * whose instance died keeps its claim until the lease expires, then any
 * instance takes it over.
 *
 * The clock is injectable: tests drive halo_scheduler_tick() by hand with
 * a fake clock; `halo serve` runs halo_scheduler_start()'s thread on the
 * real one.
 */
#ifndef HALO_SCHEDULER_H
#define HALO_SCHEDULER_H

#include "../core/status.h"
#include "../storage/store.h"
#include "analyzer_config.h"

#include <stdint.h>

typedef struct halo_scheduler halo_scheduler;

typedef struct halo_scheduler_opts {
    const halo_analyzer_config *cfg; /* borrowed; outlives the scheduler */
    const char *store_spec;          /* halo_store_open() spec */
    const char *owner;               /* claim owner; NULL: host/pid/random */
    /* Wall clock in ns since the epoch; NULL: the real one. */
    uint64_t (*now)(void *ctx);
    void *now_ctx;
    int64_t retry_ns; /* thread: re-check this often at most; 0: 30s */
    /* Test hook (NULL in production): called after a run's report is
     * saved and before the run is marked done; returning false abandons
     * the run there, as if the process had died (the claim stays). */
    bool (*before_finish)(void *ctx, const halo_run_key *k);
    void *hook_ctx;
} halo_scheduler_opts;

typedef struct halo_tick_stats {
    int64_t runs;      /* reports written */
    int64_t failed;    /* runs that failed (released for a retry) */
    int64_t skipped;   /* already done, or held by another instance */
    int64_t abandoned; /* test hook */
} halo_tick_stats;

halo_status halo_scheduler_new(const halo_scheduler_opts *o,
                               halo_scheduler **out, halo_err *err);
/* One pass over every schedule at the clock's now. Store errors (the
 * database down) fail the pass with err; a run's own failure does not. */
halo_status halo_scheduler_tick(halo_scheduler *s, halo_tick_stats *stats,
                                halo_err *err);
/* Run ticks on a thread of its own until halo_scheduler_stop(). */
halo_status halo_scheduler_start(halo_scheduler *s, halo_err *err);
/* Stop the thread (waits for a run in progress to end); safe without
 * start and twice. */
void halo_scheduler_stop(halo_scheduler *s);
void halo_scheduler_free(halo_scheduler *s);

#endif
