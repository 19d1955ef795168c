/*
 * cmd_import.c -- `halo import FILE...`: load span files into the store.
 *
 * Files are read line by line through zlib's gz reader, which reads plain
 * and gzip-compressed files alike. A line is either an OTLP/JSON
 * ExportTraceServiceRequest (it has "resourceSpans") or one flat span
 * object (HALO-style JSONL); a file whose first line is an incomplete
 * object is tried as one document over several lines (try_document).
 * Lines are grouped into batches of about
 * IMPORT_BATCH_SPANS spans and fed into the configured pipelines exactly as
 * a receiver would (processors, then exporters), with a few batches in
 * flight. A batch refused retryably (store busy, memory limit) is decoded
 * again from its kept lines and resent after a pause: nothing decoded is
 * dropped. A malformed line is reported as FILE:LINE and skipped; the rest
 * of the file is still imported, and the exit code is 1.
 */
#include "cli.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "receivers/otlp/otlp_codec.h"
#include "service.h"
#include "storage/store.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define IMPORT_BATCH_SPANS 4096
#define IMPORT_BATCH_BYTES (8u << 20)
#define IMPORT_INFLIGHT 4
#define IMPORT_MAX_RETRIES 20
#define IMPORT_DOC_MAX (64u << 20) /* a multi-line document, at most */

typedef struct job job;

typedef struct importer {
    halo_component *entry;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inflight;
    job *retry; /* batches refused retryably, to send again */
    int64_t spans_ok;
    int64_t spans_failed;
    int64_t lines_rejected;
    int64_t spans_rejected;
    bool failed_hard;
    char first_error[HALO_ERR_MAX];
} importer;

/* The lines of one batch, kept until the batch is acknowledged. */
struct job {
    importer *im;
    halo_buf lines; /* lines separated by '\n' */
    int64_t n_spans;
    int tries;
    job *next;
};

static void job_free(job *j)
{
    halo_buf_free(&j->lines);
    free(j);
}

static void on_ack(void *ud, halo_status st, const char *msg)
{
    job *j = ud;
    importer *im = j->im;
    pthread_mutex_lock(&im->mu);
    im->inflight--;
    if (st == HALO_OK) {
        im->spans_ok += j->n_spans;
        job_free(j);
    } else if (halo_status_retryable(st) && j->tries < IMPORT_MAX_RETRIES) {
        j->next = im->retry;
        im->retry = j;
    } else {
        im->spans_failed += j->n_spans;
        if (!im->first_error[0])
            snprintf(im->first_error, sizeof im->first_error, "%s", msg);
        im->failed_hard = true;
        job_free(j);
    }
    pthread_cond_broadcast(&im->cv);
    pthread_mutex_unlock(&im->mu);
}

static bool is_otlp(const char *line, size_t len)
{
    return memmem(line, len, "\"resourceSpans\"", 15) ||
           memmem(line, len, "\"resource_spans\"", 16);
}

static halo_status decode_line(const char *line, size_t len, halo_arena *a,
                               halo_otlp_result *res, halo_err *err)
{
    memset(res, 0, sizeof *res);
    if (is_otlp(line, len))
        return halo_otlp_decode_json(line, len, a, res, err);
    return halo_span_decode_jsonl(line, len, a, res, err);
}

static void die_oom(void)
{
    fprintf(stderr, "halo import: out of memory\n");
    exit(HALO_EXIT_RUNTIME);
}

/* Decode a job's lines into a batch and send it. Lines were validated when
 * they were read, so decoding again cannot fail but for memory. Each line
 * gets its own arena, as each request does in a receiver: processors
 * (agent_identity) write derived strings into the arena of a span's chunk,
 * so every chunk must own one. */
static void send_job(importer *im, job *j)
{
    halo_batch *b = halo_batch_new();
    halo_ack *ack = halo_ack_new(on_ack, j);
    if (!b || !ack)
        die_oom();
    const char *p = j->lines.data, *end = j->lines.data + j->lines.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)(nl - p);
        halo_arena *a = halo_arena_new(len * 2 + 1024);
        halo_otlp_result res;
        halo_err err = {{0}};
        if (!a || decode_line(p, len, a, &res, &err) != HALO_OK)
            die_oom(); /* decoded fine when read: only memory can fail */
        if (!res.n)
            halo_arena_free(a);
        else if (halo_batch_add_chunk(b, a, res.spans, res.n) != HALO_OK)
            die_oom(); /* the batch freed a */
        p = nl + 1;
    }
    if (halo_batch_add_ack(b, ack) != HALO_OK)
        die_oom();
    j->tries++;
    pthread_mutex_lock(&im->mu);
    im->inflight++;
    pthread_mutex_unlock(&im->mu);
    halo_ack_unref(ack); /* the batch holds it now */
    halo_emit(im->entry, b);
}

