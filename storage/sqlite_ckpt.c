/*
 * sqlite_ckpt.c -- the SQLite backend's background checkpointer.
 *
 * In WAL mode every commit appends to the log, and a checkpoint copies the
 * log back into the database file (reading it, writing the pages, fsync).
 * By default SQLite checkpoints inside the committing writer; a long-running
 * writer (the sqlite exporter) instead gets a thread with a second
 * connection that does it, woken by the writer's WAL hook once the log
 * holds CKPT_SOFT_BYTES. Writer and checkpointer then run on different
 * cores, and the writer only appends.
 *
 * The log restarts from its beginning only when a write begins with every
 * frame copied, which a checkpointer running behind continuous writes never
 * sees; so past the hard limit (halo_store_opts.wal_limit_bytes, 512 MiB
 * by default) the writer runs a RESTART checkpoint itself. That bounds the
 * log at the limit plus one transaction. The writer's checkpoint blocks
 * its commit while it copies what the checkpointer has not: with random
 * trace ids, a 128 MiB limit meant restarts several times a second of up
 * to 86 ms each, and a half-load p99 of 30-46 ms against 23-29 ms with
 * 512 MiB (bench/README.md, 2026-11-23).
 *
 * Deferred sync (store.h: deferred_sync). With synchronous=FULL SQLite
 * syncs the log inside COMMIT, and the writer waits for the disk before
 * it can start the next transaction: about a third of its time at peak.
 * A deferred-sync handle commits with synchronous=NORMAL instead (the log
 * is written, not synced: still consistent after a crash, SQLite's own
 * guarantee) and sq_sync() fdatasyncs the log through a descriptor of our
 * own, from the caller's sync thread, while the writer fills the next
 * transaction. A commit is as durable as with FULL once a sync that began
 * after it returned has succeeded; the exporter confirms nothing before.
 * SQLite takes no locks on the log file, so our descriptor cannot drop
 * any (closing a descriptor of the database file itself would). The log
 * keeps its inode while any connection of ours is open: only the last
 * connection to close deletes it.
 */
#include "sqlite_int.h"

#include "../core/fs.h"
#include "../core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define LOG_PREFIX "storage:sqlite"

#define CKPT_SOFT_BYTES (32 << 20)    /* WAL size that wakes the checkpointer */
#define CKPT_HARD_BYTES (512LL << 20) /* the writer helps (default) */

static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    ((sq_store *)ud)->wal_frames = frames;
    return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
    pthread_setname_np(pthread_self(), "sqlite-ckpt");
    sq_store *s = arg;
    bool warned = false;
    pthread_mutex_lock(&s->ckpt_mu);
    while (!s->ckpt_stop) {
        if (!s->ckpt_wanted) {
            pthread_cond_wait(&s->ckpt_cv, &s->ckpt_mu);
            continue;
        }
        s->ckpt_wanted = false;
        pthread_mutex_unlock(&s->ckpt_mu);
        int rc = sqlite3_wal_checkpoint_v2(
            s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY && !warned) {
            LOG_WARN(LOG_PREFIX, "could not checkpoint \"%s\": %s", s->path,
                     sqlite3_errmsg(s->ckpt_db));
            warned = true;
        }
        pthread_mutex_lock(&s->ckpt_mu);
    }
    pthread_mutex_unlock(&s->ckpt_mu);
    return NULL;
}

/* After a commit: wake the checkpointer when the WAL has grown. The log
 * restarts from its beginning only when a write begins with every frame
 * copied, which a checkpointer running behind continuous writes never
 * sees; so past the hard limit the writer itself runs a RESTART checkpoint
 * (waiting, up to busy_timeout, for the checkpointer and for readers):
 * most frames are copied already, so this is short. */
