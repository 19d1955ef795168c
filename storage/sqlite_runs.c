/*
 * sqlite_runs.c -- the analyzer's run claims in the SQLite backend
 * (store.h claim_run / finish_run; the `analyzer_runs` table,
 * storage/README.md).
 *
 * A claim is one BEGIN IMMEDIATE transaction, so claims of several
 * processes on one database file are serialized by SQLite's write lock:
 *
 *   INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE <claimable>
 *   RETURNING ...
 *
 * inserts a new run as 'running' or takes over an existing one when it is
 * claimable: not done, and failed, or owned by the same owner (a renewal:
 * not counted as a new attempt), or its lease ended before now. When the
 * upsert returns no row the run exists and is not claimable: a read of its
 * status, in the same transaction, tells DONE from HELD. finish_run is one
 * UPDATE that only matches while owner still holds the run. Every time is
 * the caller's (now_ns), never the database's.
 */
#include "sqlite_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char SQL_CLAIM[] =
    "INSERT INTO analyzer_runs (schedule, agent_id, window_start,"
    " window_end, window_start_unix_nano, owner, lease_until_unix_nano,"
    " status, attempts, claimed_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', 1, ?8)"
    " ON CONFLICT (schedule, agent_id, window_start_unix_nano) DO UPDATE SET"
    " attempts = attempts + (CASE WHEN status = 'running'"
    "  AND owner = excluded.owner THEN 0 ELSE 1 END),"
    " claimed_at = CASE WHEN status = 'running' AND owner = excluded.owner"
    "  THEN claimed_at ELSE excluded.claimed_at END,"
    " owner = excluded.owner,"
    " lease_until_unix_nano = excluded.lease_until_unix_nano,"
    " window_end = excluded.window_end,"
    " status = 'running'"
    " WHERE status <> 'done' AND (status = 'failed'"
    "  OR owner = excluded.owner OR lease_until_unix_nano < ?9)"
    " RETURNING attempts";

static const char SQL_RUN_STATUS[] =
    "SELECT status FROM analyzer_runs WHERE schedule = ?1 AND agent_id = ?2"
    " AND window_start_unix_nano = ?3";

static const char SQL_FINISH[] =
    "UPDATE analyzer_runs SET"
    " status = CASE WHEN ?1 THEN 'done' ELSE 'failed' END,"
    " lease_until_unix_nano = CASE WHEN ?1 THEN lease_until_unix_nano"
    "  ELSE 0 END,"
    " report_id = CASE WHEN ?1 THEN ?2 ELSE report_id END,"
    " last_error = CASE WHEN ?1 THEN NULL ELSE ?3 END,"
    " finished_at = ?4"
    " WHERE schedule = ?5 AND agent_id = ?6 AND window_start_unix_nano = ?7"
    " AND owner = ?8 AND status = 'running'";

/* ns as an INTEGER (clamped: SQLite's integers are signed). */
static int64_t ns_i64(uint64_t ns)
{
    return ns > INT64_MAX ? INT64_MAX : (int64_t)ns;
}

/* Step a statement that returns at most one row: *row tells whether it
 * did; the statement is left on it (the caller resets). */
static halo_status step_one(sq_store *s, sqlite3_stmt *st, bool *row,
                            const char *what, halo_err *err)
{
    int rc = sqlite3_step(st);
    *row = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sq_fail(s, err, what);
    return HALO_OK;
}

