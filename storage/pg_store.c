/*
 * pg_store.c -- the PostgreSQL backend of the storage interface (store.h):
 * open, close, the vtable, and the DSN redaction the CLI also uses.
 *
 * The store is one libpq connection used by one thread at a time, like a
 * SQLite handle. The schema (migrations, daily partitions of `spans`,
 * retention) is pg_schema.c's, the write path pg_write.c's; the queries
 * are pg_read.c's (with the analyzer's window scan and reports), the
 * analyzer's run claims pg_runs.c's. This file wires them into a
 * halo_store:
 *
 *   open (writable)   connect, migrate, create the day partitions from
 *                     yesterday to two days ahead (the exporter keeps
 *                     creating them as days pass);
 *   open (read-only)  connect, check that a halo schema exists and is not
 *                     newer than this binary (never migrate: the reader may
 *                     lack the rights, and a CLI must not change a database
 *                     under a running service), then make the session
 *                     read-only (default_transaction_read_only), so even a
 *                     write that got past the vtable's check fails;
 *   retention_step    halo_pg_retention: whole UTC days (store.h).
 *
 * A lost connection is reset before the next operation (pgs_ready), so a
 * long-lived handle (the analyzer's) survives a server restart; the
 * operation that saw the loss fails with HALO_ERETRY.
 *
 * Passwords: halo_pg_connect's errors never contain one, and no message
 * here quotes the DSN; halo_pg_redact_dsn masks them for callers that want
 * to print a DSN.
 */
#include "pg_int.h"
#include "pg_schema.h"
#include "pg_write.h"

#include "core/clock.h"
#include "core/secret.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_S INT64_C(86400)

/* ---- errors, session ----------------------------------------------------- */

static const char *db_name(const pg_store *s)
{
    const char *db = s->conn ? PQdb(s->conn) : NULL;
    return db ? db : "";
}

/* A failure's status from its SQLSTATE class: a lost connection (no
 * SQLSTATE: libpq's own failure), class 08 connection, 40 rollback
 * (serialization, deadlock), 53 resources, 57 operator intervention
 * (shutdown, cancel) are worth retrying; 22 data and 23 constraints are
 * the caller's; anything else is an I/O failure. */
static halo_status status_of(PGconn *c, const char *code)
{
    static const char retry[][3] = {"08", "40", "53", "57"};
    if (PQstatus(c) != CONNECTION_OK || !code || strlen(code) != 5)
        return HALO_ERETRY;
    if (strncmp(code, "22", 2) == 0 || strncmp(code, "23", 2) == 0)
        return HALO_EINVAL;
    for (size_t i = 0; i < sizeof retry / sizeof *retry; i++)
        if (strncmp(code, retry[i], 2) == 0)
            return HALO_ERETRY;
    return HALO_EIO;
}

halo_status pgs_fail(pg_store *s, const PGresult *res, const char *what,
                     halo_err *err)
{
    char msg[HALO_ERR_MAX];
    const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    halo_pg_error_text(s->conn, res, msg, sizeof msg);
    return halo_fail(err, status_of(s->conn, code),
                     "could not %s in database \"%s\": %s", what, db_name(s),
                     msg[0] ? msg : "connection lost");
}

/* One command (no rows) on the store's connection. */
static halo_status command(pg_store *s, const char *sql, const char *what,
                           halo_err *err)
{
    PGresult *res = PQexec(s->conn, sql);
    halo_status st = HALO_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        st = pgs_fail(s, res, what, err);
    PQclear(res);
    return st;
}

static halo_status set_read_only(pg_store *s, halo_err *err)
{
    return command(s, "SET default_transaction_read_only = on",
                   "make the session read-only", err);
}

halo_status pgs_ready(pg_store *s, const char *what, halo_err *err)
{
    if (PQstatus(s->conn) == CONNECTION_OK)
        return HALO_OK;
    PQreset(s->conn);
    if (PQstatus(s->conn) != CONNECTION_OK)
        return pgs_fail(s, NULL, what, err);
    return s->read_only ? set_read_only(s, err) : HALO_OK;
}

/* The first column of sql's single row as an integer. */
static halo_status query_int(pg_store *s, const char *sql, const char *what,
                             int64_t *out, halo_err *err)
{
    PGresult *res = PQexec(s->conn, sql);
    halo_status st = HALO_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        st = pgs_fail(s, res, what, err);
    else
        *out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return st;
}

/* ---- opening ------------------------------------------------------------- */

/* Read-only: a halo schema must be there, no newer than ours. */
static halo_status check_schema(pg_store *s, halo_err *err)
{
    int64_t present = 0, version = 0;
    int latest = halo_pg_schema_version();
    halo_status st = query_int(s,
                               "SELECT count(*) FROM pg_catalog.pg_tables"
                               " WHERE tablename = 'schema_migrations'"
                               " AND schemaname = ANY (current_schemas(false))",
                               "look for the halo schema", &present, err);
    if (st == HALO_OK && present)
        st = query_int(s,
                       "SELECT coalesce(max(version), 0) FROM "
                       "schema_migrations",
                       "read the schema version", &version, err);
    if (st != HALO_OK)
        return st;
    if (version <= 0)
        return halo_fail(err, HALO_ENOTFOUND,
                         "database \"%s\" has no halo schema: no halo "
                         "postgres exporter has written to it yet",
                         db_name(s));
    if (version > latest)
        return halo_fail(err, HALO_EUNSUPPORTED,
                         "database \"%s\" has schema version %" PRId64
                         ", newer than this halo binary supports (%d): "
                         "upgrade halo",
                         db_name(s), version, latest);
    return HALO_OK;
}

