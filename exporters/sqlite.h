/*
 * sqlite.h -- what the sqlite exporter (sqlite.c) offers besides its
 * component definition.
 */
#ifndef HALO_EXPORTER_SQLITE_H
#define HALO_EXPORTER_SQLITE_H

#include "core/component.h"
#include "storage/store.h"

/* The exporter's store handle once started (NULL before): tests use it to
 * watch the write path. */
halo_store *halo_sqlite_exporter_store(const halo_component *self);

#endif
