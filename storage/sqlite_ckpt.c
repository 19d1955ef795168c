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
 * sees; so past CKPT_HARD_FACTOR times the soft size the writer runs a
 * RESTART checkpoint itself (most frames are copied already, so it is
 * short). That bounds the log at about 128 MiB plus one transaction.
 */
#include "sqlite_int.h"

#include "../core/log.h"

#define LOG_PREFIX "storage:sqlite"

#define CKPT_SOFT_BYTES (32 << 20) /* WAL size that wakes the checkpointer */
#define CKPT_HARD_FACTOR 4         /* ... times that: the writer helps */

static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    ((sq_store *)ud)->wal_frames = frames;
    return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
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
    s->ckpt_hard = s->ckpt_soft * CKPT_HARD_FACTOR;
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
