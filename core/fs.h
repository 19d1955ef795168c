/*
 * fs.h -- small file-system helpers shared by the tree.
 *
 * halo_mkdir_p is the one "mkdir -p" of the tree: the analyzer creates its
 * report directories with it and the SQLite exporter the directory holding
 * its database file.
 */
#ifndef HALO_FS_H
#define HALO_FS_H

#include "status.h"

#include <sys/types.h>

/* mkdir -p: creates every missing directory of path (each prefix ending
 * before a '/', then path itself) with mode; existing ones are fine. path
 * is written to during the call (one '/' at a time becomes '\0') and is
 * restored before it returns, whatever the result. HALO_EIO
 * "could not create directory \"<prefix>\": <strerror>" naming the first
 * prefix that could not be created. */
halo_status halo_mkdir_p(char *path, mode_t mode, halo_err *err);

#endif
