/*
 * http.h -- what every libmicrohttpd server of halo shares (the OTLP/HTTP
 * receiver, the health_check and metrics extensions): queueing a response
 * and routing MHD's own messages into core/log.h.
 */
#ifndef HALO_HTTP_H
#define HALO_HTTP_H

#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* Queue a response with status code, Content-Type type, body[0..len) and,
 * when header is not NULL, one more header (header: value). With must_free
 * the body is malloc'd and handed over: MHD frees it, and so does this
 * function when the response cannot be created. */
enum MHD_Result halo_http_reply(struct MHD_Connection *c, unsigned code,
                                const char *type, char *body, size_t len,
                                bool must_free, const char *header,
                                const char *value);

/* MHD_OPTION_EXTERNAL_LOGGER: logs MHD's message at WARN as "http: ...",
 * without its trailing newline, under the log prefix given as cls (a
 * const char * that outlives the daemon). */
void halo_http_log(void *cls, const char *fmt, va_list ap);

#endif
