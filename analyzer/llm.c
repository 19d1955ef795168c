/*
 * llm.c -- the chat-completions client over libcurl (llm.h).
 *
 * One curl easy handle per client, reset before each request so no option
 * leaks from one to the next while its connection cache (keep-alive to
 * the model server) survives. The request body is built once per call and
 * re-sent by each attempt.
 *
 * Retry policy. An attempt ends in one of:
 *   - 2xx: decode the reply; done (a reply that does not decode is
 *     HALO_EINVAL: sending the same request again would not fix it);
 *   - 408, 429, 500, 502, 503, 504, or a transport error that may clear
 *     (refused, reset, timed out, nothing received): retry;
 *   - any other status: HALO_EINVAL with the server's own message;
 *   - a reply over HALO_LLM_MAX_REPLY: HALO_ETOOBIG;
 *   - other transport errors (TLS verification, bad URL): HALO_EIO.
 * The wait before retry k (1-based) is what the server asked for
 * (retry-after-ms, else Retry-After as seconds or an HTTP-date), else
 * 0.5 s * 2^(k-1) capped at 30 s, times a jitter in [0.5, 1). Every
 * attempt's curl timeout is what remains of cfg->timeout, and a wait that
 * would use up the rest ends the call with HALO_ERETRY at once.
 *
 * Secrets. The API key is only ever copied into the Authorization header
 * line; error texts that come from the server are scrubbed of it (some
 * servers echo a rejected key), and header values are never logged.
 */
#include "llm.h"
#include "llm_int.h"

#include "../core/buf.h"
#include "../core/clock.h"
#include "../core/log.h"
#include "../core/secret.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PREFIX "analyzer:llm"
#define BACKOFF_BASE_NS 500000000ull
#define BACKOFF_MAX_NS 30000000000ull
#define CONNECT_MAX_MS 10000L

struct halo_llm {
    CURL *curl;
    char *base_url; /* without a trailing slash; safe to log */
    char *url;      /* base_url + "/chat/completions" */
    char *model;
    char *api_key;           /* NULL: none */
    struct curl_slist *hdrs; /* request headers, Authorization included */
    int64_t timeout_ns;
    double temperature;
    int64_t max_tokens;
    int max_retries;
    uint64_t rng;
    uint64_t next_id; /* generated tool-call ids */
    /* one attempt's results */
    halo_buf in;
    bool too_big;
    char retry_after[64];    /* Retry-After's value */
    char retry_after_ms[64]; /* retry-after-ms's value */
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- configuration ---------------------------------------------------- */

/* base_url for messages: a password in its user info and secret query
 * keys masked (the one redaction of core/secret.h). */
static void safe_url(const char *url, char *buf, size_t cap)
{
    halo_redact_url(url, buf, cap);
}

static bool has_part(CURLU *u, CURLUPart part)
{
    char *v = NULL;
    CURLUcode rc = curl_url_get(u, part, &v, 0);
    bool has = rc == CURLUE_OK && v && *v;
    curl_free(v);
    return has;
}

static halo_status check_base_url(const char *url, halo_err *err)
{
    char shown[400];
    if (!url || !*url)
        return halo_fail(err, HALO_EINVAL, "llm.base_url is required");
    safe_url(url, shown, sizeof shown);
    CURLU *u = curl_url();
    if (!u)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    halo_status st = HALO_OK;
    char *scheme = NULL;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (rc != CURLUE_OK) {
        st = halo_fail(err, HALO_EINVAL, "invalid llm.base_url \"%s\": %s",
                       shown, curl_url_strerror(rc));
        goto cleanup;
    }
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (!scheme || (strcasecmp(scheme, "http") && strcasecmp(scheme, "https")))
        st = halo_fail(err, HALO_EINVAL,
                       "invalid llm.base_url \"%s\": expected an http:// or "
                       "https:// URL",
                       shown);
    else if (!has_part(u, CURLUPART_HOST))
        st = halo_fail(err, HALO_EINVAL, "invalid llm.base_url \"%s\": no host",
                       shown);
    else if (has_part(u, CURLUPART_USER) || has_part(u, CURLUPART_PASSWORD))
        st = halo_fail(err, HALO_EINVAL,
                       "invalid llm.base_url \"%s\": credentials do not "
                       "belong in the URL; set llm.api_key or llm.headers",
                       shown);
    else if (has_part(u, CURLUPART_QUERY) || has_part(u, CURLUPART_FRAGMENT))
        st = halo_fail(err, HALO_EINVAL,
                       "invalid llm.base_url \"%s\": a query or fragment "
                       "cannot be extended with /chat/completions",
                       shown);
cleanup:
    curl_free(scheme);
    curl_url_cleanup(u);
    return st;
}

/* "Name: value": an RFC 9110 token, a colon, a value without CR/LF/NUL. */
static halo_status check_header(const char *h, size_t i, bool has_key,
                                halo_err *err)
{
    const char *colon = strchr(h, ':');
    if (!colon || colon == h)
        return halo_fail(err, HALO_EINVAL,
                         "invalid llm.headers[%zu]: expected \"Name: value\"",
                         i);
    for (const char *p = h; p < colon; p++)
        if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p))
            return halo_fail(err, HALO_EINVAL,
                             "invalid llm.headers[%zu]: the name has a "
                             "character that is not allowed (0x%02x)",
                             i, (unsigned char)*p);
    if (strpbrk(colon, "\r\n"))
        return halo_fail(err, HALO_EINVAL,
                         "invalid llm.headers[%zu]: the value has a line "
                         "break",
                         i);
    if (has_key && (size_t)(colon - h) == strlen("Authorization") &&
        !strncasecmp(h, "Authorization", (size_t)(colon - h)))
        return halo_fail(err, HALO_EINVAL,
                         "invalid llm.headers[%zu]: Authorization is already "
                         "sent for llm.api_key; set one or the other",
                         i);
    return HALO_OK;
}

