import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { AgentCommand } from './agent-process.js';
import { BranchlineContender } from './branchline-contender.js';
import { CpuTracker } from './cpu-tracker.js';
import { lags, type Seen, type Written } from './live.js';
import type { BenchOptions } from './options.js';
import { peakRssBytes, PhaseCpu, rssBytes } from './proc-stats.js';
import { summarize, type Summary } from './stats.js';
import { BenchTopology, type Say } from './topology.js';
import { sleep, waitFor } from './wait.js';

/** HQ is asked for every store's highest sale id this often (one query for all stores). */
const SCALE_POLL_MS = 50;

export interface ScaleRun {
  readonly stores: number;
  /** From the agent's spawn until every store streams and a first sale per store is at HQ. */
  readonly warmUpSeconds: number;
  /** How long the stores wrote. */
  readonly seconds: number;
  readonly sales: number;
  readonly rows: number;
  /** Sales per second all stores managed together (the target is stores x --scale-rate). */
  readonly salesPerSecond: number;
  /** Lag of every sale of every store, ms. */
  readonly lagMs: Summary;
  /** Lag p50 and p99 of the sales written in each second of the window, ms (does the lag grow, or settle?). */
  readonly lagBySecond: readonly { readonly p50: number; readonly p99: number }[];
  /** How long the HQ poll (every store's highest sale id, one query) took, ms: a lag is only as exact as this. */
  readonly pollDurationMs: Summary;
  /** The worst store's lag p99, ms. */
  readonly worstStoreP99Ms: number;
  /** From the last sale written to every sale at HQ, s. */
  readonly drainSeconds: number;
  /** Every sale at HQ within --keep-up-seconds of the stores stopping. */
  readonly keptUp: boolean;
  readonly agentPeakRssBytes: number | null;
  /** The agent's RSS (VmRSS) when the stores stopped writing. */
  readonly agentRssBytes: number | null;
  /** CPU seconds by role from the start of the writing to the drain (agent, decode, apply). */
  readonly cpuSeconds: Readonly<Record<string, number>>;
  readonly windowSeconds: number;
  readonly machineBusy: number | null;
  readonly foreignCpuSeconds: number;
  /** HQ holds exactly the stores' sale rows afterwards. */
  readonly verified: boolean;
  readonly problems: readonly string[];
}

export interface ScaleResult {
  readonly postgres: string;
  /** Store databases per stores server (null: all on one). */
  readonly storesPerServer: number | null;
  readonly ratePerStore: number;
  readonly secondsPerRun: number;
  readonly linesPerSale: number;
  readonly keepUpSeconds: number;
  readonly runs: readonly ScaleRun[];
}

/**
 * `--scenario scale`: for each store count N, a fresh topology with N store
 * databases (each with its slot) and one agent serving all of them; every
 * store writes `--scale-rate` sales per second, paced, for
 * `--scale-seconds`; HQ is polled for every store's highest sale id. Reports
 * the agent's memory and CPU, the lag across stores and whether the agent
 * kept up (everything at HQ within `--keep-up-seconds` of the end).
 */
export async function runScaleBench(options: BenchOptions, command: AgentCommand, cleanup: (step: () => Promise<void>) => void, say: Say): Promise<ScaleResult> {
  const runs: ScaleRun[] = [];
  let postgres = 'unknown';
  for (const n of options.storeCounts) {
    say(`scale: ${n} store${n === 1 ? '' : 's'}`);
    // Small buffers: N store databases share one server, and the agent is what is measured.
    const topology = await BenchTopology.create({ ...options, stores: n, concurrency: 1 }, say, {
      native: false,
      ceiling: false,
      settings: { shared_buffers: '32MB' },
      ...(options.storesPerServer !== undefined ? { storesPerServer: options.storesPerServer } : {}),
    });
    cleanup(() => topology.dispose());
    const agent = await BranchlineContender.create(topology, command, options.agentCpuProf);
    cleanup(() => agent.dispose());
    try {
      postgres = await topology.serverVersion();
      runs.push(await scaleRun(topology, agent, options, say));
    } catch (e) {
      const tail = await agent.logTail().catch(() => '');
      if (tail) say(`branchline log, last lines:\n${tail}`);
      throw e;
    } finally {
      await agent.stop().catch(() => undefined);
      await agent.dispose();
      await topology.dispose();
    }
  }
  return { postgres, storesPerServer: options.storesPerServer ?? null, ratePerStore: options.scaleRate, secondsPerRun: options.scaleSeconds, linesPerSale: options.lines, keepUpSeconds: options.keepUpMs / 1000, runs };
}

