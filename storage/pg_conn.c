/*
 * pg_conn.c -- connecting to PostgreSQL (pg_conn.h): the non-blocking
 * connect, and the password-free description of a server and its errors.
 *
 * The connect: PQconnectStartParams with the DSN expanded from `dbname`
 * (expand_dbname), after a few defaults that the DSN may override
 * (libpq processes the keywords in order, later ones win):
 * fallback_application_name=halo, so pg_stat_activity says who is
 * connected, and TCP keepalives after 30 s idle (3 probes, 10 s apart), so
 * a connection to a server that vanished from the network is found dead in
 * about a minute instead of the kernel's two hours. Then PQconnectPoll,
 * waiting for the socket PQconnectPoll asks for (it may change between
 * calls: multi-host DSNs, SSL negotiation) with poll() in slices of at
 * most 50 ms, checking the caller's stop flag and deadline between slices.
 *
 * Passwords: error text may quote the DSN (libpq's parser does, for some
 * errors) or come from a server whose message names things; every
 * message and every "host:port/db" that leaves this file has the password
 * replaced by "***" (core/secret.h): the one libpq parsed (DSN or
 * PGPASSWORD), and, for a DSN libpq could not parse, the ones a URI's
 * user:PASSWORD@ or a password= / sslpassword= would hold, and every
 * secret registered by the config.
 */
#include "pg_conn.h"

#include "../core/clock.h"
#include "../core/log.h"
#include "../core/secret.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_PREFIX "storage:postgres"
#define SLICE_MS 50

/* ---- text ---------------------------------------------------------------- */

void halo_pg_trim_copy(char *dst, size_t cap, const char *src)
{
    size_t o = 0;
    const char *p = src ? src : "";
    if (cap == 0)
        return;
    while (*p) {
        size_t n = strcspn(p, "\n");
        if (*p != '\t' && n > 0) { /* a message line, not a hint */
            if (o > 0 && o + 2 < cap) {
                memcpy(dst + o, "; ", 2);
                o += 2;
            }
            size_t room = cap - 1 - o;
            memcpy(dst + o, p, n < room ? n : room);
            o += n < room ? n : room;
        }
        p += n;
        if (*p == '\n')
            p++;
    }
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
}

void halo_pg_error_text(PGconn *c, const PGresult *res, char *msg, size_t cap)
{
    const char *primary =
        res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail =
        res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    if (primary && detail)
        snprintf(msg, cap, "%s (%s)", primary, detail);
    else
        halo_pg_trim_copy(msg, cap, primary ? primary : PQerrorMessage(c));
}

/* ---- passwords ----------------------------------------------------------- */

/* The user info password of a URI DSN (user:PASSWORD@) into buf; empty
 * when none. */
static void uri_password(const char *dsn, char *buf, size_t cap)
{
    buf[0] = '\0';
    const char *p = strstr(dsn, "://");
    if (!p)
        return;
    p += 3;
    const char *at = strchr(p, '@');
    const char *slash = strchr(p, '/');
    const char *colon = strchr(p, ':');
    if (at && (!slash || at < slash) && colon && colon < at)
        snprintf(buf, cap, "%.*s", (int)(at - colon - 1), colon + 1);
}

/* Scrub from msg every value a "password" or "sslpassword" keyword of dsn
 * holds (key=value pairs, quoted or not, or URI query parameters), found
 * without libpq: for a DSN libpq cannot parse, whose error may quote it. */
static void scrub_keyword_values(char *msg, size_t cap, const char *dsn)
{
    char val[256];
    for (const char *p = strstr(dsn, "password"); p;
         p = strstr(p + 1, "password")) {
        const char *v = p + strlen("password");
        while (*v == ' ')
            v++;
        if (*v != '=')
            continue;
        v++;
        while (*v == ' ')
            v++;
        size_t n = *v == '\'' ? strcspn(v + 1, "'") : strcspn(v, " &#");
        snprintf(val, sizeof val, "%.*s", (int)n, *v == '\'' ? v + 1 : v);
        halo_secret_scrub_one(msg, cap, val);
    }
}

