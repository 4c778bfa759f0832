import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CatchUpResult } from '../src/bench/catch-up.js';
import { RECVLOGICAL_INSTALL, type DecodeCeiling } from '../src/bench/decode-ceiling.js';
import type { DownResult } from '../src/bench/down-bench.js';
import { downFigures, renderDownText } from '../src/bench/down-report.js';
import type { LiveResult } from '../src/bench/live.js';
import { BENCH_FLAGS, resolveOptions } from '../src/bench/options.js';
import { medianRound, renderCeiling, type BenchResult, type CatchUpRound } from '../src/bench/report.js';
import type { ScaleResult, ScaleRun } from '../src/bench/scale-bench.js';
import { renderScaleTable, scaleFigures } from '../src/bench/scale-report.js';
import { summarize } from '../src/bench/stats.js';
import { catchUpTargets, liveTargets, renderTargets, TARGETS } from '../src/bench/targets.js';

/** The flags as yargs hands them over when only `given` is on the command line. */
function flags(given: Record<string, unknown> = {}): Record<string, unknown> {
  const defaults = Object.fromEntries(Object.entries(BENCH_FLAGS).map(([k, v]) => [k, 'default' in v ? v.default : undefined]));
  return { ...defaults, ...given };
}

/** Rounded to 6 decimals (float noise off), null kept. */
const r6 = (x: number | null | undefined): number | null => (x === null || x === undefined ? null : Math.round(x * 1e6) / 1e6);

function catchUp(rows: number, seconds: number, cpuSeconds: Record<string, number> = {}): CatchUpResult {
  return {
    rows,
    seconds,
    rowsPerSecond: rows / seconds,
    firstRowSeconds: 0.5,
    rowsPerSecondAfterFirstRow: rows / (seconds - 0.5),
    cpuSeconds,
    cpuSecondsToFirstRow: {},
    agentPeakRssBytes: 100 * 1024 * 1024,
    machineBusy: 0.5,
    kernelCpuSeconds: 0,
    foreignCpuSeconds: 0,
    milestones: {},
    progress: [],
  };
}

const CEILING: DecodeCeiling = {
  measured: true,
  tool: '/usr/bin/pg_recvlogical (pg_recvlogical (PostgreSQL) 15.18)',
  rows: 600_000,
  seconds: 4,
  rowsPerSecond: 150_000,
  bytes: 50 * 1024 * 1024,
  cpuSeconds: { decode: 3, client: 1.2 },
  machineBusy: 0.9,
  kernelCpuSeconds: 0,
  foreignCpuSeconds: 0,
};
const NOT_MEASURED: DecodeCeiling = { measured: false, reason: RECVLOGICAL_INSTALL };

