/*
 * otlp.mjs -- OTLP requests built by hand, for the tests that must control
 * every byte on the wire (bad input, crash safety, import files).
 *
 * One model: requests are plain objects in the OTLP/JSON shape
 * (resourceSpans[].scopeSpans[].spans[], hex ids, int64 as strings). From
 * it, `toJson()` gives the OTLP/HTTP JSON body and `toProtobuf()` the
 * ExportTraceServiceRequest wire bytes, written by a minimal protobuf
 * encoder below (field numbers from opentelemetry-proto trace.proto,
 * common.proto, resource.proto, trace_service.proto). The decoders read
 * ExportTraceServiceResponse and google.rpc.Status.
 *
 * Raw transports: `post()` (node:http, exact headers and body, never
 * throws on an HTTP error status) and `grpcUnary()` (@grpc/grpc-js with
 * identity (de)serializers, so any bytes can be sent to any method).
 */
import { request as httpRequest } from 'node:http';
import { gzipSync } from 'node:zlib';
import grpc from '@grpc/grpc-js';
import { nowNanos, randomSpanId, randomTraceId } from './util.mjs';

/* ---- building requests ------------------------------------------------ */

/* OTLP/JSON AnyValue for a JS value (integers become intValue). */
export function anyValue(v) {
    if (typeof v === 'string') return { stringValue: v };
    if (typeof v === 'boolean') return { boolValue: v };
    if (typeof v === 'bigint') return { intValue: v.toString() };
    if (typeof v === 'number') {
        return Number.isInteger(v) ? { intValue: String(v) }
                                   : { doubleValue: v };
    }
    if (Array.isArray(v)) return { arrayValue: { values: v.map(anyValue) } };
    if (v && typeof v === 'object') {
        return { kvlistValue: { values: attrs(v) } };
    }
    throw new Error(`cannot encode attribute value ${v}`);
}

/* {k: v} -> [{key, value}] */
export function attrs(obj = {}) {
    return Object.entries(obj).map(([key, v]) => ({ key, value: anyValue(v) }));
}

export const SPAN_KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4,
                           CONSUMER: 5 };
export const STATUS = { UNSET: 0, OK: 1, ERROR: 2 };

/*
 * One span in OTLP/JSON shape. Defaults: fresh ids, INTERNAL, a 10 ms
 * duration ending now, status UNSET.
 */
export function span({ traceId = randomTraceId(), spanId = randomSpanId(),
                       parentSpanId, name = 'span', kind = SPAN_KIND.INTERNAL,
                       start = nowNanos(-10), end = nowNanos(), attributes = {},
                       events = [], status } = {}) {
    const s = { traceId, spanId, name, kind, startTimeUnixNano: start,
                endTimeUnixNano: end, attributes: attrs(attributes) };
    if (parentSpanId) s.parentSpanId = parentSpanId;
    if (events.length) {
        s.events = events.map((e) => ({
            timeUnixNano: e.time || end, name: e.name,
            attributes: attrs(e.attributes || {}),
        }));
    }
    if (status) s.status = status;
    return s;
}

/* An ExportTraceServiceRequest with one resource and one scope. */
export function request(spans, { resource = { 'service.name': 'e2e' },
                                 scope = 'halo-e2e' } = {}) {
    return {
        resourceSpans: [{
            resource: { attributes: attrs(resource) },
            scopeSpans: [{ scope: { name: scope, version: '1.0.0' }, spans }],
        }],
    };
}

export const toJson = (req) => JSON.stringify(req);

/* ---- protobuf encoding -------------------------------------------------- */

/* A growable byte writer with the protobuf primitives. */
class PbWriter {
    constructor() { this.chunks = []; }

    bytes() { return Buffer.concat(this.chunks); }

    raw(buf) { this.chunks.push(buf); }

    varint(n) {
        let v = BigInt.asUintN(64, BigInt(n));
        const out = [];
        do {
            let b = Number(v & 0x7fn);
            v >>= 7n;
            if (v !== 0n) b |= 0x80;
            out.push(b);
        } while (v !== 0n);
        this.raw(Buffer.from(out));
    }

    tag(field, wire) { this.varint((field << 3) | wire); }

    /* length-delimited: bytes, strings, nested messages */
    ld(field, buf) {
        this.tag(field, 2);
        this.varint(buf.length);
        this.raw(buf);
    }

