/*
 * otlp_auth.h -- bearer-token authentication of the OTLP receiver.
 *
 * Configured as `auth: { bearer_token: { tokens_file, tokens_env } }` on the
 * receiver (schema otlp_auth_schema, filled into otlp_auth_cfg). At creation
 * the tokens are loaded once (no reload) into an otlp_auth, which the
 * transports consult for every request:
 *   - otlp_auth_check() takes the `authorization` value (gRPC metadata or
 *     HTTP header) and finds the token it carries, comparing in constant
 *     time against every configured token;
 *   - otlp_auth_refused() counts a refusal in the metrics and logs it, at
 *     most once per 10 s per receiver, with the count since the last line;
 *   - otlp_auth_filter() drops the spans of agents the token may not write
 *     (the token's agent allowlist, when it has one).
 * No function here ever logs, returns or counts a token's text: config
 * errors name the file and line, or the token's length.
 */
#ifndef HALO_OTLP_AUTH_H
#define HALO_OTLP_AUTH_H

#include "../../core/config.h"
#include "../../core/span.h"
#include "../../core/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest accepted token, in bytes (longer ones are a config error). */
#define OTLP_AUTH_MAX_TOKEN 512

typedef struct otlp_bearer_cfg {
    char *tokens_file; /* one token a line: "TOKEN [agent1,agent2]" */
    char *tokens_env;  /* name of a variable: tokens split by , or blanks */
} otlp_bearer_cfg;

typedef struct otlp_auth_cfg {
    otlp_bearer_cfg bearer_token;
    bool bearer_token_present;
} otlp_auth_cfg;

/* The `auth` section's schema (fields of otlp_auth_cfg). */
extern const halo_field otlp_auth_schema[];

typedef struct otlp_auth otlp_auth;
typedef struct otlp_auth_token otlp_auth_token;

typedef enum otlp_auth_result {
    OTLP_AUTH_OK = 0,
    OTLP_AUTH_MISSING, /* no authorization value at all */
    OTLP_AUTH_INVALID, /* not "Bearer <token>", or an unknown token */
} otlp_auth_result;

#define OTLP_AUTH_MESSAGE "missing or invalid bearer token"

/* Load the tokens of cfg for receiver `receiver` (its id, used in error
 * messages, metric labels and logs; log_prefix for the log lines). At
 * least one token must load. HALO_EINVAL with a message naming the field,
 * file and line on any problem. The caller frees *out. */
halo_status otlp_auth_new(const otlp_auth_cfg *cfg, const char *receiver,
                          const char *log_prefix, otlp_auth **out,
                          halo_err *err);
void otlp_auth_free(otlp_auth *a);

/* Number of tokens loaded. */
size_t otlp_auth_count(const otlp_auth *a);

/* Check an authorization value ("Bearer <token>"; NULL: absent). On
 * OTLP_AUTH_OK *tok is the matching token (owned by a). Takes the same
 * time whichever configured token matches or none. */
otlp_auth_result otlp_auth_check(const otlp_auth *a, const char *value,
                                 size_t len, const otlp_auth_token **tok);

/* Count a refused request (transport "grpc" or "http") and log it, rate
 * limited. Thread-safe. */
void otlp_auth_refused(otlp_auth *a, const char *transport,
                       otlp_auth_result why);

/* True when tok restricts the agents it may write. */
bool otlp_auth_token_restricted(const otlp_auth_token *tok);

/* The agent id of a span as DESIGN §5 ranks its keys (agent.id,
 * gen_ai.agent.id, inference.agent_id, agent.name, gen_ai.agent.name,
 * service.name), on the span's own attributes first, then its resource's;
 * NULL when none is a non-empty string or an integer (rendered into buf). */
const char *otlp_auth_span_agent(const halo_span *s, char *buf, size_t size);

/* Keep, in order, only the spans of *n whose agent tok may write (all when
 * tok is NULL or unrestricted); spans without an agent are dropped when it
 * is restricted. Updates *n, returns how many were dropped, and counts them
 * in the receiver's rejected-spans metric of transport. */
size_t otlp_auth_filter(otlp_auth *a, const char *transport,
                        const otlp_auth_token *tok, halo_span *spans,
                        size_t *n);

#endif
