/*
 * test_config.c -- core/config*.c: YAML tree, ${...} substitution, scalar
 * syntaxes and the schema (apply / release / describe), error paths first.
 *
 * Every test frees what it made, so the ASan build (LeakSanitizer) checks
 * that no path leaks, failed applies included.
 */
#include "core/config.h"
#include "harness.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- helpers ---------------------------------------------------------- */

static halo_node *parse(const char *text, halo_errlist *errs)
{
    return halo_config_parse(text, strlen(text), "t.yaml", errs);
}

/* The one error a parse of text produces (NULL when it parsed, or when it
 * produced a different count; the caller CHECKs). Stored in buf. */
static const char *parse_error(const char *text, char *buf, size_t cap)
{
    halo_errlist errs = {0};
    halo_node *root = parse(text, &errs);
    const char *r = NULL;
    if (!root && errs.n == 1) {
        snprintf(buf, cap, "%s", errs.msgs[0]);
        r = buf;
    } else if (!root && errs.n > 1) {
        snprintf(buf, cap, "(%zu errors) %s", errs.n, errs.msgs[0]);
        r = buf;
    }
    halo_node_free(root);
    halo_errlist_free(&errs);
    return r;
}

static const char *scalar(const halo_node *map, const char *key)
{
    const halo_node *n = halo_node_get(map, key);
    return n && n->type == HALO_NODE_SCALAR ? n->value : NULL;
}

/* ---- the test schema: every field type -------------------------------- */

typedef struct inner_cfg {
    int64_t depth;
} inner_cfg;

typedef struct grpc_cfg {
    char *endpoint;
    int64_t max_recv;
    bool inner_present;
    inner_cfg inner;
} grpc_cfg;

typedef struct test_cfg {
    bool flag;
    int64_t count;
    double ratio;
    char *name;
    int64_t timeout;
    int64_t limit;
    int mode;
    char *endpoint;
    halo_strlist tags;
    halo_kvlist rd;
    bool grpc_present;
    grpc_cfg grpc;
    halo_strlist hosts;
} test_cfg;

static const char *const modes[] = {"basic", "detailed", NULL};

static const halo_field inner_fields[] = {
    {.key = "depth",
     .type = HALO_F_INT,
     .offset = offsetof(inner_cfg, depth),
     .def = "3",
     .min = 1,
     .max = 10,
     .description = "how deep"},
    {0},
};

static const halo_field grpc_fields[] = {
    {.key = "endpoint",
     .type = HALO_F_ENDPOINT,
     .offset = offsetof(grpc_cfg, endpoint),
     .def = "127.0.0.1:4317",
     .description = "where to listen"},
    {.key = "max_recv",
     .type = HALO_F_SIZE,
     .offset = offsetof(grpc_cfg, max_recv),
     .def = "4MiB",
     .min = 1024,
     .max = 64.0 * 1024 * 1024,
     .description = "largest message"},
    {.key = "inner",
     .type = HALO_F_SECTION,
     .offset = offsetof(grpc_cfg, inner),
     .sub = inner_fields,
     .present_offset = offsetof(grpc_cfg, inner_present),
     .description = "nested"},
    {0},
};

static const halo_field test_fields[] = {
    {.key = "flag",
     .type = HALO_F_BOOL,
     .offset = offsetof(test_cfg, flag),
     .def = "true",
     .description = "a switch"},
    {.key = "count",
     .type = HALO_F_INT,
     .offset = offsetof(test_cfg, count),
     .def = "10",
     .min = 1,
     .max = 100,
     .description = "how many"},
    {.key = "ratio",
     .type = HALO_F_DOUBLE,
     .offset = offsetof(test_cfg, ratio),
     .def = "0.5",
     .min = 0,
     .max = 1,
     .description = "a fraction"},
    {.key = "name",
     .type = HALO_F_STRING,
     .offset = offsetof(test_cfg, name),
     .def = "halo",
     .description = "a name"},
    {.key = "timeout",
     .type = HALO_F_DURATION,
     .offset = offsetof(test_cfg, timeout),
     .def = "200ms",
     .min = 1e6,
     .max = 3600e9,
     .description = "how long"},
    {.key = "limit",
     .type = HALO_F_SIZE,
     .offset = offsetof(test_cfg, limit),
     .def = "64MiB",
     .description = "how much"},
    {.key = "mode",
     .type = HALO_F_ENUM,
     .offset = offsetof(test_cfg, mode),
     .def = "detailed",
     .enum_values = modes,
     .description = "which mode"},
    {.key = "endpoint",
     .type = HALO_F_ENDPOINT,
     .offset = offsetof(test_cfg, endpoint),
     .description = "where to"},
    {.key = "tags",
     .type = HALO_F_STRLIST,
     .offset = offsetof(test_cfg, tags),
     .def = "[a, \"b c\"]",
     .description = "labels"},
    {.key = "rdkafka.",
     .type = HALO_F_PASSTHROUGH,
     .offset = offsetof(test_cfg, rd),
     .description = "librdkafka options"},
    {.key = "grpc",
     .type = HALO_F_SECTION,
     .offset = offsetof(test_cfg, grpc),
     .sub = grpc_fields,
     .present_offset = offsetof(test_cfg, grpc_present),
     .description = "the gRPC server"},
    {.key = "hosts",
     .type = HALO_F_STRLIST,
     .offset = offsetof(test_cfg, hosts),
     .def = "*",
     .description = "one default item"},
    {0},
};

/* Parse text, apply test_fields to its "sec" key (where "sec"); errors
 * go to errs. Returns apply's result; cfg must be released. */
static bool apply_text(const char *text, test_cfg *cfg, halo_errlist *errs)
{
    halo_node *root = parse(text, errs);
    if (!root)
        return false;
    bool ok = halo_config_apply(test_fields, halo_node_get(root, "sec"), cfg,
                                "sec", errs);
    halo_node_free(root);
    return ok;
}

/* The single error applying text produces, into buf. */
static const char *apply_error(const char *text, char *buf, size_t cap)
{
    test_cfg cfg = {0};
    halo_errlist errs = {0};
    bool ok = apply_text(text, &cfg, &errs);
    const char *r = NULL;
    if (!ok && errs.n == 1) {
        snprintf(buf, cap, "%s", errs.msgs[0]);
        r = buf;
    } else if (errs.n > 1) {
        snprintf(buf, cap, "(%zu errors) %s | %s", errs.n, errs.msgs[0],
                 errs.msgs[1]);
        r = buf;
    }
    halo_config_release(test_fields, &cfg);
    halo_errlist_free(&errs);
    return r;
}

