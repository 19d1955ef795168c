/*
 * llm_reply.c -- decoding chat-completions replies (llm.h).
 *
 * The servers halo talks to differ in small ways, and the decoder accepts
 * each: `content` null next to tool_calls, or a list of {"type": "text"}
 * parts; tool-call `arguments` as a JSON string (OpenAI, vLLM, llama.cpp)
 * or as an object (some Ollama versions); missing call ids (generated);
 * missing `usage` (-1). Everything else it reads is checked for its type
 * and a wrong one is HALO_EINVAL naming the field
 * ("choices[0].message.tool_calls[1].function.name ...").
 *
 * The model's own text -- the arguments -- is not the server's fault: an
 * argument text that is not a JSON object leaves that call's args NULL
 * with an error written for the model, and the reply still decodes.
 *
 * The reply's `message` is rebuilt rather than copied, so what goes back
 * into the conversation is the portable shape every server accepts
 * (string arguments, ids present, no server-specific extras such as
 * reasoning_content).
 */
#include "llm_int.h"

#include "../core/buf.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG "choices[0].message"

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

void halo_llm_reply_clear(halo_llm_reply *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_calls; i++) {
        halo_llm_call *k = &r->calls[i];
        free(k->id);
        free(k->name);
        free(k->arguments);
        json_decref(k->args);
        free(k->error);
    }
    free(r->calls);
    json_decref(r->message);
    free(r->content);
    free(r->finish_reason);
    free(r->model);
    memset(r, 0, sizeof *r);
    r->prompt_tokens = -1;
    r->completion_tokens = -1;
}

/* content: a string, null/absent (""), or a list of text parts. */
static halo_status decode_content(const json_t *v, char **out, halo_err *err)
{
    if (!v || json_is_null(v))
        return (*out = strdup(""))
                   ? HALO_OK
                   : halo_fail(err, HALO_ENOMEM, "out of memory");
    if (json_is_string(v))
        return (*out = strdup(json_string_value(v)))
                   ? HALO_OK
                   : halo_fail(err, HALO_ENOMEM, "out of memory");
    if (!json_is_array(v))
        return halo_fail(err, HALO_EINVAL,
                         MSG ".content is %s, expected a string", type_name(v));
    halo_buf b = HALO_BUF_INIT;
    size_t i;
    json_t *part;
    json_array_foreach(v, i, part)
    {
        const json_t *t = json_object_get(part, "text");
        if (json_is_string(part))
            t = part;
        if (!json_is_string(t))
            continue; /* images and other parts: no text */
        halo_buf_append(&b, json_string_value(t), json_string_length(t));
    }
    halo_buf_putc(&b, '\0');
    if (b.oom) {
        halo_buf_free(&b);
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    }
    *out = halo_buf_steal(&b);
    return HALO_OK;
}

