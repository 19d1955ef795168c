/*
 * analyzer_suite.mjs -- what analyzer.test.mjs (SQLite) and
 * analyzer_pg.test.mjs (PostgreSQL) share: a daemon configured for the
 * analyzer, one accuracy case (emit a labeled corpus through the SDK,
 * wait until every span is stored with the right normalized fields, run
 * `halo analyze` per agent, check each report against halo.report/v1 and
 * score its findings against the ground truth), and the recall/precision
 * table printed for every case.
 *
 * Accuracy rule: for every injected pattern the report has findings of
 * that kind whose cited trace ids (the union over the kind's findings)
 * have recall >= 0.9 and precision >= 0.9 against the runs that carry the
 * pattern; a kind that was not injected in an agent must not be reported
 * for it; the clean agent gets no finding at all.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeRun, runHalo } from './cli.mjs';
import { buildCorpus, checkStoredSpans, describeCorpus, emitCorpus,
         pricesConfig, allStored, storedCounts } from './corpus.mjs';
import { HaloDaemon, makeTempDir } from './daemon.mjs';
import { checkMarkdown, checkReport, isoSecond, scoreReport } from './report_check.mjs';
import { waitFor } from './util.mjs';

export const MIN_RECALL = 0.9;
export const MIN_PRECISION = 0.9;
const HOUR = 3600 * 1000;

/* A 24 h window ending on the last whole hour, an hour ago at least. */
export function recentWindow(hours = 24) {
    const end = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
    return { start: end - hours * HOUR, end };
}

/*
 * Start `halo serve` for the analyzer tests: the test configuration
 * (lib/daemon.mjs) plus the agent_identity price table (genai spans carry
 * no cost) and an `analyzer:` section naming the store exporter and a
 * reports_dir inside the test's temporary directory. `store`: a
 * PostgreSQL handle, else the daemon's own SQLite file.
 */
export async function startAnalyzerDaemon({ store } = {}) {
    const dir = makeTempDir('halo-e2e-analyzer-');
    const reportsDir = join(dir, 'reports');
    mkdirSync(reportsDir);
    const halo = await HaloDaemon.start({
        dir, store,
        extra: {
            processors: { agent_identity: { prices: pricesConfig() } },
            analyzer: { store: store ? 'postgres' : 'sqlite', reports_dir: reportsDir },
        },
    });
    halo.reportsDir = reportsDir;
    return halo;
}

/* `halo analyze` arguments for one agent and window. */
export function analyzeArgs(halo, agent, window, { format = 'json', save = false } = {}) {
    const hours = Math.round((window.end - window.start) / HOUR);
    return ['analyze', '--config', halo.configPath, '--agent', agent,
            '--window', `${hours}h`, '--end', isoSecond(window.end),
            '--format', format, ...(save ? [] : ['--no-save'])];
}

/* Run `halo analyze --format json` and parse the report. */
export async function analyzeJson(halo, agent, window, opts = {}) {
    const args = analyzeArgs(halo, agent, window, { ...opts, format: 'json' });
    const r = await runHalo(args, { timeoutMs: 60000 });
    if (r.code !== 0) throw new Error(describeRun(args, r));
    try {
        return { report: JSON.parse(r.stdout), run: r, args };
    } catch (e) {
        throw new Error(`halo analyze printed no JSON report (${e.message}): ` +
                        describeRun(args, r));
    }
}

/* ---- one accuracy case ------------------------------------------------------- */

const pct = (x) => `${(100 * x).toFixed(0)}%`.padStart(4);

