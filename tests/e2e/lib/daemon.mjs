/*
 * daemon.mjs -- run `halo serve` for a test: a private temporary directory
 * with its own halo.yaml (every listener on a free 127.0.0.1 port, the
 * SQLite store at <tmp>/halo.db), the daemon's output captured in
 * <tmp>/halo.log, readiness by polling the health_check extension, and a
 * stop by PID (SIGTERM, then SIGKILL past a deadline).
 *
 *   const halo = await HaloDaemon.start({ http: { max_request_body_size: '1KiB' } });
 *   try { ... halo.grpcUrl, halo.httpUrl, halo.dbPath ... }
 *   finally { await halo.stop(); }
 *
 * The temporary directory is removed by cleanup() unless HALO_E2E_KEEP=1
 * (useful to read halo.log after a failure; its path is printed in every
 * error message).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync,
         writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePorts, haloBin, waitFor, withTimeout } from './util.mjs';

/* ---- YAML ------------------------------------------------------------- */

/* A scalar as YAML: plain when unambiguous, else double-quoted (JSON
 * escaping is valid YAML double-quoted syntax for the ASCII we write). */
function yamlScalar(v) {
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    const s = String(v);
    return /^[A-Za-z0-9_./:-]+$/.test(s) && !/^[-:]/.test(s) ? s
                                                           : JSON.stringify(s);
}

/* Block-style YAML for nested plain objects, arrays of scalars (written
 * in flow style) and scalars. An empty object is written as {}. */
export function toYaml(obj, indent = '') {
    let out = '';
    for (const [k, v] of Object.entries(obj)) {
        if (v === undefined) continue;
        if (Array.isArray(v)) {
            out += `${indent}${k}: [${v.map(yamlScalar).join(', ')}]\n`;
        } else if (v !== null && typeof v === 'object') {
            out += Object.keys(v).length === 0
                ? `${indent}${k}: {}\n`
                : `${indent}${k}:\n${toYaml(v, `${indent}  `)}`;
        } else {
            out += `${indent}${k}: ${yamlScalar(v)}\n`;
        }
    }
    return out;
}

/* Deep merge of plain objects (b wins; arrays and scalars replace). */
function merge(a, b) {
    if (!b) return a;
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) {
        out[k] = v && typeof v === 'object' && !Array.isArray(v) &&
                         a[k] && typeof a[k] === 'object' && !Array.isArray(a[k])
            ? merge(a[k], v)
            : v;
    }
    return out;
}

/*
 * The test configuration: OTLP gRPC + HTTP, agent_identity, batch (50 ms)
 * and the sqlite exporter (or, with `store` a PostgreSQL handle from
 * lib/pg.mjs, the postgres exporter), health_check and metrics extensions.
 * `opts.grpc` / `opts.http` are merged into the protocol sections,
 * `opts.extra` into the whole document.
 */
export function testConfig({ ports, dbPath, store, grpc, http, extra }) {
    const pg = store && store.kind === 'postgres';
    const exporter = pg ? 'postgres' : 'sqlite';
    const cfg = {
        receivers: {
            otlp: {
                protocols: {
                    grpc: merge({ endpoint: `127.0.0.1:${ports.grpc}` }, grpc),
                    http: merge({ endpoint: `127.0.0.1:${ports.http}` }, http),
                },
            },
        },
        processors: {
            agent_identity: {},
            batch: { timeout: '50ms' },
        },
        exporters: {
            [exporter]: pg ? { dsn: store.dsn } : { path: dbPath },
        },
        extensions: {
            health_check: { endpoint: `127.0.0.1:${ports.health}` },
            metrics: { endpoint: `127.0.0.1:${ports.metrics}` },
        },
        service: {
            pipelines: {
                traces: {
                    receivers: ['otlp'],
                    processors: ['agent_identity', 'batch'],
                    exporters: [exporter],
                },
            },
        },
    };
    return merge(cfg, extra);
}

/* The directories makeTempDir made: removed when the test file's process
 * exits (whatever the outcome), unless HALO_E2E_KEEP=1, as the daemons'
 * own directories are. */
const madeDirs = [];
process.on('exit', () => {
    if (process.env.HALO_E2E_KEEP === '1')
        return;
    for (const d of madeDirs)
        rmSync(d, { recursive: true, force: true });
});

/* A fresh temporary directory for one test file. */
export function makeTempDir(prefix = 'halo-e2e-') {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    madeDirs.push(dir);
    return dir;
}

/*
 * Write a complete test configuration into `dir` (fresh free ports) and
 * return { configPath, dbPath, ports }. Used by the CLI tests (import,
 * validate) that need a configuration without a running daemon.
 * `db` may be absolute (a store shared by several daemons); `store`, a
 * PostgreSQL handle (lib/pg.mjs), replaces the SQLite store. `config`, when
 * given, is a function ({ ports, dbPath, store, dir }) -> configuration object
 * used instead of testConfig() (e.g. the Kafka pipelines); it must keep
 * health_check on ports.health, which is how start() knows it is ready.
 */
export async function writeTestConfig(dir, { name = 'halo.yaml',
                                             db = 'halo.db', config, store,
                                             ...opts } = {}) {
    const [grpc, http, health, metrics] = await freePorts(4);
    const ports = { grpc, http, health, metrics };
    const dbPath = resolve(dir, db);
    const configPath = join(dir, name);
    const cfg = config ? config({ ports, dbPath, store, dir })
                       : testConfig({ ports, dbPath, store, ...opts });
    writeFileSync(configPath, toYaml(cfg));
    return { configPath, dbPath, ports, store: store || dbPath };
}

/* ---- the daemon ------------------------------------------------------- */

