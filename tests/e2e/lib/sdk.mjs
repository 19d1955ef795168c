/*
 * sdk.mjs -- the official OpenTelemetry JS SDK as a client of halo.
 *
 * `sdkClient()` builds a BasicTracerProvider whose span processor feeds one
 * of the three OTLP exporters (gRPC, HTTP/protobuf, HTTP/JSON), optionally
 * gzip-compressed. The exporter is wrapped in a RecordingExporter that
 * keeps every ExportResult and the spans of successful exports: the SDK
 * swallows export errors (forceFlush resolves either way), so the tests
 * assert on what the recorder saw instead.
 *
 * Spans are created with explicit parent contexts (trace.setSpan), so no
 * global context manager is needed, and with explicit start/end times so
 * durations are exact.
 */
import { trace, ROOT_CONTEXT, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor,
         SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

export { SpanKind, SpanStatusCode, CompressionAlgorithm };

/* Delegates to an OTLP exporter and records what happened. */
export class RecordingExporter {
    constructor(inner) {
        this.inner = inner;
        this.results = []; /* every ExportResult */
        this.exported = []; /* ReadableSpans of successful exports */
    }

    export(spans, done) {
        this.inner.export(spans, (result) => {
            this.results.push(result);
            if (result.code === ExportResultCode.SUCCESS) {
                this.exported.push(...spans);
            }
            done(result);
        });
    }

    failures() {
        return this.results.filter((r) => r.code !== ExportResultCode.SUCCESS)
            .map((r) => (r.error ? r.error.message || String(r.error) : 'failed'));
    }

    forceFlush() {
        return this.inner.forceFlush ? this.inner.forceFlush() : Promise.resolve();
    }

    shutdown() { return this.inner.shutdown(); }
}

/*
 * An OTLP exporter for `transport` ('grpc' | 'proto' | 'json') pointed at
 * the daemon. `gzip` turns on compression.
 */
export function otlpExporter(halo, transport, { gzip = false,
                                                timeoutMillis = 10000 } = {}) {
    const compression = gzip ? CompressionAlgorithm.GZIP
                             : CompressionAlgorithm.NONE;
    switch (transport) {
    case 'grpc':
        return new GrpcExporter({ url: halo.grpcUrl, compression,
                                  timeoutMillis });
    case 'proto':
        return new ProtoExporter({ url: halo.tracesUrl, compression,
                                   timeoutMillis });
    case 'json':
        return new JsonExporter({ url: halo.tracesUrl, compression,
                                  timeoutMillis });
    default:
        throw new Error(`unknown transport ${transport}`);
    }
}

/*
 * A tracer provider for one resource, exporting through `transport`.
 * processor: 'batch' (one export per flush: whole traces travel together)
 * or 'simple' (one export per ended span: children before their root).
 * timeoutMillis bounds one export including the exporter's own retries
 * (its retry loop stops at this deadline).
 * Returns { tracer, recorder, flush(), shutdown() }.
 */
export function sdkClient(halo, { transport, gzip = false, resource,
                                  processor = 'batch',
                                  timeoutMillis = 10000 }) {
    const recorder = new RecordingExporter(
        otlpExporter(halo, transport, { gzip, timeoutMillis }));
    const sp = processor === 'simple'
        ? new SimpleSpanProcessor(recorder)
        : new BatchSpanProcessor(recorder, { maxExportBatchSize: 512,
                                             maxQueueSize: 4096,
                                             scheduledDelayMillis: 60000 });
    const provider = new BasicTracerProvider({
        resource: resourceFromAttributes(resource),
        spanProcessors: [sp],
    });
    const tracer = provider.getTracer('halo-e2e', '1.0.0');
    return {
        tracer,
        recorder,
        flush: () => provider.forceFlush(),
        shutdown: () => provider.shutdown(),
    };
}

/*
 * Create a tree of spans from a plain description and end them all:
 *   { name, kind, attributes, start, end, error, children: [...] }
 * start/end are milliseconds relative to `baseMs`. Children end before
 * their parent (as in real code). Returns a flat list of
 * { node, span, traceId, spanId, parentSpanId } in creation order.
 */
export function emitTree(tracer, root, baseMs = Date.now() - 2000) {
    const out = [];
    const visit = (node, parentSpan) => {
        const ctx = parentSpan ? trace.setSpan(ROOT_CONTEXT, parentSpan)
                               : ROOT_CONTEXT;
        const span = tracer.startSpan(node.name, {
            kind: node.kind ?? SpanKind.INTERNAL,
            attributes: node.attributes || {},
            /* Dates, not numbers: a number below performance.timeOrigin
             * would be read as a performance.now() offset */
            startTime: new Date(baseMs + node.start),
        }, ctx);
        const sc = span.spanContext();
        const rec = { node, span, traceId: sc.traceId, spanId: sc.spanId,
                      parentSpanId: parentSpan
                          ? parentSpan.spanContext().spanId : null };
        out.push(rec);
        for (const child of node.children || []) visit(child, span);
        if (node.error) {
            span.setStatus({ code: SpanStatusCode.ERROR, message: node.error });
        } else if (node.ok) {
            span.setStatus({ code: SpanStatusCode.OK });
        }
        span.end(new Date(baseMs + node.end));
    };
    visit(root, null);
    return out;
}
