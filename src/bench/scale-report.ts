import { runHeader } from './compared-table.js';
import type { MachineInfo } from './proc-stats.js';
import type { ScaleResult, ScaleRun } from './scale-bench.js';

/** What one row of the scale table says about one store count, and how it grew from the previous one. */
export interface ScaleFigures {
  readonly stores: number;
  readonly salesPerSecond: number;
  /** stores x --scale-rate. */
  readonly targetSalesPerSecond: number;
  readonly lagP50Ms: number;
  readonly lagP99Ms: number;
  readonly worstStoreP99Ms: number;
  readonly drainSeconds: number;
  readonly keptUp: boolean;
  readonly agentPeakRssMiB: number | null;
  readonly agentRssPerStoreMiB: number | null;
  /** (peak RSS - previous run's peak RSS) / (stores - previous stores): what one more store costs. */
  readonly rssPerAddedStoreMiB: number | null;
  /** Agent CPU seconds per second of the window (writing + drain). */
  readonly agentCpuPerSecond: number | null;
  readonly agentCpuPer100kRows: number | null;
  /** Agent CPU s per s against the previous run, per added store. */
  readonly cpuPerSecondPerAddedStore: number | null;
  /** CPU s per s of the store walsenders (decode) and of the agent's HQ sessions (apply): the servers' share. */
  readonly decodeCpuPerSecond: number | null;
  readonly applyCpuPerSecond: number | null;
  /** Share of all cores busy during the window, %. */
  readonly machineBusyPct: number | null;
  readonly warmUpSeconds: number;
  readonly verified: boolean;
}

export function scaleFigures(r: ScaleResult): ScaleFigures[] {
  const mib = (b: number | null) => (b === null ? null : b / 1024 / 1024);
  const perSecond = (run: ScaleRun, role: string) => (run.cpuSeconds[role] === undefined ? null : run.cpuSeconds[role] / run.windowSeconds);
  const cpuPerSecond = (run: ScaleRun) => perSecond(run, 'agent');
  return r.runs.map((run, i) => {
    const prev = i > 0 ? r.runs[i - 1]! : null;
    const rss = mib(run.agentPeakRssBytes);
    const prevRss = prev ? mib(prev.agentPeakRssBytes) : null;
    const cpu = cpuPerSecond(run);
    const prevCpu = prev ? cpuPerSecond(prev) : null;
    const added = prev ? run.stores - prev.stores : 0;
    return {
      stores: run.stores,
      salesPerSecond: run.salesPerSecond,
      targetSalesPerSecond: run.stores * r.ratePerStore,
      lagP50Ms: run.lagMs.p50,
      lagP99Ms: run.lagMs.p99,
      worstStoreP99Ms: run.worstStoreP99Ms,
      drainSeconds: run.drainSeconds,
      keptUp: run.keptUp,
      agentPeakRssMiB: rss,
      agentRssPerStoreMiB: rss === null ? null : rss / run.stores,
      rssPerAddedStoreMiB: rss !== null && prevRss !== null && added > 0 ? (rss - prevRss) / added : null,
      agentCpuPerSecond: cpu,
      agentCpuPer100kRows: run.cpuSeconds['agent'] === undefined || run.rows === 0 ? null : (run.cpuSeconds['agent'] / run.rows) * 100_000,
      cpuPerSecondPerAddedStore: cpu !== null && prevCpu !== null && added > 0 ? (cpu - prevCpu) / added : null,
      decodeCpuPerSecond: perSecond(run, 'decode'),
      applyCpuPerSecond: perSecond(run, 'apply'),
      machineBusyPct: run.machineBusy === null ? null : run.machineBusy * 100,
      warmUpSeconds: run.warmUpSeconds,
      verified: run.verified,
    };
  });
}

