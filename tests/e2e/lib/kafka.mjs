/*
 * kafka.mjs -- the Kafka side of the e2e tests: the mock cluster process,
 * kcat as an independent producer/consumer, protoc as an independent OTLP
 * encoder/decoder, and the halo-ingest / halo-persist test configurations.
 *
 * The broker is `halo-kafka-mock` (librdkafka's mock cluster in its own
 * process, path in $HALO_KAFKA_MOCK): started with --commands, it prints
 * "bootstrap 127.0.0.1:PORT" once up and then answers each "down" / "up"
 * line on stdin with "ok <cmd>". It is stopped by PID (SIGTERM, SIGKILL
 * past a deadline); if the test process dies, its stdin closes and the mock
 * exits on its own.
 *
 *   const kafka = await KafkaMock.start({ topics: { otlp_spans: 4 } });
 *   try { ... kafka.bootstrap ... await kafka.down(); await kafka.up(); }
 *   finally { await kafka.stop(); }
 *
 * kcat output is read with a length-prefixed format ('%p %o %K %S\n%k%s'),
 * so binary keys and payloads come back byte-exact. protoc reads and writes
 * ExportTraceServiceRequest with the repository's proto/ files; its text
 * format prints bytes fields with C escapes, which unescapeProtoBytes()
 * turns back into bytes (ids are compared as hex).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { query } from './store.mjs';
import { sourceDir, waitFor, withTimeout } from './util.mjs';

/* Deadlines are multiplied by this under ASan+UBSan (halo is 3-5x slower). */
export const SLOW = process.env.HALO_SANITIZED === '1' ? 4 : 1;

/* ms scaled for the sanitizer build */
export const ms = (n) => n * SLOW;

/* The mock cluster binary (ctest sets HALO_KAFKA_MOCK). */
export function kafkaMockBin() {
    const bin = process.env.HALO_KAFKA_MOCK;
    if (!bin) {
        throw new Error(
            'HALO_KAFKA_MOCK is not set: run through ctest, or export ' +
                'HALO_KAFKA_MOCK=/path/to/build/halo-kafka-mock');
    }
    if (!existsSync(bin)) {
        throw new Error(`HALO_KAFKA_MOCK=${bin} does not exist (build it: ` +
                        'cmake --build <dir> --target halo-kafka-mock)');
    }
    return bin;
}

/* ---- the mock cluster ------------------------------------------------- */

