/*
 * ingest_suite.mjs -- the OpenTelemetry JS SDK sends agent traces to a real
 * `halo serve` over all three OTLP transports (gRPC, HTTP/protobuf,
 * HTTP/JSON), plain and gzip-compressed; the store (SQLite or PostgreSQL:
 * ingest.test.mjs and ingest_pg.test.mjs run this one suite) and the query
 * CLI must then show every span exactly once with the normalized fields of
 * DESIGN §5 and the per-trace rollup of §6.
 *
 * Three agents, each a nested run (agent root -> llm -> tool), written
 * with a different semantic convention:
 *   - "support-agent": OpenInference (openinference.span.kind, llm.*, ...)
 *   - "planner-001"  : OTel GenAI (gen_ai.operation.name, gen_ai.agent.*, ...)
 *   - "billing-bot"  : nothing but the resource's service.name
 * Each agent runs once per (transport, compression): 6 runs per agent.
 *
 * Acknowledgement rule (DESIGN §4): a successful export means the spans are
 * committed, so the store is read right after the SDK's flush, without
 * waiting.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { runHalo, describeRun, parseJsonRows } from './cli.mjs';
import { HaloDaemon } from './daemon.mjs';
import { columnsOf, lit, litList, query, spansByKey, SPAN_COLUMNS,
         storeArgs, TRACE_COLUMNS } from './store.mjs';
import { assertFields, SCENARIOS, startRun, TRANSPORTS } from './scenarios.mjs';

/* The three agent runs (OpenInference, GenAI, resource only), the
 * transports and the row comparison live in lib/scenarios.mjs, shared with
 * the Kafka pipeline test. */

/* Column of the line of `text` holding `name` (its indentation). */
function indentOf(text, name) {
    const line = text.split('\n').find((l) => l.includes(name));
    assert.ok(line, `"${name}" not found in:\n${text}`);
    return line.indexOf(name);
}

/* ---- the tests ----------------------------------------------------------- */

/*
 * The suite, against the store `backend` gives: { name, open() -> a store
 * handle for HaloDaemon.start({ store }) (undefined: the daemon's own
 * SQLite file), close() }.
 */
