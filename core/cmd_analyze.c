/*
 * cmd_analyze.c -- `halo analyze` (one report now) and `halo reports
 * list|show` (DESIGN §8).
 *
 * `halo analyze` reads the window from the store read-only (like `halo
 * traces`), prints the report (Markdown, or JSON with --format json) and,
 * unless --no-save, stores it: a `reports` row through a second, writable
 * handle, and the files under the configuration's analyzer.reports_dir
 * (or --reports-dir). Thresholds come from analyzer.detectors. The schedule
 * name of a manual report is "manual" (--schedule to change it); running
 * the same window again replaces its report.
 */
#include "buf.h"
#include "cli.h"
#include "clock.h"
#include "log.h"
#include "trace_tree.h"

#include "analyzer/analyzer.h"
#include "analyzer/analyzer_config.h"
#include "analyzer/llm.h"
#include "analyzer/rlm.h"
#include "storage/store.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --end: a UTC time or seconds since the epoch. */
static bool parse_end(const char *s, uint64_t *ns)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s >= '0' && *s <= '9' && *end == '\0' && v < 1ull << 33) {
        *ns = (uint64_t)v * 1000000000u;
        return true;
    }
    return halo_cli_parse_iso(s, ns);
}

/* The analyzer section of the configuration the command acts on. */
static bool load_analyzer_config(const char *cmd, const char *config_path,
                                 halo_analyzer_config *acfg)
{
    halo_errlist errs = {0};
    halo_node *root = halo_cli_load_config(config_path, &errs);
    bool ok = root && halo_analyzer_config_parse(root, acfg, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "halo %s: %s\n", cmd, errs.msgs[i]);
    halo_errlist_free(&errs);
    halo_node_free(root);
    return ok;
}

/* ---- halo analyze -------------------------------------------------------- */

static const char analyze_help[] =
    "usage: halo analyze --agent A [--window 24h] [--end T] [--format "
    "md|json]\n"
    "                    [--schedule NAME] [--no-save] [--reports-dir DIR]\n"
    "                    [-o FILE] [--prompt TEXT]\n"
    "                    [--store S | --db PATH | --config F]\n\n"
    "Analyze one agent's runs in a window now, with the deterministic\n"
    "detectors, and print the report: the failure patterns that recur across\n"
    "runs, ranked by impact, each citing its trace ids. Unless --no-save, the\n"
    "report is also stored (the reports table, and\n"
    "<reports_dir>/<agent>/<schedule>/<window-start>.{json,md}); see it again\n"
    "with `halo reports`.\n\n"
    "      --agent A      the agent id to analyze (see `halo agents`)\n"
    "      --window DUR   the window's length (default 24h)\n"
    "      --end T        the window's end: a UTC time (2026-11-16T10:00:00Z)\n"
    "                     or seconds since the epoch (default: now)\n"
    "      --format F     md (default) or json (the halo.report/v1 contract)\n"
    "      --json         the same as --format json\n"
    "      --schedule N   the schedule name the report is filed under\n"
    "                     (default manual)\n"
    "      --no-save      print only; store nothing\n"
    "      --reports-dir DIR  where report files go (default: the\n"
    "                     configuration's analyzer.reports_dir; the built-in\n"
    "                     configuration's is data/reports)\n"
    "  -o, --output FILE  write the report to FILE instead of stdout\n"
    "      --prompt TEXT  a question for the RLM engine to investigate in the\n"
    "                     window (needs a model: "
    "analyzer.llm.base_url)\n" HALO_STORE_HELP
    "  -h, --help         this help\n";

typedef struct aopts {
    const char *agent, *window, *end, *format, *schedule, *reports_dir;
    const char *output, *prompt, *store, *db, *config;
    bool no_save;
} aopts;

enum {
    A_AGENT = 256,
    A_WINDOW,
    A_END,
    A_FORMAT,
    A_SCHEDULE,
    A_NO_SAVE,
    A_REPORTS_DIR,
    A_PROMPT,
    A_STORE,
    A_DB,
    A_LIMIT,
    A_JSON,
};

#define ANALYZE_OPTS ":c:ho:"
#define REPORTS_OPTS ":c:h"

