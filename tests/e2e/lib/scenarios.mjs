/*
 * scenarios.mjs -- the three agent runs of ingest.test.mjs (each a nested
 * agent -> llm -> tool tree written in a different semantic convention,
 * with the normalized fields DESIGN §5 derives from it), shared so other
 * test files (the Kafka pipeline) send exactly the same spans and check
 * the same fields.
 *
 *   - "support-agent": OpenInference (openinference.span.kind, llm.*, ...)
 *   - "planner-001"  : OTel GenAI (gen_ai.operation.name, gen_ai.agent.*, ...)
 *   - "billing-bot"  : nothing but the resource's service.name
 *
 * A scenario: the resource, the span tree to emit (lib/sdk.mjs emitTree),
 * and per span name the normalized fields the store must hold. `tag`
 * makes sessions unique per run. Times are ms relative to the run's base
 * (durations are exact). ingest.test.mjs and the Kafka tests use it.
 */
import assert from 'node:assert/strict';
import { emitTree, sdkClient, SpanKind } from './sdk.mjs';

export const SCENARIOS = {
    openinference: (tag) => ({
        agentId: 'support-agent',
        resource: { 'service.name': 'oi-service' },
        tree: {
            name: 'support-agent.run', kind: SpanKind.SERVER, start: 0, end: 1000,
            attributes: {
                'openinference.span.kind': 'AGENT',
                'agent.name': 'support-agent',
                'session.id': `oi-session-${tag}`,
                'user.id': 'alice',
                'input.value': 'where is my order?',
                'output.value': 'it ships tomorrow',
            },
            children: [
                {
                    name: 'llm.plan', kind: SpanKind.CLIENT, start: 100, end: 400,
                    attributes: {
                        'openinference.span.kind': 'LLM',
                        'llm.model_name': 'gpt-4o-mini',
                        'llm.token_count.prompt': 120,
                        'llm.token_count.completion': 30,
                    },
                    children: [{
                        name: 'tool.lookup_order', start: 200, end: 300,
                        error: 'order db timeout',
                        attributes: {
                            'openinference.span.kind': 'TOOL',
                            'tool.name': 'lookup_order',
                        },
                    }],
                },
                {
                    name: 'llm.answer', kind: SpanKind.CLIENT, start: 500, end: 900,
                    attributes: {
                        'openinference.span.kind': 'LLM',
                        'llm.model_name': 'gpt-4o-mini',
                        'llm.token_count.prompt': 200,
                        'llm.token_count.completion': 40,
                    },
                },
            ],
        },
        common: { agent_id: 'support-agent', agent_name: 'support-agent',
                  session_id: `oi-session-${tag}`, user_id: 'alice',
                  service_name: 'oi-service' },
        spans: {
            'support-agent.run': { span_type: 'AGENT', model: null, tool_name: null,
                                   input_tokens: null, output_tokens: null,
                                   status_code: 'UNSET', duration_ms: 1000,
                                   input: 'where is my order?',
                                   output: 'it ships tomorrow' },
            'llm.plan': { span_type: 'LLM', model: 'gpt-4o-mini', tool_name: null,
                          input_tokens: 120, output_tokens: 30,
                          status_code: 'UNSET', duration_ms: 300 },
            'tool.lookup_order': { span_type: 'TOOL', model: null,
                                   tool_name: 'lookup_order', input_tokens: null,
                                   output_tokens: null, status_code: 'ERROR',
                                   status_message: 'order db timeout',
                                   duration_ms: 100 },
            'llm.answer': { span_type: 'LLM', model: 'gpt-4o-mini', tool_name: null,
                            input_tokens: 200, output_tokens: 40,
                            status_code: 'UNSET', duration_ms: 400 },
        },
        rollup: { agent_id: 'support-agent', agent_name: 'support-agent',
                  session_id: `oi-session-${tag}`, user_id: 'alice',
                  root_name: 'support-agent.run', duration_ms: 1000,
                  span_count: 4, error_count: 1, llm_calls: 2, tool_calls: 1,
                  input_tokens: 320, output_tokens: 70 },
    }),

    genai: (tag) => ({
        agentId: 'planner-001',
        resource: { 'service.name': 'genai-service' },
        tree: {
            name: 'invoke_agent planner', kind: SpanKind.SERVER, start: 0, end: 1000,
            ok: true,
            attributes: {
                'gen_ai.operation.name': 'invoke_agent',
                'gen_ai.agent.id': 'planner-001',
                'gen_ai.agent.name': 'planner-agent',
                'gen_ai.conversation.id': `conv-${tag}`,
                'enduser.id': 'bob',
            },
            children: [
                {
                    name: 'chat gpt-4.1', kind: SpanKind.CLIENT, start: 100, end: 600,
                    attributes: {
                        'gen_ai.operation.name': 'chat',
                        'gen_ai.request.model': 'gpt-4.1',
                        'gen_ai.response.model': 'gpt-4.1-2025-04-14',
                        'gen_ai.usage.input_tokens': 500,
                        'gen_ai.usage.output_tokens': 80,
                    },
                    children: [{
                        name: 'execute_tool get_weather', start: 200, end: 350,
                        attributes: {
                            'gen_ai.operation.name': 'execute_tool',
                            'gen_ai.tool.name': 'get_weather',
                        },
                    }],
                },
                {
                    name: 'chat final', kind: SpanKind.CLIENT, start: 650, end: 950,
                    attributes: {
                        'gen_ai.operation.name': 'chat',
                        'gen_ai.request.model': 'gpt-4.1',
                        'gen_ai.usage.input_tokens': 700,
                        'gen_ai.usage.output_tokens': 120,
                    },
                },
            ],
        },
        common: { agent_id: 'planner-001', agent_name: 'planner-agent',
                  session_id: `conv-${tag}`, user_id: 'bob',
                  service_name: 'genai-service' },
        spans: {
            'invoke_agent planner': { span_type: 'AGENT', model: null,
                                      tool_name: null, input_tokens: null,
                                      output_tokens: null, status_code: 'OK',
                                      duration_ms: 1000 },
            'chat gpt-4.1': { span_type: 'LLM', model: 'gpt-4.1-2025-04-14',
                              tool_name: null, input_tokens: 500,
                              output_tokens: 80, status_code: 'UNSET',
                              duration_ms: 500 },
            'execute_tool get_weather': { span_type: 'TOOL', model: null,
                                          tool_name: 'get_weather',
                                          input_tokens: null, output_tokens: null,
                                          status_code: 'UNSET', duration_ms: 150 },
            'chat final': { span_type: 'LLM', model: 'gpt-4.1', tool_name: null,
                            input_tokens: 700, output_tokens: 120,
                            status_code: 'UNSET', duration_ms: 300 },
        },
        rollup: { agent_id: 'planner-001', agent_name: 'planner-agent',
                  session_id: `conv-${tag}`, user_id: 'bob',
                  root_name: 'invoke_agent planner', duration_ms: 1000,
                  span_count: 4, error_count: 0, llm_calls: 2, tool_calls: 1,
                  input_tokens: 1200, output_tokens: 200 },
    }),

    service: () => ({
        agentId: 'billing-bot',
        resource: { 'service.name': 'billing-bot' },
        tree: {
            name: 'handle_invoice', kind: SpanKind.SERVER, start: 0, end: 1000,
            children: [
                {
                    name: 'complete', kind: SpanKind.CLIENT, start: 100, end: 400,
                    attributes: {
                        'gen_ai.operation.name': 'text_completion',
                        'gen_ai.request.model': 'claude-e2e',
                        'gen_ai.usage.prompt_tokens': 50,
                        'gen_ai.usage.completion_tokens': 5,
                    },
                    children: [{
                        name: 'lookup', start: 200, end: 300,
                        error: 'invoice not found',
                        attributes: { 'tool.name': 'lookup_invoice' },
                    }],
                },
                { name: 'db.query', kind: SpanKind.CLIENT, start: 500, end: 600 },
            ],
        },
        common: { agent_id: 'billing-bot', agent_name: 'billing-bot',
                  session_id: null, user_id: null, service_name: 'billing-bot' },
        spans: {
            handle_invoice: { span_type: 'UNKNOWN', model: null, tool_name: null,
                              input_tokens: null, output_tokens: null,
                              status_code: 'UNSET', duration_ms: 1000 },
            complete: { span_type: 'LLM', model: 'claude-e2e', tool_name: null,
                        input_tokens: 50, output_tokens: 5,
                        status_code: 'UNSET', duration_ms: 300 },
            lookup: { span_type: 'TOOL', model: null, tool_name: 'lookup_invoice',
                      input_tokens: null, output_tokens: null,
                      status_code: 'ERROR', status_message: 'invoice not found',
                      duration_ms: 100 },
            'db.query': { span_type: 'UNKNOWN', model: null, tool_name: null,
                          input_tokens: null, output_tokens: null,
                          status_code: 'UNSET', duration_ms: 100 },
        },
        rollup: { agent_id: 'billing-bot', agent_name: 'billing-bot',
                  session_id: null, user_id: null, root_name: 'handle_invoice',
                  duration_ms: 1000, span_count: 4, error_count: 1,
                  llm_calls: 1, tool_calls: 1, input_tokens: 50,
                  output_tokens: 5 },
    }),
};

