/*
 * auth.test.mjs -- bearer-token authentication on the OTLP receiver
 * (issue 8): `auth: { bearer_token: { tokens_file, tokens_env } }`.
 *
 * One daemon with a tokens file of two tenants (A may only write agent-a,
 * B may write anything) and one more token from the environment. For gRPC,
 * HTTP/protobuf and HTTP/JSON, raw requests (the exact status) and the
 * OpenTelemetry JS SDK exporters (headers / metadata options):
 *   no token, wrong token  -> UNAUTHENTICATED (16) / 401 + WWW-Authenticate,
 *                             nothing stored
 *   right token            -> stored
 *   tenant A, agent-b span -> success with partial_success (1 rejected),
 *                             only the agent-a span stored
 * and after each the daemon still serves. Finally: the failures are in the
 * metrics, and neither the daemon log nor `halo validate` (good config or
 * a bad tokens file) shows a token.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { trace, ROOT_CONTEXT } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { describeRun, runHalo } from './lib/cli.mjs';
import { HaloDaemon, makeTempDir, toYaml, testConfig } from './lib/daemon.mjs';
import { decodeExportResponse, decodeRpcStatus, EXPORT_METHOD, grpc,
         grpcClient, post, request, span, toJson,
         toProtobuf } from './lib/otlp.mjs';
import { metricValue } from './lib/kafka.mjs';
import { RecordingExporter } from './lib/sdk.mjs';
import { lit, query } from './lib/store.mjs';
import { randomHex, waitFor } from './lib/util.mjs';

const UNAUTHENTICATED = 16;
const MESSAGE = 'missing or invalid bearer token';
const TOKEN_A = `tenantA-${randomHex(16)}`;
const TOKEN_B = `tenantB-${randomHex(16)}`;
const TOKEN_ENV = `envtok-${randomHex(16)}`;
const TOKEN_WRONG = `tenantA-${randomHex(16)}`;
const ENV_VAR = 'HALO_E2E_AUTH_TOKENS';
const SECRETS = [TOKEN_A, TOKEN_B, TOKEN_ENV];

const bearer = (t) => ({ authorization: `Bearer ${t}` });

/* One unary Export with metadata; never rejects for a gRPC status. */
function grpcExport(client, bytes, md = {}) {
    const meta = new grpc.Metadata();
    for (const [k, v] of Object.entries(md)) meta.add(k, v);
    return new Promise((resolve) => {
        client.makeUnaryRequest(
            EXPORT_METHOD, (b) => b, (b) => b, bytes, meta,
            { deadline: Date.now() + 10000 },
            (err, response) => {
                if (err) resolve({ ok: false, code: err.code, details: err.details });
                else resolve({ ok: true, response });
            });
    });
}

/* A request with one span per agent (span attribute agent.id). */
function agentRequest(...agents) {
    const spans = agents.map((a) => span({ name: `op-${a}`,
                                           attributes: { 'agent.id': a } }));
    return request(spans, { resource: { 'service.name': 'auth-e2e' } });
}
const spansOf = (req) => req.resourceSpans[0].scopeSpans[0].spans;

