/*
 * test_pg_exporter.c -- the postgres exporter against a real PostgreSQL 15
 * (pg_test.h), outages included: the server is halted the hard way
 * (pg_server.sh halt: connections cut, as a crash) and resumed on the same
 * port while the exporter works.
 *
 * The exporter is created directly from YAML (no pipeline) and fed
 * batches of hand-built spans: batch K holds the spans of trace K only, so
 * what the database holds can be checked batch by batch. Acks record
 * their status, message and time; a "client" (send_all) resends the
 * batches that were refused, as an OTel SDK would, until each is acked OK.
 * Waits poll a condition with a deadline; nothing sleeps a fixed time
 * except the short naps of those polls.
 */
#include "core/clock.h"
#include "fixture_spans.h"
#include "harness.h"
#include "pg_test.h"
#include "storage/pg_schema.h"

#include "core/batch.h"
#include "core/component.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

extern const halo_component_def halo_exporter_postgres;

#define SECRET "s3cr3tpw"
#define ACK_BOUND_MS 5000 /* no ack may take longer, outages included */

static uint64_t now_ms(void)
{
    return halo_mono_ns() / 1000000u;
}

static void nap_ms(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the exporter under test --------------------------------------------- */

typedef struct ex {
    halo_component c;
    void *cfg;
    halo_node *root;
    char id[64];
} ex;

/* Config from yaml, create, and start when asked. */
static halo_status ex_open(ex *e, const char *id, const char *yaml, bool start,
                           halo_err *err)
{
    const halo_component_def *def = &halo_exporter_postgres;
    halo_errlist errs = {0};
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", id);
    e->root = halo_config_parse(yaml, strlen(yaml), "test.yaml", &errs);
    e->cfg = calloc(1, def->cfg_size);
    if (!e->root || !halo_config_apply(def->schema, e->root, e->cfg,
                                       "exporters.postgres", &errs)) {
        halo_errf(err, "%s", errs.n ? errs.msgs[0] : "config error");
        halo_errlist_free(&errs);
        return HALO_EINVAL;
    }
    halo_errlist_free(&errs);
    e->c = (halo_component){.def = def,
                            .id = e->id,
                            .log_prefix = (char *)"exporter:postgres",
                            .cfg = e->cfg};
    halo_status st = def->create(&e->c, err);
    if (st == HALO_OK && start)
        st = def->start(&e->c, err);
    return st;
}

static void ex_close(ex *e)
{
    if (e->c.ctx) {
        e->c.def->shutdown(&e->c);
        e->c.def->shutdown(&e->c); /* safe twice */
        e->c.def->destroy(&e->c);
    }
    if (e->cfg)
        halo_config_release(halo_exporter_postgres.schema, e->cfg);
    free(e->cfg);
    halo_node_free(e->root);
    memset(e, 0, sizeof *e);
}

/* The exporter's YAML for database db plus extra lines. */
static const char *yaml_for(const char *db, const char *extra, char *buf,
                            size_t cap)
{
    char dsn[320];
    if (!pg_dsn_for(db, dsn, sizeof dsn))
        return NULL;
    snprintf(buf, cap, "dsn: \"%s\"\n%s", dsn, extra ? extra : "");
    return buf;
}

static double metric_of(const char *name, const ex *e)
{
    char labels[128];
    snprintf(labels, sizeof labels, "exporter=\"%s\"", e->id);
    if (strstr(name, "_total"))
        return halo_metric_value(halo_counter(name, "", labels));
    return halo_metric_value(halo_gauge(name, "", labels));
}

static double conns_up(const ex *e)
{
    return metric_of("halo_exporter_connections_up", e);
}

/* Poll until `connections up` is want (deadline ms). */
static bool wait_up(const ex *e, double want, int deadline_ms)
{
    uint64_t end = now_ms() + (uint64_t)deadline_ms;
    while (conns_up(e) != want && now_ms() < end)
        nap_ms(5);
    return conns_up(e) == want;
}

/* A new database db and the exporter "postgres/DB" on it (extra: config
 * lines besides the dsn), started, with `want` connections up. The test's
 * own connection to db, or NULL (said on stderr). */
static PGconn *db_with_exporter(ex *e, const char *db, const char *extra,
                                int want)
{
    char yaml[640], id[64];
    halo_err err = {{0}};
    PGconn *c = pg_new_db(db);
    memset(e, 0, sizeof *e);
    snprintf(id, sizeof id, "postgres/%s", db);
    if (!c || !yaml_for(db, extra, yaml, sizeof yaml))
        goto fail;
    if (ex_open(e, id, yaml, true, &err) != HALO_OK) {
        fprintf(stderr, "  %s\n", err.msg);
        goto fail;
    }
    if (!wait_up(e, want, 20000)) {
        fprintf(stderr, "  %s: not connected\n", id);
        goto fail;
    }
    return c;
fail:
    ex_close(e);
    PQfinish(c);
    return NULL;
}

/* ---- acks, and a checker that looks at the database when an ack runs ---- */

static struct {
    pthread_mutex_t mu;
    PGconn *c; /* NULL: no check */
} checker = {PTHREAD_MUTEX_INITIALIZER, NULL};

typedef struct rec {
    pthread_mutex_t mu;
    int calls;
    halo_status st;
    char msg[1024];
    uint64_t sent_ms, acked_ms;
    uint64_t key;
    long long rows_at_ack; /* spans of trace `key` stored when acked OK */
} rec;

static void trace_hex(uint64_t key, char out[33])
{
    snprintf(out, 33, "abababababababab%016llx", (unsigned long long)key);
}

static long long rows_of(PGconn *c, uint64_t key)
{
    char sql[160], hex[33];
    trace_hex(key, hex);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM spans WHERE trace_id = '%s'", hex);
    return pg_q_int(c, sql);
}

static void on_ack(void *ud, halo_status st, const char *msg)
{
    rec *r = ud;
    long long rows = -2;
    pthread_mutex_lock(&checker.mu);
    if (st == HALO_OK && checker.c)
        rows = rows_of(checker.c, r->key);
    pthread_mutex_unlock(&checker.mu);
    pthread_mutex_lock(&r->mu);
    r->calls++;
    r->st = st;
    r->acked_ms = now_ms();
    r->rows_at_ack = rows;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
    pthread_mutex_unlock(&r->mu);
}

static void rec_init(rec *r, uint64_t key)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->key = key;
    r->sent_ms = now_ms();
}

