/*
 * pg_test.h -- a throwaway PostgreSQL server for unit tests.
 *
 * One real PostgreSQL 15 per test binary, started on first use by
 * tests/pg/pg_server.sh (found through $HALO_SOURCE_DIR, else relative to
 * this file's path at build time) and stopped at exit, also after a failed
 * CHECK, and by a watchdog process when the binary dies without exiting
 * (an abort, a sanitizer's report, SIGKILL from a timeout). Tests work in
 * databases of their own (pg_new_db). A test may
 * halt the server and resume it on the same port (outages).
 */
#ifndef HALO_TEST_PG_H
#define HALO_TEST_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* The server's DSN for database db in buf, or NULL when it could not
 * start (said on stderr). */
const char *pg_dsn_for(const char *db, char *buf, size_t cap);
/* A connection to database db; NULL (said on stderr) on failure. */
PGconn *pg_connect_db(const char *db);
/* A connection to a new, empty database `name` (dropped first if it was
 * there); NULL on failure. */
PGconn *pg_new_db(const char *name);

/* Stop the server as a crash would (pg_server.sh halt: connections cut,
 * data kept); true when it is down. Starts it first if this binary has
 * not yet. */
bool pg_server_halt(void);
/* Start a halted server again on the same port (pg_server.sh resume), so
 * every DSN handed out stays valid; true when it accepts connections. A
 * no-op (true) when it is not halted. */
bool pg_server_resume(void);

/* sql's single integer result; -1 (said on stderr) on failure. */
long long pg_q_int(PGconn *c, const char *sql);
/* True when sql ran (command or query); false (said on stderr) otherwise. */
bool pg_q_ok(PGconn *c, const char *sql);

#endif