describe('bench options: --stores, the down and scale scenarios', () => {
  test('--stores is one count (default 2) outside the scale scenario, a list (default 1,10,100) in it, sorted without repeats', () => {
    const plain = resolveOptions(flags()).options!;
    assert.equal(plain.stores, 2);
    assert.deepEqual(plain.storeCounts, [2]);
    assert.equal(resolveOptions(flags({ stores: '7', sales: 70 })).options?.stores, 7);
    const scale = resolveOptions(flags({ scenario: 'scale' })).options!;
    assert.deepEqual(scale.storeCounts, [1, 10, 100]);
    assert.equal(scale.stores, 100);
    assert.deepEqual(resolveOptions(flags({ scenario: 'scale', stores: '100, 1,10,10' })).options?.storeCounts, [1, 10, 100]);
  });

  test('a list outside the scale scenario, zero, words and an empty entry are refused, saying why', () => {
    assert.deepEqual(resolveOptions(flags({ stores: '1,10' })).problems, [
      '--stores must be one whole number of at least 1 (got 1,10); a list such as 1,10,100 is for --scenario scale.',
    ]);
    assert.deepEqual(resolveOptions(flags({ stores: '0' })).problems, ['--stores must be a whole number of at least 1 (got 0).']);
    assert.deepEqual(resolveOptions(flags({ scenario: 'scale', stores: '1,,10' })).problems, [
      '--stores must be a comma-separated list of whole numbers of at least 1 (got 1,,10).',
    ]);
    assert.equal(resolveOptions(flags({ scenario: 'scale', stores: 'ten' })).options, null);
  });

  test('the down phase is in the default run (100,000 changes, 10 stores); 0 leaves it out, but not when it is the scenario', () => {
    const o = resolveOptions(flags()).options!;
    assert.equal(o.downChanges, 100_000);
    assert.equal(o.downStores, 10);
    assert.equal(resolveOptions(flags({ 'down-changes': 0 })).options?.downChanges, 0);
    assert.deepEqual(resolveOptions(flags({ scenario: 'down', 'down-changes': 0 })).problems, ['--down-changes must be a whole number of at least 10 (got 0).']);
    assert.deepEqual(resolveOptions(flags({ 'down-changes': 5, 'down-stores': 10 })).problems, [
      '--down-changes (5) must be at least --down-stores (10): every store gets part of the price changes.',
    ]);
  });

  test('--stores-per-server is read for the scale scenario (default 10) and refused elsewhere', () => {
    assert.equal(resolveOptions(flags({ scenario: 'scale', 'stores-per-server': 10 })).options?.storesPerServer, 10);
    assert.equal(resolveOptions(flags({ scenario: 'scale' })).options?.storesPerServer, 10);
    assert.equal(resolveOptions(flags()).options?.storesPerServer, undefined);
    assert.deepEqual(resolveOptions(flags({ 'stores-per-server': 10 })).problems, [
      '--stores-per-server is for --scenario scale: the native subscriptions and the decode ceiling read one stores server.',
    ]);
  });

  test('the scale window, rate and keep-up bound are read; a rate of 0 is refused', () => {
    const o = resolveOptions(flags({ scenario: 'scale', 'scale-seconds': 12, 'scale-rate': 0.5, 'keep-up-seconds': 3 })).options!;
    assert.deepEqual([o.scaleSeconds, o.scaleRate, o.keepUpMs], [12, 0.5, 3000]);
    assert.deepEqual(resolveOptions(flags({ scenario: 'scale', 'scale-rate': 0 })).problems, ['--scale-rate must be a number of sales per second above 0 (got 0).']);
  });
});