/* ---- the tree --------------------------------------------------------- */

TEST(tree_shapes_and_locations)
{
    halo_errlist errs = {0};
    halo_node *root = parse("a: 1\n"
                            "b:\n"
                            "  c: [x, \"y\", ~]\n"
                            "  d:\n"
                            "    - p\n"
                            "    - {q: r}\n"
                            "e:\n"
                            "f: null\n"
                            "g: 'null'\n"
                            "h: |\n"
                            "  text\n",
                            &errs);
    CHECK(root);
    CHECK_INT(errs.n, 0);
    CHECK_INT(root->type, HALO_NODE_MAP);
    CHECK_INT(root->n, 6);
    CHECK_STR(root->file, "t.yaml");
    CHECK_STR(scalar(root, "a"), "1");
    CHECK(!halo_node_get(root, "a")->quoted);
    const halo_node *b = halo_node_get(root, "b");
    CHECK_INT(b->type, HALO_NODE_MAP);
    CHECK_INT(b->line, 2); /* a value is located at its key */
    CHECK_INT(b->col, 1);
    const halo_node *c = halo_node_get(b, "c");
    CHECK_INT(c->type, HALO_NODE_SEQ);
    CHECK_INT(c->n, 3);
    CHECK_INT(c->line, 3);
    CHECK_INT(c->col, 3);
    CHECK_STR(c->items[0]->value, "x");
    CHECK_INT(c->items[0]->col, 7); /* elements have their own position */
    CHECK_STR(c->items[1]->value, "y");
    CHECK(c->items[1]->quoted);
    CHECK_INT(c->items[2]->type, HALO_NODE_NULL);
    const halo_node *d = halo_node_get(b, "d");
    CHECK_INT(d->n, 2);
    CHECK_INT(d->items[0]->line, 5);
    CHECK_INT(d->items[0]->col, 7);
    CHECK_STR(scalar(d->items[1], "q"), "r");
    CHECK(d->items[1]->file == root->file); /* shared, owned by the root */
    CHECK_INT(halo_node_get(root, "e")->type, HALO_NODE_NULL);
    CHECK_INT(halo_node_get(root, "e")->line, 7);
    CHECK_INT(halo_node_get(root, "f")->type, HALO_NODE_NULL);
    CHECK_STR(scalar(root, "g"), "null"); /* quoted: a string */
    CHECK_STR(scalar(root, "h"), "text\n");
    CHECK(!halo_node_get(root, "zz"));
    CHECK(!halo_node_get(c, "x")); /* not a map */
    CHECK(!halo_node_get(NULL, "x"));
    halo_node_free(root);
}

TEST(tree_anchors_aliases_merge)
{
    halo_errlist errs = {0};
    halo_node *root = parse("base: &b {x: 1, y: [2, 3]}\n"
                            "copy: *b\n"
                            "merged:\n"
                            "  <<: *b\n"
                            "  x: 9\n"
                            "multi:\n"
                            "  <<: [{m: 1}, {m: 2, n: 2}]\n"
                            "s: &s hello\n"
                            "t: *s\n",
                            &errs);
    CHECK(root);
    const halo_node *copy = halo_node_get(root, "copy");
    CHECK(copy && copy->type == HALO_NODE_MAP);
    CHECK(copy != halo_node_get(root, "base"));
    CHECK_STR(scalar(copy, "x"), "1");
    CHECK_INT(halo_node_get(copy, "y")->n, 2);
    CHECK_INT(copy->line, 2);
    const halo_node *merged = halo_node_get(root, "merged");
    CHECK_INT(merged->n, 2);
    CHECK_STR(scalar(merged, "x"), "9"); /* explicit keys win */
    CHECK_INT(halo_node_get(merged, "y")->n, 2);
    CHECK(!halo_node_get(merged, "<<"));
    const halo_node *multi = halo_node_get(root, "multi");
    CHECK_STR(scalar(multi, "m"), "1"); /* earlier sources win */
    CHECK_STR(scalar(multi, "n"), "2");
    CHECK_STR(scalar(root, "t"), "hello");
    halo_node_free(root);

    /* An alias may name a key when it stands for a scalar. */
    root = parse("k: &k name\n*k : v\n", &errs);
    CHECK(root);
    CHECK_STR(scalar(root, "name"), "v");
    halo_node_free(root);

    char buf[512];
    CHECK_STR(parse_error("a: &m {x: 1}\n*m : 2\n", buf, sizeof buf),
              "t.yaml:2:1: mapping keys must be scalars");
    CHECK_STR(parse_error("a: *nope\n", buf, sizeof buf),
              "t.yaml:1:4: unknown alias \"*nope\" (an anchor must be "
              "complete before it is used)");
    /* A node cannot contain an alias of itself. */
    CHECK_CONTAINS(parse_error("a: &x [1, *x]\n", buf, sizeof buf),
                   "unknown alias \"*x\"");
    CHECK_STR(parse_error("a: {<<: 5}\n", buf, sizeof buf),
              "t.yaml:1:5: merge key \"<<\" expects a mapping or a list of "
              "mappings");
}

TEST(tree_alias_bomb_is_bounded)
{
    char text[2048];
    size_t n = 0;
    n += (size_t)snprintf(text + n, sizeof text - n, "a0: &a0 [x, x, x, x]\n");
    for (int i = 1; i < 12; i++)
        n += (size_t)snprintf(text + n, sizeof text - n,
                              "a%d: &a%d [*a%d, *a%d, *a%d, *a%d]\n", i, i,
                              i - 1, i - 1, i - 1, i - 1);
    char buf[512];
    CHECK_CONTAINS(parse_error(text, buf, sizeof buf),
                   "too many nodes (more than 100000");
}

