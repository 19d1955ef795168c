/*
 * llm_mock.c -- the scripted OpenAI-compatible server (tests/llm_mock) as a
 * child process of a unit test: started with a script, its base URL read
 * from its "listening" line, stopped by PID (also at exit, after a failed
 * CHECK), its recorded requests read back.
 */
#include "llm_mock.h"

#include "harness.h"

#include "core/clock.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static llm_mock *running[4];

static uint64_t now_ms(void)
{
    return halo_mono_ns() / 1000000u;
}

static const char *mock_path(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("HALO_LLM_MOCK");
    if (env && *env)
        return env;
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
    if (n <= 0)
        return "halo-llm-mock";
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    snprintf(slash ? slash + 1 : path, 32, "halo-llm-mock");
    return path;
}

void llm_mock_stop(llm_mock *m)
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
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    close(m->out_fd);
    for (int i = 0; i < 4; i++)
        if (running[i] == m)
            running[i] = NULL;
    m->pid = 0;
}

static void stop_all(void)
{
    for (int i = 0; i < 4; i++)
        if (running[i])
            llm_mock_stop(running[i]);
}

/* Its "listening 127.0.0.1:PORT" line, within 10 s. */
static bool read_listening(llm_mock *m)
{
    char buf[256];
    size_t n = 0;
    uint64_t end = now_ms() + 10000;
    while (n + 1 < sizeof buf && now_ms() < end) {
        struct pollfd p = {.fd = m->out_fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - now_ms())) <= 0)
            continue;
        ssize_t r = read(m->out_fd, buf + n, sizeof buf - 1 - n);
        if (r <= 0)
            return false;
        n += (size_t)r;
        buf[n] = '\0';
        char *nl = strchr(buf, '\n');
        if (!nl)
            continue;
        *nl = '\0';
        if (strncmp(buf, "listening ", 10) != 0)
            return false;
        snprintf(m->base_url, sizeof m->base_url, "http://%.64s/v1", buf + 10);
        return true;
    }
    return false;
}

/* Start a mock serving script (JSON lines) under name. */
bool llm_mock_start(llm_mock *m, const char *name, const char *script)
{
    static bool registered;
    memset(m, 0, sizeof *m);
    char spath[600];
    snprintf(spath, sizeof spath, "%s/%s.script", halo_test_tmpdir(), name);
    snprintf(m->record, sizeof m->record, "%s/%s.record", halo_test_tmpdir(),
             name);
    FILE *f = fopen(spath, "w");
    if (!f)
        return false;
    fputs(script, f);
    fclose(f);
    unlink(m->record);
    int out[2];
    if (pipe(out) != 0)
        return false;
    const char *path = mock_path();
    const char *argv[] = {"halo-llm-mock", "--script", spath,
                          "--record",      m->record,  NULL};
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    if (pid < 0) {
        close(out[0]);
        return false;
    }
    fcntl(out[0], F_SETFD, FD_CLOEXEC);
    m->pid = pid;
    m->out_fd = out[0];
    for (int i = 0; i < 4; i++)
        if (!running[i]) {
            running[i] = m;
            break;
        }
    if (!registered)
        atexit(stop_all);
    registered = true;
    if (!read_listening(m)) {
        fprintf(stderr, "  %s did not start\n", path);
        llm_mock_stop(m);
        return false;
    }
    return true;
}

/* The recorded requests as a JSON array (one element per request). */
json_t *llm_mock_requests(const llm_mock *m)
{
    json_t *arr = json_array();
    FILE *f = fopen(m->record, "r");
    if (!f)
        return arr;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *v = json_loads(line, 0, NULL);
        if (v)
            json_array_append_new(arr, v);
    }
    free(line);
    fclose(f);
    return arr;
}
