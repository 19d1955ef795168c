/*
 * pg_conn.h -- connecting to PostgreSQL: one non-blocking connect with a
 * deadline and a stop flag, and the password-free words for a server and
 * for what went wrong.
 *
 * Every halo connection (the postgres exporter's writers, the CLI and the
 * analyzer through halo_pg_connect, the tests) is made here, so there is
 * one place that decides how a server is named in logs and errors
 * ("host:port/db", never the password) and how libpq's message is cleaned.
 *
 * The connect is libpq's non-blocking one (PQconnectStartParams +
 * PQconnectPoll, poll() on PQsocket in slices of at most 50 ms), so a
 * caller can bound it (timeout) and interrupt it (stop flag) without
 * waiting for the operating system's TCP timeouts. Host name resolution
 * inside PQconnectStartParams is still blocking (a libpq limit).
 */
#ifndef HALO_PG_CONN_H
#define HALO_PG_CONN_H

#include "../core/status.h"

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HALO_PG_WHERE_MAX 300

/* What a connect attempt says about its server, without the password. */
typedef struct halo_pg_target {
    char where[HALO_PG_WHERE_MAX]; /* "host:port/db" ("" before any try) */
    char reason[HALO_ERR_MAX];     /* libpq's reason when it failed */
    char version[32];              /* server_version when it worked */
} halo_pg_target;

typedef struct halo_pg_connect_opts {
    /* Overall deadline of the attempt (every host of a multi-host DSN);
     * 0: the DSN's (or PGCONNECT_TIMEOUT's) connect_timeout, else none. */
    int64_t timeout_ns;
    /* When it turns true the attempt ends with HALO_ESHUTDOWN within about
     * 50 ms. NULL: never. */
    const atomic_bool *stop;
} halo_pg_connect_opts;

/* Check dsn (a URI or key=value string; "" is libpq's defaults and PG*
 * environment variables) with libpq's parser. HALO_EINVAL with libpq's
 * reason, password removed, when malformed. */
halo_status halo_pg_dsn_check(const char *dsn, halo_err *err);

/* Connect to dsn without blocking past opts' deadline. On success *out is
 * the connection (the caller's; PQfinish) and t (may be NULL) gets its
 * where and version. On failure *out is NULL, t gets where and reason,
 * and err says "could not connect to PostgreSQL at \"WHERE\": REASON":
 * HALO_EINVAL for a malformed DSN, HALO_ESHUTDOWN when stopped, HALO_ERETRY
 * otherwise. No message contains the DSN's password. */
halo_status halo_pg_connect_nb(const char *dsn, const halo_pg_connect_opts *o,
                               PGconn **out, halo_pg_target *t, halo_err *err);

/* halo_pg_connect_nb without a stop flag, with the DSN's own
 * connect_timeout. */
halo_status halo_pg_connect(const char *dsn, PGconn **out, halo_err *err);

/* PostgreSQL's words for a failure into msg: the result's primary message
 * and detail ("primary (detail)"), else the connection's message (on one
 * line: halo_pg_trim_copy). "" when PostgreSQL said nothing. */
void halo_pg_error_text(PGconn *c, const PGresult *res, char *msg, size_t cap);

/* Copy libpq's message src into dst (cap bytes) on one line: its lines
 * joined by "; ", without the tab-indented hint lines libpq adds ("\tIs
 * the server running on that host...", "\tThis probably means...") and
 * the trailing newline. src may be NULL. */
void halo_pg_trim_copy(char *dst, size_t cap, const char *src);

#endif