TEST(tree_key_limits)
{
    size_t cap = 5000 * 16 + 64;
    char *text = malloc(cap);
    CHECK(text);
    size_t n = 0;
    for (int i = 0; i < 4097; i++)
        n += (size_t)snprintf(text + n, cap - n, "k%d: 1\n", i);
    char buf[512];
    const char *e = parse_error(text, buf, sizeof buf);
    /* Merges count as well: 2 x 2100 entries into one mapping. */
    n = (size_t)snprintf(text, cap, "a: &a {");
    for (int i = 0; i < 2100; i++)
        n += (size_t)snprintf(text + n, cap - n, "k%d: 1, ", i);
    n += (size_t)snprintf(text + n, cap - n, "}\nb: {<<: [*a, *a]}\n");
    char buf2[512];
    const char *e2 = parse_error(text, buf2, sizeof buf2);
    free(text);
    CHECK_STR(e, "t.yaml:1:1: mapping has more than 4096 keys");
    /* Anchors are bounded too (each alias looks them up). */
    text = malloc(cap);
    CHECK(text);
    n = 0;
    for (int i = 0; i < 1025; i++)
        n += (size_t)snprintf(text + n, cap - n, "k%d: &a%d 1\n", i, i);
    e = parse_error(text, buf, sizeof buf);
    free(text);
    CHECK_STR(e, "t.yaml:1025:1: too many anchors (more than 1024)");
    CHECK_STR(e2, "t.yaml:2:5: merge keys bring more than 4096 entries into "
                  "one mapping");
}

TEST(tree_nesting_limit)
{
    char deep[300];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = '\0';
    char text[320];
    snprintf(text, sizeof text, "a: %s\n", deep);
    char buf[512];
    CHECK_CONTAINS(parse_error(text, buf, sizeof buf),
                   "nesting too deep (more than 64 levels)");
    /* 60 levels are fine. */
    memset(deep, '[', 60);
    memset(deep + 60, ']', 60);
    deep[120] = '\0';
    snprintf(text, sizeof text, "a: %s\n", deep);
    halo_errlist errs = {0};
    halo_node *root = parse(text, &errs);
    CHECK(root);
    halo_node_free(root);
}

TEST(tree_duplicate_keys)
{
    char buf[512];
    CHECK_STR(parse_error("a: 1\nb: 2\na: 3\n", buf, sizeof buf),
              "t.yaml:3:1: duplicate key \"a\" (first at line 1)");
    CHECK_STR(parse_error("x:\n  k: 1\n  k: {z: 1}\n", buf, sizeof buf),
              "t.yaml:3:3: duplicate key \"k\" (first at line 2)");
    /* Every duplicate is reported. */
    halo_errlist errs = {0};
    CHECK(!parse("a: 1\na: 2\nb: 1\nb: 2\n", &errs));
    CHECK_INT(errs.n, 2);
    CHECK_STR(errs.msgs[1],
              "t.yaml:4:1: duplicate key \"b\" (first at line 3)");
    halo_errlist_free(&errs);
}

TEST(tree_syntax_errors)
{
    char buf[512];
    CHECK_STR(parse_error("a: 1\nb: [1, 2\nc: 3\n", buf, sizeof buf),
              "t.yaml:3:2: did not find expected ',' or ']' (while parsing "
              "a flow sequence at line 2)");
    CHECK_STR(parse_error("a: b: c\n", buf, sizeof buf),
              "t.yaml:1:5: mapping values are not allowed in this context");
    CHECK_CONTAINS(parse_error("a:\n\tb: 1\n", buf, sizeof buf), "t.yaml:2:");
    CHECK_CONTAINS(parse_error("a:\n\tb: 1\n", buf, sizeof buf),
                   "a tab; YAML indents with spaces only");
    CHECK_CONTAINS(parse_error("receivers:\n\totlp: {}\n", buf, sizeof buf),
                   "a tab; YAML indents with spaces only");
    /* libyaml counts characters: after characters of several bytes too */
    CHECK_CONTAINS(parse_error("# caf\xc3\xa9 \xe2\x82\xac\nkey:\n\tx: 1\n",
                               buf, sizeof buf),
                   "a tab; YAML indents with spaces only");
    CHECK_CONTAINS(parse_error("a: \"\\x00\"\n", buf, sizeof buf),
                   "t.yaml:1:4: NUL character in a value");
    CHECK_STR(parse_error("a: 1\nb: \xff\xfe\n", buf, sizeof buf),
              "t.yaml:2:4: invalid leading UTF-8 octet (at byte 8)");
    CHECK_STR(parse_error("[a, b]: 1\n", buf, sizeof buf),
              "t.yaml:1:1: mapping keys must be scalars");
}

TEST(tree_top_level_and_documents)
{
    char buf[512];
    CHECK_STR(parse_error("- a\n- b\n", buf, sizeof buf),
              "t.yaml:1:1: expected a mapping at the top level");
    CHECK_STR(parse_error("just text\n", buf, sizeof buf),
              "t.yaml:1:1: expected a mapping at the top level");
    CHECK_STR(parse_error("", buf, sizeof buf),
              "t.yaml:1:1: expected a mapping at the top level (the document "
              "is empty)");
    CHECK_STR(parse_error("# only a comment\n", buf, sizeof buf),
              "t.yaml:1:1: expected a mapping at the top level (the document "
              "is empty)");
    CHECK_STR(parse_error("a: 1\n---\nb: 2\n", buf, sizeof buf),
              "t.yaml:2:1: multiple documents are not supported (a second "
              "\"---\")");
    /* One explicit document is fine; tags are ignored. */
    halo_errlist errs = {0};
    halo_node *root = parse("---\na: !!str 5\n...\n", &errs);
    CHECK(root);
    CHECK_STR(scalar(root, "a"), "5");
    halo_node_free(root);
}

TEST(tree_parse_file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/c.yaml", halo_test_tmpdir());
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs("k: v\nbad: *x\n", f);
    fclose(f);
    halo_errlist errs = {0};
    CHECK(!halo_config_parse_file(path, &errs));
    CHECK_INT(errs.n, 1);
    char want[700];
    snprintf(want, sizeof want, "%s:2:6: unknown alias", path);
    CHECK_CONTAINS(errs.msgs[0], want);
    halo_errlist_free(&errs);

    f = fopen(path, "w");
    CHECK(f);
    fputs("k: v\n", f);
    fclose(f);
    halo_node *root = halo_config_parse_file(path, &errs);
    CHECK(root);
    CHECK_STR(root->file, path);
    CHECK_STR(scalar(root, "k"), "v");
    halo_node_free(root);

    snprintf(path, sizeof path, "%s/missing.yaml", halo_test_tmpdir());
    CHECK(!halo_config_parse_file(path, &errs));
    CHECK_INT(errs.n, 1);
    snprintf(want, sizeof want,
             "could not read config file \"%s\": No such file or directory",
             path);
    CHECK_STR(errs.msgs[0], want);
    halo_errlist_free(&errs);

    CHECK(!halo_config_parse_file(halo_test_tmpdir(), &errs));
    CHECK_CONTAINS(errs.msgs[0], "Is a directory");
    halo_errlist_free(&errs);
}