/* Wait until fewer than `max` batches are in flight, resending refused ones
 * (after a pause that grows with their tries). */
static void wait_inflight(importer *im, int max)
{
    pthread_mutex_lock(&im->mu);
    for (;;) {
        if (im->retry) {
            job *j = im->retry;
            im->retry = j->next;
            pthread_mutex_unlock(&im->mu);
            struct timespec pause = {0, 50000000L *
                                            (j->tries < 10 ? j->tries : 10)};
            nanosleep(&pause, NULL); /* back-off before retrying a refusal */
            send_job(im, j);
            pthread_mutex_lock(&im->mu);
            continue;
        }
        if (im->inflight < max)
            break;
        pthread_cond_wait(&im->cv, &im->mu);
    }
    pthread_mutex_unlock(&im->mu);
}

typedef struct progress {
    bool tty;
    const char *file;
    int64_t size;
    uint64_t last_ns;
} progress;

static void show_progress(progress *pg, gzFile gz, importer *im, bool final)
{
    if (!pg->tty)
        return;
    uint64_t t = halo_mono_ns();
    if (!final && t - pg->last_ns < 100000000u)
        return;
    pg->last_ns = t;
    long off = (long)gzoffset(gz);
    pthread_mutex_lock(&im->mu);
    long long ok = (long long)im->spans_ok;
    pthread_mutex_unlock(&im->mu);
    int pct = pg->size > 0 ? (int)(100.0 * (double)off / (double)pg->size) : 0;
    if (pct > 100)
        pct = 100;
    char bar[31];
    int fill = pct * 30 / 100;
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r%s [%s] %3d%%  %lld spans stored", pg->file, bar, pct,
            ok);
    if (final)
        fputc('\n', stderr);
}

/* Read one whole line of any length into *buf; false at EOF. */
static bool read_line(gzFile gz, halo_buf *buf)
{
    halo_buf_reset(buf);
    char chunk[65536];
    for (;;) {
        if (!gzgets(gz, chunk, sizeof chunk))
            return buf->len > 0;
        size_t n = strlen(chunk);
        halo_buf_append(buf, chunk, n);
        if (n && chunk[n - 1] == '\n') {
            buf->data[--buf->len] = '\0';
            if (buf->len && buf->data[buf->len - 1] == '\r')
                buf->data[--buf->len] = '\0';
            return true;
        }
    }
}

/* A file that is one JSON document over several lines (pretty-printed, as
 * editors and `jq .` write it) rather than one per line: *doc gets first
 * (the file's first line) and the rest of gz, with its line breaks turned
 * into spaces (JSON allows them between tokens, never raw inside a
 * string). False when the file holds more than IMPORT_DOC_MAX bytes or
 * cannot be read: the caller then goes on line by line. */
static bool read_document(gzFile gz, const halo_buf *first, halo_buf *doc)
{
    halo_buf_reset(doc);
    halo_buf_append(doc, first->data, first->len);
    halo_buf_putc(doc, ' ');
    char chunk[65536];
    int n;
    while ((n = gzread(gz, chunk, sizeof chunk)) > 0) {
        if (doc->len + (size_t)n > IMPORT_DOC_MAX)
            return false;
        halo_buf_append(doc, chunk, (size_t)n);
    }
    if (n < 0 || doc->oom)
        return false;
    for (size_t i = 0; i < doc->len; i++)
        if (doc->data[i] == '\n' || doc->data[i] == '\r')
            doc->data[i] = ' ';
    return true;
}

/* Does s start an object that it does not close? Brackets are counted
 * outside strings: a line that is a whole object, however malformed
 * inside, is reported as a bad line, not taken for a document's start. */
static bool opens_object(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == n || s[i] != '{')
        return false;
    long depth = 0;
    bool in_str = false;
    for (; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if ((ch == '}' || ch == ']') && --depth == 0) {
            return false;
        }
    }
    return depth > 0;
}

/* After the file's first line failed to decode as an object it does not
 * close: is the file one document over several lines? 1: yes, *line now
 * holds it, decoded into *res from *scratch (the read reached the end of
 * gz); 0: no, gz is rewound to be read line by line; -1: no, and gz cannot
 * be rewound (a pipe). */
