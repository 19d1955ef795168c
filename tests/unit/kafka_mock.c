/*
 * kafka_mock.c -- the Kafka mock cluster as a child process of a unit test
 * (see kafka_mock.h).
 */
#include "kafka_mock.h"
#include "core/clock.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void)
{
    return halo_mono_ns() / 1000000u;
}

static void nap(void)
{
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
}

static kafka_mock
    *running[8]; /* stopped at exit when a failed CHECK left one */

static const char *mock_path(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("HALO_KAFKA_MOCK");
    if (env && *env)
        return env;
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
    if (n <= 0)
        return "halo-kafka-mock";
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    snprintf(slash ? slash + 1 : path, 32, "halo-kafka-mock");
    return path;
}

/* One line of its output (without the newline) within timeout_ms. */
static bool mock_line(kafka_mock *m, char *line, size_t cap, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        char *nl = memchr(m->pending, '\n', m->n_pending);
        if (nl) {
            size_t len = (size_t)(nl - m->pending);
            snprintf(line, cap, "%.*s", (int)len, m->pending);
            m->n_pending -= len + 1;
            memmove(m->pending, nl + 1, m->n_pending);
            return true;
        }
        uint64_t now = now_ms();
        if (now >= end || m->n_pending == sizeof m->pending)
            return false;
        struct pollfd p = {.fd = m->from_fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - now)) <= 0)
            continue;
        ssize_t r = read(m->from_fd, m->pending + m->n_pending,
                         sizeof m->pending - m->n_pending);
        if (r <= 0)
            return false;
        m->n_pending += (size_t)r;
    }
}

void kafka_mock_stop(kafka_mock *m)
{
    if (m->pid <= 0)
        return;
    kill(m->pid, SIGTERM);
    int status;
    uint64_t end = now_ms() + 5000;
    while (waitpid(m->pid, &status, WNOHANG) == 0) {
        if (now_ms() > end) {
            kill(m->pid, SIGKILL);
            waitpid(m->pid, &status, 0);
            break;
        }
        nap();
    }
    close(m->to_fd);
    close(m->from_fd);
    for (int i = 0; i < 8; i++)
        if (running[i] == m)
            running[i] = NULL;
    m->pid = 0;
}

static void stop_all(void)
{
    for (int i = 0; i < 8; i++)
        if (running[i])
            kafka_mock_stop(running[i]);
}

bool kafka_mock_start(kafka_mock *m, const char *const *topics)
{
    static bool registered;
    memset(m, 0, sizeof *m);
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0)
        return false;
    const char *argv[32] = {"halo-kafka-mock", "--commands"};
    int argc = 2;
    for (int i = 0; topics[i] && argc < 29; i++) {
        argv[argc++] = "--topic";
        argv[argc++] = topics[i];
    }
    argv[argc] = NULL;
    const char *path = mock_path();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
        close(in[1]);
        close(out[0]);
        return false;
    }
    fcntl(in[1], F_SETFD, FD_CLOEXEC);
    fcntl(out[0], F_SETFD, FD_CLOEXEC);
    m->pid = pid;
    m->to_fd = in[1];
    m->from_fd = out[0];
    for (int i = 0; i < 8; i++)
        if (!running[i]) {
            running[i] = m;
            break;
        }
    if (!registered)
        atexit(stop_all);
    registered = true;
    char line[512];
    if (!mock_line(m, line, sizeof line, 10000) ||
        strncmp(line, "bootstrap ", 10) != 0) {
        fprintf(stderr, "  %s did not start\n", path);
        kafka_mock_stop(m);
        return false;
    }
    snprintf(m->bootstrap, sizeof m->bootstrap, "%.200s", line + 10);
    return true;
}

bool kafka_mock_cmd(kafka_mock *m, const char *cmd)
{
    char msg[64], line[256], want[64];
    int n = snprintf(msg, sizeof msg, "%s\n", cmd);
    if (write(m->to_fd, msg, (size_t)n) != n)
        return false;
    snprintf(want, sizeof want, "ok %s", cmd);
    while (mock_line(m, line, sizeof line, 5000))
        if (strcmp(line, want) == 0)
            return true;
    return false;
}
