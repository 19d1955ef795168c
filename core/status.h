/*
 * status.h -- the one status type of the codebase, and the error buffer.
 *
 * Every fallible function returns a halo_status. When it has more to say it
 * writes a human message into a caller-provided halo_err (librdkafka's
 * errstr idea, as a struct so the size travels with it). Messages follow the
 * PostgreSQL style: lower case, no trailing period, "could not" for what may
 * clear later, "cannot"/"invalid" for what will not.
 *
 * The statuses map onto the OTLP answers (DESIGN §4):
 *   HALO_EINVAL   malformed input      gRPC INVALID_ARGUMENT   HTTP 400
 *   HALO_ERETRY   refused for now      gRPC UNAVAILABLE        HTTP 503
 *   HALO_ETOOBIG  oversized            gRPC RESOURCE_EXHAUSTED HTTP 413
 *   anything else internal             gRPC INTERNAL           HTTP 500
 */
#ifndef HALO_STATUS_H
#define HALO_STATUS_H

#include <stddef.h>

typedef enum halo_status {
    HALO_OK = 0,
    HALO_EINVAL,       /* malformed input or config: permanent */
    HALO_ERETRY,       /* temporarily refused (queue full, store down) */
    HALO_ETOOBIG,      /* message or request over a size limit */
    HALO_ENOMEM,       /* allocation failed */
    HALO_EIO,          /* file, socket or store failure */
    HALO_EUNSUPPORTED, /* not built in this version */
    HALO_ENOTFOUND,    /* looked-up thing does not exist */
    HALO_ESHUTDOWN,    /* component is shutting down */
} halo_status;

/* Short lower-case name of a status ("invalid argument", "retry later"...). */
const char *halo_status_str(halo_status st);

/* True for the statuses a client should retry (ERETRY, ESHUTDOWN, EIO). */
int halo_status_retryable(halo_status st);

#define HALO_ERR_MAX 512

typedef struct halo_err {
    char msg[HALO_ERR_MAX];
} halo_err;

/* printf into err->msg (truncating). NULL err is allowed and ignored. */
void halo_errf(halo_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Set err and return st: `return halo_fail(err, HALO_EINVAL, "bad %s", x);` */
halo_status halo_fail(halo_err *err, halo_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