/* The rows of the case's table and the failures, for one agent. */
function scoreAgent(a, report, runsById) {
    const truth = a.truth;
    const injected = new Set(Object.entries(truth).filter(([, s]) => s.size > 0)
        .map(([k]) => k));
    const scores = scoreReport(report, truth);
    const rows = [];
    const failures = [];
    const clean = a.spec.patterns.length === 0;
    if (clean && report.findings.length) {
        failures.push(`${a.id} (clean): ${report.findings.length} findings: ` +
                      report.findings.map((f) => `${f.kind} "${f.title}" ` +
                                          `(${f.impact.traces} runs)`).join('; '));
    }
    for (const [kind, s] of Object.entries(scores)) {
        const p = a.spec.patterns.find((x) => x.kind === kind);
        const label = p ? (p.rate !== undefined ? `rate ${p.rate}` : `at ${p.at}`)
            : 'NOT INJECTED';
        rows.push(`${a.id.padEnd(18)} ${kind.padEnd(20)} ${label.padEnd(13)} ` +
                  `truth ${String(s.truth).padStart(4)}  ` +
                  `cited ${String(s.found).padStart(4)}` +
                  `  recall ${pct(s.recall)}  precision ${pct(s.precision)}` +
                  `  findings ${s.findings}`);
        if (!injected.has(kind)) {
            if (!clean) {
                const fs = report.findings.filter((f) => f.kind === kind);
                const carry = explain([...new Set(fs.flatMap((f) => f.evidence.trace_ids))],
                                      runsById);
                failures.push(`${a.id}: ${kind} reported but not injected: ` +
                              fs.map((f) => `"${f.title}"`).join('; ') +
                              ` -- the cited runs carry ${carry}`);
            }
            continue;
        }
        if (s.findings === 0) {
            failures.push(`${a.id}: no ${kind} finding (${label}, ${s.truth} runs)`);
            continue;
        }
        if (s.recall < MIN_RECALL || s.precision < MIN_PRECISION) {
            const cited = new Set(report.findings.filter((f) => f.kind === kind)
                .flatMap((f) => f.evidence.trace_ids));
            const missed = [...truth[kind]].filter((id) => !cited.has(id));
            const extra = [...cited].filter((id) => !truth[kind].has(id));
            failures.push(`${a.id}: ${kind} (${label}) recall ${pct(s.recall)} ` +
                          `precision ${pct(s.precision)}; missed e.g. ` +
                          `${missed.slice(0, 3).join(' ')} (they carry ` +
                          `${explain(missed, runsById)}); wrongly cited e.g. ` +
                          `${extra.slice(0, 3).join(' ')} (they carry ` +
                          `${explain(extra, runsById)})`);
        }
    }
    return { rows, failures };
}

/* What the given runs carry: "tool_retry_loop x3, nothing x2, ...". */
function explain(ids, runsById) {
    const count = {};
    for (const id of ids) {
        const r = runsById.get(id);
        const k = !r ? 'not a run of this agent'
            : (r.inWindow ? '' : 'OUTSIDE THE WINDOW: ') +
              ([...r.kinds, ...(r.transient ? ['transient error'] : [])].join('+') ||
               'nothing injected');
        count[k] = (count[k] || 0) + 1;
    }
    return Object.entries(count).map(([k, n]) => `${k} x${n}`).join(', ') || '-';
}

/*
 * Emit a case's corpus into `halo`, wait until stored, analyze every agent
 * and score. c: { name, seed, convention, transport, gzip, agents }.
 * Returns { corpus, reports: { agent: report }, failures: [...], table }.
 */
export async function runCase(halo, c, { window = recentWindow() } = {}) {
    const corpus = buildCorpus({ seed: c.seed, convention: c.convention, window,
                                 agents: c.agents });
    const t0 = Date.now();
    await emitCorpus(halo, corpus, { transport: c.transport, gzip: c.gzip });
    await waitFor(() => allStored(halo.store, corpus), {
        timeoutMs: 60000, intervalMs: 200,
        what: `all ${corpus.spanCount} spans of case ${c.name} stored`,
    }).catch(async (e) => {
        throw halo.fail(`${e.message}: stored per agent ` +
                        `${JSON.stringify(await storedCounts(halo.store, corpus))}`);
    });
    const tStored = Date.now();
    const stored = await checkStoredSpans(halo.store, corpus);
    if (stored.length) {
        throw new Error(`case ${c.name}: stored spans differ from what was sent ` +
                        `(DESIGN §5):\n${stored.join('\n')}`);
    }
    const reports = {};
    const failures = [];
    const rows = [];
    for (const a of corpus.agents) {
        const { report } = await analyzeJson(halo, a.id, window);
        reports[a.id] = report;
        const problems = checkReport(report, { agent: a.id, schedule: 'manual',
                                               windowStart: window.start,
                                               windowEnd: window.end });
        if (problems.length) {
            failures.push(`${a.id}: the report breaks halo.report/v1:\n  ` +
                          problems.join('\n  '));
        }
        const inside = a.runs.filter((r) => r.inWindow).length;
        if (report.stats && report.stats.traces !== inside) {
            failures.push(`${a.id}: stats.traces ${report.stats.traces}, sent ` +
                          `${inside} runs in the window`);
        }
        a.truth = corpus.truth[a.id];
        const runsById = new Map(a.runs.map((r) => [r.traceId, r]));
        const s = scoreAgent(a, report, runsById);
        rows.push(...s.rows);
        if (!s.rows.length) rows.push(`${a.id.padEnd(18)} (no findings, none expected)`);
        failures.push(...s.failures);
    }
    const table = `case ${c.name} (seed ${c.seed}, ${c.convention}, ` +
                  `${c.transport}${c.gzip ? '+gzip' : ''}; ${corpus.spanCount} spans, ` +
                  `stored in ${tStored - t0} ms, analyzed in ${Date.now() - tStored} ms)\n` +
                  `${describeCorpus(corpus)}\n${rows.join('\n')}`;
    return { corpus, reports, failures, table, window };
}