static bool add_header(struct curl_slist **l, const char *line)
{
    struct curl_slist *n = curl_slist_append(*l, line);
    if (!n)
        return false;
    *l = n;
    return true;
}

/* A header whose name is a secret's (x-api-key, authorization): its value
 * is scrubbed from every message, as llm.api_key is. */
static void register_header_secret(const char *h)
{
    const char *colon = strchr(h, ':');
    if (!colon || !halo_secret_name_n(h, (size_t)(colon - h)))
        return;
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    halo_secret_register(v);
    const char *sp = strchr(v, ' '); /* "Bearer TOKEN": the token alone */
    if (sp)
        halo_secret_register(sp + 1);
}

static halo_status build_headers(halo_llm *c, const halo_llm_cfg *cfg,
                                 halo_err *err)
{
    bool ok = add_header(&c->hdrs, "Content-Type: application/json") &&
              add_header(&c->hdrs, "Accept: application/json") &&
              add_header(&c->hdrs, "Expect:");
    for (size_t i = 0; ok && i < cfg->headers.n; i++) {
        ok = add_header(&c->hdrs, cfg->headers.items[i]);
        register_header_secret(cfg->headers.items[i]);
    }
    if (ok && c->api_key) {
        halo_buf b = HALO_BUF_INIT;
        halo_buf_printf(&b, "Authorization: Bearer %s", c->api_key);
        ok = !b.oom && add_header(&c->hdrs, b.data);
        if (b.data)
            memset(b.data, 0, b.len);
        halo_buf_free(&b);
    }
    return ok ? HALO_OK : halo_fail(err, HALO_ENOMEM, "out of memory");
}

bool halo_llm_configured(const halo_llm_cfg *cfg)
{
    return cfg && cfg->base_url && *cfg->base_url;
}

halo_status halo_llm_check_cfg(const halo_llm_cfg *cfg, halo_err *err)
{
    halo_status st = check_base_url(cfg->base_url, err);
    if (st != HALO_OK)
        return st;
    if (!cfg->model || !*cfg->model)
        return halo_fail(err, HALO_EINVAL, "llm.model is required");
    if (cfg->timeout <= 0 || cfg->max_retries < 0 || cfg->max_tokens < 0)
        return halo_fail(err, HALO_EINVAL,
                         "invalid llm settings: timeout must be positive, "
                         "max_retries and max_tokens not negative");
    bool has_key = cfg->api_key && *cfg->api_key;
    for (size_t i = 0; i < cfg->headers.n; i++)
        if ((st = check_header(cfg->headers.items[i], i, has_key, err)) !=
            HALO_OK)
            return st;
    return HALO_OK;
}

