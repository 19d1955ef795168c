/*
 * net.c -- endpoints and listening sockets (net.h).
 *
 * Endpoints are written "host:port" as in the OpenTelemetry Collector:
 * 127.0.0.1:4318, localhost:4318, 0.0.0.0:4318, [::1]:4318, :4318 (every
 * interface). The host is resolved with getaddrinfo and the first address
 * that binds is used. We create the socket ourselves (instead of letting
 * libmicrohttpd bind) so a failure says exactly why, "address already in
 * use" in particular, and so no SO_REUSEPORT lets two daemons share a port
 * silently.
 */
#include "net.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

bool halo_endpoint_split(const char *endpoint, char *host, size_t host_size,
                         char *port, size_t port_size)
{
    const char *h, *he, *p;
    if (!endpoint)
        return false;
    if (endpoint[0] == '[') {
        h = endpoint + 1;
        he = strchr(h, ']');
        if (!he || he[1] != ':')
            return false;
        p = he + 2;
    } else {
        he = strrchr(endpoint, ':');
        if (!he)
            return false;
        h = endpoint;
        p = he + 1;
    }
    size_t hl = (size_t)(he - h), pl = strlen(p);
    if (hl >= host_size || pl == 0 || pl >= port_size)
        return false;
    for (size_t i = 0; i < pl; i++)
        if (!isdigit((unsigned char)p[i]))
            return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    return true;
}

const char *halo_strerror_lc(int e, char *buf, size_t size)
{
    char tmp[128];
    const char *s = strerror_r(e, tmp, sizeof tmp);
    snprintf(buf, size, "%s", s);
    if (buf[0])
        buf[0] = (char)tolower((unsigned char)buf[0]);
    return buf;
}

static int resolve(const char *endpoint, struct addrinfo **res)
{
    char host[256], port[16];
    if (!halo_endpoint_split(endpoint, host, sizeof host, port, sizeof port))
        return EAI_NONAME;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    return getaddrinfo(host[0] ? host : NULL, port, &hints, res);
}

/* Bind one address; returns the fd, or -1 with *e set. */
static int bind_one(const struct addrinfo *ai, int *e)
{
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        *e = errno;
        return -1;
    }
    int one = 1;
    /* SO_REUSEADDR only lets us rebind past TIME_WAIT; it does not allow
     * two listeners on one port (SO_REUSEPORT would). */
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        *e = errno;
        close(fd);
        return -1;
    }
    return fd;
}

halo_status halo_tcp_listen(const char *endpoint, const char *what, int *fd,
                            halo_err *err)
{
    struct addrinfo *res = NULL;
    char ebuf[128];
    int rc = resolve(endpoint, &res);
    if (rc != 0)
        return halo_fail(err, HALO_EINVAL,
                         "could not listen on %s (%s): cannot resolve: %s",
                         endpoint, what, gai_strerror(rc));
    int e = EADDRNOTAVAIL, s = -1;
    for (struct addrinfo *ai = res; ai && s < 0; ai = ai->ai_next)
        s = bind_one(ai, &e);
    freeaddrinfo(res);
    if (s < 0)
        return halo_fail(err, HALO_EIO, "could not listen on %s (%s): %s",
                         endpoint, what,
                         halo_strerror_lc(e, ebuf, sizeof ebuf));
    if (listen(s, 1024) != 0 ||
        fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK) != 0) {
        e = errno;
        close(s);
        return halo_fail(err, HALO_EIO, "could not listen on %s (%s): %s",
                         endpoint, what,
                         halo_strerror_lc(e, ebuf, sizeof ebuf));
    }
    *fd = s;
    return HALO_OK;
}

int halo_tcp_probe_bind(const char *endpoint)
{
    struct addrinfo *res = NULL;
    if (resolve(endpoint, &res) != 0)
        return EADDRNOTAVAIL;
    int e = EADDRNOTAVAIL, s = -1;
    for (struct addrinfo *ai = res; ai && s < 0; ai = ai->ai_next)
        s = bind_one(ai, &e);
    freeaddrinfo(res);
    if (s < 0)
        return e;
    close(s);
    return 0;
}
