/* harness.c -- runs the TEST()s registered by one unit-test binary. */
#include "harness.h"

#include "core/buf.h"
#include "core/clock.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TESTS 512

static struct {
    const char *name;
    halo_test_fn fn;
} tests[MAX_TESTS];
static int n_tests;
static char tmpdir[512];

void halo_test_register(const char *name, halo_test_fn fn)
{
    if (n_tests < MAX_TESTS) {
        tests[n_tests].name = name;
        tests[n_tests].fn = fn;
        n_tests++;
    }
}

const char *halo_test_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/halo-unit-XXXXXX",
                 base && *base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return tmpdir;
}

char *halo_test_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *s = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0 && (s = malloc((size_t)n + 1)) &&
        fread(s, 1, (size_t)n, f) == (size_t)n) {
        s[n] = '\0';
    } else {
        free(s);
        s = NULL;
    }
    fclose(f);
    return s;
}

bool halo_test_capture_start(halo_test_capture *cp, const char *name)
{
    snprintf(cp->path, sizeof cp->path, "%s/%s", halo_test_tmpdir(), name);
    fflush(stderr);
    int fd = open(cp->path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    cp->saved = dup(2);
    if (fd < 0 || cp->saved < 0 || dup2(fd, 2) < 0)
        return false;
    close(fd);
    return true;
}

char *halo_test_capture_end(halo_test_capture *cp)
{
    fflush(stderr);
    dup2(cp->saved, 2);
    close(cp->saved);
    return halo_test_read_file(cp->path);
}

void halo_test_ack_init(halo_test_ack *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
}

void halo_test_on_ack(void *ud, halo_status st, const char *msg)
{
    halo_test_ack *r = ud;
    pthread_mutex_lock(&r->mu);
    r->calls++;
    r->st = st;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
    pthread_mutex_unlock(&r->mu);
}

int halo_test_ack_calls(halo_test_ack *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->calls;
    pthread_mutex_unlock(&r->mu);
    return n;
}

bool halo_test_ack_wait(halo_test_ack *r, int calls, int timeout_ms)
{
    uint64_t end = halo_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    while (halo_test_ack_calls(r) < calls && halo_mono_ns() < end) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return halo_test_ack_calls(r) >= calls;
}

char *halo_test_run(const char *cmd, int *rc)
{
    halo_buf out = HALO_BUF_INIT;
    char chunk[4096];
    size_t n;
    *rc = -1;
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
        halo_buf_append(&out, chunk, n);
    int st = pclose(p);
    *rc = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    halo_buf_putc(&out, '\0');
    return halo_buf_steal(&out);
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < n_tests; i++) {
        if (argc > 1 && !strstr(tests[i].name, argv[1]))
            continue;
        int f = 0;
        tests[i].fn(&f);
        printf("%s %s\n", f ? "FAIL" : "ok  ", tests[i].name);
        fflush(stdout);
        if (f)
            failed++;
        else
            passed++;
    }
    if (tmpdir[0]) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