function num(v: number | null, digits = 1): string {
  return v === null || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

/** The scale table: one row per store count. */
export function renderScaleTable(r: ScaleResult): string[] {
  const head = ['stores', 'sales/s (target)', 'lag p50 ms', 'lag p99 ms', 'worst store p99', 'drain s', 'kept up', 'peak RSS MiB', 'MiB/store', 'MiB/added store', 'CPU s/s', 'CPU s/100k rows', 'CPU s/s per added store', 'decode CPU s/s', 'HQ apply CPU s/s', 'machine busy %', 'warm-up s'];
  const rows = scaleFigures(r).map((f) => [
    String(f.stores),
    `${num(f.salesPerSecond)} (${num(f.targetSalesPerSecond)})`,
    num(f.lagP50Ms, 0),
    num(f.lagP99Ms, 0),
    num(f.worstStoreP99Ms, 0),
    num(f.drainSeconds, 2),
    f.keptUp ? 'yes' : 'NO',
    num(f.agentPeakRssMiB),
    num(f.agentRssPerStoreMiB, 2),
    num(f.rssPerAddedStoreMiB, 2),
    num(f.agentCpuPerSecond, 3),
    num(f.agentCpuPer100kRows, 2),
    num(f.cpuPerSecondPerAddedStore, 4),
    num(f.decodeCpuPerSecond, 3),
    num(f.applyCpuPerSecond, 3),
    num(f.machineBusyPct, 0),
    num(f.warmUpSeconds),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (row: readonly string[]) => '  ' + row.map((c, i) => c.padStart(widths[i]!)).join('  ');
  return [line(head), ...rows.map(line)];
}

export interface ScaleDoc {
  readonly command: string;
  readonly startedAt: string;
  readonly source: { readonly commit: string; readonly modified: readonly string[] };
  readonly machine: MachineInfo;
  readonly agent: string;
  readonly scale: ScaleResult;
}

export function renderScaleReport(doc: ScaleDoc): string {
  const r = doc.scale;
  const failed = r.runs.filter((run) => !run.verified);
  return [
    'branchline benchmark, scale: one agent serving N stores (one store database and slot each), every store writing at a fixed rate',
    '',
    ...runHeader({ machine: doc.machine, postgres: r.postgres, agent: doc.agent, command: doc.command, source: doc.source }),
    `workload:  every store writes ${r.ratePerStore} sales/s (1 header + ${r.linesPerSale} lines each, one writer, paced) for ${r.secondsPerRun} s; HQ polled every 50 ms for every store's last sale`,
    `servers:   ${r.storesPerServer === null ? 'every store database on one stores server (each walsender reads the WAL of all of them)' : `up to ${r.storesPerServer} store databases per stores server (--stores-per-server)`}, and HQ; shared_buffers=32MB`,
    '',
    ...renderScaleTable(r),
    '',
    ...r.runs.map(
      (run) =>
        `  ${run.stores} store${run.stores === 1 ? '' : 's'}: lag p99 by second of the window, ms: ${run.lagBySecond.map((b) => num(b.p99, 0)).join(' ')}` +
        ` (HQ poll took p50 ${num(run.pollDurationMs.p50, 0)} ms, max ${num(run.pollDurationMs.max, 0)} ms)`,
    ),
    '',
    `Definitions: lag = first HQ poll that sees the sale - the store commit returning; kept up = every sale at HQ within ${r.keepUpSeconds} s of the stores stopping;`,
    'RSS is the agent\'s VmHWM; CPU is the agent process\'s over the writing and the drain. See docs/benchmarks.md.',
    ...r.runs.filter((run) => run.foreignCpuSeconds > Math.max(0.25, 0.05 * run.windowSeconds)).map(
      (run) => `WARNING: other processes used ${run.foreignCpuSeconds.toFixed(1)} CPU s during the ${run.windowSeconds.toFixed(1)} s of the ${run.stores}-store run; run again on a quiet machine.`,
    ),
    failed.length ? `VERIFICATION FAILED:\n  ${failed.flatMap((run) => run.problems).join('\n  ')}` : 'verified: after each run HQ holds exactly the stores\' sale rows.',
    '',
  ].join('\n');
}

/** The JSON document of `--scenario scale --json`: the runs and the table's figures. */
export function scaleJson(doc: ScaleDoc): ScaleDoc & { readonly figures: ScaleFigures[] } {
  return { ...doc, figures: scaleFigures(doc.scale) };
}
