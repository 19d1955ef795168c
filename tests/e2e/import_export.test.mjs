/*
 * import_export.test.mjs -- `halo import` and `halo export` (DESIGN §8).
 *
 * Import reads (a) OTLP/JSON lines (one ExportTraceServiceRequest per
 * line), (b) HALO-style span JSONL (one flat span per line, named like the
 * spans columns of §6) and (c) either of them gzip-compressed, and feeds
 * them through a configuration's pipelines into its SQLite store. A
 * malformed line is reported as FILE:LINE, skipped, and makes the exit
 * code 1 while the other lines are still imported.
 *
 * Export writes one trace as OTLP/JSON; importing that into a fresh store
 * must reproduce the trace's rows column for column.
 *
 * No daemon is involved: every command runs to completion on its own.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { describeRun, runHalo } from './lib/cli.mjs';
import { makeTempDir, writeTestConfig } from './lib/daemon.mjs';
import { request, span, STATUS, toJson } from './lib/otlp.mjs';
import { lit, query } from './lib/store.mjs';
import { randomSpanId, randomTraceId } from './lib/util.mjs';

/* ---- fixtures ------------------------------------------------------------ */

/* A base time one hour ago on a whole second, so ISO strings are exact. */
const BASE_NS = BigInt(Math.floor(Date.now() / 1000) - 3600) * 1000000000n;

/* ns offset from BASE_NS -> decimal string, and its ISO-8601 (9 digits). */
const ns = (offsetNs) => (BASE_NS + BigInt(offsetNs)).toString();
function iso(offsetNs) {
    const t = BASE_NS + BigInt(offsetNs);
    const secs = t / 1000000000n;
    const frac = (t % 1000000000n).toString().padStart(9, '0');
    return `${new Date(Number(secs) * 1000).toISOString().slice(0, 19)}.${frac}Z`;
}

const MS = 1000000; /* ns per ms */

/*
 * One OTLP/JSON trace: invoke_agent -> chat -> execute_tool, GenAI
 * attributes, every AnyValue type, an event, an ERROR status.
 */
function otlpTrace(agent) {
    const traceId = randomTraceId();
    const root = span({
        traceId, name: `invoke_agent ${agent}`, kind: 2,
        start: ns(0), end: ns(900 * MS + 123456),
        attributes: { 'gen_ai.operation.name': 'invoke_agent',
                      'gen_ai.agent.name': agent,
                      'gen_ai.conversation.id': `conv-${agent}` },
    });
    const chat = span({
        traceId, parentSpanId: root.spanId, name: 'chat', kind: 3,
        start: ns(100 * MS), end: ns(500 * MS),
        attributes: { 'gen_ai.operation.name': 'chat',
                      'gen_ai.request.model': 'gpt-import',
                      'gen_ai.usage.input_tokens': 321,
                      'gen_ai.usage.output_tokens': 45,
                      'e2e.double': 0.25, 'e2e.bool': true,
                      'e2e.array': ['a', 1, false],
                      'e2e.map': { inner: 'v', n: 7 } },
        events: [{ name: 'gen_ai.choice', time: ns(450 * MS),
                   attributes: { index: 0 } }],
    });
    const tool = span({
        traceId, parentSpanId: chat.spanId, name: 'execute_tool search',
        start: ns(200 * MS), end: ns(300 * MS),
        attributes: { 'gen_ai.operation.name': 'execute_tool',
                      'gen_ai.tool.name': 'search',
                      'gen_ai.tool.call.arguments': '{"q":"halo"}',
                      'gen_ai.tool.call.result': 'Error: no results' },
        status: { code: STATUS.ERROR, message: 'search failed' },
    });
    return { traceId, agent, spans: [root, chat, tool],
             request: request([root, chat, tool],
                              { resource: { 'service.name': `${agent}-svc`,
                                            'deployment.environment': 'e2e' } }) };
}

