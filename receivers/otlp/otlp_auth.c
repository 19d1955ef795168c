/*
 * otlp_auth.c -- bearer tokens for the OTLP receiver (see otlp_auth.h).
 *
 * Tokens come from a file (one a line, `#` comments, optionally followed by
 * a comma-separated agent allowlist) and/or an environment variable (a list
 * split by commas or blanks, no allowlists). Each token is kept in a
 * zero-padded OTLP_AUTH_MAX_TOKEN byte slot; a candidate is padded the same
 * way and compared with every slot over all its bytes, lengths included,
 * without branching on the data, so the time taken does not depend on which
 * token matched or how much of one did.
 *
 * Secrets stay secret: errors name the file and line (or the variable and
 * position) and at most the token's length; the log and metrics know only
 * counts.
 */
#include "otlp_auth.h"

#include "../../core/log.h"
#include "../../core/metrics.h"
#include "../../core/net.h"
#include "../../core/secret.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LOG_INTERVAL_NS (10ull * 1000000000ull)
#define MAX_FILE_SIZE ((size_t)1 << 20)

struct otlp_auth_token {
    uint8_t slot[OTLP_AUTH_MAX_TOKEN];
    size_t len;
    char **agents; /* allowlist, NULL: any agent */
    size_t n_agents;
};

enum { T_GRPC, T_HTTP, T_N };

struct otlp_auth {
    otlp_auth_token *tokens;
    size_t n;
    const char *prefix;
    halo_metric *failures[T_N][2]; /* [transport][missing, invalid] */
    halo_metric *rejected[T_N];
    halo_log_every refusals; /* the rate-limited log line */
};

/* ---- schema ------------------------------------------------------------ */

static const halo_field bearer_schema[] = {
    {.key = "tokens_file",
     .type = HALO_F_STRING,
     .offset = offsetof(otlp_bearer_cfg, tokens_file),
     .description = "file of tokens, one a line: TOKEN [agent1,agent2] "
                    "(# comments)"},
    {.key = "tokens_env",
     .type = HALO_F_STRING,
     .offset = offsetof(otlp_bearer_cfg, tokens_env),
     .description = "environment variable holding tokens separated by "
                    "commas or blanks"},
    {.key = NULL},
};

const halo_field otlp_auth_schema[] = {
    {.key = "bearer_token",
     .type = HALO_F_SECTION,
     .offset = offsetof(otlp_auth_cfg, bearer_token),
     .sub = bearer_schema,
     .present_offset = offsetof(otlp_auth_cfg, bearer_token_present),
     .description = "require Authorization: Bearer <token> on every "
                    "request"},
    {.key = NULL},
};

/* ---- loading ----------------------------------------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
           c == '\f';
}

static void free_token(otlp_auth_token *t)
{
    for (size_t i = 0; i < t->n_agents; i++)
        free(t->agents[i]);
    free(t->agents);
    memset(t, 0, sizeof *t);
}

/* Constant time: 1 when the two padded slots and lengths are equal. */
static unsigned slot_equal(const uint8_t *a, size_t alen, const uint8_t *b,
                           size_t blen)
{
    volatile unsigned diff = 0;
    for (size_t i = 0; i < OTLP_AUTH_MAX_TOKEN; i++)
        diff |= (unsigned)(a[i] ^ b[i]);
    diff |= (unsigned)(alen != blen);
    unsigned d = diff;
    /* 1 when d == 0, without a branch */
    return 1u & ((d - 1u) >> (sizeof d * 8 - 1));
}

