/*
 * harness.h -- a tiny unit-test harness: TEST(name) { CHECK(...); }.
 *
 * Tests register themselves at load time; harness.c's main() runs them all
 * (or those whose names contain argv[1]), each in order, and ends with the
 * line "N passed, N failed". A failed CHECK ends its test at once.
 */
#ifndef HALO_TEST_HARNESS_H
#define HALO_TEST_HARNESS_H

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
