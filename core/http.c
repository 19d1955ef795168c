/*
 * http.c -- libmicrohttpd helpers shared by the HTTP servers (http.h).
 *
 * Each server decides what to answer; this file only turns an answer into
 * an MHD response (and releases it once queued, as MHD keeps its own
 * reference), and gives MHD's error log lines the daemon's log prefix.
 */
#include "http.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum MHD_Result halo_http_reply(struct MHD_Connection *c, unsigned code,
                                const char *type, char *body, size_t len,
                                bool must_free, const char *header,
                                const char *value)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (must_free)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (header)
        MHD_add_response_header(r, header, value);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

void halo_http_log(void *cls, const char *fmt, va_list ap)
{
    const char *prefix = cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    LOG_WARN(prefix, "http: %s", line);
}
