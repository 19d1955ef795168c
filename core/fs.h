/*
 * fs.h -- small file-system helpers shared by the tree.
 *
 * halo_mkdir_p is the one "mkdir -p" of the tree: the analyzer creates its
 * report directories with it and the SQLite exporter the directory holding
 * its database file. halo_dir_of is the one "dirname": that directory, and
 * the one the SQLite store syncs after its log file appears.
 */
#ifndef HALO_FS_H
#define HALO_FS_H

#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* mkdir -p: creates every missing directory of path (each prefix ending
 * before a '/', then path itself) with mode; existing ones are fine. path
 * is written to during the call (one '/' at a time becomes '\0') and is
 * restored before it returns, whatever the result. HALO_EIO
 * "could not create directory \"<prefix>\": <strerror>" naming the first
 * prefix that could not be created. */
halo_status halo_mkdir_p(char *path, mode_t mode, halo_err *err);

/* The directory holding the file at path, into out[size]: what comes
 * before its last '/' ("/" for a file in the root, "." when path has no
 * '/'). False (out unchanged) when it does not fit. */
bool halo_dir_of(const char *path, char *out, size_t size);

#endif