    string(field, s) {
        if (s !== undefined && s !== '') this.ld(field, Buffer.from(s, 'utf8'));
    }

    hex(field, h) {
        if (h) this.ld(field, Buffer.from(h, 'hex'));
    }

    uint(field, n) {
        if (n !== undefined && BigInt(n) !== 0n) {
            this.tag(field, 0);
            this.varint(n);
        }
    }

    fixed64(field, n) {
        if (n === undefined) return;
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(n)));
        this.tag(field, 1);
        this.raw(b);
    }

    double(field, x) {
        const b = Buffer.alloc(8);
        b.writeDoubleLE(x);
        this.tag(field, 1);
        this.raw(b);
    }

    message(field, obj, encode) {
        const w = new PbWriter();
        encode(w, obj);
        this.ld(field, w.bytes());
    }
}

function encAnyValue(w, v) {
    if ('stringValue' in v) w.ld(1, Buffer.from(v.stringValue, 'utf8'));
    else if ('boolValue' in v) { w.tag(2, 0); w.varint(v.boolValue ? 1 : 0); }
    else if ('intValue' in v) { w.tag(3, 0); w.varint(v.intValue); }
    else if ('doubleValue' in v) w.double(4, v.doubleValue);
    else if ('arrayValue' in v) {
        w.message(5, v.arrayValue, (w2, a) => {
            for (const x of a.values || []) w2.message(1, x, encAnyValue);
        });
    } else if ('kvlistValue' in v) {
        w.message(6, v.kvlistValue, (w2, l) => {
            for (const kv of l.values || []) w2.message(1, kv, encKeyValue);
        });
    } else if ('bytesValue' in v) {
        w.ld(7, Buffer.from(v.bytesValue, 'base64'));
    }
}

function encKeyValue(w, kv) {
    w.string(1, kv.key);
    w.message(2, kv.value, encAnyValue);
}

function encEvent(w, e) {
    w.fixed64(1, e.timeUnixNano);
    w.string(2, e.name);
    for (const kv of e.attributes || []) w.message(3, kv, encKeyValue);
}

function encSpan(w, s) {
    w.hex(1, s.traceId);
    w.hex(2, s.spanId);
    w.hex(4, s.parentSpanId);
    w.string(5, s.name);
    w.uint(6, s.kind);
    w.fixed64(7, s.startTimeUnixNano);
    w.fixed64(8, s.endTimeUnixNano);
    for (const kv of s.attributes || []) w.message(9, kv, encKeyValue);
    for (const e of s.events || []) w.message(11, e, encEvent);
    if (s.status) {
        w.message(15, s.status, (w2, st) => {
            w2.string(2, st.message);
            w2.uint(3, st.code);
        });
    }
}

function encScopeSpans(w, ss) {
    if (ss.scope) {
        w.message(1, ss.scope, (w2, sc) => {
            w2.string(1, sc.name);
            w2.string(2, sc.version);
        });
    }
    for (const s of ss.spans || []) w.message(2, s, encSpan);
}

function encResourceSpans(w, rs) {
    if (rs.resource) {
        w.message(1, rs.resource, (w2, r) => {
            for (const kv of r.attributes || []) w2.message(1, kv, encKeyValue);
        });
    }
    for (const ss of rs.scopeSpans || []) w.message(2, ss, encScopeSpans);
}

/* ExportTraceServiceRequest wire bytes for an OTLP/JSON-shaped request. */
export function toProtobuf(req) {
    const w = new PbWriter();
    for (const rs of req.resourceSpans || []) w.message(1, rs, encResourceSpans);
    return w.bytes();
}

/* ---- protobuf decoding (responses) ------------------------------------- */

/* Read the top-level fields of a message: [{field, wire, value}] where
 * value is a BigInt (varint), Buffer (length-delimited) or Buffer (fixed). */
