/*
 * pg_store.test.mjs -- `halo serve` with the postgres exporter against a
 * real PostgreSQL 15 server (lib/pg.mjs), beyond the ingest suite that
 * ingest_pg.test.mjs runs:
 *
 *   - fidelity: a span with every OTLP field set (attributes of every
 *     AnyValue type, nested arrays and kvlists, events, links, status,
 *     trace state, flags, resource and scope with their schema URLs and
 *     dropped counts) goes OTLP/JSON -> PostgreSQL -> `halo export` and
 *     comes back equal;
 *   - the query CLI finds the store through the configuration;
 *   - a password in a DSN never shows in what halo prints;
 *   - PostgreSQL crashes (pg_ctl stop -m immediate) in the middle of a load
 *     over HTTP and gRPC: while it is down the daemon answers retryably
 *     (HTTP 503, gRPC UNAVAILABLE), the exporter reconnects by itself once
 *     it is back, and every span answered OK is stored exactly once with
 *     its trace rolled up once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { describeRun, parseJsonRows, runHalo } from './lib/cli.mjs';
import { HaloDaemon } from './lib/daemon.mjs';
import { EXPORT_METHOD, grpc, grpcClient, grpcUnary, postJson,
         postProtobuf, request, span, toProtobuf } from './lib/otlp.mjs';
import { PgServer } from './lib/pg.mjs';
import { lit, query } from './lib/store.mjs';
import { randomTraceId, waitFor } from './lib/util.mjs';

/* A base time one hour ago on a whole second. */
const BASE_NS = BigInt(Math.floor(Date.now() / 1000) - 3600) * 1000000000n;
const ns = (offsetNs) => (BASE_NS + BigInt(offsetNs)).toString();

/* The request of the fidelity test: one span with every field set. */
function fullRequest(traceId) {
    const kv = (key, value) => ({ key, value });
    return {
        resourceSpans: [{
            resource: {
                attributes: [kv('service.name', { stringValue: 'pg-fidelity' }),
                             kv('host.cores', { intValue: '8' })],
                droppedAttributesCount: 2,
            },
            scopeSpans: [{
                scope: {
                    name: 'fidelity-scope', version: '2.1',
                    attributes: [kv('scope.attr', { boolValue: true })],
                    droppedAttributesCount: 1,
                },
                spans: [{
                    traceId,
                    spanId: 'eee19b7ec3c1b174',
                    traceState: 'vendor=x,other=y',
                    parentSpanId: 'eee19b7ec3c1b173',
                    flags: 257,
                    name: 'every field',
                    kind: 3,
                    startTimeUnixNano: ns(123456789),
                    endTimeUnixNano: ns(1987654321),
                    attributes: [
                        kv('s', { stringValue: 'text ünï \u2603 "q" \\ \n' }),
                        kv('b', { boolValue: false }),
                        kv('i', { intValue: '-9007199254740993' }),
                        kv('max', { intValue: '9223372036854775807' }),
                        kv('d', { doubleValue: 0.1 }),
                        kv('whole', { doubleValue: 2 }),
                        kv('big', { doubleValue: 1e300 }),
                        kv('by', { bytesValue: 'AAECAwQ=' }),
                        kv('arr', { arrayValue: { values: [
                            { intValue: '1' }, { stringValue: 'two' },
                            { arrayValue: { values: [{ doubleValue: 3.5 }] } },
                        ] } }),
                        kv('kv', { kvlistValue: { values: [
                            kv('nested', { kvlistValue: { values: [
                                kv('deep', { boolValue: true })] } }),
                        ] } }),
                        kv('empty', {}),
                        kv('llm.model_name', { stringValue: 'fidelity-model' }),
                    ],
                    droppedAttributesCount: 3,
                    events: [{
                        timeUnixNano: ns(500000001), name: 'ev1',
                        attributes: [kv('ea', { intValue: '7' })],
                        droppedAttributesCount: 1,
                    }],
                    droppedEventsCount: 4,
                    links: [{
                        traceId: '0102030405060708090a0b0c0d0e0f10',
                        spanId: '0102030405060708', traceState: 'l=1',
                        attributes: [kv('la', { stringValue: 'lv' })],
                        droppedAttributesCount: 5, flags: 1,
                    }],
                    droppedLinksCount: 6,
                    status: { code: 2, message: 'boom' },
                }],
                schemaUrl: 'https://opentelemetry.io/schemas/1.20.0',
            }],
            schemaUrl: 'https://opentelemetry.io/schemas/1.21.0',
        }],
    };
}

