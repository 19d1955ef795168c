/*
 * kafka_mock.c -- the Kafka mock cluster as a child process of a unit test
 * (see kafka_mock.h).
 */
#include "kafka_mock.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void kafka_mock_stop(kafka_mock *m)
{
    test_child_stop(&m->child);
}

bool kafka_mock_start(kafka_mock *m, const char *const *topics)
{
    memset(m, 0, sizeof *m);
    const char *argv[32] = {"halo-kafka-mock", "--commands"};
    int argc = 2;
    for (int i = 0; topics[i] && argc < 29; i++) {
        argv[argc++] = "--topic";
        argv[argc++] = topics[i];
    }
    argv[argc] = NULL;
    char buf[PATH_MAX];
    const char *path =
        test_child_path("HALO_KAFKA_MOCK", "halo-kafka-mock", buf, sizeof buf);
    if (!test_child_start(&m->child, path, argv, true))
        return false;
    char line[512];
    if (!test_child_line(&m->child, line, sizeof line, 10000) ||
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
    if (write(m->child.to_fd, msg, (size_t)n) != n)
        return false;
    snprintf(want, sizeof want, "ok %s", cmd);
    while (test_child_line(&m->child, line, sizeof line, 5000))
        if (strcmp(line, want) == 0)
            return true;
    return false;
}
