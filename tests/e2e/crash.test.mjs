/*
 * crash.test.mjs -- the acknowledgement promise (DESIGN §4) when the daemon
 * dies or is stopped under load.
 *
 * Several concurrent loops POST hand-built OTLP/HTTP JSON requests (random
 * trace and span ids) for about 3 seconds and remember the spans of every
 * request answered 200. Then:
 *   - kill -9 while requests are in flight, restart on the same database:
 *     every acknowledged span must be there;
 *   - SIGTERM while requests are in flight: halo drains and exits 0, and
 *     every acknowledged span is there.
 * Spans whose request got no answer (or an error) may or may not be
 * stored; none may be stored twice.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HaloDaemon } from './lib/daemon.mjs';
import { postJson, request, span } from './lib/otlp.mjs';
import { query } from './lib/store.mjs';
import { nowNanos, randomTraceId, waitFor } from './lib/util.mjs';

const LOOPS = 6;
const SPANS_PER_REQUEST = 20;
const RUN_MS = 3000;

/* One request: one trace of SPANS_PER_REQUEST spans (a root + children). */
function makeRequest(loop, seq) {
    const traceId = randomTraceId();
    const root = span({ traceId, name: `crash-root-${loop}-${seq}`,
                        start: nowNanos(-50), end: nowNanos(),
                        attributes: { 'agent.name': `crash-agent-${loop}`,
                                      'openinference.span.kind': 'AGENT' } });
    const spans = [root];
    for (let i = 1; i < SPANS_PER_REQUEST; i++) {
        spans.push(span({ traceId, parentSpanId: root.spanId,
                          name: `crash-step-${i}`,
                          attributes: { 'tool.name': `tool-${i % 3}`,
                                        'input.value': `arguments ${seq}/${i}` } }));
    }
    return request(spans, { resource: { 'service.name': 'crash-e2e' } });
}

/*
 * LOOPS concurrent senders against `halo`. `acked` collects the
 * "trace/span" keys of every request answered 200. Call `interrupt(fn)`
 * once: it waits for RUN_MS of load (and a minimum of acknowledged
 * requests), checks a request is in flight, runs `fn` (the kill or the
 * SIGTERM), then stops the loops and waits for them.
 */
function startLoad(halo) {
    const acked = new Set();
    const stats = { ok: 0, refused: 0, failed: 0, inflightAtInterrupt: 0 };
    let stop = false;
    let inflight = 0;

    const loop = async (id) => {
        for (let seq = 0; !stop; seq++) {
            const req = makeRequest(id, seq);
            inflight++;
            try {
                const res = await postJson(halo.tracesUrl, req, { timeoutMs: 10000 });
                if (res.status === 200) {
                    stats.ok++;
                    for (const s of req.resourceSpans[0].scopeSpans[0].spans) {
                        acked.add(`${s.traceId}/${s.spanId}`);
                    }
                } else {
                    /* backpressure (503/429) is allowed, anything else for
                     * a valid request is a defect */
                    assert.ok([429, 503].includes(res.status),
                              `unexpected status ${res.status}: ${res.body}`);
                    stats.refused++;
                }
            } catch (e) {
                if (e.code === 'ERR_ASSERTION') throw e;
                stats.failed++; /* reset / refused by the kill or shutdown */
                if (!halo.running) stop = true;
            } finally {
                inflight--;
            }
        }
    };
    const loops = Array.from({ length: LOOPS }, (_, i) => loop(i));

    const interrupt = async (fn) => {
        /* a wait on conditions (elapsed time, acknowledged requests), not
         * a blind sleep */
        const t0 = Date.now();
        await waitFor(() => Date.now() - t0 >= RUN_MS && stats.ok >= 20,
                      { timeoutMs: 30000, intervalMs: 20,
                        what: `${RUN_MS} ms of load with >= 20 acked requests` });
        await waitFor(() => inflight > 0, { timeoutMs: 5000, intervalMs: 1,
                                            what: 'a request in flight' });
        stats.inflightAtInterrupt = inflight;
        try {
            return await fn();
        } finally {
            stop = true;
            await Promise.all(loops);
        }
    };
    return { acked, stats, interrupt };
}

/* Every acked span stored exactly once, every span whole, db intact. */
async function assertAckedStored(halo, acked, stats) {
    const rows = await query(
        halo.dbPath,
        'SELECT trace_id, span_id, count(*) AS n FROM spans ' +
            'GROUP BY trace_id, span_id');
    const stored = new Set(rows.map((r) => `${r.trace_id}/${r.span_id}`));
    assert.deepEqual(rows.filter((r) => r.n !== 1), [],
                     'no span is stored twice');
    const missing = [...acked].filter((k) => !stored.has(k));
    const info = `stats ${JSON.stringify(stats)}, acked spans ${acked.size}, ` +
                 `stored ${stored.size}`;
    assert.equal(missing.length, 0,
                 `${missing.length} acknowledged spans lost (${info}); e.g. ` +
                     `${missing.slice(0, 5)}\n--- daemon log ---\n${halo.logTail()}`);
    /* the survivors are whole: their normalized fields are there */
    const [{ n: unnamed }] = await query(
        halo.dbPath,
        "SELECT count(*) AS n FROM spans WHERE agent_id IS NULL " +
            "OR agent_id NOT LIKE 'crash-agent-%'");
    assert.equal(unnamed, 0, 'every stored span has its agent_id');
    const integrity = await query(halo.dbPath, 'PRAGMA integrity_check');
    assert.equal(integrity[0].integrity_check, 'ok', 'database integrity');
    return info;
}

describe('crash safety: kill -9 loses no acknowledged span',
         { timeout: 90000 }, () => {
    let halo;

    before(async () => {
        halo = await HaloDaemon.start();
    });

    after(async () => {
        if (halo) await halo.cleanup();
    });

    it('every span answered 200 before the kill is in the store after restart',
       { timeout: 60000 }, async () => {
           const load = startLoad(halo);
           const exit = await load.interrupt(() => halo.kill9());
           assert.equal(exit.signal, 'SIGKILL', `exit ${JSON.stringify(exit)}`);

           /* restart on the same database */
           await halo.spawn();
           const info = await assertAckedStored(halo, load.acked, load.stats);
           process.stdout.write(`# kill -9: ${info}\n`);
       });

    it('the restarted daemon accepts and stores new data', { timeout: 20000 },
       async () => {
           const req = makeRequest(99, 0);
           const res = await postJson(halo.tracesUrl, req);
           assert.equal(res.status, 200, `status ${res.status}: ${res.body}`);
           const s = req.resourceSpans[0].scopeSpans[0].spans[0];
           const rows = await query(
               halo.dbPath,
               `SELECT count(*) AS n FROM spans WHERE trace_id = '${s.traceId}'`);
           assert.equal(rows[0].n, SPANS_PER_REQUEST);
       });
});

describe('SIGTERM under load drains and exits 0', { timeout: 90000 }, () => {
    let halo;

    before(async () => {
        halo = await HaloDaemon.start();
    });

    after(async () => {
        if (halo) await halo.cleanup();
    });

    it('exits 0 and keeps every acknowledged span', { timeout: 60000 },
       async () => {
           const load = startLoad(halo);
           const exit = await load.interrupt(() => halo.stop());
           assert.equal(exit.killed, false,
                        `no exit within 15 s of SIGTERM\n${halo.logTail()}`);
           assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}\n` +
                                      `${halo.logTail()}`);
           const info = await assertAckedStored(halo, load.acked, load.stats);
           process.stdout.write(`# SIGTERM: ${info}\n`);
       });
});
