/*
 * llm.h -- an OpenAI-compatible chat-completions client (libcurl), for the
 * RLM engine (DESIGN §7). It speaks the one dialect OpenAI, vLLM, Ollama
 * and llama.cpp's server share (LLM.md has a worked example for each):
 *
 *   POST {base_url}/chat/completions
 *   {"model", "messages", "tools"?, "temperature", "max_tokens"?,
 *    "stream": false}
 *
 * A call retries what may clear by itself -- connection errors, timeouts,
 * HTTP 408/429/500/502/503/504 -- up to max_retries times with exponential
 * backoff and jitter, waiting what the server asks for instead when it
 * sends Retry-After (seconds or an HTTP-date) or retry-after-ms. The whole
 * call, attempts and waits, fits in cfg->timeout; a wait that would not
 * fit ends the call at once.
 *
 * Replies are untrusted bytes: halo_llm_decode_reply checks every field it
 * reads and says which one was wrong. A model's tool-call arguments that
 * are not a JSON object do not fail the call: that call gets args NULL and
 * an error text meant to go back to the model as the tool's result.
 *
 * The API key travels only in the Authorization header. It is never
 * logged, and is masked in error messages even when a server echoes it.
 * Extra header values are not logged either.
 *
 * Threads: a client serves one call at a time (its curl handle and
 * connection are reused across calls); use one client per thread.
 */
#ifndef HALO_LLM_H
#define HALO_LLM_H

#include "../core/status.h"
#include "analyzer_config.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Replies larger than this are refused (HALO_ETOOBIG). */
#define HALO_LLM_MAX_REPLY (8u << 20)

typedef struct halo_llm halo_llm;

/* One tool call the model asked for. */
typedef struct halo_llm_call {
    char *id;        /* the server's, else generated ("call_N") */
    char *name;      /* the function's name (non-empty) */
    char *arguments; /* the arguments as text (what the model wrote) */
    json_t *args;    /* parsed: a JSON object; NULL when malformed */
    char *error;     /* why args is NULL, for the model; else NULL */
} halo_llm_call;

typedef struct halo_llm_reply {
    /* The assistant message, normalized (role, content, tool_calls with ids
     * and string arguments), ready to append to the conversation. */
    json_t *message;
    char *content; /* text, "" when none */
    halo_llm_call *calls;
    size_t n_calls;
    char *finish_reason;       /* NULL when the server did not say */
    char *model;               /* the model that answered; NULL when not said */
    int64_t prompt_tokens;     /* -1 when the server did not say */
    int64_t completion_tokens; /* -1 when the server did not say */
    int attempts;              /* HTTP requests made (halo_llm_chat) */
} halo_llm_reply;

/* True when cfg names a model server (base_url set; empty means "no
 * model": the analyzer runs its detectors only). */
bool halo_llm_configured(const halo_llm_cfg *cfg);

/* Checks base_url (http or https, a host, no credentials, query or
 * fragment), model (required), the numeric settings and headers ("Name:
 * value"); HALO_EINVAL naming the field otherwise. What halo_llm_new
 * checks first, without building a client (halo validate). */
halo_status halo_llm_check_cfg(const halo_llm_cfg *cfg, halo_err *err);

/* A client for cfg (copied: cfg may go after), after halo_llm_check_cfg. */
halo_status halo_llm_new(const halo_llm_cfg *cfg, halo_llm **out,
                         halo_err *err);
void halo_llm_free(halo_llm *c);

/* One chat completion: messages is the conversation (a JSON array of
 * message objects), tools the function tools offered (a JSON array, or
 * NULL/empty for none). On HALO_OK *out holds the reply (clear it with
 * halo_llm_reply_clear); on failure *out is empty and err says why:
 *   HALO_ERETRY   the server stayed unreachable, overloaded or too slow
 *                 for every attempt the budget allowed
 *   HALO_EINVAL   bad arguments, a 4xx answer (with the server's message),
 *                 or a reply that does not decode (naming the field)
 *   HALO_ETOOBIG  a reply over HALO_LLM_MAX_REPLY
 *   HALO_EIO      TLS or other transport failures a retry will not fix
 *   HALO_ENOMEM   out of memory */
halo_status halo_llm_chat(halo_llm *c, const json_t *messages,
                          const json_t *tools, halo_llm_reply *out,
                          halo_err *err);

void halo_llm_reply_clear(halo_llm_reply *r);

/* Decode a chat-completions response body (any bytes: exposed for the
 * fuzzer and the tests). Generated call ids are "call_0", "call_1", ... */
halo_status halo_llm_decode_reply(const char *body, size_t len,
                                  halo_llm_reply *out, halo_err *err);

#endif
