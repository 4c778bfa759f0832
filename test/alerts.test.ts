import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { METRIC } from '../src/metrics/metrics.js';

/**
 * The alert rules and the Grafana dashboard in ops/: promtool checks the
 * rules and runs their unit tests (series that fire each alert, a healthy
 * store that does not); every alert has such a test; the dashboard and the
 * rules name only metrics branchline declares (METRIC), every one of which
 * docs/operations.md documents; every dashboard query is valid PromQL.
 */

const root = fileURLToPath(new URL('..', import.meta.url));
const ops = (p: string) => path.join(root, 'ops', p);
const PROMTOOL = '/usr/bin/promtool';
const DECLARED = new Set<string>(Object.values(METRIC));
/** Series Prometheus itself adds (the scrape's own). */
const PROMETHEUS_SERIES = new Set(['up']);

function promtool(...args: string[]): { code: number | null; output: string } {
  if (!existsSync(PROMTOOL))
    throw new Error(`${PROMTOOL} is missing: install Debian's prometheus package (\`apt-get install -y prometheus\`, as .ci/run does); the alert rules are checked with its promtool.`);
  const r = spawnSync(PROMTOOL, args, { encoding: 'utf8', cwd: ops('prometheus') });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

/** The metric names an expression reads (histogram series named by their metric). */
function metricsIn(expr: string): string[] {
  // Label values (quoted) left out; a name followed by =, != or =~ is a label, not a metric.
  const names = [...expr.replace(/"[^"]*"/g, '""').matchAll(/\b(branchline_[a-z0-9_]+|up)\b(?!\s*(=|!=|=~))/g)].map((m) => m[1]!);
  return names.map((n) => (DECLARED.has(n) ? n : n.replace(/_(bucket|sum|count)$/, '')));
}

interface Panel {
  type: string;
  title: string;
  panels?: Panel[];
  targets?: { expr: string }[];
}

describe('alert rules and dashboard (ops/)', () => {
  it('promtool check rules accepts alerts.yml', () => {
    const r = promtool('check', 'rules', 'alerts.yml');
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /SUCCESS: 8 rules found/);
  });

  it('promtool test rules: each alert fires on its test series, and not on the healthy ones', () => {
    const r = promtool('test', 'rules', 'alerts.test.yml');
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });

  it('every alert has a firing case and a not-firing case; the rules read only declared metrics', async () => {
    const rules = YAML.parse(await readFile(ops('prometheus/alerts.yml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const tests = YAML.parse(await readFile(ops('prometheus/alerts.test.yml'), 'utf8')) as { tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[] };
    const cases = tests.tests.flatMap((t) => t.alert_rule_test);
    const alerts = rules.groups.flatMap((g) => g.rules);
    assert.deepEqual(
      alerts.map((a) => a.alert).sort(),
      ['BranchlineAgentDown', 'BranchlineNoApply', 'BranchlineParkedChanges', 'BranchlinePipelinePaused', 'BranchlineSlotWalHigh', 'BranchlineStoreDisconnected', 'BranchlineStoreHalted', 'BranchlineStoreLagHigh'],
    );
    for (const a of alerts) {
      assert.ok(cases.some((c) => c.alertname === a.alert && c.exp_alerts.length > 0), `${a.alert}: no test where it fires`);
      assert.ok(cases.some((c) => c.alertname === a.alert && c.exp_alerts.length === 0), `${a.alert}: no test where it does not fire`);
      const read = metricsIn(a.expr);
      assert.ok(read.length > 0, `${a.alert} reads no metric: ${a.expr}`);
      for (const m of read) assert.ok(DECLARED.has(m) || PROMETHEUS_SERIES.has(m), `${a.alert} reads ${m}, which METRIC does not declare`);
    }
  });

  it('the dashboard: a row per concern, a store variable, every query valid PromQL over declared metrics, filtered by $store', async () => {
    const dash = JSON.parse(await readFile(ops('grafana/branchline.json'), 'utf8')) as { panels: Panel[]; templating: { list: { name: string; query: unknown }[] } };
    const store = dash.templating.list.find((v) => v.name === 'store');
    assert.ok(store, 'a $store variable');
    assert.match(JSON.stringify(store.query), /label_values\(branchline_pipeline_state, store\)/);
    const rows = dash.panels.filter((p) => p.type === 'row').map((p) => p.title);
    assert.deepEqual(rows, ['Lag per store', 'Throughput', 'Parked', 'Slot WAL', 'Errors and connection state']);
    const panels = dash.panels.flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));
    assert.ok(panels.length >= 10, `${panels.length} panels`);
    const exprs: string[] = [];
    for (const p of panels) {
      assert.ok(p.targets && p.targets.length > 0, `panel "${p.title}" has no query`);
      for (const t of p.targets) {
        assert.match(t.expr, /store=~"\$store"/, `panel "${p.title}": ${t.expr} is not filtered by $store`);
        const read = metricsIn(t.expr);
        assert.ok(read.length > 0, `panel "${p.title}" reads no metric`);
        for (const m of read) assert.ok(DECLARED.has(m), `panel "${p.title}" reads ${m}, which METRIC does not declare`);
        exprs.push(t.expr.replaceAll('$store', '.*'));
      }
    }
    // Every concern's metrics are on the dashboard.
    const shown = new Set(exprs.flatMap(metricsIn));
    for (const m of DECLARED) if (!m.startsWith('branchline_settlement_check_duration')) assert.ok(shown.has(m), `${m} is on no panel`);
    // promtool parses each query as a recording rule's expression.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-dashboard-'));
    try {
      const file = path.join(dir, 'dashboard-queries.yml');
      await writeFile(file, YAML.stringify({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:query_${i}`, expr })) }] }));
      const r = promtool('check', 'rules', file);
      assert.equal(r.code, 0, r.output);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('docs/operations.md documents every declared metric', async () => {
    const doc = await readFile(path.join(root, 'docs', 'operations.md'), 'utf8');
    for (const m of DECLARED) assert.match(doc, new RegExp(`\\| \`${m}\` \\|`), `${m} is not in the metrics table of docs/operations.md`);
  });
});
