/*
 * tls.mjs -- throwaway certificates for the TLS tests, made with the
 * `openssl` CLI (a test dependency, see the Makefile's TEST_PKGS).
 *
 * makePki(dir, name) writes into dir:
 *   <name>-ca.pem / -ca.key          a self-signed CA (P-256, 2 days)
 *   <name>-server.pem / -server.key  signed by it, SAN IP:127.0.0.1 and
 *                                    DNS:localhost, serverAuth
 *   <name>-client.pem / -client.key  signed by it, clientAuth
 * and returns those paths plus the PEM texts (ca, cert, key, clientCert,
 * clientKey) for clients that take buffers (grpc-js, node:https).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function openssl(args, cwd) {
    try {
        execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
        throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr || e.message}`);
    }
}

/* A key and a certificate signed by the CA in dir. */
function leaf(dir, prefix, ca, cn, ext) {
    const key = `${prefix}.key`;
    const csr = `${prefix}.csr`;
    const pem = `${prefix}.pem`;
    const extFile = `${prefix}.ext`;
    writeFileSync(join(dir, extFile), ext);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
             '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`], dir);
    openssl(['x509', '-req', '-in', csr, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`,
             '-CAcreateserial', '-out', pem, '-days', '2', '-extfile', extFile], dir);
    return { key: join(dir, key), pem: join(dir, pem) };
}

export function makePki(dir, name = 'test') {
    const ca = `${name}-ca`;
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
             '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2',
             '-subj', `/CN=halo ${name} test CA`,
             '-addext', 'basicConstraints=critical,CA:TRUE',
             '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
    const server = leaf(dir, `${name}-server`, ca, 'localhost',
                        'subjectAltName=IP:127.0.0.1,DNS:localhost\n' +
                        'extendedKeyUsage=serverAuth\n' +
                        'keyUsage=critical,digitalSignature\n');
    const client = leaf(dir, `${name}-client`, ca, `halo ${name} client`,
                        'extendedKeyUsage=clientAuth\n' +
                        'keyUsage=critical,digitalSignature\n');
    const read = (p) => readFileSync(p);
    return {
        caFile: join(dir, `${ca}.pem`),
        certFile: server.pem,
        keyFile: server.key,
        clientCertFile: client.pem,
        clientKeyFile: client.key,
        ca: read(join(dir, `${ca}.pem`)),
        cert: read(server.pem),
        key: read(server.key),
        clientCert: read(client.pem),
        clientKey: read(client.key),
    };
}
