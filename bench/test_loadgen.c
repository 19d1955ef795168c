/*
 * test_loadgen.c -- unit tests of halo-loadgen's request pool, statistics
 * and scheduling, using the daemon's own OTLP decoder as the reference.
 *
 * The load generator encodes OTLP with its own small protobuf writer; these
 * tests decode what it sends with halo_otlp_decode_pb (the code path the
 * daemon runs) so the two implementations must agree. The most important
 * property is uniqueness: the store deduplicates on (trace_id, span_id), so
 * a load generator that repeated ids would measure nothing.
 */
#include "../tests/unit/harness.h"
#include "lg.h"
#include "receivers/otlp/otlp_codec.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static lg_opts test_opts(int pool, int spans, int per_trace)
{
    lg_opts o = {
        .mode = LG_GRPC,
        .connections = 1,
        .inflight = 1,
        .spans_per_request = spans,
        .spans_per_trace = per_trace,
        .pool_size = pool,
        .duration_s = 10,
        .timeout_ms = 1000,
        .text_pct = 100,
    };
    return o;
}

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Decodes the stamped request `seq` into a fresh arena. */
static halo_status decode_seq(const lg_pool *pool, uint64_t seq,
                              halo_arena **arena, halo_otlp_result *res)
{
    size_t len = lg_pool_req_len(pool, seq);
    uint8_t *buf = malloc(len);
    halo_err err = {{0}};
    if (!buf)
        return HALO_ENOMEM;
    lg_pool_stamp(pool, seq, buf);
    *arena = halo_arena_new(0);
    memset(res, 0, sizeof(*res));
    halo_status st = halo_otlp_decode_pb(buf, len, *arena, res, &err);
    if (st != HALO_OK)
        fprintf(stderr, "  decode of request %llu: %s\n",
                (unsigned long long)seq, err.msg);
    free(buf);
    return st;
}

static const char *attr_str(const halo_span *s, const char *key)
{
    const halo_value *v = halo_attrs_get(&s->attrs, key);
    return v && v->type == HALO_VAL_STRING ? v->u.s.ptr : NULL;
}

TEST(pool_requests_decode_as_realistic_agent_spans)
{
    lg_opts o = test_opts(12, 100, 10);
    lg_pool *pool = lg_pool_create(&o);
    CHECK(pool);
    size_t attrs = 0, errors = 0, events = 0, llm = 0, tool = 0, roots = 0;
    for (uint64_t seq = 1; seq <= 12; seq++) {
        halo_arena *arena = NULL;
        halo_otlp_result res;
        halo_status st = decode_seq(pool, seq, &arena, &res);
        if (st != HALO_OK)
            halo_arena_free(arena);
        CHECK_INT(st, HALO_OK);
        CHECK_INT(res.n, 100);
        CHECK_INT(res.rejected, 0);
        for (size_t i = 0; i < res.n; i++) {
            const halo_span *s = &res.spans[i];
            const halo_value *svc =
                halo_attrs_get(&s->resource->attrs, "service.name");
            CHECK(svc && svc->type == HALO_VAL_STRING);
            attrs += s->attrs.n;
            errors += s->status_code == HALO_STATUS_ERROR;
            events += s->n_events;
            roots += halo_span_is_root(s);
            const char *kind = attr_str(s, "openinference.span.kind");
            const char *op = attr_str(s, "gen_ai.operation.name");
            llm +=
                (kind && !strcmp(kind, "LLM")) || (op && !strcmp(op, "chat"));
            tool += attr_str(s, "tool.name") || attr_str(s, "gen_ai.tool.name");
            CHECK(s->end_ns > s->start_ns);
        }
        halo_arena_free(arena);
    }
    lg_pool_destroy(pool);
    CHECK_INT(roots, 12 * 10); /* one AGENT root per 10-span trace */
    CHECK(attrs >= 10 * 1200 && attrs <= 14 * 1200); /* ~12 per span */
    CHECK(llm >= 400 && tool >= 400);
    CHECK(errors > 0 && events == errors); /* failed tools carry an event */
}

/* 24-byte (trace_id, span_id) keys. */
static int cmp_key(const void *a, const void *b)
{
    return memcmp(a, b, 24);
}