/* One trace as HALO-style JSONL: 4 flat span objects (root first). */
function jsonlTrace(agent) {
    const traceId = randomTraceId();
    const ids = [randomSpanId(), randomSpanId(), randomSpanId(), randomSpanId()];
    const resource = { 'service.name': agent };
    const mk = (i, parent, name, startMs, endMs, attributes, status = 'UNSET') => ({
        trace_id: traceId, span_id: ids[i], parent_span_id: parent,
        name, start_time: iso(startMs * MS), end_time: iso(endMs * MS),
        attributes, resource, status_code: status,
    });
    const lines = [
        mk(0, null, 'agent.run', 0, 1000,
           { 'openinference.span.kind': 'AGENT', 'session.id': 'jsonl-session',
             'user.id': 'carol' }),
        mk(1, ids[0], 'llm.call', 100, 400,
           { 'openinference.span.kind': 'LLM', 'llm.model_name': 'model-jsonl',
             'llm.token_count.prompt': 11, 'llm.token_count.completion': 7 }),
        mk(2, ids[1], 'tool.fetch', 150, 250,
           { 'openinference.span.kind': 'TOOL', 'tool.name': 'fetch' }, 'ERROR'),
        mk(3, ids[0], 'llm.call', 500, 800,
           { 'openinference.span.kind': 'LLM', 'llm.model_name': 'model-jsonl',
             'llm.token_count.prompt': 13, 'llm.token_count.completion': 9 },
           'OK'),
    ];
    return { traceId, agent, lines, ids };
}

/* "imported N spans ..." / "N spans imported"; "M line(s) rejected". */
function summary(output) {
    const imported = output.match(/imported (\d+) spans?|(\d+) spans? imported/);
    const rejected = output.match(/(\d+) lines?(?:\(s\))? rejected/);
    assert.ok(imported, `no "imported N spans" summary in:\n${output}`);
    assert.ok(rejected, `no "M lines rejected" summary in:\n${output}`);
    return { imported: Number(imported[1] ?? imported[2]),
             rejected: Number(rejected[1]) };
}

/* ---- the tests ----------------------------------------------------------- */

