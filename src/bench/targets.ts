import type { CatchUpResult } from './catch-up.js';
import type { DecodeCeiling } from './decode-ceiling.js';
import type { LiveResult } from './live.js';

/** Issue 8's targets: branchline's catch-up rate against native's and against the decode ceiling, and its live lag. */
export const TARGETS = {
  /** branchline rows/s >= this x native rows/s. */
  nativeRatio: 1.5,
  /** branchline rows/s >= this share of the decode ceiling. */
  ceilingShare: 0.6,
  /** branchline's live lag p99 under this, every store. */
  liveP99Ms: 500,
} as const;

export interface Target {
  /** What is compared, e.g. "branchline / native catch-up rows/s". */
  readonly figure: string;
  /** The target, e.g. ">= 1.50x". */
  readonly goal: string;
  /** The measured value, formatted ("1.23x", "not measured"). */
  readonly value: string;
  /** null: could not be judged (the ceiling was not measured). */
  readonly met: boolean | null;
}

/** The share of the ceiling a rate reaches, or null when the ceiling was not measured. */
export function ceilingShare(rowsPerSecond: number, ceiling: DecodeCeiling): number | null {
  return ceiling.measured && ceiling.rowsPerSecond > 0 ? rowsPerSecond / ceiling.rowsPerSecond : null;
}

export function catchUpTargets(cu: Readonly<Record<'native' | 'branchline', CatchUpResult>>, ceiling: DecodeCeiling): Target[] {
  const ratio = cu.branchline.rowsPerSecond / cu.native.rowsPerSecond;
  const share = ceilingShare(cu.branchline.rowsPerSecond, ceiling);
  return [
    { figure: 'catch-up rows/s, branchline / native', goal: `>= ${TARGETS.nativeRatio.toFixed(2)}x`, value: `${ratio.toFixed(2)}x`, met: ratio >= TARGETS.nativeRatio },
    {
      figure: 'catch-up rows/s, branchline / decode ceiling',
      goal: `>= ${Math.round(TARGETS.ceilingShare * 100)}%`,
      value: share === null ? 'not measured' : `${(share * 100).toFixed(0)}%`,
      met: share === null ? null : share >= TARGETS.ceilingShare,
    },
  ];
}

export function liveTargets(live: LiveResult): Target[] {
  const worst = live.stores.reduce<{ store: string; p99: number } | null>((w, s) => (w === null || s.lagMs.p99 > w.p99 ? { store: s.store, p99: s.lagMs.p99 } : w), null);
  const p99 = worst?.p99 ?? live.lagMs.p99;
  return [
    {
      figure: `live lag p99 of branchline, worst store${worst ? ` (${worst.store})` : ''}`,
      goal: `< ${TARGETS.liveP99Ms} ms`,
      value: Number.isFinite(p99) ? `${Math.round(p99)} ms` : 'no sales',
      met: Number.isFinite(p99) ? p99 < TARGETS.liveP99Ms : null,
    },
  ];
}

/** One line per target: figure, goal, value, met / not met / not judged. */
export function renderTargets(targets: readonly Target[]): string[] {
  const w = Math.max(...targets.map((t) => t.figure.length));
  const g = Math.max(...targets.map((t) => t.goal.length));
  const v = Math.max(...targets.map((t) => t.value.length));
  return targets.map((t) => `  ${t.figure.padEnd(w)}  target ${t.goal.padEnd(g)}  ${t.value.padStart(v)}  ${t.met === null ? 'not judged' : t.met ? 'met' : 'NOT MET'}`);
}
