/*
 * sqlite_shared.c -- resource and scope texts stored once (migration 8).
 *
 * A service's spans all carry the same resource JSON (~230 bytes) and
 * nearly always the same scope JSON (~70): a sixth of a row. The writer
 * keeps each distinct text once, as a row of shared_texts, and a span row
 * refers to it (resource_ref, scope_ref); the spans view joins the text
 * back, so readers see the row as it was.
 *
 * The cache. The ids of the texts written lately are kept in an
 * open-addressing table keyed by the text itself (its hash, then its
 * bytes). Another process may write the same file (`halo import` beside
 * `halo serve`) and its retention may delete a text, or a rollback may
 * undo an insert, so an entry is trusted only once it has been checked
 * against the table in the current write transaction (its gen): one
 * lookup by id per distinct text per transaction. Within a transaction
 * the prepared rows' texts do not move, so the last text pointer of each
 * column skips even the hash (rows of one request share one text).
 *
 * last_start. A text's last_start is at least the start time of every
 * span row that refers to it: the writer raises it (to the span's start
 * plus an hour, so that it rarely has to) before inserting a span that
 * starts later. Retention deletes spans that start before its cutoff and
 * then the texts whose last_start is before it: no remaining span refers
 * to those.
 */
#include "sqlite_int.h"

#include <stdlib.h>
#include <string.h>

/* Cache slots (a power of two); it is emptied when 3/4 full. */
#define SHARED_SLOTS 1024

typedef struct sq_shared {
    uint64_t hash;
    char *body; /* NULL: the slot is empty */
    size_t len;
    int64_t id;
    int64_t last_start;
    uint32_t gen; /* checked in this write transaction when == sh_gen */
} sq_shared;

static const char SQL_SH_GET[] =
    "SELECT id, last_start FROM shared_texts WHERE id = ?1";
static const char SQL_SH_FIND[] =
    "SELECT id, last_start FROM shared_texts WHERE body = ?1";
static const char SQL_SH_INS[] =
    "INSERT INTO shared_texts (body, last_start) VALUES (?1, ?2)";
static const char SQL_SH_BUMP[] =
    "UPDATE shared_texts SET last_start = ?2 WHERE id = ?1";
static const char SQL_SH_DEL[] =
    "DELETE FROM shared_texts WHERE last_start < ?1";

halo_status sq_shared_prepare(sq_store *s, halo_err *err)
{
    struct {
        const char *sql;
        sqlite3_stmt **out;
    } w[] = {{SQL_SH_GET, &s->sh_get},
             {SQL_SH_FIND, &s->sh_find},
             {SQL_SH_INS, &s->sh_ins},
             {SQL_SH_BUMP, &s->sh_bump},
             {SQL_SH_DEL, &s->sh_del}};
    halo_status st = HALO_OK;
    for (size_t i = 0; st == HALO_OK && i < sizeof w / sizeof *w; i++)
        st = sq_prepare_stmt(s, w[i].sql, w[i].out, err);
    return st;
}

static void clear_cache(sq_store *s)
{
    for (size_t i = 0; s->sh && i < s->sh_cap; i++) {
        free(s->sh[i].body);
        s->sh[i].body = NULL;
    }
    s->sh_n = 0;
    s->sh_last[0].p = s->sh_last[1].p = NULL;
}

void sq_shared_free(sq_store *s)
{
    clear_cache(s);
    free(s->sh);
    s->sh = NULL;
    sqlite3_stmt *stmts[] = {s->sh_get, s->sh_find, s->sh_ins, s->sh_bump,
                             s->sh_del};
    for (size_t i = 0; i < sizeof stmts / sizeof *stmts; i++)
        sqlite3_finalize(stmts[i]);
}

void sq_shared_begin(sq_store *s)
{
    s->sh_gen++;
    s->sh_last[0].p = s->sh_last[1].p = NULL;
}

static halo_status step_fail(sq_store *s, sqlite3_stmt *st, const char *what,
                             halo_err *err)
{
    halo_status ret = sq_fail(s, err, what);
    sqlite3_reset(st);
    return ret;
}

static int64_t add_slack(uint64_t start_ns)
{
    uint64_t v = start_ns + (uint64_t)SQ_SHARED_SLACK_NS;
    if (v < start_ns || v > (uint64_t)INT64_MAX)
        return INT64_MAX;
    return (int64_t)v;
}

/* Step st, a bound SELECT of (id, last_start): the row into e and
 * *found; no row leaves e as it was. */
static halo_status read_row(sq_store *s, sqlite3_stmt *st, sq_shared *e,
                            bool *found, halo_err *err)
{
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found) {
        e->id = sqlite3_column_int64(st, 0);
        e->last_start = sqlite3_column_int64(st, 1);
    } else if (rc != SQLITE_DONE) {
        return step_fail(s, st, "look up a shared text", err);
    }
    sqlite3_reset(st);
    return HALO_OK;
}

