/*
 * util.mjs -- small helpers shared by the e2e tests: polling with a
 * deadline (the only way the suite ever waits), random OTLP ids, free
 * ports on 127.0.0.1, and the location of the binary under test.
 *
 * Rule of the suite: nothing sleeps for a fixed time to "let things
 * settle". A wait is always `waitFor(condition, {timeoutMs})`, which
 * re-checks the condition every few milliseconds and fails with a message
 * naming what it waited for once the deadline passes.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/* The repository (ctest sets HALO_SOURCE_DIR; else relative to here). */
export function sourceDir() {
    return process.env.HALO_SOURCE_DIR ||
        resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

/* The halo binary under test (ctest sets HALO_BIN). */
export function haloBin() {
    const bin = process.env.HALO_BIN;
    if (!bin) {
        throw new Error(
            'HALO_BIN is not set: run through ctest, or export ' +
                'HALO_BIN=/path/to/build/halo');
    }
    if (!existsSync(bin)) {
        throw new Error(`HALO_BIN=${bin} does not exist (build it first: ` +
                        'cmake --build <dir> --target halo)');
    }
    return bin;
}

/*
 * Poll `check` (sync or async) until it returns a truthy value, which is
 * returned. Exceptions thrown by `check` count as "not yet" and the last
 * one is reported when the deadline passes.
 */
export async function waitFor(check, { timeoutMs = 10000, intervalMs = 25,
                                       what = 'condition' } = {}) {
    const deadline = Date.now() + timeoutMs;
    let lastError = null;
    for (;;) {
        try {
            const v = await check();
            if (v) return v;
        } catch (e) {
            lastError = e;
        }
        if (Date.now() >= deadline) {
            const why = lastError ? ` (last error: ${lastError.message})` : '';
            throw new Error(`timed out after ${timeoutMs} ms waiting for ` +
                            `${what}${why}`);
        }
        await delay(intervalMs);
    }
}

/* Race a promise against a deadline; rejects with `what` in the message. */
export async function withTimeout(promise, timeoutMs, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(
            () => reject(new Error(`${what}: no answer within ${timeoutMs} ms`)),
            timeoutMs);
    });
    try {
        return await Promise.race([promise, timeout]);
    } finally {
        clearTimeout(timer);
    }
}

/* Random lower-case hex of `bytes` bytes, never all zeros. */
export function randomHex(bytes) {
    for (;;) {
        const b = randomBytes(bytes);
        if (b.some((x) => x !== 0)) return b.toString('hex');
    }
}

export const randomTraceId = () => randomHex(16);
export const randomSpanId = () => randomHex(8);

/*
 * `n` distinct free TCP ports on 127.0.0.1. All listeners are open at the
 * same time so the kernel cannot hand out one port twice; they are closed
 * before returning (a tiny window remains where another process could take
 * one -- acceptable for tests).
 */
export async function freePorts(n) {
    const servers = [];
    try {
        for (let i = 0; i < n; i++) {
            const srv = createServer();
            await new Promise((resolve, reject) => {
                srv.once('error', reject);
                srv.listen(0, '127.0.0.1', resolve);
            });
            servers.push(srv);
        }
        return servers.map((s) => s.address().port);
    } finally {
        await Promise.all(servers.map(
            (s) => new Promise((resolve) => s.close(() => resolve()))));
    }
}

/* Unix nanoseconds as a decimal string (OTLP/JSON int64 encoding). */
export function nowNanos(offsetMs = 0) {
    return (BigInt(Date.now() + offsetMs) * 1000000n).toString();
}
