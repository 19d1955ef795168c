/*
 * test_trace_tree.c -- one trace drawn as a tree (core/trace_tree.c): the
 * text `halo traces show` prints and the analyzer's view_trace tool sends,
 * with inputs and outputs on their own lines, cut at a character boundary;
 * orphans and parent cycles shown once each, never a hang.
 */
#include "core/trace_tree.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static void span(halo_span *s, int id, int parent, const char *name,
                 uint64_t start_ms)
{
    memset(s, 0, sizeof *s);
    s->span_id[7] = (uint8_t)id;
    if (parent)
        s->parent_span_id[7] = (uint8_t)parent;
    s->name = name;
    s->status_message = "";
    s->start_ns = 1795000000000000000ull + start_ms * 1000000ull;
    s->end_ns = s->start_ns + 5000000ull;
    s->d.span_type = parent ? "TOOL" : "AGENT";
}

TEST(tree_text_with_inputs_and_outputs)
{
    halo_span sp[4];
    span(&sp[0], 1, 0, "agent.run", 0);
    span(&sp[1], 2, 1, "search", 1);
    sp[1].d.tool_name = "search";
    sp[1].d.input = "{\"q\": \"line one\nline two\"}";
    sp[1].d.output = "r\xc3\xa9sultat tr\xc3\xa8s long";
    span(&sp[2], 3, 1, "fetch", 2);
    sp[2].status_code = HALO_STATUS_ERROR;
    sp[2].status_message = "timeout";
    span(&sp[3], 4, 9, "orphan", 3); /* parent 9 not stored */
    halo_buf b = HALO_BUF_INIT;
    halo_trace_text_opts o = {.io_max = 8};
    CHECK(halo_trace_text("t1", sp, 4, &o, &b));
    halo_buf_putc(&b, '\0');
    fprintf(stderr, "%s", b.data);
    CHECK_CONTAINS(b.data, "trace t1  agent=-");
    CHECK_CONTAINS(b.data, "\xe2\x94\x9c\xe2\x94\x80 search  TOOL");
    CHECK_CONTAINS(b.data, "    input: {\"q\": \"l...\n");
    /* io_max counts characters: "résultat" is 8 (9 bytes) */
    CHECK_CONTAINS(b.data, "    output: r\xc3\xa9sultat...\n");
    /* columns aligned: the widest tree prefix + name, type, duration */
    CHECK_CONTAINS(b.data, "\nagent.run  AGENT  5.00ms  UNSET\n");
    CHECK_CONTAINS(b.data, "\xe2\x94\x94\xe2\x94\x80 fetch   TOOL   5.00ms  "
                           "ERROR: timeout");
    CHECK_CONTAINS(b.data, "\norphan     TOOL   5.00ms  UNSET  (orphan: parent "
                           "0000000000000009 not stored)");
    halo_buf_free(&b);
    /* without io_max: no input/output lines (halo traces show) */
    halo_trace_text_opts plain = {0};
    CHECK(halo_trace_text("t1", sp, 4, &plain, &b));
    halo_buf_putc(&b, '\0');
    CHECK(!strstr(b.data, "input:"));
    halo_buf_free(&b);
}

TEST(parent_cycle_is_drawn_once)
{
    halo_span sp[3];
    span(&sp[0], 1, 2, "a", 0);
    span(&sp[1], 2, 3, "b", 1);
    span(&sp[2], 3, 1, "c", 2);
    halo_buf b = HALO_BUF_INIT;
    CHECK(halo_trace_text("t2", sp, 3, NULL, &b));
    halo_buf_putc(&b, '\0');
    CHECK_CONTAINS(b.data, "(in a parent cycle)");
    const char *first = strstr(b.data, "\na  ");
    CHECK(first && !strstr(first + 1, "\na  "));
    halo_buf_free(&b);
}

TEST(durations_use_the_unit_they_round_to)
{
    static const struct {
        double ms;
        const char *text;
    } cases[] = {
        {-1, "-"},           {0, "0.0us"},        {0.0015, "1.5us"},
        {0.9999, "999.9us"}, {0.99996, "1.00ms"}, {5, "5.00ms"},
        {9.999, "10.0ms"},   {123.44, "123.4ms"}, {999.96, "1.00s"},
        {59994, "59.99s"},   {59996, "1m00s"},    {61400, "1m01s"},
        {3599000, "59m59s"}, {3599600, "1h00m"},  {7199999.99999, "2h00m"},
        {7230000, "2h01m"},
    };
    char out[32];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        halo_fmt_duration(cases[i].ms, out, sizeof out);
        CHECK_STR(out, cases[i].text);
    }
}

/* Agent ids are cut the same in every table: at HALO_AGENT_COL_MAX bytes,
 * the column as wide as the widest (cut) id. */