static int parse_analyze(int argc, char **argv, aopts *o)
{
    static const struct option opts[] = {
        {"agent", required_argument, 0, A_AGENT},
        {"window", required_argument, 0, A_WINDOW},
        {"end", required_argument, 0, A_END},
        {"format", required_argument, 0, A_FORMAT},
        {"json", no_argument, 0, A_JSON},
        {"schedule", required_argument, 0, A_SCHEDULE},
        {"no-save", no_argument, 0, A_NO_SAVE},
        {"reports-dir", required_argument, 0, A_REPORTS_DIR},
        {"output", required_argument, 0, 'o'},
        {"prompt", required_argument, 0, A_PROMPT},
        {"store", required_argument, 0, A_STORE},
        {"db", required_argument, 0, A_DB},
        {"config", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ANALYZE_OPTS, opts, NULL)) != -1) {
        switch (c) {
        case A_AGENT:
            o->agent = optarg;
            break;
        case A_WINDOW:
            o->window = optarg;
            break;
        case A_END:
            o->end = optarg;
            break;
        case A_FORMAT:
            o->format = optarg;
            break;
        case A_JSON:
            o->format = "json";
            break;
        case A_SCHEDULE:
            o->schedule = optarg;
            break;
        case A_NO_SAVE:
            o->no_save = true;
            break;
        case A_REPORTS_DIR:
            o->reports_dir = optarg;
            break;
        case 'o':
            o->output = optarg;
            break;
        case A_PROMPT:
            o->prompt = optarg;
            break;
        case A_STORE:
            o->store = optarg;
            break;
        case A_DB:
            o->db = optarg;
            break;
        case 'c':
            o->config = optarg;
            break;
        case 'h':
            fputs(analyze_help, stdout);
            return HALO_EXIT_OK;
        default:
            return halo_cli_option_error("analyze", c, argv, ANALYZE_OPTS);
        }
    }
    if (optind < argc)
        return halo_cli_usage_error("analyze", "unexpected argument \"%s\"",
                                    argv[optind]);
    if (!o->agent || !*o->agent)
        return halo_cli_usage_error("analyze", "%s", "--agent is required");
    int rc = halo_cli_check_store_opts("analyze", o->store, o->db);
    if (rc >= 0)
        return rc;
    if (o->format && strcmp(o->format, "md") && strcmp(o->format, "json"))
        return halo_cli_usage_error(
            "analyze", "invalid --format \"%s\": expected md or json",
            o->format);
    return -1;
}

static bool progress(void *ctx, int64_t done, int64_t total)
{
    (void)ctx;
    if (done < 0) { /* a request to the model */
        fprintf(stderr, "\rasking the model...                    ");
        fflush(stderr);
        return true;
    }
    fprintf(stderr, "\ranalyzed %" PRId64 " of %" PRId64 " runs", done, total);
    fflush(stderr);
    return true;
}

static int write_output(const char *path, const char *text)
{
    FILE *f = path ? fopen(path, "w") : stdout;
    if (!f) {
        fprintf(stderr, "halo analyze: could not write \"%s\": %m\n", path);
        return HALO_EXIT_RUNTIME;
    }
    fputs(text, f);
    if (path ? fclose(f) != 0 : (fflush(f) != 0 || ferror(f))) {
        fprintf(stderr, "halo analyze: could not write \"%s\": %m\n",
                path ? path : "stdout");
        return HALO_EXIT_RUNTIME;
    }
    return HALO_EXIT_OK;
}

static int save(const aopts *o, const halo_analyzer_config *acfg,
                const halo_report *r)
{
    halo_store *st =
        halo_cli_open_store("analyze", o->store, o->db, o->config, false);
    if (!st)
        return HALO_EXIT_RUNTIME;
    const char *dir = o->reports_dir ? o->reports_dir : acfg->reports_dir;
    halo_err err = {{0}};
    halo_status s = halo_report_save(st, r, dir, &err);
    halo_store_close(st);
    if (s != HALO_OK) {
        fprintf(stderr, "halo analyze: could not save the report: %s\n",
                err.msg);
        return HALO_EXIT_RUNTIME;
    }
    fprintf(stderr, "saved report %s (%zu finding%s)%s%s\n", r->id,
            r->n_findings, r->n_findings == 1 ? "" : "s",
            dir && *dir ? " under " : "", dir && *dir ? dir : "");
    return HALO_EXIT_OK;
}

