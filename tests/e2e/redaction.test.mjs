/*
 * redaction.test.mjs -- processors/redaction end to end: spans sent with
 * the OpenTelemetry JS SDK carry planted secrets (an API key, a bearer
 * token, an e-mail, a card number, a password, a custom order number) in
 * span attributes, event attributes, the resource and input.value; the
 * SQLite store and `halo export --trace-id` must contain none of them,
 * while ordinary values (and, with allowed_keys, the allowed keys) survive.
 * A second daemon runs allowed_keys + action hash: dropped keys are gone and
 * the same e-mail in two spans becomes the same keyed hash.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { rmSync } from 'node:fs';

import { HaloDaemon, makeTempDir } from './lib/daemon.mjs';
import { runHalo, describeRun } from './lib/cli.mjs';
import { metricValue } from './lib/kafka.mjs';
import { sdkClient } from './lib/sdk.mjs';
import { query, lit } from './lib/store.mjs';
import { waitFor } from './lib/util.mjs';

const SECRETS = {
    apiKey: 'sk-proj-AbCdEf1234567890GhIjKlMnOpQr',
    bearer: 'abc123XYZ789tokenvalue',
    email: 'jane.doe@example.com',
    card: '4111 1111 1111 1111',
    password: 'hunter2-correct-horse',
    order: 'ORD-12345678',
    ownerEmail: 'ops-team@example.org',
};

function assertNoSecrets(text, where) {
    for (const [name, s] of Object.entries(SECRETS)) {
        assert.ok(!text.includes(s),
                  `${where} still contains the ${name} "${s}":\n` +
                  `${text.slice(0, 3000)}`);
    }
    assert.ok(!text.includes('4111111111111111'), `${where}: card digits`);
}

/* Send one trace through the SDK; resolves to its trace id. */
async function sendTrace(halo, spans, resource) {
    const client = sdkClient(halo, { transport: 'grpc', resource });
    let traceId;
    try {
        for (const s of spans) {
            const span = client.tracer.startSpan(s.name,
                                                 { attributes: s.attributes });
            traceId = traceId || span.spanContext().traceId;
            for (const ev of s.events || []) span.addEvent(ev.name, ev.attributes);
            span.end();
        }
        await client.flush();
        assert.deepEqual(client.recorder.failures(), [], 'exports succeeded');
    } finally {
        await client.shutdown();
    }
    return traceId;
}

async function storedRows(halo, n) {
    let rows = [];
    await waitFor(async () => {
        rows = await query(halo.dbPath,
                           'SELECT * FROM spans ORDER BY start_time, span_id');
        return rows.length >= n;
    }, { timeoutMs: 15000, what: `${n} stored spans` });
    return rows;
}

async function exported(halo, traceId) {
    const args = ['export', '--trace-id', traceId, '--db', halo.dbPath];
    const r = await runHalo(args);
    assert.equal(r.code, 0, describeRun(args, r));
    return r.stdout;
}

function withPipeline(processors, redaction) {
    return {
        extra: {
            processors: { redaction },
            service: { pipelines: { traces: { processors } } },
        },
    };
}

