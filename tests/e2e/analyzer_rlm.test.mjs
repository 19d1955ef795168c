/*
 * analyzer_rlm.test.mjs -- `halo analyze` with a model: the RLM engine
 * wired into the CLI, against the scripted OpenAI-compatible server
 * (tests/llm_mock, its own process) over runs sent with the OpenTelemetry
 * JS SDK. The model's tool calls run and their results reach it; its
 * final_report becomes the report (mode "rlm", invented trace ids dropped,
 * a finding that explains a detector's finding lends it its words); the
 * exchange is kept as a transcript beside the report; and an unreachable
 * model leaves the detectors' report with a note.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runHalo, describeRun } from './lib/cli.mjs';
import { allStored, buildCorpus, emitCorpus } from './lib/corpus.mjs';
import { startAnalyzerDaemon, recentWindow } from './lib/analyzer_suite.mjs';
import { toYaml, makeTempDir } from './lib/daemon.mjs';
import { freePorts, waitFor } from './lib/util.mjs';

const AGENT = 'rlm-support';

/* The mock server: started with a script (JSON lines), stopped by PID. */
async function startMock(dir, turns) {
    const script = join(dir, 'model.script');
    const record = join(dir, 'model.record');
    writeFileSync(script, turns.map((t) => JSON.stringify(t)).join('\n') + '\n');
    const bin = process.env.HALO_LLM_MOCK;
    assert.ok(bin, 'HALO_LLM_MOCK is not set: run through ctest');
    const child = spawn(bin, ['--script', script, '--record', record],
                        { stdio: ['ignore', 'pipe', 'inherit'] });
    const url = await new Promise((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error('mock did not start')),
                                 10000);
        child.stdout.on('data', (d) => {
            out += d;
            const m = /listening (\S+)/.exec(out);
            if (m) {
                clearTimeout(timer);
                resolve(`http://${m[1]}/v1`);
            }
        });
        child.on('exit', () => reject(new Error(`mock exited: ${out}`)));
    });
    return {
        url,
        requests: () => (existsSync(record) ? readFileSync(record, 'utf8') : '')
            .split('\n').filter(Boolean).map((l) => JSON.parse(l)),
        stop: () => new Promise((resolve) => {
            if (child.exitCode !== null) return resolve();
            child.on('exit', resolve);
            child.kill('SIGTERM');
        }),
    };
}

/* One scripted turn calling tools: [[name, args], ...]. */
const turn = (calls) => ({
    body: {
        choices: [{ index: 0, finish_reason: 'tool_calls', message: {
            role: 'assistant', content: null,
            tool_calls: calls.map(([name, args], i) => ({
                id: `call_${i}`, type: 'function',
                function: { name, arguments: JSON.stringify(args) } })) } }],
        usage: { prompt_tokens: 500, completion_tokens: 40 },
    },
});

