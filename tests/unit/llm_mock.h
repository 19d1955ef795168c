/*
 * llm_mock.h -- run tests/llm_mock/halo_llm_mock.c (a scripted
 * OpenAI-compatible chat-completions server, its own process) from a unit
 * test: the binary is $HALO_LLM_MOCK, else next to the test binary.
 */
#ifndef HALO_TEST_LLM_MOCK_H
#define HALO_TEST_LLM_MOCK_H

#include "child.h"

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct llm_mock {
    test_child child;
    char base_url[128]; /* "http://127.0.0.1:PORT/v1" */
    char record[600];   /* its record file: one JSON line per request */
} llm_mock;

/* Start a mock answering script (JSON lines, see halo_llm_mock.c) under
 * name (files in the test's tmpdir); false (said) when it did not start. */
bool llm_mock_start(llm_mock *m, const char *name, const char *script);
/* SIGTERM, wait (SIGKILL after 5 s); safe twice. */
void llm_mock_stop(llm_mock *m);
/* The recorded requests, a JSON array of {path, headers, body}. */
json_t *llm_mock_requests(const llm_mock *m);

#endif