export class HaloDaemon {
    constructor(dir, configPath, dbPath, ports, store = dbPath) {
        this.dir = dir;
        this.configPath = configPath;
        this.dbPath = dbPath;
        this.store = store; /* what lib/store.mjs query() takes */
        this.ports = ports;
        this.logPath = join(dir, 'halo.log');
        this.child = null;
        this.exit = null; /* { code, signal } once exited */
        this.exited = null; /* promise of this.exit */
        this.env = null; /* extra environment variables for halo serve */
    }

    /* Write a configuration into a new temp dir, start, wait until ready.
     * opts.env: extra environment variables for `halo serve`. */
    static async start(opts = {}) {
        const dir = opts.dir || makeTempDir();
        const { configPath, dbPath, ports, store } =
            await writeTestConfig(dir, opts);
        const d = new HaloDaemon(dir, configPath, dbPath, ports, store);
        d.env = opts.env || null;
        await d.spawn();
        return d;
    }

    get grpcTarget() { return `127.0.0.1:${this.ports.grpc}`; }
    get grpcUrl() { return `http://127.0.0.1:${this.ports.grpc}`; }
    get httpUrl() { return `http://127.0.0.1:${this.ports.http}`; }
    get tracesUrl() { return `${this.httpUrl}/v1/traces`; }
    get healthUrl() { return `http://127.0.0.1:${this.ports.health}/`; }
    get pid() { return this.child ? this.child.pid : null; }
    get running() { return this.child !== null && this.exit === null; }

    /* The last `max` characters of the daemon's log. */
    logTail(max = 3000) {
        if (!existsSync(this.logPath)) return '(no log)';
        const s = readFileSync(this.logPath, 'utf8');
        return s.length > max ? `...${s.slice(-max)}` : s;
    }

    /* An Error whose message carries the log tail and where to find it. */
    fail(msg) {
        return new Error(`${msg}\n--- ${this.logPath} (tail) ---\n` +
                         `${this.logTail()}`);
    }

    /* Start `halo serve` on this config (again, after a stop or a kill)
     * and wait for the health endpoint to answer 200. */
    async spawn({ readyTimeoutMs = 15000 } = {}) {
        if (this.running) throw new Error('daemon already running');
        const fd = openSync(this.logPath, 'a');
        try {
            const env = { ...process.env, ...(this.env || {}) };
            this.child = spawn(haloBin(), ['serve', '--config', this.configPath],
                               { stdio: ['ignore', fd, fd], env });
        } finally {
            closeSync(fd);
        }
        this.exit = null;
        const child = this.child;
        this.exited = new Promise((resolve) => {
            child.once('exit', (code, signal) => {
                this.exit = { code, signal };
                resolve(this.exit);
            });
            child.once('error', (e) => {
                this.exit = { code: null, signal: null, error: e };
                resolve(this.exit);
            });
        });
        const state = await waitFor(
            async () => (this.exit ? 'exited' : (await this.healthy()) && 'ready'),
            { timeoutMs: readyTimeoutMs, intervalMs: 50,
              what: `health check ${this.healthUrl} to answer 200` })
            .catch((e) => e);
        if (state === 'ready') return;
        const why = state === 'exited'
            ? `halo serve --config ${this.configPath} exited during start-up ` +
                  `(code ${this.exit.code}, signal ${this.exit.signal})`
            : state.message;
        await this.stop();
        throw this.fail(why);
    }

    /* True when GET <health>/ answers 200 right now. */
    async healthy() {
        try {
            const res = await fetch(this.healthUrl,
                                    { signal: AbortSignal.timeout(2000) });
            await res.arrayBuffer();
            return res.status === 200;
        } catch {
            return false;
        }
    }

    /* The health endpoint's status code (or an Error). */
    async healthStatus() {
        const res = await fetch(this.healthUrl,
                                { signal: AbortSignal.timeout(5000) });
        await res.arrayBuffer();
        return res.status;
    }

    /*
     * SIGTERM, wait up to `timeoutMs` for the exit, SIGKILL after that.
     * Resolves to { code, signal, killed } (killed: the SIGKILL fallback
     * was needed). Safe when not running.
     */
    async stop({ timeoutMs = 15000 } = {}) {
        if (!this.running) return { ...(this.exit || {}), killed: false };
        process.kill(this.child.pid, 'SIGTERM');
        try {
            const e = await withTimeout(this.exited, timeoutMs, 'SIGTERM exit');
            return { ...e, killed: false };
        } catch {
            process.kill(this.child.pid, 'SIGKILL');
            const e = await withTimeout(this.exited, 10000, 'SIGKILL exit');
            return { ...e, killed: true };
        }
    }

    /* kill -9 by PID and wait until the process is gone. */
    async kill9() {
        if (!this.running) throw this.fail('kill9: daemon is not running');
        process.kill(this.child.pid, 'SIGKILL');
        return withTimeout(this.exited, 10000, 'SIGKILL exit');
    }

    /* Stop (if running) and remove the temp dir unless HALO_E2E_KEEP=1. */
    async cleanup() {
        try {
            const wasRunning = this.running;
            const e = await this.stop();
            /* a daemon we stop must drain and exit 0: under ASan+UBSan a
             * sanitizer report (leak, UB) makes it exit non-zero */
            if (wasRunning && (e.killed || e.code !== 0)) {
                throw this.fail(`did not exit cleanly on SIGTERM (code ` +
                                `${e.code}, signal ${e.signal}` +
                                `${e.killed ? ', needed SIGKILL' : ''})`);
            }
        } finally {
            if (process.env.HALO_E2E_KEEP !== '1') {
                rmSync(this.dir, { recursive: true, force: true });
            }
        }
    }
}