describe('halo analyze with a model (RLM engine)', { timeout: 180000 }, () => {
    let halo;
    let corpus;
    const window = recentWindow();

    before(async () => {
        halo = await startAnalyzerDaemon();
        corpus = buildCorpus({
            seed: 61, convention: 'openinference', window,
            agents: [{ id: AGENT, runs: 80, tools: ['lookup_order', 'send_mail'],
                       models: ['gpt-4o-mini'],
                       patterns: [{ kind: 'tool_retry_loop', rate: 0.3,
                                    tool: 'lookup_order', mode: 'error' }] }],
        });
        await emitCorpus(halo, corpus, { transport: 'grpc' });
        await waitFor(() => allStored(halo.store, corpus),
                      { timeoutMs: 60000, intervalMs: 200, what: 'corpus stored' });
    });

    after(async () => { if (halo) await halo.stop(); });

    /* A configuration for `halo analyze`: the daemon's store, a model. */
    function modelConfig(dir, baseUrl) {
        const path = join(dir, 'rlm.yaml');
        writeFileSync(path, toYaml({
            exporters: { sqlite: { path: halo.dbPath } },
            analyzer: { store: 'sqlite', reports_dir: halo.reportsDir,
                        llm: { base_url: baseUrl, model: 'scripted',
                               timeout: '20s', max_retries: 1 } },
        }));
        return path;
    }

    const end = new Date(window.end).toISOString().replace(/\.\d+Z$/, 'Z');
    const hours = Math.round((window.end - window.start) / 3600000);

    it('runs the tools, drops invented ids, keeps a transcript', async () => {
        const dir = makeTempDir('halo-e2e-rlm-');
        const loops = [...corpus.truth[AGENT].tool_retry_loop];
        assert.ok(loops.length >= 10, 'the corpus has retry loops');
        const invented = 'f'.repeat(32);
        const mock = await startMock(dir, [
            turn([['sql', { query: 'SELECT count(*) AS n FROM traces' }],
                  ['detectors', {}]]),
            turn([['view_trace', { trace_id: loops[0] }]]),
            turn([['final_report', { findings: [
                { kind: 'tool_retry_loop', title: 'lookup_order is retried',
                  trace_ids: loops.slice(0, 4),
                  hypothesis: 'SCRIPTED: the order service rejects the id format',
                  recommendation: 'SCRIPTED: validate ids before calling' },
                { kind: 'answer_quality', title: 'answers ignore the order status',
                  trace_ids: [loops[1], loops[2], invented],
                  hypothesis: 'h', recommendation: 'r' },
            ] }]]),
        ]);
        try {
            const args = ['analyze', '--config', modelConfig(dir, mock.url),
                          '--agent', AGENT, '--window', `${hours}h`, '--end', end,
                          '--format', 'json'];
            const r = await runHalo(args, { timeoutMs: 60000 });
            assert.equal(r.code, 0, describeRun(args, r));
            const report = JSON.parse(r.stdout);
            assert.equal(report.mode, 'rlm');
            assert.equal(report.model, 'scripted');
            assert.equal(report.budget.llm_calls, 3);
            assert.equal(report.budget.input_tokens, 1500);
            const loop = report.findings.find((f) => f.kind === 'tool_retry_loop');
            assert.ok(loop, 'the detectors\' retry loop finding stays');
            assert.match(loop.hypothesis, /^SCRIPTED: the order service/);
            assert.ok(loop.evidence.trace_ids.length >= loops.length * 0.9);
            const other = report.findings.find((f) => f.kind === 'other');
            assert.ok(other, 'the model\'s own finding, kind "other"');
            assert.deepEqual(other.evidence.trace_ids.sort(),
                             [loops[1], loops[2]].sort(), 'the invented id dropped');
            /* the model saw each tool's result in the next request */
            const reqs = mock.requests();
            assert.equal(reqs.length, 3);
            const second = JSON.stringify(reqs[1].body.messages);
            assert.match(second, /\\n(\d+)\\n\(1 row\)/);
            assert.match(JSON.stringify(reqs[2].body.messages), new RegExp(loops[0]));
            /* the transcript beside the report */
            const base = join(halo.reportsDir, AGENT, 'manual',
                              new Date(window.start).toISOString()
                                  .replace(/\.\d+Z$/, 'Z'));
            const lines = readFileSync(`${base}.transcript.jsonl`, 'utf8')
                .split('\n').filter(Boolean);
            assert.ok(lines.length >= 8, `transcript lines: ${lines.length}`);
            assert.ok(existsSync(`${base}.json`) && existsSync(`${base}.md`));
        } finally {
            await mock.stop();
        }
    });

    it('answers a follow-up question on a saved report (reports chat)', async () => {
        const dir = makeTempDir('halo-e2e-rlm-');
        const loops = [...corpus.truth[AGENT].tool_retry_loop];
        const mock = await startMock(dir, [
            turn([['search', { query: 'lookup_order' }]]),
            turn([['answer', { answer: 'SCRIPTED: the ids are malformed',
                               trace_ids: [loops[0], 'f'.repeat(32)] }]]),
        ]);
        try {
            const config = modelConfig(dir, mock.url);
            const list = ['reports', 'list', '--config', config, '--agent', AGENT,
                          '--json'];
            const l = await runHalo(list);
            assert.equal(l.code, 0, describeRun(list, l));
            const [saved] = JSON.parse(l.stdout);
            assert.ok(saved, 'the report of the first test is stored');
            const args = ['reports', 'chat', saved.id, 'why does lookup_order fail?',
                          '--config', config];
            const r = await runHalo(args, { timeoutMs: 60000 });
            assert.equal(r.code, 0, describeRun(args, r));
            assert.match(r.stdout, /^SCRIPTED: the ids are malformed/);
            assert.ok(r.stdout.includes(loops[0]), 'the cited run');
            assert.ok(!r.stdout.includes('f'.repeat(32)), 'an invented run dropped');
            const reqs = mock.requests();
            assert.equal(reqs.length, 2);
            const first = JSON.stringify(reqs[0].body.messages);
            assert.match(first, /halo\.report\/v1/);
            assert.match(first, /why does lookup_order fail\?/);
            assert.match(JSON.stringify(reqs[1].body.messages), /lookup_order/);
            const bad = ['reports', 'chat', saved.id, '--config', config];
            const b = await runHalo(bad);
            assert.equal(b.code, 2, describeRun(bad, b));
        } finally {
            await mock.stop();
        }
    });

    it('falls back to the detectors when the model is unreachable', async () => {
        const dir = makeTempDir('halo-e2e-rlm-');
        const [port] = await freePorts(1); /* nobody listens there */
        const args = ['analyze', '--config',
                      modelConfig(dir, `http://127.0.0.1:${port}/v1`),
                      '--agent', AGENT, '--window', `${hours}h`, '--end', end,
                      '--format', 'md', '--no-save'];
        const r = await runHalo(args, { timeoutMs: 90000 });
        assert.equal(r.code, 0, describeRun(args, r));
        assert.match(r.stdout, /> \*\*Note:\*\* the model could not be used/);
        assert.match(r.stdout, /by the detectors/);
        assert.match(r.stdout, /tool_retry_loop/);
    });
});