describe('bench targets (issue 8)', () => {
  test('branchline against native (>= 1.5x) and against the decode ceiling (>= 60%), met or not', () => {
    // native 600,000 rows in 10 s = 60,000/s; branchline in 6 s = 100,000/s (1.67x, 67% of 150,000/s).
    const met = catchUpTargets({ native: catchUp(600_000, 10), branchline: catchUp(600_000, 6) }, CEILING);
    assert.deepEqual(met.map((t) => [t.value, t.met]), [['1.67x', true], ['67%', true]]);
    // branchline in 8 s = 75,000/s: 1.25x native, 50% of the ceiling.
    const missed = catchUpTargets({ native: catchUp(600_000, 10), branchline: catchUp(600_000, 8) }, CEILING);
    assert.deepEqual(missed.map((t) => [t.value, t.met]), [['1.25x', false], ['50%', false]]);
    assert.deepEqual(missed.map((t) => t.goal), [`>= ${TARGETS.nativeRatio.toFixed(2)}x`, '>= 60%']);
  });

  test('without pg_recvlogical the ceiling target is not judged and no number is made up', () => {
    const [, share] = catchUpTargets({ native: catchUp(600_000, 10), branchline: catchUp(600_000, 6) }, NOT_MEASURED);
    assert.deepEqual([share!.value, share!.met], ['not measured', null]);
    assert.match(renderTargets([share!])[0]!, /not measured {2}not judged$/);
    const lines = renderCeiling({ ceiling: NOT_MEASURED, catchUp: {} } as unknown as BenchResult);
    assert.deepEqual(lines, [`decode ceiling: not measured: ${RECVLOGICAL_INSTALL}`]);
    assert.match(lines[0]!, /apt-get install -y postgresql-client/);
  });

  test('the ceiling lines give both contenders as a share of it', () => {
    const r = { ceiling: CEILING, catchUp: { native: catchUp(600_000, 10), branchline: catchUp(600_000, 5) } } as unknown as BenchResult;
    const lines = renderCeiling(r);
    assert.match(lines[0]!, /^decode ceiling: 150000 rows\/s \(600000 rows in 4\.00 s;.* 50\.0 MiB read; CPU s per 100k rows: decode 0\.50, client 0\.20\)$/);
    assert.equal(lines[1], '  native 60000 rows/s = 40% of it; branchline 120000 rows/s = 80% of it');
  });

  test('--catch-up-rounds (default 1): the round judged is the one with the median ratio, the lower middle one of an even count', () => {
    assert.equal(resolveOptions(flags()).options!.catchUpRounds, 1);
    assert.equal(resolveOptions(flags({ 'catch-up-rounds': 5 })).options!.catchUpRounds, 5);
    const refused = resolveOptions(flags({ 'catch-up-rounds': 0 }));
    assert.equal(refused.options, null);
    assert.deepEqual(refused.problems, ['--catch-up-rounds must be a whole number of at least 1 (got 0).']);
    // Rounds of 1.40x, 1.10x, 1.25x (native 10 s; branchline 600,000 rows in 10/ratio s).
    const round = (n: number, ratio: number): CatchUpRound => {
      const cu = { native: catchUp(600_000, 10), branchline: catchUp(600_000, 10 / ratio) };
      return { round: n, rows: 600_000, backlogSeconds: 50, ceiling: CEILING, catchUp: cu, ratio: cu.branchline.rowsPerSecond / cu.native.rowsPerSecond };
    };
    const three = [round(1, 1.4), round(2, 1.1), round(3, 1.25)];
    assert.equal(medianRound(three).round, 3);
    assert.equal(catchUpTargets(medianRound(three).catchUp, CEILING)[0]!.value, '1.25x');
    assert.equal(medianRound([round(1, 1.6), round(2, 1.2)]).round, 2, 'of two, the lower');
    assert.equal(medianRound([round(1, 1.3)]).round, 1);
    assert.throws(() => medianRound([]), /no catch-up round/);
  });

  test('live: the worst store\'s p99 is judged against 500 ms', () => {
    const live = (p99s: number[]): LiveResult =>
      ({ stores: p99s.map((p, i) => ({ store: `S00${i + 1}`, sales: 100, salesPerSecond: 10, lagMs: summarize(Array.from({ length: 100 }, (_, k) => (k < 98 ? 10 : p))) })), lagMs: summarize([10]) }) as unknown as LiveResult;
    assert.deepEqual(liveTargets(live([120, 480])).map((t) => [t.figure, t.value, t.met]), [['live lag p99 of branchline, worst store (S002)', '480 ms', true]]);
    assert.deepEqual(liveTargets(live([120, 500, 90])).map((t) => [t.value, t.met]), [['500 ms', false]]);
    assert.match(renderTargets(liveTargets(live([600])))[0]!, /target < 500 ms {2}600 ms {2}NOT MET$/);
  });
});

