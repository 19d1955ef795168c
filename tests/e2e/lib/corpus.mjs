/*
 * corpus.mjs -- a labeled corpus for the analyzer: synthetic agent runs
 * emitted through the official OpenTelemetry JS SDK (real OTLP bytes over
 * gRPC, HTTP/protobuf or HTTP/JSON) with injected failure patterns and
 * their ground truth (which runs of which agent carry which finding kind).
 *
 *   const corpus = buildCorpus({ seed: 7, convention: 'openinference',
 *                                window: { start, end }, agents: [...] });
 *   await emitCorpus(halo, corpus, { transport: 'grpc' });
 *   corpus.truth['support-agent'].tool_retry_loop   // Set of trace ids
 *
 * Design:
 *   - Everything is decided by a seeded PRNG (mulberry32; one stream per
 *     agent, derived from the seed and the agent id, so adding an agent
 *     changes nothing in the others). Trace and span ids come from a seeded
 *     IdGenerator given to the SDK's tracer provider: the same seed gives
 *     the same spans, ids included.
 *   - buildCorpus() is pure: it plans every run as a list of steps (LLM,
 *     tool, embedding, retrieval calls), mutates the steps of the runs
 *     chosen for a pattern, adds noise, then lays the steps out in time
 *     (explicit start/end times, no waiting) as a span tree. emitCorpus()
 *     creates the spans through the SDK and records the trace ids; the
 *     ground truth is keyed by them.
 *   - Each planned span carries `expect`: the normalized fields DESIGN §5
 *     must derive from its attributes, so checkStoredSpans() can verify
 *     the store before the analyzer reads it.
 *   - Runs fall in the window and, by default, also in the previous window
 *     (what the regressions compare with) and in the 45 minutes after the
 *     window's end: those carry the same patterns and are not in the truth
 *     (the analyzer must neither count nor cite them).
 *
 * A run: an AGENT root span, 3-8 LLM calls whose prompt tokens grow
 * naturally (each call's prompt = the previous prompt + its completion +
 * the tool results in between), tool calls with JSON arguments between the
 * LLM calls (sometimes two in parallel). Options: `rag` (an embedding and
 * a retrieval before the first LLM call), `nesting: 'chain'` (OpenInference
 * CHAIN spans around each LLM call and its tools; an error that ends the
 * run propagates to its chain). Noise in every agent, the clean one
 * included: lognormal latency jitter, and in 4% of runs one transient tool
 * error that recovered (the failed call, then ONE successful retry with the
 * same arguments), the messages spread evenly so that no one slow timeout
 * recurs on one tool; normal calls of a tool in one run never have similar
 * arguments, so nothing normal looks like a retry or a duplicate.
 *
 * Injected patterns (analyzer/README.md describes the detectors; the
 * injections are built so one pattern does not look like another kind):
 *   per run (each run carries at most one; `rate` = share of the runs):
 *     tool_retry_loop, silent_failure, duplicate_tool_call, slow_span,
 *     invalid_tool_input, unknown_tool, context_growth, error_cluster
 *   per agent, from a change point `at` (share of the window, 0.4-0.7):
 *     cost_regression (a pricier model), latency_regression (the LLM step
 *     gets ~2.2-2.6x slower: runs ~2x longer, and the step stays below the
 *     slow_span threshold of 5x its 25th percentile)
 * Pattern parameters: { kind, rate | at, tool, mode, names, message,
 * factor, to }; see APPLY.
 */
