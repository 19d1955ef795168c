/*
 * send-example.mjs -- the README's tour: send a few agent runs to halo with
 * the official OpenTelemetry JS SDK.
 *
 *   cd tests/e2e && npm ci && node send-example.mjs [grpc|proto|json] [URL]
 *
 * Defaults: OTLP/gRPC to http://127.0.0.1:4317 (proto/json go to
 * http://127.0.0.1:4318/v1/traces). Each run is an AGENT span with an LLM
 * call and a tool call under it, in OpenInference attributes; one tool call
 * in three fails.
 */
import { context, trace, SpanStatusCode } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

const transport = process.argv[2] || 'grpc';
const url = process.argv[3] ||
    (transport === 'grpc' ? 'http://127.0.0.1:4317' : 'http://127.0.0.1:4318/v1/traces');
const Exporter = { grpc: GrpcExporter, proto: ProtoExporter, json: JsonExporter }[transport];
if (!Exporter) {
    console.error(`usage: node send-example.mjs [grpc|proto|json] [URL]`);
    process.exit(2);
}

const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'support-agent' }),
    spanProcessors: [new BatchSpanProcessor(new Exporter({ url }))],
});
const tracer = provider.getTracer('halo-tour');

for (let run = 0; run < 6; run++) {
    const root = tracer.startSpan('support run', {
        attributes: { 'openinference.span.kind': 'AGENT', 'agent.name': 'support-agent',
                      'session.id': `session-${run % 2}`, 'user.id': 'user-42',
                      'input.value': 'my order never arrived' },
    });
    const ctx = trace.setSpan(context.active(), root);
    const llm = tracer.startSpan('chat gpt-4o', {
        attributes: { 'openinference.span.kind': 'LLM', 'llm.model_name': 'gpt-4o',
                      'llm.token_count.prompt': 812 + run * 40,
                      'llm.token_count.completion': 64 },
    }, ctx);
    llm.end();
    const tool = tracer.startSpan('lookup_order', {
        attributes: { 'openinference.span.kind': 'TOOL', 'tool.name': 'lookup_order',
                      'input.value': '{"order_id": 1234}' },
    }, ctx);
    if (run % 3 === 0) {
        tool.setStatus({ code: SpanStatusCode.ERROR, message: 'order service timed out' });
    } else {
        tool.setAttribute('output.value', '{"status": "shipped"}');
    }
    tool.end();
    root.end();
}
await provider.forceFlush();
await provider.shutdown();
console.log(`sent 6 runs (18 spans) over ${transport} to ${url}`);
