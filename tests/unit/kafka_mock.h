/*
 * kafka_mock.h -- the Kafka mock cluster (tests/kafka_mock, binary
 * halo-kafka-mock) as a child process of a unit test.
 *
 * The binary is $HALO_KAFKA_MOCK (ctest sets it), else halo-kafka-mock
 * beside the test binary. It runs with --commands: "down" / "up" make every
 * broker refuse / serve again. Every started mock is stopped at exit, also
 * after a failed CHECK left one running.
 */
#ifndef HALO_TEST_KAFKA_MOCK_H
#define HALO_TEST_KAFKA_MOCK_H

#include "child.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct kafka_mock {
    test_child child;
    char bootstrap[256]; /* "127.0.0.1:PORT" once started */
} kafka_mock;

/* Start a cluster with topics ("name:partitions", NULL-terminated) and
 * wait (bounded) for its bootstrap line. */
bool kafka_mock_start(kafka_mock *m, const char *const *topics);
/* Send "down" or "up"; true once the mock answered "ok <cmd>". */
bool kafka_mock_cmd(kafka_mock *m, const char *cmd);
/* Stop it by PID (SIGTERM, then SIGKILL after 5 s); safe twice. */
void kafka_mock_stop(kafka_mock *m);

#endif