static void scrub_secrets(char *msg, size_t cap, const char *dsn,
                          const char *parsed_password)
{
    char guess[256];
    halo_secret_scrub_one(msg, cap, parsed_password);
    uri_password(dsn, guess, sizeof guess);
    halo_secret_scrub_one(msg, cap, guess);
    scrub_keyword_values(msg, cap, dsn);
    halo_secret_scrub(msg, cap);
}

/* The value of keyword in a connection's effective options (the DSN, the
 * environment, libpq's defaults) into buf; "" when unset. */
static void conn_option(PGconn *c, const char *keyword, char *buf, size_t cap)
{
    buf[0] = '\0';
    PQconninfoOption *opts = PQconninfo(c);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0 && o->val)
            snprintf(buf, cap, "%s", o->val);
    PQconninfoFree(opts);
}

halo_status halo_pg_dsn_check(const char *dsn, halo_err *err)
{
    char msg[HALO_ERR_MAX];
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn ? dsn : "", &perr);
    if (opts) {
        /* its passwords are secrets from now on, for every message that
         * libpq, the server or another component may write */
        for (PQconninfoOption *o = opts; o->keyword; o++)
            if (o->val && halo_secret_name(o->keyword))
                halo_secret_register(o->val);
        halo_secret_register(getenv("PGPASSWORD"));
        PQconninfoFree(opts);
        return HALO_OK;
    }
    halo_pg_trim_copy(msg, sizeof msg, perr ? perr : "out of memory");
    scrub_secrets(msg, sizeof msg, dsn ? dsn : "", NULL);
    PQfreemem(perr);
    return halo_fail(err, HALO_EINVAL,
                     "invalid PostgreSQL connection string: %s", msg);
}

/* ---- the non-blocking connect -------------------------------------------- */

/* The attempt's deadline (monotonic ns; 0: none): the caller's timeout,
 * else the connection's connect_timeout (seconds; libpq's rule: below 2
 * means 2, 0 or empty means none). */
static uint64_t deadline_of(PGconn *c, const halo_pg_connect_opts *o,
                            uint64_t start)
{
    if (o && o->timeout_ns > 0)
        return start + (uint64_t)o->timeout_ns;
    char v[32];
    conn_option(c, "connect_timeout", v, sizeof v);
    long s = strtol(v, NULL, 10);
    if (s <= 0)
        return 0;
    return start + (uint64_t)(s < 2 ? 2 : s) * 1000000000u;
}

/* Wait until the socket is ready for what PQconnectPoll asked (want:
 * POLLIN or POLLOUT). HALO_OK when ready; HALO_ESHUTDOWN when stopped;
 * HALO_ERETRY at the deadline or on a poll error, with why set. */
static halo_status wait_socket(PGconn *c, short want, uint64_t deadline,
                               const atomic_bool *stop, const char **why)
{
    for (;;) {
        if (stop && atomic_load(stop)) {
            *why = "interrupted: shutting down";
            return HALO_ESHUTDOWN;
        }
        int ms = SLICE_MS;
        if (deadline) {
            uint64_t now = halo_mono_ns();
            if (now >= deadline) {
                *why = "timeout expired";
                return HALO_ERETRY;
            }
            if (deadline - now < (uint64_t)SLICE_MS * 1000000u)
                ms = (int)((deadline - now) / 1000000u) + 1;
        }
        struct pollfd p = {.fd = PQsocket(c), .events = want};
        if (p.fd < 0) {
            *why = "no socket";
            return HALO_ERETRY;
        }
        int r = poll(&p, 1, ms);
        if (r > 0)
            return HALO_OK;
        if (r < 0 && errno != EINTR) {
            *why = strerror(errno);
            return HALO_ERETRY;
        }
    }
}

/* Drive PQconnectPoll to the end. why is set when we (not libpq) ended
 * the attempt. */
