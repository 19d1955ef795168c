/*
 * pg.mjs -- a throwaway PostgreSQL 15 server for the e2e tests, through
 * tests/pg/pg_server.sh (initdb into a temporary directory, run as the
 * `postgres` OS user, a free port on 127.0.0.1; see that script).
 *
 *   const pg = await PgServer.start();
 *   const store = await pg.createDb('ingest');   // { kind, dsn, name }
 *   ... HaloDaemon.start({ store }) ... query(store, 'SELECT ...') ...
 *   await pg.halt();    // pg_ctl stop -m immediate: a crash, data kept
 *   await pg.resume();  // the same data directory on the same port
 *   await pg.stop();    // stop by PID and remove the directory
 *
 * Every step is bounded by a deadline (the script's own and ours).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { query } from './store.mjs';
import { sourceDir } from './util.mjs';

const execFileP = promisify(execFile);

function script() {
    return join(sourceDir(), 'tests', 'pg', 'pg_server.sh');
}

/* Run pg_server.sh CMD DIR; resolves to { dsn, pid } when it printed them. */
async function run(cmd, dir, timeoutMs = 90000) {
    try {
        const { stdout } = await execFileP(script(), [cmd, dir],
                                           { timeout: timeoutMs });
        const dsn = /^dsn (\S+)$/m.exec(stdout);
        const pid = /^pid (\d+)$/m.exec(stdout);
        return { dsn: dsn && dsn[1], pid: pid && Number(pid[1]) };
    } catch (e) {
        const detail = (e.stderr || e.message || '').toString().trim();
        throw new Error(`pg_server.sh ${cmd} ${dir} failed: ${detail}`);
    }
}

export class PgServer {
    constructor(dir) {
        this.dir = dir;
        this.dsn = null; /* postgresql://postgres@127.0.0.1:PORT/postgres */
        this.pid = null;
        this.up = false;
    }

    /* Start a new server in a fresh directory under /tmp (the server's OS
     * user must be able to reach it). */
    static async start() {
        const pg = new PgServer(mkdtempSync('/tmp/halo-e2e-pg-'));
        const r = await run('start', pg.dir);
        if (!r.dsn) throw new Error(`pg_server.sh start printed no dsn`);
        Object.assign(pg, r, { up: true });
        return pg;
    }

    /* The DSN of database `db` on this server. */
    dsnFor(db) {
        return this.dsn.replace(/\/[^/]*$/, `/${db}`);
    }

    /* A new empty database; resolves to the store handle the e2e helpers
     * take (query(store, sql), HaloDaemon.start({ store })). */
    async createDb(name) {
        const admin = { kind: 'postgres', dsn: this.dsn, name: 'postgres' };
        await query(admin, `DROP DATABASE IF EXISTS ${name}`, { raw: true });
        await query(admin, `CREATE DATABASE ${name}`, { raw: true });
        return { kind: 'postgres', dsn: this.dsnFor(name), name };
    }

    /* Crash the server (immediate shutdown, no checkpoint): what a power
     * cut or an OOM kill does to a database. The data stays. */
    async halt() {
        await run('halt', this.dir);
        this.up = false;
    }

    /* Start the halted server again on the same port. */
    async resume() {
        const r = await run('resume', this.dir);
        if (r.pid) this.pid = r.pid;
        this.up = true;
    }

    /* Stop by PID and remove the directory. Safe to call twice. */
    async stop() {
        if (!this.dir) return;
        await run('stop', this.dir, 60000);
        this.dir = null;
        this.up = false;
    }
}
