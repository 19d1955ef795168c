/*
 * fuzz_config.c -- libFuzzer target for the config reader and the schema.
 *
 * The input is parsed as halo.yaml (substitution included: a few variables
 * are set once so both the set and the unset paths run); the root and every
 * map or null value under it are then applied to a schema that holds every
 * field type, nested sections and a passthrough prefix. Everything is freed,
 * so LeakSanitizer checks the failure paths too.
 */
#include "core/config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct inner_cfg {
    int64_t n;
    halo_strlist list;
} inner_cfg;

typedef struct sect_cfg {
    char *endpoint;
    int64_t size;
    bool inner_present;
    inner_cfg inner;
} sect_cfg;

typedef struct fuzz_cfg {
    bool b;
    int64_t i;
    double d;
    char *s;
    int64_t dur;
    int64_t size;
    int e;
    char *ep;
    halo_strlist list;
    halo_kvlist pass;
    bool sect_present;
    sect_cfg sect;
} fuzz_cfg;

static const char *const choices[] = {"basic", "detailed", "off", NULL};

static const halo_field inner_fields[] = {
    {.key = "n",
     .type = HALO_F_INT,
     .offset = offsetof(inner_cfg, n),
     .def = "3",
     .min = -5,
     .max = 5},
    {.key = "list",
     .type = HALO_F_STRLIST,
     .offset = offsetof(inner_cfg, list),
     .def = "[x, y]"},
    {0},
};

static const halo_field sect_fields[] = {
    {.key = "endpoint",
     .type = HALO_F_ENDPOINT,
     .offset = offsetof(sect_cfg, endpoint),
     .def = "127.0.0.1:4317"},
    {.key = "size",
     .type = HALO_F_SIZE,
     .offset = offsetof(sect_cfg, size),
     .def = "1MiB",
     .min = 1,
     .max = 1e12},
    {.key = "inner",
     .type = HALO_F_SECTION,
     .offset = offsetof(sect_cfg, inner),
     .sub = inner_fields,
     .present_offset = offsetof(sect_cfg, inner_present)},
    {0},
};

static const halo_field fields[] = {
    {.key = "b", .type = HALO_F_BOOL, .offset = offsetof(fuzz_cfg, b)},
    {.key = "i",
     .type = HALO_F_INT,
     .offset = offsetof(fuzz_cfg, i),
     .def = "10",
     .min = 0,
     .max = 1000},
    {.key = "d",
     .type = HALO_F_DOUBLE,
     .offset = offsetof(fuzz_cfg, d),
     .def = "0.5",
     .min = 0,
     .max = 1},
    {.key = "s",
     .type = HALO_F_STRING,
     .offset = offsetof(fuzz_cfg, s),
     .def = "x"},
    {.key = "dur",
     .type = HALO_F_DURATION,
     .offset = offsetof(fuzz_cfg, dur),
     .def = "200ms",
     .min = 1e6,
     .max = 3600e9},
    {.key = "size", .type = HALO_F_SIZE, .offset = offsetof(fuzz_cfg, size)},
    {.key = "e",
     .type = HALO_F_ENUM,
     .offset = offsetof(fuzz_cfg, e),
     .def = "basic",
     .enum_values = choices},
    {.key = "ep", .type = HALO_F_ENDPOINT, .offset = offsetof(fuzz_cfg, ep)},
    {.key = "list",
     .type = HALO_F_STRLIST,
     .offset = offsetof(fuzz_cfg, list),
     .def = "*"},
    {.key = "rdkafka.",
     .type = HALO_F_PASSTHROUGH,
     .offset = offsetof(fuzz_cfg, pass)},
    {.key = "sect",
     .type = HALO_F_SECTION,
     .offset = offsetof(fuzz_cfg, sect),
     .sub = sect_fields,
     .present_offset = offsetof(fuzz_cfg, sect_present)},
    {0},
};

static void apply_one(const halo_node *n, const char *where, halo_errlist *errs)
{
    fuzz_cfg cfg = {0};
    halo_config_apply(fields, n, &cfg, where, errs);
    halo_config_release(fields, &cfg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("HALO_FUZZ_SET", "127.0.0.1:9", 1);
    setenv("HALO_FUZZ_EMPTY", "", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    halo_errlist errs = {0};
    halo_node *root =
        halo_config_parse((const char *)data, size, "fuzz.yaml", &errs);
    if (root) {
        apply_one(root, "", &errs);
        for (size_t i = 0; i < root->n; i++)
            apply_one(root->items[i], root->keys[i], &errs);
    }
    for (size_t i = 0; i < errs.n; i++)
        if (!errs.msgs[i][0])
            abort(); /* every error says something */
    halo_node_free(root);
    halo_errlist_free(&errs);
    return 0;
}
