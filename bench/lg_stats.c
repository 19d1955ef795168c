/*
 * lg_stats.c -- what halo-loadgen measures and how it reports it.
 *
 * Latency goes into a log-linear histogram of microseconds (HdrHistogram's
 * idea, simplified): values below 64 us have their own bucket, above that
 * every power of two is split into 64 sub-buckets, so a reported
 * percentile is at most ~1.6% above the true value (we report each bucket's
 * upper bound: pessimistic, never flattering). The maximum is exact.
 *
 * Answers are also counted per status label ("OK", "UNAVAILABLE", "200",
 * "503", "conn-error", ...), in order of first appearance.
 *
 * The daemon's memory comes from /proc/PID/status: VmRSS sampled every
 * 100 ms during the run (we keep the maximum) and VmHWM, the kernel's own
 * peak, read once at the end.
 */
#include "lg.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void lg_stats_init(lg_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->rss_max_kb = -1;
    st->hwm_kb = -1;
    st->self_cpu_s = -1;
    st->daemon_cpu_s = -1;
}

static size_t hist_index(uint64_t us)
{
    if (us < LG_HIST_SUB)
        return (size_t)us;
    int e = 63 - __builtin_clzll(us); /* >= 6 */
    size_t idx = (size_t)(e - 5) * LG_HIST_SUB +
                 (size_t)((us >> (e - 6)) & (LG_HIST_SUB - 1));
    size_t last = (size_t)LG_HIST_POW * LG_HIST_SUB - 1;
    return idx > last ? last : idx;
}

/* Largest value that falls into bucket idx. */
static uint64_t hist_upper(size_t idx)
{
    if (idx < LG_HIST_SUB)
        return idx;
    int e = (int)(idx / LG_HIST_SUB) + 5;
    uint64_t sub = idx % LG_HIST_SUB;
    uint64_t low = (LG_HIST_SUB + sub) << (e - 6);
    return low + ((uint64_t)1 << (e - 6)) - 1;
}

static uint64_t *label_slot(lg_stats *st, const char *label)
{
    for (int i = 0; i < st->n_labels; i++)
        if (strcmp(st->by_status[i].label, label) == 0)
            return &st->by_status[i].count;
    int i = st->n_labels < LG_MAX_LABELS ? st->n_labels++ : LG_MAX_LABELS - 1;
    snprintf(st->by_status[i].label, sizeof(st->by_status[i].label), "%s",
             i == LG_MAX_LABELS - 1 ? "other" : label);
    return &st->by_status[i].count;
}

void lg_stats_answer(lg_stats *st, const char *label, bool ok, int spans,
                     int64_t rejected, double latency_s)
{
    (*label_slot(st, label))++;
    if (ok) {
        st->ok++;
        if (rejected > spans)
            rejected = spans;
        st->spans_acked += (uint64_t)(spans - rejected);
        st->spans_rejected += (uint64_t)rejected;
    } else {
        st->failed++;
    }
    uint64_t us = latency_s > 0 ? (uint64_t)(latency_s * 1e6) : 0;
    st->hist[hist_index(us)]++;
    st->hist_n++;
    if (us > st->max_us)
        st->max_us = us;
}

uint64_t lg_stats_quantile(const lg_stats *st, double q)
{
    if (st->hist_n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)st->hist_n + 0.5);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < (size_t)LG_HIST_POW * LG_HIST_SUB; i++) {
        seen += st->hist[i];
        if (seen >= rank) {
            uint64_t up = hist_upper(i);
            return up > st->max_us ? st->max_us : up;
        }
    }
    return st->max_us;
}

/* Value in kB of the "Key:" line of /proc/PID/status, or -1. */
static long proc_status_kb(int pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            if (sscanf(line + kl + 1, "%ld", &kb) != 1)
                kb = -1;
            break;
        }
    }
    fclose(f);
    return kb;
}

void lg_stats_sample_rss(lg_stats *st, int pid, double now)
{
    if (pid <= 0 || now - st->last_rss_sample < 0.1)
        return;
    st->last_rss_sample = now;
    long kb = proc_status_kb(pid, "VmRSS");
    if (kb > st->rss_max_kb)
        st->rss_max_kb = kb;
}

void lg_stats_read_hwm(lg_stats *st, int pid)
{
    if (pid > 0)
        st->hwm_kb = proc_status_kb(pid, "VmHWM");
}

static double self_cpu(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* utime + stime of pid (all its threads) from /proc/PID/stat, or -1. */
static double proc_cpu(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the command name may hold spaces: fields start after the last ')' */
    const char *p = strrchr(buf, ')');
    unsigned long long ut, stime;
    if (!p ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &stime) != 2)
        return -1;
    return (double)(ut + stime) / (double)sysconf(_SC_CLK_TCK);
}

void lg_stats_cpu_begin(lg_stats *st, int pid)
{
    st->self_cpu_s = self_cpu();
    st->daemon_cpu_s = pid > 0 ? proc_cpu(pid) : -1;
}

void lg_stats_cpu_end(lg_stats *st, int pid)
{
    double self = self_cpu();
    double daemon = pid > 0 ? proc_cpu(pid) : -1;
    st->self_cpu_s =
        self >= 0 && st->self_cpu_s >= 0 ? self - st->self_cpu_s : -1;
    st->daemon_cpu_s =
        daemon >= 0 && st->daemon_cpu_s >= 0 ? daemon - st->daemon_cpu_s : -1;
}

static double elapsed(const lg_stats *st)
{
    double e = st->t_end - st->t_start;
    return e > 0 ? e : 0;
}

