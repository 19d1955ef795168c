/*
 * kafka_failures.test.mjs -- the acknowledgement promise (DESIGN §4) across
 * Kafka when something fails:
 *
 *   - kill -9 of halo-persist while spans are flowing, restart with the same
 *     consumer group: every span halo-ingest acknowledged ends up in the
 *     store, none twice (offsets are committed only after the store
 *     committed; the store is idempotent on (trace_id, span_id));
 *   - every broker down: halo-ingest answers retryably (gRPC UNAVAILABLE,
 *     HTTP 503 + Retry-After) once the exporter's `timeout` passes, the
 *     clients' own retries (the SDK's HTTP exporters, a gRPC retry policy)
 *     succeed once the brokers are back, and every span arrives in the
 *     store; with a small max_inflight_bytes, new requests
 *     are refused at once while earlier ones wait for the brokers, and the
 *     request that waited is answered 200 (and stored) after `up`; a
 *     SIGTERM during the outage answers the waiting request retryably
 *     (never 200, never silence) and exits 0.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HaloDaemon } from './lib/daemon.mjs';
import { duplicateKeys, ingestConfig, KafkaMock, logTails as logs,
         metricValue, ms, persistConfig, stopAll,
         waitStored } from './lib/kafka.mjs';
import { EXPORT_METHOD, grpcClient, grpcUnary, postJson, postProtobuf,
         request, span, toProtobuf } from './lib/otlp.mjs';
import { SCENARIOS, startRun } from './lib/scenarios.mjs';
import { query } from './lib/store.mjs';
import { nowNanos, randomTraceId, waitFor } from './lib/util.mjs';

/*
 * The OTel JS SDK's gRPC exporter (otlp-grpc-exporter-base 0.223) reports
 * every gRPC error as a plain failure, so only its HTTP exporters retry
 * (on 503 + Retry-After, up to 5 times within timeoutMillis). The gRPC
 * side of the outage is therefore driven by a client with gRPC's standard
 * retry policy (service config) retrying UNAVAILABLE, as the OTLP spec
 * asks of gRPC clients.
 */
const SDK_RETRYING = ['proto', 'json'];
const GRPC_RETRY_OPTIONS = {
    'grpc.service_config': JSON.stringify({
        methodConfig: [{
            name: [{
                service: 'opentelemetry.proto.collector.trace.v1.TraceService',
            }],
            retryPolicy: {
                maxAttempts: 5, initialBackoff: '1s', maxBackoff: '2s',
                backoffMultiplier: 1.5, retryableStatusCodes: ['UNAVAILABLE'],
            },
        }],
    }),
};

const keysOf = (req) => req.resourceSpans[0].scopeSpans[0].spans
    .map((s) => `${s.traceId}/${s.spanId}`);

/* One request: one trace of `n` spans (a root + children). */
function makeRequest(tag, n = 10) {
    const traceId = randomTraceId();
    const root = span({ traceId, name: `kf-root-${tag}`,
                        start: nowNanos(-50), end: nowNanos(),
                        attributes: { 'agent.name': 'kafka-failures',
                                      'openinference.span.kind': 'AGENT' } });
    const spans = [root];
    for (let i = 1; i < n; i++) {
        spans.push(span({ traceId, parentSpanId: root.spanId,
                          name: `kf-step-${i}`,
                          attributes: { 'tool.name': `tool-${i % 3}` } }));
    }
    return request(spans, { resource: { 'service.name': 'kafka-failures' } });
}

/*
 * `loops` concurrent senders posting to halo-ingest until stop(); `acked`
 * holds the keys of every span answered 200. A retryable answer (503/429)
 * is allowed, anything else for a valid request fails the test.
 */
function startLoad(ingest, { loops = 2 } = {}) {
    const acked = new Set();
    const stats = { ok: 0, refused: 0, failed: 0 };
    let stopping = false;
    let failure = null;
    const loop = async (id) => {
        for (let seq = 0; !stopping; seq++) {
            const req = makeRequest(`${id}-${seq}`);
            try {
                const res = await postJson(ingest.tracesUrl, req,
                                           { timeoutMs: ms(20000) });
                if (res.status === 200) {
                    stats.ok++;
                    for (const k of keysOf(req)) acked.add(k);
                } else if ([429, 503].includes(res.status)) {
                    stats.refused++;
                } else {
                    failure = new Error(`status ${res.status}: ${res.body}`);
                    stopping = true;
                }
            } catch (e) {
                stats.failed++;
            }
        }
    };
    const running = Array.from({ length: loops }, (_, i) => loop(i));
    return {
        acked, stats,
        async stop() {
            stopping = true;
            await Promise.all(running);
            if (failure) throw failure;
        },
    };
}

