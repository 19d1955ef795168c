/*
 * kafka_pipeline.test.mjs -- halo as a service with Kafka between ingest
 * and storage (DESIGN §1 point 3, §9):
 *
 *   OTel SDK --otlp--> halo-ingest (otlp -> batch -> kafka)
 *            --> Kafka (halo-kafka-mock) -->
 *   halo-persist (kafka -> agent_identity -> batch -> sqlite)
 *
 *   - the SDK's three transports: every span stored exactly once, with the
 *     normalized fields of DESIGN §5 derived on the persist side, the
 *     traces rollup, and a trace whose children travel before its root;
 *   - interoperability: a message halo wrote, fetched with kcat, is a plain
 *     OTLP ExportTraceServiceRequest for protoc, keyed by its trace id, one
 *     trace per message, a trace's messages in one partition; and OTLP
 *     messages written by other clients (protoc + kcat) are stored;
 *   - deploy/halo-ingest.yaml, halo-persist.yaml and halo-analyzer.yaml
 *     validate with their defaults; the three roles run as processes (the
 *     docker-compose topology without Docker) and carry spans end to end
 *     into PostgreSQL (a real server, lib/pg.mjs; listeners moved to
 *     127.0.0.1 through their environment variables), and `halo analyze`
 *     with the analyzer role's config writes a report into that store.
 *
 * Neither side sets a topic here: the exporter's and the receiver's
 * defaults must meet (otlp_spans). A successful export only means the
 * spans are in Kafka, so the store is polled (with a deadline).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { describeRun, runHalo } from './lib/cli.mjs';
import { HaloDaemon, makeTempDir } from './lib/daemon.mjs';
import { duplicateKeys, escapeProtoBytes, ingestConfig, KafkaMock,
         kcatConsume, kcatProduce, logTails as logs, ms, persistConfig,
         protocDecode, protocEncode, sourceDir, spansOfText, stopAll,
         waitStored } from './lib/kafka.mjs';
import { postProtobuf, request, span, toJson,
         toProtobuf } from './lib/otlp.mjs';
import { assertFields, SCENARIOS, startRun,
         TRANSPORTS } from './lib/scenarios.mjs';
import { lit, litList, query, spansByKey } from './lib/store.mjs';
import { PgServer } from './lib/pg.mjs';
import { freePorts, randomSpanId, randomTraceId } from './lib/util.mjs';

const TOPIC = 'otlp_spans'; /* the default of both components */

