import { compared as fig, comparedTable, runHeader, type ComparedFigure } from './compared-table.js';
import type { DownResult } from './down-bench.js';
import type { MachineInfo } from './proc-stats.js';

const ROLES = [
  ['agent', 'agent (branchline process)'],
  ['decode', 'read (HQ walsenders / change-log readers)'],
  ['apply', 'apply (store workers / sessions)'],
] as const;

/** The down table's figures: rows/s per store and in all, time, CPU per 100k changes, agent memory. */
export function downFigures(r: DownResult): ComparedFigure[] {
  const { native, branchline } = r.drain;
  const per100k = (cpu: Readonly<Record<string, number>>, role: string) => (cpu[role] === undefined ? null : (cpu[role]! / r.changes) * 100_000);
  const all = (cpu: Readonly<Record<string, number>>) => (Object.values(cpu).reduce((s, v) => s + v, 0) / r.changes) * 100_000;
  return [
    ...r.perStore.map((s) => fig(`${s.store} rows/s (${s.changes} changes)`, s.changes / s.seconds.native, s.changes / s.seconds.branchline, 'higher')),
    fig('all stores: time to every change at every store, s', native.seconds, branchline.seconds, 'lower'),
    fig('all stores: rows/s', native.rowsPerSecond, branchline.rowsPerSecond, 'higher'),
    fig('time to the first change at a store, s', native.firstRowSeconds, branchline.firstRowSeconds, 'lower'),
    ...ROLES.map(([role, label]) => fig(`CPU s per 100k changes: ${label}`, per100k(native.cpuSeconds, role), per100k(branchline.cpuSeconds, role), 'lower')),
    fig('CPU s per 100k changes: all of the above', all(native.cpuSeconds), all(branchline.cpuSeconds), 'lower'),
    fig('agent peak RSS (VmHWM), MiB', null, branchline.agentPeakRssBytes === null ? null : branchline.agentPeakRssBytes / 1024 / 1024, 'lower'),
    fig('CPU s of processes outside the benchmark (disturbance)', native.foreignCpuSeconds, branchline.foreignCpuSeconds),
  ];
}

/** The down section of the text report. */
export function renderDownText(r: DownResult): string {
  return [
    `down: ${r.changes} store price changes at HQ (${r.rowsPerTransaction} per transaction, written in ${r.writeSeconds.toFixed(1)} s) drained to ${r.stores} stores; ${r.order.join(' then ')}`,
    '  native: per store a publication of store_price with a row filter on its code, a subscription in a store database; branchline: the example\'s store-price-down.yml, one agent',
    ...comparedTable([{ section: null, figures: downFigures(r) }]),
    '  clock: from ENABLE (all subscriptions) or the agent spawn to the poll (every 100 ms) that sees every changed price at the store(s).',
    r.verification.ok ? '  verified: every store equals HQ for both contenders (count and md5 of every product and price).' : `  DOWN VERIFICATION FAILED:\n    ${r.verification.problems.join('\n    ')}`,
    '',
  ].join('\n');
}

/** `--scenario down` alone: what ran where, then the down section. */
export function renderDownReport(doc: {
  readonly command: string;
  readonly source: { readonly commit: string; readonly modified: readonly string[] };
  readonly machine: MachineInfo;
  readonly agent: string;
  readonly down: DownResult;
}): string {
  return [
    'branchline benchmark, down channel: HQ price changes to the stores, PostgreSQL logical replication (native) vs branchline, one after the other',
    '',
    ...runHeader({ machine: doc.machine, postgres: doc.down.postgres, agent: doc.agent, command: doc.command, source: doc.source }),
    '',
    renderDownText(doc.down),
  ].join('\n');
}