static halo_status upsert_claim(sq_store *s, const halo_run_key *k,
                                const char *owner, uint64_t now_ns,
                                uint64_t lease_ns, bool *taken, halo_err *err)
{
    sqlite3_stmt *st = NULL;
    char ws[HALO_ISO_NS_LEN], we[HALO_ISO_NS_LEN], now[HALO_ISO_NS_LEN];
    uint64_t until =
        now_ns + lease_ns < now_ns ? UINT64_MAX : now_ns + lease_ns;
    halo_iso_from_ns(k->window_start_ns, ws);
    halo_iso_from_ns(k->window_end_ns, we);
    halo_iso_from_ns(now_ns, now);
    if (sqlite3_prepare_v2(s->db, SQL_CLAIM, -1, &st, NULL) != SQLITE_OK)
        return sq_fail(s, err, "prepare a run claim");
    sqlite3_bind_text(st, 1, k->schedule, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, k->agent_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, we, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, ns_i64(k->window_start_ns));
    sqlite3_bind_text(st, 6, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, ns_i64(until));
    sqlite3_bind_text(st, 8, now, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, ns_i64(now_ns));
    halo_status ret = step_one(s, st, taken, "claim a run", err);
    if (ret == HALO_OK && *taken) /* RETURNING: run it to the end */
        ret = sqlite3_step(st) == SQLITE_DONE ? HALO_OK
                                              : sq_fail(s, err, "claim a run");
    sqlite3_finalize(st);
    return ret;
}

static halo_status run_status(sq_store *s, const halo_run_key *k, bool *done,
                              halo_err *err)
{
    sqlite3_stmt *st = NULL;
    bool row = false;
    *done = false;
    if (sqlite3_prepare_v2(s->db, SQL_RUN_STATUS, -1, &st, NULL) != SQLITE_OK)
        return sq_fail(s, err, "prepare a run lookup");
    sqlite3_bind_text(st, 1, k->schedule, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, k->agent_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, ns_i64(k->window_start_ns));
    halo_status ret = step_one(s, st, &row, "read a run", err);
    if (ret == HALO_OK && row) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        *done = v && strcmp(v, "done") == 0;
    }
    sqlite3_finalize(st);
    return ret;
}

halo_status sq_claim_run(halo_store *base, const halo_run_key *k,
                         const char *owner, uint64_t now_ns, uint64_t lease_ns,
                         halo_claim_result *res, halo_err *err)
{
    sq_store *s = (sq_store *)base;
    bool taken = false, done = false;
    *res = HALO_CLAIM_HELD;
    halo_status st = sq_check_writable(s, "claim a run", err);
    if (st == HALO_OK)
        st = halo_run_key_check(k, owner, err);
    if (st == HALO_OK)
        st = sq_exec(s, "BEGIN IMMEDIATE", "begin a run claim", err);
    if (st != HALO_OK)
        return st;
    st = upsert_claim(s, k, owner, now_ns, lease_ns, &taken, err);
    if (st == HALO_OK && !taken)
        st = run_status(s, k, &done, err);
    if (st == HALO_OK)
        st = sq_exec(s, "COMMIT", "commit a run claim", err);
    if (st != HALO_OK) {
        sq_rollback(s);
        return st;
    }
    *res = taken ? HALO_CLAIM_TAKEN : done ? HALO_CLAIM_DONE : HALO_CLAIM_HELD;
    return HALO_OK;
}

halo_status sq_finish_run(halo_store *base, const halo_run_key *k,
                          const char *owner, uint64_t now_ns, bool ok,
                          const char *report_id, const char *error,
                          halo_err *err)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *st = NULL;
    char now[HALO_ISO_NS_LEN], ws[HALO_ISO_NS_LEN];
    halo_status ret = sq_check_writable(s, "finish a run", err);
    if (ret == HALO_OK)
        ret = halo_run_key_check(k, owner, err);
    if (ret != HALO_OK)
        return ret;
    halo_iso_from_ns(now_ns, now);
    if (sqlite3_prepare_v2(s->db, SQL_FINISH, -1, &st, NULL) != SQLITE_OK)
        return sq_fail(s, err, "prepare a run update");
    sqlite3_bind_int(st, 1, ok);
    sqlite3_bind_text(st, 2, report_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, error ? error : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, k->schedule, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, k->agent_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, ns_i64(k->window_start_ns));
    sqlite3_bind_text(st, 8, owner, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        ret = sq_fail(s, err, "finish a run");
    else if (sqlite3_changes(s->db) == 0) {
        halo_iso_from_ns(k->window_start_ns, ws);
        ret = halo_fail(err, HALO_ENOTFOUND,
                        "run %s of agent \"%s\" at %s is not held by \"%s\"",
                        k->schedule, k->agent_id, ws, owner);
    }
    sqlite3_finalize(st);
    return ret;
}