describe('OTLP -> halo-ingest -> Kafka -> halo-persist', { timeout: ms(150000) },
         () => {
    let kafka;
    let ingest;
    let persist;
    const runs = []; /* { name, transport, scenario, traceId, records } */

    before(async () => {
        kafka = await KafkaMock.start({ topics: { [TOPIC]: 4 } });
        /* gzip: kcat and halo-persist must see plain requests anyway;
         * 4 KiB messages: the big trace below is split */
        ingest = await HaloDaemon.start({
            config: ingestConfig(kafka.bootstrap, { compression: 'gzip',
                                                    max_message_bytes: 4096 }),
        });
        persist = await HaloDaemon.start({
            config: persistConfig(kafka.bootstrap, { group_id: 'e2e-pipeline' }),
        });
    });

    after(async () => {
        await stopAll([persist, ingest], kafka);
    });

    /* Send one scenario through the SDK; every span must be exported. */
    async function send(name, transport, processor = 'batch',
                        scenario = SCENARIOS[name](`kafka-${transport}`)) {
        const { records, done } = startRun(ingest, scenario,
                                           { transport, processor });
        const { failures, exported } = await done;
        assert.deepEqual(failures, [],
                         `${transport} export of ${name} through halo-ingest ` +
                         `failed: ${failures.join('; ')}\n${logs(ingest)()}`);
        assert.equal(exported, records.length, 'every span exported');
        return { name, transport, scenario, traceId: records[0].traceId,
                 records };
    }

    for (const transport of TRANSPORTS) {
        it(`three agents' runs over ${transport} reach the store`,
           { timeout: ms(45000) }, async () => {
               const mine = [];
               for (const name of Object.keys(SCENARIOS)) {
                   mine.push(await send(name, transport));
               }
               runs.push(...mine);
               const keys = new Set(mine.flatMap(
                   (r) => r.records.map((x) => `${x.traceId}/${x.spanId}`)));
               await waitStored(persist.dbPath, keys, {
                   what: `${transport} spans in halo-persist's store`,
                   context: logs(ingest, persist),
               });
           });
    }

    it('stores every span exactly once', async () => {
        assert.equal(runs.length, 9, 'all transport tests must have run');
        const traceIds = runs.map((r) => r.traceId);
        const dups = await query(
            persist.dbPath,
            `SELECT trace_id, span_id, count(*) AS n FROM spans WHERE trace_id ` +
                `IN ${litList(traceIds)} GROUP BY trace_id, span_id HAVING n > 1`);
        assert.deepEqual(dups, [], 'duplicate (trace_id, span_id) rows');
        const [{ n, d }] = await query(
            persist.dbPath,
            'SELECT count(*) AS n, count(DISTINCT trace_id || span_id) AS d ' +
                `FROM spans WHERE trace_id IN ${litList(traceIds)}`);
        const sent = runs.reduce((k, r) => k + r.records.length, 0);
        assert.equal(n, sent, 'rows vs spans sent');
        assert.equal(d, sent, 'distinct (trace_id, span_id) vs spans sent');
    });

    it('normalizes every span on the persist side (DESIGN §5)', async () => {
        const byKey = await spansByKey(persist.dbPath, runs.map((r) => r.traceId));
        for (const run of runs) {
            for (const rec of run.records) {
                const what = `${run.transport} ${run.name} span ` +
                             `"${rec.node.name}" (${rec.traceId}/${rec.spanId})`;
                const rows = byKey.get(`${rec.traceId}/${rec.spanId}`) || [];
                assert.equal(rows.length, 1, `${what}: rows in spans`);
                assertFields(rows[0], {
                    name: rec.node.name,
                    parent_span_id: rec.parentSpanId ?? rows[0].parent_span_id,
                    ...run.scenario.common,
                    ...run.scenario.spans[rec.node.name],
                }, what);
                if (!rec.parentSpanId) {
                    assert.ok([null, ''].includes(rows[0].parent_span_id),
                              `${what}: a root has no parent`);
                }
                const stored = String(rows[0].attributes ?? '');
                for (const key of Object.keys(rec.node.attributes || {})) {
                    assert.ok(stored.includes(key),
                              `${what}: attribute ${key} missing: ${stored}`);
                }
            }
        }
    });

    it('rolls traces up (traces table)', async () => {
        const rows = await query(
            persist.dbPath,
            `SELECT * FROM traces WHERE trace_id IN ` +
                `${litList(runs.map((r) => r.traceId))}`);
        const byId = new Map(rows.map((r) => [r.trace_id, r]));
        for (const run of runs) {
            const row = byId.get(run.traceId);
            const what = `traces row of ${run.transport} ${run.name}`;
            assert.ok(row, `${what}: missing`);
            assertFields(row, run.scenario.rollup, what);
        }
    });

    it('children sent before their root get the root\'s identity',
       { timeout: ms(30000) }, async () => {
           /* SimpleSpanProcessor: one export (one Kafka message) per span,
            * the tool span first; identity lives on the root only */
           const scenario = SCENARIOS.openinference('kafka-simple');
           scenario.tree.attributes['agent.name'] = 'kafka-early-children';
           scenario.tree.attributes['session.id'] = 'kafka-early-session';
           const run = await send('openinference', 'proto', 'simple', scenario);
           const keys = new Set(run.records.map((x) => `${x.traceId}/${x.spanId}`));
           await waitStored(persist.dbPath, keys,
                            { context: logs(ingest, persist) });
           const rows = await query(
               persist.dbPath,
               'SELECT name, agent_id, session_id, user_id FROM spans ' +
                   `WHERE trace_id = ${lit(run.traceId)}`);
           assert.equal(rows.length, 4);
           for (const row of rows) {
               assertFields(row, { agent_id: 'kafka-early-children',
                                   session_id: 'kafka-early-session',
                                   user_id: 'alice' },
                            `span "${row.name}" whose root came last`);
           }
       });

    it('a message halo wrote is a plain OTLP request for kcat and protoc',
       { timeout: ms(30000) }, async () => {
           /* two requests; the first carries two traces, the second one
            * more span of the first trace; a third a trace bigger than
            * max_message_bytes (4 KiB) */
           const t1 = randomTraceId();
           const t2 = randomTraceId();
           const t3 = randomTraceId();
           const root1 = span({ traceId: t1, name: 'interop-root-1' });
           const req1 = request([
               root1,
               span({ traceId: t1, parentSpanId: root1.spanId,
                      name: 'interop-child-1' }),
               span({ traceId: t2, name: 'interop-root-2',
                      attributes: { 'agent.name': 'interop-2' } }),
           ], { resource: { 'service.name': 'interop-out' } });
           const req2 = request([
               span({ traceId: t1, parentSpanId: root1.spanId,
                      name: 'interop-child-1b' }),
           ], { resource: { 'service.name': 'interop-out' } });
           const req3 = request(Array.from({ length: 40 }, (_, i) => span({
               traceId: t3, name: `interop-big-${i}`,
               attributes: { 'input.value': `${'x'.repeat(200)} ${i}` },
           })), { resource: { 'service.name': 'interop-out' } });
           for (const req of [req1, req2, req3]) {
               const res = await postProtobuf(ingest.tracesUrl, req);
               assert.equal(res.status, 200,
                            `halo-ingest answered ${res.status}: ${res.body}` +
                            `\n${logs(ingest)()}`);
           }
           const sent = [req1, req2, req3]
               .flatMap((r) => r.resourceSpans[0].scopeSpans[0].spans);

           /* acked => in Kafka: fetch right away */
           const msgs = (await kcatConsume(kafka.bootstrap, TOPIC))
               .filter((m) => m.key && [t1, t2, t3].includes(m.key.toString()));
           assert.ok(msgs.length >= 3,
                     `messages keyed ${t1} / ${t2} / ${t3} in ${TOPIC}: ` +
                     `${msgs.length}`);
           const got = [];
           for (const m of msgs) {
               const key = m.key.toString('latin1');
               assert.match(key, /^[0-9a-f]{32}$/,
                            'message key: the trace id as 32 hex chars');
               const text = await protocDecode(m.value);
               assert.ok(text.includes('service.name') &&
                             text.includes('interop-out'),
                         `resource of the decoded message:\n${text}`);
               const spans = spansOfText(text);
               assert.ok(spans.length > 0, `no span in:\n${text}`);
               for (const s of spans) {
                   assert.equal(s.traceId, key,
                                `a message keyed ${key} holds only that ` +
                                `trace's spans:\n${text}`);
               }
               got.push(...spans);
           }
           const want = sent.map((s) => `${s.traceId}/${s.spanId}/${s.name}`)
               .sort();
           assert.deepEqual(
               got.map((s) => `${s.traceId}/${s.spanId}/${s.name}`).sort(),
               want, 'the spans protoc decoded are the spans sent, once each');
           const child = got.find((s) => s.name === 'interop-child-1');
           assert.equal(child.parentSpanId, root1.spanId, 'parent_span_id');
           /* partition_traces_by_id: a trace's messages share a partition */
           for (const t of [t1, t3]) {
               const parts = new Set(msgs.filter((m) => m.key.toString() === t)
                   .map((m) => m.partition));
               assert.equal(parts.size, 1,
                            `trace ${t} spread over partitions ${[...parts]}`);
           }
           /* max_message_bytes: the big trace travels in several messages,
            * each within the limit */
           const big = msgs.filter((m) => m.key.toString() === t3);
           assert.ok(big.length >= 2,
                     `a ${toProtobuf(req3).length}-byte trace in ` +
                     `${big.length} message(s) with max_message_bytes 4096`);
           for (const m of big) {
               assert.ok(m.value.length <= 4096,
                         `message of ${m.value.length} bytes`);
           }
       });

    it('stores OTLP messages written by other clients (protoc + kcat)',
       { timeout: ms(30000) }, async () => {
           const msgs = [];
           for (const keyed of [true, false]) {
               const traceId = randomTraceId();
               const spanId = randomSpanId();
               const service = `kcat-client-${keyed ? 'keyed' : 'unkeyed'}`;
               const now = BigInt(Date.now()) * 1000000n;
               const text = `
resource_spans {
  resource {
    attributes { key: "service.name" value { string_value: "${service}" } }
  }
  scope_spans {
    scope { name: "protoc-e2e" version: "1.0" }
    spans {
      trace_id: "${escapeProtoBytes(traceId)}"
      span_id: "${escapeProtoBytes(spanId)}"
      name: "interop-foreign"
      kind: SPAN_KIND_SERVER
      start_time_unix_nano: ${now - 250000000n}
      end_time_unix_nano: ${now}
      attributes { key: "agent.name" value { string_value: "foreign-agent" } }
      attributes { key: "openinference.span.kind" value { string_value: "AGENT" } }
      status { code: STATUS_CODE_ERROR message: "foreign failure" }
    }
  }
}`;
               const bytes = await protocEncode(text);
               await kcatProduce(kafka.bootstrap, TOPIC, bytes,
                                 { key: keyed ? traceId : null });
               msgs.push({ traceId, spanId, service, keyed });
           }
           await waitStored(persist.dbPath,
                            new Set(msgs.map((m) => `${m.traceId}/${m.spanId}`)),
                            { what: 'the messages kcat produced, stored',
                              context: logs(persist) });
           for (const m of msgs) {
               const rows = await query(
                   persist.dbPath,
                   `SELECT * FROM spans WHERE trace_id = ${lit(m.traceId)}`);
               assert.equal(rows.length, 1);
               assertFields(rows[0], {
                   span_id: m.spanId, name: 'interop-foreign',
                   agent_id: 'foreign-agent', span_type: 'AGENT',
                   service_name: m.service, status_code: 'ERROR',
                   status_message: 'foreign failure', duration_ms: 250,
               }, `span of the ${m.keyed ? 'keyed' : 'unkeyed'} kcat message`);
           }
       });

    it('no span of this file is stored twice', async () => {
        assert.deepEqual(await duplicateKeys(persist.dbPath), []);
    });

    it('halo-persist and halo-ingest drain and exit 0 on SIGTERM',
       { timeout: ms(40000) }, async () => {
           for (const d of [persist, ingest]) {
               const exit = await d.stop({ timeoutMs: ms(15000) });
               assert.equal(exit.killed, false,
                            `no exit within the deadline of SIGTERM\n` +
                            `${d.logTail()}`);
               assert.equal(exit.code, 0,
                            `exit after SIGTERM: ${JSON.stringify(exit)}\n` +
                            `${d.logTail()}`);
           }
       });
});

