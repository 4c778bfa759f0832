import { performance } from 'node:perf_hooks';
import type { Contender } from './contender.js';
import { CpuTracker } from './cpu-tracker.js';
import { ProbeClient, readSum } from './probe-client.js';
import { peakRssBytes, PhaseCpu } from './proc-stats.js';
import { summarize, type Summary } from './stats.js';
import type { BenchStore, BenchTopology, Say } from './topology.js';
import { sleep, waitFor } from './wait.js';

export interface LiveStoreResult {
  readonly store: string;
  readonly sales: number;
  readonly salesPerSecond: number;
  /** Lag of every sale written in the window, in ms. */
  readonly lagMs: Summary;
}

export interface LiveResult {
  readonly seconds: number;
  readonly stores: readonly LiveStoreResult[];
  /** Every sale of every store together. */
  readonly lagMs: Summary;
  /** From start (ENABLE / spawn) until streaming and a first sale per store seen at HQ. */
  readonly warmUpSeconds: number;
  readonly cpuSeconds: Readonly<Record<string, number>>;
  readonly agentPeakRssBytes: number | null;
  readonly machineBusy: number | null;
  /** CPU seconds of the kernel outside any process (interrupts, softirqs, steal, kernel threads). */
  readonly kernelCpuSeconds: number;
  /** CPU seconds used by user processes outside the benchmark during the phase (disturbance; ideally ~0). */
  readonly foreignCpuSeconds: number;
}

export interface LiveOptions {
  readonly seconds: number;
  readonly pollMs: number;
  readonly timeoutMs: number;
  readonly say: Say;
}

export interface Written {
  readonly id: number;
  /** When the store's commit returned to the writer (performance.now()). */
  readonly at: number;
}

export interface Seen {
  /** When the poll was sent (performance.now()). */
  readonly at: number;
  /** Highest sale id of the store present at HQ. */
  readonly maxId: number;
}

/**
 * Lag while stores sell: one writer per store writes sales back to back
 * for `seconds`, and a poller per store asks HQ every `pollMs` for the
 * highest sale id it holds. A store's sale ids grow in commit order (one
 * writer), so the first poll that returns an id >= a sale's id is the first
 * that saw that sale. Lag = time that poll was sent - time the store's
 * commit returned to the writer. Starts from a caught-up state: the
 * contender is started, and one sale per store must reach HQ first.
 */
export async function measureLive(contender: Contender, topology: BenchTopology, options: LiveOptions): Promise<LiveResult> {
  const { seconds, pollMs, timeoutMs, say } = options;
  const stores = topology.stores;
  const pollers = await ProbeClient.openAll(stores.map((_, i) => contender.maxSaleProbe(i)));
  const counters = await ProbeClient.openAll(contender.rowsProbes());
  const tracker = new CpuTracker(() => contender.processes());
  let discovery: NodeJS.Timeout | null = null;
  let result: LiveResult;
  try {
    const started = performance.now();
    await contender.start();
    await contender.waitStreaming(timeoutMs);
    // Caught up: one sale per store reaches HQ, and HQ holds as many rows as the stores.
    const marks = await Promise.all(stores.map((s) => s.workload.sale()));
    await waitFor(`${contender.name} to catch up before the live phase`, timeoutMs, async () => {
      await contender.assertRunning();
      const seen = await Promise.all(pollers.map((p) => p.read()));
      return seen.every((m, i) => m >= Number(marks[i]));
    }, 20);
    const storeRows = (await Promise.all(stores.map((s) => topology.storeRows(s)))).reduce((a, b) => a + b, 0);
    const hqRows = await readSum(counters);
    if (hqRows !== storeRows) throw new Error(`${contender.name}: HQ holds ${hqRows} sale rows, the stores ${storeRows}, before the live phase`);
    const warmUpSeconds = (performance.now() - started) / 1000;
    say(`${contender.name}: streaming and caught up after ${warmUpSeconds.toFixed(2)} s; ${stores.length} stores write for ${seconds} s`);

    await tracker.start();
    discovery = setInterval(() => void tracker.discover().catch(() => undefined), 500);
    const phaseCpu = new PhaseCpu();
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    const written: Written[][] = stores.map(() => []);
    const seen: Seen[][] = stores.map(() => []);
    let polling = true;
    const polls = pollers.map(async (p, i) => {
      let max = 0;
      while (polling) {
        const at = performance.now();
        const m = await p.read();
        if (m > max) {
          max = m;
          seen[i]!.push({ at, maxId: m });
        }
        await sleep(Math.max(0, pollMs - (performance.now() - at)));
      }
    });
    const writers = stores.map(async (s: BenchStore, i) => {
      while (performance.now() < deadline) {
        const id = Number(await s.workload.sale());
        written[i]!.push({ id, at: performance.now() });
      }
    });
    try {
      await Promise.all(writers);
      const wroteFor = (performance.now() - t0) / 1000;
      say(`${contender.name}: stores stopped writing (${written.map((w) => w.length).join(' + ')} sales); waiting for HQ`);
      await waitFor(`${contender.name} to bring the live sales to HQ`, timeoutMs, async () => {
        await contender.assertRunning();
        return written.every((w, i) => w.length === 0 || (seen[i]!.at(-1)?.maxId ?? 0) >= w.at(-1)!.id);
      }, 20);
      tracker.sample();
      const pid = contender.agentPid();
      const perStore = stores.map((s, i): LiveStoreResult => ({
        store: s.code,
        sales: written[i]!.length,
        salesPerSecond: written[i]!.length / wroteFor,
        lagMs: summarize(lags(written[i]!, seen[i]!)),
      }));
      result = {
        seconds: wroteFor,
        stores: perStore,
        lagMs: summarize(written.flatMap((w, i) => lags(w, seen[i]!))),
        warmUpSeconds,
        cpuSeconds: tracker.totals(),
        agentPeakRssBytes: pid === null ? null : peakRssBytes(pid),
        ...phaseCpu.finish(),
      };
    } finally {
      polling = false;
      await Promise.allSettled([...polls, ...writers]);
    }
    say(`${contender.name}: lag p50 ${result.lagMs.p50.toFixed(0)} ms, p99 ${result.lagMs.p99.toFixed(0)} ms over ${result.lagMs.count} sales`);
  } catch (e) {
    await contender.stop().catch(() => undefined);
    throw e;
  } finally {
    if (discovery) clearInterval(discovery);
    await Promise.all([...pollers, ...counters].map((p) => p.close()));
  }
  await contender.stop();
  return result;
}

/** For each written sale, ms from its commit to the first poll that saw it. */
export function lags(written: readonly Written[], seen: readonly Seen[]): number[] {
  const out: number[] = [];
  let j = 0;
  for (const w of written) {
    // Both lists grow with the id: walk them together.
    while (j < seen.length && seen[j]!.maxId < w.id) j++;
    const s = seen[j];
    if (s === undefined) throw new Error(`sale ${w.id} was never seen at HQ`);
    out.push(s.at - w.at);
  }
  return out;
}

