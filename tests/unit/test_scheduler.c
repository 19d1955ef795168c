/*
 * test_scheduler.c -- the analyzer's scheduler with an injected clock, on
 * SQLite and on a throwaway PostgreSQL: windows aligned to the schedule,
 * the grace delay, catch-up up to its limit, exactly one report per
 * (schedule, agent, window) with two instances on one database, a run
 * abandoned mid-way (its instance "died") taken over once its lease
 * expired, and a failed run retried after a back-off.
 *
 * The stored data: agent a1 has one run in each hour 09:00..14:59 of
 * 2025-11-16 (UTC), agent a2 in 09:00..11:59.
 */
#include "fixture_spans.h"
#include "harness.h"
#include "pg_test.h"

#include "analyzer/analyzer_config.h"
#include "analyzer/scheduler.h"
#include "core/config.h"
#include "core/metrics.h"
#include "storage/store.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIN_NS (60ull * 1000000000ull)
#define HOUR_NS (60ull * MIN_NS)

/* ---- fixtures ------------------------------------------------------------ */

/* A fresh store for `name` on backend pg (else SQLite) with the runs
 * above; its spec in spec. False (said) on failure. */
static bool fresh_store(bool pg, const char *name, char *spec, size_t cap)
{
    if (pg) {
        PGconn *c = pg_new_db(name);
        if (!c)
            return false;
        PQfinish(c);
        char dsn[512];
        if (!pg_dsn_for(name, dsn, sizeof dsn))
            return false;
        snprintf(spec, cap, "%s", dsn);
    } else {
        snprintf(spec, cap, "sqlite:%s/%s.db", halo_test_tmpdir(), name);
    }
    halo_store *st = NULL;
    halo_err err = {{0}};
    if (halo_store_open(spec, NULL, &st, &err) != HALO_OK) {
        fprintf(stderr, "  open %s: %s\n", spec, err.msg);
        return false;
    }
    span_opts o[16];
    size_t n = 0;
    for (uint64_t h = 0; h < 6; h++) {
        o[n++] = (span_opts){.trace = 100 + h,
                             .span = 1,
                             .start_ms = h * 3600000 + 600000,
                             .dur_ms = 2000,
                             .agent = "a1"};
        if (h < 3)
            o[n++] = (span_opts){.trace = 200 + h,
                                 .span = 1,
                                 .start_ms = h * 3600000 + 900000,
                                 .dur_ms = 1000,
                                 .agent = "a2"};
    }
    halo_batch *b = batch_of(o, n);
    bool ok = b && halo_store_write_batch(st, b, NULL, &err) == HALO_OK;
    if (!ok)
        fprintf(stderr, "  write: %s\n", err.msg);
    if (b)
        halo_batch_done(b, HALO_OK, "");
    halo_store_close(st);
    return ok;
}

/* The analyzer config of yaml (with REPORTS replaced by a fresh dir). */
static bool config_of(const char *yaml, const char *name,
                      halo_analyzer_config *cfg, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/reports-%s", halo_test_tmpdir(), name);
    char text[2048];
    const char *at = strstr(yaml, "REPORTS");
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - yaml), yaml, dir,
             at + 7);
    halo_errlist errs = {0};
    halo_node *root = halo_config_parse(text, strlen(text), "test.yaml", &errs);
    bool ok = root && halo_analyzer_config_parse(root, cfg, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "  config: %s\n", errs.msgs[i]);
    halo_errlist_free(&errs);
    halo_node_free(root);
    return ok;
}

static const char *HOURLY = "analyzer:\n"
                            "  reports_dir: REPORTS\n"
                            "  lease: 1m\n"
                            "  schedules:\n"
                            "    - {name: hourly, every: hourly, grace: 5m, "
                            "catch_up: 3}\n";

static uint64_t fake_clock(void *ctx)
{
    return *(const uint64_t *)ctx;
}