export function ingestSuite(backend) {
    describe(`ingest through the OpenTelemetry SDK into ${backend.name}`,
             { timeout: 180000 }, () => {
        let halo;
        let db; /* the store, as lib/store.mjs takes it */
        const runs = []; /* { scenario, transport, gzip, traceId, records } */

        before(async () => {
            const store = backend.open ? await backend.open() : undefined;
            halo = await HaloDaemon.start({ store });
            db = halo.store;
        });

        after(async () => {
            try {
                if (halo) await halo.cleanup();
            } finally {
                if (backend.close) await backend.close();
            }
        });

        /* One run of one agent over one transport; returns what was sent. */
        async function sendRun(name, transport, gzip, processor = 'batch',
                               scenario = SCENARIOS[name](`${transport}-${gzip}`)) {
            const { records, done } = startRun(halo, scenario,
                                               { transport, gzip, processor });
            const { failures, exported } = await done;
            assert.deepEqual(failures, [],
                             `${transport}${gzip ? '+gzip' : ''} export of ${name} ` +
                             `failed: ${failures.join('; ')}` +
                             `\n--- daemon log ---\n${halo.logTail()}`);
            assert.equal(exported, records.length,
                         'every span must have been exported successfully');
            const run = { name, scenario, transport, gzip,
                          traceId: records[0].traceId, records };
            return run;
        }

        for (const transport of TRANSPORTS) {
            for (const gzip of [false, true]) {
                const label = `${transport}${gzip ? ' + gzip' : ''}`;
                it(`exports three agents' runs over ${label}`, { timeout: 30000 },
                   async () => {
                       for (const name of Object.keys(SCENARIOS)) {
                           const run = await sendRun(name, transport, gzip);
                           runs.push(run);
                           /* acked => committed: visible right away */
                           const rows = await query(
                               db,
                               `SELECT count(*) AS n FROM spans WHERE trace_id = ` +
                                   `${lit(run.traceId)}`);
                           assert.equal(rows[0].n, run.records.length,
                                        `${label} ${name}: spans of trace ` +
                                        `${run.traceId} in the store right after ` +
                                        'the acknowledged export');
                       }
                   });
            }
        }

        it('the store has the columns of DESIGN §6', async () => {
            for (const [table, want] of [['spans', SPAN_COLUMNS],
                                         ['traces', TRACE_COLUMNS]]) {
                const cols = await columnsOf(db, table);
                const missing = want.filter((c) => !cols.includes(c));
                assert.deepEqual(missing, [], `${table} lacks columns of DESIGN §6`);
            }
        });

        /* `top -H`, perf and gdb show which part of the pipeline a thread
         * is: every long-lived thread names itself. */
        it('names its threads after what they do', async () => {
            const dir = `/proc/${halo.pid}/task`;
            const names = new Set(readdirSync(dir).map(
                (t) => readFileSync(`${dir}/${t}/comm`, 'utf8').trim()));
            const store = backend.open ? ['pg-writer'] : ['sqlite-writer',
                                                         'sqlite-sync',
                                                         'sqlite-ckpt'];
            for (const want of ['otlp-grpc', 'batch', 'http-sweeper', ...store])
                assert.ok(names.has(want),
                          `no thread named "${want}" among ${[...names].join(', ')}`);
        });

        it('stores every span exactly once', async () => {
            assert.equal(runs.length, 18, 'all export tests must have run');
            const traceIds = runs.map((r) => r.traceId);
            const dups = await query(
                db,
                `SELECT trace_id, span_id, count(*) AS n FROM spans WHERE trace_id ` +
                    `IN ${litList(traceIds)} GROUP BY trace_id, span_id HAVING count(*) > 1`);
            assert.deepEqual(dups, [], 'duplicate (trace_id, span_id) rows');
            const sent = runs.reduce((n, r) => n + r.records.length, 0);
            const [{ n }] = await query(
                db,
                `SELECT count(*) AS n FROM spans WHERE trace_id IN ${litList(traceIds)}`);
            assert.equal(n, sent, 'stored spans vs spans sent');
        });

        it('normalizes every span (DESIGN §5)', async () => {
            const byKey = await spansByKey(db, runs.map((r) => r.traceId));
            for (const run of runs) {
                for (const rec of run.records) {
                    const what = `${run.transport}${run.gzip ? '+gzip' : ''} ` +
                                 `${run.name} span "${rec.node.name}" ` +
                                 `(${rec.traceId}/${rec.spanId})`;
                    const rows = byKey.get(`${rec.traceId}/${rec.spanId}`) || [];
                    assert.equal(rows.length, 1, `${what}: rows in spans`);
                    const row = rows[0];
                    assertFields(row, {
                        name: rec.node.name,
                        ...run.scenario.common,
                        ...run.scenario.spans[rec.node.name],
                    }, what);
                    if (rec.parentSpanId) {
                        assert.equal(row.parent_span_id, rec.parentSpanId,
                                     `${what}: parent_span_id`);
                    } else {
                        assert.ok(row.parent_span_id === null ||
                                      row.parent_span_id === '',
                                  `${what}: a root has no parent_span_id, got ` +
                                      `${JSON.stringify(row.parent_span_id)}`);
                    }
                    /* the original attributes are kept (DESIGN §5, last line) */
                    const stored = JSON.stringify(row.attributes ?? '');
                    for (const key of Object.keys(rec.node.attributes || {})) {
                        assert.ok(stored.includes(key),
                                  `${what}: attribute ${key} missing from ` +
                                      `attributes ${row.attributes}`);
                    }
                    assert.ok(String(row.resource).includes('service.name'),
                              `${what}: resource JSON lacks service.name: ` +
                                  `${row.resource}`);
                }
            }
        });

        it('rolls traces up (traces table)', async () => {
            const rows = await query(
                db,
                `SELECT * FROM traces WHERE trace_id IN ` +
                    `${litList(runs.map((r) => r.traceId))}`);
            const byId = new Map(rows.map((r) => [r.trace_id, r]));
            for (const run of runs) {
                const row = byId.get(run.traceId);
                const what = `traces row of ${run.transport}${run.gzip ? '+gzip' : ''} ` +
                             `${run.name} (${run.traceId})`;
                assert.ok(row, `${what}: missing`);
                assertFields(row, run.scenario.rollup, what);
            }
            assert.equal(rows.length, runs.length, 'one traces row per trace');
        });

        it('children exported before their root still get the root\'s identity',
           { timeout: 30000 }, async () => {
               /* SimpleSpanProcessor exports each span as it ends: the tool span
                * travels first, alone; agent/session/user live on the root only. */
               const scenario = SCENARIOS.openinference('simple');
               scenario.tree.attributes['agent.name'] = 'early-children-agent';
               scenario.tree.attributes['session.id'] = 'early-children-session';
               const run = await sendRun('openinference', 'proto', false, 'simple',
                                         scenario);
               const rows = await query(
                   db,
                   `SELECT name, agent_id, agent_name, session_id, user_id FROM spans ` +
                       `WHERE trace_id = ${lit(run.traceId)} ORDER BY name`);
               assert.equal(rows.length, 4);
               for (const row of rows) {
                   assertFields(row, { agent_id: 'early-children-agent',
                                       agent_name: 'early-children-agent',
                                       session_id: 'early-children-session',
                                       user_id: 'alice' },
                                `span "${row.name}" of a trace whose root came last`);
               }
           });

        it('halo traces list --json lists the traces', { timeout: 30000 },
           async () => {
               const args = ['traces', 'list', ...storeArgs(db), '--json'];
               const r = await runHalo(args);
               assert.equal(r.code, 0, describeRun(args, r));
               const listed = parseJsonRows(r.stdout, 'halo traces list --json');
               const byId = new Map(listed.map((t) => [t.trace_id, t]));
               for (const run of runs) {
                   const t = byId.get(run.traceId);
                   assert.ok(t, `trace ${run.traceId} (${run.name}) not listed:\n` +
                                 `${r.stdout.slice(0, 2000)}`);
                   assert.equal(t.agent_id, run.scenario.agentId,
                                `agent_id of listed trace ${run.traceId}`);
                   if ('span_count' in t) assert.equal(t.span_count, 4);
               }
           });

        it('halo traces list filters by --agent and --errors', { timeout: 30000 },
           async () => {
               let args = ['traces', 'list', ...storeArgs(db), '--json',
                           '--agent', 'planner-001'];
               let r = await runHalo(args);
               assert.equal(r.code, 0, describeRun(args, r));
               const planner = parseJsonRows(r.stdout, 'traces list --agent');
               const plannerIds = runs.filter((x) => x.name === 'genai')
                   .map((x) => x.traceId).sort();
               assert.deepEqual(planner.map((t) => t.trace_id).sort(), plannerIds,
                                '--agent planner-001 lists exactly its 6 runs');

               args = ['traces', 'list', ...storeArgs(db), '--json', '--errors'];
               r = await runHalo(args);
               assert.equal(r.code, 0, describeRun(args, r));
               const errs = parseJsonRows(r.stdout, 'traces list --errors');
               const ours = new Set(runs.map((x) => x.traceId));
               const listedOurs = errs.map((t) => t.trace_id)
                   .filter((id) => ours.has(id)).sort();
               const withErrors = runs.filter((x) => x.scenario.rollup.error_count > 0)
                   .map((x) => x.traceId).sort();
               assert.deepEqual(listedOurs, withErrors,
                                '--errors lists exactly the traces with an error');

               args = ['traces', 'list', ...storeArgs(db), '--agent', 'no-such-agent'];
               r = await runHalo(args);
               assert.equal(r.code, 0, describeRun(args, r));
               assert.match(r.stderr, /no traces match these filters/,
                            describeRun(args, r));

               args = ['traces', 'list', ...storeArgs(db), '--since', '1h',
                       '--until', '2h'];
               r = await runHalo(args);
               assert.equal(r.code, 2, describeRun(args, r));
               assert.match(r.stderr, /--since is not before --until/,
                            describeRun(args, r));
           });

        it('halo traces show prints the span tree', { timeout: 30000 }, async () => {
            for (const name of Object.keys(SCENARIOS)) {
                const run = runs.find((x) => x.name === name);
                const args = ['traces', 'show', run.traceId, ...storeArgs(db)];
                const r = await runHalo(args);
                assert.equal(r.code, 0, describeRun(args, r));
                const root = run.scenario.tree;
                const child = root.children[0];
                const grandchild = child.children[0];
                const [i0, i1, i2] = [root, child, grandchild]
                    .map((n) => indentOf(r.stdout, n.name));
                assert.ok(i0 < i1 && i1 < i2,
                          `tree indentation root ${i0} < child ${i1} < ` +
                              `grandchild ${i2} expected:\n${r.stdout}`);
                /* the tool / model of a step are shown */
                const toolName = run.scenario.spans[grandchild.name].tool_name;
                assert.ok(r.stdout.includes(toolName),
                          `tool ${toolName} not shown:\n${r.stdout}`);
                const model = run.scenario.spans[child.name].model;
                assert.ok(r.stdout.includes(model),
                          `model ${model} not shown:\n${r.stdout}`);
            }
            const bad = ['traces', 'show', 'ffffffffffffffffffffffffffffffff',
                         ...storeArgs(db)];
            const r = await runHalo(bad);
            assert.equal(r.code, 1, `unknown trace id: ${describeRun(bad, r)}`);
        });

        it('halo agents lists the agents with their run counts', { timeout: 30000 },
           async () => {
               const args = ['agents', ...storeArgs(db)];
               const r = await runHalo(args);
               assert.equal(r.code, 0, describeRun(args, r));
               const lines = r.stdout.split('\n');
               for (const agent of ['support-agent', 'planner-001', 'billing-bot']) {
                   const line = lines.find((l) => l.includes(agent));
                   assert.ok(line, `agent ${agent} not listed:\n${r.stdout}`);
                   assert.match(line, /(^|\s)6(\s|$)/,
                                `${agent} ran 6 times: ${line}`);
                   /* tokens, but no llm.cost.total and no price table: the
                    * cost is unknown, not zero */
                   assert.match(line, /\s-$/, `${agent}'s cost is unknown: ${line}`);
               }
               assert.match(r.stderr, /no price known/, describeRun(args, r));
           });

        it('drains and exits 0 on SIGTERM', { timeout: 30000 }, async () => {
            const exit = await halo.stop();
            assert.equal(exit.killed, false,
                         'halo did not exit within 15 s of SIGTERM');
            assert.equal(exit.code, 0,
                         `exit after SIGTERM: ${JSON.stringify(exit)}\n${halo.logTail()}`);
        });
    });
}