export class KafkaMock {
    constructor(child) {
        this.child = child;
        this.bootstrap = null;
        this.lines = []; /* stdout lines, in order */
        this.stderr = '';
        this.exit = null;
        this.waiters = []; /* { match(line) -> bool, resolve } */
        this.exited = new Promise((resolve) => {
            child.once('exit', (code, signal) => {
                this.exit = { code, signal };
                for (const w of this.waiters) w.resolve(null);
                this.waiters = [];
                resolve(this.exit);
            });
            child.once('error', (e) => {
                this.exit = { code: null, signal: null, error: e };
                resolve(this.exit);
            });
        });
        let partial = '';
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (d) => {
            partial += d;
            let nl;
            while ((nl = partial.indexOf('\n')) >= 0) {
                this.onLine(partial.slice(0, nl));
                partial = partial.slice(nl + 1);
            }
        });
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', (d) => {
            this.stderr = (this.stderr + d).slice(-8000);
        });
        /* a closed stdin (mock gone) must not crash the test process */
        child.stdin.on('error', () => {});
    }

    onLine(line) {
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => {
            if (!w.match(line)) return true;
            w.resolve(line);
            return false;
        });
    }

    /* Resolves to the first stdout line (from now on) matching `re`, or
     * null when the process exits first. */
    nextLine(re) {
        return new Promise((resolve) => {
            if (this.exit) resolve(null);
            else this.waiters.push({ match: (l) => re.test(l), resolve });
        });
    }

    /*
     * Start a cluster. topics: { name: partitions } created up front
     * (other topics are auto-created on first use with the mock's default
     * partition count).
     */
    static async start({ topics = {}, brokers = 1,
                         timeoutMs = ms(15000) } = {}) {
        const args = ['--commands', '--brokers', String(brokers)];
        for (const [name, parts] of Object.entries(topics)) {
            args.push('--topic', `${name}:${parts}`);
        }
        const child = spawn(kafkaMockBin(), args,
                            { stdio: ['pipe', 'pipe', 'pipe'] });
        const mock = new KafkaMock(child);
        const line = await withTimeout(mock.nextLine(/^bootstrap /), timeoutMs,
                                       'halo-kafka-mock start')
            .catch((e) => e);
        if (typeof line === 'string') {
            mock.bootstrap = line.slice('bootstrap '.length).trim();
            if (!/^127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+)*$/.test(mock.bootstrap)) {
                await mock.stop();
                throw new Error(`unexpected bootstrap line "${line}"`);
            }
            return mock;
        }
        await mock.stop();
        throw new Error(`halo-kafka-mock ${args.join(' ')} did not print its ` +
                        `bootstrap line (${line ? line.message : 'exited'}, ` +
                        `exit ${JSON.stringify(mock.exit)}): ${mock.stderr}`);
    }

    get pid() { return this.child.pid; }
    get running() { return this.exit === null; }

    /* Send one command line and wait for "ok <cmd>". */
    async command(cmd, { timeoutMs = ms(10000) } = {}) {
        if (!this.running) throw new Error(`mock not running (${cmd})`);
        const answer = this.nextLine(/^(ok|error)( |$)/);
        this.child.stdin.write(`${cmd}\n`);
        const line = await withTimeout(answer, timeoutMs, `mock "${cmd}"`);
        if (line !== `ok ${cmd}`) {
            throw new Error(`mock answered "${line}" to "${cmd}" ` +
                            `(stderr: ${this.stderr})`);
        }
    }

    /* every broker refuses service / serves again */
    down() { return this.command('down'); }
    up() { return this.command('up'); }

    /* SIGTERM by PID, SIGKILL past the deadline; { code, signal, killed }.
     * Safe when not running. */
    async stop({ timeoutMs = ms(5000) } = {}) {
        if (!this.running) return { ...this.exit, killed: false };
        process.kill(this.child.pid, 'SIGTERM');
        try {
            const e = await withTimeout(this.exited, timeoutMs, 'mock exit');
            return { ...e, killed: false };
        } catch {
            process.kill(this.child.pid, 'SIGKILL');
            const e = await withTimeout(this.exited, 10000, 'mock SIGKILL exit');
            return { ...e, killed: true };
        }
    }
}

/* ---- running tools ---------------------------------------------------- */

/*
 * Run a command to completion with a deadline (SIGKILL past it).
 * Resolves to { code, signal, stdout (Buffer), stderr (string), timedOut };
 * never rejects for a non-zero exit.
 */
export function runTool(bin, args, { input, timeoutMs = ms(30000) } = {}) {
    return new Promise((resolvePromise, reject) => {
        const child = execFile(bin, args, {
            encoding: 'buffer', maxBuffer: 256 * 1024 * 1024,
            timeout: timeoutMs, killSignal: 'SIGKILL',
        }, (err, stdout, stderr) => {
            if (err && typeof err.code === 'string') {
                reject(new Error(`could not run ${bin}: ${err.message}`));
                return;
            }
            resolvePromise({
                code: err ? (err.code ?? null) : 0,
                signal: err ? (err.signal ?? null) : null,
                timedOut: Boolean(err && err.killed),
                stdout, stderr: stderr.toString('utf8'),
            });
        });
        if (input !== undefined) child.stdin.end(input);
        else child.stdin.end();
    });
}

function describeTool(bin, args, r) {
    return `${bin} ${args.join(' ')} -> exit ${r.code}` +
           `${r.timedOut ? ' (TIMED OUT)' : ''}\n--- stderr ---\n` +
           `${r.stderr.slice(0, 3000)}`;
}

/* Run kcat; throws (with its stderr) unless it exits 0. */
export async function kcat(args, opts = {}) {
    const r = await runTool('kcat', args, opts);
    if (r.code !== 0) throw new Error(describeTool('kcat', args, r));
    return r;
}

