import { BranchlineError, formatProblem, isBranchlineError, ProblemsError } from '../core/errors.js';

/** Process exit codes, documented in docs/cli.md. */
export const EXIT = {
  ok: 0,
  /** A bug: printed with its stack. */
  internal: 1,
  /** Something the user must fix: configuration, mapping files, arguments, an association or parked-change command, a settlement check or query as asked. */
  usage: 2,
  /** A database is unreachable, not prepared, or refused. */
  environment: 3,
  /** `demo` ran but HQ did not end up equal to the stores. */
  verification: 4,
  /** `reconcile` found differences (without --fix, or some --fix could not repair). */
  differences: 10,
} as const;

export function exitCodeFor(e: unknown): number {
  if (!isBranchlineError(e)) return EXIT.internal;
  if (e.code === 'BL-U002') return EXIT.verification;
  if (/^BL-(C|M|P|U|K|Q|R)/.test(e.code)) return EXIT.usage;
  return EXIT.environment;
}

/** Prints an error for a person: sentences and positions, a stack only for bugs. */
export function printError(e: unknown, stream: NodeJS.WritableStream = process.stderr): void {
  if (e instanceof ProblemsError) {
    stream.write(`${e.problems.length === 1 ? 'error' : `${e.problems.length} problems`}: ${e.message.split('\n')[0]}\n`);
    for (const p of e.problems) stream.write(`  ${formatProblem(p)}\n`);
    return;
  }
  if (e instanceof BranchlineError) {
    stream.write(`error: ${e.message}\n`);
    return;
  }
  stream.write(`internal error (please report it with the lines below): ${(e as Error)?.stack ?? String(e)}\n`);
}

export function formatBytes(n: number | null): string {
  if (n === null) return '-';
  if (n < 1024) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatAgo(iso: string | null, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** A plain text table, columns padded. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}