TEST(tree_repo_halo_yaml)
{
    /* ctest sets HALO_SOURCE_DIR; run by hand, this file's path tells. */
    const char *src = getenv("HALO_SOURCE_DIR");
    const char *self = __FILE__;
    const char *tail = strstr(self, "tests/unit/test_config.c");
    char path[512];
    if (src)
        snprintf(path, sizeof path, "%s/halo.yaml", src);
    else
        snprintf(path, sizeof path, "%.*shalo.yaml",
                 tail ? (int)(tail - self) : 0, self);
    unsetenv("HALO_DB");
    halo_errlist errs = {0};
    halo_node *root = halo_config_parse_file(path, &errs);
    CHECK(root);
    CHECK_INT(errs.n, 0);
    const halo_node *sqlite =
        halo_node_get(halo_node_get(root, "exporters"), "sqlite");
    CHECK_STR(scalar(sqlite, "path"), "data/halo.db");
    halo_node_free(root);
}

/* ---- substitution ----------------------------------------------------- */

TEST(env_substitution_forms)
{
    setenv("HALO_T_A", "alpha", 1);
    setenv("HALO_T_EMPTY", "", 1);
    unsetenv("HALO_T_UNSET");
    halo_errlist errs = {0};
    halo_node *root = parse("a: ${env:HALO_T_A}\n"
                            "b: ${HALO_T_A}\n"
                            "c: x-${env:HALO_T_A}-${HALO_T_A}-y\n"
                            "d: ${env:HALO_T_UNSET:-http://h:1/p?q=a:b}\n"
                            "e: ${env:HALO_T_UNSET:-}\n"
                            "f: \"${env:HALO_T_UNSET:-}\"\n"
                            "g: \"$$HOME and $${x}\"\n"
                            "h: cost $5 or $\n"
                            "i: ${env:HALO_T_EMPTY:-fallback}\n"
                            "j: \"${HALO_T_EMPTY}\"\n"
                            "k: ${env:HALO_T_A:-unused}\n"
                            "${HALO_T_A}: literal key\n"
                            "l: ${HALO_T_UNSET:-shell style}\n",
                            &errs);
    CHECK_INT(errs.n, 0);
    CHECK(root);
    CHECK_STR(scalar(root, "a"), "alpha");
    CHECK_STR(scalar(root, "b"), "alpha");
    CHECK_STR(scalar(root, "c"), "x-alpha-alpha-y");
    CHECK_STR(scalar(root, "d"), "http://h:1/p?q=a:b");
    CHECK_INT(halo_node_get(root, "e")->type, HALO_NODE_NULL);
    CHECK_STR(scalar(root, "f"), "");
    CHECK_STR(scalar(root, "g"), "$HOME and ${x}");
    CHECK_STR(scalar(root, "h"), "cost $5 or $");
    CHECK_STR(scalar(root, "i"), "fallback");
    CHECK_STR(scalar(root, "j"), "");
    CHECK_STR(scalar(root, "k"), "alpha");
    CHECK_STR(scalar(root, "${HALO_T_A}"), "literal key");
    CHECK_STR(scalar(root, "l"), "shell style");
    halo_node_free(root);
    unsetenv("HALO_T_A");
    unsetenv("HALO_T_EMPTY");
}

TEST(env_substitution_errors)
{
    unsetenv("HALO_T_UNSET");
    unsetenv("HALO_T_UNSET2");
    char buf[512];
    CHECK_STR(parse_error("a: 1\nb: ${env:HALO_T_UNSET}\n", buf, sizeof buf),
              "t.yaml:2:4: environment variable HALO_T_UNSET is not set "
              "(use ${env:HALO_T_UNSET:-default} for a default)");
    CHECK_STR(parse_error("a:\n  - \"x ${HALO_T_UNSET}\"\n", buf, sizeof buf),
              "t.yaml:2:5: environment variable HALO_T_UNSET is not set "
              "(use ${env:HALO_T_UNSET:-default} for a default)");
    CHECK_STR(parse_error("a: ${env:HALO_T_A\n", buf, sizeof buf),
              "t.yaml:1:4: unterminated \"${\" (missing \"}\")");
    CHECK_STR(parse_error("a: ${env:1BAD}\n", buf, sizeof buf),
              "t.yaml:1:4: invalid substitution \"${env:1BAD}\" (expected "
              "${env:NAME}, ${NAME} or ${env:NAME:-default})");
    CHECK_CONTAINS(parse_error("a: ${file:/etc/x}\n", buf, sizeof buf),
                   "invalid substitution \"${file:/etc/x}\"");
    CHECK_CONTAINS(parse_error("a: ${}\n", buf, sizeof buf),
                   "invalid substitution \"${}\"");
    CHECK_CONTAINS(parse_error("a: ${A B}\n", buf, sizeof buf),
                   "invalid substitution");
    /* All substitution errors of a file are listed. */
    halo_errlist errs = {0};
    CHECK(!parse("a: ${HALO_T_UNSET}\nb: ${HALO_T_UNSET2}\n", &errs));
    CHECK_INT(errs.n, 2);
    CHECK_CONTAINS(errs.msgs[0], "t.yaml:1:4: environment variable "
                                 "HALO_T_UNSET is not set");
    CHECK_CONTAINS(errs.msgs[1], "t.yaml:2:4: environment variable "
                                 "HALO_T_UNSET2 is not set");
    halo_errlist_free(&errs);
}

/* ---- scalars ---------------------------------------------------------- */

