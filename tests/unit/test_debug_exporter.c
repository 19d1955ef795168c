/*
 * test_debug_exporter.c -- the debug exporter logs what it gets at each
 * verbosity and completes every batch with HALO_OK.
 *
 * stderr is redirected into a scratch file around consume() and the text
 * is checked afterwards.
 */
#include "fixtures.h"
#include "harness.h"

#include "core/arena.h"
#include "core/batch.h"
#include "core/component.h"
#include "core/log.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

extern const halo_component_def halo_exporter_debug;

/* Mirrors the exporter's config struct: one ENUM field (an int). */
typedef struct {
    int verbosity;
} debug_cfg;

static halo_status ack_st = (halo_status)-1;
static int ack_calls;

static void on_ack(void *ud, halo_status st, const char *msg)
{
    (void)ud;
    (void)msg;
    ack_st = st;
    ack_calls++;
}

/* Three spans in two traces, with derived fields, an event and a resource. */
static halo_batch *make_batch(void)
{
    halo_arena *a = halo_arena_new(0);
    halo_span *sp = halo_arena_calloc(a, 3, sizeof *sp);
    halo_resource *res = halo_arena_calloc(a, 1, sizeof *res);
    halo_kv *rkv = halo_arena_alloc(a, sizeof *rkv);
    halo_kv *kv = halo_arena_alloc(a, 2 * sizeof *kv);
    halo_event *ev = halo_arena_calloc(a, 1, sizeof *ev);
    static const halo_scope scope = {"", "", {NULL, 0}, 0, ""};
    rkv[0] = S("service.name", "svc-debug");
    res->attrs.items = rkv;
    res->attrs.n = 1;
    res->schema_url = "";
    kv[0] = S("llm.model_name", "gpt-x");
    kv[1] = S("note", "quote\" and\nnewline");
    ev->name = "exception";
    ev->time_ns = 1234;
    ev->attrs.items = kv + 1;
    ev->attrs.n = 1;
    for (int i = 0; i < 3; i++) {
        sp[i].trace_id[15] = (uint8_t)(i < 2 ? 1 : 2);
        sp[i].span_id[7] = (uint8_t)(i + 1);
        sp[i].parent_span_id[7] = i == 1 ? 1 : 0;
        sp[i].name = i == 1 ? "llm call" : "run";
        sp[i].trace_state = "";
        sp[i].status_message = "";
        sp[i].start_ns = 1000000000;
        sp[i].end_ns = 1000000000 + 12345678;
        sp[i].resource = res;
        sp[i].scope = &scope;
        sp[i].d.agent_id = "agent-7";
        sp[i].d.span_type = i == 1 ? "LLM" : "AGENT";
    }
    sp[1].attrs.items = kv;
    sp[1].attrs.n = 2;
    sp[1].events = ev;
    sp[1].n_events = 1;
    sp[2].status_code = HALO_STATUS_ERROR;
    sp[2].status_message = "boom";
    halo_batch *b = halo_batch_new();
    halo_batch_add_chunk(b, a, sp, 3);
    halo_ack *ack = halo_ack_new(on_ack, NULL);
    halo_batch_add_ack(b, ack);
    halo_ack_unref(ack);
    return b;
}

/* Run consume with stderr captured; returns the malloc'd text. */
static char *consume_captured(int verbosity, halo_status *st)
{
    char path[600];
    snprintf(path, sizeof path, "%s/stderr-%d.txt", halo_test_tmpdir(),
             verbosity);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return NULL;
    debug_cfg cfg = {verbosity};
    halo_component self = {.def = &halo_exporter_debug,
                           .id = "debug",
                           .log_prefix = "exporter:debug",
                           .cfg = &cfg};
    halo_err err = {{0}};
    if (self.def->create(&self, &err) != HALO_OK) {
        close(fd);
        return NULL;
    }
    halo_batch *b = make_batch();
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    *st = self.def->consume(&self, b);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    self.def->shutdown(&self);
    self.def->destroy(&self);
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);
    if (text && pread(fd, text, (size_t)len, 0) != len) {
        free(text);
        text = NULL;
    }
    close(fd);
    return text;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

TEST(basic_logs_one_line_per_batch)
{
    halo_status st;
    ack_calls = 0;
    char *text = consume_captured(0, &st);
    CHECK(text);
    CHECK_INT(st, HALO_OK);
    CHECK_INT(ack_calls, 1);
    CHECK_INT(ack_st, HALO_OK);
    CHECK_CONTAINS(text, "[exporter:debug] 3 spans, 2 traces");
    int lines = count_lines(text);
    free(text);
    CHECK_INT(lines, 1);
}