export const TRANSPORTS = ['grpc', 'proto', 'json'];

/* ---- comparing rows ------------------------------------------------------ */

/* Tokens absent from a span may be stored as NULL or 0. */
const TOKEN_FIELDS = new Set(['input_tokens', 'output_tokens']);

/* Numbers may come back as REAL (1000.0) or INTEGER; compare as numbers. */
function same(field, actual, expected) {
    if (expected === null && TOKEN_FIELDS.has(field)) {
        return actual === null || actual === 0;
    }
    if (typeof expected === 'number' && typeof actual === 'number') {
        return Math.abs(actual - expected) < 1e-6;
    }
    return actual === expected;
}

/* Every field of `expected` in `row`; one message listing all mismatches. */
export function assertFields(row, expected, what) {
    const bad = [];
    for (const [field, want] of Object.entries(expected)) {
        if (!(field in row)) bad.push(`${field}: column missing`);
        else if (!same(field, row[field], want)) {
            bad.push(`${field}: got ${JSON.stringify(row[field])}, ` +
                     `want ${JSON.stringify(want)}`);
        }
    }
    assert.equal(bad.length, 0, `${what}:\n  ${bad.join('\n  ')}`);
}

/*
 * Emit one scenario's span tree through the SDK to `halo` (anything with
 * grpcUrl / tracesUrl) and flush. Returns { records, done } at once; done
 * resolves, once the SDK gave up or succeeded, to { failures (messages),
 * exported (spans exported successfully) }. timeoutMillis bounds each
 * export including the SDK's retries.
 */
export function startRun(halo, scenario, { transport, gzip = false,
                                           processor = 'batch',
                                           timeoutMillis = 10000 }) {
    const client = sdkClient(halo, { transport, gzip, processor,
                                     resource: scenario.resource,
                                     timeoutMillis });
    const records = emitTree(client.tracer, scenario.tree);
    const done = (async () => {
        let flushError = null;
        try {
            await client.flush();
        } catch (e) {
            flushError = e;
        } finally {
            await client.shutdown().catch(() => {});
        }
        const failures = client.recorder.failures();
        if (flushError && failures.length === 0) {
            failures.push(flushError.message);
        }
        return { failures, exported: client.recorder.exported.length };
    })();
    return { records, done };
}
