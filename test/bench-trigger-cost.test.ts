import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BENCH_FLAGS, resolveOptions, TRIGGER_COST_SALES } from '../src/bench/options.js';
import {
  renderTriggerCostText,
  roundSequence,
  triggerCostFigures,
  triggerCostJson,
  triggerCostSummary,
  type CaptureVariant,
  type TriggerCostResult,
  type TriggerCostRound,
} from '../src/bench/trigger-cost-report.js';

/** The flags as yargs hands them over when only `given` is on the command line. */
function flags(given: Record<string, unknown> = {}): Record<string, unknown> {
  const defaults = Object.fromEntries(Object.entries(BENCH_FLAGS).map(([k, v]) => [k, 'default' in v ? v.default : undefined]));
  return { ...defaults, ...given };
}

function round(variant: CaptureVariant, n: number, sales: number, seconds: number, extra: Partial<TriggerCostRound> = {}): TriggerCostRound {
  const logged = variant === 'pg-trigger';
  return {
    variant,
    round: n,
    sales,
    rows: sales * 6,
    seconds,
    walBytes: sales * (logged ? 5000 : 2000),
    changeLogRows: logged ? sales * 6 : null,
    changeLogBytes: logged ? sales * 1800 : null,
    // ms of server CPU per sale: none 1, pg-trigger 2.5, pg-logical 1.25.
    serverCpuSeconds: { none: 1, 'pg-trigger': 2.5, 'pg-logical': 1.25 }[variant],
    foreignCpuSeconds: 0,
    ...extra,
  };
}

function result(rounds: TriggerCostRound[], problems: string[] = []): TriggerCostResult {
  const trig = rounds.filter((r) => r.variant === 'pg-trigger');
  return {
    settings: { servers: { fsync: 'on' }, walLevel: { none: 'replica', 'pg-trigger': 'replica', 'pg-logical': 'logical' }, postgres: '17.10' },
    workload: { salesPerRound: 1000, linesPerSale: 5, writers: 4, roundsPerVariant: 2, sequence: rounds.map((r) => r.variant) },
    capturedTables: ['public.sale', 'public.sale_line'],
    rounds,
    verification: {
      ok: problems.length === 0,
      problems,
      rowsWritten: trig.reduce((s, r) => s + r.rows, 0),
      changeLogRows: trig.reduce((s, r) => s + (r.changeLogRows ?? 0), 0),
    },
  };
}

// none: 2000 sales in 1 s = 2000/s; pg-trigger: 2000 sales in 2.5 s = 800/s (0.40x); pg-logical: 2000 sales in 1.25 s = 1600/s (0.80x).
const ROUNDS = [
  round('none', 1, 1000, 0.4),
  round('pg-trigger', 1, 1000, 1.5),
  round('pg-logical', 1, 1000, 0.5),
  round('pg-logical', 2, 1000, 0.75),
  round('pg-trigger', 2, 1000, 1.0),
  round('none', 2, 1000, 0.6),
];

describe('bench options: the trigger-cost phase', () => {
  test('is in the default run, with its default size, 4 rounds and the backlog concurrency', () => {
    const { options, problems } = resolveOptions(flags());
    assert.deepEqual(problems, []);
    assert.equal(options?.scenario, 'replication');
    assert.equal(options?.triggerCostSales, TRIGGER_COST_SALES);
    assert.equal(options?.triggerCostRounds, 4);
    assert.equal(options?.concurrency, 4);
  });

  test('--scenario trigger-cost runs it alone; --trigger-cost-sales and --trigger-cost-rounds are read', () => {
    const { options } = resolveOptions(flags({ scenario: 'trigger-cost', 'trigger-cost-sales': 250, 'trigger-cost-rounds': 3 }));
    assert.equal(options?.scenario, 'trigger-cost');
    assert.equal(options?.triggerCostSales, 250);
    assert.equal(options?.triggerCostRounds, 3);
  });

  test('--trigger-cost-sales 0 leaves the phase out of the replication scenario, but is refused when it is the scenario', () => {
    assert.equal(resolveOptions(flags({ 'trigger-cost-sales': 0 })).options?.triggerCostSales, 0);
    const alone = resolveOptions(flags({ scenario: 'trigger-cost', 'trigger-cost-sales': 0 }));
    assert.equal(alone.options, null);
    assert.deepEqual(alone.problems, ['--trigger-cost-sales must be a whole number of at least 1 (got 0).']);
  });

  test('fractions, negatives and zero rounds are refused, every problem at once', () => {
    const r = resolveOptions(flags({ 'trigger-cost-sales': 1.5, 'trigger-cost-rounds': 0 }));
    assert.equal(r.options, null);
    assert.deepEqual(r.problems, [
      '--trigger-cost-sales must be a whole number of at least 0 (got 1.5).',
      '--trigger-cost-rounds must be a whole number of at least 1 (got 0).',
    ]);
    assert.deepEqual(resolveOptions(flags({ 'trigger-cost-sales': -1 })).problems, ['--trigger-cost-sales must be a whole number of at least 0 (got -1).']);
  });
});

