import type { Options } from 'yargs';

/** --scenario scale: store databases per stores server by default (100 stores: 10 servers). */
export const SCALE_STORES_PER_SERVER = 10;

/** Sales per trigger-cost round by default: the whole phase takes about 20 s on the 2-core benchmark machine. */
export const TRIGGER_COST_SALES = 4_000;

/**
 * Every flag of `npm run bench`, declared once: type, default and
 * description. The yargs parser and `--help` come from this table;
 * `resolveOptions` turns the parsed flags into the checked options below.
 */
export const BENCH_FLAGS = {
  scenario: {
    type: 'string',
    choices: ['replication', 'initial-load', 'trigger-cost', 'down', 'scale'],
    default: 'replication',
    describe:
      'replication: a backlog of store sales caught up (with the pg_recvlogical decode ceiling), then live writes, then the down channel and the trigger cost; initial-load: HQ products copied into an empty store (snapshot vs copy_data); trigger-cost: only the store write throughput with and without capture; down: only HQ price changes drained to the stores (native vs branchline); scale: one agent serving 1, 10, 100 stores (--stores 1,10,100)',
  },
  products: { type: 'number', default: 200_000, describe: 'initial-load: products at HQ to copy' },
  'batch-chunk-rows': { type: 'number', describe: "branchline's batch.chunk_rows: operations per statement sent to HQ (replication), rows per store transaction of the load (initial-load); default: the product's" },
  sales: { type: 'number', default: 100_000, describe: 'sales in the catch-up backlog, in total (split evenly across stores)' },
  'catch-up-rounds': {
    type: 'number',
    default: 1,
    describe: 'catch-up: backlogs written and drained in turn, each by every contender; the targets are judged on the round with the median ratio (a single run moves by about 0.2x here)',
  },
  'catch-up-start': {
    type: 'string',
    choices: ['resume', 'spawn'],
    default: 'resume',
    describe:
      "how branchline's catch-up and live phases start: resume (the agent runs throughout; its pipelines are paused while the backlog is written and resumed when the clock starts, as the subscriptions are disabled and enabled) or spawn (the agent process is started when the clock starts: its start-up, about a second, counts)",
  },
  stores: { type: 'string', describe: 'store databases on the stores server (default 2); --scenario scale: a list of store counts, one run each (default 1,10,100)' },
  lines: { type: 'number', default: 5, describe: 'lines per sale (each sale is one store transaction: 1 header + N lines)' },
  'live-seconds': { type: 'number', default: 15, describe: 'how long every store writes during each live measurement (0 skips it)' },
  concurrency: { type: 'number', default: 4, describe: 'connections per store writing the backlog (and the trigger-cost rounds)' },
  'trigger-cost-sales': {
    type: 'number',
    default: TRIGGER_COST_SALES,
    describe: 'trigger-cost: sales written per round, into one store (0 leaves the trigger-cost phase out of the replication scenario)',
  },
  'down-changes': {
    type: 'number',
    default: 100_000,
    describe: 'down: price changes written at HQ, in total (split evenly across --down-stores; 0 leaves the down phase out of the replication scenario)',
  },
  'down-stores': { type: 'number', default: 10, describe: 'down: store databases receiving the price changes' },
  'scale-seconds': { type: 'number', default: 30, describe: 'scale: how long every store writes in each run' },
  'scale-rate': { type: 'number', default: 2, describe: 'scale: sales per second each store writes (one writer per store, paced)' },
  'stores-per-server': {
    type: 'number',
    describe:
      'scale: store databases per stores server (default 10); each walsender reads the WAL of every store on its server, so fewer per server is closer to stores with servers of their own',
  },
  'keep-up-seconds': {
    type: 'number',
    default: 10,
    describe: 'scale: the agent kept up when every sale is at HQ within this many seconds after the stores stop writing',
  },
  'trigger-cost-rounds': { type: 'number', default: 4, describe: 'trigger-cost: rounds of each variant (no capture, pg-trigger, pg-logical), alternated' },
  order: {
    type: 'string',
    choices: ['native-first', 'branchline-first'],
    default: 'native-first',
    describe: 'which contender runs first in each measurement',
  },
  agent: {
    type: 'string',
    choices: ['auto', 'dist', 'build', 'tsx'],
    default: 'auto',
    describe: 'how to start the agent: dist/, a fresh build of the working tree in a temporary folder, or tsx; auto = dist/ unless older than the sources, else build',
  },
  'batch-max-rows': { type: 'number', describe: "branchline's batch.max_rows (default: the product's default)" },
  'batch-max-delay-ms': { type: 'number', describe: "branchline's batch.max_delay_ms (default: the product's default)" },
  'apply-concurrency': { type: 'number', describe: "branchline's apply.concurrency, HQ transactions open at once across the agent's stores (default: the product's default)" },
  'session-replication-role': {
    type: 'string',
    choices: ['replica', 'origin'],
    default: 'replica',
    describe:
      "branchline's apply.session_replication_role at HQ: replica (foreign keys and ordinary triggers not checked for applied rows, as native subscriptions always do) or origin (the product default: HQ checks them)",
  },
  'native-synchronous-commit': {
    type: 'string',
    choices: ['off', 'on'],
    default: 'off',
    describe: "the subscriptions' synchronous_commit option (off is PostgreSQL's default for subscriptions)",
  },
  'agent-cpu-prof': { type: 'string', describe: 'directory for V8 CPU profiles of the agent (one per phase)' },
  'timeout-seconds': { type: 'number', default: 600, describe: 'give up on a phase that takes longer than this' },
  json: { type: 'boolean', default: false, describe: 'print the results as one JSON object on stdout (progress stays on stderr)' },
} as const satisfies Record<string, Options>;

