/*
 * test_pipeline.c -- the batch and memory_limiter processors, and building
 * services from YAML (errors with locations, wiring, unused warnings).
 *
 * The processors are driven directly: their downstream is a recording
 * consumer defined here that completes each batch with a chosen status, so
 * the tests can see exactly when and how acknowledgements complete.
 */
#include "core/buf.h"
#include "core/component.h"
#include "core/config.h"
#include "core/service.h"
#include "harness.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

extern const halo_component_def halo_processor_batch;
extern const halo_component_def halo_processor_memory_limiter;

/* ---- a recording downstream consumer ------------------------------------ */

typedef struct recorder {
    pthread_mutex_t mu;
    int batches;
    size_t spans;
    size_t last_batch_spans;
    halo_status answer;
    bool hold; /* keep batches (a busy store) until release() */
    halo_batch *held[64];
    int n_held;
} recorder;

static halo_status rec_consume(halo_component *self, halo_batch *b)
{
    recorder *r = self->ctx;
    pthread_mutex_lock(&r->mu);
    r->batches++;
    r->spans += b->n_spans;
    r->last_batch_spans = b->n_spans;
    halo_status st = r->answer;
    if (r->hold && r->n_held < 64) {
        r->held[r->n_held++] = b;
        pthread_mutex_unlock(&r->mu);
        return HALO_OK;
    }
    pthread_mutex_unlock(&r->mu);
    halo_batch_done(b, st, st == HALO_OK ? "" : "recorder refused");
    return st;
}

/* Complete every held batch (the busy store finishes its writes). */
static void release(recorder *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n_held;
    halo_batch *held[64];
    memcpy(held, r->held, sizeof held);
    r->n_held = 0;
    r->hold = false;
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < n; i++)
        halo_batch_done(held[i], HALO_OK, "");
}