describe('trigger cost: the order of the rounds', () => {
  test('every other cycle is reversed', () => {
    assert.deepEqual(roundSequence(['none', 'pg-trigger', 'pg-logical'], 3), [
      'none', 'pg-trigger', 'pg-logical',
      'pg-logical', 'pg-trigger', 'none',
      'none', 'pg-trigger', 'pg-logical',
    ]);
    assert.deepEqual(roundSequence(['none', 'pg-trigger'], 1), ['none', 'pg-trigger']);
  });

  test('with an even number of rounds every variant has the same mean position (so a steady drift favours no variant)', () => {
    const seq = roundSequence(['none', 'pg-trigger', 'pg-logical'], 4);
    const mean = (v: CaptureVariant) => {
      const at = seq.flatMap((x, i) => (x === v ? [i] : []));
      assert.equal(at.length, 4);
      return at.reduce((s, i) => s + i, 0) / at.length;
    };
    assert.equal(mean('none'), mean('pg-trigger'));
    assert.equal(mean('pg-trigger'), mean('pg-logical'));
  });
});

describe('trigger cost: figures', () => {
  test('rates are all sales over all time of a variant, the ratio is against no capture', () => {
    const [none, trig, logical] = triggerCostFigures(result(ROUNDS));
    assert.equal(none?.variant, 'none');
    assert.equal(none?.salesPerSecond, 2000);
    assert.equal(none?.rowsPerSecond, 12000);
    assert.equal(none?.ratio, 1);
    assert.deepEqual(none?.salesPerSecondRange, [1000 / 0.6, 1000 / 0.4]);
    assert.equal(trig?.salesPerSecond, 800);
    assert.equal(trig?.ratio, 0.4);
    assert.deepEqual(trig?.salesPerSecondRange, [1000 / 1.5, 1000]);
    assert.equal(logical?.salesPerSecond, 1600);
    assert.equal(logical?.ratio, 0.8);
  });

  test('server CPU per sale, and against no capture: a figure other processes hardly move', () => {
    const [none, trig, logical] = triggerCostFigures(result(ROUNDS));
    assert.deepEqual([none?.serverCpuMsPerSale, trig?.serverCpuMsPerSale, logical?.serverCpuMsPerSale], [1, 2.5, 1.25]);
    assert.deepEqual([none?.serverCpuRatio, trig?.serverCpuRatio, logical?.serverCpuRatio], [1, 2.5, 1.25]);
  });

  test('WAL and change log per sale; the change log only where the triggers are', () => {
    const [none, trig, logical] = triggerCostFigures(result(ROUNDS));
    assert.equal(none?.walBytesPerSale, 2000);
    assert.equal(trig?.walBytesPerSale, 5000);
    assert.equal(trig?.changeLogRows, 12000);
    assert.equal(trig?.changeLogBytesPerSale, 1800);
    assert.equal(none?.changeLogRows, null);
    assert.equal(logical?.changeLogBytesPerSale, null);
  });

  test('without a no-capture round there is no ratio', () => {
    const figures = triggerCostFigures(result(ROUNDS.filter((r) => r.variant !== 'none')));
    assert.deepEqual(figures.map((f) => [f.variant, f.ratio, f.serverCpuRatio]), [['pg-trigger', null, null], ['pg-logical', null, null]]);
    assert.deepEqual(triggerCostSummary(result(ROUNDS.filter((r) => r.variant !== 'none'))), []);
  });
});

describe('trigger cost: the text and the JSON', () => {
  test('the table has a column per variant, the summary says the ratios, the check says the counts', () => {
    const text = renderTriggerCostText(result(ROUNDS));
    const lines = text.split('\n');
    assert.match(lines.find((l) => l.trim().startsWith('sales/s '))!, /^\s+sales\/s\s+2000\s+800\s+1600$/);
    assert.match(lines.find((l) => l.includes('x of the write throughput'))!, /1\.00\s+0\.40\s+0\.80$/);
    assert.match(lines.find((l) => l.includes('change-log rows written'))!, /\s-\s+12000\s+-$/);
    assert.match(lines.find((l) => l.includes('store server CPU ms per sale'))!, /1\.000\s+2\.500\s+1\.250$/);
    assert.ok(lines.includes("pg-trigger: 0.40x of the store's write throughput without capture (capture triggers writing the change log); 2.50x its server CPU per sale"), text);
    assert.ok(
      lines.includes("pg-logical: 0.80x of the store's write throughput without capture (wal_level=logical, a slot and a publication, nothing reading); 1.25x its server CPU per sale"),
      text,
    );
    assert.ok(lines.includes('verified: the capture triggers logged every row written (12000 change-log rows for 12000 rows, per table and round).'), text);
    assert.doesNotMatch(text, /WARNING/);
  });

  test('a failed check and a disturbed round are said', () => {
    const disturbed = ROUNDS.map((r, i) => (i === 1 ? { ...r, foreignCpuSeconds: 0.9 } : r));
    const text = renderTriggerCostText(result(disturbed, ['pg-trigger round 1: 6000 rows written, 5999 in the change log.']));
    assert.match(text, /TRIGGER-COST VERIFICATION FAILED:\n {2}pg-trigger round 1: 6000 rows written, 5999 in the change log\.\n/);
    assert.match(text, /WARNING: other processes used 0\.9 CPU s during the 1\.5 s of trigger-cost round 1 \(pg-trigger\)/);
    assert.doesNotMatch(text, /^verified/m);
  });

  test('--json keeps the rounds and adds the figures, the summary and the warnings', () => {
    const json = JSON.parse(JSON.stringify(triggerCostJson(result(ROUNDS)))) as ReturnType<typeof triggerCostJson>;
    assert.equal(json.rounds.length, 6);
    assert.deepEqual(json.figures.map((f) => f.ratio), [1, 0.4, 0.8]);
    assert.equal(json.summary.length, 2);
    assert.deepEqual(json.disturbances, []);
    assert.equal(json.verification.ok, true);
  });
});
