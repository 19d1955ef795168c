/*
 * halo_llm_mock.c -- a scripted OpenAI-compatible chat-completions server
 * for tests, in its own process (libmicrohttpd), so the client talks HTTP
 * to it exactly as to a real model server.
 *
 *   halo-llm-mock --script FILE --record FILE [--port N]
 *
 * It prints one line, "listening 127.0.0.1:PORT", once it accepts
 * connections, then serves until SIGTERM/SIGINT.
 *
 * The script is JSON lines, one model turn each, answered in order to the
 * POSTs on /v1/chat/completions (or /chat/completions):
 *
 *   {"status": 200, "headers": {"Retry-After": "1"},
 *    "body": <object, sent as JSON | string, sent as is>,
 *    "delay_ms": 0,                      wait before answering
 *    "expect": {"contains": "text"},     else answer 400 saying so
 *    "drop": true}                       close the connection, no answer
 *
 * Every field is optional (status 200, empty body). Once the script is
 * used up every POST gets 500 {"error":{"message":"script exhausted"}};
 * other paths get 404. Every request, whatever the path, is appended to
 * the record file as one JSON line {"path", "headers": {lower-case name:
 * value}, "body": <the parsed JSON, or the text when not JSON>}, flushed
 * at once. Request bodies over 4 MiB get 413 (recorded with body null).
 *
 * One thread per connection: turns are handed out in arrival order, and a
 * turn's delay_ms does not hold up requests on other connections (so
 * parallel clients can be seen as such). Each recorded request carries
 * "t_ms", the monotonic time it arrived.
 */
#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY (4u << 20)

static const char usage[] =
    "usage: halo-llm-mock --script FILE --record FILE [--port N]\n"
    "  --script FILE   JSON lines, one scripted model turn each\n"
    "  --record FILE   every request is appended here as a JSON line\n"
    "  --port N        listen on 127.0.0.1:N (default 0: any free port)\n";

typedef struct turn {
    int status;
    json_t *headers; /* object of strings, or NULL */
    char *body;      /* what is sent */
    long delay_ms;
    char *expect; /* the request body must contain this */
    bool drop;
} turn;

static turn *turns;
static size_t n_turns, next_turn;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* turns, record */
static FILE *record;

typedef struct req {
    char *data;
    size_t len;
    bool too_big;
} req;

/* ---- the script ------------------------------------------------------- */

static bool load_turn(json_t *v, turn *t, size_t line)
{
    json_t *st = json_object_get(v, "status");
    json_t *body = json_object_get(v, "body");
    json_t *hd = json_object_get(v, "headers");
    json_t *delay = json_object_get(v, "delay_ms");
    json_t *exp = json_object_get(json_object_get(v, "expect"), "contains");
    if (!json_is_object(v) || (st && !json_is_integer(st)) ||
        (hd && !json_is_object(hd)) || (delay && !json_is_integer(delay)) ||
        (exp && !json_is_string(exp))) {
        fprintf(stderr, "halo-llm-mock: script line %zu: invalid turn\n", line);
        return false;
    }
    t->status = st ? (int)json_integer_value(st) : 200;
    if (t->status < 100 || t->status > 599) {
        fprintf(stderr, "halo-llm-mock: script line %zu: invalid status\n",
                line);
        return false;
    }
    t->headers = hd ? json_incref(hd) : NULL;
    t->delay_ms = delay ? (long)json_integer_value(delay) : 0;
    t->expect = exp ? strdup(json_string_value(exp)) : NULL;
    t->drop = json_is_true(json_object_get(v, "drop"));
    if (json_is_string(body))
        t->body = strdup(json_string_value(body));
    else if (body)
        t->body = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    else
        t->body = strdup("");
    return t->body != NULL;
}

static bool load_script(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "halo-llm-mock: could not open %s: %s\n", path,
                strerror(errno));
        return false;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    bool ok = true;
    while (ok && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)n)
            continue;
        json_error_t je;
        json_t *v = json_loadb(line, (size_t)n, 0, &je);
        turn *nt = realloc(turns, (n_turns + 1) * sizeof *turns);
        if (!v || !nt) {
            fprintf(stderr, "halo-llm-mock: script line %zu: %s\n", lineno,
                    v ? "out of memory" : je.text);
            if (nt)
                turns = nt;
            json_decref(v);
            ok = false;
            break;
        }
        turns = nt;
        memset(&turns[n_turns], 0, sizeof *turns);
        ok = load_turn(v, &turns[n_turns++], lineno);
        json_decref(v);
    }
    free(line);
    fclose(f);
    return ok;
}

/* ---- recording ---------------------------------------------------------- */

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *value)
{
    (void)kind;
    json_t *o = cls;
    char name[128];
    size_t i = 0;
    for (; key[i] && i + 1 < sizeof name; i++)
        name[i] =
            (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] + 32 : key[i]);
    name[i] = '\0';
    json_object_set_new(o, name, json_string(value ? value : ""));
    return MHD_YES;
}