/* ---- saving and the reports CLI ------------------------------------------- */

/* The names a saved report may have: reports_dir/<agent>/manual/
 * <window-start>.{json,md}, <window-start> being the window start as an
 * ISO-8601 UTC second (':' possibly replaced for file systems that refuse
 * it) or compact. */
function windowStartNames(ms) {
    const iso = isoSecond(ms);
    return [iso, iso.replaceAll(':', '-'), iso.replaceAll(':', ''),
            iso.replaceAll(/[-:]/g, ''), String(ms / 1000)];
}

/*
 * `halo analyze` without --no-save: the printed JSON report is written to
 * reports_dir/<agent>/manual/<window-start>.json (the same document) and
 * .md (the Markdown layout), `halo reports list --agent A` lists its id
 * (and the list of `otherAgent` does not), `halo reports show ID --format
 * json` prints the same JSON and `--format md` its Markdown.
 */
export async function checkSavedReport(halo, agent, otherAgent, window) {
    const { report, args } = await analyzeJson(halo, agent, window, { save: true });
    assert.deepEqual(checkReport(report, { agent, schedule: 'manual' }), []);
    assert.ok(report.findings.length > 0, `${agent}: a report with findings`);
    const dir = join(halo.reportsDir, agent, 'manual');
    let files;
    try {
        files = readdirSync(dir).sort();
    } catch (e) {
        assert.fail(`halo ${args.join(' ')} wrote no ${dir}: ${e.message}`);
    }
    const names = windowStartNames(window.start);
    const base = names.find((n) => files.includes(`${n}.json`));
    assert.ok(base, `${dir} holds ${JSON.stringify(files)}, want ` +
                    `<window-start>.json and .md (${names[0]})`);
    assert.deepEqual(files, [`${base}.json`, `${base}.md`]);
    const saved = JSON.parse(readFileSync(join(dir, `${base}.json`), 'utf8'));
    assert.deepEqual(saved, report, 'the saved JSON is the printed report');
    const md = readFileSync(join(dir, `${base}.md`), 'utf8');
    assert.deepEqual(checkMarkdown(md, report), [], `${dir}/${base}.md`);

    const list = ['reports', 'list', '--config', halo.configPath, '--agent', agent];
    const lr = await runHalo(list);
    assert.equal(lr.code, 0, describeRun(list, lr));
    assert.ok(lr.stdout.includes(report.id),
              `report ${report.id} not listed: ${describeRun(list, lr)}`);
    const other = ['reports', 'list', '--config', halo.configPath, '--agent', otherAgent];
    const or = await runHalo(other);
    assert.equal(or.code, 0, describeRun(other, or));
    assert.ok(!or.stdout.includes(report.id),
              `the list of ${otherAgent} shows ${report.id}: ${or.stdout}`);
    const show = ['reports', 'show', report.id, '--config', halo.configPath,
                  '--format', 'json'];
    const sr = await runHalo(show);
    assert.equal(sr.code, 0, describeRun(show, sr));
    assert.deepEqual(JSON.parse(sr.stdout), report,
                     'halo reports show prints the saved report');
    const showMd = ['reports', 'show', report.id, '--config', halo.configPath,
                    '--format', 'md'];
    const mr = await runHalo(showMd);
    assert.equal(mr.code, 0, describeRun(showMd, mr));
    assert.deepEqual(checkMarkdown(mr.stdout, report), [], describeRun(showMd, mr));
    /* --json is --format json; the id without its "r-" finds it too */
    const bare = report.id.replace(/^r-/, '');
    const showJson = ['reports', 'show', bare, '--config', halo.configPath,
                      '--json'];
    const jr = await runHalo(showJson);
    assert.equal(jr.code, 0, describeRun(showJson, jr));
    assert.deepEqual(JSON.parse(jr.stdout), report, describeRun(showJson, jr));
}
