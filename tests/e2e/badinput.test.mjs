/*
 * badinput.test.mjs -- what halo answers to malformed, oversized or
 * misdirected requests (DESIGN §4), and how its CLI treats bad usage and
 * bad configuration (§3, §8).
 *
 * Every network case asserts the exact answer AND that the daemon keeps
 * serving afterwards: the health check still answers 200 and a fresh good
 * export is acknowledged and in the store.
 *
 * The daemon runs with 1 KiB request limits (HTTP max_request_body_size,
 * gRPC max_recv_msg_size) so "oversized" is cheap to produce; the good
 * requests used as probes are a few hundred bytes.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { describeRun, runHalo } from './lib/cli.mjs';
import { HaloDaemon, makeTempDir, writeTestConfig } from './lib/daemon.mjs';
import { decodeExportResponse, decodeRpcStatus, EXPORT_METHOD, grpc,
         grpcClient, grpcUnary, post, postJson, request, span,
         toJson, toProtobuf } from './lib/otlp.mjs';
import { lit, query } from './lib/store.mjs';
import { freePorts } from './lib/util.mjs';

const GRPC = grpc.status;
const INVALID_ARGUMENT = 3;

describe('bad input over the network', { timeout: 90000 }, () => {
    let halo;
    let client;

    before(async () => {
        halo = await HaloDaemon.start({
            grpc: { max_recv_msg_size: '1KiB' },
            http: { max_request_body_size: '1KiB' },
        });
        client = grpcClient(halo.grpcTarget);
    });

    after(async () => {
        if (client) client.close();
        if (halo) await halo.cleanup();
    });

    /* A small valid request: one span, one resource. */
    const goodRequest = (attributes = {}) =>
        request([span({ name: 'probe', attributes })],
                { resource: { 'service.name': 'badinput-probe' } });

    /* The store holds exactly one row for this span. */
    async function assertStored(s, what) {
        const rows = await query(
            halo.dbPath,
            `SELECT count(*) AS n FROM spans WHERE trace_id = ${lit(s.traceId)} ` +
                `AND span_id = ${lit(s.spanId)}`);
        assert.equal(rows[0].n, 1,
                     `${what}: span ${s.traceId}/${s.spanId} rows in the store` +
                         `\n--- daemon log ---\n${halo.logTail()}`);
    }

    /* Health 200, and good exports over HTTP/JSON and gRPC are stored. */
    async function assertStillServing(after) {
        assert.ok(halo.running, `halo exited after ${after}: ` +
                                `${JSON.stringify(halo.exit)}\n${halo.logTail()}`);
        assert.equal(await halo.healthStatus(), 200,
                     `health check after ${after}`);
        const req = goodRequest();
        const res = await postJson(halo.tracesUrl, req);
        assert.equal(res.status, 200,
                     `good JSON export after ${after}: ${res.body}`);
        await assertStored(req.resourceSpans[0].scopeSpans[0].spans[0],
                           `good JSON export after ${after}`);
        const req2 = goodRequest();
        const g = await grpcUnary(client, EXPORT_METHOD, toProtobuf(req2));
        assert.ok(g.ok, `good gRPC export after ${after}: code ${g.code} ` +
                        `${g.details}`);
        await assertStored(req2.resourceSpans[0].scopeSpans[0].spans[0],
                           `good gRPC export after ${after}`);
    }

    /* A protobuf error body: google.rpc.Status with a message. */
    function assertPbStatus(res, what) {
        assert.match(String(res.headers['content-type']),
                     /^application\/x-protobuf/,
                     `${what}: the answer uses the request's content type`);
        const st = decodeRpcStatus(res.body);
        assert.ok(st.message.length > 0,
                  `${what}: google.rpc.Status has a message (code ${st.code})`);
        return st;
    }

    /* A JSON error body: {code, message}. */
    function jsonStatus(res, what) {
        assert.match(String(res.headers['content-type']), /^application\/json/,
                     `${what}: the answer uses the request's content type`);
        let st;
        assert.doesNotThrow(() => { st = JSON.parse(res.body.toString()); },
                            `${what}: body is JSON: ${res.body}`);
        assert.equal(typeof st.message, 'string', `${what}: message`);
        return st;
    }

    it('a good export is acknowledged and stored', async () => {
        await assertStillServing('start-up');
    });

    it('truncated protobuf -> 400 with a google.rpc.Status', async () => {
        const whole = toProtobuf(goodRequest({ pad: 'x'.repeat(100) }));
        const cut = whole.subarray(0, Math.floor(whole.length / 2));
        const res = await post(halo.tracesUrl, cut,
                               { contentType: 'application/x-protobuf' });
        assert.equal(res.status, 400, `status (body ${res.body})`);
        const st = assertPbStatus(res, 'truncated protobuf');
        assert.equal(st.code, INVALID_ARGUMENT, 'google.rpc.Status.code');
        await assertStillServing('a truncated protobuf body');
    });

    it('garbage bytes as protobuf -> 400', async () => {
        /* a varint longer than 10 bytes can never be valid protobuf */
        const garbage = Buffer.alloc(64, 0xff);
        const res = await post(halo.tracesUrl, garbage,
                               { contentType: 'application/x-protobuf' });
        assert.equal(res.status, 400, `status (body ${res.body})`);
        assertPbStatus(res, 'garbage protobuf');
        await assertStillServing('garbage protobuf');
    });

    it('truncated JSON -> 400 with a message naming the problem', async () => {
        const text = toJson(goodRequest());
        const res = await post(halo.tracesUrl, text.slice(0, text.length - 20),
                               { contentType: 'application/json' });
        assert.equal(res.status, 400, `status (body ${res.body})`);
        const st = jsonStatus(res, 'truncated JSON');
        assert.match(st.message, /json|unexpected|end|truncat|premature/i,
                     `message names the problem: ${st.message}`);
        await assertStillServing('truncated JSON');
    });

    it('invalid JSON -> 400, message mentions JSON', async () => {
        const res = await post(halo.tracesUrl, '{"resourceSpans": [ nope ]}',
                               { contentType: 'application/json' });
        assert.equal(res.status, 400, `status (body ${res.body})`);
        const st = jsonStatus(res, 'invalid JSON');
        assert.match(st.message, /JSON/, `message: ${st.message}`);
        await assertStillServing('invalid JSON');
    });

    it('JSON of the wrong shape -> 400 naming the field', async () => {
        const bad = { resourceSpans: [{ scopeSpans: [{ spans: [
            { traceId: 'abc', spanId: '0102030405060708', name: 'x' },
        ] }] }] };
        const res = await post(halo.tracesUrl, JSON.stringify(bad),
                               { contentType: 'application/json' });
        /* a bad trace id is a per-span reject (partial success) or a 400;
         * either way it must not be stored and the answer must say so */
        if (res.status === 200) {
            const body = JSON.parse(res.body.toString());
            assert.equal(String(body.partialSuccess?.rejectedSpans), '1',
                         `partial success for a 3-digit traceId: ${res.body}`);
        } else {
            assert.equal(res.status, 400, `status (body ${res.body})`);
            const st = jsonStatus(res, 'bad traceId');
            assert.match(st.message, /traceId|trace_id/i, st.message);
        }
        await assertStillServing('a JSON span with a 3-digit traceId');
    });

    it('text/plain -> 415', async () => {
        const res = await post(halo.tracesUrl, toJson(goodRequest()),
                               { contentType: 'text/plain' });
        assert.equal(res.status, 415, `status (body ${res.body})`);
        await assertStillServing('a text/plain body');
    });

    it('body over max_request_body_size -> 413', async () => {
        const big = goodRequest({ blob: 'y'.repeat(2048) });
        for (const [label, send] of [
            ['JSON', () => postJson(halo.tracesUrl, big)],
            ['protobuf', () => post(halo.tracesUrl, toProtobuf(big),
                                    { contentType: 'application/x-protobuf' })],
        ]) {
            const res = await send();
            assert.equal(res.status, 413, `${label}: status (body ${res.body})`);
        }
        const s = big.resourceSpans[0].scopeSpans[0].spans[0];
        const rows = await query(
            halo.dbPath,
            `SELECT count(*) AS n FROM spans WHERE span_id = ${lit(s.spanId)}`);
        assert.equal(rows[0].n, 0, 'the oversized request must not be stored');
        await assertStillServing('an oversized HTTP body');
    });

    it('gzip body inflating past max_request_body_size -> 413', async () => {
        /* 64 KiB of zeros gzip to ~100 bytes: the limit applies to what
         * the body inflates to, or a tiny request could exhaust memory */
        const big = goodRequest({ blob: '0'.repeat(65536) });
        const res = await postJson(halo.tracesUrl, big, { gzip: true });
        assert.equal(res.status, 413, `status (body ${res.body})`);
        await assertStillServing('a gzip bomb');
    });

    it('gzip body that is not gzip -> 400', async () => {
        const res = await post(halo.tracesUrl, toJson(goodRequest()),
                               { contentType: 'application/json',
                                 headers: { 'content-encoding': 'gzip' } });
        assert.equal(res.status, 400, `status (body ${res.body})`);
        await assertStillServing('a body claiming gzip that is not');
    });

    it('message over max_recv_msg_size -> gRPC RESOURCE_EXHAUSTED', async () => {
        const big = goodRequest({ blob: 'z'.repeat(2048) });
        const g = await grpcUnary(client, EXPORT_METHOD, toProtobuf(big));
        assert.equal(g.ok, false, 'an oversized message must be refused');
        assert.equal(g.code, GRPC.RESOURCE_EXHAUSTED,
                     `gRPC status ${g.code} (${g.details})`);
        await assertStillServing('an oversized gRPC message');
    });

    it('garbage protobuf over gRPC -> INVALID_ARGUMENT', async () => {
        const g = await grpcUnary(client, EXPORT_METHOD, Buffer.alloc(64, 0xff));
        assert.equal(g.ok, false, 'garbage must be refused');
        assert.equal(g.code, GRPC.INVALID_ARGUMENT,
                     `gRPC status ${g.code} (${g.details})`);
        assert.ok(g.details && g.details.length > 0, 'a message says why');
        await assertStillServing('garbage over gRPC');
    });

    it('GET /v1/traces -> 405', async () => {
        const res = await post(halo.tracesUrl, undefined, { method: 'GET' });
        assert.equal(res.status, 405, `status (body ${res.body})`);
        await assertStillServing('GET /v1/traces');
    });

    it('POST /nope -> 404', async () => {
        const res = await post(`${halo.httpUrl}/nope`, toJson(goodRequest()),
                               { contentType: 'application/json' });
        assert.equal(res.status, 404, `status (body ${res.body})`);
        await assertStillServing('POST /nope');
    });

    it('unknown gRPC method -> UNIMPLEMENTED', async () => {
        const g = await grpcUnary(
            client, '/opentelemetry.proto.collector.trace.v1.TraceService/Nope',
            toProtobuf(goodRequest()));
        assert.equal(g.ok, false, 'an unknown method must fail');
        assert.equal(g.code, GRPC.UNIMPLEMENTED,
                     `gRPC status ${g.code} (${g.details})`);
        await assertStillServing('an unknown gRPC method');
    });

    it('all-zero traceId -> partial success, the good span stored (JSON)',
       async () => {
           const zero = span({ name: 'zero-trace',
                               traceId: '0'.repeat(32) });
           const good = span({ name: 'good-neighbour' });
           const res = await postJson(halo.tracesUrl, request([zero, good]));
           assert.equal(res.status, 200, `status (body ${res.body})`);
           const body = JSON.parse(res.body.toString());
           assert.ok(body.partialSuccess, `partialSuccess in ${res.body}`);
           assert.equal(body.partialSuccess.rejectedSpans, '1',
                        `rejectedSpans (an int64: a JSON string) in ${res.body}`);
           assert.ok(body.partialSuccess.errorMessage,
                     `errorMessage says why: ${res.body}`);
           await assertStored(good, 'the good span of a partial success');
           const rows = await query(
               halo.dbPath,
               `SELECT count(*) AS n FROM spans WHERE span_id = ` +
                   `${lit(zero.spanId)}`);
           assert.equal(rows[0].n, 0, 'the rejected span is not stored');
           await assertStillServing('a partial success');
       });

    it('all-zero spanId -> partial success (protobuf and gRPC)', async () => {
        const mk = () => request([span({ name: 'zero-span',
                                         spanId: '0'.repeat(16) }),
                                  span({ name: 'good-neighbour' })]);
        const r1 = mk();
        const res = await post(halo.tracesUrl, toProtobuf(r1),
                               { contentType: 'application/x-protobuf' });
        assert.equal(res.status, 200, `HTTP status (body ${res.body})`);
        assert.equal(decodeExportResponse(res.body).partialSuccess?.rejectedSpans,
                     '1', 'HTTP/protobuf partialSuccess.rejectedSpans');
        await assertStored(r1.resourceSpans[0].scopeSpans[0].spans[1],
                           'good span (HTTP/protobuf)');
        const r2 = mk();
        const g = await grpcUnary(client, EXPORT_METHOD, toProtobuf(r2));
        assert.ok(g.ok, `gRPC: code ${g.code} ${g.details}`);
        assert.equal(decodeExportResponse(g.response).partialSuccess?.rejectedSpans,
                     '1', 'gRPC partialSuccess.rejectedSpans');
        await assertStored(r2.resourceSpans[0].scopeSpans[0].spans[1],
                           'good span (gRPC)');
    });
});