TEST(every_sent_span_has_a_unique_trace_and_span_id)
{
    /* a small pool reused 250 times: ids must still never repeat */
    enum { POOL = 8, SPANS = 50, REQS = 2000 };
    lg_opts o = test_opts(POOL, SPANS, 7);
    lg_pool *pool = lg_pool_create(&o);
    CHECK(pool);
    uint8_t *keys = malloc((size_t)REQS * SPANS * 24);
    CHECK(keys);
    size_t n = 0;
    int bad_parent = 0;
    for (uint64_t seq = 1; seq <= REQS; seq++) {
        halo_arena *arena = NULL;
        halo_otlp_result res;
        if (decode_seq(pool, seq, &arena, &res) != HALO_OK || res.n != SPANS) {
            halo_arena_free(arena);
            free(keys);
            lg_pool_destroy(pool);
            CHECK(!"request did not decode");
        }
        for (size_t i = 0; i < res.n; i++) {
            const halo_span *s = &res.spans[i];
            memcpy(keys + n * 24, s->trace_id, 16);
            memcpy(keys + n * 24 + 16, s->span_id, 8);
            n++;
            if (halo_span_is_root(s))
                continue;
            /* the parent is a span of the same trace in the request */
            int found = 0;
            for (size_t j = 0; j < res.n && !found; j++)
                found = !memcmp(res.spans[j].trace_id, s->trace_id, 16) &&
                        !memcmp(res.spans[j].span_id, s->parent_span_id, 8);
            bad_parent += !found;
        }
        halo_arena_free(arena);
    }
    lg_pool_destroy(pool);
    qsort(keys, n, 24, cmp_key);
    size_t dups = 0;
    for (size_t i = 1; i < n; i++)
        dups += memcmp(keys + (i - 1) * 24, keys + i * 24, 24) == 0;
    free(keys);
    CHECK_INT(n, (size_t)REQS * SPANS);
    CHECK_INT(dups, 0);
    CHECK_INT(bad_parent, 0);
}

/* Trace ids look random by default (a store inserts them all over its
 * index, as with SDK-made ids); --ids sequential keeps them in sending
 * order. */
TEST(trace_ids_random_or_sequential)
{
    for (int seq_ids = 0; seq_ids <= 1; seq_ids++) {
        lg_opts o = test_opts(4, 20, 2);
        o.sequential_ids = seq_ids;
        lg_pool *pool = lg_pool_create(&o);
        CHECK(pool);
        uint8_t prev[16] = {0};
        int ascending = 0, pairs = 0, top_bits = 0;
        for (uint64_t seq = 1; seq <= 50; seq++) {
            halo_arena *arena = NULL;
            halo_otlp_result res;
            CHECK_INT(decode_seq(pool, seq, &arena, &res), HALO_OK);
            for (size_t i = 0; i < res.n; i += 2) { /* one per trace */
                if (seq > 1 || i > 0) {
                    pairs++;
                    ascending += memcmp(prev, res.spans[i].trace_id, 16) < 0;
                }
                top_bits |= 1 << (res.spans[i].trace_id[8] >> 5);
                memcpy(prev, res.spans[i].trace_id, 16);
            }
            halo_arena_free(arena);
        }
        lg_pool_destroy(pool);
        if (seq_ids) {
            CHECK_INT(ascending, pairs);
        } else {
            CHECK(ascending > pairs / 4 && ascending < pairs * 3 / 4);
            CHECK_INT(top_bits, 0xff); /* spread over the whole range */
        }
    }
}

TEST(two_pools_never_share_trace_ids)
{
    /* two load generators (or two runs against one store) use different
     * nonces, so the same sequence number gives different trace ids */
    lg_opts o = test_opts(1, 3, 3);
    lg_pool *a = lg_pool_create(&o), *b = lg_pool_create(&o);
    CHECK(a && b);
    halo_arena *aa = NULL, *ab = NULL;
    halo_otlp_result ra, rb;
    halo_status sa = decode_seq(a, 1, &aa, &ra);
    halo_status sb = decode_seq(b, 1, &ab, &rb);
    int same = sa == HALO_OK && sb == HALO_OK &&
               !memcmp(ra.spans[0].trace_id, rb.spans[0].trace_id, 16);
    halo_arena_free(aa);
    halo_arena_free(ab);
    lg_pool_destroy(a);
    lg_pool_destroy(b);
    CHECK_INT(sa, HALO_OK);
    CHECK_INT(sb, HALO_OK);
    CHECK(!same);
}