export function pbFields(buf) {
    const out = [];
    let i = 0;
    const varint = () => {
        let v = 0n;
        let shift = 0n;
        for (;;) {
            if (i >= buf.length) throw new Error('truncated varint');
            const b = buf[i++];
            v |= BigInt(b & 0x7f) << shift;
            if (!(b & 0x80)) return v;
            shift += 7n;
            if (shift > 63n) throw new Error('varint too long');
        }
    };
    while (i < buf.length) {
        const key = Number(varint());
        const field = key >> 3;
        const wire = key & 7;
        let value;
        if (wire === 0) value = varint();
        else if (wire === 2) {
            const len = Number(varint());
            if (i + len > buf.length) throw new Error('truncated field');
            value = buf.subarray(i, i + len);
            i += len;
        } else if (wire === 1) { value = buf.subarray(i, i + 8); i += 8; }
        else if (wire === 5) { value = buf.subarray(i, i + 4); i += 4; }
        else throw new Error(`unsupported wire type ${wire}`);
        out.push({ field, wire, value });
    }
    return out;
}

/* google.rpc.Status bytes -> { code, message } */
export function decodeRpcStatus(buf) {
    const st = { code: 0, message: '' };
    for (const f of pbFields(buf)) {
        if (f.field === 1 && f.wire === 0) st.code = Number(f.value);
        if (f.field === 2 && f.wire === 2) st.message = f.value.toString('utf8');
    }
    return st;
}

/* ExportTraceServiceResponse bytes -> { partialSuccess?: {rejectedSpans,
 * errorMessage} } with rejectedSpans as a decimal string. */
export function decodeExportResponse(buf) {
    const res = {};
    for (const f of pbFields(buf)) {
        if (f.field !== 1 || f.wire !== 2) continue;
        const ps = { rejectedSpans: '0', errorMessage: '' };
        for (const g of pbFields(f.value)) {
            if (g.field === 1 && g.wire === 0) {
                ps.rejectedSpans = BigInt.asIntN(64, g.value).toString();
            }
            if (g.field === 2 && g.wire === 2) {
                ps.errorMessage = g.value.toString('utf8');
            }
        }
        res.partialSuccess = ps;
    }
    return res;
}

/* ---- raw HTTP ---------------------------------------------------------- */

/*
 * One HTTP request; resolves to { status, headers, body (Buffer) }.
 * `gzip: true` compresses the body and sets Content-Encoding. A server
 * that closes the connection without answering rejects the promise.
 */
export function post(url, body, { method = 'POST', contentType,
                                  headers = {}, gzip = false,
                                  timeoutMs = 10000 } = {}) {
    let data = body === undefined ? undefined
                                  : Buffer.isBuffer(body) ? body
                                                          : Buffer.from(body);
    const h = { ...headers };
    if (contentType) h['content-type'] = contentType;
    if (data && gzip) {
        data = gzipSync(data);
        h['content-encoding'] = 'gzip';
    }
    if (data) h['content-length'] = String(data.length);
    return new Promise((resolve, reject) => {
        const req = httpRequest(url, { method, headers: h, agent: false,
                                       timeout: timeoutMs }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode,
                                          headers: res.headers,
                                          body: Buffer.concat(chunks) }));
            res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(
            new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
        req.on('error', reject);
        req.end(data);
    });
}

/* POST an OTLP/JSON request object to /v1/traces. */
export function postJson(tracesUrl, req, opts = {}) {
    return post(tracesUrl, toJson(req),
                { contentType: 'application/json', ...opts });
}

/* POST an OTLP/JSON request object as protobuf to /v1/traces. */
export function postProtobuf(tracesUrl, req, opts = {}) {
    return post(tracesUrl, toProtobuf(req),
                { contentType: 'application/x-protobuf', ...opts });
}

/* ---- raw gRPC ---------------------------------------------------------- */

export const EXPORT_METHOD =
    '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

/* A gRPC client for `target` (host:port), plaintext. Close it with
 * client.close(). */
export function grpcClient(target, options = {}) {
    return new grpc.Client(target, grpc.credentials.createInsecure(), options);
}

/*
 * One unary call with raw bytes; resolves to { ok: true, response: Buffer }
 * or { ok: false, code, details } (never rejects for a gRPC status).
 */
export function grpcUnary(client, method, bytes, { timeoutMs = 10000 } = {}) {
    return new Promise((resolve) => {
        client.makeUnaryRequest(
            method, (b) => b, (b) => b, bytes, new grpc.Metadata(),
            { deadline: Date.now() + timeoutMs },
            (err, response) => {
                if (err) resolve({ ok: false, code: err.code, details: err.details });
                else resolve({ ok: true, response });
            });
    });
}

export { grpc };