static int batches_seen(recorder *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->batches;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static const halo_component_def recorder_def = {
    .kind = HALO_EXPORTER, .type = "recorder", .consume = rec_consume};

typedef struct acks {
    pthread_mutex_t mu;
    int ok, failed;
    halo_status last;
} acks;

static void on_ack(void *ud, halo_status st, const char *msg)
{
    (void)msg;
    acks *a = ud;
    pthread_mutex_lock(&a->mu);
    if (st == HALO_OK)
        a->ok++;
    else
        a->failed++;
    a->last = st;
    pthread_mutex_unlock(&a->mu);
}

static halo_batch *request(size_t n, acks *a)
{
    halo_arena *ar = halo_arena_new(0);
    halo_span *spans = halo_arena_calloc(ar, n, sizeof *spans);
    halo_batch *b = halo_batch_new();
    halo_batch_add_chunk(b, ar, spans, n);
    halo_ack *ack = halo_ack_new(on_ack, a);
    halo_batch_add_ack(b, ack);
    halo_ack_unref(ack);
    return b;
}

static int acked(acks *a)
{
    pthread_mutex_lock(&a->mu);
    int n = a->ok + a->failed;
    pthread_mutex_unlock(&a->mu);
    return n;
}

/* Poll until acked(a) == want or 5 s pass. */
static bool wait_acked(acks *a, int want)
{
    for (int i = 0; i < 5000; i++) {
        if (acked(a) == want)
            return true;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* A processor instance configured from YAML text, feeding a recorder. */
static halo_component *make_proc(const halo_component_def *def,
                                 const char *yaml, halo_component *next)
{
    halo_errlist errs = {0};
    halo_node *n = halo_config_parse(yaml, strlen(yaml), "test.yaml", &errs);
    halo_component *c = calloc(1, sizeof *c);
    c->def = def;
    c->id = "p";
    c->log_prefix = "processor:p";
    c->cfg = calloc(1, def->cfg_size);
    bool ok = n && halo_config_apply(def->schema, halo_node_get(n, "p"), c->cfg,
                                     "processors.p", &errs);
    halo_node_free(n);
    halo_errlist_free(&errs);
    halo_err err;
    if (!ok || def->create(c, &err) != HALO_OK ||
        (def->start && def->start(c, &err) != HALO_OK))
        return NULL;
    c->next = calloc(1, sizeof *c->next);
    c->next[0] = next;
    c->n_next = 1;
    return c;
}

static void free_proc(halo_component *c)
{
    if (c->def->shutdown)
        c->def->shutdown(c);
    c->def->destroy(c);
    halo_config_release(c->def->schema, c->cfg);
    free(c->cfg);
    free(c->next);
    free(c);
}

#define RECORDER(r, answer_, hold_)                                            \
    recorder r = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, answer_, hold_, {0}, 0}

TEST(batch_sends_at_once_while_downstream_is_idle)
{
    RECORDER(r, HALO_OK, false);
    halo_component down = {.def = &recorder_def, .ctx = &r};
    halo_component *p =
        make_proc(&halo_processor_batch,
                  "p: {send_batch_size: 100, timeout: 1h}\n", &down);
    CHECK(p != NULL);
    acks a = {PTHREAD_MUTEX_INITIALIZER, 0, 0, HALO_OK};
    p->def->consume(p, request(10, &a));
    /* an idle store: answered without waiting for size or timeout */
    CHECK(wait_acked(&a, 1));
    CHECK_INT(a.ok, 1);
    CHECK_INT(r.last_batch_spans, 10);
    free_proc(p);
}

TEST(batch_group_commit_while_downstream_is_busy)
{
    RECORDER(r, HALO_OK, true);
    halo_component down = {.def = &recorder_def, .ctx = &r};
    halo_component *p = make_proc(
        &halo_processor_batch,
        "p: {send_batch_size: 100, timeout: 1h, max_in_flight: 1}\n", &down);
    CHECK(p != NULL);
    acks a = {PTHREAD_MUTEX_INITIALIZER, 0, 0, HALO_OK};
    p->def->consume(p, request(10, &a)); /* sent at once, held by the store */
    CHECK_INT(batches_seen(&r), 1);
    for (int i = 0; i < 8; i++)
        p->def->consume(p, request(10, &a));
    /* the store is busy: 80 spans wait, below the size, nothing answered */
    CHECK_INT(batches_seen(&r), 1);
    CHECK_INT(acked(&a), 0);
    p->def->consume(p, request(10, &a));
    p->def->consume(p, request(10, &a));
    /* 100 spans gathered: sent although the store is still busy */
    CHECK_INT(batches_seen(&r), 2);
    CHECK_INT(r.last_batch_spans, 100);
    CHECK_INT(acked(&a), 0); /* nothing is answered before the write */
    release(&r);
    CHECK(wait_acked(&a, 11)); /* one write completed ten requests */
    CHECK_INT(a.ok, 11);
    free_proc(p);
}

TEST(batch_sends_gathered_requests_when_a_write_completes)
{
    RECORDER(r, HALO_OK, true);
    halo_component down = {.def = &recorder_def, .ctx = &r};
    halo_component *p = make_proc(
        &halo_processor_batch,
        "p: {send_batch_size: 1000, timeout: 1h, max_in_flight: 1}\n", &down);
    acks a = {PTHREAD_MUTEX_INITIALIZER, 0, 0, HALO_OK};
    p->def->consume(p, request(5, &a));
    p->def->consume(p, request(5, &a));
    p->def->consume(p, request(5, &a));
    CHECK_INT(batches_seen(&r), 1);
    release(&r); /* first write done: the two waiting requests go together */
    CHECK(wait_acked(&a, 3));
    CHECK_INT(batches_seen(&r), 2);
    CHECK_INT(r.last_batch_spans, 10);
    free_proc(p);
}

TEST(batch_flushes_on_timeout_and_shutdown)
{
    RECORDER(r, HALO_OK, true);
    halo_component down = {.def = &recorder_def, .ctx = &r};
    halo_component *p = make_proc(
        &halo_processor_batch,
        "p: {send_batch_size: 1000, timeout: 20ms, max_in_flight: 1}\n", &down);
    CHECK(p != NULL);
    acks a = {PTHREAD_MUTEX_INITIALIZER, 0, 0, HALO_OK};
    p->def->consume(p, request(5, &a)); /* held: the store stays busy */
    p->def->consume(p, request(5, &a));
    p->def->consume(p, request(5, &a));
    /* the timeout sends the waiting two although the store is busy */
    for (int i = 0; i < 5000 && batches_seen(&r) < 2; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK_INT(batches_seen(&r), 2);
    CHECK_INT(r.last_batch_spans, 10);
    release(&r);
    CHECK(wait_acked(&a, 3));
    free_proc(p);
    /* a pending batch is sent by shutdown, not lost */
    RECORDER(r2, HALO_OK, true);
    halo_component down2 = {.def = &recorder_def, .ctx = &r2};
    halo_component *p2 = make_proc(
        &halo_processor_batch,
        "p: {send_batch_size: 1000, timeout: 1h, max_in_flight: 1}\n", &down2);
    acks a2 = {PTHREAD_MUTEX_INITIALIZER, 0, 0, HALO_OK};
    p2->def->consume(p2, request(7, &a2));
    p2->def->consume(p2, request(7, &a2));
    CHECK_INT(batches_seen(&r2), 1);
    release(&r2); /* later batches complete at once */
    CHECK(wait_acked(&a2, 2));
    p2->def->consume(p2, request(7, &a2)); /* idle again: sent at once */
    CHECK(wait_acked(&a2, 3));
    r2.hold = true;
    p2->def->consume(p2, request(3, &a2)); /* held */
    p2->def->consume(p2, request(4, &a2)); /* pending behind it */
    CHECK_INT(batches_seen(&r2), 4);
    release(&r2);              /* the held write completes... */
    CHECK(wait_acked(&a2, 5)); /* ...and the pending request is sent too */
    CHECK_INT(batches_seen(&r2), 5);
    r2.hold = true;
    p2->def->consume(p2, request(2, &a2)); /* held */
    p2->def->consume(p2, request(4, &a2)); /* pending behind it */
    release(&r2);
    free_proc(p2); /* sends whatever is still pending, waits for it */
    CHECK(wait_acked(&a2, 7));
    CHECK_INT(a2.ok, 7);
    CHECK_INT(r2.spans, 7 + 7 + 7 + 3 + 4 + 2 + 4);
}

TEST(batch_propagates_downstream_refusal_to_every_request)
{
    RECORDER(r, HALO_ERETRY, false);
    halo_component down = {.def = &recorder_def, .ctx = &r};
    halo_component *p = make_proc(
        &halo_processor_batch,
        "p: {send_batch_size: 20, timeout: 1h, max_in_flight: 1}\n", &down);
    acks a = {PTHREAD_MUTEX_INITIALIZER, 0, 0, HALO_OK};
    p->def->consume(p, request(10, &a));
    p->def->consume(p, request(10, &a));
    CHECK(wait_acked(&a, 2));
    CHECK_INT(a.failed, 2);
    CHECK_INT(a.last, HALO_ERETRY);
    free_proc(p);
}

TEST(memory_limiter_refuses_retryably_above_limit)
{
    RECORDER(r, HALO_OK, false);
    halo_component down = {.def = &recorder_def, .ctx = &r};
    halo_component *p =
        make_proc(&halo_processor_memory_limiter, "p: {limit: 4MiB}\n", &down);
    CHECK(p != NULL);
    acks a = {PTHREAD_MUTEX_INITIALIZER, 0, 0, HALO_OK};
    CHECK_INT(p->def->consume(p, request(3, &a)), HALO_OK);
    CHECK_INT(a.ok, 1);
    halo_arena *big = halo_arena_new(8 << 20); /* 8 MiB "in flight" */
    CHECK_INT(p->def->consume(p, request(3, &a)), HALO_ERETRY);
    CHECK_INT(a.failed, 1);
    CHECK_INT(a.last, HALO_ERETRY);
    halo_arena_free(big);
    CHECK_INT(p->def->consume(p, request(3, &a)), HALO_OK);
    CHECK_INT(a.ok, 2);
    free_proc(p);
}

/* ---- service building ------------------------------------------------- */

static char *build_errors(const char *yaml, size_t *n_errs, size_t *n_warns,
                          bool *built)
{
    halo_errlist errs = {0}, warns = {0};
    halo_node *root = halo_config_parse(yaml, strlen(yaml), "t.yaml", &errs);
    halo_service *svc = root ? halo_service_build(root, &errs, &warns) : NULL;
    *built = svc != NULL;
    halo_service_free(svc);
    halo_node_free(root);
    halo_buf all = HALO_BUF_INIT;
    for (size_t i = 0; i < errs.n; i++) {
        halo_buf_puts(&all, errs.msgs[i]);
        halo_buf_putc(&all, '\n');
    }
    for (size_t i = 0; i < warns.n; i++) {
        halo_buf_puts(&all, "W ");
        halo_buf_puts(&all, warns.msgs[i]);
        halo_buf_putc(&all, '\n');
    }
    *n_errs = errs.n;
    *n_warns = warns.n;
    halo_errlist_free(&errs);
    halo_errlist_free(&warns);
    return halo_buf_steal(&all);
}

TEST(service_lists_every_error_with_location)
{
    const char *yaml = "receivers:\n"
                       "  otlp:\n"
                       "    protocols: {grpc: {}}\n"
                       "processors:\n"
                       "  batch: {timeout: 5 minutes}\n"
                       "  nope: {}\n"
                       "exporters:\n"
                       "  debug: {}\n"
                       "service:\n"
                       "  pipelines:\n"
                       "    traces:\n"
                       "      receivers: [otlp]\n"
                       "      processors: [batch]\n"
                       "      exporters: [debug, sqlite]\n";
    size_t ne, nw;
    bool built;
    char *text = build_errors(yaml, &ne, &nw, &built);
    CHECK(!built);
    CHECK_INT(ne, 3);
    CHECK_CONTAINS(text, "t.yaml:5:");
    CHECK_CONTAINS(text, "processors.batch.timeout");
    CHECK_CONTAINS(text, "t.yaml:6:");
    CHECK_CONTAINS(text, "unknown processor type \"nope\"");
    CHECK_CONTAINS(text, "t.yaml:14:");
    CHECK_CONTAINS(text, "exporter \"sqlite\" is not defined in exporters");
    free(text);
}

TEST(service_builds_valid_config_and_warns_unused)
{
    const char *yaml = "receivers:\n"
                       "  otlp: {protocols: {http: {}}}\n"
                       "processors:\n"
                       "  batch: {}\n"
                       "  batch/unused: {}\n"
                       "exporters:\n"
                       "  debug: {}\n"
                       "  debug/detailed: {verbosity: detailed}\n"
                       "service:\n"
                       "  pipelines:\n"
                       "    traces:\n"
                       "      receivers: [otlp]\n"
                       "      processors: [batch]\n"
                       "      exporters: [debug]\n"
                       "    traces/second:\n"
                       "      receivers: [otlp]\n"
                       "      exporters: [debug, debug/detailed]\n";
    size_t ne, nw;
    bool built;
    char *text = build_errors(yaml, &ne, &nw, &built);
    if (!built)
        fprintf(stderr, "%s", text);
    CHECK(built);
    CHECK_INT(ne, 0);
    CHECK_INT(nw, 1);
    CHECK_CONTAINS(text, "processor \"batch/unused\" is configured but not "
                         "used");
    free(text);
}

TEST(service_rejects_structural_mistakes)
{
    size_t ne, nw;
    bool built;
    char *text = build_errors("receivers: {otlp: {protocols: {grpc: {}}}}\n"
                              "exporters: {debug: {}}\n"
                              "analyzer: {store: sqlite}\n"
                              "bogus: 1\n"
                              "proccessors: {}\n"
                              "service:\n"
                              "  pipelines:\n"
                              "    metrics: {receivers: [otlp], exporters: "
                              "[debug]}\n"
                              "    traces: {receivers: [], exporters: "
                              "[debug, debug]}\n",
                              &ne, &nw, &built);
    CHECK(!built);
    CHECK_CONTAINS(text, "unknown top-level key \"bogus\" (expected "
                         "receivers, processors, exporters, extensions, "
                         "service, analyzer)");
    CHECK_CONTAINS(text, "unknown top-level key \"proccessors\" (did you mean "
                         "\"processors\"?)");
    CHECK_CONTAINS(text, "analyzer.store: no exporter \"sqlite\" is "
                         "configured");
    CHECK_CONTAINS(text, "only traces pipelines are supported");
    CHECK_CONTAINS(text, "at least one receiver is required");
    CHECK_CONTAINS(text, "\"debug\" is listed twice");
    free(text);
}

TEST(embedded_default_config_is_valid)
{
    extern const char halo_default_config[];
    extern const size_t halo_default_config_len;
    halo_errlist errs = {0}, warns = {0};
    halo_node *root = halo_config_parse(
        halo_default_config, halo_default_config_len, "default", &errs);
    halo_service *svc = root ? halo_service_build(root, &errs, &warns) : NULL;
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "  %s\n", errs.msgs[i]);
    CHECK(svc != NULL);
    CHECK_INT(warns.n, 0);
    halo_service_free(svc);
    halo_node_free(root);
    halo_errlist_free(&errs);
    halo_errlist_free(&warns);
}

/* An analyzer-only instance (deploy/halo-analyzer.yaml): no pipeline, its
 * store exporter not started and not warned about; without schedules a
 * pipeline is still required. */
TEST(analyzer_only_instance)
{
    size_t ne, nw;
    bool built;
    char *text = build_errors("exporters: {sqlite: {path: /tmp/x.db}}\n"
                              "analyzer:\n"
                              "  store: sqlite\n"
                              "  schedules: [{name: h, every: hourly}]\n"
                              "service: {telemetry: {logs: {level: warn}}}\n",
                              &ne, &nw, &built);
    CHECK(built);
    CHECK_INT(ne, 0);
    CHECK_INT(nw, 0);
    free(text);
    text = build_errors("exporters: {sqlite: {path: /tmp/x.db}}\n"
                        "analyzer: {store: sqlite}\n"
                        "service: {telemetry: {logs: {level: warn}}}\n",
                        &ne, &nw, &built);
    CHECK(!built);
    CHECK_CONTAINS(text, "service.pipelines: at least one traces pipeline is "
                         "required (or analyzer.schedules");
    free(text);
}
