/*
 * loadgen.c -- halo-loadgen, an OTLP trace load generator for halo.
 *
 * Sends pre-encoded ExportTraceServiceRequests of realistic agent spans to
 * an OTLP receiver over gRPC or HTTP/1.1 (protobuf), closed loop (as fast as
 * the daemon answers) or open loop at a fixed span rate, and prints what it
 * saw: requests by answer, spans/s acknowledged, Export latency percentiles
 * and, given the daemon's pid, its peak RSS. See bench/README.md.
 *
 * This file is only the command line: parse, validate (exit 2 on usage
 * errors), build the request pool, run the driver, report. Exit 0 when at
 * least one request was acknowledged, 1 otherwise.
 */
#include "lg.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: halo-loadgen (--grpc HOST:PORT | --http HOST:PORT) [options]\n"
        "\n"
        "Sends OTLP ExportTraceServiceRequests of realistic AI-agent spans\n"
        "(AGENT / CHAIN / LLM / TOOL, ~12 attributes each, unique trace and\n"
        "span ids for every request) and reports throughput and latency.\n"
        "\n"
        "target (exactly one):\n"
        "  --grpc HOST:PORT         unary TraceService/Export over gRPC\n"
        "  --http HOST:PORT         POST /v1/traces, application/x-protobuf,\n"
        "                           HTTP/1.1 keep-alive, one request in\n"
        "                           flight per connection\n"
        "options:\n"
        "  --connections N          gRPC channels / TCP connections "
        "(default 8)\n"
        "  --inflight K             gRPC requests in flight per channel "
        "(default 4)\n"
        "  --spans-per-request N    spans in each request (default 100)\n"
        "  --spans-per-trace N      spans in each agent run (default 10)\n"
        "  --pool N                 distinct pre-encoded requests "
        "(default 256)\n"
        "  --duration SECONDS       stop issuing after this long (default 10,\n"
        "                           unlimited when --requests is given)\n"
        "  --requests N             stop after N requests\n"
        "  --rate SPANS_PER_S       open loop: issue requests on a fixed\n"
        "                           timetable; latency counts from the time\n"
        "                           each request was due (default: closed "
        "loop)\n"
        "  --text-size PCT          length of input/output values and other\n"
        "                           free text, in %% of the realistic default\n"
        "                           (100: a few hundred bytes; 0: minimal)\n"
        "  --ids random|sequential  trace ids random-looking, as SDKs make\n"
        "                           them (default), or in sending order (the\n"
        "                           cheap case for a store's trace-id index)\n"
        "  --timeout MS             per-request deadline (default 10000)\n"
        "  --pid PID                report the daemon's peak RSS (VmHWM) and\n"
        "                           the max of its RSS sampled every 100 ms\n"
        "  --json                   print the figures as one JSON line\n"
        "  -h, --help               show this help\n"
        "\n"
        "exit status: 0 some spans acknowledged, 1 none, 2 usage error\n");
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "halo-loadgen: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry \"halo-loadgen --help\".\n");
    return 2;
}

/* Strict integer in [lo, hi]. */
static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Positive decimal, optionally followed by "s" (seconds). */
static bool parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v <= 0 || v > 86400)
        return false;
    if (*end == 's')
        end++;
    if (*end)
        return false;
    *out = v;
    return true;
}

/* HOST:PORT, host possibly a bracketed IPv6 literal. */
static bool parse_target(const char *s, lg_opts *o)
{
    const char *colon = strrchr(s, ':');
    long port;
    if (!colon || colon == s || !parse_long(colon + 1, 1, 65535, &port))
        return false;
    size_t hl = (size_t)(colon - s);
    if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') {
        s++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(o->host))
        return false;
    memcpy(o->host, s, hl);
    o->host[hl] = '\0';
    o->port = (int)port;
    return true;
}

enum {
    OPT_GRPC = 256,
    OPT_HTTP,
    OPT_CONNS,
    OPT_INFLIGHT,
    OPT_SPR,
    OPT_SPT,
    OPT_POOL,
    OPT_DURATION,
    OPT_REQUESTS,
    OPT_RATE,
    OPT_TIMEOUT,
    OPT_PID,
    OPT_JSON,
    OPT_TEXT,
    OPT_IDS,
};