async function scaleRun(topology: BenchTopology, agent: BranchlineContender, options: BenchOptions, say: Say): Promise<ScaleRun> {
  const stores = topology.stores;
  const n = stores.length;
  const codes = stores.map((s) => s.code);
  const hq = new pg.Client({ connectionString: topology.hqUrl, application_name: 'bench-probe' });
  hq.on('error', () => undefined);
  await hq.connect();
  const maxIds = async (): Promise<number[]> => {
    const r = await hq.query<{ n: string }>(
      `SELECT (SELECT coalesce(max(sale_id), 0) FROM store_sale WHERE store_code = s.code)::text AS n FROM unnest($1::text[]) WITH ORDINALITY s(code, i) ORDER BY i`,
      [codes],
    );
    return r.rows.map((row) => Number(row.n));
  };
  try {
    // As before every other phase: the set-up's dirty pages are not the window's to write.
    await topology.checkpoint();
    const started = performance.now();
    await agent.start();
    await agent.waitStreaming(options.timeoutMs);
    const marks = await Promise.all(stores.map((s) => s.workload.sale()));
    await waitFor('the agent to bring a first sale of every store to HQ', options.timeoutMs, async () => {
      await agent.assertRunning();
      return (await maxIds()).every((m, i) => m >= Number(marks[i]));
    }, 50);
    const warmUpSeconds = (performance.now() - started) / 1000;
    say(`scale ${n}: streaming after ${warmUpSeconds.toFixed(1)} s; every store writes ${options.scaleRate} sales/s for ${options.scaleSeconds} s`);

    const tracker = new CpuTracker(() => agent.processes());
    await tracker.start();
    const discovery = setInterval(() => void tracker.discover().catch(() => undefined), 1_000);
    const phaseCpu = new PhaseCpu();
    const written: Written[][] = stores.map(() => []);
    const seen: Seen[][] = stores.map(() => []);
    const t0 = performance.now();
    const deadline = t0 + options.scaleSeconds * 1000;
    const interval = 1000 / options.scaleRate;
    let polling = true;
    const pollDurations: number[] = [];
    const poll = (async () => {
      const max = stores.map(() => 0);
      while (polling) {
        const at = performance.now();
        const ids = await maxIds();
        pollDurations.push(performance.now() - at);
        ids.forEach((m, i) => {
          if (m > max[i]!) {
            max[i] = m;
            seen[i]!.push({ at, maxId: m });
          }
        });
        await sleep(Math.max(0, SCALE_POLL_MS - (performance.now() - at)));
      }
    })();
    // Paced writers, their phases spread over one interval so the stores do not all commit at once.
    const writers = stores.map(async (s, i) => {
      for (let k = 0; ; k++) {
        const due = t0 + (i / n) * interval + k * interval;
        if (due >= deadline) return;
        await sleep(Math.max(0, due - performance.now()));
        const id = Number(await s.workload.sale());
        written[i]!.push({ id, at: performance.now() });
      }
    });
    let drainSeconds: number;
    let rssAtEnd: number | null;
    let seconds: number;
    try {
      await Promise.all(writers);
      const stoppedAt = performance.now();
      // The window is fixed; the last sale may commit a little before its end.
      seconds = Math.max(options.scaleSeconds, (stoppedAt - t0) / 1000);
      rssAtEnd = rssBytes(agent.agentPid() ?? -1);
      const done = () => written.every((w, i) => w.length === 0 || (seen[i]!.at(-1)?.maxId ?? 0) >= w.at(-1)!.id);
      await waitFor(`the agent to bring every sale of ${n} stores to HQ`, options.timeoutMs, async () => {
        await agent.assertRunning();
        return done();
      }, 20);
      drainSeconds = (performance.now() - stoppedAt) / 1000;
    } finally {
      polling = false;
      clearInterval(discovery);
      await Promise.allSettled([poll, ...writers]);
    }
    tracker.sample();
    const windowSeconds = (performance.now() - t0) / 1000;
    const cpu = phaseCpu.finish();
    const agentPeakRssBytes = peakRssBytes(agent.agentPid() ?? -1);
    const sales = written.reduce((a, w) => a + w.length, 0);
    const storeRows = (await Promise.all(stores.map((s) => topology.storeRows(s)))).reduce((a, b) => a + b, 0);
    const hqRows = Number((await hq.query<{ n: string }>(`SELECT ((SELECT count(*) FROM store_sale) + (SELECT count(*) FROM store_sale_line))::text AS n`)).rows[0]?.n ?? 0);
    const problems = hqRows === storeRows ? [] : [`HQ holds ${hqRows} sale rows, the ${n} stores ${storeRows}.`];
    const buckets: number[][] = [];
    written.forEach((w, i) => lags(w, seen[i]!).forEach((lag, j) => (buckets[Math.floor((w[j]!.at - t0) / 1000)] ??= []).push(lag)));
    const run: ScaleRun = {
      stores: n,
      warmUpSeconds,
      seconds,
      sales,
      rows: sales * (1 + options.lines),
      salesPerSecond: sales / seconds,
      lagMs: summarize(written.flatMap((w, i) => lags(w, seen[i]!))),
      lagBySecond: Array.from(buckets, (b) => {
        const sm = summarize(b ?? []);
        return { p50: sm.p50, p99: sm.p99 };
      }),
      pollDurationMs: summarize(pollDurations),
      worstStoreP99Ms: Math.max(...written.map((w, i) => summarize(lags(w, seen[i]!)).p99).filter(Number.isFinite)),
      drainSeconds,
      keptUp: drainSeconds <= options.keepUpMs / 1000,
      agentPeakRssBytes,
      agentRssBytes: rssAtEnd,
      cpuSeconds: tracker.totals(),
      windowSeconds,
      machineBusy: cpu.machineBusy,
      foreignCpuSeconds: cpu.foreignCpuSeconds,
      verified: problems.length === 0,
      problems,
    };
    say(
      `scale ${n}: ${sales} sales (${run.salesPerSecond.toFixed(1)}/s), lag p50 ${run.lagMs.p50.toFixed(0)} ms p99 ${run.lagMs.p99.toFixed(0)} ms, ` +
        `drained ${drainSeconds.toFixed(2)} s after the end${run.keptUp ? '' : ' (DID NOT KEEP UP)'}, agent peak RSS ${((agentPeakRssBytes ?? 0) / 1024 / 1024).toFixed(0)} MiB`,
    );
    return run;
  } finally {
    await hq.end().catch(() => undefined);
  }
}
