import { performance } from 'node:perf_hooks';
import type { Contender } from './contender.js';
import { CpuTracker } from './cpu-tracker.js';
import { ProbeClient, readSum } from './probe-client.js';
import { peakRssBytes, PhaseCpu } from './proc-stats.js';
import type { Say } from './topology.js';
import { sleep } from './wait.js';

export interface CatchUpResult {
  /** sale + sale_line rows that had to reach HQ. */
  readonly rows: number;
  /** From ENABLE / agent spawn to the poll that first saw every row at HQ. */
  readonly seconds: number;
  readonly rowsPerSecond: number;
  /** From ENABLE / agent spawn to the poll that first saw a row at HQ (start-up). */
  readonly firstRowSeconds: number;
  /** rows / (seconds - firstRowSeconds): the rate once rows flow. */
  readonly rowsPerSecondAfterFirstRow: number;
  /** CPU seconds of the contender's processes during the phase, by role (agent, decode, apply). */
  readonly cpuSeconds: Readonly<Record<string, number>>;
  /** The same, until the first row was seen at HQ (start-up: process start, catalog reads, connections). */
  readonly cpuSecondsToFirstRow: Readonly<Record<string, number>>;
  /** Peak RSS of the agent process (branchline only). */
  readonly agentPeakRssBytes: number | null;
  /** Share of the machine's CPUs that was busy during the phase (0..1). */
  readonly machineBusy: number | null;
  /** CPU seconds of the kernel outside any process (interrupts, softirqs, steal, kernel threads). */
  readonly kernelCpuSeconds: number;
  /** CPU seconds used by user processes outside the benchmark during the phase (disturbance; ideally ~0). */
  readonly foreignCpuSeconds: number;
  /** Start-up events of the contender, seconds from start (branchline: agentStarted, allStreamsOpen). */
  readonly milestones: Readonly<Record<string, number>>;
  /** With `expectedPerProbe`: seconds from start to the poll that first saw each probe's rows complete (e.g. per store). */
  readonly probeSeconds?: readonly number[];
  /** [seconds since start, rows at HQ] at every poll that found more rows (JSON only). */
  readonly progress: readonly (readonly [number, number])[];
}

export interface CatchUpOptions {
  readonly expectedRows: number;
  /** Rows HQ holds from earlier rounds (default 0): the probes must read exactly this before the start, and count from it. */
  readonly alreadyThere?: number;
  /** Rows each probe must reach (adds up to expectedRows): records when each one got there. */
  readonly expectedPerProbe?: readonly number[];
  readonly pollMs: number;
  readonly timeoutMs: number;
  readonly say: Say;
  /** Where the rows arrive, for the progress lines (default HQ). */
  readonly target?: string;
}

/**
 * Capacity: the backlog is in the store's WAL and nothing replicates. The
 * clock starts just before the contender is started (ENABLE of every
 * subscription at once, or the agent spawned) and stops at the poll that
 * first finds every row at HQ; a poll's time is when it was sent, so the
 * rows were committed by then. Polls run every `pollMs`.
 */
export async function measureCatchUp(contender: Contender, options: CatchUpOptions): Promise<CatchUpResult> {
  const { expectedRows, expectedPerProbe, pollMs, timeoutMs, say } = options;
  const where = options.target ?? 'HQ';
  const probes = await ProbeClient.openAll(contender.rowsProbes());
  const tracker = new CpuTracker(() => contender.processes());
  let result: CatchUpResult;
  try {
    const before = await readSum(probes);
    const baseline = options.alreadyThere ?? 0;
    if (before !== baseline) throw new Error(`${contender.name}: ${where} holds ${before} rows before the catch-up, not the ${baseline} of the earlier rounds`);
    await tracker.start();
    const phaseCpu = new PhaseCpu();
    const t0 = performance.now();
    await contender.start();
    let firstRowAt: number | null = null;
    let cpuToFirstRow: Record<string, number> = {};
    const progress: [number, number][] = [];
    let lastReport = t0;
    let rows = 0;
    const probeDone: (number | null)[] = probes.map(() => null);
    for (let i = 0; ; i++) {
      const sentAt = performance.now();
      const previous = rows;
      const values = await Promise.all(probes.map((p) => p.read()));
      rows = values.reduce((a, b) => a + b, 0) - baseline;
      if (expectedPerProbe) values.forEach((v, j) => (probeDone[j] ??= v >= expectedPerProbe[j]! ? (sentAt - t0) / 1000 : null));
      if (rows > previous) progress.push([Math.round(sentAt - t0) / 1000, rows]);
      if (i % 5 === 0) await contender.assertRunning();
      if (i % 5 === 0 || (rows > 0 && firstRowAt === null)) await tracker.discover();
      tracker.sample();
      if (rows > 0 && firstRowAt === null) {
        firstRowAt = sentAt;
        cpuToFirstRow = tracker.totals();
      }
      if (rows >= expectedRows) {
        await tracker.discover();
        tracker.sample();
        const pid = contender.agentPid();
        const seconds = (sentAt - t0) / 1000;
        const firstRowSeconds = ((firstRowAt ?? sentAt) - t0) / 1000;
        result = {
          rows: expectedRows,
          seconds,
          rowsPerSecond: expectedRows / seconds,
          firstRowSeconds,
          rowsPerSecondAfterFirstRow: expectedRows / Math.max(1e-3, seconds - firstRowSeconds),
          cpuSeconds: tracker.totals(),
          cpuSecondsToFirstRow: cpuToFirstRow,
          agentPeakRssBytes: pid === null ? null : peakRssBytes(pid),
          ...phaseCpu.finish(),
          progress,
          milestones: {},
          ...(expectedPerProbe ? { probeSeconds: probeDone.map((d) => d ?? seconds) } : {}),
        };
        say(`${contender.name}: ${expectedRows} rows at ${where} after ${seconds.toFixed(2)} s (${Math.round(result.rowsPerSecond)} rows/s)`);
        break;
      }
      const now = performance.now();
      if (now - t0 > timeoutMs) throw new Error(`${contender.name}: only ${rows} of ${expectedRows} rows reached ${where} in ${Math.round(timeoutMs / 1000)} s`);
      if (now - lastReport > 5_000) {
        lastReport = now;
        say(`${contender.name}: ${rows} of ${expectedRows} rows at ${where} after ${((now - t0) / 1000).toFixed(0)} s`);
      }
      await sleep(Math.max(0, pollMs - (now - sentAt)));
    }
  } catch (e) {
    await contender.stop().catch(() => undefined);
    throw e;
  } finally {
    await Promise.all(probes.map((p) => p.close()));
  }
  await contender.stop();
  return { ...result, milestones: await contender.milestones() };
}