describe('halo import / halo export', { timeout: 90000 }, () => {
    let dir;
    let cfg; /* { configPath, dbPath } */
    const a = [otlpTrace('import-a1'), otlpTrace('import-a2'),
               otlpTrace('import-a3')];
    const b = [jsonlTrace('jsonl-agent')];
    const c = [otlpTrace('import-gz1'), otlpTrace('import-gz2')];

    before(async () => {
        dir = makeTempDir('halo-e2e-import-');
        cfg = await writeTestConfig(dir);
        writeFileSync(join(dir, 'otlp.jsonl'),
                      a.map((t) => toJson(t.request)).join('\n') + '\n');
        writeFileSync(join(dir, 'spans.jsonl'),
                      b[0].lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
        writeFileSync(join(dir, 'more.jsonl.gz'),
                      gzipSync(c.map((t) => toJson(t.request)).join('\n') + '\n'));
    });

    after(() => {
        if (dir && process.env.HALO_E2E_KEEP !== '1') {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it('imports OTLP-JSON lines, span JSONL and gzip into the config\'s store',
       { timeout: 30000 }, async () => {
           const args = ['import', join(dir, 'otlp.jsonl'),
                         join(dir, 'spans.jsonl'), join(dir, 'more.jsonl.gz'),
                         '--config', cfg.configPath];
           const r = await runHalo(args);
           assert.equal(r.code, 0, describeRun(args, r));
           const s = summary(r.output);
           assert.deepEqual(s, { imported: 9 + 4 + 6, rejected: 0 },
                            describeRun(args, r));
           const counts = await query(
               cfg.dbPath,
               'SELECT trace_id, count(*) AS n FROM spans GROUP BY trace_id');
           const byTrace = new Map(counts.map((x) => [x.trace_id, x.n]));
           for (const t of [...a, ...c]) {
               assert.equal(byTrace.get(t.traceId), 3, `spans of ${t.agent}`);
           }
           assert.equal(byTrace.get(b[0].traceId), 4, 'spans of the JSONL trace');
           assert.equal(counts.length, a.length + b.length + c.length,
                        'no other traces in the store');
       });

    it('OTLP-JSON spans are normalized and keep their data', async () => {
        const t = a[0];
        const rows = await query(
            cfg.dbPath,
            `SELECT * FROM spans WHERE trace_id = ${lit(t.traceId)} ` +
                'ORDER BY start_time');
        assert.equal(rows.length, 3);
        const [root, chat, tool] = rows;
        for (const row of rows) {
            assert.equal(row.agent_id, t.agent, `agent_id of ${row.name}`);
            assert.equal(row.agent_name, t.agent, `agent_name of ${row.name}`);
            assert.equal(row.session_id, `conv-${t.agent}`,
                         `session_id of ${row.name}`);
            assert.equal(row.service_name, `${t.agent}-svc`);
        }
        assert.equal(root.span_type, 'AGENT');
        assert.equal(root.start_time, iso(0), 'start_time (ISO-8601, ns)');
        assert.equal(root.end_time, iso(900 * MS + 123456), 'end_time');
        assert.ok(Math.abs(root.duration_ms - 900.123456) < 1e-6,
                  `duration_ms ${root.duration_ms}`);
        assert.equal(chat.span_type, 'LLM');
        assert.equal(chat.model, 'gpt-import');
        assert.equal(chat.input_tokens, 321);
        assert.equal(chat.output_tokens, 45);
        assert.equal(chat.parent_span_id, t.spans[0].spanId);
        const attrs = JSON.parse(chat.attributes);
        const text = JSON.stringify(attrs);
        for (const k of ['e2e.double', 'e2e.bool', 'e2e.array', 'e2e.map']) {
            assert.ok(text.includes(k), `attribute ${k} kept: ${text}`);
        }
        assert.ok(chat.events.includes('gen_ai.choice'),
                  `event kept: ${chat.events}`);
        assert.equal(tool.span_type, 'TOOL');
        assert.equal(tool.tool_name, 'search');
        assert.equal(tool.status_code, 'ERROR');
        assert.equal(tool.status_message, 'search failed');
        assert.equal(tool.input, '{"q":"halo"}', 'input from tool arguments');
        assert.equal(tool.output, 'Error: no results', 'output from tool result');

        const [tr] = await query(
            cfg.dbPath, `SELECT * FROM traces WHERE trace_id = ${lit(t.traceId)}`);
        assert.ok(tr, 'traces row');
        assert.equal(tr.span_count, 3);
        assert.equal(tr.error_count, 1);
        assert.equal(tr.llm_calls, 1);
        assert.equal(tr.tool_calls, 1);
        assert.equal(tr.input_tokens, 321);
        assert.equal(tr.output_tokens, 45);
        assert.equal(tr.root_name, `invoke_agent ${t.agent}`);
    });

    it('span JSONL lines are imported with their fields', async () => {
        const t = b[0];
        const rows = await query(
            cfg.dbPath,
            `SELECT * FROM spans WHERE trace_id = ${lit(t.traceId)}`);
        const byId = new Map(rows.map((r) => [r.span_id, r]));
        t.lines.forEach((line, i) => {
            const row = byId.get(line.span_id);
            assert.ok(row, `JSONL line ${i + 1} (${line.name}) stored`);
            const what = `JSONL span ${line.name} (line ${i + 1})`;
            assert.equal(row.name, line.name, what);
            if (line.parent_span_id) {
                assert.equal(row.parent_span_id, line.parent_span_id,
                             `${what}: parent_span_id`);
            } else {
                assert.ok([null, ''].includes(row.parent_span_id),
                          `${what}: a root has no parent_span_id`);
            }
            assert.equal(row.start_time, line.start_time, `${what}: start_time`);
            assert.equal(row.end_time, line.end_time, `${what}: end_time`);
            assert.equal(row.status_code, line.status_code, `${what}: status`);
            assert.equal(row.agent_id, 'jsonl-agent', `${what}: agent_id`);
            assert.equal(row.session_id, 'jsonl-session', `${what}: session_id`);
            assert.equal(row.user_id, 'carol', `${what}: user_id`);
            assert.equal(row.span_type,
                         line.attributes['openinference.span.kind'],
                         `${what}: span_type`);
        });
        const [tr] = await query(
            cfg.dbPath,
            `SELECT * FROM traces WHERE trace_id = ${lit(t.traceId)}`);
        assert.ok(tr, 'traces row of the JSONL trace');
        assert.deepEqual(
            { span_count: tr.span_count, error_count: tr.error_count,
              llm_calls: tr.llm_calls, tool_calls: tr.tool_calls,
              input_tokens: tr.input_tokens, output_tokens: tr.output_tokens,
              root_name: tr.root_name },
            { span_count: 4, error_count: 1, llm_calls: 2, tool_calls: 1,
              input_tokens: 24, output_tokens: 16, root_name: 'agent.run' });
    });

    it('importing the same files again adds no rows', { timeout: 30000 },
       async () => {
           const [{ n: before }] = await query(cfg.dbPath,
                                               'SELECT count(*) AS n FROM spans');
           const args = ['import', join(dir, 'otlp.jsonl'),
                         join(dir, 'more.jsonl.gz'), '--config', cfg.configPath];
           const r = await runHalo(args);
           assert.equal(r.code, 0, describeRun(args, r));
           const [{ n: afterN }] = await query(cfg.dbPath,
                                               'SELECT count(*) AS n FROM spans');
           assert.equal(afterN, before, 'stores are idempotent on (trace, span)');
           /* and the summary says they were there already */
           const m = r.stderr.match(/imported (\d+) spans \((\d+) of them already stored\)/);
           assert.ok(m, describeRun(args, r));
           assert.equal(m[1], m[2], describeRun(args, r));
           const [tr] = await query(
               cfg.dbPath,
               `SELECT span_count FROM traces WHERE trace_id = ${lit(a[0].traceId)}`);
           assert.equal(tr.span_count, 3, 'the rollup does not double count');
       });

    it('a malformed line is reported as FILE:LINE; the rest is imported',
       { timeout: 30000 }, async () => {
           const good1 = otlpTrace('bad-file-1');
           const good2 = jsonlTrace('bad-file-2');
           const good3 = otlpTrace('bad-file-3');
           const lines = [
               toJson(good1.request), //                        1
               '{"resourceSpans": [ {"scopeSpans": oops', //    2 bad JSON
               JSON.stringify(good2.lines[0]), //               3 one flat span
               'this is not json at all', //                    4 bad
               toJson(good3.request), //                        5
           ];
           const file = join(dir, 'broken.jsonl');
           writeFileSync(file, lines.join('\n') + '\n');
           const args = ['import', file, '--config', cfg.configPath];
           const r = await runHalo(args);
           assert.equal(r.code, 1, describeRun(args, r));
           for (const n of [2, 4]) {
               assert.match(r.output, new RegExp(`broken\\.jsonl:${n}:`),
                            `line ${n} reported as FILE:LINE\n${describeRun(args, r)}`);
           }
           for (const n of [1, 3, 5]) {
               assert.doesNotMatch(r.output, new RegExp(`broken\\.jsonl:${n}:`),
                                   `good line ${n} not reported`);
           }
           assert.deepEqual(summary(r.output), { imported: 3 + 1 + 3, rejected: 2 },
                            describeRun(args, r));
           const rows = await query(
               cfg.dbPath,
               `SELECT trace_id, count(*) AS n FROM spans WHERE trace_id IN ` +
                   `(${[good1, good2, good3].map((t) => lit(t.traceId)).join(',')}) ` +
                   'GROUP BY trace_id');
           const got = Object.fromEntries(rows.map((x) => [x.trace_id, x.n]));
           assert.deepEqual(got, { [good1.traceId]: 3, [good2.traceId]: 1,
                                   [good3.traceId]: 3 },
                            'the good lines are stored');
       });

    it('a missing file is an error naming it', async () => {
        const args = ['import', join(dir, 'no-such-file.jsonl'),
                      '--config', cfg.configPath];
        const r = await runHalo(args);
        assert.equal(r.code, 1, describeRun(args, r));
        assert.match(r.output, /no-such-file\.jsonl/);
    });

    it('a missing file creates no store', async () => {
        const db = join(dir, 'never-created.db');
        const args = ['import', join(dir, 'no-such-file.jsonl'), '--db', db];
        const r = await runHalo(args);
        assert.equal(r.code, 1, describeRun(args, r));
        assert.match(r.output, /no-such-file\.jsonl/);
        assert.ok(!existsSync(db), `${db} was created for nothing`);
    });

    it('a file that is one pretty-printed OTLP/JSON document is imported',
       async () => {
           const t = otlpTrace('import-pretty');
           const file = join(dir, 'pretty.json');
           writeFileSync(file,
                         JSON.stringify(JSON.parse(toJson(t.request)), null, 2) +
                             '\n');
           const args = ['import', file, '--config', cfg.configPath];
           const r = await runHalo(args);
           assert.equal(r.code, 0, describeRun(args, r));
           assert.deepEqual(summary(r.output), { imported: 3, rejected: 0 });
           const rows = await query(
               cfg.dbPath,
               `SELECT count(*) AS n FROM spans WHERE trace_id = ${lit(t.traceId)}`);
           assert.equal(rows[0].n, 3);
       });

    it('a first line that opens an object but is not a document: line by line',
       async () => {
           const good = jsonlTrace('reread-agent');
           const lines = [
               '{"trace_id": "' + good.traceId + '", "span_id":', //   1 opens, not closed
               '"x"} nonsense', //                                    2
               JSON.stringify(good.lines[0]), //                      3 good
           ];
           const file = join(dir, 'reread.jsonl');
           writeFileSync(file, lines.join('\n') + '\n');
           const args = ['import', file, '--config', cfg.configPath];
           const r = await runHalo(args);
           assert.equal(r.code, 1, describeRun(args, r));
           assert.match(r.output, /reread\.jsonl:1:/);
           assert.match(r.output, /reread\.jsonl:2:/);
           assert.deepEqual(summary(r.output), { imported: 1, rejected: 2 });
       });

    it('a pretty-printed flat span is imported; a bad cost rejects its line',
       async () => {
           const traceId = randomTraceId();
           const span = { trace_id: traceId, span_id: randomSpanId(), name: 'p',
                          start_time: iso(0), end_time: iso(MS), agent_id: 'pp' };
           const file = join(dir, 'pretty-flat.json');
           writeFileSync(file, JSON.stringify(span, null, 2) + '\n');
           let args = ['import', file, '--config', cfg.configPath];
           let r = await runHalo(args);
           assert.equal(r.code, 0, describeRun(args, r));
           assert.deepEqual(summary(r.output), { imported: 1, rejected: 0 });

           const bad = join(dir, 'bad-cost.jsonl');
           writeFileSync(bad, [-1, 'NaN', 1e16].map((cost, i) => JSON.stringify(
               { ...span, span_id: randomSpanId(), cost: i === 2 ? undefined : cost,
                 input_tokens: i === 2 ? cost : undefined })).join('\n') + '\n');
           args = ['import', bad, '--config', cfg.configPath];
           r = await runHalo(args);
           assert.equal(r.code, 1, describeRun(args, r));
           assert.match(r.output, /bad-cost\.jsonl:1: .*cost/);
           assert.match(r.output, /bad-cost\.jsonl:2: .*cost/);
           assert.match(r.output, /bad-cost\.jsonl:3: .*token count/);
           assert.deepEqual(summary(r.output), { imported: 0, rejected: 3 });
       });

    it('a flat span keeps the derived columns it gives', async () => {
        const traceId = randomTraceId();
        const line = {
            trace_id: traceId, span_id: randomSpanId(), name: 'lookup',
            start_time: iso(0), end_time: iso(5 * MS),
            agent_id: 'column-agent', session_id: 'column-session',
            span_type: 'tool', tool_name: 'lookup', input: { q: 'x' },
            input_tokens: 12, cost: 0.5,
            attributes: { 'user.id': 'dave' },
        };
        const file = join(dir, 'columns.jsonl');
        writeFileSync(file, JSON.stringify(line) + '\n');
        const args = ['import', file, '--config', cfg.configPath];
        const r = await runHalo(args);
        assert.equal(r.code, 0, describeRun(args, r));
        const [row] = await query(
            cfg.dbPath,
            'SELECT agent_id, agent_name, session_id, user_id, span_type, ' +
                'tool_name, input, input_tokens, output_tokens, cost ' +
                `FROM spans WHERE trace_id = ${lit(traceId)}`);
        assert.deepEqual({ ...row }, {
            agent_id: 'column-agent', agent_name: 'column-agent',
            session_id: 'column-session', user_id: 'dave', span_type: 'TOOL',
            tool_name: 'lookup', input: '{"q":"x"}', input_tokens: 12,
            output_tokens: null, cost: 0.5,
        });
    });

    it('import with no file is a usage error (exit 2)', async () => {
        const r = await runHalo(['import', '--config', cfg.configPath]);
        assert.equal(r.code, 2, describeRun(['import'], r));
    });

    /* export a trace, import it into a fresh store, compare every column */
    async function roundTrip(traceId, label) {
        const exportArgs = ['export', '--trace-id', traceId, '--db', cfg.dbPath];
        const r = await runHalo(exportArgs);
        assert.equal(r.code, 0, describeRun(exportArgs, r));
        let doc;
        assert.doesNotThrow(() => { doc = JSON.parse(r.stdout); },
                            `export prints OTLP-JSON: ${r.stdout.slice(0, 300)}`);
        assert.ok(Array.isArray(doc.resourceSpans),
                  `resourceSpans in ${r.stdout.slice(0, 300)}`);
        const exported = doc.resourceSpans.flatMap(
            (rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
        assert.ok(exported.every((s) => s.traceId === traceId),
                  'only the requested trace is exported');

        /* --output F writes the same document */
        const file = join(dir, `export-${label}.json`);
        const outArgs = [...exportArgs, '--output', file];
        const r2 = await runHalo(outArgs);
        assert.equal(r2.code, 0, describeRun(outArgs, r2));
        assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), doc,
                         '--output writes what stdout shows');

        const fresh = await writeTestConfig(dir, { name: `fresh-${label}.yaml`,
                                                   db: `fresh-${label}.db` });
        /* one of the two reads it from standard input (FILE -) */
        const stdin = label === 'jsonl';
        const importArgs = ['import', stdin ? '-' : file,
                            '--config', fresh.configPath];
        const r3 = await runHalo(importArgs, stdin
            ? { input: readFileSync(file) } : {});
        assert.equal(r3.code, 0, describeRun(importArgs, r3));

        const sql = `SELECT * FROM spans WHERE trace_id = ${lit(traceId)} ` +
                    'ORDER BY span_id';
        const original = await query(cfg.dbPath, sql);
        const copy = await query(fresh.dbPath, sql);
        assert.equal(exported.length, original.length, 'spans exported');
        assert.equal(copy.length, original.length, 'spans re-imported');
        for (let i = 0; i < original.length; i++) {
            const diff = Object.keys({ ...original[i], ...copy[i] })
                .filter((k) => JSON.stringify(original[i][k]) !==
                               JSON.stringify(copy[i][k]))
                .map((k) => `${k}: ${JSON.stringify(original[i][k])} != ` +
                            `${JSON.stringify(copy[i][k])}`);
            assert.deepEqual(diff, [],
                             `span ${original[i].name} (${original[i].span_id}) ` +
                                 'differs after export + import');
        }
        const tsql = `SELECT * FROM traces WHERE trace_id = ${lit(traceId)}`;
        assert.deepEqual(await query(fresh.dbPath, tsql),
                         await query(cfg.dbPath, tsql),
                         'traces rollup identical after export + import');
    }

    it('export -> import into a fresh store gives identical rows (OTLP trace)',
       { timeout: 30000 }, async () => {
           await roundTrip(a[1].traceId, 'otlp');
       });

    it('export -> import into a fresh store gives identical rows (JSONL trace)',
       { timeout: 30000 }, async () => {
           await roundTrip(b[0].traceId, 'jsonl');
       });

    it('export of an unknown trace id fails (exit 1)', async () => {
        const args = ['export', '--trace-id', 'ab'.repeat(16), '--db', cfg.dbPath];
        const r = await runHalo(args);
        assert.equal(r.code, 1, describeRun(args, r));
    });

    it('export of a malformed trace id is a usage error (exit 2)', async () => {
        const args = ['export', '--trace-id', 'xyz', '--db', cfg.dbPath];
        const r = await runHalo(args);
        assert.equal(r.code, 2, describeRun(args, r));
    });
});
