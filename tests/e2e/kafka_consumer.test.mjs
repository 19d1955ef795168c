/*
 * kafka_consumer.test.mjs -- halo-persist (the kafka receiver) as a
 * consumer of a topic it does not control:
 *
 *   - a poison message (bytes that are no OTLP request) between valid
 *     messages of one partition is skipped and the rest of the partition
 *     flows; with dead_letter_topic it is copied there byte-identical
 *     (read back with kcat);
 *   - two halo-persist processes in one consumer group split a 4-partition
 *     topic (each stores part of the stream, per its own metrics) and
 *     together store every span once.
 *
 * The valid messages are produced with kcat (lib/otlp.mjs encodes the
 * ExportTraceServiceRequest), the two-consumer stream by halo-ingest.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HaloDaemon, makeTempDir } from './lib/daemon.mjs';
import { duplicateKeys, ingestConfig, KafkaMock, kcatConsume, kcatProduce,
         logTails as logs, metricValue, ms, persistConfig, stopAll,
         waitStored } from './lib/kafka.mjs';
import { postProtobuf, request, span, toProtobuf } from './lib/otlp.mjs';
import { query } from './lib/store.mjs';
import { nowNanos, randomTraceId, waitFor } from './lib/util.mjs';

const spansOf = (req) => req.resourceSpans[0].scopeSpans[0].spans;
const keysOf = (req) => spansOf(req).map((s) => `${s.traceId}/${s.spanId}`);

/* One trace of `n` spans of agent `agent`. */
function makeRequest(tag, { n = 5, agent = 'kafka-consumer' } = {}) {
    const traceId = randomTraceId();
    const root = span({ traceId, name: `kc-root-${tag}`,
                        start: nowNanos(-20), end: nowNanos(),
                        attributes: { 'agent.name': agent } });
    const spans = [root];
    for (let i = 1; i < n; i++) {
        spans.push(span({ traceId, parentSpanId: root.spanId,
                          name: `kc-step-${i}` }));
    }
    return request(spans, { resource: { 'service.name': 'kafka-consumer' } });
}

/* Bytes no protobuf decoder accepts: field 0 with wire type 7 first. */
function poison(tag) {
    return Buffer.concat([Buffer.from([0x07, 0xff, 0x00, 0x0a, 0xff]),
                          Buffer.from(`poison ${tag} \u00e9\n`, 'utf8'),
                          Buffer.from([0x00, 0xfe, 0x80])]);
}

describe('a poison message in a partition', { timeout: ms(120000) }, () => {
    let kafka;
    const daemons = [];

    before(async () => {
        kafka = await KafkaMock.start({
            topics: { 'poison-skip': 1, 'poison-dlq': 1, 'poison-dead': 1 },
        });
    });

    after(async () => {
        await stopAll(daemons, kafka);
    });

    /*
     * valid, poison, valid, valid into partition 0 of `topic` (kcat), then
     * a halo-persist on it. Returns { persist, sent, bad }.
     */
    async function run(topic, receiver) {
        const reqs = ['a', 'b', 'c'].map((t) => makeRequest(`${topic}-${t}`));
        const bad = poison(topic);
        const order = [reqs[0], bad, reqs[1], reqs[2]];
        for (const m of order) {
            const isReq = !Buffer.isBuffer(m);
            await kcatProduce(kafka.bootstrap, topic,
                              isReq ? toProtobuf(m) : m,
                              { partition: 0,
                                key: isReq ? spansOf(m)[0].traceId
                                           : 'not-a-trace-id' });
        }
        const persist = await HaloDaemon.start({
            config: persistConfig(kafka.bootstrap,
                                  { topics: [topic], group_id: `e2e-${topic}`,
                                    ...receiver }),
        });
        daemons.push(persist);
        const keys = new Set(reqs.flatMap(keysOf));
        await waitStored(persist.dbPath, keys, {
            what: `the valid messages around the poison one in ${topic}`,
            context: logs(persist),
        });
        const [{ n }] = await query(persist.dbPath,
                                    'SELECT count(*) AS n FROM spans');
        assert.equal(n, keys.size, 'exactly the valid spans are stored');
        assert.equal(await persist.healthStatus(), 200,
                     'halo-persist still healthy after the poison message');
        return { persist, reqs, bad };
    }

    it('is skipped and the rest of the partition flows', { timeout: ms(40000) },
       async () => {
           const { persist } = await run('poison-skip', {});
           /* and it keeps consuming what comes next */
           const next = makeRequest('poison-skip-next');
           await kcatProduce(kafka.bootstrap, 'poison-skip',
                             toProtobuf(next),
                             { partition: 0, key: spansOf(next)[0].traceId });
           await waitStored(persist.dbPath, new Set(keysOf(next)),
                            { context: logs(persist) });
       });

    it('goes byte-identical to the dead_letter_topic', { timeout: ms(40000) },
       async () => {
           const { persist, bad } = await run('poison-dlq',
                                              { dead_letter_topic: 'poison-dead' });
           let dead = [];
           await waitFor(async () => {
               dead = await kcatConsume(kafka.bootstrap, 'poison-dead');
               return dead.length > 0;
           }, { timeoutMs: ms(20000), intervalMs: 200,
                what: 'a message in the dead-letter topic' });
           assert.equal(dead.length, 1,
                        `dead-letter messages: ${dead.length}\n` +
                        `${logs(persist)()}`);
           assert.ok(dead[0].value && dead[0].value.equals(bad),
                     `dead-letter value differs from the poison message:\n` +
                     `  got  ${dead[0].value && dead[0].value.toString('hex')}\n` +
                     `  want ${bad.toString('hex')}`);
           if (dead[0].key) {
               process.stdout.write(`# dead-letter key: ` +
                                    `${JSON.stringify(dead[0].key.toString())}\n`);
           }
       });

    it('the consumers exit 0 on SIGTERM', { timeout: ms(40000) }, async () => {
        for (const d of daemons) {
            const exit = await d.stop({ timeoutMs: ms(15000) });
            assert.equal(exit.killed, false, `no exit\n${d.logTail()}`);
            assert.equal(exit.code, 0,
                         `exit ${JSON.stringify(exit)}\n${d.logTail()}`);
        }
    });
});

