/*
 * tls.test.mjs -- TLS, mTLS and the transport limits of the OTLP receiver
 * and the extensions (issue 8).
 *
 * Certificates: two throwaway PKIs made with the openssl CLI (lib/tls.mjs):
 * "good" (the daemon's CA) and "other" (a CA the daemon does not know).
 *
 * Daemon "tls": gRPC, HTTP, health_check and metrics all serve TLS with the
 * good server certificate. The SDK exporters (gRPC with
 * credentials.createSsl(ca), HTTP/protobuf and HTTP/JSON with
 * httpAgentOptions {ca}) store their spans; a plaintext client and a client
 * trusting the other CA fail; health and metrics answer over HTTPS (curl
 * --cacert) and not over plain HTTP.
 *
 * Daemon "mtls": gRPC and HTTP with client_ca_file (the good CA), metrics
 * with it too. Without a client certificate, or with one of the other CA,
 * gRPC fails in the handshake and HTTP answers 403; with the good client
 * certificate the spans are stored.
 *
 * Daemon "limits" (plaintext): a slowloris trickling header bytes is cut
 * after read_header_timeout; an idle kept-alive connection is closed after
 * idle_timeout (not earlier: the header clock does not run between
 * requests); connections beyond max_connections are closed at once while
 * the daemon keeps serving; thousands of concurrent gRPC calls on one
 * connection beyond max_concurrent_streams all complete and the daemon's
 * peak RSS stays bounded.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { HaloDaemon, makeTempDir, writeTestConfig } from './lib/daemon.mjs';
import { metricValue } from './lib/kafka.mjs';
import { EXPORT_METHOD, grpc, post, request, span, toJson,
         toProtobuf } from './lib/otlp.mjs';
import { RecordingExporter } from './lib/sdk.mjs';
import { lit, query } from './lib/store.mjs';
import { makePki } from './lib/tls.mjs';
import { waitFor } from './lib/util.mjs';

const SLOW = process.env.HALO_SANITIZED === '1' ? 3 : 1;

/* ---- helpers -------------------------------------------------------------- */

/* A daemon whose health_check may serve HTTPS: readiness over TLS. */
class TlsDaemon extends HaloDaemon {
    get healthUrl() {
        return `${this.healthTls ? 'https' : 'http'}://127.0.0.1:${this.ports.health}/`;
    }

    async healthy() {
        if (!this.healthTls) return super.healthy();
        try {
            return (await httpsGet(this.healthUrl, { ca: this.ca })).status === 200;
        } catch {
            return false;
        }
    }

    static async launch(dir, opts, { healthTls = false, ca = null } = {}) {
        const { configPath, dbPath, ports } = await writeTestConfig(dir, opts);
        const d = new TlsDaemon(dir, configPath, dbPath, ports);
        d.healthTls = healthTls;
        d.ca = ca;
        await d.spawn();
        return d;
    }
}

/* One HTTPS request; resolves { status, body } or rejects (TLS errors). */
function httpsGet(url, { method = 'GET', body, headers = {}, ca, cert, key,
                         timeoutMs = 5000 } = {}) {
    return new Promise((resolve, reject) => {
        const req = httpsRequest(url, { method, headers, ca, cert, key,
                                        agent: false, timeout: timeoutMs },
                                 (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode,
                                          body: Buffer.concat(chunks) }));
            res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error('no answer')));
        req.on('error', reject);
        req.end(body);
    });
}

/* curl, resolving { code, stdout } (never rejects). */
function curl(args) {
    return new Promise((resolve) => {
        execFile('curl', ['-sS', '--max-time', '5', ...args],
                 (e, stdout, stderr) => resolve({
                     code: e ? (typeof e.code === 'number' ? e.code : -1) : 0,
                     stdout, stderr }));
    });
}

/* One unary Export; resolves { ok, code, details }. */
function grpcExport(client, bytes, timeoutMs = 5000) {
    return new Promise((resolve) => {
        client.makeUnaryRequest(
            EXPORT_METHOD, (b) => b, (b) => b, bytes, new grpc.Metadata(),
            { deadline: Date.now() + timeoutMs },
            (err) => resolve(err ? { ok: false, code: err.code, details: err.details }
                                 : { ok: true }));
    });
}

const oneSpan = () => {
    const s = span({ name: 'tls-e2e' });
    return { req: request([s], { resource: { 'service.name': 'tls-e2e' } }), s };
};

