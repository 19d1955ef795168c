/*
 * pg_runs.c -- the analyzer's run claims in the PostgreSQL backend
 * (store.h claim_run / finish_run; the `analyzer_runs` table,
 * storage/README.md).
 *
 * A claim is ONE statement, atomic across every session, process and host
 * on the database:
 *
 *   WITH up AS (INSERT ... ON CONFLICT (key) DO UPDATE ...
 *               WHERE <claimable> RETURNING 1)
 *   SELECT (SELECT count(*) FROM up), (SELECT status ... the run's row)
 *
 * The INSERT takes a new run; on a conflict PostgreSQL locks the existing
 * row (waiting for a concurrent claim of it to commit) and updates it only
 * when it is claimable: not done, and failed, or owned by the same owner
 * (a renewal, not counted as an attempt), or its lease ended before now.
 * Exactly one of several concurrent claimers gets a row back. The second
 * subquery reads the run's status from the statement's snapshot, to tell
 * DONE from HELD when nothing came back (a run another session inserted
 * after that snapshot is not visible there: it is live, so HELD).
 *
 * finish_run is one UPDATE matching only while owner holds the run
 * (status 'running'). Every time is the caller's (now_ns), never now().
 */
#include "pg_int.h"

#include <stdlib.h>
#include <string.h>

static const char SQL_CLAIM[] =
    "WITH up AS ("
    "INSERT INTO analyzer_runs AS r (schedule, agent_id, window_start,"
    " window_end, window_start_unix_nano, owner, lease_until_unix_nano,"
    " status, attempts, claimed_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', 1, $8)"
    " ON CONFLICT (schedule, agent_id, window_start_unix_nano) DO UPDATE SET"
    " attempts = r.attempts + (CASE WHEN r.status = 'running'"
    "  AND r.owner = excluded.owner THEN 0 ELSE 1 END),"
    " claimed_at = CASE WHEN r.status = 'running' AND r.owner ="
    "  excluded.owner THEN r.claimed_at ELSE excluded.claimed_at END,"
    " owner = excluded.owner,"
    " lease_until_unix_nano = excluded.lease_until_unix_nano,"
    " window_end = excluded.window_end,"
    " status = 'running'"
    " WHERE r.status <> 'done' AND (r.status = 'failed'"
    "  OR r.owner = excluded.owner OR r.lease_until_unix_nano < $9)"
    " RETURNING 1)"
    " SELECT (SELECT count(*) FROM up), (SELECT status FROM analyzer_runs"
    " WHERE schedule = $1 AND agent_id = $2 AND window_start_unix_nano = $5)";

static const char SQL_FINISH[] =
    "UPDATE analyzer_runs SET"
    " status = CASE WHEN $1::boolean THEN 'done' ELSE 'failed' END,"
    " lease_until_unix_nano = CASE WHEN $1::boolean"
    "  THEN lease_until_unix_nano ELSE 0 END,"
    " report_id = CASE WHEN $1::boolean THEN $2::text ELSE report_id END,"
    " last_error = CASE WHEN $1::boolean THEN NULL ELSE $3::text END,"
    " finished_at = $4"
    " WHERE schedule = $5 AND agent_id = $6 AND window_start_unix_nano = $7"
    " AND owner = $8 AND status = 'running'";

halo_status pgr_claim_run(halo_store *base, const halo_run_key *k,
                          const char *owner, uint64_t now_ns, uint64_t lease_ns,
                          halo_claim_result *res, halo_err *err)
{
    pg_store *s = (pg_store *)base;
    char ws[HALO_ISO_NS_LEN], we[HALO_ISO_NS_LEN], now[HALO_ISO_NS_LEN];
    char wsn[PGR_NS_LEN], until[PGR_NS_LEN], nown[PGR_NS_LEN];
    uint64_t lease_end =
        now_ns + lease_ns < now_ns ? UINT64_MAX : now_ns + lease_ns;
    *res = HALO_CLAIM_HELD;
    halo_status st = halo_run_key_check(k, owner, err);
    if (st == HALO_OK)
        st = pgs_can_write(s, "claim a run", err);
    if (st != HALO_OK)
        return st;
    /* timestamptz parameters: all nine digits (PostgreSQL rounds them to
     * the microsecond); bigints clamped */
    halo_iso_from_ns(k->window_start_ns, ws);
    halo_iso_from_ns(k->window_end_ns, we);
    halo_iso_from_ns(now_ns, now);
    pgr_ns_text(k->window_start_ns, wsn);
    pgr_ns_text(lease_end, until);
    pgr_ns_text(now_ns, nown);
    const char *params[9] = {k->schedule, k->agent_id, ws,  we,  wsn,
                             owner,       until,       now, nown};
    PGresult *r =
        PQexecParams(s->conn, SQL_CLAIM, 9, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        st = pgs_fail(s, r, "claim a run", err);
    } else if (strcmp(PQgetvalue(r, 0, 0), "1") == 0) {
        *res = HALO_CLAIM_TAKEN;
    } else {
        bool done =
            !PQgetisnull(r, 0, 1) && strcmp(PQgetvalue(r, 0, 1), "done") == 0;
        *res = done ? HALO_CLAIM_DONE : HALO_CLAIM_HELD;
    }
    PQclear(r);
    return st;
}

halo_status pgr_finish_run(halo_store *base, const halo_run_key *k,
                           const char *owner, uint64_t now_ns, bool ok,
                           const char *report_id, const char *error,
                           halo_err *err)
{
    pg_store *s = (pg_store *)base;
    char now[HALO_ISO_NS_LEN], wsn[PGR_NS_LEN];
    halo_status st = halo_run_key_check(k, owner, err);
    if (st == HALO_OK)
        st = pgs_can_write(s, "finish a run", err);
    if (st != HALO_OK)
        return st;
    halo_iso_from_ns(now_ns, now);
    pgr_ns_text(k->window_start_ns, wsn);
    const char *params[8] = {ok ? "true" : "false",
                             report_id,
                             error ? error : "",
                             now,
                             k->schedule,
                             k->agent_id,
                             wsn,
                             owner};
    PGresult *r =
        PQexecParams(s->conn, SQL_FINISH, 8, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        st = pgs_fail(s, r, "finish a run", err);
    } else if (strcmp(PQcmdTuples(r), "0") == 0) {
        char ws[HALO_ISO_NS_LEN];
        halo_iso_from_ns(k->window_start_ns, ws);
        st = halo_fail(err, HALO_ENOTFOUND,
                       "run %s of agent \"%s\" at %s is not held by \"%s\"",
                       k->schedule, k->agent_id, ws, owner);
    }
    PQclear(r);
    return st;
}