TEST(timestamps_are_shifted_to_now)
{
    lg_opts o = test_opts(2, 30, 10);
    lg_pool *pool = lg_pool_create(&o);
    CHECK(pool);
    halo_arena *arena = NULL;
    halo_otlp_result res;
    halo_status st = decode_seq(pool, 5, &arena, &res);
    uint64_t now = wall_ns(), lo = now - 120ULL * 1000000000ULL;
    int out_of_range = 0;
    for (size_t i = 0; st == HALO_OK && i < res.n; i++) {
        const halo_span *s = &res.spans[i];
        out_of_range += s->start_ns < lo || s->end_ns > now;
        for (size_t e = 0; e < s->n_events; e++)
            out_of_range += s->events[e].time_ns < s->start_ns ||
                            s->events[e].time_ns > s->end_ns;
    }
    halo_arena_free(arena);
    lg_pool_destroy(pool);
    CHECK_INT(st, HALO_OK);
    CHECK_INT(out_of_range, 0);
}

TEST(export_response_parser_reads_partial_success)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK_INT(halo_otlp_response_pb(7, "7 spans had no trace id", &buf, &len),
              HALO_OK);
    int64_t r7 = lg_parse_export_response(buf, len);
    free(buf);
    CHECK_INT(r7, 7);
    buf = NULL;
    CHECK_INT(halo_otlp_response_pb(0, NULL, &buf, &len), HALO_OK);
    int64_t r0 = lg_parse_export_response(buf, len);
    free(buf);
    CHECK_INT(r0, 0);
    CHECK_INT(lg_parse_export_response(NULL, 0), 0); /* empty message */
    const uint8_t truncated[] = {0x0a, 0x05, 0x08};
    CHECK_INT(lg_parse_export_response(truncated, sizeof(truncated)), -1);
}

TEST(histogram_quantiles_are_close_and_never_low)
{
    lg_stats st;
    lg_stats_init(&st);
    for (int ms = 1; ms <= 1000; ms++)
        lg_stats_answer(&st, "OK", true, 100, ms == 1 ? 3 : 0, ms / 1e3);
    lg_stats_answer(&st, "UNAVAILABLE", false, 100, 0, 0.0005);
    CHECK_INT(st.ok, 1000);
    CHECK_INT(st.failed, 1);
    CHECK_INT(st.spans_acked, 100 * 1000 - 3);
    CHECK_INT(st.spans_rejected, 3);
    CHECK_INT(st.n_labels, 2);
    uint64_t p50 = lg_stats_quantile(&st, 0.50);
    uint64_t p99 = lg_stats_quantile(&st, 0.99);
    CHECK(p50 >= 500000 && p50 <= 500000 * 1.02);
    CHECK(p99 >= 990000 && p99 <= 990000 * 1.02);
    CHECK_INT(lg_stats_quantile(&st, 1.0), 1000000);
    CHECK_INT(st.max_us, 1000000);
}

TEST(open_loop_schedule_is_a_timetable)
{
    lg_opts o = test_opts(1, 100, 10);
    o.rate = 1000; /* 10 requests of 100 spans per second */
    o.duration_s = 1;
    lg_sched s;
    double due;
    lg_sched_init(&s, &o, 100, 50.0);
    CHECK(lg_sched_take(&s, 50.0, &due));
    CHECK(due == 50.0);
    CHECK(!lg_sched_take(&s, 50.05, &due)); /* next is due at 50.1 */
    CHECK(lg_sched_wait(&s, 50.05, 1.0) > 0.049);
    /* late: the request keeps its slot on the timetable */
    CHECK(lg_sched_take(&s, 50.35, &due));
    CHECK(due > 50.099 && due < 50.101);
    CHECK(s.late_max > 0.249);
    CHECK(!lg_sched_done(&s, 50.9));
    CHECK(lg_sched_done(&s, 51.0));
    CHECK(!lg_sched_take(&s, 51.0, &due));
    CHECK_INT(lg_sched_seq(&s), 2);
}

TEST(closed_loop_stops_after_the_request_count)
{
    lg_opts o = test_opts(1, 100, 10);
    o.duration_s = 0;
    o.requests = 3;
    lg_sched s;
    double due;
    lg_sched_init(&s, &o, 100, 0);
    int taken = 0;
    while (lg_sched_take(&s, 1e6, &due))
        taken++;
    CHECK_INT(taken, 3);
    CHECK(lg_sched_done(&s, 1e6));
}
