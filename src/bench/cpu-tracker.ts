import { cpuSeconds } from './proc-stats.js';

/** A process that does a contender's work, and what it does (e.g. "apply at HQ"). */
export interface ProcessRef {
  readonly role: string;
  readonly pid: number;
}

/**
 * CPU seconds that a contender's processes spend between `start()` and the
 * last `sample()`, summed by role. Processes are found while the phase runs
 * (a walsender or an apply worker appears only once replication starts); one
 * found after `start()` counts from zero, as it started after it.
 */
export class CpuTracker {
  private readonly seen = new Map<number, { role: string; base: number; last: number }>();

  constructor(private readonly find: () => Promise<readonly ProcessRef[]>) {}

  async start(): Promise<void> {
    this.seen.clear();
    for (const p of await this.find()) {
      const now = cpuSeconds(p.pid) ?? 0;
      this.seen.set(p.pid, { role: p.role, base: now, last: now });
    }
  }

  /** Looks for processes that appeared since the last call. */
  async discover(): Promise<void> {
    for (const p of await this.find()) {
      if (!this.seen.has(p.pid)) this.seen.set(p.pid, { role: p.role, base: 0, last: cpuSeconds(p.pid) ?? 0 });
    }
  }

  /** Reads the CPU time of every known process (a process that ended keeps its last reading). */
  sample(): void {
    for (const [pid, s] of this.seen) {
      const v = cpuSeconds(pid);
      if (v !== null) s.last = v;
    }
  }

  /** CPU seconds by role since `start()`. */
  totals(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.seen.values()) out[s.role] = (out[s.role] ?? 0) + Math.max(0, s.last - s.base);
    return out;
  }
}