int halo_cmd_analyze(int argc, char **argv)
{
    aopts o = {0};
    int rc = parse_analyze(argc, argv, &o);
    if (rc >= 0)
        return rc;
    int64_t window = 24 * 3600 * (int64_t)1000000000;
    if (o.window && (!halo_parse_duration(o.window, &window) || window <= 0))
        return halo_cli_usage_error(
            "analyze",
            "invalid --window \"%s\": expected a duration "
            "such as 1h or 24h",
            o.window);
    uint64_t end = halo_real_ns();
    if (o.end && !parse_end(o.end, &end))
        return halo_cli_usage_error("analyze",
                                    "invalid --end \"%s\": expected a UTC time "
                                    "(2026-11-16T10:00:00Z) or epoch seconds",
                                    o.end);
    if ((uint64_t)window >= end)
        return halo_cli_usage_error("analyze", "%s",
                                    "--window reaches back before 1970");
    halo_log_set_level(HALO_LOG_WARN);
    halo_analyzer_config acfg = {0};
    if (!load_analyzer_config("analyze", o.config, &acfg)) {
        halo_analyzer_config_free(&acfg);
        return HALO_EXIT_RUNTIME;
    }
    if (o.prompt && !halo_llm_configured(&acfg.llm)) {
        fprintf(stderr, "halo analyze: --prompt needs a model: set "
                        "analyzer.llm.base_url (and model) in the "
                        "configuration\n");
        halo_analyzer_config_free(&acfg);
        return HALO_EXIT_RUNTIME;
    }
    halo_store *st =
        halo_cli_open_store("analyze", o.store, o.db, o.config, true);
    if (!st) {
        halo_analyzer_config_free(&acfg);
        return HALO_EXIT_RUNTIME;
    }
    halo_analyze_req req = {0};
    req.agent_id = o.agent;
    req.schedule = o.schedule ? o.schedule : "manual";
    req.window_end_ns = end;
    req.window_start_ns = end - (uint64_t)window;
    req.cfg = &acfg.detectors;
    if (isatty(STDERR_FILENO))
        req.progress = progress;
    halo_report *r = NULL;
    halo_err err = {{0}};
    uint64_t t0 = halo_mono_ns();
    const char *dir = o.reports_dir ? o.reports_dir : acfg.reports_dir;
    halo_err serr = {{0}};
    char *spec = halo_cli_store_spec(o.store, o.db, o.config, &serr);
    halo_investigate_opts io = {&acfg, NULL, o.prompt, o.no_save ? NULL : dir,
                                spec};
    halo_status s = halo_investigate(st, &req, &io, &r, &err);
    free(spec);
    halo_store_close(st);
    if (req.progress)
        fputc('\n', stderr);
    if (s != HALO_OK) {
        fprintf(stderr, "halo analyze: %s\n", err.msg);
        halo_analyzer_config_free(&acfg);
        return HALO_EXIT_RUNTIME;
    }
    LOG_INFO("analyze", "%" PRId64 " runs analyzed in %.2f s", r->stats.traces,
             (double)(halo_mono_ns() - t0) / 1e9);
    if (r->stats.traces == 0)
        fprintf(stderr,
                "halo analyze: no runs of agent \"%s\" in this window; "
                "`halo agents --since 7d` lists the agents with runs\n",
                o.agent);
    bool json = o.format && !strcmp(o.format, "json");
    char *text = json ? halo_report_json(r) : halo_report_markdown(r);
    rc = text ? write_output(o.output, text) : HALO_EXIT_RUNTIME;
    free(text);
    if (rc == HALO_EXIT_OK && !o.no_save)
        rc = save(&o, &acfg, r);
    halo_report_free(r);
    halo_analyzer_config_free(&acfg);
    return rc;
}

/* ---- halo reports list|show ---------------------------------------------- */