describe('kill -9 of halo-persist mid-stream', { timeout: ms(120000) }, () => {
    let kafka;
    let ingest;
    let persist;

    before(async () => {
        kafka = await KafkaMock.start({ topics: { crash: 4 } });
        ingest = await HaloDaemon.start({
            config: ingestConfig(kafka.bootstrap, { topic: 'crash' }),
        });
        persist = await HaloDaemon.start({
            config: persistConfig(kafka.bootstrap,
                                  { topics: ['crash'], group_id: 'e2e-crash' }),
        });
    });

    after(async () => {
        await stopAll([persist, ingest], kafka);
    });

    it('loses nothing and stores nothing twice after a restart in the ' +
       'same group', { timeout: ms(100000) }, async () => {
        const count = async () => (await query(
            persist.dbPath, 'SELECT count(*) AS n FROM spans'))[0].n;
        /* persist has joined the group and consumes before the load */
        const warm = makeRequest('warm-up', 2);
        const res = await postProtobuf(ingest.tracesUrl, warm);
        assert.equal(res.status, 200, `warm-up: ${res.status} ${res.body}`);
        await waitStored(persist.dbPath, new Set(keysOf(warm)),
                         { context: logs(ingest, persist) });
        const load = startLoad(ingest);
        let atKill;
        try {
            /* persist is storing and the load still running, for a few
             * commit intervals (so some offsets are committed) */
            let since = null;
            await waitFor(async () => {
                if (since === null && (await count()) >= 100) since = Date.now();
                /* librdkafka's commit timer is not slowed by sanitizers */
                return since !== null && Date.now() - since >= 1000 &&
                       load.acked.size >= 300;
            }, { timeoutMs: ms(30000), intervalMs: 50,
                 what: 'halo-persist storing a flowing stream' });
            atKill = { acked: load.acked.size, stored: await count() };
            const exit = await persist.kill9();
            assert.equal(exit.signal, 'SIGKILL', JSON.stringify(exit));
            /* spans keep flowing into Kafka while nobody consumes */
            await waitFor(() => load.acked.size >= atKill.acked + 300,
                          { timeoutMs: ms(30000), intervalMs: 20,
                            what: 'more spans acked while persist is down' });
        } finally {
            await load.stop();
        }
        assert.ok(atKill.stored < load.acked.size,
                  'the kill happened with spans still to store');

        await persist.spawn({ readyTimeoutMs: ms(15000) });
        await waitStored(persist.dbPath, load.acked, {
            timeoutMs: ms(40000),
            what: 'every acknowledged span stored after the restart',
            context: logs(ingest, persist),
        });
        assert.deepEqual(await duplicateKeys(persist.dbPath), [],
                         'no (trace_id, span_id) stored twice');
        /* the restart resumed from the group's committed offsets: it did
         * not consume the whole topic again */
        const reread = await metricValue(
            persist, 'halo_receiver_accepted_spans_total', { receiver: 'kafka' });
        assert.ok(reread < load.acked.size,
                  `the restarted halo-persist consumed ${reread} spans of ` +
                  `${load.acked.size}: it did not resume from committed offsets`);
        const [{ n }] = await query(
            persist.dbPath,
            'SELECT count(*) AS n FROM spans ' +
                "WHERE agent_id IS NOT 'kafka-failures'");
        assert.equal(n, 0, 'every stored span has its agent_id');
        const integrity = await query(persist.dbPath, 'PRAGMA integrity_check');
        assert.equal(integrity[0].integrity_check, 'ok');
        process.stdout.write(
            `# kill -9 at ${JSON.stringify(atKill)}; acked ` +
            `${load.acked.size} spans, consumed after the restart ${reread}, ` +
            `stats ${JSON.stringify(load.stats)}\n`);
    });
});