TEST(durations)
{
    static const struct {
        const char *s;
        int64_t ns;
    } good[] = {
        {"0", 0},
        {"200ms", 200000000LL},
        {"5s", 5000000000LL},
        {"1m", 60000000000LL},
        {"1h", 3600000000000LL},
        {"720h", 720LL * 3600000000000LL},
        {"1h30m", 5400000000000LL},
        {"1.5h", 5400000000000LL},
        {"1.1s", 1100000000LL},
        {".5s", 500000000LL},
        {"1.s", 1000000000LL},
        {"+2s", 2000000000LL},
        {"10us", 10000LL},
        {"10\xc2\xb5s", 10000LL},
        {"10\xce\xbcs", 10000LL},
        {"7ns", 7},
        {"2d", 2LL * 86400000000000LL},
        {"1h0m0s", 3600000000000LL},
        {"0s", 0},
        {"9223372036854775807ns", INT64_MAX},
        {"2562047h", 2562047LL * 3600000000000LL},
        {"0.000000001s", 1},
        {"1.0000000000000000000001s", 1000000000LL},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        int64_t ns = -1;
        if (!halo_parse_duration(good[i].s, &ns) || ns != good[i].ns) {
            fprintf(stderr, "  duration \"%s\" -> %lld\n", good[i].s,
                    (long long)ns);
            CHECK(0);
        }
    }
    static const char *const bad[] = {
        "",
        "5",
        "-1s",
        "-0",
        "1x",
        "5 minutes",
        "1h ",
        " 1h",
        ".",
        ".s",
        "s",
        "1.2.3s",
        "1hh",
        "9223372036854775808ns",
        "2562048h",
        "106752d",
        "18446744073709551616s",
        "1e3s",
        "0x10s",
        "1h-5m",
        "1S",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t ns = 42;
        if (halo_parse_duration(bad[i], &ns)) {
            fprintf(stderr, "  duration \"%s\" accepted\n", bad[i]);
            CHECK(0);
        }
        CHECK_INT(ns, 42);
    }
    CHECK(!halo_parse_duration(NULL, NULL));
}

TEST(sizes)
{
    static const struct {
        const char *s;
        int64_t b;
    } good[] = {
        {"0", 0},
        {"1000000", 1000000},
        {"64MiB", 64LL << 20},
        {"1GiB", 1LL << 30},
        {"512KiB", 512LL << 10},
        {"1TiB", 1LL << 40},
        {"10MB", 10000000},
        {"1KB", 1000},
        {"3GB", 3000000000LL},
        {"2TB", 2000000000000LL},
        {"100B", 100},
        {"1.5GiB", 3LL << 29},
        {"0.5KiB", 512},
        {"1 MiB", 1LL << 20},
        {"9223372036854775807", INT64_MAX},
        {"8388607TiB", 8388607LL << 40},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        int64_t b = -1;
        if (!halo_parse_size(good[i].s, &b) || b != good[i].b) {
            fprintf(stderr, "  size \"%s\" -> %lld\n", good[i].s, (long long)b);
            CHECK(0);
        }
    }
    static const char *const bad[] = {
        "",
        "-1",
        "MiB",
        "10mb",
        "10 ",
        "1.5.5MiB",
        "1EiB",
        "1 k",
        "10MiBs",
        " 10",
        "9223372036854775808",
        "8388608TiB",
        "1e6",
        "0x10",
        "10kb",
        ".",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t b = 42;
        if (halo_parse_size(bad[i], &b)) {
            fprintf(stderr, "  size \"%s\" accepted\n", bad[i]);
            CHECK(0);
        }
        CHECK_INT(b, 42);
    }
}

TEST(booleans)
{
    static const char *const yes[] = {"true", "TRUE", "True", "yes",
                                      "YES",  "on",   "On"};
    static const char *const no[] = {"false", "FALSE", "no",
                                     "No",    "off",   "OFF"};
    bool b;
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        b = false;
        CHECK(halo_parse_bool(yes[i], &b));
        CHECK(b);
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        b = true;
        CHECK(halo_parse_bool(no[i], &b));
        CHECK(!b);
    }
    CHECK(!halo_parse_bool("1", &b));
    CHECK(!halo_parse_bool("", &b));
    CHECK(!halo_parse_bool("truee", &b));
    CHECK(!halo_parse_bool("y", &b));
}

/* ---- error list ------------------------------------------------------- */

TEST(errlist_format)
{
    halo_errlist errs = {0};
    halo_node at = {.file = "f.yaml", .line = 3, .col = 7};
    halo_errlist_add(&errs, &at, "bad %s", "thing");
    halo_errlist_add(&errs, NULL, "no location %d", 5);
    CHECK_INT(errs.n, 2);
    CHECK_STR(errs.msgs[0], "f.yaml:3:7: bad thing");
    CHECK_STR(errs.msgs[1], "no location 5");
    for (int i = 0; i < 20; i++) /* grows past its first capacity */
        halo_errlist_add(&errs, NULL, "e%d", i);
    CHECK_INT(errs.n, 22);
    CHECK_STR(errs.msgs[21], "e19");
    halo_errlist_free(&errs);
    CHECK_INT(errs.n, 0);
    CHECK(!errs.msgs);
    halo_errlist_free(&errs); /* twice is fine */
    halo_errlist_add(NULL, NULL, "ignored");
}

/* ---- schema ----------------------------------------------------------- */

TEST(apply_defaults)
{
    test_cfg cfg = {0};
    halo_errlist errs = {0};
    CHECK(halo_config_apply(test_fields, NULL, &cfg, "sec", &errs));
    CHECK_INT(errs.n, 0);
    CHECK(cfg.flag);
    CHECK_INT(cfg.count, 10);
    CHECK(cfg.ratio == 0.5);
    CHECK_STR(cfg.name, "halo");
    CHECK_INT(cfg.timeout, 200000000LL);
    CHECK_INT(cfg.limit, 64LL << 20);
    CHECK_INT(cfg.mode, 1);
    CHECK(!cfg.endpoint);
    CHECK_INT(cfg.tags.n, 2);
    CHECK_STR(cfg.tags.items[0], "a");
    CHECK_STR(cfg.tags.items[1], "b c");
    CHECK_INT(cfg.rd.n, 0);
    CHECK(!cfg.grpc_present);
    CHECK_STR(cfg.grpc.endpoint, "127.0.0.1:4317");
    CHECK_INT(cfg.grpc.max_recv, 4LL << 20);
    CHECK(!cfg.grpc.inner_present);
    CHECK_INT(cfg.grpc.inner.depth, 3);
    CHECK_INT(cfg.hosts.n, 1);
    CHECK_STR(cfg.hosts.items[0], "*");
    halo_config_release(test_fields, &cfg);
    CHECK(!cfg.name && !cfg.grpc.endpoint && !cfg.tags.items);
    halo_config_release(test_fields, &cfg); /* twice is fine */

    /* A NULL node (`sec:`) means defaults too. */
    halo_node *root = parse("sec:\n", &errs);
    CHECK(root);
    test_cfg c2 = {0};
    CHECK(halo_config_apply(test_fields, halo_node_get(root, "sec"), &c2, "sec",
                            &errs));
    CHECK_INT(c2.count, 10);
    halo_config_release(test_fields, &c2);
    halo_node_free(root);
}

