/* status.c -- names of statuses and the error-buffer helpers (status.h). */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>

const char *halo_status_str(halo_status st)
{
    switch (st) {
    case HALO_OK:
        return "ok";
    case HALO_EINVAL:
        return "invalid argument";
    case HALO_ERETRY:
        return "temporarily unavailable";
    case HALO_ETOOBIG:
        return "too large";
    case HALO_ENOMEM:
        return "out of memory";
    case HALO_EIO:
        return "i/o error";
    case HALO_EUNSUPPORTED:
        return "not supported";
    case HALO_ENOTFOUND:
        return "not found";
    case HALO_ESHUTDOWN:
        return "shutting down";
    }
    return "unknown status";
}

int halo_status_retryable(halo_status st)
{
    return st == HALO_ERETRY || st == HALO_ESHUTDOWN || st == HALO_EIO;
}

void halo_errf(halo_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

halo_status halo_fail(halo_err *err, halo_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}