/* Append a token (tok[0..len)) to a. where names its origin for errors. */
static halo_status add_token(otlp_auth *a, const char *tok, size_t len,
                             const char *where, halo_err *err,
                             otlp_auth_token **added)
{
    if (len > OTLP_AUTH_MAX_TOKEN)
        return halo_fail(err, HALO_EINVAL,
                         "%s: token of %zu bytes is longer than %d bytes",
                         where, len, OTLP_AUTH_MAX_TOKEN);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)tok[i] < 0x21 || (unsigned char)tok[i] > 0x7e)
            return halo_fail(err, HALO_EINVAL,
                             "%s: token (%zu bytes) has a character that is "
                             "not printable ASCII at byte %zu",
                             where, len, i + 1);
    otlp_auth_token t;
    memset(&t, 0, sizeof t);
    memcpy(t.slot, tok, len);
    t.len = len;
    for (size_t i = 0; i < a->n; i++)
        if (slot_equal(a->tokens[i].slot, a->tokens[i].len, t.slot, t.len))
            return halo_fail(err, HALO_EINVAL,
                             "%s: duplicate token (same as token %zu)", where,
                             i + 1);
    otlp_auth_token *p = realloc(a->tokens, (a->n + 1) * sizeof *p);
    if (!p)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    a->tokens = p;
    p[a->n] = t;
    *added = &p[a->n++];
    char shown[OTLP_AUTH_MAX_TOKEN + 1]; /* scrubbed from every message */
    snprintf(shown, sizeof shown, "%.*s", (int)len, (const char *)tok);
    halo_secret_register(shown);
    memset(shown, 0, sizeof shown);
    return HALO_OK;
}

/* "agent1, agent2" -> the token's allowlist. */
static halo_status parse_agents(otlp_auth_token *t, const char *s,
                                const char *where, halo_err *err)
{
    while (*s) {
        while (is_blank(*s) || *s == ',')
            s++;
        if (!*s)
            break;
        const char *e = s;
        while (*e && *e != ',')
            e++;
        const char *end = e;
        while (end > s && is_blank(end[-1]))
            end--;
        char **p = realloc(t->agents, (t->n_agents + 1) * sizeof *p);
        if (!p)
            return halo_fail(err, HALO_ENOMEM, "out of memory");
        t->agents = p;
        if (!(p[t->n_agents] = strndup(s, (size_t)(end - s))))
            return halo_fail(err, HALO_ENOMEM, "out of memory");
        t->n_agents++;
        s = e;
    }
    if (t->n_agents == 0)
        return halo_fail(err, HALO_EINVAL, "%s: empty agent allowlist", where);
    return HALO_OK;
}

/* One line of a tokens file (NUL-terminated, no newline). */
static halo_status parse_line(otlp_auth *a, char *line, const char *where,
                              halo_err *err)
{
    char *s = line;
    while (is_blank(*s))
        s++;
    if (!*s || *s == '#')
        return HALO_OK;
    char *e = s;
    while (*e && !is_blank(*e))
        e++;
    otlp_auth_token *t = NULL;
    halo_status st = add_token(a, s, (size_t)(e - s), where, err, &t);
    if (st != HALO_OK)
        return st;
    while (is_blank(*e))
        e++;
    if (*e && *e != '#')
        return parse_agents(t, e, where, err);
    return HALO_OK;
}

static halo_status read_file(const char *path, const char *field, char **out,
                             halo_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        char eb[128];
        return halo_fail(err, HALO_EINVAL, "%s: could not open %s: %s", field,
                         path, halo_strerror_lc(errno, eb, sizeof eb));
    }
    char *buf = malloc(MAX_FILE_SIZE + 1);
    size_t n = buf ? fread(buf, 1, MAX_FILE_SIZE + 1, f) : 0;
    bool bad = buf && ferror(f);
    fclose(f);
    if (!buf)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    if (bad || n > MAX_FILE_SIZE) {
        free(buf);
        return halo_fail(err, HALO_EINVAL,
                         bad ? "%s: could not read %s"
                             : "%s: %s is larger than 1 MiB",
                         field, path);
    }
    if (memchr(buf, '\0', n)) {
        free(buf);
        return halo_fail(err, HALO_EINVAL, "%s: %s contains a NUL byte", field,
                         path);
    }
    buf[n] = '\0';
    *out = buf;
    return HALO_OK;
}