describe('two halo-persist in one consumer group', { timeout: ms(150000) },
         () => {
    let kafka;
    let ingest;
    const persists = [];
    let shared;

    before(async () => {
        kafka = await KafkaMock.start({ topics: { grouped: 4 } });
        ingest = await HaloDaemon.start({
            config: ingestConfig(kafka.bootstrap, { topic: 'grouped' }),
        });
        /* one store for both, as with PostgreSQL in a deployment */
        shared = makeTempDir('halo-e2e-shared-');
        for (let i = 0; i < 2; i++) {
            persists.push(await HaloDaemon.start({
                db: join(shared, 'halo.db'),
                config: persistConfig(kafka.bootstrap,
                                      { topics: ['grouped'],
                                        group_id: 'e2e-grouped' }),
            }));
        }
    });

    after(async () => {
        try {
            await stopAll([...persists, ingest], kafka);
        } finally {
            if (process.env.HALO_E2E_KEEP !== '1') {
                rmSync(shared, { recursive: true, force: true });
            }
        }
    });

    /* spans the sqlite exporter of `d` committed */
    const stored = (d) => metricValue(d, 'halo_exporter_sent_spans_total',
                                      { exporter: 'sqlite' });

    it('split the partitions and together store every span once',
       { timeout: ms(120000) }, async () => {
           const acked = new Set();
           let seq = 0;
           const sendSome = async (count) => {
               for (let i = 0; i < count; i++) {
                   const req = makeRequest(`g-${seq++}`,
                                           { agent: 'kafka-grouped' });
                   const res = await postProtobuf(ingest.tracesUrl, req);
                   assert.equal(res.status, 200,
                                `halo-ingest: ${res.status} ${res.body}`);
                   for (const k of keysOf(req)) acked.add(k);
               }
           };
           /* traces keep coming (random ids: every partition gets some)
            * until the group has rebalanced and both consumers store */
           await waitFor(async () => {
               await sendSome(4);
               const [a, b] = await Promise.all(persists.map(stored));
               return a > 0 && b > 0;
           }, { timeoutMs: ms(60000), intervalMs: 100,
                what: 'both halo-persist storing spans of the group' });
           await sendSome(40);
           await waitStored(persists[0].dbPath, acked, {
               timeoutMs: ms(40000),
               what: 'every span, stored by the group',
               context: logs(ingest, ...persists),
           });
           assert.deepEqual(await duplicateKeys(persists[0].dbPath), [],
                            'no span stored twice');
           const [{ n }] = await query(persists[0].dbPath,
                                       'SELECT count(*) AS n FROM spans');
           assert.equal(n, acked.size, 'rows in the shared store');
           const counts = await Promise.all(persists.map(stored));
           process.stdout.write(`# spans stored per consumer: ` +
                                `${counts.join(', ')} of ${acked.size}\n`);
           assert.ok(counts.every((c) => c > 0), `per consumer: ${counts}`);
           /* split, not each consuming everything. The metric counts
            * spans written, duplicates included: after a rebalance one
            * consumer may re-read a partition's uncommitted tail (and a
            * loaded machine makes that tail long), so one count alone can
            * exceed what was sent; both together stay under twice it. */
           assert.ok(counts[0] + counts[1] < 2 * acked.size,
                     `each consumer stored all ${acked.size} spans: ${counts}`);
           assert.ok(counts[0] + counts[1] >= acked.size,
                     `the consumers stored ${counts} spans, ${acked.size} sent`);
       });

    it('the daemons exit 0 on SIGTERM', { timeout: ms(40000) }, async () => {
        for (const d of [...persists, ingest]) {
            const exit = await d.stop({ timeoutMs: ms(15000) });
            assert.equal(exit.killed, false, `no exit\n${d.logTail()}`);
            assert.equal(exit.code, 0,
                         `exit ${JSON.stringify(exit)}\n${d.logTail()}`);
        }
    });
});
