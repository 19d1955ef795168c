/*
 * report_check.mjs -- check an analyzer report against the halo.report/v1
 * contract (DESIGN §7) and its Markdown rendering against the report
 * layout, and score findings against a corpus's ground truth.
 *
 *   const problems = checkReport(report, { agent, windowStart, windowEnd });
 *   assert.deepEqual(problems, []);
 *   assert.deepEqual(checkMarkdown(md, report), []);
 *
 * Both checks return a list of problems (strings naming the JSON path or
 * the Markdown line) instead of throwing at the first, so one failing test
 * shows everything that is wrong. The Markdown heading strings are the
 * constants below: the report layout in one place.
 */

/* ---- the Markdown layout -------------------------------------------------- */

export const MD_TITLE = '# halo report: '; /* followed by the agent id */
export const MD_SUMMARY = '## Summary';
export const MD_STATS = '## Agent stats';
export const MD_FINDINGS = '## Findings';
/* "### <rank>. <title>" */
export const MD_FINDING_RE = /^### (\d+)\. (.+)$/;
export const MD_FINDING_LINES = ['- **What:**', '- **How often:**',
                                 '- **Examples:**', '- **Hypothesis:**',
                                 '- **Recommendation:**'];
export const MD_NO_FINDINGS = 'No recurring problems found in this window.';
export const MD_MAX_EXAMPLES = 5;

/* ---- the JSON contract ------------------------------------------------------ */

export const REPORT_SCHEMA = 'halo.report/v1';
export const FINDING_KINDS = [
    'tool_retry_loop', 'silent_failure', 'duplicate_tool_call', 'slow_span',
    'invalid_tool_input', 'unknown_tool', 'context_growth', 'cost_regression',
    'error_cluster', 'latency_regression',
];
const TOP_KEYS = ['schema', 'id', 'agent_id', 'schedule', 'window',
                  'generated_at', 'mode', 'model', 'stats', 'findings', 'budget'];
const STATS_KEYS = { traces: 'int', spans: 'int', error_traces: 'int',
                     p50_ms: 'num', p95_ms: 'num', input_tokens: 'int',
                     output_tokens: 'int', cost: 'num' };
const BUDGET_KEYS = { llm_calls: 'int', max_depth_reached: 'int',
                      input_tokens: 'int', output_tokens: 'int' };
const FINDING_KEYS = ['rank', 'kind', 'title', 'severity', 'impact', 'evidence',
                      'hypothesis', 'recommendation'];
const IMPACT_KEYS = { traces: 'int', fraction: 'num', wasted_ms: 'num',
                      wasted_tokens: 'num', wasted_cost: 'num' };
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const TRACE_ID_RE = /^[0-9a-f]{32}$/;
const SPAN_ID_RE = /^[0-9a-f]{16}$/;
const MAX_EVIDENCE = 1000;

const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const typeOk = (v, t) => (t === 'int' ? Number.isInteger(v) && v >= 0
    : typeof v === 'number' && Number.isFinite(v) && v >= 0);