static halo_status load_file(otlp_auth *a, const char *path,
                             const char *receiver, halo_err *err)
{
    char field[200], where[600];
    snprintf(field, sizeof field, "receivers.%s: auth.bearer_token.tokens_file",
             receiver);
    char *buf = NULL;
    halo_status st = read_file(path, field, &buf, err);
    if (st != HALO_OK)
        return st;
    size_t before = a->n;
    int lineno = 0;
    for (char *line = buf; line && st == HALO_OK;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        lineno++;
        snprintf(where, sizeof where, "%s: %s line %d", field, path, lineno);
        st = parse_line(a, line, where, err);
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    if (st == HALO_OK && a->n == before)
        st = halo_fail(err, HALO_EINVAL, "%s: %s holds no token", field, path);
    return st;
}

static halo_status load_env(otlp_auth *a, const char *var, const char *receiver,
                            halo_err *err)
{
    char where[300];
    const char *v = getenv(var);
    if (!v || !*v)
        return halo_fail(err, HALO_EINVAL,
                         "receivers.%s: auth.bearer_token.tokens_env: "
                         "environment variable %s is %s",
                         receiver, var, v ? "empty" : "not set");
    size_t before = a->n;
    int k = 0;
    const char *s = v;
    while (*s) {
        while (is_blank(*s) || *s == ',')
            s++;
        if (!*s)
            break;
        const char *e = s;
        while (*e && !is_blank(*e) && *e != ',')
            e++;
        snprintf(where, sizeof where,
                 "receivers.%s: auth.bearer_token.tokens_env: %s token %d",
                 receiver, var, ++k);
        otlp_auth_token *t = NULL;
        halo_status st = add_token(a, s, (size_t)(e - s), where, err, &t);
        if (st != HALO_OK)
            return st;
        s = e;
    }
    if (a->n == before)
        return halo_fail(err, HALO_EINVAL,
                         "receivers.%s: auth.bearer_token.tokens_env: %s "
                         "holds no token",
                         receiver, var);
    return HALO_OK;
}

static void init_metrics(otlp_auth *a, const char *receiver)
{
    static const char *const transports[T_N] = {"grpc", "http"};
    static const char *const reasons[2] = {"missing", "invalid"};
    char l[320];
    for (int t = 0; t < T_N; t++) {
        for (int r = 0; r < 2; r++) {
            snprintf(l, sizeof l,
                     "receiver=\"%s\",transport=\"%s\",reason=\"%s\"", receiver,
                     transports[t], reasons[r]);
            a->failures[t][r] = halo_counter(
                "halo_receiver_auth_failures_total",
                "Requests refused for a missing or invalid bearer token.", l);
        }
        snprintf(l, sizeof l, "receiver=\"%s\",transport=\"%s\"", receiver,
                 transports[t]);
        a->rejected[t] = halo_counter(
            "halo_receiver_auth_rejected_spans_total",
            "Spans dropped because their agent is not in the token's "
            "allowlist.",
            l);
    }
}

halo_status otlp_auth_new(const otlp_auth_cfg *cfg, const char *receiver,
                          const char *log_prefix, otlp_auth **out,
                          halo_err *err)
{
    *out = NULL;
    const otlp_bearer_cfg *b = &cfg->bearer_token;
    if (!cfg->bearer_token_present)
        return halo_fail(err, HALO_EINVAL,
                         "receivers.%s: auth: no method configured (add "
                         "bearer_token)",
                         receiver);
    if (!(b->tokens_file && *b->tokens_file) &&
        !(b->tokens_env && *b->tokens_env))
        return halo_fail(err, HALO_EINVAL,
                         "receivers.%s: auth.bearer_token: set tokens_file "
                         "or tokens_env",
                         receiver);
    otlp_auth *a = calloc(1, sizeof *a);
    if (!a)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    halo_log_every_init(&a->refusals);
    a->prefix = log_prefix ? log_prefix : "otlp";
    halo_status st = HALO_OK;
    if (b->tokens_file && *b->tokens_file)
        st = load_file(a, b->tokens_file, receiver, err);
    if (st == HALO_OK && b->tokens_env && *b->tokens_env)
        st = load_env(a, b->tokens_env, receiver, err);
    if (st != HALO_OK) {
        otlp_auth_free(a);
        return st;
    }
    init_metrics(a, receiver);
    *out = a;
    return HALO_OK;
}

void otlp_auth_free(otlp_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        free_token(&a->tokens[i]);
    free(a->tokens);
    halo_log_every_destroy(&a->refusals);
    free(a);
}

size_t otlp_auth_count(const otlp_auth *a)
{
    return a ? a->n : 0;
}

/* ---- checking ---------------------------------------------------------- */

otlp_auth_result otlp_auth_check(const otlp_auth *a, const char *value,
                                 size_t len, const otlp_auth_token **tok)
{
    *tok = NULL;
    if (!value)
        return OTLP_AUTH_MISSING;
    while (len && is_blank(*value)) {
        value++;
        len--;
    }
    while (len && is_blank(value[len - 1]))
        len--;
    if (len == 0)
        return OTLP_AUTH_MISSING;
    if (len < 7 || strncasecmp(value, "bearer", 6) != 0 || !is_blank(value[6]))
        return OTLP_AUTH_INVALID;
    value += 6;
    len -= 6;
    while (len && is_blank(*value)) {
        value++;
        len--;
    }
    if (len == 0 || len > OTLP_AUTH_MAX_TOKEN)
        return OTLP_AUTH_INVALID;
    uint8_t cand[OTLP_AUTH_MAX_TOKEN];
    memset(cand, 0, sizeof cand);
    memcpy(cand, value, len);
    /* every token is compared; the match is selected with masks */
    uintptr_t found = 0;
    for (size_t i = 0; i < a->n; i++) {
        uintptr_t eq =
            slot_equal(a->tokens[i].slot, a->tokens[i].len, cand, len);
        uintptr_t mask = (uintptr_t)0 - eq;
        found |= mask & (uintptr_t)&a->tokens[i];
    }
    memset(cand, 0, sizeof cand);
    if (!found)
        return OTLP_AUTH_INVALID;
    *tok = (const otlp_auth_token *)found;
    return OTLP_AUTH_OK;
}

static int transport_index(const char *transport)
{
    return transport && strcmp(transport, "grpc") == 0 ? T_GRPC : T_HTTP;
}

void otlp_auth_refused(otlp_auth *a, const char *transport,
                       otlp_auth_result why)
{
    int t = transport_index(transport);
    halo_metric_add(a->failures[t][why == OTLP_AUTH_MISSING ? 0 : 1], 1);
    uint64_t n = halo_log_every_hit(&a->refusals, LOG_INTERVAL_NS);
    if (n)
        LOG_WARN(a->prefix,
                 "refused %" PRIu64 " request%s without a valid bearer token "
                 "in the last 10 s",
                 n, n == 1 ? "" : "s");
}

/* ---- agent allowlists -------------------------------------------------- */

bool otlp_auth_token_restricted(const otlp_auth_token *tok)
{
    return tok && tok->n_agents > 0;
}

static const char *const agent_keys[] = {
    "agent.id",   "gen_ai.agent.id",   "inference.agent_id",
    "agent.name", "gen_ai.agent.name", "service.name",
};

static const char *value_text(const halo_value *v, char *buf, size_t size)
{
    if (!v)
        return NULL;
    if (v->type == HALO_VAL_STRING && v->u.s.ptr && v->u.s.len)
        return v->u.s.ptr;
    if (v->type == HALO_VAL_INT && buf && size) {
        snprintf(buf, size, "%" PRId64, v->u.i);
        return buf;
    }
    return NULL;
}

static const char *attrs_agent(const halo_attrs *a, char *buf, size_t size)
{
    for (size_t i = 0; i < sizeof agent_keys / sizeof agent_keys[0]; i++) {
        const char *t = value_text(halo_attrs_get(a, agent_keys[i]), buf, size);
        if (t)
            return t;
    }
    return NULL;
}

const char *otlp_auth_span_agent(const halo_span *s, char *buf, size_t size)
{
    const char *t = attrs_agent(&s->attrs, buf, size);
    if (!t && s->resource)
        t = attrs_agent(&s->resource->attrs, buf, size);
    return t;
}

static bool agent_allowed(const otlp_auth_token *tok, const char *agent)
{
    if (!agent)
        return false;
    for (size_t i = 0; i < tok->n_agents; i++)
        if (strcmp(tok->agents[i], agent) == 0)
            return true;
    return false;
}

size_t otlp_auth_filter(otlp_auth *a, const char *transport,
                        const otlp_auth_token *tok, halo_span *spans, size_t *n)
{
    if (!otlp_auth_token_restricted(tok))
        return 0;
    size_t kept = 0;
    char buf[32];
    for (size_t i = 0; i < *n; i++) {
        if (!agent_allowed(tok,
                           otlp_auth_span_agent(&spans[i], buf, sizeof buf)))
            continue;
        if (kept != i)
            spans[kept] = spans[i];
        kept++;
    }
    size_t dropped = *n - kept;
    *n = kept;
    if (dropped && a)
        halo_metric_add(a->rejected[transport_index(transport)],
                        (double)dropped);
    return dropped;
}
