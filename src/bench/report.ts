import type { CatchUpResult } from './catch-up.js';
import { compared as fig, comparedTable, runHeader, type ComparedFigure } from './compared-table.js';
import type { DecodeCeiling } from './decode-ceiling.js';
import type { DownResult } from './down-bench.js';
import { renderDownText } from './down-report.js';
import type { LiveResult } from './live.js';
import type { ContenderName } from './options.js';
import type { MachineInfo } from './proc-stats.js';
import { catchUpTargets, ceilingShare, liveTargets, renderTargets, type Target } from './targets.js';
import { renderTriggerCostText, triggerCostDisturbances, triggerCostJson, type TriggerCostResult } from './trigger-cost-report.js';

/** One catch-up round: a backlog of its own, drained by every contender. */
export interface CatchUpRound {
  readonly round: number;
  readonly rows: number;
  readonly backlogSeconds: number;
  readonly ceiling: DecodeCeiling;
  readonly catchUp: Readonly<Record<ContenderName, CatchUpResult>>;
  /** branchline rows/s / native rows/s in this round. */
  readonly ratio: number;
}

/**
 * The round whose ratio is the median (of an even count, the lower of the
 * two middle ones: the figure judged never flatters branchline).
 */
export function medianRound(rounds: readonly CatchUpRound[]): CatchUpRound {
  if (rounds.length === 0) throw new Error('no catch-up round was run');
  const sorted = [...rounds].sort((a, b) => a.ratio - b.ratio);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

export interface BenchResult {
  readonly command: string;
  readonly startedAt: string;
  /** What was measured: the commit and the agent files changed in the working tree. */
  readonly source: { readonly commit: string; readonly modified: readonly string[] };
  readonly machine: MachineInfo & { readonly postgres: string };
  readonly settings: {
    readonly servers: Readonly<Record<string, string | number>>;
    readonly nativeSubscription: { readonly synchronous_commit: string; readonly copy_data: false };
    readonly branchline: { readonly agent: string; readonly batchMaxRows: number; readonly batchMaxDelayMs: number; readonly batchChunkRows: number; readonly sessionReplicationRole: string; readonly catchUpStart: 'resume' | 'spawn' };
  };
  readonly workload: {
    readonly stores: number;
    readonly sales: number;
    readonly linesPerSale: number;
    readonly rows: number;
    readonly writersPerStore: number;
    readonly backlogSeconds: number;
  };
  readonly order: readonly ContenderName[];
  /** The median round's catch-up (see catchUpRounds). */
  readonly catchUp: Readonly<Record<ContenderName, CatchUpResult>>;
  /** pg_recvlogical with pgoutput over the same WAL, all stores at once: the most any contender could do (the median round's). */
  readonly ceiling: DecodeCeiling;
  /** Every catch-up round (`--catch-up-rounds`, default 1), in the order run. */
  readonly catchUpRounds: readonly CatchUpRound[];
  /** The round shown as `catchUp` and judged by the targets. */
  readonly medianRound: number;
  readonly live: Readonly<Record<ContenderName, LiveResult>> | null;
  readonly verification: { readonly ok: boolean; readonly problems: readonly string[] };
  /** The store's write throughput with and without capture (null when `--trigger-cost-sales 0` left it out). */
  readonly triggerCost: TriggerCostResult | null;
  /** HQ price changes drained to the stores (null when `--down-changes 0` left it out). */
  readonly down: DownResult | null;
}

/** Every target of issue 8 this run can judge. */
export function targetsOf(r: BenchResult): Target[] {
  return [...catchUpTargets(r.catchUp, r.ceiling), ...(r.live ? liveTargets(r.live.branchline) : [])];
}

/** The decode ceiling's lines of the text report. */
export function renderCeiling(r: BenchResult): string[] {
  const c = r.ceiling;
  if (!c.measured) return [`decode ceiling: not measured: ${c.reason}`];
  const pct = (rate: number) => `${((ceilingShare(rate, c) ?? 0) * 100).toFixed(0)}%`;
  const cpu = Object.entries(c.cpuSeconds).map(([role, s]) => `${role} ${((s / c.rows) * 100_000).toFixed(2)}`).join(', ');
  return [
    `decode ceiling: ${Math.round(c.rowsPerSecond)} rows/s (${c.rows} rows in ${c.seconds.toFixed(2)} s; one pg_recvlogical per store, pgoutput proto_version=1, to the WAL end; ` +
      `${(c.bytes / 1024 / 1024).toFixed(1)} MiB read; CPU s per 100k rows: ${cpu})`,
    `  native ${Math.round(r.catchUp.native.rowsPerSecond)} rows/s = ${pct(r.catchUp.native.rowsPerSecond)} of it; branchline ${Math.round(r.catchUp.branchline.rowsPerSecond)} rows/s = ${pct(r.catchUp.branchline.rowsPerSecond)} of it`,
    `  tool: ${c.tool}`,
  ];
}

const CPU_ROLES = [
  ['agent', 'agent (branchline process)'],
  ['decode', 'decode (store walsenders)'],
  ['apply', 'apply (HQ worker / backends)'],
] as const;

export type { ComparedFigure };

/** Rows of the comparison, grouped by section. */
export function comparedFigures(r: BenchResult): { section: string; figures: ComparedFigure[] }[] {
  const per100k = (c: CatchUpResult, role: string) => (c.cpuSeconds[role] === undefined ? null : (c.cpuSeconds[role]! / c.rows) * 100_000);
  const cu = r.catchUp;
  const sections = [
    {
      section: `catch-up: ${r.workload.rows} rows (${r.workload.sales} sales) waiting in the store WAL`,
      figures: [
        fig('time to all rows at HQ, s', cu.native.seconds, cu.branchline.seconds, 'lower'),
        fig('rows/s (start to all rows at HQ)', cu.native.rowsPerSecond, cu.branchline.rowsPerSecond, 'higher'),
        fig('time to first row at HQ, s', cu.native.firstRowSeconds, cu.branchline.firstRowSeconds, 'lower'),
        fig('  start-up: "agent started" logged at, s', null, cu.branchline.milestones['agentStarted'] ?? null),
        fig('  start-up: every store stream open at, s', null, cu.branchline.milestones['allStreamsOpen'] ?? null),
        fig('rows/s after the first row', cu.native.rowsPerSecondAfterFirstRow, cu.branchline.rowsPerSecondAfterFirstRow, 'higher'),
        ...CPU_ROLES.map(([role, label]) => fig(`CPU s per 100k rows: ${label}`, per100k(cu.native, role), per100k(cu.branchline, role), 'lower')),
        fig('CPU s per 100k rows: all of the above', total(cu.native) / cu.native.rows * 100_000, total(cu.branchline) / cu.branchline.rows * 100_000, 'lower'),
        fig('agent CPU s until the first row at HQ (start-up)', null, cu.branchline.cpuSecondsToFirstRow['agent'] ?? null, 'lower'),
        fig('agent peak RSS (VmHWM), MiB', null, mib(cu.branchline.agentPeakRssBytes), 'lower'),
        fig('machine CPU busy, % of all cores', pct(cu.native.machineBusy), pct(cu.branchline.machineBusy)),
        fig('CPU s of the kernel outside processes (irq, softirq, threads)', cu.native.kernelCpuSeconds, cu.branchline.kernelCpuSeconds),
        fig('CPU s of processes outside the benchmark (disturbance)', cu.native.foreignCpuSeconds, cu.branchline.foreignCpuSeconds),
      ],
    },
  ];
  if (r.live) {
    const l = r.live;
    const figures: ComparedFigure[] = [];
    l.native.stores.forEach((ns, i) => {
      const bs = l.branchline.stores[i]!;
      figures.push(
        fig(`${ns.store} sales written/s`, ns.salesPerSecond, bs.salesPerSecond, 'higher'),
        fig(`${ns.store} lag p50, ms`, ns.lagMs.p50, bs.lagMs.p50, 'lower'),
        fig(`${ns.store} lag p99, ms`, ns.lagMs.p99, bs.lagMs.p99, 'lower'),
      );
    });
    figures.push(
      fig('all stores lag p50, ms', l.native.lagMs.p50, l.branchline.lagMs.p50, 'lower'),
      fig('all stores lag p99, ms', l.native.lagMs.p99, l.branchline.lagMs.p99, 'lower'),
      fig('all stores lag max, ms', l.native.lagMs.max, l.branchline.lagMs.max, 'lower'),
      ...CPU_ROLES.map(([role, label]) => fig(`CPU s per s: ${label}`, perSecond(l.native, role), perSecond(l.branchline, role), 'lower')),
      fig('agent peak RSS (VmHWM), MiB', null, mib(l.branchline.agentPeakRssBytes), 'lower'),
      fig('machine CPU busy, % of all cores', pct(l.native.machineBusy), pct(l.branchline.machineBusy)),
      fig('CPU s of the kernel outside processes (irq, softirq, threads)', l.native.kernelCpuSeconds, l.branchline.kernelCpuSeconds),
      fig('CPU s of processes outside the benchmark (disturbance)', l.native.foreignCpuSeconds, l.branchline.foreignCpuSeconds),
    );
    sections.push({ section: `live: every store writes sales back to back for ${r.live.native.seconds.toFixed(0)} s, one writer each`, figures });
  }
  return sections;
}

function total(c: CatchUpResult): number {
  return Object.values(c.cpuSeconds).reduce((s, v) => s + v, 0);
}

function perSecond(l: LiveResult, role: string): number | null {
  return l.cpuSeconds[role] === undefined ? null : l.cpuSeconds[role]! / l.seconds;
}

function mib(bytes: number | null): number | null {
  return bytes === null ? null : bytes / 1024 / 1024;
}

function pct(share: number | null): number | null {
  return share === null ? null : share * 100;
}

/** The human-readable report. */
export function renderText(r: BenchResult): string {
  const out: string[] = [];
  out.push('branchline benchmark: PostgreSQL logical replication (native) vs branchline, same WAL, one after the other');
  out.push('');
  out.push(...runHeader({ machine: r.machine, postgres: r.machine.postgres, agent: r.settings.branchline.agent, command: r.command, source: r.source }));
  out.push(`servers:   ${Object.entries(r.settings.servers).map(([k, v]) => `${k}=${v}`).join(' ')} (both servers)`);
  out.push(
    `native:    one subscription per store, synchronous_commit=${r.settings.nativeSubscription.synchronous_commit}; ` +
      `branchline: batch max_rows=${r.settings.branchline.batchMaxRows} max_delay_ms=${r.settings.branchline.batchMaxDelayMs} chunk_rows=${r.settings.branchline.batchChunkRows}, ` +
      `HQ session_replication_role=${r.settings.branchline.sessionReplicationRole}` +
      (r.settings.branchline.sessionReplicationRole === 'replica' ? ' (like the subscriptions: no FK checks or ordinary triggers for applied rows)' : ' (HQ checks foreign keys; subscriptions do not)'),
  );
  out.push(
    r.settings.branchline.catchUpStart === 'resume'
      ? 'start:     native: ALTER SUBSCRIPTION ... ENABLE; branchline: `branchline resume` of every store (the agent runs throughout, its pipelines paused between phases)'
      : 'start:     native: ALTER SUBSCRIPTION ... ENABLE; branchline: the agent process spawned (--catch-up-start spawn: its start-up counts)',
  );
  out.push(
    `workload:  ${r.workload.stores} stores, ${r.workload.sales} sales of 1 header + ${r.workload.linesPerSale} lines, one sale per store transaction; ` +
      `backlog written by ${r.workload.writersPerStore} connections per store in ${r.workload.backlogSeconds.toFixed(1)} s`,
  );
  out.push(`order:     ${r.order.join(' then ')} in each measurement`);
  if (r.catchUpRounds.length > 1)
    out.push(
      `rounds:    ${r.catchUpRounds.length} catch-up rounds, a new backlog each; branchline / native: ${r.catchUpRounds.map((x) => `${x.ratio.toFixed(2)}x`).join(', ')}; ` +
        `the catch-up figures and targets below are round ${r.medianRound}'s, the median`,
    );
  out.push('');
  out.push(...comparedTable(comparedFigures(r)));
  out.push('');
  out.push(
    `Definitions: catch-up time runs from ALTER SUBSCRIPTION ... ENABLE (all stores at once) or ${r.settings.branchline.catchUpStart === 'resume' ? '`branchline resume`' : 'the agent spawn'} to the poll (every 100 ms) that finds every row at HQ;`,
  );
  out.push('lag = first poll (every 20 ms) that sees the sale at HQ - the store commit returning to its writer. See docs/benchmarks.md.');
  out.push('', ...renderCeiling(r), '', 'targets (issue 8):', ...renderTargets(targetsOf(r)), '');
  for (const warning of disturbances(r)) out.push(`WARNING: ${warning}`);
  out.push(
    r.verification.ok
      ? 'verified: after the catch-up both HQ sides hold exactly the stores\' sales (counts and sums per store).'
      : `VERIFICATION FAILED:\n  ${r.verification.problems.join('\n  ')}`,
  );
  if (r.down) out.push('', renderDownText(r.down).trimEnd());
  if (r.triggerCost) out.push('', renderTriggerCostText(r.triggerCost).trimEnd());
  return out.join('\n') + '\n';
}

/** Phases during which other processes used more than 5% of one core (and over 0.25 s): their figures are disturbed. */
export function disturbances(r: BenchResult): string[] {
  const phases: [string, { foreignCpuSeconds: number }, number][] = [];
  if (r.ceiling.measured) phases.push(['decode ceiling', r.ceiling, r.ceiling.seconds]);
  for (const n of r.order) {
    phases.push([`catch-up ${n}`, r.catchUp[n], r.catchUp[n].seconds]);
    if (r.live) phases.push([`live ${n}`, r.live[n], r.live[n].seconds]);
  }
  return phases
    .filter(([, p, seconds]) => p.foreignCpuSeconds > Math.max(0.25, 0.05 * seconds))
    .map(([name, p, seconds]) => `other processes used ${p.foreignCpuSeconds.toFixed(1)} CPU s during the ${seconds.toFixed(1)} s of ${name}; run again on a quiet machine.`);
}

/** The JSON document of `--json`. */
export function renderJson(r: BenchResult): string {
  const triggerCost = r.triggerCost ? triggerCostJson(r.triggerCost) : null;
  return JSON.stringify({ ...r, compared: comparedFigures(r), targets: targetsOf(r), disturbances: [...disturbances(r), ...(r.triggerCost ? triggerCostDisturbances(r.triggerCost) : [])], triggerCost }, null, 2) + '\n';
}
