/*
 * fuzz_redact.c -- libFuzzer target for redaction (analyzer/redact.c):
 * span contents are any bytes, and nothing secret may survive them.
 *
 * The first byte picks the redactor (the built-ins with typed
 * replacements, or the built-ins plus custom keys and patterns with an
 * untyped replacement that contains no brackets) and whether the rest is
 * also read as JSON. For the text (NULs and invalid UTF-8 included):
 * - the output is NUL-terminated at its length;
 * - no rule finds anything in the output (halo_redact_scan == 0), so no
 *   default pattern matches it, split across replacements or not;
 * - redacting the output again returns it unchanged with no redactions.
 * For a JSON document, redacting the tree a second time must count no
 * redactions, and its dump must still be JSON.
 */
#include "analyzer/redact.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static halo_redactor *typed, *custom;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    halo_err err;
    char *keys[] = {"ssn", "pin-code"};
    char *pats[] = {"ORD-[0-9]{4,}", "x+y", "secret[[:digit:]]"};
    halo_redact_cfg cfg = {.defaults = true,
                           .keys = {keys, 2},
                           .patterns = {pats, 3},
                           .replacement = "~hidden~",
                           .typed = false};
    if (halo_redactor_new(NULL, &typed, &err) != HALO_OK ||
        halo_redactor_new(&cfg, &custom, &err) != HALO_OK)
        abort();
    return 0;
}

static void check_text(const halo_redactor *r, const char *s, size_t n)
{
    size_t olen = 0, c1 = 0, olen2 = 0, c2 = 0;
    char *o = halo_redact_text_n(r, s, n, &olen, &c1);
    if (!o)
        return; /* out of memory */
    if (o[olen] != '\0' || halo_redact_scan(r, o, olen) != 0)
        abort();
    if (c1 == 0 && (olen != n || memcmp(o, s, n) != 0))
        abort(); /* changed without a redaction */
    char *o2 = halo_redact_text_n(r, o, olen, &olen2, &c2);
    if (o2 && (c2 != 0 || olen2 != olen || memcmp(o, o2, olen) != 0))
        abort();
    free(o);
    free(o2);
}

static void check_json(const halo_redactor *r, const char *s, size_t n)
{
    json_error_t je;
    json_t *v = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v)
        return;
    size_t c1 = 0, c2 = 0;
    halo_redact_json(r, v, &c1);
    halo_redact_json(r, v, &c2);
    if (c2 != 0)
        abort();
    char *d = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (d) {
        json_t *back = json_loads(d, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!back)
            abort();
        json_decref(back);
        free(d);
    }
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 16384)
        return 0;
    const halo_redactor *r = (data[0] & 1) ? custom : typed;
    const char *s = (const char *)data + 1;
    check_text(r, s, size - 1);
    if (data[0] & 2)
        check_json(r, s, size - 1);
    return 0;
}