describe('bench down report', () => {
  const down = (problems: string[] = []): DownResult => ({
    postgres: '17.10',
    stores: 2,
    changes: 20_000,
    rowsPerTransaction: 1000,
    writeSeconds: 3,
    order: ['native', 'branchline'],
    drain: { native: catchUp(20_000, 4, { decode: 0.4, apply: 1 }), branchline: catchUp(20_000, 2, { agent: 1, decode: 0.2, apply: 0.6 }) },
    perStore: [
      { store: 'S001', changes: 10_000, seconds: { native: 4, branchline: 2 } },
      { store: 'S002', changes: 10_000, seconds: { native: 2.5, branchline: 1 } },
    ],
    verification: { ok: problems.length === 0, problems },
  });

  test('rows/s per store are its changes over its own time; all stores together over the last one', () => {
    const f = downFigures(down());
    const byName = new Map(f.map((x) => [x.figure, x]));
    assert.deepEqual([byName.get('S001 rows/s (10000 changes)')!.native, byName.get('S001 rows/s (10000 changes)')!.branchline], [2500, 5000]);
    assert.deepEqual([byName.get('S002 rows/s (10000 changes)')!.native, byName.get('S002 rows/s (10000 changes)')!.ratio], [4000, 2.5]);
    assert.deepEqual([byName.get('all stores: rows/s')!.native, byName.get('all stores: rows/s')!.branchline], [5000, 10_000]);
    // CPU per 100k changes: native 1.4 s over 20,000 = 7; branchline 1.8 s = 9.
    assert.deepEqual([r6(byName.get('CPU s per 100k changes: all of the above')!.native), r6(byName.get('CPU s per 100k changes: all of the above')!.branchline)], [7, 9]);
  });

  test('the text says the check, and a store that differs from HQ', () => {
    assert.match(renderDownText(down()), /verified: every store equals HQ for both contenders/);
    const failed = renderDownText(down(['S002: HQ holds 10000 prices (md5 aaaaaaaa) for it; native\'s store holds 9999 prices (md5 bbbbbbbb).']));
    assert.match(failed, /DOWN VERIFICATION FAILED:\n {4}S002: HQ holds 10000 prices/);
  });
});

describe('bench scale report', () => {
  const run = (stores: number, rssMiB: number, agentCpu: number, drainSeconds: number, keptUp: boolean): ScaleRun => ({
    stores,
    warmUpSeconds: 1,
    seconds: 10,
    sales: stores * 20,
    rows: stores * 20 * 6,
    salesPerSecond: stores * 2,
    lagMs: summarize([10, 20, 30]),
    lagBySecond: [{ p50: 10, p99: 20 }, { p50: 20, p99: 30 }],
    pollDurationMs: summarize([1, 2, 3]),
    worstStoreP99Ms: 30,
    drainSeconds,
    keptUp,
    agentPeakRssBytes: rssMiB * 1024 * 1024,
    agentRssBytes: rssMiB * 1024 * 1024,
    cpuSeconds: { agent: agentCpu },
    windowSeconds: 10,
    machineBusy: 0.5,
    foreignCpuSeconds: 0,
    verified: true,
    problems: [],
  });
  const result: ScaleResult = { postgres: '17.10', storesPerServer: null, ratePerStore: 2, secondsPerRun: 10, linesPerSale: 5, keepUpSeconds: 10, runs: [run(1, 80, 0.1, 0.1, true), run(10, 98, 1, 0.3, true), run(100, 278, 10, 25, false)] };

  test('memory per store, per added store, and CPU per second and per 100k rows, against the previous count', () => {
    const f = scaleFigures(result);
    assert.deepEqual(f.map((x) => r6(x.agentRssPerStoreMiB)), [80, 9.8, 2.78]);
    assert.deepEqual(f.map((x) => r6(x.rssPerAddedStoreMiB)), [null, 2, 2]);
    assert.deepEqual(f.map((x) => r6(x.agentCpuPerSecond)), [0.01, 0.1, 1]);
    // 0.1 s over 120 rows; 1 s over 1,200; 10 s over 12,000: the same per row.
    assert.deepEqual(f.map((x) => Math.round(x.agentCpuPer100kRows! * 1000) / 1000), [83.333, 83.333, 83.333]);
    assert.deepEqual(f.map((x) => r6(x.cpuPerSecondPerAddedStore)), [null, 0.01, 0.01]);
    assert.deepEqual(f.map((x) => x.targetSalesPerSecond), [2, 20, 200]);
  });

  test('the table has a row per store count and says which run did not keep up', () => {
    const lines = renderScaleTable(result);
    assert.equal(lines.length, 4);
    assert.match(lines[0]!, /stores .*kept up.*MiB\/added store/);
    assert.match(lines[3]!, /^ +100 +200\.0 \(200\.0\) .* 25\.00 +NO +278\.0/);
    assert.match(lines[2]!, / 0\.30 +yes /);
  });
});