/* Reports in the store (all agents) and their window starts. */
static int count_reports(const char *spec, const char *agent,
                         const char *want_start)
{
    halo_store *st = NULL;
    halo_err err = {{0}};
    halo_store_opts ro = {.read_only = true};
    if (halo_store_open(spec, &ro, &st, &err) != HALO_OK)
        return -1;
    halo_arena *a = halo_arena_new(0);
    halo_report_filter f = {agent, NULL, 0};
    halo_report_row *rows = NULL;
    size_t n = 0;
    int count = -1;
    if (st->ops->list_reports(st, &f, a, &rows, &n, &err) == HALO_OK) {
        count = 0;
        for (size_t i = 0; i < n; i++)
            count += !want_start || !strncmp(rows[i].window_start, want_start,
                                             strlen(want_start));
    }
    halo_arena_free(a);
    halo_store_close(st);
    return count;
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* ---- alignment, grace, catch-up --------------------------------------------
 */

static void alignment(bool pg, int *halo_test_failed)
{
    const char *name = pg ? "sched_align_pg" : "sched_align";
    char spec[600], dir[300];
    halo_analyzer_config cfg = {0};
    CHECK(fresh_store(pg, name, spec, sizeof spec));
    CHECK(config_of(HOURLY, name, &cfg, dir, sizeof dir));
    uint64_t now = T0 + 6 * HOUR_NS + 3 * MIN_NS; /* 15:03 */
    halo_scheduler_opts o = {
        .cfg = &cfg, .store_spec = spec, .now = fake_clock, .now_ctx = &now};
    halo_scheduler *s = NULL;
    halo_err err = {{0}};
    CHECK(halo_scheduler_new(&o, &s, &err) == HALO_OK);
    halo_tick_stats ts;
    /* due at 15:03 with 5m grace: the fires 14:00, 13:00, 12:00 (catch-up
     * of 3): windows [13,14), [12,13), [11,12); a1 ran in each, a2 in
     * [11,12) only */
    CHECK(halo_scheduler_tick(s, &ts, &err) == HALO_OK);
    CHECK_INT(ts.runs, 4);
    CHECK_INT(ts.failed, 0);
    CHECK_INT(count_reports(spec, "a1", NULL), 3);
    CHECK_INT(count_reports(spec, "a1", "2025-11-16T11:00:00"), 1);
    CHECK_INT(count_reports(spec, "a1", "2025-11-16T13:00:00"), 1);
    CHECK_INT(count_reports(spec, "a1", "2025-11-16T10:00:00"), 0);
    CHECK_INT(count_reports(spec, "a2", NULL), 1);
    CHECK_INT(count_reports(spec, "a2", "2025-11-16T11:00:00"), 1);
    halo_buf mb = HALO_BUF_INIT;
    halo_metrics_render(&mb);
    halo_buf_putc(&mb, '\0');
    CHECK_CONTAINS(mb.data, "halo_analyzer_reports_total{schedule=\"hourly\"}");
    CHECK_CONTAINS(mb.data, "halo_analyzer_run_seconds_count{schedule="
                            "\"hourly\"}");
    halo_buf_free(&mb);
    char path[512];
    snprintf(path, sizeof path, "%s/a1/hourly/2025-11-16T13:00:00Z.json", dir);
    CHECK(file_exists(path));
    snprintf(path, sizeof path, "%s/a1/hourly/2025-11-16T13:00:00Z.md", dir);
    CHECK(file_exists(path));
    /* the same instant again: nothing new */
    CHECK(halo_scheduler_tick(s, &ts, &err) == HALO_OK);
    CHECK_INT(ts.runs + ts.skipped, 0);
    /* 15:04:59: the window [14,15) is still in its grace */
    now = T0 + 6 * HOUR_NS + 5 * MIN_NS - 1000000000ull;
    CHECK(halo_scheduler_tick(s, &ts, &err) == HALO_OK);
    CHECK_INT(ts.runs, 0);
    now += 1000000000ull; /* 15:05 */
    CHECK(halo_scheduler_tick(s, &ts, &err) == HALO_OK);
    CHECK_INT(ts.runs, 1);
    CHECK_INT(count_reports(spec, "a1", "2025-11-16T14:00:00"), 1);
    halo_scheduler_free(s);
    halo_analyzer_config_free(&cfg);
}

TEST(alignment_grace_catch_up_sqlite)
{
    alignment(false, halo_test_failed);
}

TEST(alignment_grace_catch_up_postgres)
{
    alignment(true, halo_test_failed);
}

/* ---- two instances on one database ----------------------------------------
 */

typedef struct instance {
    halo_scheduler *s;
    halo_tick_stats ts;
    halo_status st;
    pthread_barrier_t *go;
} instance;

static void *tick_thread(void *arg)
{
    instance *in = arg;
    halo_err err = {{0}};
    pthread_barrier_wait(in->go);
    in->st = halo_scheduler_tick(in->s, &in->ts, &err);
    if (in->st != HALO_OK)
        fprintf(stderr, "  tick: %s\n", err.msg);
    return NULL;
}

static void two_instances(bool pg, int *halo_test_failed)
{
    const char *name = pg ? "sched_two_pg" : "sched_two";
    char spec[600], dir[300];
    halo_analyzer_config cfg = {0};
    CHECK(fresh_store(pg, name, spec, sizeof spec));
    CHECK(config_of("analyzer:\n"
                    "  reports_dir: REPORTS\n"
                    "  schedules:\n"
                    "    - {name: h1, every: hourly, catch_up: 6}\n"
                    "    - {name: h2, every: 1h, catch_up: 6}\n"
                    "    - {name: h3, cron: \"0 * * * *\", catch_up: 6}\n",
                    name, &cfg, dir, sizeof dir));
    uint64_t now = T0 + 6 * HOUR_NS + 6 * MIN_NS; /* 15:06 */
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    instance in[2] = {{0}, {0}};
    const char *owners[] = {"instance-a", "instance-b"};
    for (int i = 0; i < 2; i++) {
        halo_scheduler_opts o = {.cfg = &cfg,
                                 .store_spec = spec,
                                 .owner = owners[i],
                                 .now = fake_clock,
                                 .now_ctx = &now};
        halo_err err = {{0}};
        CHECK(halo_scheduler_new(&o, &in[i].s, &err) == HALO_OK);
        in[i].go = &go;
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, tick_thread, &in[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    CHECK(in[0].st == HALO_OK && in[1].st == HALO_OK);
    /* per schedule: a1 in 6 windows [09..15), a2 in 3: 9 runs, x3 */
    fprintf(stderr, "    instance a ran %lld, b ran %lld\n",
            (long long)in[0].ts.runs, (long long)in[1].ts.runs);
    CHECK_INT(in[0].ts.runs + in[1].ts.runs, 27);
    CHECK_INT(in[0].ts.failed + in[1].ts.failed, 0);
    CHECK_INT(count_reports(spec, NULL, NULL), 27);
    CHECK_INT(count_reports(spec, "a2", NULL), 9);
    /* and again, later: both see every run done */
    now += MIN_NS;
    for (int i = 0; i < 2; i++) {
        halo_err err = {{0}};
        CHECK(halo_scheduler_tick(in[i].s, &in[i].ts, &err) == HALO_OK);
        CHECK_INT(in[i].ts.runs, 0);
    }
    for (int i = 0; i < 2; i++)
        halo_scheduler_free(in[i].s);
    halo_analyzer_config_free(&cfg);
}

TEST(two_instances_run_each_window_once_sqlite)
{
    two_instances(false, halo_test_failed);
}

TEST(two_instances_run_each_window_once_postgres)
{
    two_instances(true, halo_test_failed);
}

/* ---- a run abandoned mid-way ----------------------------------------------
 */

static bool die_before_finish(void *ctx, const halo_run_key *k)
{
    (void)k;
    (*(int *)ctx)++;
    return false;
}

static void restart(bool pg, int *halo_test_failed)
{
    const char *name = pg ? "sched_restart_pg" : "sched_restart";
    char spec[600], dir[300];
    halo_analyzer_config cfg = {0};
    CHECK(fresh_store(pg, name, spec, sizeof spec));
    CHECK(config_of(HOURLY, name, &cfg, dir, sizeof dir));
    uint64_t now = T0 + 6 * HOUR_NS + 3 * MIN_NS;
    int died = 0;
    halo_scheduler_opts o = {.cfg = &cfg,
                             .store_spec = spec,
                             .owner = "first",
                             .now = fake_clock,
                             .now_ctx = &now,
                             .before_finish = die_before_finish,
                             .hook_ctx = &died};
    halo_scheduler *a = NULL, *b = NULL;
    halo_err err = {{0}};
    CHECK(halo_scheduler_new(&o, &a, &err) == HALO_OK);
    halo_tick_stats ts;
    CHECK(halo_scheduler_tick(a, &ts, &err) == HALO_OK);
    CHECK_INT(ts.abandoned, 4);
    CHECK_INT(died, 4);
    halo_scheduler_free(a); /* the process "died": its claims stay */
    o.owner = "second";
    o.before_finish = NULL;
    CHECK(halo_scheduler_new(&o, &b, &err) == HALO_OK);
    /* the claims are live for their lease (1m): held */
    now += 30ull * 1000000000ull;
    CHECK(halo_scheduler_tick(b, &ts, &err) == HALO_OK);
    CHECK_INT(ts.runs, 0);
    CHECK_INT(ts.skipped, 4);
    /* after the lease: taken over, each run done once */
    now += 31ull * 1000000000ull;
    CHECK(halo_scheduler_tick(b, &ts, &err) == HALO_OK);
    CHECK_INT(ts.runs, 4);
    CHECK_INT(count_reports(spec, "a1", NULL), 3);
    CHECK(halo_scheduler_tick(b, &ts, &err) == HALO_OK);
    CHECK_INT(ts.runs, 0);
    halo_scheduler_free(b);
    halo_analyzer_config_free(&cfg);
}

TEST(restart_mid_run_taken_over_after_lease_sqlite)
{
    restart(false, halo_test_failed);
}

TEST(restart_mid_run_taken_over_after_lease_postgres)
{
    restart(true, halo_test_failed);
}

/* ---- a failed run -----------------------------------------------------------
 */

TEST(failed_run_is_retried_after_a_backoff)
{
    char spec[600], dir[300];
    halo_analyzer_config cfg = {0};
    CHECK(fresh_store(false, "sched_fail", spec, sizeof spec));
    CHECK(config_of(HOURLY, "sched_fail", &cfg, dir, sizeof dir));
    /* reports_dir under a regular file: saving fails */
    char blocker[400];
    snprintf(blocker, sizeof blocker, "%s/not-a-dir", halo_test_tmpdir());
    FILE *f = fopen(blocker, "w");
    CHECK(f != NULL);
    fclose(f);
    char *good = cfg.reports_dir;
    char bad[500];
    snprintf(bad, sizeof bad, "%s/reports", blocker);
    cfg.reports_dir = bad;
    uint64_t now = T0 + 6 * HOUR_NS + 3 * MIN_NS;
    halo_scheduler_opts o = {
        .cfg = &cfg, .store_spec = spec, .now = fake_clock, .now_ctx = &now};
    halo_scheduler *s = NULL;
    halo_err err = {{0}};
    CHECK(halo_scheduler_new(&o, &s, &err) == HALO_OK);
    halo_tick_stats ts;
    CHECK(halo_scheduler_tick(s, &ts, &err) == HALO_OK);
    CHECK_INT(ts.failed, 4);
    CHECK_INT(ts.runs, 0);
    cfg.reports_dir = good;
    /* a failed run waits (30 s, doubling) before its next try */
    now += 10ull * 1000000000ull;
    CHECK(halo_scheduler_tick(s, &ts, &err) == HALO_OK);
    CHECK_INT(ts.runs + ts.failed, 0);
    CHECK_INT(ts.skipped, 4);
    now += MIN_NS;
    CHECK(halo_scheduler_tick(s, &ts, &err) == HALO_OK);
    CHECK_INT(ts.failed, 0);
    CHECK_INT(ts.runs, 4);
    halo_scheduler_free(s);
    halo_analyzer_config_free(&cfg);
}

/* ---- configuration errors -------------------------------------------------
 */

TEST(config_errors_name_the_schedule_and_line)
{
    const char *yaml = "analyzer:\n"
                       "  schedules:\n"
                       "    - {name: a, every: daily, at: \"25:00\"}\n"
                       "    - {name: a, every: hourly}\n"
                       "    - {every: hourly}\n"
                       "    - {name: c, every: hourly, timezone: Mars/Base}\n"
                       "    - {name: d, every: hourly, bogus: 1}\n";
    halo_errlist errs = {0};
    halo_node *root = halo_config_parse(yaml, strlen(yaml), "t.yaml", &errs);
    CHECK(root != NULL);
    halo_analyzer_config cfg = {0};
    CHECK(!halo_analyzer_config_parse(root, &cfg, &errs));
    halo_buf all = HALO_BUF_INIT;
    for (size_t i = 0; i < errs.n; i++) {
        halo_buf_puts(&all, errs.msgs[i]);
        halo_buf_putc(&all, '\n');
    }
    halo_buf_putc(&all, '\0');
    fprintf(stderr, "%s", all.data);
    CHECK_CONTAINS(all.data, "t.yaml:3:");
    CHECK_CONTAINS(all.data, "(a): at:");
    CHECK_CONTAINS(all.data, "duplicate name \"a\"");
    CHECK_CONTAINS(all.data, "schedules[2]: name is required");
    CHECK_CONTAINS(all.data, "unknown time zone \"Mars/Base\"");
    CHECK_CONTAINS(all.data, "bogus");
    halo_buf_free(&all);
    halo_errlist_free(&errs);
    halo_node_free(root);
    halo_analyzer_config_free(&cfg);
}
