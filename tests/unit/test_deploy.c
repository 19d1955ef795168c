/*
 * test_deploy.c -- the deployment files hold together (issue 7): the
 * compose file parses as YAML with the expected services, every
 * long-running service has a health check, the halo services wait for
 * what they need to be healthy and serve a role config that exists in
 * deploy/ and is copied into the image; the Dockerfile is multi-stage,
 * runs as a non-root user and checks health; .env.example names every
 * variable the compose services' configs need.
 *
 * (That the role configs validate and carry spans end to end is
 * tests/e2e/kafka_pipeline.test.mjs.)
 */
#include "harness.h"

#include "core/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A file of the source tree (NULL when missing). */
static char *slurp(const char *rel)
{
    const char *src = getenv("HALO_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", src ? src : ".", rel);
    return halo_test_read_file(path);
}

static const halo_node *path2(const halo_node *n, const char *a, const char *b)
{
    return halo_node_get(halo_node_get(n, a), b);
}

static const char *scalar(const halo_node *n)
{
    return n && n->type == HALO_NODE_SCALAR ? n->value : NULL;
}

static const char *const SERVICES[] = {"kafka",        "kafka-init",
                                       "postgres",     "halo-ingest",
                                       "halo-persist", "halo-analyzer"};

TEST(compose_services_health_and_dependencies)
{
    char *text = slurp("deploy/docker-compose.yml");
    CHECK(text != NULL);
    halo_errlist errs = {0};
    halo_node *root =
        halo_config_parse(text, strlen(text), "docker-compose.yml", &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "  %s\n", errs.msgs[i]);
    CHECK(root != NULL);
    const halo_node *svcs = halo_node_get(root, "services");
    CHECK(svcs && svcs->type == HALO_NODE_MAP);
    CHECK_INT(svcs->n, sizeof SERVICES / sizeof *SERVICES);
    for (size_t i = 0; i < sizeof SERVICES / sizeof *SERVICES; i++)
        CHECK(halo_node_get(svcs, SERVICES[i]) != NULL);
    for (size_t i = 0; i < svcs->n; i++) {
        const halo_node *s = svcs->items[i];
        const char *name = svcs->keys[i];
        const char *restart = scalar(halo_node_get(s, "restart"));
        bool one_shot = restart && !strcmp(restart, "no");
        /* every long-running service says when it is healthy */
        if (!one_shot) {
            const halo_node *test = path2(s, "healthcheck", "test");
            if (!test || test->type != HALO_NODE_SEQ || test->n < 2)
                fprintf(stderr, "  %s: no healthcheck.test\n", name);
            CHECK(test && test->type == HALO_NODE_SEQ && test->n >= 2);
        }
        /* dependencies wait for health (or a finished one-shot) */
        const halo_node *deps = halo_node_get(s, "depends_on");
        for (size_t k = 0; deps && k < deps->n; k++) {
            const char *cond =
                scalar(halo_node_get(deps->items[k], "condition"));
            CHECK(cond && (!strcmp(cond, "service_healthy") ||
                           !strcmp(cond, "service_completed_successfully")));
            CHECK(halo_node_get(svcs, deps->keys[k]) != NULL);
        }
        if (strncmp(name, "halo-", 5))
            continue;
        /* a halo role: `serve --config /etc/halo/<name>.yaml`, the file in
         * deploy/, copied into the image; settings from .env */
        const halo_node *cmd = halo_node_get(s, "command");
        CHECK(cmd && cmd->type == HALO_NODE_SEQ && cmd->n == 3);
        CHECK_STR(scalar(cmd->items[0]), "serve");
        char want[128], rel[128];
        snprintf(want, sizeof want, "/etc/halo/%s.yaml", name);
        CHECK_STR(scalar(cmd->items[2]), want);
        snprintf(rel, sizeof rel, "deploy/%s.yaml", name);
        char *cfg = slurp(rel);
        CHECK(cfg != NULL);
        free(cfg);
        CHECK_STR(scalar(halo_node_get(s, "env_file")), ".env");
        CHECK(halo_node_get(s, "depends_on") != NULL);
    }
    /* halo-persist scales: no fixed name, no published port; ingest
     * publishes the OTLP ports */
    const halo_node *persist = halo_node_get(svcs, "halo-persist");
    CHECK(!halo_node_get(persist, "container_name"));
    CHECK(!halo_node_get(persist, "ports"));
    const halo_node *ports = path2(svcs, "halo-ingest", "ports");
    CHECK(ports && ports->type == HALO_NODE_SEQ && ports->n == 2);
    CHECK_STR(scalar(ports->items[0]), "4317:4317");
    CHECK_STR(scalar(ports->items[1]), "4318:4318");
    /* named volumes for the data */
    const halo_node *vols = halo_node_get(root, "volumes");
    CHECK(halo_node_get(vols, "pg-data") && halo_node_get(vols, "kafka-data") &&
          halo_node_get(vols, "halo-reports"));
    halo_node_free(root);
    halo_errlist_free(&errs);
    free(text);
}