describe('bad configuration and bad usage', { timeout: 60000 }, () => {
    let dir;
    let badPath;
    /* line numbers of the three mistakes in bad.yaml (1-based) */
    const LINES = { unknownKey: 6, badDuration: 11, undefinedExporter: 20 };

    before(async () => {
        dir = makeTempDir('halo-e2e-config-');
        const [p1, p2, p3, p4] = await freePorts(4);
        const text = [
            'receivers:', //                                   1
            '  otlp:', //                                       2
            '    protocols:', //                                3
            '      grpc:', //                                   4
            `        endpoint: 127.0.0.1:${p1}`, //             5
            '        bogus_key: 1', //                          6 unknown key
            '      http:', //                                   7
            `        endpoint: 127.0.0.1:${p2}`, //             8
            'processors:', //                                   9
            '  batch:', //                                      10
            '    timeout: 5 parsecs', //                        11 bad duration
            'exporters:', //                                    12
            '  sqlite:', //                                     13
            `    path: ${join(dir, 'halo.db')}`, //             14
            'service:', //                                      15
            '  pipelines:', //                                  16
            '    traces:', //                                   17
            '      receivers: [otlp]', //                       18
            '      processors: [batch]', //                     19
            '      exporters: [sqlite, nowhere]', //            20 undefined
            'extensions:', //                                   21
            `  health_check: { endpoint: "127.0.0.1:${p3}" }`, // 22
            `  metrics: { endpoint: "127.0.0.1:${p4}" }`, //    23
            '',
        ].join('\n');
        badPath = join(dir, 'bad.yaml');
        writeFileSync(badPath, text);
    });

    after(() => {
        if (dir && process.env.HALO_E2E_KEEP !== '1') {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    /* The three errors, each on its own line as compilers write them
     * (bad.yaml:<line>:<col>: error: ...), in line order. */
    function assertThreeErrors(r, args) {
        const lines = r.output.split('\n');
        const expect = [
            ['unknown key', LINES.unknownKey, /bogus_key/],
            ['bad duration', LINES.badDuration, /parsecs|duration|timeout/i],
            ['undefined exporter', LINES.undefinedExporter, /nowhere/],
        ];
        let last = -1;
        for (const [what, line, re] of expect) {
            const at = new RegExp(`bad\\.yaml:${line}:\\d+: error: `);
            const i = lines.findIndex((l) => at.test(l) && re.test(l));
            assert.ok(i >= 0, `${what}: no line "bad.yaml:${line}:COL: error:" ` +
                              `matching ${re} in\n${describeRun(args, r)}`);
            assert.ok(i > last, `${what}: not in line order in\n` +
                                describeRun(args, r));
            last = i;
        }
    }

    it('halo validate lists every error with file:line and exits 1',
       async () => {
           const args = ['validate', '--config', badPath];
           const r = await runHalo(args);
           assert.equal(r.code, 1, describeRun(args, r));
           assertThreeErrors(r, args);
       });

    it('halo serve refuses the same config with the same errors', async () => {
        const args = ['serve', '--config', badPath];
        const r = await runHalo(args, { timeoutMs: 15000 });
        assert.equal(r.timedOut, false, `serve started on a bad config:\n` +
                                        describeRun(args, r));
        assert.equal(r.code, 1, describeRun(args, r));
        assertThreeErrors(r, args);
    });

    it('halo validate accepts a good config (exit 0)', async () => {
        const { configPath } = await writeTestConfig(dir, { name: 'good.yaml' });
        const args = ['validate', '--config', configPath];
        const r = await runHalo(args);
        assert.equal(r.code, 0, describeRun(args, r));
    });

    it('halo validate on a missing file exits 1 naming it', async () => {
        const missing = join(dir, 'does-not-exist.yaml');
        const args = ['validate', '--config', missing];
        const r = await runHalo(args);
        assert.equal(r.code, 1, describeRun(args, r));
        assert.ok(r.output.includes('does-not-exist.yaml'), describeRun(args, r));
    });

    it('halo validate --components describes every component and its keys',
       async () => {
           let args = ['validate', '--components'];
           let r = await runHalo(args);
           assert.equal(r.code, 0, describeRun(args, r));
           for (const t of ['receiver/otlp', 'receiver/kafka', 'exporter/kafka',
                            'exporter/sqlite', 'processor/batch',
                            'extension/metrics']) {
               assert.ok(r.stdout.includes(t), `${t} missing: ${r.stdout}`);
           }
           args = ['validate', '--components', 'exporter/kafka'];
           r = await runHalo(args);
           assert.equal(r.code, 0, describeRun(args, r));
           for (const key of ['brokers', 'max_message_bytes', 'rdkafka.*',
                              'otlp_spans', 'one of: none, gzip']) {
               assert.ok(r.stdout.includes(key), `${key} missing: ${r.stdout}`);
           }
           assert.ok(!r.stdout.includes('receiver/kafka'),
                     'only the asked component is described');
           args = ['validate', '--components', 'nope'];
           r = await runHalo(args);
           assert.equal(r.code, 2, describeRun(args, r));
           assert.ok(r.stderr.includes('no component type "nope"'),
                     describeRun(args, r));
       });

    it('an unknown command exits 2', async () => {
        const args = ['bogus'];
        const r = await runHalo(args);
        assert.equal(r.code, 2, describeRun(args, r));
        assert.ok(r.stderr.length > 0, 'usage errors are explained on stderr');
    });

    it('an unknown option exits 2', async () => {
        const args = ['traces', 'list', '--no-such-option'];
        const r = await runHalo(args);
        assert.equal(r.code, 2, describeRun(args, r));
    });

    it('a --db that is not a SQLite database is named as such (exit 1)',
       async () => {
           const file = join(dir, 'notes.txt');
           writeFileSync(file, 'these are not the spans you are looking for\n'.repeat(200));
           const args = ['traces', 'list', '--db', file];
           const r = await runHalo(args);
           assert.equal(r.code, 1, describeRun(args, r));
           assert.match(r.stderr, /"[^"]*notes\.txt" is not a SQLite database/,
                        describeRun(args, r));
       });

    /* one line in the same form from every command, naming the option */
    for (const [cmd, bad, want] of [
        [['serve'], ['--no-such-option'], /unknown option "--no-such-option"/],
        [['validate'], ['-x'], /unknown option "-x"/],
        [['import'], ['--db'], /option --db needs a value/],
        [['analyze'], ['--bogus'], /unknown option "--bogus"/],
        [['export'], ['--trace-id'], /option --trace-id needs a value/],
        [['traces', 'list'], ['--json=1'], /option --json takes no value/],
        [['import'], ['-xq'], /unknown option "-x"/],
        [['serve'], ['--log-level', 'loud'],
         /invalid log level "loud": expected debug, info, warn, error or off/],
        [['serve'], ['extra'], /unexpected argument "extra"/],
        [['validate'], ['--components', '-c', 'x.yaml'],
         /--components and --config exclude each other/],
    ]) {
        it(`halo ${[...cmd, ...bad].join(' ')} is one usage line (exit 2)`,
           async () => {
               const args = [...cmd, ...bad];
               const r = await runHalo(args);
               assert.equal(r.code, 2, describeRun(args, r));
               const lines = r.stderr.trim().split('\n');
               assert.equal(lines.length, 1, describeRun(args, r));
               assert.match(lines[0], new RegExp(`^halo ${cmd.join(' ')}: `));
               assert.match(lines[0], want, describeRun(args, r));
               assert.match(lines[0], /\(see halo [a-z ]+ --help\)$/);
           });
    }

    it('halo traces list --db DIR says it is a directory (exit 1)', async () => {
        const args = ['traces', 'list', '--db', dir];
        const r = await runHalo(args);
        assert.equal(r.code, 1, describeRun(args, r));
        assert.match(r.stderr, /could not open database "[^"]*": it is a directory/,
                     describeRun(args, r));
    });

    /* the top level: an option before the command, a near miss */
    for (const [args, want] of [
        [['--config', 'x.yaml', 'traces', 'list'], /options go after the command/],
        [['trace', 'list'], /unknown command "trace" \(did you mean "traces"\?/],
    ]) {
        it(`halo ${args.join(' ')} says what was meant (exit 2)`, async () => {
            const r = await runHalo(args);
            assert.equal(r.code, 2, describeRun(args, r));
            assert.match(r.stderr, want, describeRun(args, r));
        });
    }

    for (const args of [['--help'], ['traces', '--help'], ['serve', '--help'],
                        ['validate', '--help'], ['import', '--help'],
                        ['export', '--help'], ['agents', '--help']]) {
        it(`halo ${args.join(' ')} exits 0 with usage`, async () => {
            const r = await runHalo(args);
            assert.equal(r.code, 0, describeRun(args, r));
            assert.match(r.stdout, /usage/i, describeRun(args, r));
        });
    }
});
