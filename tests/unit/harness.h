/*
 * harness.h -- a tiny unit-test harness: TEST(name) { CHECK(...); }.
 *
 * Tests register themselves at load time; harness.c's main() runs them all
 * (or those whose names contain argv[1]), each in order, and ends with the
 * line "N passed, N failed". A failed CHECK ends its test at once.
 *
 * It also holds the helpers many tests would otherwise copy: scratch
 * files, stderr capture, an acknowledgement recorder that exporter threads
 * may call into, and running a shell command for its output.
 */
#ifndef HALO_TEST_HARNESS_H
#define HALO_TEST_HARNESS_H

#include "core/status.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef void (*halo_test_fn)(int *failed);
void halo_test_register(const char *name, halo_test_fn fn);
/* Directory for scratch files, fresh per test binary run ($TMPDIR based). */
const char *halo_test_tmpdir(void);

/* A whole file, NUL-terminated (malloc'd); NULL when unreadable. */
char *halo_test_read_file(const char *path);

/* Everything written to stderr between start and end, through a file
 * `name` in the tmpdir (for checks that a secret never reaches a log). */
typedef struct halo_test_capture {
    int saved; /* the real stderr */
    char path[600];
} halo_test_capture;
bool halo_test_capture_start(halo_test_capture *cp, const char *name);
/* Restore stderr; the captured text (malloc'd, NULL when unreadable). */
char *halo_test_capture_end(halo_test_capture *cp);

/* What the acks of a batch said (halo_ack_new(halo_test_on_ack, &rec)):
 * how many calls, and the last status and message. Acks may run on any
 * thread, so every field is written under mu; read st and msg after
 * halo_test_ack_wait() (or halo_test_ack_calls()) has seen the call. */
typedef struct halo_test_ack {
    pthread_mutex_t mu;
    int calls;
    halo_status st;
    char msg[HALO_ERR_MAX];
} halo_test_ack;
#define HALO_TEST_ACK_INIT                                                     \
    {                                                                          \
        .mu = PTHREAD_MUTEX_INITIALIZER                                        \
    }
/* Reset r to no calls (for arrays and for reuse). */
void halo_test_ack_init(halo_test_ack *r);
/* A halo_ack_fn (core/batch.h); ud is a halo_test_ack. */
void halo_test_on_ack(void *ud, halo_status st, const char *msg);
int halo_test_ack_calls(halo_test_ack *r);
/* Poll until at least `calls` acks arrived or timeout_ms passed: whether
 * they arrived. */
bool halo_test_ack_wait(halo_test_ack *r, int calls, int timeout_ms);

/* Run cmd through the shell (popen): its stdout as a malloc'd,
 * NUL-terminated string (add 2>&1 to cmd for stderr too), NULL when it
 * could not run. *rc: the exit status, -1 when it did not exit normally. */
char *halo_test_run(const char *cmd, int *rc);

#define TEST(name)                                                             \
    static void test_##name(int *halo_test_failed);                            \
    __attribute__((constructor)) static void register_##name(void)             \
    {                                                                          \
        halo_test_register(#name, test_##name);                                \
    }                                                                          \
    static void test_##name(int *halo_test_failed)

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, \
                    #cond);                                                    \
            *halo_test_failed = 1;                                             \
            return;                                                            \
        }                                                                      \
    } while (0)

#define CHECK_INT(a, b)                                                        \
    do {                                                                       \
        long long va_ = (long long)(a), vb_ = (long long)(b);                  \
        if (va_ != vb_) {                                                      \
            fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n",      \
                    __FILE__, __LINE__, #a, va_, #b, vb_);                     \
            *halo_test_failed = 1;                                             \
            return;                                                            \
        }                                                                      \
    } while (0)

#define CHECK_STR(a, b)                                                        \
    do {                                                                       \
        const char *sa_ = (a), *sb_ = (b);                                     \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                           \
            fprintf(stderr, "  %s:%d: %s == \"%s\", expected \"%s\"\n",        \
                    __FILE__, __LINE__, #a, sa_ ? sa_ : "(null)",              \
                    sb_ ? sb_ : "(null)");                                     \
            *halo_test_failed = 1;                                             \
            return;                                                            \
        }                                                                      \
    } while (0)

/* Substring check, for error messages. */
#define CHECK_CONTAINS(hay, needle)                                            \
    do {                                                                       \
        const char *h_ = (hay), *n_ = (needle);                                \
        if (!h_ || !strstr(h_, n_)) {                                          \
            fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n",       \
                    __FILE__, __LINE__, h_ ? h_ : "(null)", n_);               \
            *halo_test_failed = 1;                                             \
            return;                                                            \
        }                                                                      \
    } while (0)

#endif