static const struct option LONGOPTS[] = {
    {"grpc", required_argument, NULL, OPT_GRPC},
    {"http", required_argument, NULL, OPT_HTTP},
    {"connections", required_argument, NULL, OPT_CONNS},
    {"inflight", required_argument, NULL, OPT_INFLIGHT},
    {"spans-per-request", required_argument, NULL, OPT_SPR},
    {"spans-per-trace", required_argument, NULL, OPT_SPT},
    {"pool", required_argument, NULL, OPT_POOL},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"requests", required_argument, NULL, OPT_REQUESTS},
    {"rate", required_argument, NULL, OPT_RATE},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"pid", required_argument, NULL, OPT_PID},
    {"json", no_argument, NULL, OPT_JSON},
    {"text-size", required_argument, NULL, OPT_TEXT},
    {"ids", required_argument, NULL, OPT_IDS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* An integer option into *dst; returns 0 or the usage exit status. */
static int int_opt(const char *name, const char *arg, long lo, long hi,
                   int *dst)
{
    long v;
    if (!parse_long(arg, lo, hi, &v)) {
        fprintf(stderr,
                "halo-loadgen: invalid %s \"%s\": expected an "
                "integer from %ld to %ld\n",
                name, arg, lo, hi);
        return 2;
    }
    *dst = (int)v;
    return 0;
}

/* One option; returns 0, 2 (usage error) or -1 (--help). */
static int apply_opt(int c, const char *arg, lg_opts *o, bool *dur_set,
                     bool *pool_set)
{
    long v;
    switch (c) {
    case OPT_GRPC:
    case OPT_HTTP:
        if (o->mode)
            return usage_error("give only one of --grpc and --http%s", "");
        o->mode = c == OPT_GRPC ? LG_GRPC : LG_HTTP;
        if (!parse_target(arg, o))
            return usage_error("invalid target \"%s\": expected HOST:PORT",
                               arg);
        return 0;
    case OPT_CONNS:
        return int_opt("--connections", arg, 1, 1024, &o->connections);
    case OPT_INFLIGHT:
        return int_opt("--inflight", arg, 1, 1024, &o->inflight);
    case OPT_SPR:
        return int_opt("--spans-per-request", arg, 1, 65535,
                       &o->spans_per_request);
    case OPT_SPT:
        return int_opt("--spans-per-trace", arg, 1, 65535, &o->spans_per_trace);
    case OPT_POOL:
        *pool_set = true;
        return int_opt("--pool", arg, 1, 65536, &o->pool_size);
    case OPT_TEXT:
        return int_opt("--text-size", arg, 0, 1000, &o->text_pct);
    case OPT_IDS:
        if (strcmp(arg, "random") && strcmp(arg, "sequential"))
            return usage_error("invalid --ids \"%s\": expected random or "
                               "sequential",
                               arg);
        o->sequential_ids = !strcmp(arg, "sequential");
        return 0;
    case OPT_TIMEOUT:
        return int_opt("--timeout", arg, 1, 3600000, &o->timeout_ms);
    case OPT_PID:
        return int_opt("--pid", arg, 1, 1 << 30, &o->pid);
    case OPT_DURATION:
        *dur_set = true;
        if (!parse_seconds(arg, &o->duration_s))
            return usage_error("invalid --duration \"%s\": expected seconds",
                               arg);
        return 0;
    case OPT_REQUESTS:
        if (!parse_long(arg, 1, 1L << 40, &v))
            return usage_error("invalid --requests \"%s\"", arg);
        o->requests = (uint64_t)v;
        return 0;
    case OPT_RATE: {
        char *end;
        o->rate = strtod(arg, &end);
        if (end == arg || *end || !(o->rate > 0) || o->rate > 1e9)
            return usage_error("invalid --rate \"%s\": expected spans/s > 0",
                               arg);
        return 0;
    }
    case OPT_JSON:
        o->json = true;
        return 0;
    case 'h':
        return -1;
    default:
        return usage_error("unknown option%s", "");
    }
}

static int parse_args(int argc, char **argv, lg_opts *o)
{
    bool dur_set = false, pool_set = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", LONGOPTS, NULL)) != -1) {
        if (c == '?')
            return usage_error("unknown option \"%s\"", argv[optind - 1]);
        if (c == ':')
            return usage_error("option \"%s\" needs a value", argv[optind - 1]);
        int rc = apply_opt(c, optarg, o, &dur_set, &pool_set);
        if (rc)
            return rc;
    }
    if (optind < argc)
        return usage_error("unexpected argument \"%s\"", argv[optind]);
    if (!o->mode)
        return usage_error("missing target: give --grpc HOST:PORT or "
                           "--http HOST:PORT%s",
                           "");
    if (!dur_set && o->requests)
        o->duration_s = 0;
    if (!pool_set) {
        /* keep the pool near 25 MB whatever the request size */
        int fit = 25600 / o->spans_per_request;
        o->pool_size = fit < 8 ? 8 : fit < 256 ? fit : 256;
    }
    return 0;
}

int main(int argc, char **argv)
{
    lg_opts o = {
        .connections = 8,
        .inflight = 4,
        .spans_per_request = 100,
        .spans_per_trace = 10,
        .pool_size = 256,
        .duration_s = 10,
        .timeout_ms = 10000,
        .text_pct = 100,
    };
    int rc = parse_args(argc, argv, &o);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc)
        return rc;

    lg_pool *pool = lg_pool_create(&o);
    if (!pool)
        return 1;
    lg_stats st;
    lg_stats_init(&st);
    lg_stats_cpu_begin(&st, o.pid);
    int run = o.mode == LG_GRPC ? lg_run_grpc(&o, pool, &st)
                                : lg_run_http(&o, pool, &st);
    lg_stats_cpu_end(&st, o.pid);
    lg_pool_destroy(pool);
    if (run != 0)
        return 1;
    lg_stats_read_hwm(&st, o.pid);
    lg_stats_sample_rss(&st, o.pid, st.last_rss_sample + 1);
    lg_stats_print(&st, &o);
    return st.ok > 0 ? 0 : 1;
}