void sq_after_commit(sq_store *s)
{
    if (!s->ckpt_on || s->wal_frames < s->ckpt_soft)
        return;
    if (s->wal_frames >= s->ckpt_hard) {
        int rc = sqlite3_wal_checkpoint_v2(
            s->db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
        if (rc == SQLITE_OK)
            return;
        LOG_DEBUG(LOG_PREFIX, "could not restart the log of \"%s\": %s",
                  s->path, sqlite3_errmsg(s->db));
    }
    pthread_mutex_lock(&s->ckpt_mu);
    s->ckpt_wanted = true;
    pthread_cond_signal(&s->ckpt_cv);
    pthread_mutex_unlock(&s->ckpt_mu);
}

halo_status sq_start_checkpointer(sq_store *s, const halo_store_opts *o,
                                  halo_err *err)
{
    int page = 4096;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA page_size", -1, &st, NULL) ==
        SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0)
            page = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    s->ckpt_soft = CKPT_SOFT_BYTES / page;
    int64_t hard =
        o->wal_limit_bytes > 0 ? o->wal_limit_bytes : CKPT_HARD_BYTES;
    if (hard < CKPT_SOFT_BYTES)
        hard = CKPT_SOFT_BYTES;
    if (hard / page > INT32_MAX)
        hard = (int64_t)INT32_MAX * page;
    s->ckpt_hard = (int)(hard / page);
    if (sqlite3_open_v2(s->path, &s->ckpt_db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return halo_fail(err, HALO_EIO,
                         "could not open database \"%s\" "
                         "for checkpoints: %s",
                         s->path,
                         s->ckpt_db ? sqlite3_errmsg(s->ckpt_db) : "no memory");
    sqlite3_busy_timeout(s->ckpt_db, 1000);
    sqlite3_exec(s->ckpt_db,
                 o->synchronous == HALO_SYNC_NORMAL
                     ? "PRAGMA synchronous = NORMAL"
                     : "PRAGMA synchronous = FULL",
                 NULL, NULL, NULL);
    pthread_mutex_init(&s->ckpt_mu, NULL);
    pthread_cond_init(&s->ckpt_cv, NULL);
    if (pthread_create(&s->ckpt_thread, NULL, ckpt_main, s) != 0) {
        pthread_mutex_destroy(&s->ckpt_mu);
        pthread_cond_destroy(&s->ckpt_cv);
        return halo_fail(err, HALO_EIO, "could not start the checkpointer");
    }
    s->ckpt_on = true;
    sqlite3_wal_autocheckpoint(s->db, 0); /* the checkpointer does it */
    sqlite3_wal_hook(s->db, wal_hook, s);
    return HALO_OK;
}

void sq_stop_checkpointer(sq_store *s)
{
    if (s->ckpt_on) {
        pthread_mutex_lock(&s->ckpt_mu);
        s->ckpt_stop = true;
        pthread_cond_signal(&s->ckpt_cv);
        pthread_mutex_unlock(&s->ckpt_mu);
        pthread_join(s->ckpt_thread, NULL);
        pthread_mutex_destroy(&s->ckpt_mu);
        pthread_cond_destroy(&s->ckpt_cv);
        s->ckpt_on = false;
    }
    if (s->ckpt_db)
        sqlite3_close(s->ckpt_db);
    s->ckpt_db = NULL;
}

/* Sync a directory, so a file just created in it survives power loss. */
static int sync_dir_of(const char *file)
{
    char dir[4096];
    if (!halo_dir_of(file, dir, sizeof dir)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int datasync(int fd)
{
    int rc;
    do
        rc = fdatasync(fd);
    while (rc != 0 && errno == EINTR);
    return rc;
}

halo_status sq_open_deferred_sync(sq_store *s, halo_err *err)
{
    const char *wal = sqlite3_filename_wal(sqlite3_db_filename(s->db, "main"));
    sqlite3_stmt *st = NULL;
    bool is_wal = false;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &st, NULL) ==
        SQLITE_OK) {
        is_wal = sqlite3_step(st) == SQLITE_ROW &&
                 sqlite3_stricmp((const char *)sqlite3_column_text(st, 0),
                                 "wal") == 0;
        sqlite3_finalize(st);
    }
    if (!is_wal || !wal || !*wal)
        return halo_fail(err, HALO_EUNSUPPORTED,
                         "database \"%s\" is not in WAL mode", s->path);
    int fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return halo_fail(err, HALO_EIO,
                         "could not open the write-ahead log \"%s\": %s", wal,
                         strerror(errno));
    /* the log's first synced commit would have synced its directory entry
     * too (SQLite does it once); commits no longer sync, so do it here,
     * with the migrations' commits */
    if (sync_dir_of(wal) != 0 || datasync(fd) != 0) {
        int e = errno;
        close(fd);
        return halo_fail(err, HALO_EIO,
                         "could not sync the write-ahead log \"%s\": %s", wal,
                         strerror(e));
    }
    s->wal_fd = fd;
    s->defer_sync = true;
    return HALO_OK;
}

/* Why a failed sync is final: the failed commits are visible already (a
 * retried span would be found stored and confirmed), and Linux reports a
 * writeback error once and then marks the pages clean, so the next
 * fdatasync would succeed without those bytes on disk. */
halo_status sq_sync(halo_store *base, halo_err *err)
{
    sq_store *s = (sq_store *)base;
    if (!s->defer_sync) /* every commit synced itself */
        return HALO_OK;
    halo_status st = sq_check_synced(s, err);
    if (st != HALO_OK)
        return st;
    if (datasync(s->wal_fd) == 0)
        return HALO_OK;
    int e = errno;
    atomic_store(&s->sync_failed, true);
    LOG_ERROR(LOG_PREFIX,
              "could not sync the write-ahead log of \"%s\": %s; refusing "
              "every write until halo is restarted",
              s->path, strerror(e));
    return halo_fail(err, HALO_EIO,
                     "could not sync the write-ahead log of \"%s\": %s",
                     s->path, strerror(e));
}

halo_status sq_check_synced(sq_store *s, halo_err *err)
{
    if (!atomic_load(&s->sync_failed))
        return HALO_OK;
    return halo_fail(err, HALO_EIO,
                     "database \"%s\": an earlier sync of its write-ahead log "
                     "failed, so nothing more is accepted: restart halo",
                     s->path);
}