/* Objects with their keys sorted, recursively (member order is not part of
 * OTLP/JSON's meaning; array order is). */
function canonical(v) {
    if (Array.isArray(v)) return v.map(canonical);
    if (v && typeof v === 'object') {
        return Object.fromEntries(Object.keys(v).sort()
            .map((k) => [k, canonical(v[k])]));
    }
    return v;
}

/* ---- load with a crash in the middle ------------------------------------- */

const keysOf = (req) => req.resourceSpans[0].scopeSpans[0].spans
    .map((s) => `${s.traceId}/${s.spanId}`);

/* One request: one trace of 8 spans (a root and its children). */
function loadRequest(tag) {
    const traceId = randomTraceId();
    const root = span({ traceId, name: `pg-load-${tag}`,
                        attributes: { 'agent.id': 'pg-load-agent' } });
    const spans = [root];
    for (let i = 1; i < 8; i++) {
        spans.push(span({ traceId, parentSpanId: root.spanId,
                          name: `step-${i}`, attributes: { step: i } }));
    }
    return request(spans, { resource: { 'service.name': 'pg-load' } });
}

/*
 * Senders that loop until stopped, as OTLP clients do: a request refused
 * retryably (HTTP 429/503, gRPC UNAVAILABLE/RESOURCE_EXHAUSTED) is sent
 * again after a short backoff; an answer OK adds its spans to `acked`.
 * Any other answer fails the test.
 */
function startLoad(halo) {
    const acked = new Set();
    const stats = { ok: 0, refused: 0, httpRefused: 0, grpcRefused: 0 };
    let stop = false;
    const errors = [];
    const client = grpcClient(halo.grpcTarget);
    const senders = {
        json: (req) => postJson(halo.tracesUrl, req),
        proto: (req) => postProtobuf(halo.tracesUrl, req),
        grpc: async (req) => {
            const r = await grpcUnary(client, EXPORT_METHOD, toProtobuf(req));
            if (r.ok) return { status: 200 };
            const retry = [grpc.status.UNAVAILABLE,
                           grpc.status.RESOURCE_EXHAUSTED].includes(r.code);
            return { status: retry ? 503 : 500, grpc: true,
                     body: `gRPC ${r.code}: ${r.details}` };
        },
    };
    const loop = async (kind, n) => {
        let seq = 0;
        while (!stop) {
            const req = loadRequest(`${kind}-${n}-${seq++}`);
            for (;;) {
                let res;
                try {
                    res = await senders[kind](req);
                } catch (e) {
                    errors.push(`${kind}: ${e.message}`);
                    return;
                }
                if (res.status === 200) {
                    stats.ok++;
                    for (const k of keysOf(req)) acked.add(k);
                    break;
                }
                if (![429, 503].includes(res.status)) {
                    errors.push(`${kind}: unexpected answer ${res.status}: ` +
                                `${res.body}`);
                    return;
                }
                stats.refused++;
                stats[res.grpc ? 'grpcRefused' : 'httpRefused']++;
                if (stop) break; /* never acked: not expected in the store */
                await delay(50); /* the client's retry backoff */
            }
        }
    };
    const loops = [loop('json', 0), loop('proto', 1), loop('grpc', 2),
                   loop('grpc', 3)];
    return {
        acked, stats, errors,
        async stop() {
            stop = true;
            await Promise.all(loops);
            client.close();
        },
    };
}

/* ---- the tests ----------------------------------------------------------- */

