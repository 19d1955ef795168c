/*
 * cli.mjs -- run one `halo` CLI command to completion and capture what it
 * printed.
 *
 * Every run is bounded: a command still running after `timeoutMs` is
 * killed (SIGKILL) and reported as timed out, so a hanging subcommand
 * fails its test instead of stalling the suite.
 */
import { spawn } from 'node:child_process';
import { haloBin } from './util.mjs';

/*
 * Resolves to { code, signal, stdout, stderr, timedOut, output } where
 * output is stdout + stderr (for assertions that do not care which stream
 * a message went to). Never rejects for a non-zero exit.
 */
export function runHalo(args, { timeoutMs = 30000, env = {}, cwd,
                                input } = {}) {
    const bin = haloBin();
    return new Promise((resolve, reject) => {
        const child = spawn(bin, args, {
            cwd,
            env: { ...process.env, ...env },
            stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        });
        const out = [];
        const err = [];
        let timedOut = false;
        child.stdout.on('data', (d) => out.push(d));
        child.stderr.on('data', (d) => err.push(d));
        if (input !== undefined) child.stdin.end(input);
        const timer = setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
        }, timeoutMs);
        child.once('error', (e) => {
            clearTimeout(timer);
            reject(new Error(`could not run ${bin}: ${e.message}`));
        });
        child.once('close', (code, signal) => {
            clearTimeout(timer);
            const stdout = Buffer.concat(out).toString('utf8');
            const stderr = Buffer.concat(err).toString('utf8');
            resolve({ code, signal, stdout, stderr, timedOut,
                      output: stdout + stderr });
        });
    });
}

/* A one-paragraph description of a finished command, for assert messages. */
export function describeRun(args, r) {
    const clip = (s) => (s.length > 4000 ? `${s.slice(0, 4000)}...` : s);
    return `halo ${args.join(' ')} -> exit ${r.code}` +
           `${r.signal ? ` (signal ${r.signal})` : ''}` +
           `${r.timedOut ? ' (TIMED OUT, killed)' : ''}\n` +
           `--- stdout ---\n${clip(r.stdout)}\n--- stderr ---\n${clip(r.stderr)}`;
}

/* Run and require exit code 0; returns the result. */
export async function runHaloOk(args, opts) {
    const r = await runHalo(args, opts);
    if (r.code !== 0) {
        throw new Error(`expected exit 0: ${describeRun(args, r)}`);
    }
    return r;
}

/*
 * Parse the JSON a query command printed: a JSON array, an object holding
 * one array (e.g. {"traces": [...]}) or JSON lines. Returns an array.
 */
export function parseJsonRows(text, what) {
    const t = text.trim();
    try {
        const v = JSON.parse(t);
        if (Array.isArray(v)) return v;
        if (v && typeof v === 'object') {
            const arrays = Object.values(v).filter(Array.isArray);
            if (arrays.length === 1) return arrays[0];
        }
        return [v];
    } catch {
        /* not a single document: try JSON lines */
    }
    try {
        return t.split('\n').filter((l) => l.trim() !== '')
            .map((l) => JSON.parse(l));
    } catch (e) {
        throw new Error(`${what} did not print JSON (${e.message}): ` +
                        `${t.slice(0, 500)}`);
    }
}