static double per_s(uint64_t n, double secs)
{
    return secs > 0 ? (double)n / secs : 0;
}

static void print_text(const lg_stats *st, const lg_opts *o)
{
    double secs = elapsed(st);
    printf("halo-loadgen: %s %s:%d, %d connections",
           o->mode == LG_GRPC ? "grpc" : "http", o->host, o->port,
           o->connections);
    if (o->mode == LG_GRPC)
        printf(" x %d in flight", o->inflight);
    printf(", %d spans/request, %s trace ids, ", o->spans_per_request,
           o->sequential_ids ? "sequential" : "random");
    if (o->rate > 0)
        printf("open loop at %.0f spans/s\n", o->rate);
    else
        printf("closed loop\n");
    printf("elapsed:    %.2f s\n", secs);
    printf("requests:   %llu sent, %llu ok, %llu failed",
           (unsigned long long)st->sent, (unsigned long long)st->ok,
           (unsigned long long)st->failed);
    for (int i = 0; i < st->n_labels; i++)
        printf("%s%s %llu", i ? ", " : " (", st->by_status[i].label,
               (unsigned long long)st->by_status[i].count);
    printf("%s\n", st->n_labels ? ")" : "");
    printf("spans:      %llu sent, %llu acknowledged, %llu rejected\n",
           (unsigned long long)st->spans_sent,
           (unsigned long long)st->spans_acked,
           (unsigned long long)st->spans_rejected);
    printf("throughput: %.0f spans/s acknowledged (%.0f requests/s, "
           "%.1f MB/s sent)\n",
           per_s(st->spans_acked, secs), per_s(st->ok, secs),
           per_s(st->bytes_sent, secs) / 1e6);
    printf("latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
           lg_stats_quantile(st, 0.50) / 1e3, lg_stats_quantile(st, 0.90) / 1e3,
           lg_stats_quantile(st, 0.99) / 1e3, st->max_us / 1e3);
    if (o->rate > 0)
        printf("schedule:   worst start delay %.2f ms behind the timetable\n",
               st->late_max * 1e3);
    if (secs > 0 && st->self_cpu_s >= 0)
        printf("cpu:        loadgen %.0f%% of one core",
               100 * st->self_cpu_s / secs);
    if (secs > 0 && st->daemon_cpu_s >= 0)
        printf(", daemon %.0f%%", 100 * st->daemon_cpu_s / secs);
    if (secs > 0 && st->daemon_cpu_s >= 0 && st->spans_acked)
        printf(" (%.1f us per acknowledged span)",
               1e6 * st->daemon_cpu_s / (double)st->spans_acked);
    if (secs > 0 && st->self_cpu_s >= 0)
        printf("\n");
    if (o->pid > 0)
        printf("daemon:     pid %d, peak RSS %.1f MiB (VmHWM), max sampled RSS "
               "%.1f MiB\n",
               o->pid, st->hwm_kb / 1024.0, st->rss_max_kb / 1024.0);
}

static void print_json(const lg_stats *st, const lg_opts *o)
{
    double secs = elapsed(st);
    printf("{\"mode\":\"%s\",\"target\":\"%s:%d\",\"connections\":%d,"
           "\"inflight\":%d,\"spans_per_request\":%d,\"rate\":%.0f,"
           "\"ids\":\"%s\",\"elapsed_s\":%.3f,",
           o->mode == LG_GRPC ? "grpc" : "http", o->host, o->port,
           o->connections, o->mode == LG_GRPC ? o->inflight : 1,
           o->spans_per_request, o->rate,
           o->sequential_ids ? "sequential" : "random", secs);
    printf("\"requests_sent\":%llu,\"requests_ok\":%llu,"
           "\"requests_failed\":%llu,\"by_status\":{",
           (unsigned long long)st->sent, (unsigned long long)st->ok,
           (unsigned long long)st->failed);
    for (int i = 0; i < st->n_labels; i++)
        printf("%s\"%s\":%llu", i ? "," : "", st->by_status[i].label,
               (unsigned long long)st->by_status[i].count);
    printf("},\"spans_sent\":%llu,\"spans_acked\":%llu,\"spans_rejected\":%llu,"
           "\"spans_per_s\":%.0f,\"requests_per_s\":%.1f,\"bytes_sent\":%llu,",
           (unsigned long long)st->spans_sent,
           (unsigned long long)st->spans_acked,
           (unsigned long long)st->spans_rejected, per_s(st->spans_acked, secs),
           per_s(st->ok, secs), (unsigned long long)st->bytes_sent);
    printf("\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
           "\"max\":%.3f},\"late_max_ms\":%.3f,",
           lg_stats_quantile(st, 0.50) / 1e3, lg_stats_quantile(st, 0.90) / 1e3,
           lg_stats_quantile(st, 0.99) / 1e3, st->max_us / 1e3,
           st->late_max * 1e3);
    printf("\"loadgen_cpu_s\":%.2f,\"daemon_cpu_s\":%.2f,", st->self_cpu_s,
           st->daemon_cpu_s);
    printf("\"daemon_pid\":%d,\"daemon_peak_rss_kb\":%ld,"
           "\"daemon_max_rss_kb\":%ld}\n",
           o->pid, st->hwm_kb, st->rss_max_kb);
}

void lg_stats_print(const lg_stats *st, const lg_opts *o)
{
    if (o->json)
        print_json(st, o);
    else
        print_text(st, o);
    fflush(stdout);
}