static const char reports_help[] =
    "usage: halo reports list [--agent A] [--schedule S] [--limit N] [--json]\n"
    "                         [--store S | --db PATH | --config F]\n"
    "       halo reports show ID [--format md|json]\n"
    "                         [--store S | --db PATH | --config F]\n"
    "       halo reports chat ID \"QUESTION\"\n"
    "                         [--store S | --db PATH | --config F]\n\n"
    "List the analyzer's reports, newest window first, or print one (by id,\n"
    "or a unique prefix of at least 6 characters). `chat` asks the model\n"
    "(analyzer.llm) a follow-up question on a report: it investigates the\n"
    "report's window with the same tools and prints its answer and the runs\n"
    "it cites; the exchange is appended to the report's transcript.\n\n"
    "      --agent A      only this agent's reports\n"
    "      --schedule S   only this schedule's reports\n"
    "      --limit N      at most N reports (default 50)\n"
    "      --json         list: as JSON; show: the report's JSON\n"
    "      --format F     show: md (default) or json\n" HALO_STORE_HELP
    "  -h, --help         this help\n";

typedef struct ropts {
    const char *agent, *schedule, *format, *store, *db, *config;
    int64_t limit;
    bool json;
} ropts;

static int parse_reports(int argc, char **argv, ropts *o)
{
    static const struct option opts[] = {
        {"agent", required_argument, 0, A_AGENT},
        {"schedule", required_argument, 0, A_SCHEDULE},
        {"format", required_argument, 0, A_FORMAT},
        {"limit", required_argument, 0, A_LIMIT},
        {"json", no_argument, 0, A_JSON},
        {"store", required_argument, 0, A_STORE},
        {"db", required_argument, 0, A_DB},
        {"config", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, REPORTS_OPTS, opts, NULL)) != -1) {
        switch (c) {
        case A_AGENT:
            o->agent = optarg;
            break;
        case A_SCHEDULE:
            o->schedule = optarg;
            break;
        case A_FORMAT:
            o->format = optarg;
            break;
        case A_JSON:
            o->json = true;
            break;
        case A_STORE:
            o->store = optarg;
            break;
        case A_DB:
            o->db = optarg;
            break;
        case 'c':
            o->config = optarg;
            break;
        case A_LIMIT: {
            char *end;
            long long v = strtoll(optarg, &end, 10);
            if (!*optarg || *end || v <= 0)
                return halo_cli_usage_error(
                    "reports",
                    "invalid --limit \"%s\": expected a "
                    "positive integer",
                    optarg);
            o->limit = v;
            break;
        }
        case 'h':
            fputs(reports_help, stdout);
            return HALO_EXIT_OK;
        default:
            return halo_cli_option_error("reports", c, argv, REPORTS_OPTS);
        }
    }
    int rc = halo_cli_check_store_opts("reports", o->store, o->db);
    if (rc >= 0)
        return rc;
    if (o->format && strcmp(o->format, "md") && strcmp(o->format, "json"))
        return halo_cli_usage_error(
            "reports", "invalid --format \"%s\": expected md or json",
            o->format);
    return -1;
}

static void list_json(const halo_report_row *rows, size_t n)
{
    halo_buf b = HALO_BUF_INIT;
    halo_buf_putc(&b, '[');
    for (size_t i = 0; i < n; i++) {
        const halo_report_row *r = &rows[i];
        const char *k[] = {"id",           "agent_id",   "schedule",
                           "window_start", "window_end", "generated_at",
                           "mode",         "model"};
        const char *v[] = {r->id,           r->agent_id,   r->schedule,
                           r->window_start, r->window_end, r->generated_at,
                           r->mode,         r->model};
        halo_buf_puts(&b, i ? ",{" : "{");
        for (size_t j = 0; j < sizeof k / sizeof *k; j++) {
            halo_buf_printf(&b, "%s\"%s\":", j ? "," : "", k[j]);
            if (v[j])
                halo_buf_json_str(&b, v[j], strlen(v[j]));
            else
                halo_buf_puts(&b, "null");
        }
        halo_buf_putc(&b, '}');
    }
    halo_buf_puts(&b, "]\n");
    fputs(b.data && !b.oom ? b.data : "[]\n", stdout);
    halo_buf_free(&b);
}