describe('every broker down', { timeout: ms(150000) }, () => {
    let kafka;
    let ingest; /* timeout 2s */
    let bounded; /* max_inflight_bytes 1KiB, timeout 30s */
    let persist;

    before(async () => {
        kafka = await KafkaMock.start({ topics: { outage: 2 } });
        ingest = await HaloDaemon.start({
            config: ingestConfig(kafka.bootstrap,
                                 { topic: 'outage', timeout: '2s' }),
        });
        bounded = await HaloDaemon.start({
            config: ingestConfig(kafka.bootstrap,
                                 { topic: 'outage', timeout: '30s',
                                   max_inflight_bytes: '1KiB' }),
        });
        persist = await HaloDaemon.start({
            config: persistConfig(kafka.bootstrap,
                                  { topics: ['outage'], group_id: 'e2e-outage' }),
        });
        /* both producers connected and the topic known before the outage */
        for (const d of [ingest, bounded]) {
            const req = makeRequest('warm-up', 2);
            const res = await postProtobuf(d.tracesUrl, req);
            assert.equal(res.status, 200, `warm-up: ${res.status} ${res.body}` +
                                          `\n${d.logTail()}`);
            await waitStored(persist.dbPath, new Set(keysOf(req)),
                             { context: logs(d, persist) });
        }
    });

    after(async () => {
        if (kafka && kafka.running) await kafka.up().catch(() => {});
        await stopAll([persist, ingest, bounded], kafka);
    });

    /* Retryable answers halo-ingest gave so far (both transports). */
    async function refusals(d) {
        let n = 0;
        for (const code of ['UNAVAILABLE', '503', '429']) {
            n += await metricValue(d, 'halo_receiver_requests_total', { code });
        }
        return n;
    }

    it('answers retryably, then the clients\' retries deliver everything',
       { timeout: ms(90000) }, async () => {
           const before0 = await refusals(ingest);
           await kafka.down();
           /* the SDK starts exporting during the outage; its timeout
            * leaves room for several retries (Retry-After / backoff) */
           const runs = SDK_RETRYING.map((transport) => startRun(
               ingest, SCENARIOS.openinference(`outage-${transport}`),
               { transport, timeoutMillis: ms(60000) }));
           /* gRPC: a client with gRPC's own retry policy (see the top) */
           const retrying = grpcClient(ingest.grpcTarget, GRPC_RETRY_OPTIONS);
           const grpcReq = makeRequest('grpc-retry-policy', 4);
           const grpcRetried = grpcUnary(retrying, EXPORT_METHOD,
                                         toProtobuf(grpcReq),
                                         { timeoutMs: ms(60000) })
               .finally(() => retrying.close());

           /* a direct request gets the exact retryable answer */
           const req = makeRequest('direct-http', 3);
           const t0 = Date.now();
           const client = grpcClient(ingest.grpcTarget);
           let res;
           let g;
           try {
               [res, g] = await Promise.all([
                   postProtobuf(ingest.tracesUrl, req, { timeoutMs: ms(20000) }),
                   grpcUnary(client, EXPORT_METHOD,
                             toProtobuf(makeRequest('direct-grpc', 3)),
                             { timeoutMs: ms(20000) }),
               ]);
           } finally {
               client.close();
           }
           const took = Date.now() - t0;
           assert.equal(res.status, 503,
                        `HTTP answer while Kafka is down: ${res.status} ` +
                        `${res.body}\n${ingest.logTail()}`);
           assert.ok(res.headers['retry-after'],
                     `503 without Retry-After: ${JSON.stringify(res.headers)}`);
           assert.equal(g.ok, false, 'gRPC Export succeeded while Kafka is down');
           assert.equal(g.code, 14 /* UNAVAILABLE */,
                        `gRPC status ${g.code} (${g.details})`);
           process.stdout.write(`# retryable answers after ${took} ms ` +
                                `(exporter timeout 2 s)\n`);

           /* the clients' first attempts were refused too (2 SDK
            * exporters, the gRPC client) */
           await waitFor(async () => (await refusals(ingest)) - before0 >= 5,
                         { timeoutMs: ms(20000), intervalMs: 100,
                           what: 'the SDK exports refused during the outage' });
           await kafka.up();

           const keys = new Set(keysOf(grpcReq));
           const gr = await grpcRetried;
           assert.ok(gr.ok, `gRPC export with a retry policy after the ` +
                            `outage: ${gr.code} ${gr.details}\n` +
                            `${ingest.logTail()}`);
           for (const [i, run] of runs.entries()) {
               const { failures, exported } = await run.done;
               assert.deepEqual(failures, [],
                                `${SDK_RETRYING[i]} SDK export after the ` +
                                `outage: ${failures.join('; ')}\n` +
                                `${ingest.logTail()}`);
               assert.equal(exported, run.records.length);
               for (const r of run.records) keys.add(`${r.traceId}/${r.spanId}`);
           }
           await waitStored(persist.dbPath, keys, {
               what: 'the spans the SDK retried, stored',
               context: logs(ingest, persist),
           });
           assert.deepEqual(await duplicateKeys(persist.dbPath), []);
       });

    it('with max_inflight_bytes reached, refuses at once; the waiting ' +
       'request is answered 200 after up', { timeout: ms(90000) }, async () => {
           await kafka.down();
           /* held: librdkafka keeps retrying for up to 30 s */
           const held = makeRequest('held', 20);
           let heldAnswer = null;
           const heldP = postProtobuf(bounded.tracesUrl, held,
                                      { timeoutMs: ms(60000) })
               .then((r) => { heldAnswer = r; return r; });
           /* once its message waits for a delivery report, the 1 KiB
            * in-flight budget is spent: new requests are refused without
            * waiting for the brokers */
           await waitFor(async () => (await metricValue(
               bounded, 'halo_exporter_queue_depth', { exporter: 'kafka' })) > 0,
                         { timeoutMs: ms(10000), intervalMs: 20,
                           what: 'the held request waiting in the exporter' });
           for (const transport of ['http', 'grpc']) {
               const extra = makeRequest(`extra-${transport}`, 2);
               const t0 = Date.now();
               let answer;
               if (transport === 'http') {
                   const r = await postProtobuf(bounded.tracesUrl, extra,
                                                { timeoutMs: ms(20000) });
                   assert.equal(r.status, 503,
                                `over the in-flight budget: ${r.status} ` +
                                `${r.body}\n${bounded.logTail()}`);
                   assert.ok(r.headers['retry-after'], 'Retry-After');
                   answer = r.status;
               } else {
                   const client = grpcClient(bounded.grpcTarget);
                   try {
                       const g = await grpcUnary(client, EXPORT_METHOD,
                                                 toProtobuf(extra),
                                                 { timeoutMs: ms(20000) });
                       assert.equal(g.code, 14,
                                    `over the in-flight budget: gRPC ` +
                                    `${g.ok ? 'OK' : g.code} ${g.details}`);
                       answer = g.code;
                   } finally {
                       client.close();
                   }
               }
               const took = Date.now() - t0;
               assert.ok(took < ms(1500),
                         `${transport} refused (${answer}) after ${took} ms: ` +
                         'not at once');
           }
           assert.equal(heldAnswer, null,
                        `the first request was answered during the outage: ` +
                        `${heldAnswer && heldAnswer.status}`);
           await kafka.up();
           const res = await heldP;
           assert.equal(res.status, 200,
                        `the held request after up: ${res.status} ${res.body}` +
                        `\n${bounded.logTail()}`);
           await waitStored(persist.dbPath, new Set(keysOf(held)),
                            { context: logs(bounded, persist) });
       });

    it('SIGTERM during the outage: the waiting request is answered ' +
       'retryably, then exit 0', { timeout: ms(60000) }, async () => {
           await kafka.down();
           const req = makeRequest('sigterm-held', 3);
           const answer = postProtobuf(ingest.tracesUrl, req,
                                       { timeoutMs: ms(30000) })
               .catch((e) => e);
           await waitFor(async () => (await metricValue(
               ingest, 'halo_exporter_queue_depth', { exporter: 'kafka' })) > 0,
                         { timeoutMs: ms(10000), intervalMs: 20,
                           what: 'the request waiting in the exporter' });
           const exit = await ingest.stop({ timeoutMs: ms(15000) });
           const res = await answer;
           await kafka.up();
           assert.equal(exit.killed, false,
                        `no exit within 15 s of SIGTERM\n${ingest.logTail()}`);
           assert.equal(exit.code, 0,
                        `exit ${JSON.stringify(exit)}\n${ingest.logTail()}`);
           assert.ok(!(res instanceof Error),
                     `no answer to the waiting request: ${res.message}`);
           assert.equal(res.status, 503,
                        `the request in flight at SIGTERM: ${res.status} ` +
                        `${res.body}\n${ingest.logTail()}`);
       });

    it('the daemons exit 0 on SIGTERM', { timeout: ms(40000) }, async () => {
        for (const d of [persist, ingest, bounded]) {
            const exit = await d.stop({ timeoutMs: ms(15000) });
            assert.equal(exit.killed, false, `no exit\n${d.logTail()}`);
            assert.equal(exit.code, 0,
                         `exit ${JSON.stringify(exit)}\n${d.logTail()}`);
        }
    });
});
