/*
 * http.h -- what every libmicrohttpd server of halo shares (the OTLP/HTTP
 * receiver, the health_check and metrics extensions): queueing a response,
 * routing MHD's own messages into core/log.h, and the header-phase guard
 * against slow clients (slowloris).
 *
 * The guard: MHD's own connection timeout is an idle timeout that every
 * received byte resets, so a client trickling one header byte at a time
 * keeps a connection (and its memory) forever. The guard bounds the time
 * from a request's first byte (for the first request: from the accept) to
 * the end of its header block; past it the socket is shut down. See
 * http.c for how it knows where a request is and how it avoids the
 * fd-reuse race.
 */
#ifndef HALO_HTTP_H
#define HALO_HTTP_H

#include "status.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* ---- header-phase guard -------------------------------------------------- */

typedef struct halo_http_guard halo_http_guard;

/* A guard cutting connections whose request headers take longer than
 * read_header_timeout_ns (> 0). prefix (log lines) and labels (of the
 * counter halo_http_slow_headers_closed_total, e.g.
 * "receiver=\"otlp\",transport=\"http\"") are copied. Starts a sweeper
 * thread. */
halo_status halo_http_guard_new(const char *prefix, const char *labels,
                                uint64_t read_header_timeout_ns,
                                halo_http_guard **out, halo_err *err);
/* MHD_OPTION_NOTIFY_CONNECTION callback; cls is the guard. */
void halo_http_guard_notify(void *cls, struct MHD_Connection *c,
                            void **socket_context,
                            enum MHD_ConnectionNotificationCode code);
/* Call on the first access-handler call of each request: its headers are
 * complete. c's daemon must use the guard's notify callback. */
void halo_http_guard_headers_done(struct MHD_Connection *c);
/* Call from MHD_OPTION_NOTIFY_COMPLETED: the connection now waits for its
 * next request (the clock restarts with that request's first byte). */
void halo_http_guard_request_done(struct MHD_Connection *c);
/* Stop the sweeper and free; after MHD_stop_daemon. NULL ok. */
void halo_http_guard_free(halo_http_guard *g);

#endif
