/*
 * pg_test.c -- the throwaway PostgreSQL server of the unit tests (see
 * pg_test.h).
 */
#include "pg_test.h"

#include "storage/pg_schema.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct {
    bool tried;
    bool up;
    bool halted;
    char dir[256];
    char script[1024];
    char dsn[256]; /* postgresql://postgres@127.0.0.1:PORT/ (no database) */
} srv;

/* The write end of the watchdog's pipe (watchdog_start), -1 when none. */
static int watch_fd = -1;

static void server_stop(void)
{
    if (srv.dir[0]) {
        char cmd[1400];
        snprintf(cmd, sizeof cmd, "'%s' stop '%s'", srv.script, srv.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "  could not stop the server in %s\n", srv.dir);
        srv.dir[0] = '\0';
        srv.up = false;
    }
    if (watch_fd >= 0) { /* stopped: the watchdog has nothing to do */
        if (write(watch_fd, "", 1) != 1)
            fprintf(stderr, "  could not dismiss the server's watchdog\n");
        close(watch_fd);
        watch_fd = -1;
    }
}

/* Stop the server even when this process dies without running its atexit
 * handlers (an abort, a sanitizer's report, a signal, ctest's timeout): a
 * grandchild, reparented so that a harness killing this process's tree
 * does not take it along, reads a pipe whose write end only this process
 * holds (close-on-exec). A normal exit sends one byte first (server_stop,
 * after stopping the server); end of file without it means this process
 * is gone, and the watchdog runs `pg_server.sh stop`. Only
 * async-signal-safe calls after fork (the tests may have threads). */
static void watchdog_start(void)
{
    int fd[2];
    if (pipe2(fd, O_CLOEXEC) != 0)
        return;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return;
    }
    if (pid == 0) {
        close(fd[1]);
        setsid();
        if (fork() != 0)
            _exit(0);
        char c;
        ssize_t n;
        while ((n = read(fd[0], &c, 1)) < 0 && errno == EINTR)
            ;
        if (n == 1)
            _exit(0);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
        }
        execl(srv.script, srv.script, "stop", srv.dir, (char *)NULL);
        _exit(127);
    }
    close(fd[0]);
    waitpid(pid, NULL, 0);
    watch_fd = fd[1];
}

/* Run `pg_server.sh VERB DIR`. With dsn (cap 256), the "dsn " line it
 * must print goes there, cut after its last '/' (no database). */
static bool server_run(const char *verb, char *dsn)
{
    char cmd[1400], line[512];
    bool seen = false;
    snprintf(cmd, sizeof cmd, "'%s' %s '%s'", srv.script, verb, srv.dir);
    FILE *p = popen(cmd, "r");
    if (!p)
        return false;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "dsn ", 4) != 0 || !dsn)
            continue;
        char *slash = strrchr(line, '/');
        if (slash)
            slash[1] = '\0';
        snprintf(dsn, 256, "%.200s", line + 4);
        seen = true;
    }
    int rc = pclose(p);
    if (rc != 0 || (dsn && !seen)) {
        fprintf(stderr, "  pg_server.sh %s failed\n", verb);
        return false;
    }
    return true;
}

static bool server_start(void)
{
    const char *src = getenv("HALO_SOURCE_DIR");
    if (src && *src)
        snprintf(srv.script, sizeof srv.script, "%s/tests/pg/pg_server.sh",
                 src);
    else /* tests/unit/pg_test.c -> tests/pg/pg_server.sh */
        snprintf(srv.script, sizeof srv.script, "%.*s/../pg/pg_server.sh",
                 (int)(strrchr(__FILE__, '/')
                           ? strrchr(__FILE__, '/') - __FILE__
                           : 1),
                 strrchr(__FILE__, '/') ? __FILE__ : ".");
    /* Not the harness's tmpdir: the server's OS user must reach it. */
    snprintf(srv.dir, sizeof srv.dir, "/tmp/halo-pg-XXXXXX");
    if (!mkdtemp(srv.dir)) {
        srv.dir[0] = '\0';
        return false;
    }
    atexit(server_stop);
    watchdog_start();
    return server_run("start", srv.dsn);
}

bool pg_server_halt(void)
{
    char dsn[320];
    if (!pg_dsn_for("postgres", dsn, sizeof dsn))
        return false;
    if (srv.halted)
        return true;
    srv.halted = server_run("halt", NULL);
    return srv.halted;
}

bool pg_server_resume(void)
{
    if (!srv.halted)
        return srv.up;
    char dsn[256];
    if (!server_run("resume", dsn))
        return false;
    if (strcmp(dsn, srv.dsn) != 0) {
        fprintf(stderr, "  resumed on %s, not %s\n", dsn, srv.dsn);
        return false;
    }
    srv.halted = false;
    return true;
}

const char *pg_dsn_for(const char *db, char *buf, size_t cap)
{
    if (!srv.tried) {
        srv.tried = true;
        srv.up = server_start();
        if (!srv.up)
            fprintf(stderr, "  could not start PostgreSQL with %s\n",
                    srv.script);
    }
    if (!srv.up)
        return NULL;
    snprintf(buf, cap, "%s%s", srv.dsn, db);
    return buf;
}

PGconn *pg_connect_db(const char *db)
{
    char dsn[320];
    halo_err err = {{0}};
    PGconn *c = NULL;
    if (!pg_dsn_for(db, dsn, sizeof dsn))
        return NULL;
    if (halo_pg_connect(dsn, &c, &err) != HALO_OK) {
        fprintf(stderr, "  %s\n", err.msg);
        return NULL;
    }
    return c;
}

PGconn *pg_new_db(const char *name)
{
    char sql[128];
    PGconn *admin = pg_connect_db("postgres");
    if (!admin)
        return NULL;
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name);
    PQclear(PQexec(admin, sql));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    PGresult *r = PQexec(admin, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    PQfinish(admin);
    return ok ? pg_connect_db(name) : NULL;
}

long long pg_q_int(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        v = atoll(PQgetvalue(r, 0, 0));
    else
        fprintf(stderr, "  %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return v;
}

bool pg_q_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
              PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "  %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok;
}