/* ---- OTLP/JSON messages ------------------------------------------------ */

describe('encoding: otlp_json on both sides', { timeout: ms(90000) }, () => {
    let kafka;
    let ingest;
    let persist;

    before(async () => {
        kafka = await KafkaMock.start({ topics: { json_spans: 2 } });
        ingest = await HaloDaemon.start({
            config: ingestConfig(kafka.bootstrap, { topic: 'json_spans',
                                                    encoding: 'otlp_json' }),
        });
        persist = await HaloDaemon.start({
            config: persistConfig(kafka.bootstrap,
                                  { topics: ['json_spans'], encoding: 'otlp_json',
                                    group_id: 'e2e-json' }),
        });
    });

    after(async () => {
        await stopAll([persist, ingest], kafka);
    });

    it('SDK spans travel as OTLP/JSON and are stored normalized',
       { timeout: ms(30000) }, async () => {
           const scenario = SCENARIOS.genai('kafka-json');
           const { records, done } = startRun(ingest, scenario,
                                              { transport: 'grpc' });
           const { failures } = await done;
           assert.deepEqual(failures, [], `export: ${failures}\n` +
                                          `${logs(ingest)()}`);
           await waitStored(persist.dbPath,
                            new Set(records.map((x) => `${x.traceId}/${x.spanId}`)),
                            { context: logs(ingest, persist) });
           const byKey = await spansByKey(persist.dbPath, [records[0].traceId]);
           for (const rec of records) {
               const rows = byKey.get(`${rec.traceId}/${rec.spanId}`) || [];
               assert.equal(rows.length, 1);
               assertFields(rows[0], { name: rec.node.name, ...scenario.common,
                                       ...scenario.spans[rec.node.name] },
                            `span "${rec.node.name}" via OTLP/JSON messages`);
           }

           /* the message itself: an OTLP/JSON request, hex ids */
           const msgs = (await kcatConsume(kafka.bootstrap, 'json_spans'))
               .filter((m) => m.key && m.key.toString() === records[0].traceId);
           assert.ok(msgs.length >= 1, 'a message keyed by the trace id');
           const got = [];
           for (const m of msgs) {
               const req = JSON.parse(m.value.toString('utf8'));
               for (const rs of req.resourceSpans) {
                   for (const ss of rs.scopeSpans) got.push(...ss.spans);
               }
           }
           assert.deepEqual(
               got.map((x) => `${x.traceId}/${x.spanId}/${x.name}`).sort(),
               records.map((r) => `${r.traceId}/${r.spanId}/${r.node.name}`)
                   .sort(),
               'OTLP/JSON spans (ids as lower-case hex) in the messages');
       });

    it('stores an OTLP/JSON message another client wrote',
       { timeout: ms(30000) }, async () => {
           const s1 = span({ name: 'json-foreign',
                             attributes: { 'agent.name': 'json-agent' } });
           const req = request([s1], { resource: { 'service.name': 'json-kcat' } });
           await kcatProduce(kafka.bootstrap, 'json_spans',
                             Buffer.from(toJson(req)), { key: s1.traceId });
           await waitStored(persist.dbPath, new Set([`${s1.traceId}/${s1.spanId}`]),
                            { context: logs(persist) });
           const rows = await query(
               persist.dbPath,
               `SELECT * FROM spans WHERE trace_id = ${lit(s1.traceId)}`);
           assertFields(rows[0], { name: 'json-foreign', agent_id: 'json-agent',
                                   service_name: 'json-kcat' },
                        'span of the OTLP/JSON kcat message');
       });
});