static char *xstrdup(const char *s, bool *oom)
{
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

/* Parse a call's argument text into args, or explain to the model why
 * not. Blank text means no arguments. */
static bool parse_arguments(halo_llm_call *k)
{
    const char *p = k->arguments;
    while (isspace((unsigned char)*p))
        p++;
    if (!*p) {
        k->args = json_object();
        return k->args != NULL;
    }
    json_error_t je;
    json_t *v = json_loads(k->arguments, JSON_DECODE_ANY, &je);
    char msg[600] = "";
    if (!v)
        snprintf(msg, sizeof msg,
                 "the arguments of tool call \"%.100s\" are not valid JSON: "
                 "%.200s (line %d, column %d); call the tool again with a "
                 "JSON object",
                 k->name, je.text, je.line, je.column);
    else if (!json_is_object(v))
        snprintf(msg, sizeof msg,
                 "the arguments of tool call \"%.100s\" are %s, not a JSON "
                 "object; call the tool again with a JSON object",
                 k->name, type_name(v));
    if (json_is_object(v)) {
        k->args = v;
        return true;
    }
    json_decref(v);
    k->error = strdup(msg);
    return k->error != NULL;
}

/* One tool_calls[i] into k. */
static halo_status decode_call(const json_t *tc, size_t i, halo_llm_call *k,
                               uint64_t *next_id, halo_err *err)
{
    if (!json_is_object(tc))
        return halo_fail(err, HALO_EINVAL,
                         MSG ".tool_calls[%zu] is %s, expected an object", i,
                         type_name(tc));
    const json_t *fn = json_object_get(tc, "function");
    if (!json_is_object(fn))
        return halo_fail(err, HALO_EINVAL,
                         MSG ".tool_calls[%zu].function is %s, expected an "
                             "object",
                         i, fn ? type_name(fn) : "missing");
    const json_t *name = json_object_get(fn, "name");
    if (!json_is_string(name) || json_string_length(name) == 0)
        return halo_fail(err, HALO_EINVAL,
                         MSG ".tool_calls[%zu].function.name is %s, expected "
                             "a non-empty string",
                         i, name ? type_name(name) : "missing");
    bool oom = false;
    k->name = xstrdup(json_string_value(name), &oom);
    const json_t *id = json_object_get(tc, "id");
    if (json_is_string(id) && json_string_length(id) > 0) {
        k->id = xstrdup(json_string_value(id), &oom);
    } else {
        char gen[32];
        snprintf(gen, sizeof gen, "call_%" PRIu64, (*next_id)++);
        k->id = xstrdup(gen, &oom);
    }
    const json_t *a = json_object_get(fn, "arguments");
    if (json_is_string(a)) {
        k->arguments = xstrdup(json_string_value(a), &oom);
    } else if (!a || json_is_null(a)) {
        k->arguments = xstrdup("", &oom);
    } else {
        /* an object (or the model's wrong type): keep its text */
        k->arguments = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!k->arguments)
            oom = true;
    }
    if (oom || !parse_arguments(k))
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    return HALO_OK;
}

static halo_status decode_calls(const json_t *v, halo_llm_reply *out,
                                uint64_t *next_id, halo_err *err)
{
    if (!v || json_is_null(v))
        return HALO_OK;
    if (!json_is_array(v))
        return halo_fail(err, HALO_EINVAL,
                         MSG ".tool_calls is %s, expected an array",
                         type_name(v));
    size_t n = json_array_size(v);
    if (n == 0)
        return HALO_OK;
    out->calls = calloc(n, sizeof *out->calls);
    if (!out->calls)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        out->n_calls = i + 1; /* so clear frees a half-filled call */
        halo_status st =
            decode_call(json_array_get(v, i), i, &out->calls[i], next_id, err);
        if (st != HALO_OK)
            return st;
    }
    return HALO_OK;
}

