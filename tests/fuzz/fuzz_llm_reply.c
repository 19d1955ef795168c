/*
 * fuzz_llm_reply.c -- libFuzzer target for halo_llm_decode_reply
 * (analyzer/llm_reply.c): model servers' replies, and the model's text
 * inside them, are untrusted bytes.
 *
 * Whatever the input, decoding must return HALO_OK or HALO_EINVAL with a
 * message, and never crash. On success the reply must hold together: a
 * message that serializes, one call per tool_calls entry, each with an id,
 * a name and either parsed object arguments or an error text; the error
 * reply reader (halo_llm_error_text) must always give a terminated string.
 */
#include "analyzer/llm.h"
#include "analyzer/llm_int.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    halo_llm_reply r;
    halo_err err = {{0}};
    halo_status st = halo_llm_decode_reply((const char *)data, size, &r, &err);
    if (st != HALO_OK) {
        if (st != HALO_EINVAL && st != HALO_ENOMEM)
            abort();
        if (!err.msg[0] || r.message || r.calls || r.content)
            abort();
    } else {
        char *s = json_dumps(r.message, JSON_COMPACT);
        if (!s || !r.content)
            abort();
        free(s);
        json_t *tcs = json_object_get(r.message, "tool_calls");
        if (json_array_size(tcs) != r.n_calls)
            abort();
        for (size_t i = 0; i < r.n_calls; i++) {
            const halo_llm_call *k = &r.calls[i];
            if (!k->id || !k->id[0] || !k->name || !k->name[0] || !k->arguments)
                abort();
            if (!!k->args == !!k->error)
                abort();
            if (k->args && !json_is_object(k->args))
                abort();
        }
    }
    halo_llm_reply_clear(&r);
    char text[128];
    halo_llm_error_text((const char *)data, size, text, sizeof text);
    if (strlen(text) >= sizeof text)
        abort();
    return 0;
}
