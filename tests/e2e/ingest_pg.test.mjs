/*
 * ingest_pg.test.mjs -- the same end-to-end suite as ingest.test.mjs (the
 * OpenTelemetry JS SDK over gRPC, HTTP/protobuf and HTTP/JSON, plain and
 * gzip; every span exactly once, normalized, rolled up; the query CLI),
 * with a real PostgreSQL 15 server as the store: the postgres exporter
 * writes, psql and `halo --store postgresql://...` read.
 */
import { ingestSuite } from './lib/ingest_suite.mjs';
import { PgServer } from './lib/pg.mjs';

let pg = null;

ingestSuite({
    name: 'PostgreSQL',
    async open() {
        pg = await PgServer.start();
        return pg.createDb('ingest');
    },
    async close() {
        if (pg) await pg.stop();
    },
});