static void record_request(struct MHD_Connection *conn, const char *path,
                           const req *r)
{
    json_t *hd = json_object();
    MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header, hd);
    json_t *body = NULL;
    if (r && !r->too_big && r->len) {
        body = json_loadb(r->data, r->len, 0, NULL);
        if (!body)
            body = json_stringn(r->data, r->len);
        if (!body)
            body = json_string("(not UTF-8)");
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    json_int_t t_ms = (json_int_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    json_t *line =
        json_pack("{s:s, s:o, s:o, s:I}", "path", path, "headers", hd, "body",
                  body ? body : json_null(), "t_ms", t_ms);
    if (line) {
        pthread_mutex_lock(&mu);
        json_dumpf(line, record, JSON_COMPACT | JSON_ENSURE_ASCII);
        fputc('\n', record);
        fflush(record);
        pthread_mutex_unlock(&mu);
        json_decref(line);
    }
}

/* ---- answering ------------------------------------------------------------
 */

static enum MHD_Result answer(struct MHD_Connection *conn, int status,
                              const char *body, const json_t *headers)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)headers, k, v)
    {
        if (json_is_string(v))
            MHD_add_response_header(resp, k, json_string_value(v));
    }
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result error_answer(struct MHD_Connection *conn, int status,
                                    const char *msg)
{
    json_t *o = json_pack("{s:{s:s, s:s}}", "error", "message", msg, "type",
                          "mock_error");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    enum MHD_Result rc = answer(conn, status, s ? s : "{}", NULL);
    free(s);
    json_decref(o);
    return rc;
}

static bool has_text(const req *r, const char *needle)
{
    return r->data && memmem(r->data, r->len, needle, strlen(needle));
}

static enum MHD_Result play(struct MHD_Connection *conn, const req *r)
{
    if (r->too_big)
        return error_answer(conn, 413, "request body too large");
    /* turns go out in arrival order; a turn's delay does not hold up the
     * next request (one thread per connection) */
    pthread_mutex_lock(&mu);
    const turn *t = next_turn < n_turns ? &turns[next_turn++] : NULL;
    pthread_mutex_unlock(&mu);
    if (!t)
        return error_answer(conn, 500, "script exhausted");
    if (t->delay_ms > 0) {
        struct timespec ts = {t->delay_ms / 1000,
                              (t->delay_ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    if (t->drop)
        return MHD_NO;
    if (t->expect && !has_text(r, t->expect)) {
        char msg[600];
        snprintf(msg, sizeof msg, "expected the request to contain %.500s",
                 t->expect);
        return error_answer(conn, 400, msg);
    }
    return answer(conn, t->status, t->body, t->headers);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_big && r->len + *upload_size <= MAX_BODY) {
            char *d = realloc(r->data, r->len + *upload_size + 1);
            if (!d)
                return MHD_NO;
            memcpy(d + r->len, upload, *upload_size);
            r->data = d;
            r->len += *upload_size;
            r->data[r->len] = '\0';
        } else {
            r->too_big = true;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    record_request(conn, url, r);
    bool chat = !strcmp(url, "/v1/chat/completions") ||
                !strcmp(url, "/chat/completions");
    if (!chat)
        return error_answer(conn, 404, "no such path");
    if (strcmp(method, "POST") != 0)
        return error_answer(conn, 405, "POST only");
    return play(conn, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    req *r = *con_cls;
    if (r) {
        free(r->data);
        free(r);
    }
    *con_cls = NULL;
}

/* ---- main ------------------------------------------------------------------
 */

static int listen_on(int port, int *out_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        close(fd);
        return -1;
    }
    *out_port = ntohs(a.sin_port);
    return fd;
}

int main(int argc, char **argv)
{
    const char *script = NULL, *rec = NULL;
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--script") && i + 1 < argc)
            script = argv[++i];
        else if (!strcmp(argv[i], "--record") && i + 1 < argc)
            rec = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!script || !rec || port < 0 || port > 65535) {
        fputs(usage, stderr);
        return 2;
    }
    if (!load_script(script))
        return 2;
    record = fopen(rec, "a");
    if (!record) {
        fprintf(stderr, "halo-llm-mock: could not open %s: %s\n", rec,
                strerror(errno));
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the server thread inherits */
    signal(SIGPIPE, SIG_IGN);
    int bound;
    int fd = listen_on(port, &bound);
    if (fd < 0) {
        fprintf(stderr, "halo-llm-mock: could not listen on port %d: %s\n",
                port, strerror(errno));
        return 1;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
            MHD_USE_AUTO | MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "halo-llm-mock: could not start the http server\n");
        return 1;
    }
    printf("listening 127.0.0.1:%d\n", bound);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    fclose(record);
    for (size_t i = 0; i < n_turns; i++) {
        json_decref(turns[i].headers);
        free(turns[i].body);
        free(turns[i].expect);
    }
    free(turns);
    return 0;
}