async function stored(halo, s) {
    const rows = await query(halo.dbPath,
                             `SELECT count(*) AS n FROM spans WHERE trace_id = ` +
                                 `${lit(s.traceId)} AND span_id = ${lit(s.spanId)}`);
    return rows[0].n === 1;
}

async function assertStored(halo, s, what) {
    await waitFor(() => stored(halo, s), { timeoutMs: 10000 * SLOW,
                                          what: `${what}: span stored` })
        .catch((e) => { throw halo.fail(e.message); });
}

/* An SDK pipeline through one exporter; sends one span, returns
 * { failures, key }. */
async function sdkSend(exporter, what) {
    const recorder = new RecordingExporter(exporter);
    const provider = new BasicTracerProvider({
        resource: resourceFromAttributes({ 'service.name': 'tls-sdk' }),
        spanProcessors: [new SimpleSpanProcessor(recorder)],
    });
    const s = provider.getTracer('halo-e2e-tls').startSpan(what, {}, ROOT_CONTEXT);
    s.end();
    await provider.forceFlush().catch(() => {});
    await provider.shutdown().catch(() => {});
    const c = s.spanContext();
    return { failures: recorder.failures(),
             key: { traceId: c.traceId, spanId: c.spanId } };
}

function sdkExporter(kind, url, { ca, cert, key } = {}) {
    const timeoutMillis = 5000 * SLOW;
    if (kind === 'grpc') {
        return new GrpcExporter({
            url, timeoutMillis,
            credentials: grpc.credentials.createSsl(ca, key ?? null, cert ?? null),
        });
    }
    const E = kind === 'proto' ? ProtoExporter : JsonExporter;
    return new E({ url, timeoutMillis,
                   httpAgentOptions: { ca, cert, key, keepAlive: false } });
}

/* Peak RSS of a process in KiB (VmHWM). */
function vmHwmKiB(pid) {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m[1]);
}

/* A raw TCP connection; resolves when connected. closedAt: when it
 * closed (ms), null while open. */
function rawConnect(port) {
    return new Promise((resolve, reject) => {
        const sock = connect(port, '127.0.0.1');
        sock.on('error', () => {});
        sock.closedAt = null;
        sock.on('close', () => { sock.closedAt = Date.now(); });
        sock.once('connect', () => resolve(sock));
        sock.once('error', reject);
    });
}

/* ---- the tests --------------------------------------------------------------- */

