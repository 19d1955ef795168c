/*
 * analyzer_pg.test.mjs -- the analyzer's accuracy against a real
 * PostgreSQL 15 store (lib/pg.mjs, the daemon's postgres exporter): one
 * smaller labeled case than analyzer.test.mjs (three agents with patterns
 * and a clean one, ~120 runs each, gen_ai.* over gRPC), the same rule --
 * every injected pattern found with recall and precision >= 0.9 of its
 * runs, nothing that was not injected, nothing on the clean agent -- and
 * saving a report into the PostgreSQL reports table and reports_dir, read
 * back with `halo reports list/show`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { checkSavedReport, runCase,
         startAnalyzerDaemon } from './lib/analyzer_suite.mjs';
import { PgServer } from './lib/pg.mjs';

const CASE = {
    name: 'PG', seed: 44, convention: 'genai', transport: 'grpc',
    agents: [
        { id: 'pg-support', runs: 130, rag: true,
          tools: ['search_articles', 'get_subscription', 'send_reply'],
          models: ['gpt-4.1-mini'],
          patterns: [
              { kind: 'tool_retry_loop', rate: 0.25, tool: 'search_articles', mode: 'mixed' },
              { kind: 'silent_failure', rate: 0.10, tool: 'get_subscription' },
              { kind: 'cost_regression', at: 0.5, to: 'gpt-4.1' },
          ] },
        { id: 'pg-ops', runs: 120,
          tools: ['check_health', 'search_logs', 'open_ticket'],
          models: ['claude-3-5-haiku'],
          patterns: [
              { kind: 'error_cluster', rate: 0.20, tool: 'check_health',
                message: 'order {n} not found in db shard {k}' },
              { kind: 'unknown_tool', rate: 0.10, names: ['restart_service'] },
              { kind: 'slow_span', rate: 0.30, tool: 'check_health' },
          ] },
        { id: 'pg-writer', runs: 120, llmCalls: [4, 7],
          tools: ['fetch_source', 'search_style_guide'],
          models: ['mistral-small-latest'],
          patterns: [
              { kind: 'context_growth', rate: 0.10 },
              { kind: 'invalid_tool_input', rate: 0.08, tool: 'fetch_source' },
              { kind: 'duplicate_tool_call', rate: 0.25, tool: 'search_style_guide' },
              { kind: 'latency_regression', at: 0.55 },
          ] },
        { id: 'pg-clean', runs: 110, tools: ['get_weather', 'search_news'],
          models: ['gpt-4o-mini'], patterns: [] },
    ],
};

describe('analyzer accuracy on PostgreSQL', { timeout: 240000 }, () => {
    let pg;
    let halo;
    let result;

    before(async () => {
        pg = await PgServer.start();
        const store = await pg.createDb('analyzer');
        halo = await startAnalyzerDaemon({ store });
    });

    after(async () => {
        try {
            if (halo) await halo.cleanup();
        } finally {
            if (pg) await pg.stop();
        }
    });

    it('finds every injected pattern (recall and precision >= 0.9) and nothing ' +
       'on the clean agent', { timeout: 120000 }, async () => {
        result = await runCase(halo, CASE);
        console.log(result.table);
        assert.deepEqual(result.failures, [],
                         `case ${CASE.name}:\n${result.failures.join('\n')}\n\n` +
                         result.table);
    });

    it('saves the report into the PostgreSQL reports table and reports_dir; ' +
       'halo reports list/show', { timeout: 60000 }, async () => {
        assert.ok(result, 'the accuracy test ran first');
        await checkSavedReport(halo, 'pg-ops', 'pg-clean', result.window);
    });
});
