/*
 * lg.h -- shared types of halo-loadgen, the OTLP load generator.
 *
 * The load generator is split by concern:
 *   lg_pool.c   builds a pool of distinct pre-encoded ExportTraceService
 *               requests of realistic agent spans, and stamps fresh ids and
 *               timestamps into a copy of one before each send;
 *   lg_stats.c  latency histogram, per-status counters, daemon RSS sampling,
 *               the text and JSON reports;
 *   lg_sched.c  when the next request may start (closed loop, fixed count,
 *               duration, open-loop rate pacing) -- shared by both drivers;
 *   lg_grpc.c   the gRPC driver (gRPC core C API, one completion queue);
 *   lg_http.c   the HTTP/1.1 driver (epoll, keep-alive, own parser);
 *   loadgen.c   the command line.
 *
 * Everything runs on the calling thread (gRPC adds its own internal
 * threads); nothing here is thread-safe and nothing needs to be.
 *
 * The tool is standalone on purpose: it speaks OTLP through its own small
 * protobuf writer so that it does not share a single line of encoding code
 * with the daemon it measures, and it keeps working while the daemon's
 * library is half-built. Functions return 0 on success and -1 on failure
 * after printing a message (PostgreSQL style) to stderr.
 */
#ifndef HALO_LG_H
#define HALO_LG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- options ------------------------------------------------------------ */

typedef enum lg_mode { LG_GRPC = 1, LG_HTTP = 2 } lg_mode;

typedef struct lg_opts {
    lg_mode mode;
    char host[256];
    int port;
    int connections;       /* channels / TCP connections */
    int inflight;          /* requests in flight per gRPC channel */
    int spans_per_request; /* spans in one Export */
    int spans_per_trace;   /* spans of one agent run (trace) */
    int pool_size;         /* distinct pre-encoded requests */
    int text_pct;          /* input/output text length, % of realistic */
    bool sequential_ids;   /* ids in sending order (default: random-looking,
                              as SDKs make them) */
    double duration_s;     /* stop issuing after this long (0: no limit) */
    uint64_t requests;     /* stop after this many requests (0: no limit) */
    double rate;           /* spans/s, open loop (0: closed loop) */
    int pid;               /* daemon to watch for RSS (0: none) */
    int timeout_ms;        /* per-request deadline */
    bool json;             /* one JSON line instead of the text report */
} lg_opts;

/* ---- monotonic clock ---------------------------------------------------- */

/* Seconds from an arbitrary origin, monotonic. */
double lg_now(void);

/* ---- request pool (lg_pool.c) ------------------------------------------- */

typedef struct lg_pool lg_pool;

/* Builds opts->pool_size requests of opts->spans_per_request spans each.
 * Returns NULL (message printed) on failure. */
lg_pool *lg_pool_create(const lg_opts *opts);
void lg_pool_destroy(lg_pool *pool);

/* Size in bytes of request `idx % pool_size`. */
size_t lg_pool_req_len(const lg_pool *pool, uint64_t idx);
/* Largest request in the pool, in bytes. */
size_t lg_pool_max_len(const lg_pool *pool);
/* Spans in every request. */
int lg_pool_spans(const lg_pool *pool);

/* Copies request `seq % pool_size` into dst (lg_pool_req_len bytes) and
 * rewrites, in the copy, every trace id, span id and parent span id so that
 * they are derived from `seq` (unique for every seq >= 1 within this
 * process, and across processes thanks to a random run nonce), and shifts
 * every timestamp so that the spans end shortly before now. */
void lg_pool_stamp(const lg_pool *pool, uint64_t seq, uint8_t *dst);

/* Parses an ExportTraceServiceResponse and returns its
 * partial_success.rejected_spans (0 when absent), or -1 when the bytes are
 * not a valid response. */
int64_t lg_parse_export_response(const uint8_t *buf, size_t len);

/* ---- statistics (lg_stats.c) -------------------------------------------- */

#define LG_HIST_SUB 64 /* sub-buckets per power of two: ~1.6% precision */
#define LG_HIST_POW 40 /* up to 2^40 us, about 12 days */
#define LG_MAX_LABELS 32

typedef struct lg_stats {
    uint64_t sent;           /* requests started */
    uint64_t ok;             /* answered success */
    uint64_t failed;         /* everything else */
    uint64_t spans_sent;     /* spans in started requests */
    uint64_t spans_acked;    /* spans in successful answers minus rejected */
    uint64_t spans_rejected; /* partial_success.rejected_spans */
    uint64_t bytes_sent;
    struct {
        char label[32];
        uint64_t count;
    } by_status[LG_MAX_LABELS];
    int n_labels;
    uint64_t hist[LG_HIST_POW * LG_HIST_SUB];
    uint64_t hist_n;
    uint64_t max_us;
    double t_start;  /* first request */
    double t_end;    /* last answer */
    double late_max; /* open loop: worst start delay behind schedule, s */
    /* daemon memory, kB; -1 when not measured */
    long rss_max_kb;
    long hwm_kb;
    double last_rss_sample;
    /* CPU seconds (user + system) used during the run; -1 when unknown */
    double self_cpu_s, daemon_cpu_s;
} lg_stats;

void lg_stats_init(lg_stats *st);
/* One answered request: `label` is the status ("OK", "UNAVAILABLE",
 * "200", "503", "conn-error"...), `ok` whether it counts as success. */
void lg_stats_answer(lg_stats *st, const char *label, bool ok, int spans,
                     int64_t rejected, double latency_s);
/* Latency (us) at quantile q in [0, 1]. */
uint64_t lg_stats_quantile(const lg_stats *st, double q);
/* Reads VmRSS of pid at most every 100 ms (cheap to call often). */
void lg_stats_sample_rss(lg_stats *st, int pid, double now);
/* Reads VmHWM (peak RSS) of pid. */
void lg_stats_read_hwm(lg_stats *st, int pid);
/* CPU time of this process and of pid: call before and after the run. */
void lg_stats_cpu_begin(lg_stats *st, int pid);
void lg_stats_cpu_end(lg_stats *st, int pid);
/* Prints the report (text, or one JSON line with o->json) to stdout. */
void lg_stats_print(const lg_stats *st, const lg_opts *o);

/* ---- scheduling (lg_sched.c) -------------------------------------------- */

typedef struct lg_sched {
    const lg_opts *o;
    double t_start;
    double next_due; /* open loop: when the next request is due */
    double interval; /* open loop: seconds between requests */
    uint64_t issued;
    bool stopped;    /* no more requests will be issued */
    double late_max; /* open loop: worst start delay behind schedule, s */
} lg_sched;

void lg_sched_init(lg_sched *s, const lg_opts *o, int spans_per_request,
                   double now);
/* If a request may start now, returns true with *sched_time set to when it
 * was due (now in closed loop; its slot on the timetable in open loop, so
 * that latency counts the time it waited for a free connection). */
bool lg_sched_take(lg_sched *s, double now, double *sched_time);
/* Sequence number of the request last taken (1, 2, ...). */
#define lg_sched_seq(s) ((s)->issued)
/* Updates and returns `stopped` (duration over or request count
 * reached). */
bool lg_sched_done(lg_sched *s, double now);
/* Seconds until something may change (next due request or the end of the
 * run), capped at `cap`. */
double lg_sched_wait(const lg_sched *s, double now, double cap);

/* ---- drivers ------------------------------------------------------------ */

int lg_run_grpc(const lg_opts *o, const lg_pool *pool, lg_stats *st);
int lg_run_http(const lg_opts *o, const lg_pool *pool, lg_stats *st);

#endif
