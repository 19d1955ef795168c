/*
 * install.test.mjs -- `make install` for bare-metal hosts (deploy/README.md):
 * into a DESTDIR with a PREFIX, the binary runs, the role configs land in
 * SYSCONFDIR/halo and validate, the systemd unit points at the installed
 * binary, and a second install keeps the configuration already there
 * (the new files beside it as *.new).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeTempDir } from './lib/daemon.mjs';
import { haloBin, sourceDir } from './lib/util.mjs';

function run(cmd, args, opts = {}) {
    return new Promise((resolve, reject) => {
        const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d) => { out += d; });
        child.stderr.on('data', (d) => { out += d; });
        const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
        child.on('error', reject);
        child.on('exit', (code) => {
            clearTimeout(timer);
            resolve({ code, out });
        });
    });
}

describe('make install', { timeout: 120000 }, () => {
    it('installs into DESTDIR/PREFIX and keeps existing configs', async () => {
        const dest = makeTempDir('halo-e2e-install-');
        const args = ['-C', sourceDir(), 'install', `DESTDIR=${dest}`,
                      'PREFIX=/opt/halo', `HALO_BINARY=${haloBin()}`];
        const first = await run('make', args);
        assert.equal(first.code, 0, first.out);
        const bin = join(dest, 'opt/halo/bin/halo');
        const v = await run(bin, ['--version']);
        assert.equal(v.code, 0, v.out);
        assert.match(v.out, /^halo \d/);
        for (const role of ['halo.yaml', 'halo-ingest.yaml', 'halo-persist.yaml',
                            'halo-analyzer.yaml']) {
            const cfg = join(dest, 'etc/halo', role);
            assert.ok(existsSync(cfg), `${cfg} installed`);
            const r = await run(bin, ['validate', '--config', cfg]);
            assert.equal(r.code, 0, `${role}: ${r.out}`);
        }
        const unit = readFileSync(join(dest, 'opt/halo/lib/systemd/system/halo.service'),
                                  'utf8');
        assert.match(unit, /^ExecStart=\/opt\/halo\/bin\/halo serve --config/m);
        assert.match(unit, /^User=halo$/m);
        assert.ok(existsSync(join(dest, 'opt/halo/share/doc/halo/README.md')));
        /* an operator's edit survives the next install */
        const mine = join(dest, 'etc/halo/halo-persist.yaml');
        writeFileSync(mine, '# edited by the operator\n' + readFileSync(mine, 'utf8'));
        const second = await run('make', args);
        assert.equal(second.code, 0, second.out);
        assert.match(readFileSync(mine, 'utf8'), /^# edited by the operator/);
        assert.ok(existsSync(`${mine}.new`), 'the new config beside it');
        /* and a missing binary is a clear error */
        const bad = await run('make', [...args.slice(0, -1),
                                       `HALO_BINARY=${join(dest, 'nope')}`]);
        assert.notEqual(bad.code, 0);
        assert.match(bad.out, /is missing: run make first/);
    });
});