static int rec_calls(rec *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->calls;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static bool rec_wait(rec *r, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (rec_calls(r) == 0 && now_ms() < end)
        nap_ms(1);
    return rec_calls(r) > 0;
}

/* ---- spans --------------------------------------------------------------- */

static halo_kv res_attr = {
    .key = "service.name",
    .value = {.type = HALO_VAL_STRING, .u.s = {"svc-pg", 6}}};
static halo_resource resource = {.attrs = {&res_attr, 1}, .schema_url = ""};
static halo_scope scope = {.name = "pg-test", .version = "1", .schema_url = ""};
static uint64_t t0_ns; /* spans start around now: today's partition */

/* Trace `key`: span 1 the root, 2..per its children. One ack on r. */
static halo_batch *make_batch(uint64_t key, int per, const char *name, rec *r)
{
    if (!t0_ns)
        t0_ns = halo_real_ns();
    halo_arena *a = halo_arena_new(0);
    halo_span *sp = halo_arena_calloc(a, (size_t)per, sizeof *sp);
    for (int s = 0; s < per; s++) {
        memset(sp[s].trace_id, 0xab, 8);
        for (int i = 0; i < 8; i++)
            sp[s].trace_id[8 + i] = (uint8_t)(key >> (56 - 8 * i));
        sp[s].span_id[6] = (uint8_t)((s + 1) >> 8);
        sp[s].span_id[7] = (uint8_t)(s + 1);
        if (s)
            sp[s].parent_span_id[7] = 1;
        sp[s].name = s ? (name ? name : "child") : "root";
        sp[s].trace_state = "";
        sp[s].status_message = "";
        sp[s].kind = 1;
        sp[s].start_ns = t0_ns + key * 1000 + (uint64_t)s;
        sp[s].end_ns = sp[s].start_ns + 1000;
        sp[s].resource = &resource;
        sp[s].scope = &scope;
        sp[s].d.agent_id = sp[s].d.agent_name = "agent-pg";
        sp[s].d.span_type = "AGENT";
    }
    halo_batch *b = halo_batch_new();
    halo_batch_add_chunk(b, a, sp, (size_t)per);
    if (r) {
        halo_ack *ack = halo_ack_new(on_ack, r);
        halo_batch_add_ack(b, ack);
        halo_ack_unref(ack);
    }
    return b;
}

/* Hand over n batches (keys key0 + i * step, per spans each, acks on
 * r[i]); true when every one was accepted. */
static bool consume_n(ex *e, rec *r, int n, uint64_t key0, uint64_t step,
                      int per)
{
    bool ok = true;
    for (int i = 0; i < n; i++) {
        uint64_t key = key0 + (uint64_t)i * step;
        rec_init(&r[i], key);
        if (e->c.def->consume(&e->c, make_batch(key, per, NULL, &r[i])))
            ok = false;
    }
    return ok;
}

/* ---- a client: send, resend what was refused, until all is acked OK ----- */

typedef struct client {
    ex *e;
    int per;
    int deadline_ms;
    bool check_rows; /* each OK ack must find its rows stored */
    /* results */
    int refused; /* acks that said retry (synchronous or not) */
    uint64_t max_ack_ms;
    char why[1024]; /* first problem; "" when none */
} client;

/* Batches first .. first+n-1, all in flight at once, resent while refused.
 * False (with why) on a hang, an unexpected answer or the deadline. */
static bool send_all(client *cl, uint64_t first, int n)
{
    rec *r = calloc((size_t)n, sizeof *r);
    bool *done = calloc((size_t)n, sizeof *done);
    int left = n;
    uint64_t end = now_ms() + (uint64_t)cl->deadline_ms;
    while (left && now_ms() < end && !cl->why[0]) {
        for (int i = 0; i < n; i++)
            if (!done[i]) {
                rec_init(&r[i], first + (uint64_t)i);
                halo_batch *b =
                    make_batch(first + (uint64_t)i, cl->per, NULL, &r[i]);
                cl->e->c.def->consume(&cl->e->c, b);
            }
        for (int i = 0; i < n && !cl->why[0]; i++) {
            if (done[i])
                continue;
            if (!rec_wait(&r[i], ACK_BOUND_MS)) {
                snprintf(cl->why, sizeof cl->why, "no ack for batch %llu",
                         (unsigned long long)r[i].key);
                break;
            }
            uint64_t took = r[i].acked_ms - r[i].sent_ms;
            if (took > cl->max_ack_ms)
                cl->max_ack_ms = took;
            if (r[i].st == HALO_ERETRY) {
                cl->refused++;
                continue;
            }
            if (r[i].st != HALO_OK)
                snprintf(cl->why, sizeof cl->why,
                         "batch %llu: status %d: %.900s",
                         (unsigned long long)r[i].key, (int)r[i].st, r[i].msg);
            else if (cl->check_rows && r[i].rows_at_ack != cl->per)
                snprintf(cl->why, sizeof cl->why,
                         "batch %llu acked with %lld of its %d rows stored",
                         (unsigned long long)r[i].key, r[i].rows_at_ack,
                         cl->per);
            done[i] = true;
            left--;
        }
        if (left)
            nap_ms(10); /* a client's backoff */
    }
    if (left && !cl->why[0])
        snprintf(cl->why, sizeof cl->why, "%d batches never acked OK", left);
    for (int i = 0; i < n; i++)
        pthread_mutex_destroy(&r[i].mu);
    free(r);
    free(done);
    return !cl->why[0];
}

/* The database holds traces 0 .. n-1 exactly once, per spans each, and
 * the rollup counted each span once. */
static bool stored_exactly(PGconn *c, long long n, int per)
{
    long long spans = pg_q_int(c, "SELECT count(*) FROM spans");
    long long traces = pg_q_int(c, "SELECT count(DISTINCT trace_id) FROM "
                                   "spans");
    long long rollup = pg_q_int(c, "SELECT coalesce(sum(span_count), 0) "
                                   "FROM traces");
    long long bad = pg_q_int(c, "SELECT count(*) FROM traces WHERE "
                                "span_count <> (SELECT count(*) FROM spans s "
                                "WHERE s.trace_id = traces.trace_id)");
    if (spans == n * per && traces == n && rollup == n * per && bad == 0)
        return true;
    fprintf(stderr,
            "  stored: %lld spans, %lld traces, rollup %lld, %lld wrong "
            "rollups; expected %lld traces of %d spans\n",
            spans, traces, rollup, bad, n, per);
    return false;
}

/* ---- tests --------------------------------------------------------------- */

typedef struct worker {
    client cl;
    uint64_t first;
    int n;
    pthread_t t;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    send_all(&w->cl, w->first, w->n);
    return NULL;
}

/* Four threads, four connections: every batch stored, and every ack found
 * its rows already committed (acknowledged only after the commit). */
TEST(concurrent_batches_are_stored_then_acked)
{
    ex e;
    PGconn *c = db_with_exporter(&e, "pgx_conc", "num_connections: 4\n", 4);
    CHECK(c);
    pthread_mutex_lock(&checker.mu);
    checker.c = pg_connect_db("pgx_conc");
    pthread_mutex_unlock(&checker.mu);
    CHECK(checker.c);
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){.cl = {.e = &e,
                               .per = 20,
                               .deadline_ms = 60000,
                               .check_rows = true},
                        .first = (uint64_t)i * 1000,
                        .n = 40};
        CHECK(pthread_create(&w[i].t, NULL, worker_main, &w[i]) == 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(w[i].t, NULL);
    pthread_mutex_lock(&checker.mu);
    PQfinish(checker.c);
    checker.c = NULL;
    pthread_mutex_unlock(&checker.mu);
    for (int i = 0; i < 4; i++) {
        if (w[i].cl.why[0])
            fprintf(stderr, "  worker %d: %s\n", i, w[i].cl.why);
        CHECK(!w[i].cl.why[0]);
    }
    CHECK(stored_exactly(c, 160, 20));
    CHECK(metric_of("halo_exporter_sent_spans_total", &e) == 160 * 20);
    printf("  160 batches from 4 threads, %d refused and resent (queue "
           "full)\n",
           w[0].cl.refused + w[1].cl.refused + w[2].cl.refused +
               w[3].cl.refused);
    ex_close(&e);
    PQfinish(c);
}

/* The same batch twice, alone and in one group: one copy, the rollup
 * counted once. */
TEST(same_batch_twice_is_one_copy)
{
    ex e;
    PGconn *c = db_with_exporter(&e, "pgx_twice", "num_connections: 1\n", 1);
    CHECK(c);
    rec r[4];
    for (int round = 0; round < 2; round++) {
        /* round 0: one after the other; round 1: three at once */
        int n = round ? 3 : 1;
        CHECK(consume_n(&e, r, n, 7, 0, 5));
        for (int i = 0; i < n; i++) {
            CHECK(rec_wait(&r[i], ACK_BOUND_MS));
            CHECK_INT(r[i].st, HALO_OK);
        }
        CHECK_INT(pg_q_int(c, "SELECT count(*) FROM spans"), 5);
        CHECK_INT(pg_q_int(c, "SELECT span_count FROM traces"), 5);
    }
    CHECK(stored_exactly(c, 1, 5));
    ex_close(&e);
    PQfinish(c);
}

/* The exporter stores input and output once (its connections see a UTF8
 * database), as the store does: fixture_spans.h's io_batch. */
TEST(input_output_stored_once)
{
    ex e;
    PGconn *c = db_with_exporter(&e, "pgx_io", "num_connections: 1\n", 1);
    CHECK(c);
    halo_batch *b = io_batch();
    CHECK(b);
    rec r;
    rec_init(&r, 1);
    halo_ack *ack = halo_ack_new(on_ack, &r);
    CHECK(ack);
    halo_batch_add_ack(b, ack);
    halo_ack_unref(ack);
    CHECK_INT(e.c.def->consume(&e.c, b), HALO_OK);
    CHECK(rec_wait(&r, ACK_BOUND_MS));
    CHECK_INT(r.st, HALO_OK);
    int in = 0, out = 0;
    for (int i = 0; i < IO_SPANS; i++) {
        in += io_cut[i][0] == '1';
        out += io_cut[i][1] == '1';
    }
    CHECK_INT(pg_q_int(c, "SELECT count(input_at) FROM span_rows"), in);
    CHECK_INT(pg_q_int(c, "SELECT count(output_at) FROM span_rows"), out);
    /* and the view puts them back: every span with both has them equal */
    long long both = pg_q_int(c, "SELECT count(*) FROM spans WHERE"
                                 " attributes->>'input.value' IS NOT NULL"
                                 " AND input IS NOT NULL");
    CHECK(both >= in);
    CHECK_INT(pg_q_int(c, "SELECT count(*) FROM spans WHERE"
                          " attributes->>'input.value' = input"),
              both);
    ex_close(&e);
    PQfinish(c);
}

/* shutdown() writes what is queued before it returns, then refuses. */
TEST(shutdown_drains_then_refuses)
{
    ex e;
    PGconn *c = db_with_exporter(&e, "pgx_drain", "num_connections: 2\n", 2);
    CHECK(c);
    rec r[8];
    CHECK(consume_n(&e, r, 8, 0, 1, 50));
    e.c.def->shutdown(&e.c);
    for (int i = 0; i < 8; i++) {
        CHECK(rec_calls(&r[i]) == 1); /* answered before shutdown returned */
        CHECK_INT(r[i].st, HALO_OK);
    }
    CHECK(stored_exactly(c, 8, 50));
    rec late;
    rec_init(&late, 99);
    CHECK_INT(e.c.def->consume(&e.c, make_batch(99, 1, NULL, &late)),
              HALO_ESHUTDOWN);
    CHECK_CONTAINS(late.msg, "postgres/pgx_drain: shutting down");
    ex_close(&e);
    PQfinish(c);
}

/* The outage: a load runs, the server is halted, answers turn retryable at
 * once (not after connect_timeout), the server comes back on the same
 * port, the exporter reconnects by itself, and every batch the client was
 * told OK is stored exactly once. */
typedef struct load {
    client cl;
    atomic_bool stop;
    atomic_llong acked; /* batches acked OK so far */
    pthread_t t;
} load;

static void *load_main(void *arg)
{
    load *l = arg;
    uint64_t k = 0;
    while (!atomic_load(&l->stop) && !l->cl.why[0]) {
        if (!send_all(&l->cl, k, 8))
            break;
        k += 8;
        atomic_store(&l->acked, (long long)k);
    }
    return NULL;
}

/* After a halt: consume() must refuse at once within bound_ms. The probes
 * (never stored: the server is down) must all be refused, some maybe
 * through their ack. */
static bool refused_within(ex *e, int bound_ms, char *msg, size_t cap)
{
    uint64_t end = now_ms() + (uint64_t)bound_ms;
    for (uint64_t k = 1u << 30; now_ms() < end; k++) {
        rec r;
        rec_init(&r, k);
        halo_status st = e->c.def->consume(&e->c, make_batch(k, 1, NULL, &r));
        if (!rec_wait(&r, bound_ms) || r.st != HALO_ERETRY)
            return false;
        snprintf(msg, cap, "%s", r.msg);
        pthread_mutex_destroy(&r.mu);
        if (st == HALO_ERETRY)
            return true;
        nap_ms(2);
    }
    return false;
}

TEST(outage_refuses_promptly_and_recovers)
{
    char msg[1024], dsn[320];
    ex e;
    PGconn *c = db_with_exporter(&e, "pgx_outage",
                                 "num_connections: 4\nconnect_timeout: 10s\n"
                                 "reconnect_initial_interval: 50ms\n"
                                 "reconnect_max_interval: 400ms\n",
                                 4);
    CHECK(c);
    PQfinish(c);
    load l = {.cl = {.e = &e, .per = 10, .deadline_ms = 60000}};
    atomic_init(&l.stop, false);
    atomic_init(&l.acked, 0);
    CHECK(pthread_create(&l.t, NULL, load_main, &l) == 0);
    uint64_t end = now_ms() + 20000;
    while (atomic_load(&l.acked) < 40 && now_ms() < end)
        nap_ms(5);
    bool ok = atomic_load(&l.acked) >= 40;

    ok = ok && pg_server_halt();
    uint64_t t_halt = now_ms();
    bool refused = ok && refused_within(&e, 2000, msg, sizeof msg);
    uint64_t took = now_ms() - t_halt;
    bool down = refused && wait_up(&e, 0, 2000);
    bool resumed = pg_server_resume();
    long long at_resume = atomic_load(&l.acked);
    bool back = resumed && wait_up(&e, 4, 20000);
    end = now_ms() + 30000;
    while (atomic_load(&l.acked) < at_resume + 40 && now_ms() < end &&
           !l.cl.why[0])
        nap_ms(5);
    atomic_store(&l.stop, true);
    pthread_join(l.t, NULL);

    CHECK(ok);
    CHECK(refused);
    fprintf(stderr, "  refused %llu ms after the halt: %s\n",
            (unsigned long long)took, msg);
    CHECK(took < 2000);
    CHECK_CONTAINS(msg, "postgres/pgx_outage: database unavailable (");
    CHECK(pg_dsn_for("pgx_outage", dsn, sizeof dsn));
    CHECK_CONTAINS(msg, strstr(dsn, "127.0.0.1:"));
    CHECK_CONTAINS(msg, "), retrying");
    CHECK(down);
    CHECK(resumed);
    CHECK(back);
    if (l.cl.why[0])
        fprintf(stderr, "  load: %s\n", l.cl.why);
    CHECK(!l.cl.why[0]);
    CHECK(atomic_load(&l.acked) >= at_resume + 40);
    CHECK(l.cl.refused > 0);
    fprintf(stderr,
            "  %lld batches acked, %d refusals resent, longest ack "
            "%llu ms\n",
            atomic_load(&l.acked), l.cl.refused,
            (unsigned long long)l.cl.max_ack_ms);
    CHECK(l.cl.max_ack_ms < 2000);
    ex_close(&e);
    c = pg_connect_db("pgx_outage");
    CHECK(c);
    CHECK(stored_exactly(c, atomic_load(&l.acked), 10));
    PQfinish(c);
}

/* Idle connections notice a halt by themselves within the idle check
 * interval (1 s), although the server's goodbye comes before its close. */
TEST(idle_connections_notice_a_halt)
{
    char yaml[512];
    CHECK(yaml_for("pgx_conc",
                   "num_connections: 3\nreconnect_initial_interval: 50ms\n"
                   "reconnect_max_interval: 200ms\n",
                   yaml, sizeof yaml));
    ex e;
    halo_err err = {{0}};
    CHECK_INT(ex_open(&e, "postgres/idle", yaml, true, &err), HALO_OK);
    CHECK(wait_up(&e, 3, 20000));
    bool halted = pg_server_halt();
    uint64_t t = now_ms();
    bool down = halted && wait_up(&e, 0, 3000);
    uint64_t took = now_ms() - t;
    bool resumed = pg_server_resume();
    CHECK(halted);
    CHECK(down);
    fprintf(stderr, "  idle connections down %llu ms after the halt\n",
            (unsigned long long)took);
    CHECK(took < 1500);
    CHECK(resumed);
    CHECK(wait_up(&e, 3, 20000));
    ex_close(&e);
}

/* Started while the server is down: start() succeeds at once, batches are
 * refused with the reason, and once the server is up the exporter connects,
 * migrates and stores. */
TEST(starts_while_the_server_is_down)
{
    char yaml[512];
    PGconn *c = pg_new_db("pgx_late");
    CHECK(c);
    PQfinish(c);
    CHECK(yaml_for("pgx_late",
                   "num_connections: 2\nreconnect_initial_interval: 50ms\n"
                   "reconnect_max_interval: 300ms\n",
                   yaml, sizeof yaml));
    CHECK(pg_server_halt());
    ex e;
    halo_err err = {{0}};
    uint64_t t = now_ms();
    halo_status st = ex_open(&e, "postgres/late", yaml, true, &err);
    uint64_t took = now_ms() - t;
    rec r;
    rec_init(&r, 1);
    halo_status cst = st == HALO_OK
                          ? e.c.def->consume(&e.c, make_batch(1, 3, NULL, &r))
                          : HALO_EIO;
    bool resumed = pg_server_resume();
    CHECK_INT(st, HALO_OK);
    CHECK(took < 2500);
    CHECK_INT(cst, HALO_ERETRY);
    CHECK(rec_wait(&r, 1000));
    CHECK_INT(r.st, HALO_ERETRY);
    CHECK_CONTAINS(r.msg, "database unavailable (127.0.0.1:");
    CHECK(strstr(r.msg, "refused") || strstr(r.msg, "Connection refused"));
    CHECK(resumed);
    client cl = {.e = &e, .per = 3, .deadline_ms = 30000};
    CHECK(send_all(&cl, 1, 4));
    c = pg_connect_db("pgx_late");
    CHECK(c);
    CHECK(stored_exactly(c, 4, 3));
    CHECK_INT(pg_q_int(c, "SELECT max(version) FROM schema_migrations"),
              halo_pg_schema_version());
    ex_close(&e);
    PQfinish(c);
}

/* ---- passwords ----------------------------------------------------------- */

#define FAIL_IF(cond, ...)                                                     \
    do {                                                                       \
        if (cond) {                                                            \
            snprintf(why, cap, __VA_ARGS__);                                   \
            goto done;                                                         \
        }                                                                      \
    } while (0)

/* Everything that may print a server's name or an error, with a password
 * in the DSN (trust auth ignores it): connect, an outage, a refusal, a
 * DSN from $HALO_PG_DSN, a server that is not there, a malformed DSN. */
static bool password_scenario(char *why, size_t cap)
{
    char dsn[320], yaml[640], port[16];
    ex e = {0}, e2 = {0}, e3 = {0};
    halo_err err = {{0}};
    rec r;
    why[0] = '\0';
    FAIL_IF(!pg_dsn_for("pgx_secret", dsn, sizeof dsn), "no server");
    snprintf(port, sizeof port, "%d", atoi(strrchr(dsn, ':') + 1));
    snprintf(yaml, sizeof yaml,
             "dsn: \"postgresql://postgres:" SECRET
             "@127.0.0.1:%s/pgx_secret\"\n"
             "num_connections: 2\nreconnect_initial_interval: 50ms\n"
             "reconnect_max_interval: 200ms\n",
             port);
    FAIL_IF(ex_open(&e, "postgres/secret", yaml, true, &err) != HALO_OK,
            "open: %s", err.msg);
    FAIL_IF(!wait_up(&e, 2, 20000), "not connected");
    rec_init(&r, 1);
    e.c.def->consume(&e.c, make_batch(1, 2, NULL, &r));
    FAIL_IF(!rec_wait(&r, ACK_BOUND_MS) || r.st != HALO_OK, "first batch");
    FAIL_IF(!pg_server_halt(), "halt");
    FAIL_IF(!refused_within(&e, 2000, r.msg, sizeof r.msg), "not refused");
    FAIL_IF(strstr(r.msg, SECRET), "refusal shows the password: %.900s", r.msg);
    FAIL_IF(!strstr(r.msg, "127.0.0.1:"), "refusal without the server: %.900s",
            r.msg);
    FAIL_IF(!pg_server_resume(), "resume");
    FAIL_IF(!wait_up(&e, 2, 20000), "not reconnected");

    /* key=value, from $HALO_PG_DSN (dsn empty) */
    snprintf(dsn, sizeof dsn,
             "host=127.0.0.1 port=%s dbname=pgx_secret user=postgres "
             "password='" SECRET "'",
             port);
    setenv("HALO_PG_DSN", dsn, 1);
    halo_status st =
        ex_open(&e2, "postgres/env", "num_connections: 1\n", true, &err);
    unsetenv("HALO_PG_DSN");
    FAIL_IF(st != HALO_OK, "open from HALO_PG_DSN: %s", err.msg);
    FAIL_IF(!wait_up(&e2, 1, 20000), "HALO_PG_DSN not connected");

    /* nobody listens on port 1 */
    FAIL_IF(ex_open(&e3, "postgres/nobody",
                    "dsn: \"postgresql://halo:" SECRET "@127.0.0.1:1/x\"\n",
                    true, &err) != HALO_OK,
            "open port 1: %s", err.msg);
    rec_init(&r, 2);
    FAIL_IF(e3.c.def->consume(&e3.c, make_batch(2, 1, NULL, &r)) != HALO_ERETRY,
            "port 1 accepted a batch");
    FAIL_IF(strstr(r.msg, SECRET) || !strstr(r.msg, "127.0.0.1:1/x"),
            "port 1 refusal: %.900s", r.msg);
done:
    ex_close(&e3);
    ex_close(&e2);
    ex_close(&e);
    return !why[0];
}

TEST(the_password_is_never_shown)
{
    char why[1024];
    halo_test_capture cp;
    int level = halo_log_min_level;
    PGconn *c = pg_new_db("pgx_secret");
    CHECK(c);
    PQfinish(c);
    CHECK(halo_test_capture_start(&cp, "secret.log"));
    halo_log_set_level(HALO_LOG_DEBUG);
    bool ok = password_scenario(why, sizeof why);
    halo_log_set_level(level);
    char *log = halo_test_capture_end(&cp);
    pg_server_resume(); /* whatever happened */
    if (!ok)
        fprintf(stderr, "  %s\n", why);
    CHECK(ok);
    CHECK(log);
    CHECK_CONTAINS(log, "connected to 127.0.0.1:");
    CHECK_CONTAINS(log, "lost");
    CHECK_CONTAINS(log, "127.0.0.1:1/x");
    if (strstr(log, SECRET))
        fprintf(stderr, "  leaked:\n%s\n", log);
    CHECK(!strstr(log, SECRET));
    free(log);
}

TEST(bad_configs_fail_create)
{
    static const char *const bad[] = {
        "dsn: \"host=127.0.0.1 bogus=1 password=" SECRET "\"\n",
        "dsn: \"postgresql://u:" SECRET "@[::1/db\"\n",
        "dsn: \"host=127.0.0.1 password=" SECRET " oops\"\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ex e;
        halo_err err = {{0}};
        CHECK_INT(ex_open(&e, "postgres/bad", bad[i], false, &err),
                  HALO_EINVAL);
        CHECK_CONTAINS(err.msg, "invalid PostgreSQL connection string");
        CHECK(!strstr(err.msg, SECRET));
        ex_close(&e);
    }
    ex e;
    halo_err err = {{0}};
    CHECK_INT(ex_open(&e, "postgres/bad",
                      "reconnect_initial_interval: 2s\n"
                      "reconnect_max_interval: 1s\n",
                      false, &err),
              HALO_EINVAL);
    CHECK_CONTAINS(err.msg, "reconnect_initial_interval");
    ex_close(&e);
    CHECK_INT(ex_open(&e, "postgres/bad", "num_connections: 65\n", false, &err),
              HALO_EINVAL);
    ex_close(&e);
}

/* ---- bounded shutdown ---------------------------------------------------- */

/* A TCP port that accepts connections and never says a word: a connect
 * attempt hangs there until its deadline. */
static int blackhole(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

TEST(shutdown_is_bounded_when_the_server_is_down_or_silent)
{
    int port = 0, hole = blackhole(&port);
    CHECK(hole >= 0);
    char yaml[512];
    ex e;
    halo_err err = {{0}};
    /* a hanging connect: start() waits 2 s at most, shutdown interrupts */
    snprintf(yaml, sizeof yaml,
             "dsn: \"postgresql://x@127.0.0.1:%d/db\"\n"
             "connect_timeout: 60s\n",
             port);
    uint64_t t = now_ms();
    CHECK_INT(ex_open(&e, "postgres/hole", yaml, true, &err), HALO_OK);
    CHECK(now_ms() - t < 3000);
    rec r;
    rec_init(&r, 1);
    CHECK_INT(e.c.def->consume(&e.c, make_batch(1, 1, NULL, &r)), HALO_ERETRY);
    CHECK_CONTAINS(r.msg, "database unavailable (connecting");
    t = now_ms();
    ex_close(&e);
    CHECK(now_ms() - t < 1000);

    /* connect_timeout bounds each attempt */
    snprintf(yaml, sizeof yaml,
             "dsn: \"postgresql://x@127.0.0.1:%d/db\"\n"
             "connect_timeout: 300ms\n",
             port);
    CHECK_INT(ex_open(&e, "postgres/hole2", yaml, true, &err), HALO_OK);
    uint64_t end = now_ms() + 3000;
    halo_status st;
    do {
        rec_init(&r, 2);
        st = e.c.def->consume(&e.c, make_batch(2, 1, NULL, &r));
        nap_ms(5);
    } while (!strstr(r.msg, "timeout expired") && now_ms() < end);
    ex_close(&e);
    CHECK_INT(st, HALO_ERETRY);
    CHECK_CONTAINS(r.msg, "timeout expired");
    close(hole);

    /* the server halted: shutdown returns at once */
    CHECK(yaml_for("pgx_conc", "reconnect_initial_interval: 5s\n", yaml,
                   sizeof yaml));
    CHECK(pg_server_halt());
    st = ex_open(&e, "postgres/down", yaml, true, &err);
    t = now_ms();
    ex_close(&e);
    uint64_t took = now_ms() - t;
    CHECK(pg_server_resume());
    CHECK_INT(st, HALO_OK);
    CHECK(took < 1000);
}

/* A server that stops answering in the middle of a write (its backend
 * SIGSTOPped): shutdown gives up after the stall bound, the batch is
 * answered retryable, and nothing hangs. */
TEST(shutdown_is_bounded_when_a_write_hangs)
{
    char sql[256];
    ex e;
    PGconn *c = db_with_exporter(&e, "pgx_stall", "num_connections: 1\n", 1);
    CHECK(c);
    /* the exporter's backend: the one in this database that is not ours */
    snprintf(sql, sizeof sql,
             "SELECT pid FROM pg_stat_activity WHERE datname = 'pgx_stall'"
             " AND pid <> pg_backend_pid() AND backend_type = 'client "
             "backend'");
    long long pid = pg_q_int(c, sql);
    CHECK(pid > 0);
    CHECK(kill((pid_t)pid, SIGSTOP) == 0);
    rec r;
    rec_init(&r, 1);
    CHECK_INT(e.c.def->consume(&e.c, make_batch(1, 3, NULL, &r)), HALO_OK);
    uint64_t t = now_ms();
    e.c.def->shutdown(&e.c);
    uint64_t took = now_ms() - t;
    kill((pid_t)pid, SIGCONT);
    CHECK(took < 8000);
    CHECK(rec_wait(&r, 100));
    CHECK_INT(r.st, HALO_ERETRY);
    fprintf(stderr, "  shutdown took %llu ms: %s\n", (unsigned long long)took,
            r.msg);
    ex_close(&e);
    PQfinish(c);
}

/* ---- data errors --------------------------------------------------------- */

/* Four batches grouped into one transaction, one of them holding a span
 * the database refuses: only that batch is refused (HALO_EINVAL, with the
 * database's reason), the others are stored. Grouping is forced by holding
 * a lock on spans while they are queued. */
TEST(refused_data_fails_only_its_batch)
{
    ex e;
    PGconn *c = db_with_exporter(&e, "pgx_einval", "num_connections: 1\n", 1);
    CHECK(c);
    CHECK(pg_q_ok(c, "ALTER TABLE span_rows ADD CONSTRAINT no_forbidden"
                     " CHECK (name <> 'forbidden')"));
    CHECK(pg_q_ok(c, "BEGIN"));
    CHECK(pg_q_ok(c, "LOCK TABLE span_rows IN ACCESS EXCLUSIVE MODE"));
    rec r[5];
    rec_init(&r[0], 10);
    CHECK_INT(e.c.def->consume(&e.c, make_batch(10, 2, NULL, &r[0])), HALO_OK);
    /* wait until the writer waits for the lock, then queue four more */
    PGconn *admin = pg_connect_db("pgx_einval");
    CHECK(admin);
    uint64_t end = now_ms() + 10000;
    while (pg_q_int(admin, "SELECT count(*) FROM pg_stat_activity WHERE"
                           " datname = 'pgx_einval' AND wait_event_type ="
                           " 'Lock'") < 1 &&
           now_ms() < end)
        nap_ms(5);
    for (int i = 1; i < 5; i++) {
        rec_init(&r[i], 10 + (uint64_t)i);
        CHECK_INT(e.c.def->consume(&e.c, make_batch(10 + (uint64_t)i, 2,
                                                    i == 2 ? "forbidden" : NULL,
                                                    &r[i])),
                  HALO_OK);
    }
    CHECK(pg_q_ok(c, "COMMIT"));
    for (int i = 0; i < 5; i++) {
        CHECK(rec_wait(&r[i], ACK_BOUND_MS));
        if (i == 2) {
            CHECK_INT(r[i].st, HALO_EINVAL);
            CHECK_CONTAINS(r[i].msg, "no_forbidden");
        } else {
            CHECK_INT(r[i].st, HALO_OK);
            CHECK_INT(rows_of(admin, r[i].key), 2);
        }
    }
    CHECK_INT(rows_of(admin, 12), 0);
    CHECK_INT(pg_q_int(admin, "SELECT count(*) FROM spans"), 8);
    ex_close(&e);
    PQfinish(admin);
    PQfinish(c);
}

/* ---- throughput (printed, not asserted) ---------------------------------- */

/* A steady stream: each sender keeps a window of batches in flight. */
typedef struct sender {
    client cl;
    uint64_t first;
    int windows, window;
    pthread_t t;
} sender;

static void *sender_main(void *arg)
{
    sender *s = arg;
    for (int i = 0; i < s->windows && !s->cl.why[0]; i++)
        send_all(&s->cl, s->first + (uint64_t)(i * s->window), s->window);
    return NULL;
}

/* Spans/s of two senders, each keeping `window` batches of `per` spans in
 * flight for `windows` rounds, into an exporter with conns connections;
 * -1 on failure. */
static double run_load(int conns, int windows, int window, int per)
{
    char db[32], extra[128];
    snprintf(db, sizeof db, "pgx_perf%d", conns);
    snprintf(extra, sizeof extra, "num_connections: %d\n", conns);
    ex e;
    PGconn *c = db_with_exporter(&e, db, extra, conns);
    bool ok = c != NULL;
    sender s[2];
    uint64_t t = halo_mono_ns();
    for (int i = 0; ok && i < 2; i++) {
        s[i] = (sender){.cl = {.e = &e, .per = per, .deadline_ms = 60000},
                        .first = (uint64_t)i << 32,
                        .windows = windows,
                        .window = window};
        ok = pthread_create(&s[i].t, NULL, sender_main, &s[i]) == 0;
    }
    for (int i = 0; ok && i < 2; i++) {
        pthread_join(s[i].t, NULL);
        ok = !s[i].cl.why[0];
    }
    double secs = (double)(halo_mono_ns() - t) / 1e9;
    if (e.c.ctx)
        ex_close(&e);
    ok = ok && stored_exactly(c, 2LL * windows * window, per);
    PQfinish(c);
    return ok ? 2.0 * windows * window * per / secs : -1;
}

/* PGX_WINDOWS, PGX_PER in the environment scale it up. */
TEST(throughput_one_and_four_connections)
{
    const char *w = getenv("PGX_WINDOWS"), *p = getenv("PGX_PER");
    int windows = w ? atoi(w) : 6, per = p ? atoi(p) : 1000;
    double one = run_load(1, windows, 8, per);
    double four = run_load(4, windows, 8, per);
    CHECK(one > 0);
    CHECK(four > 0);
    printf("  postgres exporter, 2 senders x 8 batches of %d spans in "
           "flight, acked after commit: %.0f spans/s with 1 connection, "
           "%.0f with 4\n",
           per, one, four);
}