TEST(dockerfile_is_multi_stage_non_root_with_a_health_check)
{
    char *df = slurp("deploy/Dockerfile");
    CHECK(df != NULL);
    size_t froms = 0;
    for (const char *p = df; (p = strstr(p, "\nFROM ")); p++)
        froms++;
    CHECK(froms >= 2);
    CHECK_CONTAINS(df, "FROM debian:12 AS build");
    CHECK_CONTAINS(df, "COPY --from=build");
    CHECK_CONTAINS(df, "\nUSER halo\n");
    CHECK_CONTAINS(df, "\nHEALTHCHECK ");
    CHECK_CONTAINS(df, "http://127.0.0.1:13133/");
    /* the role configs are in the image where compose looks for them */
    CHECK_CONTAINS(df, "deploy/halo-ingest.yaml");
    CHECK_CONTAINS(df, "deploy/halo-persist.yaml");
    CHECK_CONTAINS(df, "deploy/halo-analyzer.yaml");
    CHECK_CONTAINS(df, "/etc/halo/");
    /* the runtime stage carries no compiler or -dev package */
    const char *rt = strstr(df, "FROM debian:12-slim");
    CHECK(rt != NULL);
    CHECK(!strstr(rt, "-dev ") && !strstr(rt, "build-essential"));
    free(df);
}

TEST(env_example_names_the_roles_settings)
{
    char *env = slurp("deploy/.env.example");
    CHECK(env != NULL);
    static const char *const vars[] = {
        "POSTGRES_PASSWORD=",  "PGPASSWORD=",       "HALO_PG_DSN=",
        "HALO_KAFKA_BROKERS=", "HALO_KAFKA_TOPIC=", "HALO_REPORTS_DIR=",
        "HALO_LLM_BASE_URL=",  "HALO_TIMEZONE=",
    };
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        CHECK_CONTAINS(env, vars[i]);
    /* every ${env:X...} of the role configs is documented there or keeps
     * a default that fits the compose network */
    static const char *const roles[] = {"deploy/halo-ingest.yaml",
                                        "deploy/halo-persist.yaml",
                                        "deploy/halo-analyzer.yaml"};
    for (size_t r = 0; r < 3; r++) {
        char *cfg = slurp(roles[r]);
        CHECK(cfg != NULL);
        for (const char *p = cfg; (p = strstr(p, "${env:")); p++) {
            const char *name = p + 6, *end = name;
            while (*end && *end != '}' && *end != ':')
                end++;
            bool has_default = *end == ':';
            char var[80];
            snprintf(var, sizeof var, "%.*s=", (int)(end - name), name);
            if (!has_default)
                CHECK_CONTAINS(env, var);
        }
        free(cfg);
    }
    free(env);
}