TEST(apply_overrides_every_type)
{
    setenv("HALO_T_PORT", "9000", 1);
    test_cfg cfg = {0};
    halo_errlist errs = {0};
    bool ok = apply_text("sec:\n"
                         "  flag: \"off\"\n"
                         "  count: 42\n"
                         "  ratio: 0.25\n"
                         "  name: \"true\"\n"
                         "  timeout: 1h\n"
                         "  limit: 1GiB\n"
                         "  mode: basic\n"
                         "  endpoint: 0.0.0.0:${env:HALO_T_PORT}\n"
                         "  tags: [x, y, z]\n"
                         "  hosts: db1\n"
                         "  rdkafka.acks: all\n"
                         "  rdkafka.linger.ms: 5\n"
                         "  rdkafka.sasl.password: ${env:HALO_T_NOPE:-}\n"
                         "  grpc:\n"
                         "    endpoint: '[::1]:4317'\n"
                         "    inner: {depth: 7}\n",
                         &cfg, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "  %s\n", errs.msgs[i]);
    CHECK(ok);
    CHECK(!cfg.flag);
    CHECK_INT(cfg.count, 42);
    CHECK(cfg.ratio == 0.25);
    CHECK_STR(cfg.name, "true"); /* quoted: stays a string */
    CHECK_INT(cfg.timeout, 3600000000000LL);
    CHECK_INT(cfg.limit, 1LL << 30);
    CHECK_INT(cfg.mode, 0);
    CHECK_STR(cfg.endpoint, "0.0.0.0:9000");
    CHECK_INT(cfg.tags.n, 3);
    CHECK_STR(cfg.tags.items[2], "z");
    CHECK_INT(cfg.hosts.n, 1);
    CHECK_STR(cfg.hosts.items[0], "db1");
    CHECK_INT(cfg.rd.n, 2); /* the null one is not passed through */
    CHECK_STR(cfg.rd.keys[0], "acks");
    CHECK_STR(cfg.rd.values[0], "all");
    CHECK_STR(cfg.rd.keys[1], "linger.ms");
    CHECK_STR(cfg.rd.values[1], "5");
    CHECK(cfg.grpc_present);
    CHECK_STR(cfg.grpc.endpoint, "[::1]:4317");
    CHECK_INT(cfg.grpc.max_recv, 4LL << 20); /* default kept */
    CHECK(cfg.grpc.inner_present);
    CHECK_INT(cfg.grpc.inner.depth, 7);
    halo_config_release(test_fields, &cfg);
    unsetenv("HALO_T_PORT");
}

TEST(apply_section_presence_and_nulls)
{
    test_cfg cfg = {0};
    halo_errlist errs = {0};
    CHECK(apply_text("sec:\n  grpc:\n  name:\n  tags: ~\n", &cfg, &errs));
    CHECK(cfg.grpc_present); /* `grpc:` alone: present with defaults */
    CHECK_STR(cfg.grpc.endpoint, "127.0.0.1:4317");
    CHECK(!cfg.grpc.inner_present);
    CHECK_STR(cfg.name, "halo"); /* a null value keeps the default */
    CHECK_INT(cfg.tags.n, 2);
    halo_config_release(test_fields, &cfg);

    test_cfg c2 = {0};
    CHECK(apply_text("sec:\n  grpc: {}\n  tags: []\n", &c2, &errs));
    CHECK(c2.grpc_present);
    CHECK_INT(c2.tags.n, 0); /* an explicit empty list replaces it */
    halo_config_release(test_fields, &c2);

    test_cfg c3 = {0};
    CHECK(apply_text("sec:\n  count: 5\n", &c3, &errs));
    CHECK(!c3.grpc_present);
    halo_config_release(test_fields, &c3);
    CHECK_INT(errs.n, 0);
}

TEST(apply_unknown_keys)
{
    char buf[512];
    CHECK_STR(apply_error("sec:\n  count: 5\n  timout: 1s\n", buf, sizeof buf),
              "t.yaml:3:3: sec: unknown key \"timout\" (did you mean "
              "\"timeout\"?)");
    CHECK_STR(apply_error("sec:\n  grpc:\n    endpiont: :1\n", buf, sizeof buf),
              "t.yaml:3:5: sec.grpc: unknown key \"endpiont\" (did you mean "
              "\"endpoint\"?)");
    CHECK_STR(apply_error("sec:\n  colour: red\n", buf, sizeof buf),
              "t.yaml:2:3: sec: unknown key \"colour\"");
    CHECK_STR(apply_error("sec:\n  rdkafka.: x\n", buf, sizeof buf),
              "t.yaml:2:3: sec.rdkafka.: the option name after \"rdkafka.\" "
              "is missing");
    CHECK_STR(apply_error("sec:\n  rdkafka: {acks: all}\n", buf, sizeof buf),
              "t.yaml:2:3: sec: unknown key \"rdkafka\"");
    /* No where: no prefix. */
    halo_errlist errs = {0};
    halo_node *root = parse("cont: 1\n", &errs);
    test_cfg cfg = {0};
    CHECK(!halo_config_apply(test_fields, root, &cfg, NULL, &errs));
    CHECK_INT(errs.n, 1);
    CHECK_STR(errs.msgs[0],
              "t.yaml:1:1: unknown key \"cont\" (did you mean \"count\"?)");
    halo_config_release(test_fields, &cfg);
    halo_errlist_free(&errs);
    halo_node_free(root);
}