static int reports_list(const ropts *o, halo_store *st)
{
    halo_arena *a = halo_arena_new(0);
    halo_report_filter f = {o->agent, o->schedule, o->limit ? o->limit : 50};
    halo_report_row *rows = NULL;
    size_t n = 0;
    halo_err err = {{0}};
    int rc = HALO_EXIT_OK;
    if (!a || st->ops->list_reports(st, &f, a, &rows, &n, &err) != HALO_OK) {
        fprintf(stderr, "halo reports list: %s\n",
                a ? err.msg : "out of memory");
        rc = HALO_EXIT_RUNTIME;
    } else if (o->json) {
        list_json(rows, n);
    } else {
        int wa = 5; /* the AGENT column's width */
        for (size_t i = 0; i < n; i++)
            wa = halo_agent_col(wa, rows[i].agent_id, "-");
        printf("%-18s  %-*s  %-12s  %-20s  %-20s  %s\n", "ID", wa, "AGENT",
               "SCHEDULE", "WINDOW START", "WINDOW END", "MODE");
        for (size_t i = 0; i < n; i++) {
            char ws[24], we[24]; /* to the second, as traces list has them */
            char agent[HALO_FMT_BUF(HALO_AGENT_COL_MAX)];
            halo_fmt_start(rows[i].window_start, ws, sizeof ws);
            halo_fmt_start(rows[i].window_end, we, sizeof we);
            halo_fmt_cut(rows[i].agent_id, HALO_AGENT_COL_MAX, agent,
                         sizeof agent);
            printf("%-18s  %-*s  %-12s  %-20s  %-20s  %s\n", rows[i].id,
                   halo_fmt_pad(wa, agent), agent,
                   rows[i].schedule ? rows[i].schedule : "-", ws, we,
                   rows[i].mode ? rows[i].mode : "-");
        }
        if (n == 0)
            fprintf(stderr,
                    "no reports%s%s yet; `halo analyze --agent A` "
                    "makes one now\n",
                    o->agent ? " for agent " : "", o->agent ? o->agent : "");
    }
    halo_arena_free(a);
    return rc;
}

/* `halo reports chat ID QUESTION`: the model answers a follow-up question
 * on a stored report, with the same tools over the report's window. */
static int reports_chat(const ropts *o, halo_store *st, const char *id,
                        const char *question)
{
    halo_analyzer_config acfg = {0};
    if (!load_analyzer_config("reports chat", o->config, &acfg)) {
        halo_analyzer_config_free(&acfg);
        return HALO_EXIT_RUNTIME;
    }
    int rc = HALO_EXIT_RUNTIME;
    halo_arena *a = halo_arena_new(0);
    halo_report_row row;
    halo_err err = {{0}};
    halo_redactor *red = NULL;
    halo_schedule_cfg sc;
    halo_schedule_cfg_defaults(&sc);
    halo_analyze_req req = {0};
    char *answer = NULL, *spec = NULL;
    if (!halo_llm_configured(&acfg.llm)) {
        fprintf(stderr, "halo reports chat: no model configured: set "
                        "analyzer.llm.base_url (and model) in the "
                        "configuration\n");
        goto done;
    }
    if (!a || st->ops->get_report(st, id, a, &row, &err) != HALO_OK) {
        fprintf(stderr, "halo reports chat: %s\n",
                a ? err.msg : "out of memory");
        goto done;
    }
    req.agent_id = row.agent_id;
    req.schedule = row.schedule;
    if (!row.agent_id || !row.window_start || !row.window_end ||
        !halo_cli_parse_iso(row.window_start, &req.window_start_ns) ||
        !halo_cli_parse_iso(row.window_end, &req.window_end_ns)) {
        fprintf(stderr,
                "halo reports chat: report %s has no agent or "
                "window\n",
                row.id);
        goto done;
    }
    if (halo_redactor_new(&acfg.redaction, &red, &err) != HALO_OK) {
        fprintf(stderr, "halo reports chat: %s\n", err.msg);
        goto done;
    }
    halo_rlm_opts ro;
    halo_rlm_opts_init(&ro, &acfg, &sc);
    ro.redactor = red;
    spec = halo_cli_store_spec(o->store, o->db, o->config, &err);
    ro.store_spec = spec;
    char path[4200];
    if (halo_transcript_path(acfg.reports_dir, row.agent_id, row.schedule,
                             req.window_start_ns, path, sizeof path))
        ro.transcript_path = path;
    halo_rlm_stats stats;
    if (halo_rlm_chat(st, &req, &ro, row.json, question, &answer, &stats,
                      &err) != HALO_OK) {
        fprintf(stderr, "halo reports chat: %s\n", err.msg);
        goto done;
    }
    fputs(answer, stdout);
    rc = fflush(stdout) == 0 ? HALO_EXIT_OK : HALO_EXIT_RUNTIME;
done:
    free(spec);
    free(answer);
    halo_redactor_free(red);
    halo_schedule_cfg_release(&sc);
    halo_arena_free(a);
    halo_analyzer_config_free(&acfg);
    return rc;
}