export type ContenderName = 'native' | 'branchline';

/** The checked options the benchmark runs with. */
export interface BenchOptions {
  readonly scenario: 'replication' | 'initial-load' | 'trigger-cost' | 'down' | 'scale';
  readonly products: number;
  readonly batchChunkRows: number | undefined;
  readonly sales: number;
  /** Catch-up rounds: a new backlog each, drained by every contender; the median round's ratio is judged. */
  readonly catchUpRounds: number;
  /** How branchline's catch-up and live phases start (see StartBy). */
  readonly catchUpStart: 'resume' | 'spawn';
  readonly stores: number;
  /** --scenario scale: the store counts, one run each, ascending (other scenarios: [stores]). */
  readonly storeCounts: readonly number[];
  readonly lines: number;
  readonly liveSeconds: number;
  readonly concurrency: number;
  /** Sales per trigger-cost round; 0 = no trigger-cost phase (replication scenario only). */
  readonly triggerCostSales: number;
  readonly triggerCostRounds: number;
  /** Price changes written at HQ for the down phase; 0 = no down phase (replication scenario only). */
  readonly downChanges: number;
  readonly downStores: number;
  readonly scaleSeconds: number;
  readonly scaleRate: number;
  readonly keepUpMs: number;
  /** --scenario scale: store databases per stores server (default 10; undefined outside it). */
  readonly storesPerServer: number | undefined;
  readonly order: readonly [ContenderName, ContenderName];
  readonly agent: 'auto' | 'dist' | 'build' | 'tsx';
  readonly batchMaxRows: number | undefined;
  readonly batchMaxDelayMs: number | undefined;
  readonly applyConcurrency: number | undefined;
  readonly sessionReplicationRole: 'replica' | 'origin';
  readonly nativeSynchronousCommit: 'off' | 'on';
  readonly agentCpuProf: string | undefined;
  readonly timeoutMs: number;
  readonly json: boolean;
}

type Parsed = { [K in keyof typeof BENCH_FLAGS]?: unknown };

