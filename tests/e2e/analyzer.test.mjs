/*
 * analyzer.test.mjs -- the analyzer's accuracy on labeled corpora, and the
 * `halo analyze` / `halo reports` CLI, against `halo serve` with the
 * embedded SQLite store.
 *
 * Three cases, each its own daemon, differ in seed, semantic convention
 * (OpenInference, gen_ai.*), OTLP transport (gRPC, HTTP/protobuf + gzip,
 * HTTP/JSON), tool names, models and pattern rates: every one of the ten
 * finding kinds is injected at two rates at least (5-10% and 25-40% of an
 * agent's runs; change points at 45-70% of the window). Each case has four
 * agents with patterns and one clean agent (noise only: latency jitter,
 * transient tool errors that recovered, natural context growth). For each
 * agent `halo analyze --format json --no-save` must give a valid
 * halo.report/v1 whose findings find every injected pattern with recall
 * and precision >= 0.9 (lib/analyzer_suite.mjs), report nothing that was
 * not injected, and nothing at all for the clean agent. The per-case
 * table of recall/precision per kind is printed either way.
 *
 * With the first case's data the CLI tests: the Markdown layout
 * (lib/report_check.mjs), saving into reports_dir and the reports table
 * (`halo reports list/show`), a window without runs, bad flags.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { describeRun, runHalo } from './lib/cli.mjs';
import { analyzeArgs, analyzeJson, checkSavedReport, recentWindow, runCase,
         startAnalyzerDaemon } from './lib/analyzer_suite.mjs';
import { checkMarkdown, checkReport, isoSecond } from './lib/report_check.mjs';

const CASES = [
    {
        name: 'A', seed: 11, convention: 'openinference', transport: 'grpc',
        agents: [
            { id: 'support-agent', runs: 200, rag: true,
              tools: ['search_kb', 'get_order', 'send_email', 'calc'],
              models: ['claude-3-5-haiku'],
              patterns: [
                  { kind: 'tool_retry_loop', rate: 0.30, tool: 'search_kb', mode: 'error' },
                  { kind: 'silent_failure', rate: 0.08, tool: 'get_order' },
                  { kind: 'duplicate_tool_call', rate: 0.06, tool: 'send_email' },
                  { kind: 'cost_regression', at: 0.45, to: 'claude-3-5-sonnet' },
              ] },
            { id: 'research-agent', runs: 180,
              tools: ['web_search', 'lookup_paper', 'fetch_page'],
              models: ['gpt-4.1-mini'],
              patterns: [
                  { kind: 'slow_span', rate: 0.35, tool: 'web_search' },
                  { kind: 'invalid_tool_input', rate: 0.07, tool: 'lookup_paper' },
                  { kind: 'unknown_tool', rate: 0.30,
                    names: ['browse_web', 'web_search_v2'] },
              ] },
            { id: 'billing-agent', runs: 180,
              tools: ['get_invoice', 'search_policies', 'notify_customer'],
              models: ['gpt-4o-mini'],
              patterns: [
                  { kind: 'context_growth', rate: 0.08 },
                  { kind: 'error_cluster', rate: 0.30, tool: 'get_invoice',
                    message: 'order {n} not found in db shard {k}' },
              ] },
            { id: 'ops-agent', runs: 160, llmCalls: [4, 7],
              tools: ['check_status', 'search_runbooks', 'create_ticket'],
              models: ['mistral-small-latest'],
              patterns: [
                  { kind: 'latency_regression', at: 0.60 },
                  { kind: 'silent_failure', rate: 0.30, tool: 'check_status' },
              ] },
            { id: 'faq-bot', runs: 170, rag: true, tools: ['search_faq', 'get_account'],
              models: ['gpt-4o-mini'], patterns: [] },
        ],
    },
    {
        name: 'B', seed: 22, convention: 'genai', transport: 'proto', gzip: true,
        agents: [
            { id: 'triage-bot', runs: 200,
              tools: ['find_similar_tickets', 'get_customer', 'assign_ticket'],
              models: ['gpt-4.1-mini'],
              patterns: [
                  { kind: 'tool_retry_loop', rate: 0.07, tool: 'get_customer', mode: 'empty' },
                  { kind: 'slow_span', rate: 0.08, tool: 'find_similar_tickets' },
                  { kind: 'context_growth', rate: 0.30 },
              ] },
            { id: 'sales-assistant', runs: 180,
              tools: ['search_products', 'get_quote', 'send_offer', 'convert_currency'],
              models: ['claude-3-5-haiku'],
              patterns: [
                  { kind: 'duplicate_tool_call', rate: 0.30, tool: 'search_products' },
                  { kind: 'invalid_tool_input', rate: 0.28, tool: 'get_quote' },
                  { kind: 'unknown_tool', rate: 0.06, names: ['lookup_crm'] },
              ] },
            { id: 'data-agent', runs: 180, llmCalls: [4, 7], rag: true,
              tools: ['query_warehouse', 'fetch_dashboard', 'compute_stats'],
              models: ['gemini-1.5-flash'],
              patterns: [
                  { kind: 'error_cluster', rate: 0.07, tool: 'query_warehouse',
                    message: 'inventory service returned 500 for sku {n} in warehouse {k}' },
                  { kind: 'latency_regression', at: 0.45 },
              ] },
            { id: 'mailer', runs: 160, tools: ['search_contacts', 'send_mail'],
              models: ['mistral-small-latest'],
              patterns: [
                  { kind: 'cost_regression', at: 0.65, to: 'mistral-large-latest' },
                  { kind: 'silent_failure', rate: 0.10, tool: 'send_mail' },
              ] },
            { id: 'hello-bot', runs: 150, rag: true, tools: ['get_weather', 'search_news'],
              models: ['gpt-4o-mini'], patterns: [] },
        ],
    },
    {
        name: 'C', seed: 33, convention: 'openinference', transport: 'json',
        agents: [
            { id: 'router', runs: 220, nesting: 'chain',
              tools: ['search_web', 'read_url', 'calculator'],
              models: ['gpt-4.1-mini'],
              patterns: [
                  { kind: 'tool_retry_loop', rate: 0.40, tool: 'search_web', mode: 'mixed' },
                  { kind: 'unknown_tool', rate: 0.10, names: ['web_browse'] },
              ] },
            { id: 'claims-agent', runs: 200, nesting: 'chain',
              tools: ['get_claim', 'search_policy', 'email_adjuster'],
              models: ['gpt-4.1-mini'],
              patterns: [
                  { kind: 'error_cluster', rate: 0.38, tool: 'get_claim',
                    message: 'claim {n} not found in db shard {k}' },
                  { kind: 'duplicate_tool_call', rate: 0.08, tool: 'search_policy' },
                  { kind: 'cost_regression', at: 0.55, to: 'gpt-4.1' },
              ] },
            { id: 'planner', runs: 180, llmCalls: [4, 7],
              tools: ['search_calendar', 'book_meeting', 'get_profile'],
              models: ['claude-3-5-sonnet'],
              patterns: [
                  { kind: 'latency_regression', at: 0.70 },
                  { kind: 'silent_failure', rate: 0.25, tool: 'get_profile' },
              ] },
            { id: 'doc-agent', runs: 160, nesting: 'chain', rag: true,
              tools: ['search_docs', 'fetch_doc', 'compute_metrics'],
              models: ['mistral-large-latest'],
              patterns: [
                  { kind: 'context_growth', rate: 0.06 },
                  { kind: 'invalid_tool_input', rate: 0.10, tool: 'fetch_doc' },
                  { kind: 'slow_span', rate: 0.30, tool: 'search_docs' },
              ] },
            { id: 'status-bot', runs: 150, nesting: 'chain',
              tools: ['get_status', 'search_incidents', 'notify_oncall'],
              models: ['claude-3-5-haiku'], patterns: [] },
        ],
    },
];

for (const c of CASES) {
    describe(`analyzer accuracy, case ${c.name} (${c.convention} over ${c.transport})`,
             { timeout: 120000 }, () => {
        let halo;
        let result;

        before(async () => {
            halo = await startAnalyzerDaemon();
        });

        after(async () => {
            if (halo) await halo.cleanup();
        });

        it('finds every injected pattern (recall and precision >= 0.9) and nothing ' +
           'on the clean agent', { timeout: 90000 }, async () => {
            result = await runCase(halo, c);
            console.log(result.table);
            assert.deepEqual(result.failures, [], `case ${c.name}:\n` +
                             `${result.failures.join('\n')}\n\n${result.table}`);
        });

        if (c.name !== 'A') return;

        it('--format md renders the report layout', { timeout: 30000 }, async () => {
            assert.ok(result, 'the accuracy test ran first');
            for (const agent of ['support-agent', 'faq-bot']) {
                const args = analyzeArgs(halo, agent, result.window, { format: 'md' });
                const r = await runHalo(args, { timeoutMs: 60000 });
                assert.equal(r.code, 0, describeRun(args, r));
                const problems = checkMarkdown(r.stdout, result.reports[agent]);
                assert.deepEqual(problems, [], `${describeRun(args, r)}\n` +
                                               problems.join('\n'));
            }
        });

        it('saves into reports_dir/<agent>/manual and the reports table; ' +
           'halo reports list/show', { timeout: 30000 },
           async () => {
               assert.ok(result, 'the accuracy test ran first');
               await checkSavedReport(halo, 'research-agent', 'faq-bot', result.window);
           });

        it('a window without runs gives a report without findings',
           { timeout: 30000 }, async () => {
            const day = 24 * 3600 * 1000;
            const recent = result ? result.window : recentWindow();
            const empty = { start: recent.start - 3 * day, end: recent.start - 2 * day };
            for (const [agent, window] of [['support-agent', empty],
                                           ['nobody-agent', recent]]) {
                const { report, run } = await analyzeJson(halo, agent, window);
                assert.match(run.stderr,
                             new RegExp(`no runs of agent "${agent}" in this window`),
                             'says so, and where the agents are listed');
                assert.deepEqual(checkReport(report, { agent, schedule: 'manual',
                                                       windowStart: window.start,
                                                       windowEnd: window.end }), []);
                assert.equal(report.stats.traces, 0, `${agent}: stats.traces`);
                assert.deepEqual(report.findings, [], `${agent}: findings`);
            }
        });

        it('bad flags exit 2 with a message', { timeout: 30000 }, async () => {
            const base = ['analyze', '--config', halo.configPath];
            const end = isoSecond(recentWindow().end);
            const cases = [
                [[...base, '--window', '24h', '--end', end], /agent/i],
                [[...base, '--agent', 'faq-bot', '--window', 'yesterday'], /window/i],
                [[...base, '--agent', 'faq-bot', '--window', '0s'], /window/i],
                [[...base, '--agent', 'faq-bot', '--end', 'next tuesday'], /end/i],
                [[...base, '--agent', 'faq-bot', '--format', 'xml'], /format/i],
                [[...base, '--agent', 'faq-bot', '--frobnicate'], /frobnicate/],
                [[...base, '--agent'], /agent/i],
            ];
            for (const [args, re] of cases) {
                const r = await runHalo(args);
                assert.equal(r.code, 2, describeRun(args, r));
                assert.match(r.stderr, re, describeRun(args, r));
            }
        });
    });
}