static int reports_show(const ropts *o, halo_store *st, const char *id)
{
    halo_arena *a = halo_arena_new(0);
    halo_report_row row;
    halo_err err = {{0}};
    int rc = HALO_EXIT_OK;
    halo_status s =
        a ? st->ops->get_report(st, id, a, &row, &err) : HALO_ENOMEM;
    if (s == HALO_ENOTFOUND && strncmp(id, "r-", 2) != 0 && strlen(id) < 200) {
        /* the id without its "r-" (as a file name or a log line shows
         * the hex part) */
        char with[208];
        snprintf(with, sizeof with, "r-%s", id);
        halo_err err2 = {{0}};
        if (st->ops->get_report(st, with, a, &row, &err2) == HALO_OK)
            s = HALO_OK;
    }
    if (s != HALO_OK) {
        fprintf(stderr, "halo reports show: %s\n",
                a ? err.msg : "out of memory");
        rc = s == HALO_EINVAL ? HALO_EXIT_USAGE : HALO_EXIT_RUNTIME;
    } else {
        bool json = o->format && !strcmp(o->format, "json");
        const char *text = json ? row.json : row.markdown;
        fputs(text ? text : "", stdout);
        if (text && *text && text[strlen(text) - 1] != '\n')
            fputc('\n', stdout);
    }
    halo_arena_free(a);
    return rc;
}

int halo_cmd_reports(int argc, char **argv)
{
    ropts o = {0};
    int rc = parse_reports(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (optind >= argc)
        return halo_cli_usage_error("reports", "%s",
                                    "expected list, show or chat");
    const char *sub = argv[optind];
    bool list = !strcmp(sub, "list"), show = !strcmp(sub, "show");
    bool chat = !strcmp(sub, "chat");
    if (!list && !show && !chat)
        return halo_cli_usage_error("reports",
                                    "unknown subcommand \"%s\": expected "
                                    "list, show or chat",
                                    sub);
    if (chat && optind + 3 != argc)
        return halo_cli_usage_error("reports", "%s",
                                    "chat takes a report id and a question");

    /* each subcommand's own options; the others' are mistakes */
    const char *stray = NULL;
    if (!list && (o.agent || o.schedule || o.limit))
        stray = o.agent ? "--agent" : o.schedule ? "--schedule" : "--limit";
    else if (!show && o.format)
        stray = "--format";
    else if (chat && o.json)
        stray = "--json";
    if (stray) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s does not apply to reports %s", stray,
                 sub);
        return halo_cli_usage_error("reports", "%s", msg);
    }
    if (show && o.json) {
        if (o.format && strcmp(o.format, "json") != 0)
            return halo_cli_usage_error("reports", "%s",
                                        "--json and --format md exclude "
                                        "each other");
        o.format = "json";
    }
    if (list && optind + 1 < argc)
        return halo_cli_usage_error("reports", "unexpected argument \"%s\"",
                                    argv[optind + 1]);
    if (show && optind + 2 != argc)
        return halo_cli_usage_error("reports", "%s",
                                    "show takes one report id");
    halo_log_set_level(HALO_LOG_WARN);
    halo_store *st =
        halo_cli_open_store("reports", o.store, o.db, o.config, true);
    if (!st)
        return HALO_EXIT_RUNTIME;
    rc = list   ? reports_list(&o, st)
         : chat ? reports_chat(&o, st, argv[optind + 1], argv[optind + 2])
                : reports_show(&o, st, argv[optind + 1]);
    halo_store_close(st);
    return rc;
}