static int try_document(gzFile gz, halo_buf *line, halo_arena **scratch,
                        halo_otlp_result *res)
{
    halo_buf doc = HALO_BUF_INIT;
    if (read_document(gz, line, &doc)) {
        halo_arena *da = halo_arena_new(doc.len * 2 + 4096);
        halo_err derr = {{0}};
        if (decode_line(doc.data, doc.len, da, res, &derr) == HALO_OK) {
            halo_buf_free(line);
            *line = doc;
            halo_arena_free(*scratch);
            *scratch = da;
            return 1;
        }
        halo_arena_free(da);
    }
    halo_buf_free(&doc);
    return gzrewind(gz) == 0 ? 0 : -1;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    return true;
}

static job *job_new(importer *im)
{
    job *j = calloc(1, sizeof *j);
    if (!j)
        die_oom();
    j->im = im;
    return j;
}

static int import_file(importer *im, const char *path)
{
    bool std_in = strcmp(path, "-") == 0;
    int fd = std_in ? dup(STDIN_FILENO) : -1;
    gzFile gz =
        std_in ? (fd >= 0 ? gzdopen(fd, "rb") : NULL) : gzopen(path, "rb");
    if (std_in && !gz && fd >= 0)
        close(fd);
    if (std_in)
        path = "<stdin>";
    if (!gz) {
        fprintf(stderr, "halo import: could not open \"%s\": %s\n", path,
                strerror(errno ? errno : ENOENT));
        return -1;
    }
    gzbuffer(gz, 1 << 20);
    struct stat st;
    progress pg = {isatty(STDERR_FILENO), path,
                   !std_in && stat(path, &st) == 0 ? (int64_t)st.st_size : 0,
                   0};
    halo_buf line = HALO_BUF_INIT;
    halo_arena *scratch = halo_arena_new(1 << 16);
    job *j = job_new(im);
    long lineno = 0;
    int rc = 0;
    bool first = true; /* no line that is not blank read yet */
    while (read_line(gz, &line)) {
        lineno++;
        if (line.oom) {
            fprintf(stderr, "halo import: out of memory\n");
            exit(HALO_EXIT_RUNTIME);
        }
        if (blank(line.data, line.len))
            continue;
        halo_otlp_result res;
        halo_err err = {{0}};
        halo_arena_free(scratch);
        scratch = halo_arena_new(line.len * 2 + 4096);
        halo_status ds = decode_line(line.data, line.len, scratch, &res, &err);
        if (ds != HALO_OK && first && opens_object(line.data, line.len)) {
            /* perhaps the file is one document over several lines; if not,
             * it is read again line by line and each bad line reported */
            first = false;
            int doc = try_document(gz, &line, &scratch, &res);
            if (doc == 0) {
                lineno = 0;
                continue;
            }
            if (doc < 0) {
                fprintf(stderr,
                        "%s%s: not one JSON document, and cannot be read "
                        "again line by line (a pipe?): nothing imported "
                        "from it\n",
                        pg.tty ? "\n" : "", path);
                rc = -1;
                break;
            }
            ds = HALO_OK;
        }
        if (ds != HALO_OK) {
            fprintf(stderr, "%s%s:%ld: %s\n", pg.tty ? "\n" : "", path, lineno,
                    err.msg);
            im->lines_rejected++;
            first = false;
            continue;
        }
        first = false;
        if (res.rejected) {
            fprintf(stderr, "%s%s:%ld: %lld span(s) rejected: %s\n",
                    pg.tty ? "\n" : "", path, lineno, (long long)res.rejected,
                    res.reject_msg);
            im->spans_rejected += res.rejected;
        }
        if (!res.n)
            continue;
        halo_buf_append(&j->lines, line.data, line.len);
        halo_buf_putc(&j->lines, '\n');
        if (j->lines.oom)
            die_oom();
        j->n_spans += (int64_t)res.n;
        if (j->n_spans >= IMPORT_BATCH_SPANS ||
            j->lines.len >= IMPORT_BATCH_BYTES) {
            wait_inflight(im, IMPORT_INFLIGHT);
            send_job(im, j);
            j = job_new(im);
        }
        show_progress(&pg, gz, im, false);
    }
    int errnum = 0;
    const char *gzerr = gzerror(gz, &errnum);
    if (errnum != Z_OK && errnum != Z_STREAM_END) {
        fprintf(stderr, "%s%s:%ld: could not read: %s\n", pg.tty ? "\n" : "",
                path, lineno + 1, errnum == Z_ERRNO ? strerror(errno) : gzerr);
        rc = -1;
    } else if (first && rc == 0) { /* no line that is not blank */
        fprintf(stderr, "%s%s: empty: no spans in this file\n",
                pg.tty ? "\n" : "", path);
    }
    if (j->n_spans) {
        wait_inflight(im, IMPORT_INFLIGHT);
        send_job(im, j);
    } else {
        job_free(j);
    }
    wait_inflight(im, 1);
    show_progress(&pg, gz, im, true);
    halo_arena_free(scratch);
    halo_buf_free(&line);
    gzclose(gz);
    return rc;
}