/* ---- the deployment configurations ------------------------------------ */

const DEPLOY = ['halo-ingest.yaml', 'halo-persist.yaml', 'halo-analyzer.yaml'];

/* The variables the deploy configs read, unset so their defaults apply. */
const DEPLOY_VARS = [
    'HALO_KAFKA_BROKERS', 'HALO_KAFKA_TOPIC', 'HALO_KAFKA_GROUP',
    'HALO_KAFKA_DEAD_LETTER_TOPIC', 'HALO_PG_DSN', 'HALO_PG_CONNECTIONS',
    'HALO_RETENTION', 'HALO_OTLP_GRPC_ENDPOINT',
    'HALO_OTLP_HTTP_ENDPOINT', 'HALO_HEALTH_ENDPOINT', 'HALO_METRICS_ENDPOINT',
    'HALO_MEMORY_LIMIT', 'HALO_LOG_LEVEL', 'HALO_REPORTS_DIR', 'HALO_TIMEZONE',
    'HALO_DAILY_AT', 'HALO_LLM_BASE_URL', 'HALO_LLM_MODEL', 'HALO_LLM_API_KEY',
];

const deployPath = (name) => join(sourceDir(), 'deploy', name);

describe('deploy/: halo-ingest, halo-persist and halo-analyzer',
         { timeout: ms(90000) }, () => {
    const saved = {};

    before(() => {
        for (const v of DEPLOY_VARS) {
            saved[v] = process.env[v];
            delete process.env[v];
        }
    });

    after(() => {
        for (const v of DEPLOY_VARS) {
            if (saved[v] !== undefined) process.env[v] = saved[v];
        }
    });

    for (const name of DEPLOY) {
        it(`halo validate accepts ${name} with its defaults`, async () => {
            const path = deployPath(name);
            assert.ok(existsSync(path), `${path} missing`);
            const args = ['validate', '--config', path];
            const r = await runHalo(args);
            assert.equal(r.code, 0, describeRun(args, r));
            assert.match(r.stdout, /configuration is valid/);
        });
    }

    it('the three roles as processes: spans end to end into PostgreSQL, ' +
       'an analyzer run writes a report (listeners on 127.0.0.1)',
       { timeout: ms(120000) }, async () => {
           const kafka = await KafkaMock.start({ topics: { [TOPIC]: 2 } });
           const daemons = [];
           let pg = null;
           try {
               pg = await PgServer.start();
               const store = await pg.createDb('deploy');
               for (const name of DEPLOY) {
                   const dir = makeTempDir('halo-e2e-deploy-');
                   const [grpc, http, health, metrics] = await freePorts(4);
                   const ports = { grpc, http, health, metrics };
                   const d = new HaloDaemon(dir, deployPath(name),
                                            join(dir, 'halo.db'), ports, store);
                   d.env = {
                       HALO_KAFKA_BROKERS: kafka.bootstrap,
                       HALO_PG_DSN: store.dsn,
                       HALO_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpc}`,
                       HALO_OTLP_HTTP_ENDPOINT: `127.0.0.1:${http}`,
                       HALO_HEALTH_ENDPOINT: `127.0.0.1:${health}`,
                       HALO_METRICS_ENDPOINT: `127.0.0.1:${metrics}`,
                       HALO_REPORTS_DIR: join(dir, 'reports'),
                   };
                   daemons.push(d);
                   await d.spawn();
               }
               const [ingest, persist, analyzer] = daemons;
               const scenario = SCENARIOS.genai('deploy');
               const { records, done } = startRun(ingest, scenario,
                                                  { transport: 'grpc' });
               const { failures } = await done;
               assert.deepEqual(failures, [], `export: ${failures}\n` +
                                              `${logs(ingest)()}`);
               await waitStored(persist.store,
                                new Set(records.map(
                                    (x) => `${x.traceId}/${x.spanId}`)),
                                { context: logs(ingest, persist) });
               const rows = await query(
                   persist.store,
                   `SELECT DISTINCT agent_id FROM spans WHERE trace_id = ` +
                       `${lit(records[0].traceId)}`);
               assert.deepEqual(rows.map((r) => r.agent_id), ['planner-001']);
               /* an analyzer run on demand, with the analyzer role's config,
                * against the same store: a report in the reports table and
                * in the reports directory */
               const env = analyzer.env;
               const cfg = ['--config', deployPath('halo-analyzer.yaml')];
               const an = ['analyze', ...cfg, '--agent', 'planner-001',
                           '--window', '48h', '--format', 'json'];
               const r = await runHalo(an, { env, timeoutMs: ms(60000) });
               assert.equal(r.code, 0, describeRun(an, r));
               const report = JSON.parse(r.stdout);
               assert.equal(report.schema, 'halo.report/v1');
               assert.ok(report.stats.traces >= 1, `runs: ${report.stats.traces}`);
               const ls = ['reports', 'list', ...cfg, '--agent', 'planner-001',
                           '--json'];
               const l = await runHalo(ls, { env });
               assert.equal(l.code, 0, describeRun(ls, l));
               assert.deepEqual(JSON.parse(l.stdout).map((x) => x.id), [report.id]);
               assert.ok(existsSync(join(env.HALO_REPORTS_DIR, 'planner-001',
                                         'manual')),
                         'report files in HALO_REPORTS_DIR');
               for (const d of [analyzer, persist, ingest]) {
                   const exit = await d.stop({ timeoutMs: ms(15000) });
                   assert.equal(exit.code, 0, `SIGTERM exit ` +
                                `${JSON.stringify(exit)}\n${d.logTail()}`);
               }
           } finally {
               try {
                   await stopAll(daemons.reverse(), kafka);
               } finally {
                   if (pg) await pg.stop();
               }
           }
       });
});