TEST(normal_logs_one_line_per_span)
{
    halo_status st;
    ack_calls = 0;
    char *text = consume_captured(1, &st);
    CHECK(text);
    CHECK_INT(st, HALO_OK);
    CHECK_INT(ack_calls, 1);
    CHECK_INT(ack_st, HALO_OK);
    CHECK_CONTAINS(text, "3 spans, 2 traces");
    CHECK_CONTAINS(text, "trace=00000000000000000000000000000001 "
                         "span=0000000000000002 name=\"llm call\" type=LLM "
                         "agent=\"agent-7\" duration=12.345ms status=UNSET");
    CHECK_CONTAINS(text, "trace=00000000000000000000000000000002");
    CHECK_CONTAINS(text, "status=ERROR \"boom\"");
    CHECK(!strstr(text, "attributes:"));
    int lines = count_lines(text);
    free(text);
    CHECK_INT(lines, 4);
}

TEST(detailed_logs_attributes_events_resource)
{
    halo_status st;
    ack_calls = 0;
    char *text = consume_captured(2, &st);
    CHECK(text);
    CHECK_INT(st, HALO_OK);
    CHECK_INT(ack_calls, 1);
    CHECK_INT(ack_st, HALO_OK);
    CHECK_CONTAINS(text, "resource: {\"service.name\":\"svc-debug\"}");
    CHECK_CONTAINS(text, "attributes: {\"llm.model_name\":\"gpt-x\","
                         "\"note\":\"quote\\\" and\\nnewline\"}");
    CHECK_CONTAINS(text, "events: [{\"name\":\"exception\","
                         "\"time_unix_nano\":1234,\"attributes\":"
                         "{\"note\":");
    CHECK_CONTAINS(text, "type=AGENT");
    /* the resource is shared by all three spans: logged once */
    const char *first = strstr(text, "resource:");
    CHECK(first && !strstr(first + 1, "resource:"));
    int lines = count_lines(text);
    free(text);
    /* batch line, resource, 3 x (span + attributes), 1 events line */
    CHECK_INT(lines, 1 + 1 + 3 * 2 + 1);
}

TEST(long_values_split_over_lines)
{
    enum { LEN = 10000 };
    char *big = malloc(LEN + 1);
    CHECK(big);
    memset(big, 'x', LEN);
    big[LEN] = '\0';
    halo_arena *a = halo_arena_new(0);
    halo_span *sp = halo_arena_calloc(a, 1, sizeof *sp);
    halo_kv *kv = halo_arena_alloc(a, sizeof *kv);
    *kv = S("big", big);
    sp->name = "big";
    sp->attrs.items = kv;
    sp->attrs.n = 1;
    halo_batch *b = halo_batch_new();
    halo_batch_add_chunk(b, a, sp, 1);

    char path[600];
    snprintf(path, sizeof path, "%s/stderr-big.txt", halo_test_tmpdir());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    debug_cfg cfg = {2};
    halo_component self = {.def = &halo_exporter_debug,
                           .log_prefix = "exporter:debug",
                           .cfg = &cfg};
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    halo_status st = self.def->consume(&self, b);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);
    ssize_t got = pread(fd, text, (size_t)len, 0);
    close(fd);
    free(big);
    CHECK_INT(st, HALO_OK);
    CHECK_INT(got, len);
    /* every x made it, over several lines */
    size_t xs = 0;
    for (char *p = text; *p; p++)
        xs += *p == 'x';
    int cont = 0;
    for (char *p = text; (p = strstr(p, "... attributes:")); p++)
        cont++;
    int lines = count_lines(text);
    free(text);
    /* each line also has the x of its "[exporter:debug]" prefix */
    CHECK_INT(xs, LEN + (size_t)lines);
    CHECK(cont >= 2);
}

TEST(verbosity_schema)
{
    static const char *const names[] = {"basic", "normal", "detailed"};
    for (int i = 0; i < 3; i++) {
        char yaml[64];
        snprintf(yaml, sizeof yaml, "verbosity: %s\n", names[i]);
        halo_errlist errs = {0};
        halo_node *root =
            halo_config_parse(yaml, strlen(yaml), "t.yaml", &errs);
        CHECK(root);
        debug_cfg cfg;
        memset(&cfg, 0, sizeof cfg);
        CHECK(halo_config_apply(halo_exporter_debug.schema, root, &cfg,
                                "exporters.debug", &errs));
        CHECK_INT(cfg.verbosity, i);
        halo_node_free(root);
        halo_errlist_free(&errs);
    }
    debug_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.verbosity = 7; /* the default must be written */
    halo_errlist errs = {0};
    CHECK(halo_config_apply(halo_exporter_debug.schema, NULL, &cfg,
                            "exporters.debug", &errs));
    CHECK_INT(cfg.verbosity, 0); /* default basic */
    const char *bad = "verbosity: loud\n";
    halo_node *root = halo_config_parse(bad, strlen(bad), "t.yaml", &errs);
    CHECK(root);
    CHECK(!halo_config_apply(halo_exporter_debug.schema, root, &cfg,
                             "exporters.debug", &errs));
    CHECK(errs.n == 1);
    CHECK_CONTAINS(errs.msgs[0], "loud");
    halo_node_free(root);
    halo_errlist_free(&errs);
}