/* s as a YAML double-quoted scalar that the config's ${env:...}
 * substitution leaves alone ($ doubled). */
static void yaml_literal(halo_buf *b, const char *s)
{
    halo_buf raw = HALO_BUF_INIT;
    for (; *s; s++) {
        if (*s == '$')
            halo_buf_putc(&raw, '$');
        halo_buf_putc(&raw, *s);
    }
    halo_buf_json_str(b, raw.data ? raw.data : "", raw.len);
    halo_buf_free(&raw);
}

/* A minimal pipeline into one store, for `--store SPEC` / `--db PATH`:
 * sqlite:PATH -> the sqlite exporter, postgresql://... or postgres:KV ->
 * the postgres exporter. NULL (err set) for any other spec. */
static char *store_config(const char *spec, halo_err *err)
{
    halo_buf b = HALO_BUF_INIT;
    halo_buf_puts(&b, "processors:\n  agent_identity: {}\n  batch: {}\n"
                      "exporters:\n");
    const char *exp, *target;
    halo_store_kind kind = halo_store_spec_parse(spec, &target);
    if (kind == HALO_STORE_SQLITE) {
        exp = "sqlite";
        halo_buf_puts(&b, "  sqlite:\n    path: ");
        yaml_literal(&b, target);
    } else if (kind == HALO_STORE_POSTGRES) {
        exp = "postgres";
        halo_buf_puts(&b, "  postgres:\n    dsn: ");
        yaml_literal(&b, target);
    } else {
        halo_buf_free(&b);
        halo_errf(err, "invalid store: expected postgresql://..., "
                       "postgres:KEY=VALUE... or sqlite:PATH");
        return NULL;
    }
    halo_buf_printf(&b,
                    "\n    retention: 0s\nservice:\n  pipelines:\n"
                    "    traces:\n      receivers: [otlp]\n"
                    "      processors: [agent_identity, batch]\n"
                    "      exporters: [%s]\nreceivers:\n  otlp:\n"
                    "    protocols: {grpc: {}}\n",
                    exp);
    return halo_buf_steal(&b);
}

/* Can some file be read? When none can, each is named with the reason,
 * before the store is opened (a new SQLite store would be created for
 * nothing). Only stat and access: a FIFO is not opened twice. */
static bool any_readable(int n, char **paths)
{
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (strcmp(paths[i], "-") == 0 ||
            (stat(paths[i], &st) == 0 && !S_ISDIR(st.st_mode) &&
             access(paths[i], R_OK) == 0))
            return true;
    }
    for (int i = 0; i < n; i++) {
        struct stat st;
        const char *why = stat(paths[i], &st) != 0      ? strerror(errno)
                          : S_ISDIR(st.st_mode)         ? "it is a directory"
                          : access(paths[i], R_OK) != 0 ? strerror(errno)
                                                        : "unreadable";
        fprintf(stderr, "halo import: could not open \"%s\": %s\n", paths[i],
                why);
    }
    fprintf(stderr, "halo import: no file could be read; nothing imported\n");
    return false;
}

static const char import_help[] =
    "usage: halo import [--config FILE | --store S | --db PATH] FILE...\n\n"
    "Load spans from files into the store, through the configuration's\n"
    "pipelines (agent_identity, batch, exporters) as if they had arrived over\n"
    "OTLP. Each line of a file is either an OTLP/JSON "
    "ExportTraceServiceRequest\n"
    "(what `halo export` writes) or one span as a flat JSON object "
    "(HALO-style\n"
    "JSONL; the spans table's column names: derived columns it gives, such\n"
    "as agent_id or model, are stored as given, unless agent_identity has\n"
    "override on; through Kafka only its attributes travel). A file may also\n"
    "be one JSON document over several lines (pretty-printed). Files may be\n"
    "gzip-compressed. A FILE of - is standard input:\n"
    "`halo export --trace-id ID --db a.db | halo import --db b.db -`.\n"
    "A malformed line is reported as FILE:LINE and skipped.\n\n"
    "  -c, --config FILE  configuration whose pipelines receive the spans\n"
    "                     (default: $HALO_CONFIG, else the embedded default)\n"
    "      --store S      import straight into this store:\n"
    "                     postgresql://USER@HOST:PORT/DB (a libpq URI),\n"
    "                     postgres:KEY=VALUE... or sqlite:PATH\n"
    "      --db PATH      import straight into this SQLite database\n"
    "  -h, --help         this help\n\n"
    "Exit status: 0 when every line was imported, 1 when any line or span\n"
    "was rejected or could not be stored, 2 on usage errors.\n";