TEST(agent_columns_cut_at_one_width)
{
    const char *long_id = "support-agent-for-the-eu-west-region-and-more-of-it";
    CHECK(strlen(long_id) > HALO_AGENT_COL_MAX);
    CHECK_INT(halo_agent_col(5, "ab", "-"), 5);
    CHECK_INT(halo_agent_col(5, NULL, "(none)"), 6);
    CHECK_INT(halo_agent_col(5, "", "-"), 5);
    CHECK_INT(halo_agent_col(5, "triage-agent", "-"), 12);
    CHECK_INT(halo_agent_col(12, long_id, "-"), HALO_AGENT_COL_MAX);
    char out[64];
    halo_fmt_cut(long_id, HALO_AGENT_COL_MAX, out, sizeof out);
    CHECK_INT((long long)strlen(out), HALO_AGENT_COL_MAX);
    CHECK(strncmp(out, long_id, HALO_AGENT_COL_MAX - 3) == 0);
    CHECK_STR(out + HALO_AGENT_COL_MAX - 3, "...");
    halo_fmt_cut("triage-agent", HALO_AGENT_COL_MAX, out, sizeof out);
    CHECK_STR(out, "triage-agent");
    halo_fmt_cut(NULL, HALO_AGENT_COL_MAX, out, sizeof out);
    CHECK_STR(out, "-");
    /* cuts count characters, not bytes, and never split one: "é" is the
     * 35th column (bytes 34..35) */
    halo_fmt_cut("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9zzzzzzzz", 38, out,
                 sizeof out);
    CHECK_STR(out, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9...");
    /* ... and the column's width too */
    CHECK_INT(halo_agent_col(5,
                             "r\xc3\xa9"
                             "cup\xc3\xa9"
                             "ration",
                             "-"),
              12);
}

/* Text from spans reaches the terminal escaped: a newline cannot break a
 * table's row, an escape sequence cannot reach the terminal; columns are
 * padded by characters. */
TEST(terminal_text_is_escaped_and_padded)
{
    char out[HALO_FMT_BUF(40)];
    halo_fmt_cut("evil\nname\x1b[31mRED\t\r\x7f", 40, out, sizeof out);
    CHECK_STR(out, "evil\\nname\\x1b[31mRED\\t\\r\\x7f");
    CHECK_INT((long long)halo_fmt_cols("evil\nname\x1b[31mRED\t\r\x7f"),
              (long long)strlen(out));
    /* a C1 control (U+009B, CSI) and bytes that are not UTF-8 */
    halo_fmt_cut("a\xc2\x9b"
                 "2Jb\xff\xc3",
                 40, out, sizeof out);
    CHECK_STR(out, "a\\xc2\\x9b2Jb\\xff\\xc3");
    /* an escape is never cut in half: 10 columns, 7 before "..." */
    halo_fmt_cut("abcde\x1b\x1b\x1bzzzz", 10, out, sizeof out);
    CHECK_STR(out, "abcde...");
    /* the output buffer bounds it too, whatever max says */
    char small[8];
    halo_fmt_cut("abcdefghijklmnop", 40, small, sizeof small);
    CHECK_STR(small, "abcd...");
    /* padding: printf pads bytes, a character may take two */
    const char *id = "r\xc3\xa9"
                     "cup\xc3\xa9"
                     "ration";
    char line[64];
    snprintf(line, sizeof line, "[%-*s]", halo_fmt_pad(14, id), id);
    CHECK_STR(line, "[r\xc3\xa9"
                    "cup\xc3\xa9"
                    "ration  ]");
    /* a trace tree: names, statuses, tools and inputs escaped */
    halo_span sp[1];
    memset(sp, 0, sizeof sp);
    sp[0].name = "root\nsecond line\x1b[2J";
    sp[0].status_code = HALO_STATUS_ERROR;
    sp[0].status_message = "line1\nline2 \x1b[31mred";
    sp[0].trace_state = "";
    sp[0].d.tool_name = "t\x1b]0;title\x07";
    sp[0].d.input = "in\nput \x1b[1m";
    sp[0].end_ns = 1000000;
    halo_buf b = HALO_BUF_INIT;
    halo_trace_text_opts o = {.io_max = 100};
    CHECK(halo_trace_text("t1", sp, 1, &o, &b));
    halo_buf_putc(&b, '\0');
    CHECK(!strchr(b.data, '\x1b'));
    CHECK(!strchr(b.data, '\x07'));
    CHECK_CONTAINS(b.data, "root\\nsecond line\\x1b[2J");
    CHECK_CONTAINS(b.data, "ERROR: line1\\nline2 \\x1b[31mred");
    CHECK_CONTAINS(b.data, "tool=t\\x1b]0;title\\x07");
    CHECK_CONTAINS(b.data, "input: in put \\x1b[1m\n");
    halo_buf_free(&b);
}