TEST(apply_wrong_types)
{
    char buf[512];
    CHECK_STR(apply_error("sec: 5\n", buf, sizeof buf),
              "t.yaml:1:1: sec: expected a mapping");
    CHECK_STR(apply_error("sec: [a]\n", buf, sizeof buf),
              "t.yaml:1:1: sec: expected a mapping");
    CHECK_STR(apply_error("sec:\n  grpc: yes\n", buf, sizeof buf),
              "t.yaml:2:3: sec.grpc: expected a mapping, got \"yes\"");
    CHECK_STR(apply_error("sec:\n  grpc: [a]\n", buf, sizeof buf),
              "t.yaml:2:3: sec.grpc: expected a mapping, got a list");
    CHECK_STR(apply_error("sec:\n  timeout: {a: 1}\n", buf, sizeof buf),
              "t.yaml:2:3: sec.timeout: expected a duration, got a mapping");
    CHECK_STR(apply_error("sec:\n  name: [a, b]\n", buf, sizeof buf),
              "t.yaml:2:3: sec.name: expected a string, got a list");
    CHECK_STR(apply_error("sec:\n  tags: {a: 1}\n", buf, sizeof buf),
              "t.yaml:2:3: sec.tags: expected a list of strings, got a "
              "mapping");
    CHECK_STR(apply_error("sec:\n  tags: [a, [b], c]\n", buf, sizeof buf),
              "t.yaml:2:13: sec.tags[1]: expected a string, got a list");
    CHECK_STR(apply_error("sec:\n  rdkafka.acks: [1]\n", buf, sizeof buf),
              "t.yaml:2:3: sec.rdkafka.acks: expected a scalar value, got a "
              "list");
    CHECK_STR(apply_error("sec:\n  flag: maybe\n", buf, sizeof buf),
              "t.yaml:2:3: sec.flag: invalid boolean \"maybe\" (use true or "
              "false)");
    CHECK_STR(apply_error("sec:\n  count: 1.5\n", buf, sizeof buf),
              "t.yaml:2:3: sec.count: invalid integer \"1.5\"");
    CHECK_STR(
        apply_error("sec:\n  count: 99999999999999999999\n", buf, sizeof buf),
        "t.yaml:2:3: sec.count: invalid integer "
        "\"99999999999999999999\"");
    CHECK_STR(apply_error("sec:\n  ratio: nan\n", buf, sizeof buf),
              "t.yaml:2:3: sec.ratio: invalid number \"nan\"");
    CHECK_STR(apply_error("sec:\n  timeout: 5 minutes\n", buf, sizeof buf),
              "t.yaml:2:3: sec.timeout: invalid duration \"5 minutes\" "
              "(examples: 200ms, 5s, 1h, 720h)");
    CHECK_STR(apply_error("sec:\n  limit: 64mb\n", buf, sizeof buf),
              "t.yaml:2:3: sec.limit: invalid size \"64mb\" (examples: "
              "512KiB, 64MiB, 1GiB, 10MB)");
    /* Quoting does not matter for non-string types. */
    test_cfg cfg = {0};
    halo_errlist errs = {0};
    CHECK(apply_text("sec:\n  flag: 'yes'\n  count: \"7\"\n", &cfg, &errs));
    CHECK(cfg.flag);
    CHECK_INT(cfg.count, 7);
    halo_config_release(test_fields, &cfg);
}

TEST(apply_ranges)
{
    char buf[512];
    CHECK_STR(apply_error("sec:\n  timeout: 2h\n", buf, sizeof buf),
              "t.yaml:2:3: sec.timeout: 2h is out of range (must be between "
              "1ms and 1h)");
    CHECK_STR(apply_error("sec:\n  timeout: 500us\n", buf, sizeof buf),
              "t.yaml:2:3: sec.timeout: 500us is out of range (must be "
              "between 1ms and 1h)");
    CHECK_STR(apply_error("sec:\n  count: 0\n", buf, sizeof buf),
              "t.yaml:2:3: sec.count: 0 is out of range (must be between 1 "
              "and 100)");
    CHECK_STR(apply_error("sec:\n  ratio: 1.5\n", buf, sizeof buf),
              "t.yaml:2:3: sec.ratio: 1.5 is out of range (must be between 0 "
              "and 1)");
    CHECK_STR(apply_error("sec:\n  grpc: {max_recv: 100MB}\n", buf, sizeof buf),
              "t.yaml:2:10: sec.grpc.max_recv: 100MB is out of range (must "
              "be between 1KiB and 64MiB)");
    CHECK_STR(
        apply_error("sec:\n  grpc: {inner: {depth: 11}}\n", buf, sizeof buf),
        "t.yaml:2:18: sec.grpc.inner.depth: 11 is out of range (must "
        "be between 1 and 10)");
    /* The bounds themselves are allowed. */
    test_cfg cfg = {0};
    halo_errlist errs = {0};
    CHECK(
        apply_text("sec: {timeout: 1h, count: 100, ratio: 0}\n", &cfg, &errs));
    CHECK_INT(cfg.count, 100);
    halo_config_release(test_fields, &cfg);
}

TEST(apply_enum)
{
    char buf[512];
    CHECK_STR(apply_error("sec:\n  mode: fancy\n", buf, sizeof buf),
              "t.yaml:2:3: sec.mode: invalid value \"fancy\" (must be one "
              "of: basic, detailed)");
    CHECK_CONTAINS(apply_error("sec:\n  mode: Basic\n", buf, sizeof buf),
                   "must be one of: basic, detailed");
}