halo_status halo_llm_new(const halo_llm_cfg *cfg, halo_llm **out, halo_err *err)
{
    *out = NULL;
    halo_status st = halo_llm_check_cfg(cfg, err);
    if (st != HALO_OK)
        return st;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return halo_fail(err, HALO_EIO, "could not initialize libcurl: %s",
                         curl_easy_strerror(curl_init_rc));
    halo_llm *c = calloc(1, sizeof *c);
    if (!c)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    size_t n = strlen(cfg->base_url);
    while (n > 0 && cfg->base_url[n - 1] == '/')
        n--;
    c->base_url = strndup(cfg->base_url, n);
    c->model = strdup(cfg->model);
    if (cfg->api_key && *cfg->api_key) {
        c->api_key = strdup(cfg->api_key);
        halo_secret_register(cfg->api_key); /* also when not from halo.yaml */
    }
    halo_buf u = HALO_BUF_INIT;
    halo_buf_printf(&u, "%.*s/chat/completions", (int)n, cfg->base_url);
    c->url = halo_buf_steal(&u);
    c->curl = curl_easy_init();
    if (!c->base_url || !c->model || !c->url || !c->curl ||
        (cfg->api_key && *cfg->api_key && !c->api_key)) {
        st = halo_fail(err, HALO_ENOMEM, "out of memory");
        goto cleanup;
    }
    st = build_headers(c, cfg, err);
    if (st != HALO_OK)
        goto cleanup;
    c->timeout_ns = cfg->timeout;
    c->temperature = cfg->temperature;
    c->max_tokens = cfg->max_tokens;
    c->max_retries = cfg->max_retries > 100 ? 100 : (int)cfg->max_retries;
    c->rng = halo_mono_ns() ^ (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15ull;
    c->next_id = 1;
    *out = c;
    return HALO_OK;
cleanup:
    halo_llm_free(c);
    return st;
}

void halo_llm_free(halo_llm *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    /* the header list holds the key: wipe before freeing */
    for (struct curl_slist *l = c->hdrs; l; l = l->next)
        memset(l->data, 0, strlen(l->data));
    curl_slist_free_all(c->hdrs);
    if (c->api_key)
        memset(c->api_key, 0, strlen(c->api_key));
    free(c->api_key);
    free(c->base_url);
    free(c->url);
    free(c->model);
    halo_buf_free(&c->in);
    free(c);
}

/* ---- one attempt ------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    halo_llm *c = ud;
    size_t len = size * n;
    if (c->in.len + len > HALO_LLM_MAX_REPLY) {
        c->too_big = true;
        return 0;
    }
    halo_buf_append(&c->in, p, len);
    return c->in.oom ? 0 : len;
}

/* Keep the value of header `name` (case-insensitive) from line. */
static void take_header(const char *line, size_t len, const char *name,
                        char *dst, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl))
        return;
    const char *v = line + nl + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    size_t vn = (size_t)(end - v);
    if (vn >= cap)
        vn = cap - 1;
    memcpy(dst, v, vn);
    dst[vn] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    halo_llm *c = ud;
    size_t len = size * n;
    if (len >= 5 && !strncmp(p, "HTTP/", 5)) { /* a new response */
        c->retry_after[0] = '\0';
        c->retry_after_ms[0] = '\0';
    }
    take_header(p, len, "retry-after", c->retry_after, sizeof c->retry_after);
    take_header(p, len, "retry-after-ms", c->retry_after_ms,
                sizeof c->retry_after_ms);
    return len;
}

static void set_options(halo_llm *c, const char *body, size_t body_len,
                        uint64_t remaining_ns)
{
    CURL *h = c->curl;
    long total_ms = (long)(remaining_ns / 1000000u);
    if (total_ms < 1)
        total_ms = 1;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "halo-analyzer");
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, total_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     total_ms < CONNECT_MAX_MS ? total_ms : CONNECT_MAX_MS);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
}

typedef struct attempt {
    CURLcode rc;
    long status;
    uint64_t took_ns;
} attempt;

static attempt perform(halo_llm *c, const char *body, size_t body_len,
                       uint64_t remaining_ns)
{
    attempt a = {0};
    halo_buf_reset(&c->in);
    c->in.oom = false;
    c->too_big = false;
    c->retry_after[0] = c->retry_after_ms[0] = '\0';
    c->errbuf[0] = '\0';
    set_options(c, body, body_len, remaining_ns);
    uint64_t t0 = halo_mono_ns();
    a.rc = curl_easy_perform(c->curl);
    a.took_ns = halo_mono_ns() - t0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &a.status);
    return a;
}

/* ---- retry policy -------------------------------------------------------- */

