/*
 * fs.c -- file-system helpers (fs.h).
 *
 * halo_mkdir_p walks the path once, cutting it at each '/' in place to
 * create that prefix, so it needs no copy (and has no length limit of its
 * own); EEXIST is success at every level, so concurrent creators and
 * directories that already exist are both fine.
 */
#include "fs.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

halo_status halo_mkdir_p(char *path, mode_t mode, halo_err *err)
{
    for (char *p = *path ? path + 1 : path; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, mode);
        int e = errno;
        *p = '/';
        if (rc != 0 && e != EEXIST)
            return halo_fail(err, HALO_EIO,
                             "could not create directory \"%.*s\": %s",
                             (int)(p - path), path, strerror(e));
    }
    if (mkdir(path, mode) != 0 && errno != EEXIST)
        return halo_fail(err, HALO_EIO, "could not create directory \"%s\": %s",
                         path, strerror(errno));
    return HALO_OK;
}

bool halo_dir_of(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    const char *dir = slash ? path : ".";
    size_t len = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    if (len >= size)
        return false;
    memcpy(out, dir, len);
    out[len] = '\0';
    return true;
}