/* Find txt's row, or insert it: e->id and e->last_start from the table. */
static halo_status find_or_insert(sq_store *s, sq_shared *e, uint64_t start_ns,
                                  halo_err *err)
{
    bool found;
    sqlite3_stmt *st = s->sh_find;
    sqlite3_bind_text(st, 1, e->body, (int)e->len, SQLITE_STATIC);
    halo_status ret = read_row(s, st, e, &found, err);
    if (ret != HALO_OK || found)
        return ret;
    st = s->sh_ins;
    e->last_start = add_slack(start_ns);
    sqlite3_bind_text(st, 1, e->body, (int)e->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, e->last_start);
    if (sqlite3_step(st) != SQLITE_DONE)
        return step_fail(s, st, "insert a shared text", err);
    sqlite3_reset(st);
    e->id = sqlite3_last_insert_rowid(s->db);
    return HALO_OK;
}

/* e's row as the table has it now: gone (another writer's retention, or a
 * rolled back insert) means looking it up by its text again. */
static halo_status verify(sq_store *s, sq_shared *e, uint64_t start_ns,
                          halo_err *err)
{
    bool found;
    sqlite3_bind_int64(s->sh_get, 1, e->id);
    halo_status ret = read_row(s, s->sh_get, e, &found, err);
    if (ret != HALO_OK || found)
        return ret;
    return find_or_insert(s, e, start_ns, err);
}

/* The entry for txt, new (body copied, id 0, gen stale) if not cached. */
static sq_shared *entry_for(sq_store *s, sq_str txt, size_t *slot)
{
    if (!s->sh) {
        s->sh = calloc(SHARED_SLOTS, sizeof *s->sh);
        if (!s->sh)
            return NULL;
        s->sh_cap = SHARED_SLOTS;
    }
    size_t len = (size_t)txt.len;
    uint64_t h = halo_hash_bytes(txt.p, len);
    size_t mask = s->sh_cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        sq_shared *e = &s->sh[i];
        if (!e->body)
            break;
        if (e->hash == h && e->len == len && memcmp(e->body, txt.p, len) == 0) {
            *slot = i;
            return e;
        }
    }
    if (s->sh_n >= s->sh_cap / 4 * 3)
        clear_cache(s); /* a few distinct texts are usual: start again */
    char *body = malloc(len ? len : 1);
    if (!body)
        return NULL;
    memcpy(body, txt.p, len);
    size_t i = (size_t)h & mask;
    while (s->sh[i].body)
        i = (i + 1) & mask;
    s->sh[i] = (sq_shared){h, body, len, 0, 0, s->sh_gen - 1};
    s->sh_n++;
    *slot = i;
    return &s->sh[i];
}

halo_status sq_shared_ref(sq_store *s, int which, sq_str txt, uint64_t start_ns,
                          int64_t *id, halo_err *err)
{
    sq_shared *e;
    if (s->sh_last[which].p == txt.p && txt.p) {
        e = &s->sh[s->sh_last[which].i];
    } else {
        size_t slot;
        e = entry_for(s, txt, &slot);
        if (!e)
            return halo_fail(err, HALO_ENOMEM, "out of memory");
        if (e->gen != s->sh_gen) {
            halo_status st = e->id ? verify(s, e, start_ns, err)
                                   : find_or_insert(s, e, start_ns, err);
            if (st != HALO_OK)
                return st;
            e->gen = s->sh_gen;
        }
        s->sh_last[which].p = txt.p;
        s->sh_last[which].i = slot;
    }
    if (start_ns > (uint64_t)e->last_start && e->last_start < INT64_MAX) {
        int64_t v = add_slack(start_ns);
        sqlite3_stmt *st = s->sh_bump;
        sqlite3_bind_int64(st, 1, e->id);
        sqlite3_bind_int64(st, 2, v);
        if (sqlite3_step(st) != SQLITE_DONE)
            return step_fail(s, st, "update a shared text", err);
        sqlite3_reset(st);
        e->last_start = v;
    }
    *id = e->id;
    return HALO_OK;
}

halo_status sq_shared_expire(sq_store *s, uint64_t cutoff_ns, int64_t *deleted,
                             halo_err *err)
{
    sqlite3_stmt *st = s->sh_del;
    sqlite3_bind_int64(st, 1,
                       cutoff_ns > (uint64_t)INT64_MAX ? INT64_MAX
                                                       : (int64_t)cutoff_ns);
    if (sqlite3_step(st) != SQLITE_DONE)
        return step_fail(s, st, "delete old shared texts", err);
    *deleted = sqlite3_changes(s->db);
    sqlite3_reset(st);
    return HALO_OK;
}