static bool retryable_status(long s)
{
    return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

static bool retryable_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

/* The server's requested wait in ns, or -1 when it asked for none. */
static int64_t requested_wait(const halo_llm *c)
{
    char *end;
    if (c->retry_after_ms[0]) {
        double ms = strtod(c->retry_after_ms, &end);
        if (end != c->retry_after_ms && !*end && ms >= 0 && ms < 1e9)
            return (int64_t)(ms * 1e6);
    }
    const char *ra = c->retry_after;
    if (!ra[0])
        return -1;
    if (isdigit((unsigned char)ra[0])) {
        errno = 0;
        unsigned long long s = strtoull(ra, &end, 10);
        if (*end || errno || s > 1000000ull)
            return -1;
        return (int64_t)s * 1000000000;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = strptime(ra, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!rest || *rest)
        return -1;
    time_t when = timegm(&tm);
    time_t now = (time_t)(halo_real_ns() / 1000000000u);
    if (when == (time_t)-1)
        return -1;
    return when > now ? (int64_t)(when - now) * 1000000000 : 0;
}

static uint64_t next_rand(halo_llm *c)
{
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return x;
}

/* The wait before retry number k (1-based) when the server named none. */
static uint64_t backoff_ns(halo_llm *c, int k)
{
    uint64_t d = BACKOFF_BASE_NS;
    for (int i = 1; i < k && d < BACKOFF_MAX_NS; i++)
        d *= 2;
    if (d > BACKOFF_MAX_NS)
        d = BACKOFF_MAX_NS;
    double jitter =
        0.5 + 0.5 * (double)(next_rand(c) >> 11) / 9007199254740992.0;
    return (uint64_t)((double)d * jitter);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Replace every occurrence of the key, and of every registered secret
 * (secret header values among them), in s by "***". */
static void scrub(char *s, size_t cap, const char *key)
{
    halo_secret_scrub_one(s, cap, key);
    halo_secret_scrub(s, cap);
}

/* ---- the call --------------------------------------------------------------
 */

static halo_status build_request(const halo_llm *c, const json_t *messages,
                                 const json_t *tools, char **body,
                                 halo_err *err)
{
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return halo_fail(err, HALO_EINVAL,
                         "invalid messages: expected a non-empty JSON array");
    if (tools && !json_is_array(tools))
        return halo_fail(err, HALO_EINVAL,
                         "invalid tools: expected a JSON array");
    json_t *req = json_object();
    if (!req)
        return halo_fail(err, HALO_ENOMEM, "out of memory");
    /* the conversation is only read: incref'd into the request, not copied */
    int bad = json_object_set_new(req, "model", json_string(c->model));
    bad |= json_object_set(req, "messages", (json_t *)messages);
    if (tools && json_array_size(tools) > 0)
        bad |= json_object_set(req, "tools", (json_t *)tools);
    bad |= json_object_set_new(req, "temperature", json_real(c->temperature));
    if (c->max_tokens > 0)
        bad |= json_object_set_new(req, "max_tokens",
                                   json_integer((json_int_t)c->max_tokens));
    bad |= json_object_set_new(req, "stream", json_false());
    *body = bad ? NULL : json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!*body)
        return halo_fail(err, HALO_ENOMEM,
                         "could not encode the request: out of memory");
    return HALO_OK;
}

typedef enum verdict { V_DONE, V_RETRY } verdict;

/* Judge one attempt: V_DONE with *st set (HALO_OK: out holds the reply), or
 * V_RETRY with err saying what went wrong. */
static verdict judge(halo_llm *c, const attempt *a, halo_llm_reply *out,
                     halo_status *st, halo_err *err)
{
    char text[400];
    if (a->rc == CURLE_OK && a->status >= 200 && a->status < 300) {
        halo_err derr = {{0}};
        *st =
            halo_llm_decode_ids(c->in.data, c->in.len, out, &c->next_id, &derr);
        if (*st != HALO_OK) {
            scrub(derr.msg, sizeof derr.msg, c->api_key);
            halo_errf(err, "invalid reply from %s: %s", c->base_url, derr.msg);
        }
        return V_DONE;
    }
    if (a->rc == CURLE_OK) {
        halo_llm_error_text(c->in.data, c->in.len, text, sizeof text);
        scrub(text, sizeof text, c->api_key);
        halo_errf(err, "%s answered HTTP %ld: %s", c->base_url, a->status,
                  text);
        *st = HALO_EINVAL;
        return retryable_status(a->status) ? V_RETRY : V_DONE;
    }
    if (c->too_big) {
        *st = halo_fail(err, HALO_ETOOBIG, "reply from %s is over %u bytes",
                        c->base_url, HALO_LLM_MAX_REPLY);
        return V_DONE;
    }
    if (c->in.oom) {
        *st = halo_fail(err, HALO_ENOMEM, "out of memory reading the reply");
        return V_DONE;
    }
    snprintf(text, sizeof text, "%s",
             c->errbuf[0] ? c->errbuf : curl_easy_strerror(a->rc));
    scrub(text, sizeof text, c->api_key);
    halo_errf(err, "could not reach %s: %s", c->base_url, text);
    *st = HALO_EIO;
    return retryable_curl(a->rc) ? V_RETRY : V_DONE;
}

static void log_attempt(const halo_llm *c, const attempt *a, size_t n_msgs,
                        size_t n_tools, size_t body_len, int k)
{
    if (a->rc == CURLE_OK)
        LOG_DEBUG(PREFIX,
                  "POST %s: model %s, %zu messages, %zu tools, %zu bytes -> "
                  "HTTP %ld, %zu bytes in %.0f ms (attempt %d)",
                  c->url, c->model, n_msgs, n_tools, body_len, a->status,
                  c->in.len, (double)a->took_ns / 1e6, k);
    else
        LOG_DEBUG(PREFIX,
                  "POST %s: model %s, %zu messages, %zu tools, %zu bytes -> "
                  "%s after %.0f ms (attempt %d)",
                  c->url, c->model, n_msgs, n_tools, body_len,
                  curl_easy_strerror(a->rc), (double)a->took_ns / 1e6, k);
}

static halo_status chat(halo_llm *c, const json_t *messages,
                        const json_t *tools, halo_llm_reply *out, halo_err *err)
{
    out->prompt_tokens = out->completion_tokens = -1;
    char *body = NULL;
    halo_status st = build_request(c, messages, tools, &body, err);
    if (st != HALO_OK)
        return st;
    size_t body_len = strlen(body);
    size_t n_msgs = json_array_size(messages);
    size_t n_tools = tools ? json_array_size(tools) : 0;
    uint64_t deadline = halo_mono_ns() + (uint64_t)c->timeout_ns;
    for (int k = 1;; k++) {
        uint64_t now = halo_mono_ns();
        if (now >= deadline) {
            st = halo_fail(err, HALO_ERETRY,
                           "no answer from %s within %.1f s (%d attempts)",
                           c->base_url, (double)c->timeout_ns / 1e9, k - 1);
            break;
        }
        attempt a = perform(c, body, body_len, deadline - now);
        log_attempt(c, &a, n_msgs, n_tools, body_len, k);
        if (judge(c, &a, out, &st, err) == V_DONE) {
            out->attempts = k;
            break;
        }
        if (k > c->max_retries) {
            size_t n = strlen(err->msg);
            snprintf(err->msg + n, sizeof err->msg - n,
                     " (gave up after %d attempt%s)", k, k == 1 ? "" : "s");
            st = HALO_ERETRY;
            break;
        }
        int64_t asked = requested_wait(c);
        uint64_t wait = asked >= 0 ? (uint64_t)asked : backoff_ns(c, k);
        now = halo_mono_ns();
        if (now + wait >= deadline) {
            size_t n = strlen(err->msg);
            snprintf(err->msg + n, sizeof err->msg - n,
                     " (gave up after %d attempt%s: a %.1f s wait would "
                     "pass the %.1f s timeout)",
                     k, k == 1 ? "" : "s", (double)wait / 1e9,
                     (double)c->timeout_ns / 1e9);
            st = HALO_ERETRY;
            break;
        }
        LOG_WARN(PREFIX, "%s; retrying in %.1f s (attempt %d of %d)", err->msg,
                 (double)wait / 1e9, k + 1, c->max_retries + 1);
        sleep_ns(wait);
    }
    free(body);
    return st;
}

halo_status halo_llm_chat(halo_llm *c, const json_t *messages,
                          const json_t *tools, halo_llm_reply *out,
                          halo_err *err)
{
    halo_err e = {{0}};
    memset(out, 0, sizeof *out);
    halo_status st = chat(c, messages, tools, out, &e);
    if (st != HALO_OK) {
        halo_llm_reply_clear(out);
        halo_errf(err, "%s", e.msg);
    }
    return st;
}