describe('processors/redaction', { timeout: 90000 }, () => {
    describe('mask (defaults + blocked_values + blocked_keys)', () => {
        let halo;
        let traceId;
        let rows;
        before(async () => {
            halo = await HaloDaemon.start(withPipeline(
                ['agent_identity', 'redaction', 'batch'],
                { blocked_values: ['ORD-[0-9]{8}'],
                  blocked_keys: ['customer_pin'] }));
            traceId = await sendTrace(halo, [{
                name: 'llm-call',
                attributes: {
                    'openinference.span.kind': 'LLM',
                    'llm.model_name': 'gpt-4o',
                    'input.value': `charge ${SECRETS.card} for ${SECRETS.email}`,
                    'output.value': `done, order ${SECRETS.order}`,
                    'llm.prompt': `use key ${SECRETS.apiKey} now`,
                    'http.request.header.authorization':
                        `Bearer ${SECRETS.bearer}`,
                    password: SECRETS.password,
                    customer_pin: '998877',
                    'user.id': 'user-42',
                    note: 'hello world',
                },
                events: [{ name: 'login',
                           attributes: { 'user.email': SECRETS.email,
                                         step: 'two-factor' } }],
            }], { 'service.name': 'redact-e2e',
                  'deploy.owner': SECRETS.ownerEmail });
            rows = await storedRows(halo, 1);
        });
        after(async () => {
            if (halo) {
                await halo.cleanup();
            }
        });

        it('the store holds none of the planted secrets', () => {
            assert.equal(rows.length, 1);
            assertNoSecrets(JSON.stringify(rows), 'spans row');
            assert.ok(!JSON.stringify(rows).includes('998877'), 'blocked key');
        });

        it('ordinary values and the derived fields survive', () => {
            const r = rows[0];
            assert.equal(r.trace_id, traceId);
            assert.equal(r.model, 'gpt-4o');
            assert.equal(r.span_type, 'LLM');
            assert.equal(r.user_id, 'user-42');
            assert.equal(r.service_name, 'redact-e2e');
            assert.equal(r.input, 'charge [REDACTED:card] for [REDACTED:email]');
            assert.equal(r.output, 'done, order [REDACTED:pattern]');
            const attrs = JSON.parse(r.attributes);
            const text = JSON.stringify(attrs);
            assert.ok(text.includes('hello world'), text);
            assert.ok(text.includes('use key [REDACTED:api_key] now'), text);
            assert.ok(text.includes('[REDACTED:secret]'), text);
            const events = JSON.stringify(JSON.parse(r.events));
            assert.ok(events.includes('two-factor'), events);
            assert.ok(events.includes('[REDACTED:email]'), events);
            assert.ok(r.resource.includes('[REDACTED:email]'), r.resource);
        });

        it('halo export --trace-id prints none of them', async () => {
            const out = await exported(halo, traceId);
            assertNoSecrets(out, 'halo export');
            assert.ok(out.includes('hello world'), out.slice(0, 2000));
            assert.ok(out.includes('[REDACTED:card]'), out.slice(0, 2000));
        });

        it('counts redactions in /metrics', async () => {
            const n = await metricValue(halo, 'halo_processor_redactions_total',
                                        { processor: 'redaction' });
            const spans = await metricValue(
                halo, 'halo_processor_redacted_spans_total',
                { processor: 'redaction' });
            /* card, e-mail (input), order (output), api key, bearer,
             * password, pin, event e-mail, resource e-mail */
            assert.ok(n >= 9, `redactions_total ${n}`);
            assert.equal(spans, 1);
        });
    });

    describe('allowed_keys + hash', () => {
        const key = '00112233445566778899aabbccddeeff';
        let halo;
        let rows;
        let traceId;
        before(async () => {
            halo = await HaloDaemon.start(withPipeline(
                ['redaction', 'agent_identity', 'batch'],
                { action: 'hash', hash_key: key,
                  allowed_keys: ['gen_ai.*', 'input.value',
                                 'service.name'] }));
            traceId = await sendTrace(halo, [
                { name: 'a',
                  attributes: { 'gen_ai.request.model': 'gpt-4o',
                                'input.value': `from ${SECRETS.email}`,
                                note: 'must be dropped',
                                password: SECRETS.password },
                  events: [{ name: 'e',
                             attributes: { 'gen_ai.choice': 'kept',
                                           other: 'dropped-event-attr' } }] },
                { name: 'b',
                  attributes: { 'gen_ai.request.model': 'gpt-4o',
                                'input.value': `to ${SECRETS.email}` } },
            ], { 'service.name': 'hash-e2e', 'host.name': 'dropped-host' });
            rows = await storedRows(halo, 2);
        });
        after(async () => {
            if (halo) {
                await halo.cleanup();
            }
        });

        it('only allowed keys are stored, and no secret', () => {
            const text = JSON.stringify(rows);
            assertNoSecrets(text, 'spans rows');
            for (const gone of ['must be dropped', 'dropped-event-attr',
                                'dropped-host', '"note"', '"password"']) {
                assert.ok(!text.includes(gone), `${gone} in ${text}`);
            }
            for (const r of rows) {
                const attrs = JSON.parse(r.attributes);
                assert.deepEqual(Object.keys(attrs).sort(),
                                 ['gen_ai.request.model', 'input.value'],
                                 r.attributes);
                assert.equal(r.model, 'gpt-4o');
                assert.equal(r.service_name, 'hash-e2e');
            }
            assert.ok(text.includes('kept'), 'allowed event attribute');
        });

        it('the same secret hashes the same (joinable)', async () => {
            const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
            const ha = /^from (\[HASH:[0-9a-f]{16}\])$/.exec(byName.a.input);
            const hb = /^to (\[HASH:[0-9a-f]{16}\])$/.exec(byName.b.input);
            assert.ok(ha && hb, `${byName.a.input} / ${byName.b.input}`);
            assert.equal(ha[1], hb[1]);
            const out = await exported(halo, traceId);
            assertNoSecrets(out, 'halo export');
            assert.ok(out.includes(ha[1]), out.slice(0, 2000));
        });
    });

    it('action hash without a key is a configuration error', async () => {
        const dir = makeTempDir();
        let err;
        try {
            const h = await HaloDaemon.start({
                ...withPipeline(['redaction', 'batch'], { action: 'hash' }),
                dir, env: { HALO_REDACTION_HASH_KEY: '' } });
            await h.cleanup();
        } catch (e) {
            err = e;
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
        assert.ok(err, 'the daemon must refuse to start');
        assert.match(String(err.message),
                     /hash_key: required when action is hash/);
    });
});