TEST(apply_endpoints)
{
    static const char *const good[] = {
        "localhost:4317", "127.0.0.1:0",      ":4318",
        "[::1]:65535",    "[fe80::1%eth0]:1", "my-host.example_x:80",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char text[128];
        snprintf(text, sizeof text, "sec:\n  endpoint: \"%s\"\n", good[i]);
        test_cfg cfg = {0};
        halo_errlist errs = {0};
        if (!apply_text(text, &cfg, &errs)) {
            fprintf(stderr, "  %s\n", errs.msgs[0]);
            CHECK(0);
        }
        CHECK_STR(cfg.endpoint, good[i]);
        halo_config_release(test_fields, &cfg);
    }
    static const struct {
        const char *ep, *why;
    } bad[] = {
        {"localhost", "missing port"},
        {"host:", "the port must be a number from 0 to 65535"},
        {"host:65536", "the port must be a number from 0 to 65535"},
        {"host:http", "the port must be a number from 0 to 65535"},
        {"host:-1", "the port must be a number from 0 to 65535"},
        {"host:123456", "the port must be a number from 0 to 65535"},
        {"::1:80", "an IPv6 address must be in brackets"},
        {"http://h:80", "an IPv6 address must be in brackets"},
        {"h st:80", "invalid character in the host"},
        {"[::1]", "missing port"},
        {"[::1:80", "unterminated or empty IPv6 address"},
        {"[]:80", "unterminated or empty IPv6 address"},
        {"[::1]80", "missing port"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[128], want[256], buf[512];
        snprintf(text, sizeof text, "sec:\n  endpoint: \"%s\"\n", bad[i].ep);
        snprintf(want, sizeof want,
                 "t.yaml:2:3: sec.endpoint: invalid endpoint \"%s\": %s "
                 "(expected host:port, [ipv6]:port or :port)",
                 bad[i].ep, bad[i].why);
        CHECK_STR(apply_error(text, buf, sizeof buf), want);
    }
}

TEST(apply_collects_every_error)
{
    test_cfg cfg = {0};
    halo_errlist errs = {0};
    bool ok = apply_text("sec:\n"
                         "  flag: perhaps\n"
                         "  count: 1000\n"
                         "  name: fine\n"
                         "  bogus: 1\n"
                         "  mode: other\n"
                         "  grpc:\n"
                         "    endpoint: nope\n"
                         "    inner: 5\n"
                         "  tags: [ok, {no: 1}]\n",
                         &cfg, &errs);
    CHECK(!ok);
    CHECK_INT(errs.n, 7);
    CHECK_STR(errs.msgs[0], "t.yaml:2:3: sec.flag: invalid boolean "
                            "\"perhaps\" (use true or false)");
    CHECK_STR(errs.msgs[1], "t.yaml:3:3: sec.count: 1000 is out of range "
                            "(must be between 1 and 100)");
    CHECK_STR(errs.msgs[2], "t.yaml:5:3: sec: unknown key \"bogus\"");
    CHECK_STR(errs.msgs[3], "t.yaml:6:3: sec.mode: invalid value \"other\" "
                            "(must be one of: basic, detailed)");
    CHECK_STR(errs.msgs[4],
              "t.yaml:8:5: sec.grpc.endpoint: invalid endpoint \"nope\": "
              "missing port (expected host:port, [ipv6]:port or :port)");
    CHECK_STR(errs.msgs[5],
              "t.yaml:9:5: sec.grpc.inner: expected a mapping, got \"5\"");
    CHECK_STR(errs.msgs[6],
              "t.yaml:10:14: sec.tags[1]: expected a string, got a mapping");
    /* Failed fields keep their defaults, good ones took their values. */
    CHECK(cfg.flag);
    CHECK_INT(cfg.count, 10);
    CHECK_STR(cfg.name, "fine");
    CHECK_STR(cfg.grpc.endpoint, "127.0.0.1:4317");
    CHECK_INT(cfg.tags.n, 2);
    halo_config_release(test_fields, &cfg); /* no leak under ASan */
    halo_errlist_free(&errs);
}

TEST(apply_release_after_partial_failure)
{
    /* Strings, lists and passthrough entries set before and after a failing
     * field must all be freed by release. */
    test_cfg cfg = {0};
    halo_errlist errs = {0};
    CHECK(!apply_text("sec:\n"
                      "  name: one\n"
                      "  rdkafka.a: 1\n"
                      "  endpoint: h:1\n"
                      "  timeout: never\n"
                      "  tags: [p, q]\n"
                      "  rdkafka.b: 2\n"
                      "  grpc: {endpoint: 'x:2', inner: {depth: zero}}\n",
                      &cfg, &errs));
    CHECK_INT(errs.n, 2);
    CHECK_INT(cfg.rd.n, 2);
    CHECK_STR(cfg.grpc.endpoint, "x:2");
    halo_config_release(test_fields, &cfg);
    CHECK_INT(cfg.rd.n, 0);
    CHECK(!cfg.grpc.endpoint && !cfg.endpoint && !cfg.name);
    halo_errlist_free(&errs);

    /* A zeroed struct releases fine without any apply. */
    test_cfg zero = {0};
    halo_config_release(test_fields, &zero);
}

static const halo_field bad_default_fields[] = {
    {.key = "d", .type = HALO_F_DURATION, .offset = 0, .def = "soon"},
    {.key = "l",
     .type = HALO_F_STRLIST,
     .offset = sizeof(int64_t),
     .def = "[unclosed"},
    {0},
};

TEST(apply_reports_bad_defaults)
{
    struct {
        int64_t d;
        halo_strlist l;
    } cfg = {0};
    halo_errlist errs = {0};
    CHECK(!halo_config_apply(bad_default_fields, NULL, &cfg, "x", &errs));
    CHECK_INT(errs.n, 2);
    CHECK_STR(errs.msgs[0], "x.d: invalid duration \"soon\" (examples: "
                            "200ms, 5s, 1h, 720h)");
    CHECK_STR(errs.msgs[1],
              "x.l: invalid default list \"[unclosed\" in the schema");
    halo_config_release(bad_default_fields, &cfg);
    halo_errlist_free(&errs);
}

TEST(describe_schema)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f);
    halo_config_describe(test_fields, "  ", f);
    fclose(f);
    CHECK(text);
    CHECK_CONTAINS(text, "  timeout    duration     200ms             how "
                         "long [1ms..1h]\n");
    CHECK_CONTAINS(text, "  mode       enum         detailed          which "
                         "mode (one of: basic, detailed)\n");
    CHECK_CONTAINS(text, "  rdkafka.*  passthrough  -                 "
                         "librdkafka options\n");
    CHECK_CONTAINS(text, "  grpc       section      -                 the "
                         "gRPC server\n    endpoint  endpoint");
    CHECK_CONTAINS(text, "      depth  int          3                 how "
                         "deep [1..10]\n");
    CHECK_CONTAINS(text, "largest message [1KiB..64MiB]");
    free(text);
}
