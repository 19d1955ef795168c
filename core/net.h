/*
 * net.h -- endpoints and listening sockets, shared by every network server
 * (OTLP receivers, extensions).
 */
#ifndef HALO_NET_H
#define HALO_NET_H

#include "status.h"

#include <stdbool.h>
#include <stddef.h>

/* Split "host:port" / "[v6]:port" into host (without brackets; "" for
 * ":port") and port. False when malformed. */
bool halo_endpoint_split(const char *endpoint, char *host, size_t host_size,
                         char *port, size_t port_size);
/* A listening, non-blocking, close-on-exec TCP socket bound to endpoint
 * (the first address it resolves to). what names the listener in errors:
 * "could not listen on 127.0.0.1:4318 (http): address already in use". */
halo_status halo_tcp_listen(const char *endpoint, const char *what, int *fd,
                            halo_err *err);
/* The errno a bind to endpoint would get now (0 when it would succeed);
 * used to explain failures of listeners that bind themselves (gRPC). */
int halo_tcp_probe_bind(const char *endpoint);
/* strerror(e) with a lower-case first letter, PostgreSQL style. */
const char *halo_strerror_lc(int e, char *buf, size_t size);

#endif