describe('bearer token authentication', { timeout: 120000 }, () => {
    let halo;
    let client;
    let dir;
    let startedAt;

    before(async () => {
        startedAt = Date.now();
        dir = makeTempDir('halo-e2e-auth-');
        const tokensFile = join(dir, 'tokens');
        writeFileSync(tokensFile,
                      `# tenants of the e2e test\n${TOKEN_A} agent-a\n\n` +
                          `${TOKEN_B}   # may write any agent\n`);
        halo = await HaloDaemon.start({
            dir,
            env: { [ENV_VAR]: `, ${TOKEN_ENV} ` },
            extra: { receivers: { otlp: { auth: { bearer_token: {
                tokens_file: tokensFile, tokens_env: ENV_VAR } } } } },
        });
        client = grpcClient(halo.grpcTarget);
    });

    after(async () => {
        if (client) client.close();
        if (halo) await halo.cleanup();
    });

    async function storedCount(s) {
        const rows = await query(
            halo.dbPath,
            `SELECT count(*) AS n FROM spans WHERE trace_id = ${lit(s.traceId)} ` +
                `AND span_id = ${lit(s.spanId)}`);
        return rows[0].n;
    }

    async function assertStored(s, what) {
        await waitFor(async () => (await storedCount(s)) === 1,
                      { timeoutMs: 10000, what: `${what}: span stored` })
            .catch((e) => { throw halo.fail(e.message); });
    }

    /* Refused requests are answered before anything is emitted; a good
     * request sent afterwards is stored, so once it is, the refused one
     * would have been too. */
    async function assertNotStored(s, what) {
        assert.equal(await storedCount(s), 0, `${what}: span was stored`);
    }

    async function assertStillServing(afterWhat) {
        assert.ok(halo.running, `halo exited after ${afterWhat}\n${halo.logTail()}`);
        assert.equal(await halo.healthStatus(), 200);
        const req = agentRequest('agent-x');
        const r = await post(halo.tracesUrl, toJson(req),
                             { contentType: 'application/json',
                               headers: bearer(TOKEN_B) });
        assert.equal(r.status, 200, `good export after ${afterWhat}: ${r.body}`);
        await assertStored(spansOf(req)[0], `good export after ${afterWhat}`);
        const req2 = agentRequest('agent-x');
        const g = await grpcExport(client, toProtobuf(req2), bearer(TOKEN_ENV));
        assert.ok(g.ok, `good gRPC export after ${afterWhat}: ${g.code} ${g.details}`);
        await assertStored(spansOf(req2)[0], `good gRPC export after ${afterWhat}`);
    }

    const badHeaders = {
        'no token': {},
        'wrong token': bearer(TOKEN_WRONG),
        'a token prefix': bearer(TOKEN_A.slice(0, -1)),
        'a longer token': bearer(`${TOKEN_A}x`),
        'another scheme': { authorization: `Basic ${TOKEN_A}` },
        'an empty bearer': { authorization: 'Bearer ' },
    };

    for (const [what, headers] of Object.entries(badHeaders)) {
        it(`HTTP/JSON with ${what}: 401, nothing stored`, async () => {
            const req = agentRequest('agent-a');
            const r = await post(halo.tracesUrl, toJson(req),
                                 { contentType: 'application/json', headers });
            assert.equal(r.status, 401, String(r.body));
            assert.equal(r.headers['www-authenticate'], 'Bearer');
            assert.match(r.headers['content-type'], /application\/json/);
            const body = JSON.parse(r.body.toString());
            assert.equal(body.code, UNAUTHENTICATED);
            assert.equal(body.message, MESSAGE);
            await assertStillServing(`HTTP/JSON ${what}`);
            await assertNotStored(spansOf(req)[0], `HTTP/JSON ${what}`);
        });

        it(`HTTP/protobuf with ${what}: 401, nothing stored`, async () => {
            const req = agentRequest('agent-a');
            const r = await post(halo.tracesUrl, toProtobuf(req),
                                 { contentType: 'application/x-protobuf',
                                   headers });
            assert.equal(r.status, 401);
            assert.equal(r.headers['www-authenticate'], 'Bearer');
            assert.match(r.headers['content-type'], /application\/x-protobuf/);
            assert.deepEqual(decodeRpcStatus(r.body),
                             { code: UNAUTHENTICATED, message: MESSAGE });
            await assertStillServing(`HTTP/protobuf ${what}`);
            await assertNotStored(spansOf(req)[0], `HTTP/protobuf ${what}`);
        });

        it(`gRPC with ${what}: UNAUTHENTICATED, nothing stored`, async () => {
            const req = agentRequest('agent-a');
            const g = await grpcExport(client, toProtobuf(req), headers);
            assert.equal(g.ok, false);
            assert.equal(g.code, grpc.status.UNAUTHENTICATED);
            assert.equal(g.details, MESSAGE);
            await assertStillServing(`gRPC ${what}`);
            await assertNotStored(spansOf(req)[0], `gRPC ${what}`);
        });
    }

    it('the right token is accepted on every transport', async () => {
        for (const [token, agent] of [[TOKEN_A, 'agent-a'], [TOKEN_B, 'agent-z'],
                                      [TOKEN_ENV, 'agent-y']]) {
            const r1 = agentRequest(agent);
            const a = await post(halo.tracesUrl, toJson(r1),
                                 { contentType: 'application/json',
                                   headers: { authorization: `bearer  ${token}` } });
            assert.equal(a.status, 200, String(a.body));
            assert.deepEqual(JSON.parse(a.body.toString()).partialSuccess ?? {}, {});
            const r2 = agentRequest(agent);
            const b = await post(halo.tracesUrl, toProtobuf(r2),
                                 { contentType: 'application/x-protobuf',
                                   headers: bearer(token) });
            assert.equal(b.status, 200);
            assert.deepEqual(decodeExportResponse(b.body), {});
            const r3 = agentRequest(agent);
            const g = await grpcExport(client, toProtobuf(r3), bearer(token));
            assert.ok(g.ok, `${g.code} ${g.details}`);
            assert.deepEqual(decodeExportResponse(g.response), {});
            for (const r of [r1, r2, r3])
                await assertStored(spansOf(r)[0], `${agent} with its token`);
        }
    });

    it('tenant A writing agent-b: partial_success, only agent-a stored',
       async () => {
           const expectMsg = '1 spans of agents this token may not write';
           const check = async (req, what) => {
               const [sa, sb] = spansOf(req);
               await assertStored(sa, `${what}: agent-a span`);
               await assertStillServing(what);
               await assertNotStored(sb, `${what}: agent-b span`);
           };
           const r1 = agentRequest('agent-a', 'agent-b');
           const a = await post(halo.tracesUrl, toJson(r1),
                                { contentType: 'application/json',
                                  headers: bearer(TOKEN_A) });
           assert.equal(a.status, 200, String(a.body));
           const ps = JSON.parse(a.body.toString()).partialSuccess;
           assert.equal(Number(ps.rejectedSpans), 1);
           assert.equal(ps.errorMessage, expectMsg);
           await check(r1, 'HTTP/JSON tenant A');

           const r2 = agentRequest('agent-b', 'agent-a').resourceSpans;
           const req2 = { resourceSpans: r2 };
           spansOf(req2).reverse(); /* agent-a first for check() */
           const b = await post(halo.tracesUrl, toProtobuf(req2),
                                { contentType: 'application/x-protobuf',
                                  headers: bearer(TOKEN_A) });
           assert.equal(b.status, 200);
           assert.deepEqual(decodeExportResponse(b.body),
                            { partialSuccess: { rejectedSpans: '1',
                                                errorMessage: expectMsg } });
           await check(req2, 'HTTP/protobuf tenant A');

           const r3 = agentRequest('agent-a', 'agent-b');
           const g = await grpcExport(client, toProtobuf(r3), bearer(TOKEN_A));
           assert.ok(g.ok, `${g.code} ${g.details}`);
           assert.deepEqual(decodeExportResponse(g.response),
                            { partialSuccess: { rejectedSpans: '1',
                                                errorMessage: expectMsg } });
           await check(r3, 'gRPC tenant A');

           /* only agent-b: nothing to store, still a success */
           const r4 = agentRequest('agent-b', 'agent-b');
           const g4 = await grpcExport(client, toProtobuf(r4), bearer(TOKEN_A));
           assert.ok(g4.ok, `${g4.code} ${g4.details}`);
           assert.equal(decodeExportResponse(g4.response).partialSuccess
                            .rejectedSpans, '2');
           await assertStillServing('gRPC tenant A, only agent-b');
           for (const s of spansOf(r4))
               await assertNotStored(s, 'agent-b only');
       });

    /* The SDK exporters with their own options for credentials. */
    function sdk(kind, token) {
        const opts = { timeoutMillis: 5000 };
        let inner;
        if (kind === 'grpc') {
            const metadata = new grpc.Metadata();
            if (token) metadata.set('authorization', `Bearer ${token}`);
            inner = new GrpcExporter({ url: halo.grpcUrl, metadata, ...opts });
        } else {
            const headers = token ? { Authorization: `Bearer ${token}` } : {};
            const E = kind === 'proto' ? ProtoExporter : JsonExporter;
            inner = new E({ url: halo.tracesUrl, headers, ...opts });
        }
        const recorder = new RecordingExporter(inner);
        const provider = new BasicTracerProvider({
            resource: resourceFromAttributes({ 'service.name': 'auth-sdk',
                                               'agent.id': 'agent-a' }),
            spanProcessors: [new SimpleSpanProcessor(recorder)],
        });
        return { recorder, provider,
                 tracer: provider.getTracer('halo-e2e-auth', '1.0.0') };
    }

    for (const kind of ['grpc', 'proto', 'json']) {
        it(`SDK ${kind} exporter: refused without a token, stored with one`,
           async () => {
               for (const token of [null, TOKEN_WRONG, TOKEN_A]) {
                   const c = sdk(kind, token);
                   const s = c.tracer.startSpan(`sdk-${kind}`, {}, ROOT_CONTEXT);
                   s.end();
                   const ctx = s.spanContext();
                   /* forceFlush rejects with the export errors; the
                    * recorder keeps them */
                   await c.provider.forceFlush().catch(() => {});
                   await c.provider.shutdown().catch(() => {});
                   const key = { traceId: ctx.traceId, spanId: ctx.spanId };
                   if (token === TOKEN_A) {
                       assert.deepEqual(c.recorder.failures(), []);
                       await assertStored(key, `SDK ${kind} with token`);
                   } else {
                       assert.equal(c.recorder.failures().length, 1,
                                    `SDK ${kind} token ${token ? 'wrong' : 'none'}`);
                       await assertStillServing(`SDK ${kind} refused`);
                       await assertNotStored(key, `SDK ${kind} refused`);
                   }
               }
               assert.ok(trace); /* the api module loaded */
           });
    }

    it('failures and rejected spans are in the metrics', async () => {
        const m = (name, labels) => metricValue(halo, name, labels);
        const base = { receiver: 'otlp' };
        /* 6 bad cases x 2 HTTP formats + SDK (2 each for proto and json) */
        assert.ok(await m('halo_receiver_auth_failures_total',
                          { ...base, transport: 'http', reason: 'missing' }) >= 2);
        assert.ok(await m('halo_receiver_auth_failures_total',
                          { ...base, transport: 'http', reason: 'invalid' }) >= 10);
        assert.ok(await m('halo_receiver_auth_failures_total',
                          { ...base, transport: 'grpc', reason: 'missing' }) >= 1);
        assert.ok(await m('halo_receiver_auth_failures_total',
                          { ...base, transport: 'grpc', reason: 'invalid' }) >= 5);
        assert.equal(await m('halo_receiver_auth_rejected_spans_total',
                             { ...base, transport: 'http' }), 2);
        assert.equal(await m('halo_receiver_auth_rejected_spans_total',
                             { ...base, transport: 'grpc' }), 3);
        assert.ok(await m('halo_receiver_requests_total',
                          { ...base, transport: 'grpc', code: 'UNAUTHENTICATED' }) >= 6);
        assert.ok(await m('halo_receiver_requests_total',
                          { ...base, transport: 'http', code: '401' }) >= 12);
        const text = await (await fetch(
            `http://127.0.0.1:${halo.ports.metrics}/metrics`)).text();
        for (const t of SECRETS) assert.ok(!text.includes(t), 'token in metrics');
    });

    it('the log counts refusals and never shows a token', async () => {
        const log = readFileSync(halo.logPath, 'utf8');
        assert.match(log, /refused \d+ requests? without a valid bearer token in the last 10 s/);
        /* rate limited: dozens of refusals, one line per 10 s at most, the
         * first one at once */
        const lines = log.split('\n').filter((l) => l.includes('without a valid bearer token'));
        const elapsed = (Date.now() - startedAt) / 1000;
        assert.ok(lines.length >= 1 && lines.length <= 1 + Math.floor(elapsed / 10),
                  `${lines.length} lines in ${elapsed} s:\n${lines.join('\n')}`);
        assert.match(lines[0], /refused 1 request without/);
        for (const t of SECRETS) assert.ok(!log.includes(t), 'token in the log');
    });

    it('halo validate never shows a token', async () => {
        const env = { [ENV_VAR]: TOKEN_ENV };
        const good = ['validate', '--config', halo.configPath];
        const r = await runHalo(good, { env });
        assert.equal(r.code, 0, describeRun(good, r));
        const out = r.stdout + r.stderr;
        for (const t of SECRETS) assert.ok(!out.includes(t), 'token in validate');

        /* a tokens file with a bad line: the error names the line, not the
         * token */
        const badFile = join(dir, 'bad-tokens');
        writeFileSync(badFile, `${TOKEN_A} agent-a\n${TOKEN_A}\n`);
        const cfg = testConfig({
            ports: halo.ports, dbPath: join(dir, 'bad.db'),
            extra: { receivers: { otlp: { auth: { bearer_token: {
                tokens_file: badFile } } } } },
        });
        const badPath = join(dir, 'bad.yaml');
        writeFileSync(badPath, toYaml(cfg));
        const bad = ['validate', '--config', badPath];
        const rb = await runHalo(bad, { env });
        assert.equal(rb.code, 1, describeRun(bad, rb));
        const outb = rb.stdout + rb.stderr;
        assert.match(outb, /line 2: duplicate token/, outb);
        for (const t of SECRETS) assert.ok(!outb.includes(t), 'token in validate error');

        /* an unset variable and an empty file */
        writeFileSync(badFile, '# nothing\n\n');
        cfg.receivers.otlp.auth.bearer_token.tokens_env = 'HALO_E2E_UNSET_VAR';
        writeFileSync(badPath, toYaml(cfg));
        const re = await runHalo(bad, { env });
        assert.equal(re.code, 1, describeRun(bad, re));
        assert.match(re.stdout + re.stderr, /holds no token/);
    });
});