/* An ISO-8601 UTC second ("2026-11-16T09:00:00Z") of a Date or ms. */
export function isoSecond(t) {
    return new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/* Exactly these keys, each of its type; problems pushed with `path`. */
function checkNumbers(obj, spec, path, problems) {
    if (!isObj(obj)) {
        problems.push(`${path}: not an object: ${JSON.stringify(obj)}`);
        return;
    }
    for (const [k, t] of Object.entries(spec)) {
        if (!(k in obj)) problems.push(`${path}.${k}: missing`);
        else if (!typeOk(obj[k], t)) {
            problems.push(`${path}.${k}: want a non-negative ${t === 'int' ? 'integer'
                : 'number'}, got ${JSON.stringify(obj[k])}`);
        }
    }
    for (const k of Object.keys(obj)) {
        if (!(k in spec)) problems.push(`${path}.${k}: unknown key`);
    }
}

function nonEmptyString(v) { return typeof v === 'string' && v.trim() !== ''; }

function checkFinding(f, i, report, problems) {
    const path = `findings[${i}]`;
    if (!isObj(f)) {
        problems.push(`${path}: not an object`);
        return;
    }
    for (const k of FINDING_KEYS) if (!(k in f)) problems.push(`${path}.${k}: missing`);
    for (const k of Object.keys(f)) {
        if (!FINDING_KEYS.includes(k)) problems.push(`${path}.${k}: unknown key`);
    }
    if (f.rank !== i + 1) {
        problems.push(`${path}.rank: ${JSON.stringify(f.rank)}, want ${i + 1} ` +
                      '(ranks 1..n in array order)');
    }
    if (!FINDING_KINDS.includes(f.kind)) {
        problems.push(`${path}.kind: ${JSON.stringify(f.kind)} is not one of the ten kinds`);
    }
    for (const k of ['title', 'hypothesis', 'recommendation']) {
        if (!nonEmptyString(f[k])) problems.push(`${path}.${k}: want a non-empty string`);
    }
    if (!['high', 'medium', 'low'].includes(f.severity)) {
        problems.push(`${path}.severity: ${JSON.stringify(f.severity)}`);
    }
    checkNumbers(f.impact, IMPACT_KEYS, `${path}.impact`, problems);
    const imp = isObj(f.impact) ? f.impact : {};
    const runs = isObj(report.stats) ? report.stats.traces : null;
    if (Number.isInteger(imp.traces) && Number.isInteger(runs)) {
        if (imp.traces < 1 || imp.traces > runs) {
            problems.push(`${path}.impact.traces: ${imp.traces} outside 1..${runs}`);
        }
        if (typeof imp.fraction === 'number' && runs > 0 &&
            Math.abs(imp.fraction - imp.traces / runs) > 0.0015) {
            problems.push(`${path}.impact.fraction: ${imp.fraction}, want ` +
                          `traces/stats.traces = ${imp.traces}/${runs}`);
        }
    }
    /* README, Impact: high when the fraction (or a waste share) >= 0.2,
     * medium at 0.05; so a fraction >= 0.2 is high and a low one < 0.05 */
    if (typeof imp.fraction === 'number') {
        if (imp.fraction >= 0.2 && f.severity !== 'high') {
            problems.push(`${path}.severity: ${f.severity} with fraction ${imp.fraction} ` +
                          '(>= 0.2 is high)');
        }
        if (imp.fraction >= 0.05 && f.severity === 'low') {
            problems.push(`${path}.severity: low with fraction ${imp.fraction}`);
        }
    }
    const ev = f.evidence;
    if (!isObj(ev)) {
        problems.push(`${path}.evidence: not an object`);
        return;
    }
    for (const k of Object.keys(ev)) {
        if (!['trace_ids', 'span_ids'].includes(k)) {
            problems.push(`${path}.evidence.${k}: unknown key`);
        }
    }
    for (const [k, re, len] of [['trace_ids', TRACE_ID_RE, 32],
                                ['span_ids', SPAN_ID_RE, 16]]) {
        const ids = ev[k];
        /* every kind cites spans too (regressions: the runs' root spans) */
        if (!Array.isArray(ids) || ids.length === 0) {
            problems.push(`${path}.evidence.${k}: want a non-empty array`);
            continue;
        }
        const bad = ids.filter((x) => typeof x !== 'string' || !re.test(x));
        if (bad.length) {
            problems.push(`${path}.evidence.${k}: not ${len} lower-case hex: ` +
                          `${JSON.stringify(bad.slice(0, 3))}`);
        }
        if (new Set(ids).size !== ids.length) {
            problems.push(`${path}.evidence.${k}: duplicate ids`);
        }
        if (ids.length > MAX_EVIDENCE) {
            problems.push(`${path}.evidence.${k}: ${ids.length} ids, more than ` +
                          `max_evidence ${MAX_EVIDENCE}`);
        }
    }
    if (Array.isArray(ev.trace_ids) && Number.isInteger(imp.traces) &&
        ev.trace_ids.length !== Math.min(imp.traces, MAX_EVIDENCE)) {
        problems.push(`${path}.evidence.trace_ids: ${ev.trace_ids.length} ids for ` +
                      `impact.traces ${imp.traces} (every affected run is cited)`);
    }
}

/*
 * Problems of a report object against halo.report/v1. `expect` (optional):
 * { agent, schedule, windowStart, windowEnd (Date/ms), mode }.
 */
export function checkReport(report, expect = {}) {
    const problems = [];
    if (!isObj(report)) return [`the report is not a JSON object`];
    for (const k of TOP_KEYS) if (!(k in report)) problems.push(`${k}: missing`);
    for (const k of Object.keys(report)) {
        if (!TOP_KEYS.includes(k)) problems.push(`${k}: unknown top-level key`);
    }
    if (report.schema !== REPORT_SCHEMA) {
        problems.push(`schema: ${JSON.stringify(report.schema)}, want "${REPORT_SCHEMA}"`);
    }
    for (const k of ['id', 'agent_id', 'schedule']) {
        if (!nonEmptyString(report[k])) problems.push(`${k}: want a non-empty string`);
    }
    if (expect.agent !== undefined && report.agent_id !== expect.agent) {
        problems.push(`agent_id: ${JSON.stringify(report.agent_id)}, want "${expect.agent}"`);
    }
    if (expect.schedule !== undefined && report.schedule !== expect.schedule) {
        problems.push(`schedule: ${JSON.stringify(report.schedule)}, want ` +
                      `"${expect.schedule}"`);
    }
    const w = report.window;
    if (!isObj(w)) {
        problems.push('window: not an object');
    } else {
        for (const k of Object.keys(w)) {
            if (!['start', 'end'].includes(k)) problems.push(`window.${k}: unknown key`);
        }
        for (const k of ['start', 'end']) {
            if (typeof w[k] !== 'string' || !ISO_RE.test(w[k])) {
                problems.push(`window.${k}: ${JSON.stringify(w[k])} is not ISO-8601 UTC`);
            }
        }
        if (expect.windowStart !== undefined && w.start !== isoSecond(expect.windowStart)) {
            problems.push(`window.start: ${w.start}, want ${isoSecond(expect.windowStart)}`);
        }
        if (expect.windowEnd !== undefined && w.end !== isoSecond(expect.windowEnd)) {
            problems.push(`window.end: ${w.end}, want ${isoSecond(expect.windowEnd)}`);
        }
    }
    if (typeof report.generated_at !== 'string' || !ISO_RE.test(report.generated_at)) {
        problems.push(`generated_at: ${JSON.stringify(report.generated_at)} is not ` +
                      'ISO-8601 UTC');
    }
    if (!['rlm', 'detectors'].includes(report.mode)) {
        problems.push(`mode: ${JSON.stringify(report.mode)}, want "rlm" or "detectors"`);
    } else if (expect.mode !== undefined && report.mode !== expect.mode) {
        problems.push(`mode: ${report.mode}, want ${expect.mode}`);
    }
    if (report.model !== null && typeof report.model !== 'string') {
        problems.push(`model: want a string or null, got ${JSON.stringify(report.model)}`);
    }
    checkNumbers(report.stats, STATS_KEYS, 'stats', problems);
    checkNumbers(report.budget, BUDGET_KEYS, 'budget', problems);
    const s = isObj(report.stats) ? report.stats : {};
    if (Number.isInteger(s.error_traces) && Number.isInteger(s.traces) &&
        s.error_traces > s.traces) {
        problems.push(`stats.error_traces ${s.error_traces} > stats.traces ${s.traces}`);
    }
    if (typeof s.p50_ms === 'number' && typeof s.p95_ms === 'number' &&
        s.p50_ms > s.p95_ms) {
        problems.push(`stats.p50_ms ${s.p50_ms} > stats.p95_ms ${s.p95_ms}`);
    }
    if (Number.isInteger(s.spans) && Number.isInteger(s.traces) && s.spans < s.traces) {
        problems.push(`stats.spans ${s.spans} < stats.traces ${s.traces}`);
    }
    if (report.mode === 'detectors' && isObj(report.budget) &&
        report.budget.llm_calls !== 0) {
        problems.push(`budget.llm_calls: ${report.budget.llm_calls} in detectors mode`);
    }
    if (!Array.isArray(report.findings)) {
        problems.push('findings: not an array');
    } else {
        report.findings.forEach((f, i) => checkFinding(f, i, report, problems));
        if (s.traces === 0 && report.findings.length) {
            problems.push('findings: findings in a window without runs');
        }
    }
    return problems;
}

/* ---- the Markdown -------------------------------------------------------- */

/*
 * Problems of a Markdown report against the layout constants above and
 * the JSON report it renders: the title names the agent; Summary, Agent
 * stats and Findings sections in that order; one "### n. title" section
 * per finding, in rank order, with the What / How often / Examples /
 * Hypothesis / Recommendation lines; the examples are the first trace ids
 * of the finding's evidence (32 hex each, at most five); with no findings
 * the Findings section says so.
 */
export function checkMarkdown(md, report) {
    const problems = [];
    if (typeof md !== 'string' || md.trim() === '') return ['the Markdown is empty'];
    const lines = md.split('\n').map((l) => l.replace(/\s+$/, ''));
    const first = lines.find((l) => l.trim() !== '');
    if (first !== `${MD_TITLE}${report.agent_id}`) {
        problems.push(`first line ${JSON.stringify(first)}, want ` +
                      `${JSON.stringify(MD_TITLE + report.agent_id)}`);
    }
    const at = (h) => lines.indexOf(h);
    const iSum = at(MD_SUMMARY);
    const iStats = at(MD_STATS);
    const iFind = at(MD_FINDINGS);
    for (const [h, i] of [[MD_SUMMARY, iSum], [MD_STATS, iStats], [MD_FINDINGS, iFind]]) {
        if (i < 0) problems.push(`no "${h}" heading`);
    }
    if (iSum >= 0 && iStats >= 0 && iFind >= 0 && !(iSum < iStats && iStats < iFind)) {
        problems.push(`sections out of order: Summary line ${iSum + 1}, Agent stats ` +
                      `line ${iStats + 1}, Findings line ${iFind + 1}`);
    }
    if (iFind < 0) return problems;
    const rest = lines.slice(iFind + 1);
    /* the findings' sections: from each "### n." heading to the next
     * heading of level <= 3 */
    const sections = [];
    for (let i = 0; i < rest.length; i++) {
        const m = MD_FINDING_RE.exec(rest[i]);
        if (m) sections.push({ rank: Number(m[1]), title: m[2], body: [] });
        else if (/^#{1,3} /.test(rest[i])) {
            if (sections.length) sections.push({ end: true });
            break;
        } else if (sections.length) sections[sections.length - 1].body.push(rest[i]);
    }
    const secs = sections.filter((x) => !x.end);
    const findings = Array.isArray(report.findings) ? report.findings : [];
    if (findings.length === 0) {
        if (!rest.some((l) => l.trim() === MD_NO_FINDINGS)) {
            problems.push(`no findings but no line "${MD_NO_FINDINGS}"`);
        }
        if (secs.length) problems.push(`${secs.length} finding sections without findings`);
        return problems;
    }
    if (rest.some((l) => l.trim() === MD_NO_FINDINGS)) {
        problems.push(`"${MD_NO_FINDINGS}" in a report with findings`);
    }
    if (secs.length !== findings.length) {
        problems.push(`${secs.length} "### n. title" sections for ` +
                      `${findings.length} findings`);
    }
    secs.forEach((sec, i) => {
        const f = findings[i];
        if (!f) return;
        const where = `finding section ${i + 1}`;
        if (sec.rank !== i + 1) problems.push(`${where}: numbered ${sec.rank}`);
        if (sec.title.trim() !== String(f.title).trim()) {
            problems.push(`${where}: title ${JSON.stringify(sec.title)}, want ` +
                          `${JSON.stringify(f.title)}`);
        }
        let last = -1;
        for (const prefix of MD_FINDING_LINES) {
            const j = sec.body.findIndex((l) => l.startsWith(prefix));
            if (j < 0) {
                problems.push(`${where}: no line starting "${prefix}"`);
                continue;
            }
            if (j < last) problems.push(`${where}: "${prefix}" out of order`);
            last = j;
            if (sec.body[j].slice(prefix.length).trim() === '') {
                problems.push(`${where}: "${prefix}" is empty`);
            }
        }
        const ex = sec.body.find((l) => l.startsWith('- **Examples:**'));
        if (ex) {
            /* distinct ids, in order of appearance (the line may name one
             * again, e.g. in a `halo traces show ID` hint) */
            const ids = [...new Set(ex.match(/\b[0-9a-fA-F]{16,}\b/g) || [])];
            const bad = ids.filter((x) => !TRACE_ID_RE.test(x));
            if (bad.length) problems.push(`${where}: example ids not 32 lower hex: ${bad}`);
            const cited = f.evidence && Array.isArray(f.evidence.trace_ids)
                ? f.evidence.trace_ids : [];
            const want = cited.slice(0, MD_MAX_EXAMPLES);
            const good = ids.filter((x) => TRACE_ID_RE.test(x));
            if (good.length === 0) problems.push(`${where}: no example trace id`);
            if (good.length > MD_MAX_EXAMPLES) {
                problems.push(`${where}: ${good.length} examples, at most ${MD_MAX_EXAMPLES}`);
            }
            const notCited = good.filter((x) => !cited.includes(x));
            if (notCited.length) {
                problems.push(`${where}: examples not in the finding's evidence: ${notCited}`);
            }
            if (good.length &&
                JSON.stringify(good) !== JSON.stringify(want.slice(0, good.length))) {
                problems.push(`${where}: examples ${good} are not the first evidence ` +
                              `trace ids ${want}`);
            }
        }
    });
    return problems;
}

/* ---- scoring against ground truth ---------------------------------------- */

/*
 * Per kind: the union of the trace ids the report's findings of that kind
 * cite, against the truth Set of that kind. Returns { kind: { found,
 * truth, hit, recall, precision, findings } } for every kind either side
 * has.
 */
export function scoreReport(report, truthByKind) {
    const cited = {};
    const count = {};
    for (const f of report.findings || []) {
        cited[f.kind] ||= new Set();
        count[f.kind] = (count[f.kind] || 0) + 1;
        for (const id of (f.evidence && f.evidence.trace_ids) || []) cited[f.kind].add(id);
    }
    const kinds = new Set([...Object.keys(cited),
                           ...Object.entries(truthByKind)
                               .filter(([, s]) => s.size > 0).map(([k]) => k)]);
    const out = {};
    for (const k of kinds) {
        const found = cited[k] || new Set();
        const truth = truthByKind[k] || new Set();
        let hit = 0;
        for (const id of found) if (truth.has(id)) hit++;
        out[k] = { found: found.size, truth: truth.size, hit,
                   recall: truth.size ? hit / truth.size : (found.size ? 0 : 1),
                   precision: found.size ? hit / found.size : (truth.size ? 0 : 1),
                   findings: count[k] || 0 };
    }
    return out;
}