/*
 * Produce `value` (Buffer) as ONE message with kcat (the value is written to
 * a file, which kcat -P sends whole, byte-exact). key: string or null;
 * partition: number or undefined (kcat's partitioner).
 */
export async function kcatProduce(bootstrap, topic, value,
                                  { key = null, partition } = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'halo-kcat-'));
    try {
        const file = join(dir, 'message.bin');
        writeFileSync(file, value);
        const args = ['-P', '-b', bootstrap, '-t', topic, '-q'];
        if (key !== null) args.push('-k', key);
        if (partition !== undefined) args.push('-p', String(partition));
        args.push(file);
        await kcat(args);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

/*
 * Every message of `topic` from the beginning up to the current end
 * (kcat -C -e). Resolves to [{ partition, offset, key (Buffer|null),
 * value (Buffer|null) }] ordered by partition then offset.
 */
export async function kcatConsume(bootstrap, topic, { timeoutMs } = {}) {
    const args = ['-C', '-b', bootstrap, '-t', topic, '-o', 'beginning', '-e',
                  '-q', '-f', '%p %o %K %S\\n%k%s'];
    const { stdout } = await kcat(args, { timeoutMs });
    return parseKcatFrames(stdout).sort(
        (a, b) => a.partition - b.partition || a.offset - b.offset);
}

/* Parse the '%p %o %K %S\n%k%s' frames kcatConsume asks for. */
export function parseKcatFrames(buf) {
    const out = [];
    let i = 0;
    while (i < buf.length) {
        const nl = buf.indexOf(0x0a, i);
        if (nl < 0) throw new Error(`kcat output: truncated header at ${i}`);
        const head = buf.subarray(i, nl).toString('latin1');
        const m = /^(\d+) (\d+) (-1|\d+) (-1|\d+)$/.exec(head);
        if (!m) throw new Error(`kcat output: bad frame header "${head}"`);
        const klen = Number(m[3]);
        const vlen = Number(m[4]);
        i = nl + 1;
        const take = (n) => {
            if (n < 0) return null;
            if (i + n > buf.length) throw new Error('kcat output: truncated');
            const b = buf.subarray(i, i + n);
            i += n;
            return Buffer.from(b);
        };
        const key = take(klen);
        const value = take(vlen);
        out.push({ partition: Number(m[1]), offset: Number(m[2]), key, value });
    }
    return out;
}

/* ---- protoc ----------------------------------------------------------- */

export const EXPORT_REQUEST =
    'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest';

export { sourceDir };

/* The repository's proto/ directory. */
export function protoDir() {
    return join(sourceDir(), 'proto');
}

function protocArgs(mode) {
    return [`--${mode}=${EXPORT_REQUEST}`, '-I', protoDir(),
            join(protoDir(), 'opentelemetry/proto/collector/trace/v1/' +
                 'trace_service.proto')];
}

/* Binary ExportTraceServiceRequest -> protobuf text format (protoc). */
export async function protocDecode(bytes) {
    const args = protocArgs('decode');
    const r = await runTool('protoc', args, { input: bytes });
    if (r.code !== 0) throw new Error(describeTool('protoc', args, r));
    return r.stdout.toString('utf8');
}

/* Protobuf text format -> binary ExportTraceServiceRequest (protoc). */
export async function protocEncode(text) {
    const args = protocArgs('encode');
    const r = await runTool('protoc', args, { input: text });
    if (r.code !== 0) throw new Error(describeTool('protoc', args, r));
    return r.stdout;
}

/* The contents of a text-format string literal (without its quotes), C
 * escapes resolved, as bytes. */
export function unescapeProtoBytes(s) {
    const out = [];
    for (let i = 0; i < s.length; i++) {
        const c = s[i];
        if (c !== '\\') {
            out.push(...Buffer.from(c, 'utf8'));
            continue;
        }
        const n = s[++i];
        const simple = { n: 10, r: 13, t: 9, '"': 34, "'": 39, '\\': 92,
                         a: 7, b: 8, f: 12, v: 11, '?': 63 };
        if (n in simple) out.push(simple[n]);
        else if (/[0-7]/.test(n)) {
            let j = i;
            while (j < i + 3 && /[0-7]/.test(s[j] || '')) j++;
            out.push(parseInt(s.slice(i, j), 8) & 0xff);
            i = j - 1;
        } else if (n === 'x') {
            let j = i + 1;
            while (j < i + 3 && /[0-9a-fA-F]/.test(s[j] || '')) j++;
            out.push(parseInt(s.slice(i + 1, j), 16));
            i = j - 1;
        } else {
            throw new Error(`unknown escape \\${n} in "${s}"`);
        }
    }
    return Buffer.from(out);
}

/* Hex bytes as a text-format string literal body (\xHH each). */
export function escapeProtoBytes(hex) {
    return hex.match(/../g).map((h) => `\\x${h}`).join('');
}

/*
 * The spans of a decoded (text format) request: [{ traceId, spanId,
 * parentSpanId, name }] in order, ids as hex. Relies on protoc's layout:
 * one field per line, a span's scalar fields before its nested messages.
 */
export function spansOfText(text) {
    const spans = [];
    let cur = null;
    let depth = 0;
    let spanDepth = -1;
    for (const raw of text.split('\n')) {
        const line = raw.trim();
        if (line.endsWith('{')) {
            depth++;
            if (line === 'spans {') {
                cur = { traceId: null, spanId: null, parentSpanId: null,
                        name: null };
                spans.push(cur);
                spanDepth = depth;
            }
            continue;
        }
        if (line === '}') {
            if (depth === spanDepth) { cur = null; spanDepth = -1; }
            depth--;
            continue;
        }
        if (!cur || depth !== spanDepth) continue;
        const m = /^(\w+): "(.*)"$/.exec(line);
        if (!m) continue;
        const bytes = unescapeProtoBytes(m[2]);
        if (m[1] === 'trace_id') cur.traceId = bytes.toString('hex');
        else if (m[1] === 'span_id') cur.spanId = bytes.toString('hex');
        else if (m[1] === 'parent_span_id') {
            cur.parentSpanId = bytes.toString('hex');
        }
        else if (m[1] === 'name') cur.name = bytes.toString('utf8');
    }
    return spans;
}

/* ---- halo configurations ---------------------------------------------- */

/* librdkafka settings for tests: reconnect fast after a `down`, refresh
 * metadata often, no long fetch waits. */
const RDKAFKA_COMMON = {
    'rdkafka.reconnect.backoff.ms': 50,
    'rdkafka.reconnect.backoff.max.ms': 500,
    'rdkafka.topic.metadata.refresh.interval.ms': 1000,
};

function extensions(ports) {
    return {
        health_check: { endpoint: `127.0.0.1:${ports.health}` },
        metrics: { endpoint: `127.0.0.1:${ports.metrics}` },
    };
}

/*
 * halo-ingest for tests: OTLP gRPC + HTTP on free ports -> batch -> kafka.
 * `exporter` is merged into the kafka exporter's section.
 */
export function ingestConfig(bootstrap, exporter = {}) {
    return ({ ports }) => ({
        receivers: {
            otlp: {
                protocols: {
                    grpc: { endpoint: `127.0.0.1:${ports.grpc}` },
                    http: { endpoint: `127.0.0.1:${ports.http}` },
                },
            },
        },
        processors: { batch: { timeout: '20ms' } },
        exporters: {
            kafka: { brokers: [bootstrap], ...RDKAFKA_COMMON, ...exporter },
        },
        extensions: extensions(ports),
        service: {
            pipelines: {
                traces: { receivers: ['otlp'], processors: ['batch'],
                          exporters: ['kafka'] },
            },
        },
    });
}

/*
 * halo-persist for tests: kafka -> agent_identity -> batch -> sqlite at
 * the daemon's dbPath (absolute `db` in HaloDaemon.start shares a store).
 * `receiver` is merged into the kafka receiver's section.
 */
export function persistConfig(bootstrap, receiver = {}) {
    return ({ ports, dbPath }) => ({
        receivers: {
            kafka: {
                brokers: [bootstrap],
                initial_offset: 'earliest',
                commit_interval: '200ms',
                'rdkafka.session.timeout.ms': 6000,
                'rdkafka.heartbeat.interval.ms': 500,
                'rdkafka.fetch.wait.max.ms': 100,
                ...RDKAFKA_COMMON,
                ...receiver,
            },
        },
        processors: { agent_identity: {}, batch: { timeout: '50ms' } },
        exporters: { sqlite: { path: dbPath } },
        extensions: extensions(ports),
        service: {
            pipelines: {
                traces: { receivers: ['kafka'],
                          processors: ['agent_identity', 'batch'],
                          exporters: ['sqlite'] },
            },
        },
    });
}

/* ---- metrics ---------------------------------------------------------- */

/*
 * The value of one Prometheus sample from the daemon's metrics endpoint:
 * `name` with every label of `labels` (others ignored); the sum over the
 * matching series, 0 when none.
 */
export async function metricValue(daemon, name, labels = {}) {
    const url = `http://127.0.0.1:${daemon.ports.metrics}/metrics`;
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
    let sum = 0;
    for (const line of text.split('\n')) {
        if (line.startsWith('#')) continue;
        const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
        if (!m || m[1] !== name) continue;
        const have = {};
        for (const kv of (m[3] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
            have[kv[1]] = kv[2];
        }
        if (Object.entries(labels).every(([k, v]) => have[k] === String(v))) {
            sum += Number(m[4]);
        }
    }
    return sum;
}

/* ---- cleanup ------------------------------------------------------------ */

/*
 * Stop daemons in order (each by PID: SIGTERM, SIGKILL past the deadline;
 * cleanup() fails when a daemon does not exit 0), then the mock cluster,
 * which must exit 0 too. Everything is stopped whatever fails; the first
 * failure is thrown afterwards.
 */
export async function stopAll(daemons, kafka) {
    const errors = [];
    for (const d of daemons) {
        if (!d) continue;
        try {
            await d.cleanup();
        } catch (e) {
            errors.push(e);
        }
    }
    if (kafka) {
        const wasRunning = kafka.running;
        const e = await kafka.stop();
        if (wasRunning && (e.killed || e.code !== 0)) {
            errors.push(new Error(`halo-kafka-mock did not exit 0 on SIGTERM ` +
                                  `(${JSON.stringify(e)}): ${kafka.stderr}`));
        }
    }
    if (errors.length) throw errors[0];
}

/* A function giving the daemons' log tails, for failure messages. */
export function logTails(...daemons) {
    return () => daemons.filter(Boolean)
        .map((d) => `--- ${d.logPath} ---\n${d.logTail(2000)}`).join('\n');
}

/* ---- the store ---------------------------------------------------------- */

/* "trace_id/span_id" -> number of rows, for every span in the store. */
export async function storedCounts(db) {
    const rows = await query(
        db, 'SELECT trace_id, span_id, count(*) AS n FROM spans ' +
                'GROUP BY trace_id, span_id');
    return new Map(rows.map((r) => [`${r.trace_id}/${r.span_id}`, r.n]));
}

/*
 * Poll the store until every key of `keys` ("trace_id/span_id") is there.
 * On timeout the error says how many are missing, with examples, and
 * `context()` (e.g. daemon log tails).
 */
export async function waitStored(db, keys, { timeoutMs = ms(30000),
                                             what = 'spans stored',
                                             context = () => '' } = {}) {
    let missing = [...keys];
    try {
        await waitFor(async () => {
            const have = await storedCounts(db);
            missing = missing.filter((k) => !have.has(k));
            return missing.length === 0;
        }, { timeoutMs, intervalMs: 100, what });
    } catch (e) {
        throw new Error(`${e.message}: ${missing.length} of ${keys.size ??
                        keys.length} spans missing, e.g. ` +
                        `${missing.slice(0, 3).join(' ')}\n${context()}`);
    }
}

/* Keys stored more than once: [[key, n]]. */
export async function duplicateKeys(db) {
    const counts = await storedCounts(db);
    return [...counts].filter(([, n]) => n !== 1);
}