describe('TLS and transport limits', { timeout: 240000 }, () => {
    let dir;
    let good;
    let other;
    const daemons = [];

    before(() => {
        dir = makeTempDir('halo-e2e-tls-');
        good = makePki(dir, 'good');
        other = makePki(dir, 'other');
    });

    after(async () => {
        let first = null;
        for (const d of daemons) {
            try { await d.cleanup(); } catch (e) { first = first || e; }
        }
        if (first) throw first;
    });

    describe('TLS', () => {
        let halo;
        const tls = () => ({ cert_file: good.certFile, key_file: good.keyFile });

        before(async () => {
            const d = makeTempDir('halo-e2e-tls1-');
            halo = await TlsDaemon.launch(d, {
                grpc: { tls: tls() },
                http: { tls: tls() },
                extra: { extensions: { health_check: { tls: tls() },
                                       metrics: { tls: tls() } } },
            }, { healthTls: true, ca: good.ca });
            daemons.push(halo);
        });

        const grpcUrl = () => `https://localhost:${halo.ports.grpc}`;
        const httpsTraces = () => `https://localhost:${halo.ports.http}/v1/traces`;

        it('logs which endpoints serve TLS', () => {
            const log = readFileSync(halo.logPath, 'utf8');
            for (const what of ['grpc', 'http', 'health_check', 'metrics'])
                assert.match(log, new RegExp(`listening on 127\\.0\\.0\\.1:\\d+ \\(${what}, TLS\\)`),
                             log);
        });

        for (const kind of ['grpc', 'proto', 'json']) {
            it(`SDK ${kind} exporter trusting the CA: stored`, async () => {
                const url = kind === 'grpc' ? grpcUrl() : httpsTraces();
                const r = await sdkSend(sdkExporter(kind, url, { ca: good.ca }),
                                        `tls-${kind}`);
                assert.deepEqual(r.failures, []);
                await assertStored(halo, r.key, `SDK ${kind} over TLS`);
            });

            it(`SDK ${kind} exporter without TLS: fails`, async () => {
                const timeoutMillis = 5000 * SLOW;
                const plain = kind === 'grpc'
                    ? new GrpcExporter({
                        url: `http://127.0.0.1:${halo.ports.grpc}`, timeoutMillis,
                        credentials: grpc.credentials.createInsecure() })
                    : new (kind === 'proto' ? ProtoExporter : JsonExporter)({
                        url: `http://127.0.0.1:${halo.ports.http}/v1/traces`,
                        timeoutMillis });
                const r = await sdkSend(plain, `tls-plain-${kind}`);
                assert.equal(r.failures.length, 1);
                assert.equal(await stored(halo, r.key), false);
            });

            it(`SDK ${kind} exporter trusting another CA: fails`, async () => {
                const url = kind === 'grpc' ? grpcUrl() : httpsTraces();
                const r = await sdkSend(sdkExporter(kind, url, { ca: other.ca }),
                                        `tls-other-${kind}`);
                assert.equal(r.failures.length, 1);
                assert.equal(await stored(halo, r.key), false);
            });
        }

        it('plaintext clients against the TLS ports fail', async () => {
            const { req } = oneSpan();
            await assert.rejects(post(`http://127.0.0.1:${halo.ports.http}/v1/traces`,
                                      toJson(req), { contentType: 'application/json',
                                                     timeoutMs: 5000 }));
            const client = new grpc.Client(`127.0.0.1:${halo.ports.grpc}`,
                                           grpc.credentials.createInsecure());
            try {
                const g = await grpcExport(client, toProtobuf(req));
                assert.equal(g.ok, false);
                assert.equal(g.code, grpc.status.UNAVAILABLE);
            } finally {
                client.close();
            }
            assert.ok(halo.running);
        });

        it('raw HTTPS requests trusting the CA answer, the other CA does not', async () => {
            const { req, s } = oneSpan();
            const r = await httpsGet(httpsTraces(), {
                method: 'POST', body: toJson(req), ca: good.ca,
                headers: { 'content-type': 'application/json' } });
            assert.equal(r.status, 200, String(r.body));
            await assertStored(halo, s, 'raw HTTPS');
            await assert.rejects(httpsGet(httpsTraces(), { ca: other.ca }),
                                 /self-signed|unable to verify|certificate/);
        });

        it('health and metrics answer over HTTPS, not over plain HTTP', async () => {
            const h = await curl(['--cacert', good.caFile, '-o', '/dev/null', '-w',
                                  '%{http_code}', `https://localhost:${halo.ports.health}/`]);
            assert.equal(h.stdout, '200', h.stderr);
            const m = await curl(['--cacert', good.caFile,
                                  `https://127.0.0.1:${halo.ports.metrics}/metrics`]);
            assert.equal(m.code, 0, m.stderr);
            assert.match(m.stdout, /halo_receiver_accepted_spans_total\{receiver="otlp",transport="http"\} [1-9]/);
            for (const port of [halo.ports.health, halo.ports.metrics]) {
                const p = await curl([`http://127.0.0.1:${port}/`]);
                assert.notEqual(p.code, 0, `plain HTTP to ${port} answered`);
                const o = await curl(['--cacert', other.caFile, `https://127.0.0.1:${port}/`]);
                assert.equal(o.code, 60, `other CA: ${o.stderr}`); /* peer cert not trusted */
            }
            assert.ok(halo.running);
        });
    });

    describe('mTLS', () => {
        let halo;
        const mtls = () => ({ cert_file: good.certFile, key_file: good.keyFile,
                              client_ca_file: good.caFile });

        before(async () => {
            const d = makeTempDir('halo-e2e-tls2-');
            halo = await TlsDaemon.launch(d, {
                grpc: { tls: mtls() },
                http: { tls: mtls() },
                extra: { extensions: { metrics: { tls: mtls() } } },
            });
            daemons.push(halo);
        });

        const grpcUrl = () => `https://localhost:${halo.ports.grpc}`;
        const httpsTraces = () => `https://localhost:${halo.ports.http}/v1/traces`;
        const goodClient = () => ({ ca: good.ca, cert: good.clientCert, key: good.clientKey });
        const otherClient = () => ({ ca: good.ca, cert: other.clientCert,
                                     key: other.clientKey });

        it('logs that client certificates are required', () => {
            const log = readFileSync(halo.logPath, 'utf8');
            for (const what of ['grpc', 'http', 'metrics'])
                assert.match(log, new RegExp(`\\(${what}, mTLS: client certificates required\\)`));
        });

        for (const kind of ['grpc', 'proto', 'json']) {
            it(`SDK ${kind}: refused without a client certificate or with one of ` +
               'another CA, stored with the right one', async () => {
                const url = kind === 'grpc' ? grpcUrl() : httpsTraces();
                for (const [what, opts] of [['none', { ca: good.ca }],
                                            ['other', otherClient()]]) {
                    const r = await sdkSend(sdkExporter(kind, url, opts),
                                            `mtls-${what}-${kind}`);
                    assert.equal(r.failures.length, 1, `${kind} ${what}`);
                    assert.equal(await stored(halo, r.key), false);
                }
                const r = await sdkSend(sdkExporter(kind, url, goodClient()),
                                        `mtls-${kind}`);
                assert.deepEqual(r.failures, []);
                await assertStored(halo, r.key, `SDK ${kind} with a client cert`);
            });
        }

        it('HTTP without a client certificate: 403 naming the reason', async () => {
            const { req } = oneSpan();
            const r = await httpsGet(httpsTraces(), {
                method: 'POST', body: toJson(req), ca: good.ca,
                headers: { 'content-type': 'application/json' } });
            assert.equal(r.status, 403);
            assert.deepEqual(JSON.parse(r.body.toString()), {
                code: 16,
                message: "a client certificate signed by the receiver's client_ca_file is required",
            });
            /* the metrics endpoint wants a client certificate too */
            const m = await curl(['--cacert', good.caFile, '--cert', good.clientCertFile,
                                  '--key', good.clientKeyFile,
                                  `https://127.0.0.1:${halo.ports.metrics}/metrics`]);
            assert.match(m.stdout, /halo_receiver_tls_refused_total\{receiver="otlp",transport="http"\} [1-9]/);
        });

        it('metrics with mTLS: 403 without a client certificate, 200 with', async () => {
            const url = `https://127.0.0.1:${halo.ports.metrics}/metrics`;
            const no = await curl(['--cacert', good.caFile, '-o', '/dev/null', '-w',
                                   '%{http_code}', url]);
            assert.equal(no.stdout, '403', no.stderr);
            const yes = await curl(['--cacert', good.caFile, '--cert', good.clientCertFile,
                                    '--key', good.clientKeyFile, url]);
            assert.equal(yes.code, 0, yes.stderr);
            assert.match(yes.stdout, /halo_receiver_tls_refused_total/);
        });
    });

    describe('transport limits', () => {
        let halo;
        const HEADER_S = 1;
        const IDLE_S = 2;
        const MAX_CONN = 4;

        before(async () => {
            const d = makeTempDir('halo-e2e-tls3-');
            halo = await TlsDaemon.launch(d, {
                grpc: { max_concurrent_streams: 4 },
                http: { threads: 1, max_connections: MAX_CONN,
                        read_header_timeout: `${HEADER_S}s`,
                        idle_timeout: `${IDLE_S}s` },
            });
            daemons.push(halo);
        });

        it('a slowloris trickling header bytes is cut after read_header_timeout', async () => {
            const sock = await rawConnect(halo.ports.http);
            const t0 = Date.now();
            sock.write('POST /v1/traces HTTP/1.1\r\nHost: x\r\n');
            /* one header byte every 100 ms: MHD's idle timer never fires */
            const timer = setInterval(() => { if (!sock.destroyed) sock.write('X'); }, 100);
            try {
                await waitFor(() => sock.closedAt !== null,
                              { timeoutMs: (HEADER_S + 4) * 1000 * SLOW,
                                what: 'the slowloris connection to be closed' });
            } finally {
                clearInterval(timer);
                sock.destroy();
            }
            const took = sock.closedAt - t0;
            assert.ok(took >= HEADER_S * 1000 - 100 && took < (HEADER_S + 1.5) * 1000 * SLOW,
                      `cut after ${took} ms`);
            assert.ok(await metricValue(halo, 'halo_http_slow_headers_closed_total',
                                        { receiver: 'otlp', transport: 'http' }) >= 1);
            assert.ok(halo.running);
        });

        it('an idle kept-alive connection is closed after idle_timeout', async () => {
            const sock = await rawConnect(halo.ports.http);
            const body = toJson(oneSpan().req);
            let answered = '';
            sock.on('data', (b) => { answered += b.toString(); });
            sock.write(`POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
                       `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
            await waitFor(() => answered.includes('\r\n\r\n'),
                          { timeoutMs: 10000 * SLOW, what: 'the answer' });
            const t0 = Date.now();
            assert.match(answered, /^HTTP\/1\.1 200/);
            try {
                await waitFor(() => sock.closedAt !== null,
                              { timeoutMs: (IDLE_S + 4) * 1000 * SLOW,
                                what: 'the idle connection to be closed' });
            } finally {
                sock.destroy();
            }
            const took = sock.closedAt - t0;
            /* not by the header clock (1 s): it does not run between requests */
            assert.ok(took >= (IDLE_S - 0.5) * 1000 && took < (IDLE_S + 2) * 1000 * SLOW,
                      `closed after ${took} ms`);
        });

        it('connections beyond max_connections wait unaccepted; the daemon keeps serving',
           async () => {
               /* hogs: complete headers announcing a body that never comes,
                * so only idle_timeout would end them */
               const hogs = [];
               const extra = [];
               const body = toJson(oneSpan().req);
               try {
                   for (let i = 0; i < MAX_CONN; i++) {
                       const h = await rawConnect(halo.ports.http);
                       h.write('POST /v1/traces HTTP/1.1\r\nHost: x\r\n' +
                               'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
                       hogs.push(h);
                   }
                   /* beyond the limit: complete requests, left in the
                    * kernel's backlog (libmicrohttpd stops accepting) */
                   for (let i = 0; i < 3; i++) {
                       const x = await rawConnect(halo.ports.http);
                       x.answer = '';
                       x.on('data', (b) => { x.answer += b.toString(); });
                       x.write('POST /v1/traces HTTP/1.1\r\nHost: x\r\n' +
                               'Content-Type: application/json\r\nConnection: close\r\n' +
                               `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
                       extra.push(x);
                   }
                   /* the other servers are not affected */
                   for (let i = 0; i < 3; i++) assert.equal(await halo.healthStatus(), 200);
                   assert.ok(extra.every((x) => x.answer === ''),
                             'a connection beyond the limit was served');
                   assert.ok(hogs.every((h) => h.closedAt === null),
                             'a connection within the limit was closed');
                   hogs.forEach((h) => h.destroy());
                   /* slots free: the waiting requests are served */
                   await waitFor(() => extra.every((x) => /^HTTP\/1\.1 200/.test(x.answer)),
                                 { timeoutMs: 10000 * SLOW,
                                   what: 'the waiting connections to be served' });
               } finally {
                   hogs.forEach((h) => h.destroy());
                   extra.forEach((x) => x.destroy());
               }
               const { req, s } = oneSpan();
               const r = await post(halo.tracesUrl, toJson(req),
                                    { contentType: 'application/json' });
               assert.equal(r.status, 200);
               await assertStored(halo, s, 'after the connection flood');
           });

        it('thousands of gRPC calls on one connection beyond max_concurrent_streams',
           async () => {
               const client = new grpc.Client(halo.grpcTarget, grpc.credentials.createInsecure());
               const N = 3000;
               const before = vmHwmKiB(halo.pid);
               let ok = 0;
               const codes = {};
               try {
                   const calls = [];
                   for (let i = 0; i < N; i++) {
                       calls.push(grpcExport(client, toProtobuf(oneSpan().req), 60000 * SLOW)
                           .then((r) => {
                               if (r.ok) ok++;
                               else codes[r.code] = (codes[r.code] || 0) + 1;
                           }));
                   }
                   await Promise.all(calls);
               } finally {
                   client.close();
               }
               const peak = vmHwmKiB(halo.pid);
               console.log(`# ${N} concurrent calls, max_concurrent_streams 4: ` +
                           `${ok} ok, refused ${JSON.stringify(codes)}; ` +
                           `VmHWM ${before} -> ${peak} KiB`);
               assert.ok(halo.running, 'the daemon died');
               /* queued by the client (the server announced 4 streams) or
                * refused retryably: never anything else */
               for (const code of Object.keys(codes))
                   assert.ok([grpc.status.UNAVAILABLE, grpc.status.RESOURCE_EXHAUSTED]
                       .includes(Number(code)), `unexpected code ${code}`);
               assert.ok(ok >= N / 2, `${ok} of ${N} succeeded`);
               /* measured: ~23 MiB (ASan's quarantine alone: ~400 MiB) */
               const limitMiB = SLOW > 1 ? 1200 : 150;
               assert.ok(peak < limitMiB * 1024, `VmHWM ${peak} KiB`);
               assert.equal(await halo.healthStatus(), 200);
           });
    });
});