static int64_t usage_count(const json_t *usage, const char *key)
{
    const json_t *v = json_object_get(usage, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    return (int64_t)json_integer_value(v);
}

/* The normalized assistant message. */
static json_t *build_message(const halo_llm_reply *r)
{
    json_t *m = json_object();
    if (!m)
        return NULL;
    int bad = json_object_set_new(m, "role", json_string("assistant"));
    bad |= json_object_set_new(
        m, "content",
        r->n_calls && !r->content[0] ? json_null() : json_string(r->content));
    if (r->n_calls) {
        json_t *tcs = json_array();
        bad |= json_object_set_new(m, "tool_calls", tcs);
        for (size_t i = 0; !bad && i < r->n_calls; i++) {
            const halo_llm_call *k = &r->calls[i];
            bad |= json_array_append_new(
                tcs,
                json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", k->id, "type",
                          "function", "function", "name", k->name, "arguments",
                          k->arguments[0] ? k->arguments : "{}"));
        }
    }
    if (bad) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* An error reply that came with status 200 (some proxies do that). */
static halo_status server_error(const char *body, size_t len, halo_err *err)
{
    char text[400];
    halo_llm_error_text(body, len, text, sizeof text);
    return halo_fail(err, HALO_EINVAL, "the server answered with an error: %s",
                     text);
}

static halo_status decode_root(const json_t *root, const char *body, size_t len,
                               halo_llm_reply *out, uint64_t *next_id,
                               halo_err *err)
{
    if (!json_is_object(root))
        return halo_fail(err, HALO_EINVAL,
                         "reply is %s, expected a JSON object",
                         type_name(root));
    const json_t *choices = json_object_get(root, "choices");
    if (!choices && json_object_get(root, "error"))
        return server_error(body, len, err);
    if (!json_is_array(choices))
        return halo_fail(err, HALO_EINVAL, "choices is %s, expected an array",
                         choices ? type_name(choices) : "missing");
    if (json_array_size(choices) == 0)
        return halo_fail(err, HALO_EINVAL, "choices is empty");
    const json_t *c0 = json_array_get(choices, 0);
    if (!json_is_object(c0))
        return halo_fail(err, HALO_EINVAL,
                         "choices[0] is %s, expected an object", type_name(c0));
    const json_t *msg = json_object_get(c0, "message");
    if (!json_is_object(msg))
        return halo_fail(err, HALO_EINVAL, MSG " is %s, expected an object",
                         msg ? type_name(msg) : "missing");
    halo_status st =
        decode_content(json_object_get(msg, "content"), &out->content, err);
    if (st == HALO_OK)
        st =
            decode_calls(json_object_get(msg, "tool_calls"), out, next_id, err);
    if (st != HALO_OK)
        return st;
    const json_t *fr = json_object_get(c0, "finish_reason");
    if (fr && !json_is_null(fr) && !json_is_string(fr))
        return halo_fail(err, HALO_EINVAL,
                         "choices[0].finish_reason is %s, expected a string",
                         type_name(fr));
    bool oom = false;
    if (json_is_string(fr))
        out->finish_reason = xstrdup(json_string_value(fr), &oom);
    const json_t *model = json_object_get(root, "model");
    if (json_is_string(model))
        out->model = xstrdup(json_string_value(model), &oom);
    const json_t *usage = json_object_get(root, "usage");
    out->prompt_tokens = usage_count(usage, "prompt_tokens");
    out->completion_tokens = usage_count(usage, "completion_tokens");
    if (oom || !(out->message = build_message(out)))
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    return HALO_OK;
}

halo_status halo_llm_decode_ids(const char *body, size_t len,
                                halo_llm_reply *out, uint64_t *next_id,
                                halo_err *err)
{
    memset(out, 0, sizeof *out);
    out->prompt_tokens = -1;
    out->completion_tokens = -1;
    if (!body || len == 0)
        return halo_fail(err, HALO_EINVAL, "reply is empty");
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    if (!root)
        return halo_fail(err, HALO_EINVAL,
                         "reply is not JSON: %s (line %d, column %d)", je.text,
                         je.line, je.column);
    halo_status st = decode_root(root, body, len, out, next_id, err);
    json_decref(root);
    if (st != HALO_OK)
        halo_llm_reply_clear(out);
    return st;
}

halo_status halo_llm_decode_reply(const char *body, size_t len,
                                  halo_llm_reply *out, halo_err *err)
{
    uint64_t next = 0;
    return halo_llm_decode_ids(body, len, out, &next, err);
}

/* Printable text of at most cap-1 bytes: control bytes become spaces. */
static void printable(const char *s, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[o++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    buf[o] = '\0';
    /* do not end inside a UTF-8 sequence */
    if (o == cap - 1)
        while (o > 0 && ((unsigned char)buf[o - 1] & 0xc0) == 0x80)
            buf[--o] = '\0';
    if (o > 0 && ((unsigned char)buf[o - 1] & 0xc0) == 0xc0)
        buf[--o] = '\0';
}

void halo_llm_error_text(const char *body, size_t len, char *buf, size_t cap)
{
    if (cap == 0)
        return;
    size_t lim = cap < 300 ? cap : 300;
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    const json_t *e = json_object_get(root, "error");
    const json_t *m = json_is_object(e) ? json_object_get(e, "message") : e;
    if (!json_is_string(m))
        m = json_object_get(root, "message");
    if (!json_is_string(m))
        m = json_object_get(root, "detail"); /* some proxies */
    if (json_is_string(m))
        printable(json_string_value(m), json_string_length(m), buf, lim);
    else if (body && len)
        printable(body, len, buf, lim);
    else
        snprintf(buf, cap, "(no body)");
    json_decref(root);
}