int halo_cmd_import(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"db", required_argument, 0, 'd'},
                                         {"store", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *config = NULL, *db = NULL, *store = NULL;
    int c;
    optind = 0;
    opterr = 0;
    static const char optstring[] = ":c:h";
    while ((c = getopt_long(argc, argv, optstring, opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'd':
            db = optarg;
            break;
        case 's':
            store = optarg;
            break;
        case 'h':
            fputs(import_help, stdout);
            return HALO_EXIT_OK;
        default:
            return halo_cli_option_error("import", c, argv, optstring);
        }
    }
    if (optind >= argc) {
        fprintf(stderr,
                "halo import: no file given (see halo import --help)\n");
        return HALO_EXIT_USAGE;
    }
    if (!!config + !!db + !!store > 1)
        return halo_cli_usage_error("import", "%s",
                                    "--config, --store and --db exclude each "
                                    "other");
    int urc = halo_cli_check_store_opts("import", store, db);
    if (urc >= 0)
        return urc;
    halo_log_set_level(HALO_LOG_WARN);
    halo_errlist errs = {0};
    halo_node *root = NULL;
    if (db || store) {
        halo_err serr = {{0}};
        char *spec = halo_cli_store_spec(store, db, NULL, &serr);
        char *text = spec ? store_config(spec, &serr) : NULL;
        free(spec);
        if (!text) {
            fprintf(stderr, "halo import: %s\n", serr.msg);
            return HALO_EXIT_USAGE;
        }
        root = halo_config_parse(text, strlen(text),
                                 store ? "<--store>" : "<--db>", &errs);
        free(text);
    } else {
        root = halo_cli_load_config(config, &errs);
    }
    halo_service *svc = halo_cli_build_service(root, &errs, false);
    halo_err err = {{0}};
    if (svc && !any_readable(argc - optind, argv + optind)) {
        halo_service_free(svc);
        halo_node_free(root);
        return HALO_EXIT_RUNTIME;
    }
    if (!svc || halo_service_start(svc, 0, &err) != HALO_OK) {
        if (svc)
            fprintf(stderr, "halo import: could not start: %s\n", err.msg);
        halo_service_free(svc);
        halo_node_free(root);
        return HALO_EXIT_RUNTIME;
    }
    importer im = {0};
    im.entry = halo_service_entry(svc);
    pthread_mutex_init(&im.mu, NULL);
    pthread_cond_init(&im.cv, NULL);
    uint64_t t0 = halo_mono_ns();
    int files_failed = 0;
    for (int i = optind; i < argc; i++)
        if (import_file(&im, argv[i]) != 0)
            files_failed++;
    wait_inflight(&im, 1);
    halo_service_shutdown(svc);
    double secs = (double)(halo_mono_ns() - t0) / 1e9;
    /* spans the store already held (a file imported twice): stored once */
    long long dup = (long long)halo_metric_family_sum(
        "halo_exporter_duplicate_spans_total");
    char already[64] = "";
    if (dup > 0)
        snprintf(already, sizeof already, " (%lld of them already stored)",
                 dup);
    fprintf(stderr,
            "imported %lld span%s%s from %d file(s) in %.2fs; %lld line(s) "
            "rejected, %lld span(s) rejected, %lld span(s) not stored\n",
            (long long)im.spans_ok, im.spans_ok == 1 ? "" : "s", already,
            argc - optind - files_failed, secs, (long long)im.lines_rejected,
            (long long)im.spans_rejected, (long long)im.spans_failed);
    if (im.first_error[0])
        fprintf(stderr, "halo import: could not store spans: %s\n",
                im.first_error);
    halo_service_free(svc);
    halo_node_free(root);
    pthread_mutex_destroy(&im.mu);
    pthread_cond_destroy(&im.cv);
    bool bad = files_failed || im.lines_rejected || im.spans_rejected ||
               im.spans_failed;
    return bad ? HALO_EXIT_RUNTIME : HALO_EXIT_OK;
}
