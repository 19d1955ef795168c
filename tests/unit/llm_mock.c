/*
 * llm_mock.c -- the scripted OpenAI-compatible server (tests/llm_mock) as a
 * child process of a unit test: started with a script, its base URL read
 * from its "listening" line, stopped by PID (also at exit, after a failed
 * CHECK), its recorded requests read back.
 */
#include "llm_mock.h"

#include "harness.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void llm_mock_stop(llm_mock *m)
{
    test_child_stop(&m->child);
}

/* Start a mock serving script (JSON lines) under name; its "listening
 * 127.0.0.1:PORT" line within 10 s. */
bool llm_mock_start(llm_mock *m, const char *name, const char *script)
{
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
    char buf[PATH_MAX];
    const char *path =
        test_child_path("HALO_LLM_MOCK", "halo-llm-mock", buf, sizeof buf);
    const char *argv[] = {"halo-llm-mock", "--script", spath,
                          "--record",      m->record,  NULL};
    if (!test_child_start(&m->child, path, argv, false))
        return false;
    char line[256];
    if (!test_child_line(&m->child, line, sizeof line, 10000) ||
        strncmp(line, "listening ", 10) != 0) {
        fprintf(stderr, "  %s did not start\n", path);
        llm_mock_stop(m);
        return false;
    }
    snprintf(m->base_url, sizeof m->base_url, "http://%.64s/v1", line + 10);
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
