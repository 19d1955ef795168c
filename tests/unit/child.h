/*
 * child.h -- a helper process of a unit test (the Kafka mock cluster, the
 * scripted LLM server): started with pipes on its stdout (and, when asked,
 * its stdin), read line by line with a deadline, stopped by PID. Every
 * started child is stopped at exit too, also after a failed CHECK left one
 * running.
 */
#ifndef HALO_TEST_CHILD_H
#define HALO_TEST_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct test_child {
    pid_t pid;
    int to_fd;   /* its stdin; -1 when not piped */
    int from_fd; /* its stdout */
    char pending[1024];
    size_t n_pending;
} test_child;

/* The helper binary: $env when set, else `name` beside the test binary
 * (written into buf). */
const char *test_child_path(const char *env, const char *name, char *buf,
                            size_t cap);
/* Run path with argv (argv[0] its name, NULL-terminated); with_stdin pipes
 * its stdin to to_fd. False when it could not be started. */
bool test_child_start(test_child *c, const char *path, const char *const *argv,
                      bool with_stdin);
/* One line of its stdout (without the newline) within timeout_ms. */
bool test_child_line(test_child *c, char *line, size_t cap, int timeout_ms);
/* SIGTERM, wait (SIGKILL after 5 s), close the pipes; safe twice. */
void test_child_stop(test_child *c);

#endif