static halo_status drive(PGconn *c, uint64_t deadline, const atomic_bool *stop,
                         const char **why)
{
    PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
    for (;;) {
        if (ps == PGRES_POLLING_OK)
            return HALO_OK;
        if (ps == PGRES_POLLING_FAILED || PQstatus(c) == CONNECTION_BAD)
            return HALO_ERETRY;
        short want = ps == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        halo_status st = wait_socket(c, want, deadline, stop, why);
        if (st != HALO_OK)
            return st;
        ps = PQconnectPoll(c);
    }
}

static void log_notice(void *arg, const char *message)
{
    (void)arg;
    char msg[HALO_ERR_MAX];
    halo_pg_trim_copy(msg, sizeof msg, message);
    LOG_DEBUG(LOG_PREFIX, "%s", msg);
}

/* "host:port/db" of c, and unless ok the reason (why, else libpq's),
 * both password-free. */
static void describe(PGconn *c, const char *dsn, bool ok, const char *why,
                     halo_pg_target *t)
{
    char password[256];
    const char *host = PQhost(c), *port = PQport(c), *db = PQdb(c);
    conn_option(c, "password", password, sizeof password);
    snprintf(t->where, sizeof t->where, "%s:%s/%s", host ? host : "",
             port ? port : "", db ? db : "");
    scrub_secrets(t->where, sizeof t->where, dsn, password);
    if (ok)
        return;
    if (why)
        snprintf(t->reason, sizeof t->reason, "%s", why);
    else
        halo_pg_trim_copy(t->reason, sizeof t->reason, PQerrorMessage(c));
    if (!t->reason[0])
        snprintf(t->reason, sizeof t->reason, "connection failed");
    scrub_secrets(t->reason, sizeof t->reason, dsn, password);
}

/* The server's version without its build suffix ("15.20"). */
static void server_version(PGconn *c, char *buf, size_t cap)
{
    const char *v = PQparameterStatus(c, "server_version");
    snprintf(buf, cap, "%.*s", v ? (int)strcspn(v, " ") : 0, v ? v : "");
}

halo_status halo_pg_connect_nb(const char *dsn, const halo_pg_connect_opts *o,
                               PGconn **out, halo_pg_target *t, halo_err *err)
{
    /* keys before dbname are defaults the DSN may override; after it,
     * fixed: halo's text is UTF-8 (span_rows.input_at counts characters
     * the server sees, pg_write.c) */
    static const char *const keys[] = {"fallback_application_name",
                                       "keepalives_idle",
                                       "keepalives_interval",
                                       "keepalives_count",
                                       "dbname",
                                       "client_encoding",
                                       NULL};
    halo_pg_target local;
    if (!t)
        t = &local;
    memset(t, 0, sizeof *t);
    *out = NULL;
    if (!dsn)
        dsn = "";
    halo_status st = halo_pg_dsn_check(dsn, err);
    if (st != HALO_OK) {
        snprintf(t->reason, sizeof t->reason, "%s", err ? err->msg : "");
        return st;
    }
    const char *const vals[] = {"halo", "30", "10", "3", dsn, "UTF8", NULL};
    uint64_t start = halo_mono_ns();
    PGconn *c = PQconnectStartParams(keys, vals, 1);
    if (!c) {
        snprintf(t->reason, sizeof t->reason, "out of memory");
        return halo_fail(err, HALO_ENOMEM,
                         "could not connect to PostgreSQL: out of memory");
    }
    const char *why = NULL;
    st = drive(c, deadline_of(c, o, start), o ? o->stop : NULL, &why);
    if (st != HALO_OK) {
        describe(c, dsn, false, why, t);
        PQfinish(c);
        return halo_fail(err, st,
                         "could not connect to PostgreSQL at \"%s\": %s",
                         t->where, t->reason);
    }
    describe(c, dsn, true, NULL, t);
    server_version(c, t->version, sizeof t->version);
    PQsetNoticeProcessor(c, log_notice, NULL);
    *out = c;
    return HALO_OK;
}

halo_status halo_pg_connect(const char *dsn, PGconn **out, halo_err *err)
{
    return halo_pg_connect_nb(dsn, NULL, out, NULL, err);
}
