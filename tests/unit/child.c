/*
 * child.c -- a helper process of a unit test (child.h).
 */
#include "child.h"

#include "core/clock.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MAX_RUNNING = 16 };
static test_child *running[MAX_RUNNING];

static uint64_t now_ms(void)
{
    return halo_mono_ns() / 1000000u;
}

const char *test_child_path(const char *env, const char *name, char *buf,
                            size_t cap)
{
    const char *e = getenv(env);
    if (e && *e)
        return e;
    ssize_t n = readlink("/proc/self/exe", buf, cap > 64 ? cap - 64 : 0);
    if (n <= 0)
        return name;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    snprintf(slash ? slash + 1 : buf, 64, "%s", name);
    return buf;
}

static void stop_all(void)
{
    for (int i = 0; i < MAX_RUNNING; i++)
        if (running[i])
            test_child_stop(running[i]);
}

bool test_child_start(test_child *c, const char *path, const char *const *argv,
                      bool with_stdin)
{
    static bool registered;
    memset(c, 0, sizeof *c);
    c->to_fd = c->from_fd = -1;
    int in[2] = {-1, -1}, out[2];
    if (pipe(out) != 0)
        return false;
    if (with_stdin && pipe(in) != 0) {
        close(out[0]);
        close(out[1]);
        return false;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* a test that crashes (abort, a sanitizer) runs no exit handler:
         * the kernel stops the child then instead of leaving it behind */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
            _exit(126);
        if (with_stdin) {
            dup2(in[0], 0);
            close(in[0]);
            close(in[1]);
        }
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    if (with_stdin)
        close(in[0]);
    if (pid < 0) {
        close(out[0]);
        if (with_stdin)
            close(in[1]);
        return false;
    }
    fcntl(out[0], F_SETFD, FD_CLOEXEC);
    if (with_stdin)
        fcntl(in[1], F_SETFD, FD_CLOEXEC);
    c->pid = pid;
    c->from_fd = out[0];
    c->to_fd = with_stdin ? in[1] : -1;
    for (int i = 0; i < MAX_RUNNING; i++)
        if (!running[i]) {
            running[i] = c;
            break;
        }
    if (!registered)
        atexit(stop_all);
    registered = true;
    return true;
}

bool test_child_line(test_child *c, char *line, size_t cap, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        char *nl = memchr(c->pending, '\n', c->n_pending);
        if (nl) {
            size_t len = (size_t)(nl - c->pending);
            snprintf(line, cap, "%.*s", (int)len, c->pending);
            c->n_pending -= len + 1;
            memmove(c->pending, nl + 1, c->n_pending);
            return true;
        }
        uint64_t now = now_ms();
        if (now >= end || c->n_pending == sizeof c->pending)
            return false;
        struct pollfd p = {.fd = c->from_fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - now)) <= 0)
            continue;
        ssize_t r = read(c->from_fd, c->pending + c->n_pending,
                         sizeof c->pending - c->n_pending);
        if (r <= 0)
            return false;
        c->n_pending += (size_t)r;
    }
}

void test_child_stop(test_child *c)
{
    if (c->pid <= 0)
        return;
    kill(c->pid, SIGTERM);
    int status;
    uint64_t end = now_ms() + 5000;
    while (waitpid(c->pid, &status, WNOHANG) == 0) {
        if (now_ms() > end) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &status, 0);
            break;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    if (c->to_fd >= 0)
        close(c->to_fd);
    close(c->from_fd);
    for (int i = 0; i < MAX_RUNNING; i++)
        if (running[i] == c)
            running[i] = NULL;
    c->pid = 0;
}