/* Writable: migrate, then the day partitions around today. */
static halo_status prepare_schema(pg_store *s, halo_err *err)
{
    int64_t now_s = (int64_t)(halo_real_ns() / 1000000000u);
    halo_status st = halo_pg_migrate(s->conn, err);
    if (st == HALO_OK)
        st = halo_pg_ensure_partitions(s->conn, now_s - DAY_S, 3, err);
    return st;
}

/* ---- the vtable ---------------------------------------------------------- */

halo_status pgs_can_write(pg_store *s, const char *verb, halo_err *err)
{
    if (s->read_only)
        return halo_fail(err, HALO_EINVAL,
                         "cannot %s: database \"%s\" is open read-only", verb,
                         db_name(s));
    return pgs_ready(s, verb, err);
}

static halo_status pgs_write_rows(halo_store *base,
                                  halo_store_rows *const *rows, size_t n,
                                  halo_write_stats *stats, halo_err *err)
{
    pg_store *s = (pg_store *)base;
    halo_status st = pgs_can_write(s, "write", err);
    return st == HALO_OK ? halo_pg_write_rows(s->conn, rows, n, stats, err)
                         : st;
}

static halo_status pgs_write_batches(halo_store *base,
                                     const halo_batch *const *batches, size_t n,
                                     halo_write_stats *stats, halo_err *err)
{
    pg_store *s = (pg_store *)base;
    halo_status st = pgs_can_write(s, "write", err);
    return st == HALO_OK
               ? halo_pg_write_batches(s->conn, batches, n, stats, err)
               : st;
}

static halo_status pgs_prepare(halo_store *base, const halo_batch *b,
                               halo_store_rows **out, halo_err *err)
{
    /* the flag read at open: prepare may run beside a write */
    return halo_pg_prepare(b, ((pg_store *)base)->utf8, out, err);
}

static void pgs_free_rows(halo_store *base, halo_store_rows *rows)
{
    (void)base;
    halo_pg_free_rows(rows);
}

/* Whole UTC days (pg_schema.h): max_rows does not apply, *deleted counts
 * the partitions dropped and nothing is left for another step. */
static halo_status pgs_retention_step(halo_store *base, uint64_t cutoff_ns,
                                      int64_t max_rows, int64_t *deleted,
                                      bool *more, halo_err *err)
{
    pg_store *s = (pg_store *)base;
    int dropped = 0;
    (void)max_rows;
    *deleted = 0;
    *more = false;
    halo_status st = pgs_can_write(s, "delete", err);
    if (st == HALO_OK)
        st = halo_pg_retention(s->conn, (int64_t)(cutoff_ns / 1000000000u),
                               &dropped, err);
    if (st == HALO_OK)
        *deleted = dropped;
    return st;
}

static void pgs_close(halo_store *base)
{
    pg_store *s = (pg_store *)base;
    PQfinish(s->conn);
    free(s);
}

static const halo_store_ops pg_ops = {
    .name = "postgres",
    .write_batches = pgs_write_batches,
    .prepare = pgs_prepare,
    .write_rows = pgs_write_rows,
    .free_rows = pgs_free_rows,
    .retention_step = pgs_retention_step,
    .list_traces = pgr_list_traces,
    .get_trace = pgr_get_trace,
    .agent_stats = pgr_agent_stats,
    .put_report = pgr_put_report,
    .list_reports = pgr_list_reports,
    .get_report = pgr_get_report,
    .scan_window = pgr_scan_window,
    .claim_run = pgr_claim_run,
    .finish_run = pgr_finish_run,
    .sql_query = pgt_sql_query,
    .search_spans = pgt_search_spans,
    .close = pgs_close,
};

halo_status halo_store_open_pg(const char *dsn, const halo_store_opts *opts,
                               halo_store **out, halo_err *err)
{
    *out = NULL;
    pg_store *s = calloc(1, sizeof *s);
    if (!s)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    s->base.ops = &pg_ops;
    s->read_only = opts && opts->read_only;
    halo_status st = halo_pg_connect(dsn ? dsn : "", &s->conn, err);
    if (st != HALO_OK)
        goto cleanup;
    s->utf8 = halo_pg_utf8(s->conn);
    if (s->read_only) {
        st = check_schema(s, err);
        if (st == HALO_OK)
            st = set_read_only(s, err);
    } else {
        st = prepare_schema(s, err);
    }
cleanup:
    if (st != HALO_OK) {
        pgs_close(&s->base);
        return st;
    }
    *out = &s->base;
    return HALO_OK;
}

/* ---- redaction ----------------------------------------------------------- */

/* One redaction for every printed DSN and URL (core/secret.c): a URI's
 * user:PASSWORD@ and secret query keys, secret key=value keywords
 * (password, sslpassword). */
char *halo_pg_redact_dsn(const char *dsn, char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    if (!dsn)
        return out;
    const char *p = dsn;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    if (p > dsn && isalpha((unsigned char)*dsn) && strncmp(p, "://", 3) == 0)
        return halo_redact_url(dsn, out, cap);
    size_t pre = strncmp(dsn, "postgres:", 9) == 0 ? 9 : 0;
    if (pre >= cap)
        return out;
    memcpy(out, dsn, pre);
    halo_redact_kv_pairs(dsn + pre, out + pre, cap - pre);
    return out;
}