import { trace, ROOT_CONTEXT, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider,
         BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { otlpExporter, RecordingExporter } from './sdk.mjs';
import { lit, litList, query } from './store.mjs';

export const KINDS = [
    'tool_retry_loop', 'silent_failure', 'duplicate_tool_call', 'slow_span',
    'invalid_tool_input', 'unknown_tool', 'context_growth', 'cost_regression',
    'error_cluster', 'latency_regression',
];
const RUN_KINDS = new Set(KINDS.filter(
    (k) => k !== 'cost_regression' && k !== 'latency_regression'));

/* ---- the seeded PRNG ------------------------------------------------------ */

/* 32-bit hash of a string (FNV-1a then a murmur finalizer). */
function hash32(s) {
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) {
        h ^= s.charCodeAt(i);
        h = Math.imul(h, 0x01000193);
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
}

/* mulberry32 with helpers; `new Rng(seed, 'label')` is an independent
 * stream for each label. */
export class Rng {
    constructor(seed, label = '') {
        this.s = hash32(`${seed}/${label}`) || 1;
        this.spare = null;
    }

    /* uniform in [0, 1) */
    next() {
        this.s = (this.s + 0x6d2b79f5) >>> 0;
        let t = this.s;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    }

    int(lo, hi) { return lo + Math.floor(this.next() * (hi - lo + 1)); }
    real(lo, hi) { return lo + this.next() * (hi - lo); }
    chance(p) { return this.next() < p; }
    pick(arr) { return arr[Math.floor(this.next() * arr.length)]; }

    /* index drawn with the given weights */
    weighted(weights) {
        const total = weights.reduce((a, b) => a + b, 0);
        let x = this.next() * total;
        for (let i = 0; i < weights.length; i++) {
            x -= weights[i];
            if (x < 0) return i;
        }
        return weights.length - 1;
    }

    /* standard normal (Box-Muller) */
    normal() {
        if (this.spare !== null) {
            const v = this.spare;
            this.spare = null;
            return v;
        }
        let u = 0;
        while (u === 0) u = this.next();
        const v = this.next();
        const r = Math.sqrt(-2 * Math.log(u));
        this.spare = r * Math.sin(2 * Math.PI * v);
        return r * Math.cos(2 * Math.PI * v);
    }

    /* lognormal with this median and log-sd */
    lognormal(median, sigma) { return median * Math.exp(sigma * this.normal()); }

    hex(n) {
        let s = '';
        while (s.length < n) s += this.int(0, 15).toString(16);
        return s;
    }

    uuid() {
        const h = this.hex(32);
        return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-` +
               `${'89ab'[this.int(0, 3)]}${h.slice(17, 20)}-${h.slice(20)}`;
    }

    /* k distinct indices of [0, n), in increasing order */
    sample(n, k) {
        const idx = Array.from({ length: n }, (_, i) => i);
        for (let i = 0; i < k; i++) {
            const j = i + Math.floor(this.next() * (n - i));
            [idx[i], idx[j]] = [idx[j], idx[i]];
        }
        return idx.slice(0, k).sort((a, b) => a - b);
    }
}

/* An OpenTelemetry IdGenerator drawing from a seeded stream. */
export class SeededIdGenerator {
    constructor(seed, label) { this.rng = new Rng(seed, `ids/${label}`); }
    hexNonZero(n) {
        for (;;) {
            const h = this.rng.hex(n);
            if (/[^0]/.test(h)) return h;
        }
    }
    generateTraceId() { return this.hexNonZero(32); }
    generateSpanId() { return this.hexNonZero(16); }
}

/* ---- models and prices ---------------------------------------------------- */

/* USD per 1M tokens [input, output]. The cost_regression pairs are 3.75x
 * (haiku -> sonnet), 4x (mistral small -> large) and 5x (gpt-4.1-mini ->
 * gpt-4.1). genai spans name the response model with a date suffix, which
 * the prefix entries of pricesConfig() match. */
export const MODEL_PRICES = {
    'gpt-4.1-mini': [0.4, 1.6],
    'gpt-4.1': [2.0, 8.0],
    'gpt-4o-mini': [0.15, 0.6],
    'claude-3-5-haiku': [0.8, 4.0],
    'claude-3-5-sonnet': [3.0, 15.0],
    'mistral-small-latest': [1.0, 3.0],
    'mistral-large-latest': [4.0, 12.0],
    'gemini-1.5-flash': [0.075, 0.3],
};

const RESPONSE_SUFFIX = {
    'gpt-4.1-mini': '-2025-04-14',
    'gpt-4.1': '-2025-04-14',
    'gpt-4o-mini': '-2024-07-18',
    'claude-3-5-haiku': '-20241022',
    'claude-3-5-sonnet': '-20241022',
};

/* The agent_identity `prices` list for the test daemon's configuration. */
export function pricesConfig() {
    return Object.entries(MODEL_PRICES)
        .map(([m, [i, o]]) => `${m}*=${i}/${o}`);
}

/* The price entry halo picks for a model name: the longest prefix. */
export function priceOf(model) {
    let best = null;
    for (const m of Object.keys(MODEL_PRICES)) {
        if (model.startsWith(m) && (!best || m.length > best.length)) best = m;
    }
    return best ? MODEL_PRICES[best] : null;
}

export function costOf(model, inTok, outTok) {
    const p = priceOf(model);
    if (!p) return null;
    return (inTok * p[0] + outTok * p[1]) / 1e6;
}

/* ---- tools: argument and result shapes ------------------------------------ */

const WORDS = (
    'invoice refund shipping warranty battery laptop printer router ' +
    'firmware license subscription renewal discount coupon voucher ' +
    'password account profile address billing payment card transfer ' +
    'delivery courier parcel tracking return exchange damaged missing ' +
    'upgrade downgrade plan enterprise team seat quota storage backup ' +
    'restore migration database cluster replica latency outage incident ' +
    'report dashboard metric alert threshold schedule calendar meeting ' +
    'contract renewal pricing tier region europe asia america canada ' +
    'germany france japan brazil india policy compliance gdpr audit ' +
    'security token session login mobile android iphone tablet desktop ' +
    'kernel driver monitor keyboard headset camera speaker charger cable ' +
    'adapter bluetooth wifi ethernet modem antenna satellite fiber copper ' +
    'quarterly annual monthly weekly revenue margin forecast budget ' +
    'expense travel hotel flight booking cancellation voucher loyalty ' +
    'points tier gold silver bronze premium basic trial onboarding ' +
    'tutorial guide manual install configure reset update patch version ' +
    'release roadmap feature request feedback survey rating review ' +
    'complaint escalation supervisor callback ticket priority severity')
    .split(/\s+/).filter((w, i, a) => a.indexOf(w) === i);

const STATUSES = ['shipped', 'pending', 'delivered', 'active', 'processing',
                  'on_hold', 'scheduled'];

function words(rng, n) {
    const out = [];
    while (out.length < n) {
        const w = rng.pick(WORDS);
        if (!out.includes(w)) out.push(w);
    }
    return out;
}

function titleCase(s) {
    return s.split(/[_\W]+/).filter(Boolean)
        .map((w) => w[0].toUpperCase() + w.slice(1)).join('');
}

/*
 * A shape: args(rng) -> object, result(rng, args) -> string, the required
 * fields, an integer field (or null) and a wrong key for invalid calls.
 */
const SHAPES = {
    search: {
        args: (rng, nWords = rng.int(4, 6)) => ({
            query: words(rng, nWords).join(' '), top_k: rng.int(3, 10) }),
        result: (rng, a) => JSON.stringify({ results: Array.from(
            { length: rng.int(2, 4) }, () => ({
                id: `doc-${rng.int(1000, 99999)}`,
                title: words(rng, rng.int(3, 6)).join(' '),
                score: Math.round(rng.real(0.4, 0.99) * 100) / 100,
            })), query: a.query }),
        required: 'query', intField: 'top_k', wrongKey: 'q',
    },
    lookup: {
        args: (rng) => ({ id: `${rng.pick(['ORD', 'CUS', 'INV', 'TCK'])}-` +
                              `${rng.int(10000, 99999)}`,
                          fields: words(rng, 2) }),
        result: (rng, a) => JSON.stringify({
            id: a.id, state: rng.pick(STATUSES),
            updated: `2026-${String(rng.int(1, 12)).padStart(2, '0')}-` +
                     `${String(rng.int(1, 28)).padStart(2, '0')}`,
            notes: words(rng, rng.int(4, 9)).join(' ') }),
        required: 'id', intField: null, wrongKey: 'identifier',
    },
    action: {
        args: (rng) => ({ to: `${rng.pick(WORDS)}.${rng.int(1, 999)}@example.com`,
                          subject: words(rng, rng.int(3, 5)).join(' '),
                          body: words(rng, rng.int(8, 14)).join(' '),
                          priority: rng.int(1, 5) }),
        result: (rng) => JSON.stringify({ message_id: `msg_${rng.hex(12)}`,
                                          queued: true }),
        required: 'to', intField: 'priority', wrongKey: 'recipient',
    },
    compute: {
        args: (rng) => ({ expression: `${rng.int(10, 9999)} ` +
                                      `${rng.pick(['*', '+', '-', '/'])} ` +
                                      `${rng.int(2, 999)} ${rng.pick(['*', '+', '-'])} ` +
                                      `${rng.int(1, 99)}`,
                          precision: rng.int(0, 4) }),
        result: (rng) => String(Math.round(rng.real(1, 1e6) * 100) / 100),
        required: 'expression', intField: 'precision', wrongKey: 'expr',
    },
    fetch: {
        args: (rng) => ({ url: `https://docs.example.com/${rng.pick(WORDS)}/` +
                               `${rng.pick(WORDS)}-${rng.int(1, 9999)}`,
                          max_chars: rng.pick([1000, 2000, 4000]) }),
        result: (rng) => words(rng, rng.int(20, 40)).join(' ') + '.',
        required: 'url', intField: 'max_chars', wrongKey: 'link',
    },
};
const SHAPE_ORDER = ['search', 'lookup', 'action', 'fetch', 'compute'];

/* Word sets under two tokenizations (letters/digits runs; whitespace) of
 * the canonical JSON, for the similarity the retry detector uses. */
