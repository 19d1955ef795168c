/*
 * ingest.test.mjs -- the OpenTelemetry JS SDK's three transports into
 * `halo serve` with the embedded SQLite store, read back with sqlite3 and
 * the query CLI (the suite: lib/ingest_suite.mjs).
 */
import { ingestSuite } from './lib/ingest_suite.mjs';

ingestSuite({ name: 'SQLite' });