describe('the PostgreSQL store', { timeout: 240000 }, () => {
    let pg;
    let store;
    let halo;

    before(async () => {
        pg = await PgServer.start();
        store = await pg.createDb('pgstore');
        halo = await HaloDaemon.start({
            store,
            extra: {
                exporters: {
                    postgres: { num_connections: 2,
                                reconnect_initial_interval: '100ms',
                                reconnect_max_interval: '500ms' },
                },
            },
        });
    });

    after(async () => {
        try {
            if (halo) await halo.cleanup();
        } finally {
            if (pg) await pg.stop();
        }
    });

    it('a span with every field set comes back equal through halo export',
       { timeout: 30000 }, async () => {
           const traceId = randomTraceId();
           const sent = fullRequest(traceId);
           const res = await postJson(halo.tracesUrl, sent);
           assert.equal(res.status, 200, `export: ${res.body}`);
           const args = ['export', '--store', store.dsn, '--trace-id', traceId];
           const r = await runHalo(args);
           assert.equal(r.code, 0, describeRun(args, r));
           const back = JSON.parse(r.stdout);
           assert.deepEqual(canonical(back), canonical(sent),
                            'OTLP -> PostgreSQL -> halo export');
           /* the nanoseconds are kept next to the microsecond timestamptz */
           const [row] = await query(
               store, `SELECT start_unix_nano::text AS s, end_unix_nano::text ` +
                          `AS e, model FROM spans WHERE trace_id = ${lit(traceId)}`);
           assert.deepEqual(row, { s: ns(123456789), e: ns(1987654321),
                                   model: 'fidelity-model' });
       });

    it('the query CLI reads the store of the configuration', async () => {
        const args = ['traces', 'list', '--config', halo.configPath, '--json'];
        const r = await runHalo(args);
        assert.equal(r.code, 0, describeRun(args, r));
        const rows = parseJsonRows(r.stdout, 'traces list --config');
        assert.ok(rows.some((t) => t.agent_id === 'pg-fidelity'),
                  `the fidelity trace is listed: ${r.stdout.slice(0, 1000)}`);
    });

    it('a password in the DSN never appears in what halo prints',
       { timeout: 30000 }, async () => {
           const secret = 'Sup3rS3cretPw';
           /* a port nothing listens on: the connection fails */
           const dsn = `postgresql://halo:${secret}@127.0.0.1:1/nowhere`;
           for (const args of [['traces', 'list', '--store', dsn],
                               ['agents', '--store', dsn],
                               ['traces', 'list', '--store',
                                `postgres:host=127.0.0.1 port=1 ` +
                                    `password=${secret} user=halo`]]) {
               const r = await runHalo(args);
               assert.equal(r.code, 1, describeRun(args, r));
               assert.match(r.stderr, /127\.0\.0\.1/,
                            `the error names the server: ${r.stderr}`);
               assert.ok(!r.output.includes(secret),
                         `the password leaked: ${r.output}`);
           }
       });

    it('PostgreSQL crashing during a load loses no acknowledged span',
       { timeout: 120000 }, async () => {
           const load = startLoad(halo);
           try {
               await waitFor(() => load.errors.length || load.stats.ok >= 40,
                             { timeoutMs: 30000,
                               what: '40 requests acknowledged' });
               assert.deepEqual(load.errors, []);
               await pg.halt();
               await waitFor(() => load.errors.length ||
                                  (load.stats.httpRefused >= 3 &&
                                   load.stats.grpcRefused >= 3),
                             { timeoutMs: 30000,
                               what: 'HTTP and gRPC refusals while the ' +
                                     'database is down' });
               assert.deepEqual(load.errors, []);
               const okAtResume = load.stats.ok;
               await pg.resume();
               await waitFor(() => load.errors.length ||
                                  load.stats.ok >= okAtResume + 40,
                             { timeoutMs: 60000,
                               what: '40 more requests acknowledged after ' +
                                     'the database came back' });
           } finally {
               await load.stop();
           }
           assert.deepEqual(load.errors, [], `senders failed\n${halo.logTail()}`);
           const rows = await query(
               store, 'SELECT trace_id, span_id, count(*) AS n FROM spans ' +
                          "WHERE service_name = 'pg-load' " +
                          'GROUP BY trace_id, span_id');
           const stored = new Set(rows.map((r) => `${r.trace_id}/${r.span_id}`));
           assert.deepEqual(rows.filter((r) => r.n !== 1), [],
                            'no span stored twice');
           const missing = [...load.acked].filter((k) => !stored.has(k));
           assert.equal(missing.length, 0,
                        `${missing.length} of ${load.acked.size} acknowledged ` +
                        `spans lost (${JSON.stringify(load.stats)}), e.g. ` +
                        `${missing.slice(0, 3)}\n${halo.logTail()}`);
           /* the rollup counted every stored span once */
           const wrong = await query(
               store, 'SELECT t.trace_id, t.span_count, s.n FROM traces t ' +
                          'JOIN (SELECT trace_id, count(*) AS n FROM spans ' +
                          'GROUP BY trace_id) s USING (trace_id) ' +
                          'WHERE t.span_count <> s.n');
           assert.deepEqual(wrong, [], 'traces.span_count = spans stored');
           assert.match(halo.logTail(20000), /connect/i,
                        'the daemon logged the reconnect');
       });

    it('drains and exits 0 on SIGTERM', { timeout: 30000 }, async () => {
        const exit = await halo.stop();
        assert.equal(exit.killed, false, 'no exit within 15 s of SIGTERM');
        assert.equal(exit.code, 0, `exit: ${JSON.stringify(exit)}\n` +
                                   `${halo.logTail()}`);
    });
});