/** Checks the parsed flags; returns every problem at once. */
export function resolveOptions(a: Parsed): { options: BenchOptions | null; problems: string[] } {
  const problems: string[] = [];
  const int = (flag: keyof typeof BENCH_FLAGS, min: number): number => {
    const v = a[flag];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      problems.push(`--${flag} must be a whole number of at least ${min} (got ${String(v)}).`);
      return min;
    }
    return v;
  };
  const optionalInt = (flag: keyof typeof BENCH_FLAGS, min: number): number | undefined => (a[flag] === undefined ? undefined : int(flag, min));
  const scenario = a.scenario === 'initial-load' || a.scenario === 'trigger-cost' || a.scenario === 'down' || a.scenario === 'scale' ? a.scenario : 'replication';
  const storeCounts = storeList(a.stores ?? (scenario === 'scale' ? '1,10,100' : '2'), scenario === 'scale', problems);
  const stores = storeCounts.at(-1) ?? 1;
  const sales = int('sales', 1);
  if (scenario !== 'scale' && sales < stores) problems.push(`--sales (${sales}) must be at least --stores (${stores}): every store writes part of the backlog.`);
  const downStores = int('down-stores', 1);
  const downChanges = int('down-changes', scenario === 'down' ? downStores : 0);
  if (downChanges > 0 && downChanges < downStores)
    problems.push(`--down-changes (${downChanges}) must be at least --down-stores (${downStores}): every store gets part of the price changes.`);
  if (a['stores-per-server'] !== undefined && scenario !== 'scale')
    problems.push('--stores-per-server is for --scenario scale: the native subscriptions and the decode ceiling read one stores server.');
  const scaleRate = a['scale-rate'];
  if (typeof scaleRate !== 'number' || !(scaleRate > 0) || !Number.isFinite(scaleRate)) problems.push(`--scale-rate must be a number of sales per second above 0 (got ${String(scaleRate)}).`);
  const triggerCostSales = int('trigger-cost-sales', scenario === 'trigger-cost' ? 1 : 0);
  const options: BenchOptions = {
    scenario,
    products: int('products', 1),
    batchChunkRows: optionalInt('batch-chunk-rows', 1),
    sales,
    catchUpRounds: int('catch-up-rounds', 1),
    catchUpStart: a['catch-up-start'] === 'spawn' ? 'spawn' : 'resume',
    stores,
    storeCounts,
    lines: int('lines', 1),
    liveSeconds: int('live-seconds', 0),
    concurrency: int('concurrency', 1),
    triggerCostSales,
    triggerCostRounds: int('trigger-cost-rounds', 1),
    downChanges,
    downStores,
    scaleSeconds: int('scale-seconds', 1),
    scaleRate: typeof scaleRate === 'number' ? scaleRate : 1,
    keepUpMs: int('keep-up-seconds', 0) * 1000,
    storesPerServer: scenario === 'scale' ? (optionalInt('stores-per-server', 1) ?? SCALE_STORES_PER_SERVER) : undefined,
    order: a.order === 'branchline-first' ? ['branchline', 'native'] : ['native', 'branchline'],
    agent: a.agent === 'dist' || a.agent === 'build' || a.agent === 'tsx' ? a.agent : 'auto',
    batchMaxRows: optionalInt('batch-max-rows', 1),
    batchMaxDelayMs: optionalInt('batch-max-delay-ms', 0),
    applyConcurrency: optionalInt('apply-concurrency', 1),
    sessionReplicationRole: a['session-replication-role'] === 'origin' ? 'origin' : 'replica',
    nativeSynchronousCommit: a['native-synchronous-commit'] === 'on' ? 'on' : 'off',
    agentCpuProf: typeof a['agent-cpu-prof'] === 'string' ? a['agent-cpu-prof'] : undefined,
    timeoutMs: int('timeout-seconds', 10) * 1000,
    json: a.json === true,
  };
  return { options: problems.length ? null : options, problems };
}

/**
 * `--stores`: one whole number of at least 1, or (with `list`, for --scenario
 * scale) a comma-separated list of them, returned ascending without repeats.
 */
export function storeList(value: unknown, list: boolean, problems: string[]): number[] {
  const text = String(value ?? '').trim();
  const parts = text.split(',').map((p) => p.trim());
  const counts = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : Number.NaN));
  if (!list && parts.length > 1) {
    problems.push(`--stores must be one whole number of at least 1 (got ${text}); a list such as 1,10,100 is for --scenario scale.`);
    return [1];
  }
  if (text === '' || counts.some((c) => !Number.isInteger(c) || c < 1)) {
    problems.push(`--stores must be ${list ? 'a comma-separated list of whole numbers' : 'a whole number'} of at least 1 (got ${text || 'nothing'}).`);
    return [1];
  }
  return [...new Set(counts)].sort((x, y) => x - y);
}