function canonical(v) {
    if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
    if (v && typeof v === 'object') {
        return `{${Object.keys(v).sort()
            .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
    }
    return JSON.stringify(v);
}

function jaccard(a, b) {
    const A = new Set(a);
    const B = new Set(b);
    let inter = 0;
    for (const x of A) if (B.has(x)) inter++;
    const union = A.size + B.size - inter;
    return union === 0 ? 1 : inter / union;
}

/* The larger Jaccard similarity of two argument objects under both
 * tokenizations. */
export function argSimilarity(a, b) {
    const ca = canonical(a);
    const cb = canonical(b);
    const alnum = (s) => s.toLowerCase().match(/[a-z0-9_]+/g) || [];
    const ws = (s) => s.split(/\s+/).filter(Boolean);
    return Math.max(jaccard(alnum(ca), alnum(cb)), jaccard(ws(ca), ws(cb)));
}

/* The smaller one: how sure two argument objects count as near-identical. */
function argSimilarityMin(a, b) {
    const ca = canonical(a);
    const cb = canonical(b);
    const alnum = (s) => s.toLowerCase().match(/[a-z0-9_]+/g) || [];
    const ws = (s) => s.split(/\s+/).filter(Boolean);
    return Math.min(jaccard(alnum(ca), alnum(cb)), jaccard(ws(ca), ws(cb)));
}

/* JSON text of args with the keys in another order and other spacing
 * (the same normalized arguments). */
function reordered(args) {
    const keys = Object.keys(args).reverse();
    return `{ ${keys.map((k) => `${JSON.stringify(k)}: ${JSON.stringify(args[k])}`)
        .join(', ')} }`;
}

/* ---- messages ----------------------------------------------------------- */

const TRANSIENT = [
    { msg: 'connection reset by peer', ms: [20, 200] },
    { msg: '503 Service Unavailable', ms: [40, 300] },
    { msg: 'timeout after 3s', ms: [3000, 3050] },
    { msg: 'upstream connect error or disconnect/reset before headers', ms: [10, 120] },
    { msg: '429 Too Many Requests', ms: [20, 120] },
    { msg: 'ECONNREFUSED 10.0.3.17:8443', ms: [2, 40] },
];

const LOOP_ERRORS = ['upstream returned 502 Bad Gateway',
                     'rate limit exceeded, retry later',
                     'backend unavailable',
                     'search index is rebuilding'];
const EMPTY_OUTPUTS = ['', '[]', '{}', 'null'];

const ERROR_TEMPLATES = [
    'order {n} not found in db shard {k}',
    'lock wait timeout exceeded on table invoices (row {n}, waited {ms} ms)',
    'payment provider rejected charge {uuid}: card expired',
    'inventory service returned 500 for sku {n} in warehouse {k}',
];

function fillTemplate(rng, tpl) {
    return tpl.replaceAll('{n}', () => String(rng.int(1000, 999999)))
        .replaceAll('{k}', () => String(rng.int(1, 16)))
        .replaceAll('{ms}', () => String(rng.int(5000, 50000)))
        .replaceAll('{uuid}', () => rng.uuid());
}

function silentPayload(rng, tool) {
    switch (rng.int(0, 3)) {
    case 0:
        return JSON.stringify({ error: rng.pick([
            `permission denied for dataset ${rng.pick(WORDS)}_${rng.int(2019, 2026)}`,
            'quota exceeded for project',
            `record ${rng.int(1000, 99999)} is locked by another transaction`]) });
    case 1:
        return `Error: ${rng.pick(['upstream API returned 401 Unauthorized',
                                   'could not parse response from backend',
                                   `${tool} backend is in maintenance mode`])}`;
    case 2:
        return 'Traceback (most recent call last):\n' +
               `  File "tools/${tool}.py", line ${rng.int(20, 300)}, in run\n` +
               '    rows = client.fetch(query)\n' +
               `  File "lib/client.py", line ${rng.int(20, 300)}, in fetch\n` +
               '    return resp.json()["data"]\n' +
               `KeyError: 'data'`;
    default:
        return JSON.stringify({ success: false,
                                message: rng.pick(['quota exceeded',
                                                   'upstream timeout',
                                                   'invalid session']),
                                request_id: `req_${rng.hex(10)}` });
    }
}

/* A rejected call: the broken arguments and the validator's message. */
function invalidCall(rng, toolName, shape, args) {
    const forms = ['pydantic', 'jsonschema', 'typeerror'];
    if (shape.intField) forms.push('type');
    const form = rng.pick(forms);
    const bad = { ...args };
    switch (form) {
    case 'pydantic':
        delete bad[shape.required];
        return { args: bad, message: `1 validation error for ${titleCase(toolName)}Args\n` +
                                     `${shape.required}\n  field required ` +
                                     '(type=value_error.missing)' };
    case 'jsonschema':
        delete bad[shape.required];
        return { args: bad, message: `'${shape.required}' is a required property` };
    case 'typeerror':
        bad[shape.wrongKey] = bad[shape.required];
        delete bad[shape.required];
        return { args: bad, message: `TypeError: ${toolName}() got an unexpected ` +
                                     `keyword argument '${shape.wrongKey}'` };
    default:
        bad[shape.intField] = rng.pick(['ten', 'a few', 'max', 'all']);
        return { args: bad, message: `invalid arguments: expected integer for ` +
                                     `'${shape.intField}'` };
    }
}

function unknownMessage(rng, name, tools) {
    switch (rng.int(0, 3)) {
    case 0: return `unknown tool: ${name}`;
    case 1: return `Tool '${name}' not found`;
    case 2: return `Error: ${name} is not a valid tool, try one of ` +
                   `[${tools.join(', ')}]`;
    default: return `no such tool: ${name}`;
    }
}

const CONTEXT_MESSAGES = [
    "This model's maximum context length is 128000 tokens. However, your " +
        'messages resulted in {t} tokens. Please reduce the length of the messages.',
    "Error code: 400 - {'error': {'message': 'context_length_exceeded', " +
        "'type': 'invalid_request_error', 'code': 'context_length_exceeded'}}",
    'prompt is too long: {t} tokens > 128000 maximum',
];

/* ---- planning runs ---------------------------------------------------------- */

/* An agent's tools: name, shape, median latency, weight (the first tools
 * are called most). */
function agentTools(rng, names) {
    return names.map((t, i) => {
        const name = typeof t === 'string' ? t : t.name;
        const shapeName = (typeof t === 'object' && t.shape) || shapeFor(name, i);
        return { name, shapeName, shape: SHAPES[shapeName],
                 latency: (typeof t === 'object' && t.latency) || rng.int(150, 600),
                 weight: Math.max(1, 4 - i) };
    });
}

/* The argument shape a tool's name suggests (else by position). */
function shapeFor(name, i) {
    const rules = [[/search|find|query|retriev/, 'search'],
                   [/calc|comput|math|convert/, 'compute'],
                   [/send|notify|email|create|post|book|open_ticket/, 'action'],
                   [/fetch|browse|read|page|download/, 'fetch'],
                   [/get|lookup|check|status|load/, 'lookup']];
    for (const [re, shape] of rules) if (re.test(name)) return shape;
    return SHAPE_ORDER[i % SHAPE_ORDER.length];
}

/* New arguments for `tool` unlike every earlier call of it in the run (so
 * a normal run never looks like a retry or a duplicate). */
function freshArgs(rng, tool, steps) {
    const earlier = steps.filter((s) => s.type === 'tool' && s.name === tool.name)
        .map((s) => s.argsObj);
    for (let i = 0; ; i++) {
        const a = tool.shape.args(rng);
        if (i > 200 || earlier.every((e) => argSimilarity(a, e) < 0.5)) return a;
    }
}

function toolStep(rng, tool, steps, extra = {}) {
    const argsObj = extra.argsObj || freshArgs(rng, tool, steps);
    return {
        type: 'tool', name: tool.name, tool, argsObj,
        args: extra.args || JSON.stringify(argsObj),
        output: 'output' in extra ? extra.output : tool.shape.result(rng, argsObj),
        error: extra.error || null,
        statusOk: extra.statusOk,
        latency: extra.latency || null,
        slow: extra.slow || 1,
        mark: extra.mark || null,
    };
}

/* The normal steps of a run: LLM, tools, LLM, ..., LLM. */
function planSteps(rng, agent, nLlm) {
    const steps = [];
    const weights = agent.tools.map((t) => t.weight);
    for (let i = 0; i < nLlm; i++) {
        steps.push({ type: 'llm' });
        if (i === nLlm - 1) break;
        const k = rng.weighted([5, 70, 25]);
        const parallel = k === 2 && rng.chance(0.4);
        for (let j = 0; j < k; j++) {
            const s = toolStep(rng, agent.tools[rng.weighted(weights)], steps);
            /* parallel tool calls: the second starts with the first */
            s.parallel = parallel && j === 1;
            steps.push(s);
        }
    }
    if (!steps.some((s) => s.type === 'tool')) {
        steps.splice(1, 0, toolStep(rng, agent.tools[0], steps));
    }
    return steps;
}

/* Index of an unmarked normal call of `tool`, inserting one after a
 * random LLM call (not the last) when the run has none. */
function callOf(rng, steps, tool) {
    const idx = steps.map((s, i) => i).filter(
        (i) => steps[i].type === 'tool' && steps[i].name === tool.name &&
               !steps[i].mark && !steps[i].error);
    if (idx.length) return rng.pick(idx);
    const llms = steps.map((s, i) => i).filter(
        (i) => steps[i].type === 'llm' && i < steps.length - 1);
    const at = rng.pick(llms) + 1;
    steps.splice(at, 0, toolStep(rng, tool, steps));
    return at;
}

function targetTool(agent, p) {
    const t = p.tool ? agent.tools.find((x) => x.name === p.tool) : agent.tools[0];
    if (!t) throw new Error(`pattern ${p.kind}: ${agent.id} has no tool ${p.tool}`);
    return t;
}

/* ---- the pattern injections -------------------------------------------------- */

const APPLY = {
    /* A failed call (ERROR or an empty output) called again 2-4 more times
     * with the same or near-identical arguments; the last retry succeeds
     * in some runs. p.mode: 'error' | 'empty' | 'mixed'. */
    tool_retry_loop(rng, agent, run, p) {
        const tool = targetTool(agent, p);
        const i = callOf(rng, run.steps, tool);
        const first = run.steps[i];
        if (tool.shapeName === 'search') {
            first.argsObj = tool.shape.args(rng, 7);
            first.args = JSON.stringify(first.argsObj);
        }
        const mode = p.mode === 'mixed' || !p.mode
            ? rng.pick(['error', 'empty']) : p.mode;
        const message = rng.pick(LOOP_ERRORS);
        const emptyOut = rng.pick(EMPTY_OUTPUTS);
        const fail = (s) => {
            s.mark = 'tool_retry_loop';
            if (mode === 'error') {
                s.error = message;
                s.output = null;
            } else {
                s.output = emptyOut;
            }
            return s;
        };
        fail(first);
        const retries = rng.int(2, 4);
        const succeedLast = rng.chance(0.4);
        const calls = [];
        for (let r = 0; r < retries; r++) {
            let argsObj = first.argsObj;
            let args = first.args;
            const v = rng.int(0, 2);
            if (v === 1) {
                args = reordered(argsObj);
            } else if (v === 2 && tool.shapeName === 'search') {
                const w = argsObj.query.split(' ');
                w[3] = rng.pick(WORDS.filter((x) => !w.includes(x)));
                const cand = { ...argsObj, query: w.join(' ') };
                if (argSimilarityMin(cand, argsObj) >= 0.72) {
                    argsObj = cand;
                    args = JSON.stringify(cand);
                }
            }
            const s = toolStep(rng, tool, run.steps, { argsObj, args });
            s.mark = 'tool_retry_loop';
            if (!(succeedLast && r === retries - 1)) fail(s);
            /* the model re-plans between some retries */
            if (rng.chance(0.3)) calls.push({ type: 'llm' });
            calls.push(s);
        }
        run.steps.splice(i + 1, 0, ...calls);
        if (!succeedLast) run.answer = `Sorry, the ${tool.name} service did not ` +
                                      'answer, please try again later.';
    },

    /* A call that reports OK/UNSET but returns an error payload. */
    silent_failure(rng, agent, run, p) {
        const tool = targetTool(agent, p);
        const s = run.steps[callOf(rng, run.steps, tool)];
        s.output = silentPayload(rng, tool.name);
        s.statusOk = rng.chance(0.5);
        s.mark = 'silent_failure';
    },

    /* A successful call repeated with identical arguments (maybe other key
     * order/spacing) and getting the same result, right away or after the
     * next LLM call. */
    duplicate_tool_call(rng, agent, run, p) {
        const tool = targetTool(agent, p);
        const i = callOf(rng, run.steps, tool);
        const orig = run.steps[i];
        orig.mark = 'duplicate_tool_call';
        const n = rng.chance(0.75) ? 1 : 2;
        let at = i + 1;
        if (rng.chance(0.5)) {
            const nextLlm = run.steps.findIndex((s, j) => j > i && s.type === 'llm');
            if (nextLlm >= 0 && nextLlm < run.steps.length - 1) at = nextLlm + 1;
        }
        for (let k = 0; k < n; k++) {
            const dup = toolStep(rng, tool, run.steps, {
                argsObj: orig.argsObj,
                args: rng.chance(0.5) ? orig.args : reordered(orig.argsObj),
                output: orig.output });
            dup.mark = 'duplicate_tool_call';
            run.steps.splice(at + k, 0, dup);
        }
    },

    /* One call of the tool takes 10-30x its normal latency (p.factor). */
    slow_span(rng, agent, run, p) {
        const tool = targetTool(agent, p);
        const s = run.steps[callOf(rng, run.steps, tool)];
        const [lo, hi] = p.factor || [10, 30];
        s.slow = rng.real(lo, hi);
        s.mark = 'slow_span';
    },

    /* A call rejected by the tool's argument validation, then the corrected
     * call succeeds. */
    invalid_tool_input(rng, agent, run, p) {
        const tool = targetTool(agent, p);
        const i = callOf(rng, run.steps, tool);
        const good = run.steps[i];
        good.mark = 'invalid_tool_input';
        const { args, message } = invalidCall(rng, tool.name, tool.shape, good.argsObj);
        const bad = toolStep(rng, tool, run.steps, { argsObj: args,
                                                     args: JSON.stringify(args),
                                                     output: null, error: message });
        bad.mark = 'invalid_tool_input';
        bad.latency = rng.int(2, 25);
        run.steps.splice(i, 0, bad);
    },

    /* The model asks for a tool the agent does not have (p.names, spread
     * evenly over the affected runs). */
    unknown_tool(rng, agent, run, p) {
        const names = p.names || [`${agent.tools[0].name}_v2`];
        const name = names[run.patternSeq % names.length];
        const fake = { name, shapeName: 'search', shape: SHAPES.search,
                       latency: 5 };
        const argsObj = SHAPES.search.args(rng);
        const tools = agent.tools.map((t) => t.name);
        /* some frameworks fail before naming the span's tool: then only
         * the message names (quotes) the requested tool */
        const unnamed = rng.chance(0.25);
        const s = toolStep(rng, fake, [], {
            argsObj, output: null,
            error: unnamed ? `Tool '${name}' not found` : unknownMessage(rng, name, tools) });
        s.unnamed = unnamed;
        s.latency = rng.int(1, 8);
        s.mark = 'unknown_tool';
        const llms = run.steps.map((x, i) => i).filter(
            (i) => run.steps[i].type === 'llm' && i < run.steps.length - 1);
        run.steps.splice(rng.pick(llms) + 1, 0, s);
    },

    /* 5-10 LLM calls whose prompts grow ~1.4-2x per call up to ~128k
     * tokens; the run fails: the last call ERROR (context length) and/or
     * the root ERROR. */
    context_growth(rng, agent, run) {
        const n = rng.int(5, 10);
        run.steps = planSteps(rng, agent, n);
        const first = rng.int(2500, 6000);
        const last = rng.int(118000, 140000);
        const g = Math.pow(last / first, 1 / (n - 1));
        run.tokenPlan = Array.from({ length: n }, (_, i) =>
            Math.round(first * Math.pow(g, i) * rng.real(0.97, 1.03)));
        const variant = rng.int(0, 2);
        const msg = rng.pick(CONTEXT_MESSAGES).replace('{t}', String(run.tokenPlan[n - 1]));
        const llms = run.steps.filter((s) => s.type === 'llm');
        if (variant !== 2) {
            llms[n - 1].error = msg;
            llms[n - 1].fatal = variant === 0;
        }
        if (variant !== 1) run.rootError = variant === 2
            ? 'agent stopped: context window exceeded' : msg;
        run.mark = 'context_growth';
    },

    /* A step fails with a recurring message (varying ids/numbers) after 1-2
     * LLM calls; no retry, the run ends with its root ERROR. */
    error_cluster(rng, agent, run, p) {
        const tool = targetTool(agent, p);
        const nLlm = rng.int(1, 2);
        const steps = [];
        for (let i = 0; i < nLlm; i++) {
            steps.push({ type: 'llm' });
            const other = agent.tools[agent.tools.length - 1];
            if (i < nLlm - 1) steps.push(toolStep(rng, other, steps));
        }
        const msg = fillTemplate(rng, p.message || agent.errorTemplate);
        const s = toolStep(rng, tool, steps, { output: null, error: msg });
        s.mark = 'error_cluster';
        s.fatal = true;
        steps.push(s);
        run.steps = steps;
        run.rootError = `tool ${tool.name} failed: ${msg}`;
        run.truncated = true;
    },
};

/* One failed call and ONE successful retry (same arguments) before a
 * normal call whose tool carries no injected pattern; `which` picks the
 * message (the caller spreads them evenly: a clump of slow timeouts on one
 * tool would be a real recurring pattern, not noise). */
function addTransient(rng, agent, run, patternTools, which) {
    const idx = run.steps.map((s, i) => i).filter(
        (i) => run.steps[i].type === 'tool' && !run.steps[i].mark &&
               !run.steps[i].error && !patternTools.has(run.steps[i].name));
    if (!idx.length) return false;
    const i = rng.pick(idx);
    const ok = run.steps[i];
    const t = TRANSIENT[which % TRANSIENT.length];
    const failed = toolStep(rng, ok.tool, [], { argsObj: ok.argsObj,
                                                args: ok.args,
                                                output: null, error: t.msg });
    failed.latency = rng.int(t.ms[0], t.ms[1]);
    failed.mark = 'transient';
    ok.mark = 'transient';
    run.steps.splice(i, 0, failed);
    return true;
}

/* ---- laying a run out in time, as a span tree ----------------------------- */

const OUT_TOKENS_TO_MS = 1 / 1000;
const EMBED_MODEL = 'text-embedding-3-small';

/* Token counts of the run's LLM calls: given (context_growth) or grown
 * from the previous prompt, its completion and the tool results. */
function tokenCounts(rng, run) {
    let prompt = rng.int(700, 1800);
    let pending = 0;
    let k = 0;
    for (const s of run.steps) {
        if (s.type === 'tool') {
            pending += Math.ceil(((s.output || s.error || '').length + s.args.length) / 4);
            continue;
        }
        if (s.type === 'retrieve') {
            pending += Math.ceil(s.output.length / 4);
            continue;
        }
        if (s.type === 'embed') continue;
        if (run.tokenPlan) {
            s.inTok = run.tokenPlan[k];
        } else {
            prompt += pending + (k > 0 ? rng.int(10, 60) : 0);
            s.inTok = prompt;
        }
        pending = 0;
        s.outTok = s.error ? 0 : rng.int(40, 250);
        prompt = (run.tokenPlan ? s.inTok : prompt) + s.outTok;
        k++;
    }
}

/* The span attributes of a convention for one step (and what halo must
 * derive from them). */
function llmNode(conv, agent, run, s, t0, t1) {
    const model = run.model;
    const respModel = conv === 'genai' ? model + (RESPONSE_SUFFIX[model] || '') : model;
    const cost = costOf(respModel, s.inTok, s.outTok);
    const text = s.error ? null
        : `${words(run.rng, run.rng.int(6, 14)).join(' ')}.`;
    let attributes;
    if (conv === 'genai') {
        attributes = {
            'gen_ai.operation.name': 'chat',
            'gen_ai.system': agent.provider,
            'gen_ai.request.model': model,
            'gen_ai.response.model': respModel,
            'gen_ai.usage.input_tokens': s.inTok,
            'gen_ai.usage.output_tokens': s.outTok,
            'gen_ai.request.temperature': 0.2,
        };
        if (s.error) attributes['error.type'] = 'context_length_exceeded';
        else attributes['gen_ai.response.finish_reasons'] = ['stop'];
    } else {
        attributes = {
            'openinference.span.kind': 'LLM',
            'llm.model_name': model,
            'llm.provider': agent.provider,
            'llm.token_count.prompt': s.inTok,
            'llm.token_count.completion': s.outTok,
            'llm.token_count.total': s.inTok + s.outTok,
            'llm.cost.total': Math.round(cost * 1e8) / 1e8,
            'input.value': `step ${s.k + 1}: ${words(run.rng, 5).join(' ')}`,
        };
        if (text !== null) attributes['output.value'] = text;
    }
    return {
        name: conv === 'genai' ? `chat ${model}` : 'ChatCompletion',
        kind: SpanKind.CLIENT, start: t0, end: t1, attributes,
        error: s.error || null, ok: !s.error && agent.setsOk,
        expect: {
            span_type: 'LLM', model: respModel, tool_name: null,
            input_tokens: s.inTok, output_tokens: s.outTok,
            input: conv === 'genai' ? null : attributes['input.value'],
            output: conv === 'genai' ? null : (text ?? null),
            cost: conv === 'genai' ? cost : attributes['llm.cost.total'],
            status_code: s.error ? 'ERROR' : (agent.setsOk ? 'OK' : 'UNSET'),
        },
    };
}

function toolNode(conv, agent, s, t0, t1) {
    const ok = s.statusOk ?? agent.setsOk;
    let attributes;
    if (conv === 'genai') {
        attributes = {
            'gen_ai.operation.name': 'execute_tool',
            'gen_ai.tool.name': s.name,
            'gen_ai.tool.call.id': `call_${s.callId}`,
            'gen_ai.tool.type': 'function',
            'gen_ai.tool.call.arguments': s.args,
        };
        if (s.output !== null) attributes['gen_ai.tool.call.result'] = s.output;
        if (s.error) attributes['error.type'] = 'tool_error';
    } else {
        attributes = {
            'openinference.span.kind': 'TOOL',
            'tool.name': s.name,
            'input.value': s.args,
            'input.mime_type': 'application/json',
        };
        if (s.output !== null) attributes['output.value'] = s.output;
    }
    if (s.unnamed) {
        delete attributes['gen_ai.tool.name'];
        delete attributes['tool.name'];
    }
    return {
        name: s.unnamed ? (conv === 'genai' ? 'execute_tool' : 'tool_call')
            : (conv === 'genai' ? `execute_tool ${s.name}` : s.name),
        kind: SpanKind.INTERNAL, start: t0, end: t1, attributes,
        error: s.error || null, ok: !s.error && ok,
        expect: {
            span_type: 'TOOL', model: null, tool_name: s.unnamed ? null : s.name,
            input_tokens: null, output_tokens: null, cost: null,
            input: s.args, output: s.output,
            status_code: s.error ? 'ERROR' : (ok ? 'OK' : 'UNSET'),
            status_message: s.error || null,
        },
    };
}

/* The embedding and retrieval spans of a RAG agent (before its first LLM
 * call). */
function ragNode(conv, s, t0, t1) {
    if (s.type === 'embed') {
        const attributes = conv === 'genai'
            ? { 'gen_ai.operation.name': 'embeddings',
                'gen_ai.request.model': EMBED_MODEL,
                'gen_ai.usage.input_tokens': s.tokens }
            : { 'openinference.span.kind': 'EMBEDDING',
                'embedding.model_name': EMBED_MODEL,
                'input.value': s.text };
        return {
            name: conv === 'genai' ? `embeddings ${EMBED_MODEL}` : 'embed_query',
            kind: SpanKind.CLIENT, start: t0, end: t1, attributes,
            expect: { span_type: 'EMBEDDING',
                      model: conv === 'genai' ? EMBED_MODEL : null,
                      input_tokens: conv === 'genai' ? s.tokens : null,
                      output_tokens: null, tool_name: null, cost: null,
                      input: conv === 'genai' ? null : s.text, output: null,
                      status_code: 'UNSET' },
        };
    }
    const attributes = conv === 'genai'
        ? { 'gen_ai.operation.name': 'retrieval', 'gen_ai.data_source.id': 'kb-main' }
        : { 'openinference.span.kind': 'RETRIEVER', 'input.value': s.query,
            'output.value': s.output };
    return {
        name: conv === 'genai' ? 'retrieval kb-main' : 'retrieve_documents',
        kind: SpanKind.CLIENT, start: t0, end: t1, attributes,
        expect: { span_type: 'RETRIEVER', model: null, tool_name: null,
                  input_tokens: null, output_tokens: null, cost: null,
                  input: conv === 'genai' ? null : s.query,
                  output: conv === 'genai' ? null : s.output,
                  status_code: 'UNSET' },
    };
}

/* OpenInference chains: each LLM call and the tool calls after it under a
 * CHAIN span ("agent_step"); a fatal error (one that ends the run) marks
 * its chain ERROR too, as an exception propagating up does. */
function chained(rng, agent, nodes) {
    const out = [];
    let group = null;
    const close = () => {
        if (!group) return;
        const kids = group.children;
        const fatal = kids.find((n) => n.fatal);
        group.start = kids[0].start - 1;
        group.end = Math.max(...kids.map((n) => n.end)) + 1;
        group.error = fatal ? fatal.error : null;
        group.ok = !fatal && agent.setsOk;
        group.expect.status_code = fatal ? 'ERROR' : (group.ok ? 'OK' : 'UNSET');
        group.expect.status_message = fatal ? fatal.error : null;
        out.push(group);
        group = null;
    };
    for (const n of nodes) {
        if (n.expect.span_type === 'LLM') {
            close();
            group = {
                name: 'agent_step', kind: SpanKind.INTERNAL,
                attributes: { 'openinference.span.kind': 'CHAIN',
                              'langgraph.step': out.length + 1 },
                children: [],
                expect: { span_type: 'CHAIN', model: null, tool_name: null,
                          input_tokens: null, output_tokens: null, cost: null,
                          input: null, output: null },
            };
        }
        if (group) group.children.push(n);
        else out.push(n);
    }
    close();
    return out;
}

/* Times (absolute ms) for every step; the root span around them. */
function layout(rng, conv, agent, run) {
    tokenCounts(rng, run);
    let t = run.start + rng.int(5, 40);
    let children = [];
    let k = 0;
    let prevStep = null;
    for (const s of run.steps) {
        let ms;
        if (s.type === 'llm') {
            s.k = k++;
            ms = agent.llmLatency * rng.lognormal(1, 0.12) *
                 (1 + s.outTok * OUT_TOKENS_TO_MS) * run.llmSlowdown;
            if (s.error) ms = rng.int(150, 600);
        } else if (s.type === 'embed') {
            ms = rng.lognormal(45, 0.3);
        } else if (s.type === 'retrieve') {
            ms = rng.lognormal(220, 0.3);
        } else {
            ms = s.latency ?? s.tool.latency * rng.lognormal(1, 0.3) * s.slow;
        }
        ms = Math.max(1, Math.round(ms));
        s.callId = rng.hex(8);
        /* a planned parallel pair only: never overlap an injected call */
        const prev = children[children.length - 1];
        const t0 = s.parallel && !s.mark && prevStep && prevStep.type === 'tool' &&
                   !prevStep.mark && !prevStep.error
            ? prev.start + rng.int(0, 5) : t;
        prevStep = s;
        const node = s.type === 'llm' ? llmNode(conv, agent, run, s, t0, t0 + ms)
            : s.type === 'tool' ? toolNode(conv, agent, s, t0, t0 + ms)
                : ragNode(conv, s, t0, t0 + ms);
        node.fatal = !!s.fatal;
        children.push(node);
        t = Math.max(t, t0 + ms + (s.type === 'llm' ? rng.int(3, 25) : rng.int(2, 15)));
    }
    if (agent.nesting === 'chain' && conv === 'openinference') {
        children = chained(rng, agent, children);
    }
    const end = t + rng.int(5, 30);
    let attributes;
    if (conv === 'genai') {
        attributes = { 'gen_ai.operation.name': 'invoke_agent',
                       'gen_ai.agent.name': agent.id,
                       'gen_ai.conversation.id': run.session };
    } else {
        attributes = { 'openinference.span.kind': 'AGENT', 'agent.name': agent.id,
                       'session.id': run.session, 'user.id': run.user,
                       'input.value': run.question };
        if (!run.rootError && !run.truncated) attributes['output.value'] = run.answer;
    }
    const rootOk = !run.rootError && agent.setsOk;
    return {
        name: conv === 'genai' ? `invoke_agent ${agent.id}` : `${agent.id}.run`,
        kind: SpanKind.SERVER, start: run.start, end, attributes,
        error: run.rootError || null, ok: rootOk, children,
        expect: {
            span_type: 'AGENT', model: null, tool_name: null,
            input_tokens: null, output_tokens: null, cost: null,
            input: conv === 'genai' ? null : run.question,
            output: conv === 'genai' ? null : (attributes['output.value'] ?? null),
            status_code: run.rootError ? 'ERROR' : (rootOk ? 'OK' : 'UNSET'),
            status_message: run.rootError || null,
        },
    };
}

/* ---- the corpus ---------------------------------------------------------------- */

/* Count the spans of a planned tree. */
function countNodes(n) {
    return 1 + (n.children || []).reduce((k, c) => k + countNodes(c), 0);
}

const MIN = 60 * 1000;

/*
 * Plan a corpus. opts: { seed, convention: 'openinference' | 'genai',
 * window: { start, end } (Date or ms), agents: [...], noiseRate,
 * outside }. An agent: { id, runs (in the window), tools: [name or
 * { name, shape, latency }], models: [name], llmCalls: [lo, hi],
 * rag (embedding + retrieval before the first LLM call), nesting ('flat' |
 * 'chain': OpenInference CHAIN spans around each LLM call and its tools),
 * patterns: [{ kind, rate | at, ... }] }.
 * `outside` { before, after } (shares of `runs`, default 0.25 / 0.08):
 * more runs in the previous window (what the regressions compare with)
 * and in the 45 minutes after the window's end, with the same patterns at
 * the same rates; the analyzer must not count or cite them.
 * Returns { seed, convention, window, agents: [{ id, spec, agent, runs }],
 * spanCount }; a run: { start, inWindow, kinds (Set), tree, spanCount,
 * transient }. emitCorpus() fills in the trace ids and `truth`.
 */
export function buildCorpus({ seed, convention = 'openinference', window,
                              agents, noiseRate = 0.04,
                              outside = { before: 0.25, after: 0.08 } }) {
    if (!['openinference', 'genai'].includes(convention)) {
        throw new Error(`unknown convention ${convention}`);
    }
    const ws = +new Date(window.start);
    const we = +new Date(window.end);
    const out = { seed, convention, window: { start: ws, end: we }, agents: [],
                  spanCount: 0 };
    for (const spec of agents) {
        const rng = new Rng(seed, `agent/${spec.id}`);
        const agent = {
            id: spec.id,
            tools: agentTools(rng, spec.tools),
            models: spec.models,
            provider: spec.provider || (spec.models[0].startsWith('claude') ? 'anthropic'
                : spec.models[0].startsWith('gpt') ? 'openai' : 'other'),
            llmLatency: spec.llmLatency || rng.int(700, 1300),
            setsOk: spec.setsOk ?? rng.chance(0.5),
            errorTemplate: rng.pick(ERROR_TEMPLATES),
            nesting: spec.nesting || 'flat',
            rag: !!spec.rag,
            changes: [],
        };
        const [lo, hi] = spec.llmCalls || [3, 8];
        const len = we - ws;
        /* segments of runs: the previous window, this one, after its end;
         * start times sorted uniform in each, with margins */
        const segments = [
            { n: Math.round((outside.before || 0) * spec.runs), inWindow: false,
              from: ws - len + 2 * MIN, to: ws - 10 * MIN },
            { n: spec.runs, inWindow: true, from: ws + 2 * MIN, to: we - 10 * MIN },
            { n: Math.round((outside.after || 0) * spec.runs), inWindow: false,
              from: we + MIN, to: we + 45 * MIN },
        ];
        const runs = [];
        const assigned = new Map();
        const runPatterns = spec.patterns.filter((p) => RUN_KINDS.has(p.kind));
        for (const seg of segments) {
            const starts = Array.from({ length: seg.n }, () => rng.real(seg.from, seg.to))
                .sort((x, y) => x - y).map(Math.round);
            const first = runs.length;
            for (const start of starts) {
                const i = runs.length;
                runs.push({
                    index: i, start, seg, inWindow: seg.inWindow, kinds: new Set(),
                    model: spec.models[0], llmSlowdown: 1, rng,
                    session: `sess-${spec.id}-${i}`,
                    user: `user-${rng.int(1, 40)}`,
                    question: `${rng.pick(['How do I', 'Why does my', 'Can you check the',
                                           'Please update the'])} ` +
                              `${words(rng, 4).join(' ')}?`,
                    answer: `${words(rng, rng.int(8, 16)).join(' ')}.`,
                });
            }
            /* per-run patterns: disjoint sets of the segment's runs */
            const free = starts.map((_, j) => first + j);
            for (const p of runPatterns) {
                const n = Math.round(p.rate * seg.n);
                if (n > free.length) throw new Error(`${spec.id}: pattern rates exceed 1`);
                const pick = rng.sample(free.length, n).map((j) => free[j]);
                pick.forEach((ri, seq) => assigned.set(ri, { p, seq }));
                for (const ri of pick) free.splice(free.indexOf(ri), 1);
            }
        }
        /* change points */
        for (const p of spec.patterns) {
            if (RUN_KINDS.has(p.kind)) continue;
            if (!KINDS.includes(p.kind)) throw new Error(`unknown kind ${p.kind}`);
            const change = ws + (p.at ?? 0.5) * len;
            const slow = p.kind === 'latency_regression'
                ? (p.factor ? rng.real(p.factor[0], p.factor[1]) : rng.real(2.2, 2.6))
                : 1;
            agent.changes.push({ kind: p.kind, at: change, slow, to: p.to });
            for (const r of runs) {
                if (r.start < change) continue;
                r.kinds.add(p.kind);
                if (p.kind === 'cost_regression') r.model = p.to;
                else r.llmSlowdown = slow;
            }
        }
        const patternTools = new Set(runPatterns.filter((p) => p.kind !== 'unknown_tool' &&
                                                               p.kind !== 'context_growth')
            .map((p) => targetTool(agent, p).name));
        for (const r of runs) {
            r.steps = planSteps(rng, agent, rng.int(lo, hi));
            const a = assigned.get(r.index);
            if (a) {
                r.patternSeq = a.seq;
                APPLY[a.p.kind](rng, agent, r, a.p);
                r.kinds.add(a.p.kind);
            }
        }
        /* noise: round(noiseRate x runs) transient errors per segment, the
         * messages taken in turn from a random offset */
        for (const seg of segments) {
            const ok = runs.filter((r) => r.seg === seg && !r.rootError && !r.truncated &&
                                          !r.kinds.has('context_growth'));
            const n = Math.min(ok.length, Math.round(noiseRate * seg.n));
            const offset = rng.int(0, TRANSIENT.length - 1);
            rng.sample(ok.length, n).forEach((j, q) => {
                ok[j].transient = addTransient(rng, agent, ok[j], patternTools, offset + q);
            });
        }
        for (const r of runs) {
            if (agent.rag) {
                const query = words(rng, 6).join(' ');
                r.steps.unshift(
                    { type: 'embed', text: query, tokens: rng.int(8, 40) },
                    { type: 'retrieve', query, output: JSON.stringify(
                        Array.from({ length: rng.int(3, 5) }, () => ({
                            id: `kb-${rng.int(100, 9999)}`,
                            text: words(rng, rng.int(12, 30)).join(' '),
                            score: Math.round(rng.real(0.5, 0.95) * 100) / 100 }))) });
            }
            r.tree = layout(rng, convention, agent, r);
            r.spanCount = countNodes(r.tree);
            out.spanCount += r.spanCount;
            delete r.rng;
            delete r.seg;
        }
        out.agents.push({ id: spec.id, spec, agent, runs });
    }
    return out;
}

/* ---- emitting ------------------------------------------------------------------- */

/* Create the spans of one planned tree (absolute ms times). */
function emitPlan(tracer, node) {
    const recs = [];
    const visit = (n, parent) => {
        const ctx = parent ? trace.setSpan(ROOT_CONTEXT, parent) : ROOT_CONTEXT;
        const span = tracer.startSpan(n.name, { kind: n.kind, attributes: n.attributes,
                                                startTime: new Date(n.start) }, ctx);
        const sc = span.spanContext();
        recs.push({ node: n, traceId: sc.traceId, spanId: sc.spanId });
        for (const c of n.children || []) visit(c, span);
        if (n.error) span.setStatus({ code: SpanStatusCode.ERROR, message: n.error });
        else if (n.ok) span.setStatus({ code: SpanStatusCode.OK });
        span.end(new Date(n.end));
    };
    visit(node, null);
    return recs;
}

/*
 * Send the corpus to a daemon through the SDK: one tracer provider per
 * agent (resource service.name = "<agent>-svc", a seeded id generator),
 * exporting over `transport` ('grpc' | 'proto' | 'json'), flushed every
 * `chunk` runs. Fills run.traceId, run.spanIds and corpus.truth:
 * { agent: { kind: Set(traceIds) } } (every kind present, empty sets for
 * the kinds not injected). Throws when an export failed.
 */
export async function emitCorpus(halo, corpus, { transport = 'grpc', gzip = false,
                                                 chunk = 60 } = {}) {
    corpus.truth = {};
    let exported = 0;
    for (const a of corpus.agents) {
        const recorder = new RecordingExporter(
            otlpExporter(halo, transport, { gzip, timeoutMillis: 30000 }));
        const provider = new BasicTracerProvider({
            resource: resourceFromAttributes({ 'service.name': `${a.id}-svc`,
                                               'deployment.environment': 'e2e' }),
            idGenerator: new SeededIdGenerator(corpus.seed, a.id),
            spanProcessors: [new BatchSpanProcessor(recorder, {
                maxExportBatchSize: 1000, maxQueueSize: 100000,
                scheduledDelayMillis: 60000, exportTimeoutMillis: 30000 })],
        });
        const tracer = provider.getTracer('halo-corpus', '1.0.0');
        const truth = Object.fromEntries(KINDS.map((k) => [k, new Set()]));
        for (let i = 0; i < a.runs.length; i++) {
            const r = a.runs[i];
            r.records = emitPlan(tracer, r.tree);
            r.traceId = r.records[0].traceId;
            if (r.inWindow) for (const k of r.kinds) truth[k].add(r.traceId);
            if ((i + 1) % chunk === 0) await provider.forceFlush();
        }
        await provider.forceFlush();
        await provider.shutdown();
        const failures = recorder.failures();
        if (failures.length) {
            throw new Error(`${transport} export of ${a.id} failed: ${failures.join('; ')}`);
        }
        exported += recorder.exported.length;
        corpus.truth[a.id] = truth;
    }
    const want = corpus.spanCount;
    if (exported !== want) {
        throw new Error(`exported ${exported} spans, planned ${want}`);
    }
    return { exported };
}

/* ---- checking the store ------------------------------------------------------ */

/* Spans stored per agent id (for a wait-until-stored poll). */
export async function storedCounts(db, corpus) {
    const ids = corpus.agents.map((a) => a.id);
    const rows = await query(db, `SELECT agent_id, count(*) AS n FROM spans WHERE ` +
                                 `agent_id IN ${litList(ids)} GROUP BY agent_id`);
    return Object.fromEntries(rows.map((r) => [r.agent_id, Number(r.n)]));
}

/* True when every agent has all its spans stored. */
export async function allStored(db, corpus) {
    const got = await storedCounts(db, corpus);
    return corpus.agents.every((a) => got[a.id] ===
                               a.runs.reduce((n, r) => n + r.spanCount, 0));
}

/*
 * Compare the stored normalized fields of every span of the corpus with
 * what DESIGN §5 derives from the attributes sent. Returns a list of
 * mismatch descriptions (empty: all good); at most `max`.
 */
export async function checkStoredSpans(db, corpus, { max = 20 } = {}) {
    const problems = [];
    for (const a of corpus.agents) {
        const rows = await query(db, `SELECT trace_id, span_id, agent_id, span_type, ` +
                                     `tool_name, model, input_tokens, output_tokens, ` +
                                     `cost, input, output, status_code, ` +
                                     `status_message, duration_ms FROM spans WHERE ` +
                                     `agent_id = ${lit(a.id)}`);
        const byKey = new Map(rows.map((r) => [`${r.trace_id}/${r.span_id}`, r]));
        for (const run of a.runs) {
            for (const rec of run.records) {
                const row = byKey.get(`${rec.traceId}/${rec.spanId}`);
                const what = `${a.id} ${rec.traceId}/${rec.spanId} "${rec.node.name}"`;
                if (!row) {
                    problems.push(`${what}: not stored with agent_id ${a.id}`);
                    continue;
                }
                const e = rec.node.expect;
                for (const [k, v] of Object.entries(e)) {
                    let got = row[k];
                    if (k === 'cost') {
                        const ok = v === null ? got === null || got === undefined
                            : Math.abs(Number(got) - v) <= 1e-9 + 1e-6 * v;
                        if (!ok) problems.push(`${what}: cost ${got}, want ${v}`);
                        continue;
                    }
                    if (typeof v === 'number' && got !== null) got = Number(got);
                    if (k === 'status_message' && v === null && got === '') got = null;
                    if (got !== v) {
                        problems.push(`${what}: ${k} ${JSON.stringify(got)}, ` +
                                      `want ${JSON.stringify(v)}`);
                    }
                }
                const dur = rec.node.end - rec.node.start;
                if (Math.abs(Number(row.duration_ms) - dur) > 0.01) {
                    problems.push(`${what}: duration_ms ${row.duration_ms}, want ${dur}`);
                }
                if (problems.length >= max) return problems;
            }
        }
    }
    return problems;
}

/* A one-line summary per agent: runs, spans, runs per injected kind (in
 * the window), runs outside the window, transient errors. */
export function describeCorpus(corpus) {
    return corpus.agents.map((a) => {
        const inside = a.runs.filter((r) => r.inWindow);
        const spans = a.runs.reduce((n, r) => n + r.spanCount, 0);
        const kinds = a.spec.patterns.map((p) => {
            const n = inside.filter((r) => r.kinds.has(p.kind)).length;
            return `${p.kind}=${n}`;
        });
        const noise = inside.filter((r) => r.transient).length;
        return `${a.id}: ${inside.length} runs (+${a.runs.length - inside.length} ` +
               `outside the window), ${spans} spans, ${kinds.join(' ') || 'clean'}, ` +
               `transient=${noise}`;
    }).join('\n');
}
