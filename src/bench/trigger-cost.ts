import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { PgLogicalInstaller } from '../../connectors/pg-logical/index.js';
import { LOG_TABLE, PgTriggerInstaller } from '../../connectors/pg-trigger/index.js';
import { DEFAULT_PUBLICATION, defaultSlotName } from '../config/load.js';
import { formatTable, type TableId } from '../core/change.js';
import { silentLogger } from '../core/logger.js';
import { EmbeddedServer } from '../embedded/pg-server.js';
import { aggregateSources, loadMappingDir, mappedTables } from '../mapping/index.js';
import { RETAIL_EXAMPLE_DIR, storeSchemaSql } from '../demo/retail-example.js';
import { RetailWorkload } from '../demo/workload.js';
import type { BenchOptions } from './options.js';
import { PhaseCpu, processTreeCpuSeconds } from './proc-stats.js';
import { DURABLE_SETTINGS, type Say } from './topology.js';
import { CAPTURE_LABELS, roundSequence, type CaptureVariant, type TriggerCostResult, type TriggerCostRound } from './trigger-cost-report.js';

/**
 * The trigger-cost phase: how much capturing changes slows the store's own
 * writes. The same sales (the same seed) go into one store database of the
 * example ERP per variant: without capture, with pg-trigger's capture
 * triggers on the tables the example's up mappings read, and with
 * pg-logical's publication and slot on a wal_level=logical server (nothing
 * reading). Rounds alternate; the sales tables (and the change log) are
 * emptied between rounds, outside the clock. After each pg-trigger round the
 * change log must hold one row per row written, per table.
 */

const STORE = 'S001';
const VARIANTS: readonly CaptureVariant[] = ['none', 'pg-trigger', 'pg-logical'];
/**
 * Each database writes this share of a round before the first round, outside the clock (connections, caches, the
 * writer's JIT). With 10 sales per connection the first no-capture round was still the slowest of its four by 10-20 %.
 */
const WARM_UP_SHARE = 0.25;

interface VariantDb {
  readonly variant: CaptureVariant;
  /** The postmaster of the database's server: its process tree is the store's CPU. */
  readonly serverPid: number;
  readonly pool: pg.Pool;
  readonly workload: RetailWorkload;
}

/** The tables the example's up mappings read (what `install` captures at a store: `tablesOf(loadMappings(config)).sources`). */
async function exampleUpTables(): Promise<{ sources: TableId[]; aggregated: TableId[] }> {
  const { files, problems } = await loadMappingDir(RETAIL_EXAMPLE_DIR);
  if (problems.length) throw new Error(`the example's mapping files do not load: ${problems.map((p) => p.message).join(' ')}`);
  const up = files.filter((f) => f.spec.direction === 'up');
  return { sources: mappedTables(up).sources, aggregated: aggregateSources(up) };
}

/** Runs the phase on servers of its own; `cleanup` receives what to stop however the run ends (it also stops them itself when done). */
export async function runTriggerCost(options: BenchOptions, cleanup: (step: () => Promise<void>) => void, say: Say): Promise<TriggerCostResult> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-bench-trigger-'));
  // As root the servers run as `postgres`, which must reach their folders.
  await chmod(dir, 0o755);
  const servers: EmbeddedServer[] = [];
  const pools: pg.Pool[] = [];
  const stop = async () => {
    await Promise.all(pools.splice(0).map((p) => p.end().catch(() => undefined)));
    for (const s of servers.splice(0)) await s.destroy().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  cleanup(stop);

  // The same settings as the other phases' servers; wal_level is part of what is compared: PostgreSQL's default
  // (replica) without capture and with triggers, logical where the slot is.
  const settings = { ...DURABLE_SETTINGS };
  const walLevel: Record<CaptureVariant, string> = { none: 'replica', 'pg-trigger': 'replica', 'pg-logical': 'logical' };
  say(`trigger cost: starting two embedded store servers (wal_level replica and logical) in ${dir}`);
  for (const level of ['replica', 'logical'] as const) {
    servers.push(await EmbeddedServer.start({ name: `store-${level}`, dataDir: path.join(dir, level), settings: { ...settings, wal_level: level } }));
  }
  const [replica, logical] = servers as [EmbeddedServer, EmbeddedServer];
  const serverOf: Record<CaptureVariant, EmbeddedServer> = { none: replica, 'pg-trigger': replica, 'pg-logical': logical };

  const { sources, aggregated } = await exampleUpTables();
  const storeSql = await storeSchemaSql();
  const dbs = {} as Record<CaptureVariant, VariantDb>;
  for (const variant of VARIANTS) {
    const server = serverOf[variant];
    const db = `store_${variant.replace('-', '_')}`;
    const url = await server.createDatabase(db);
    await server.query(db, storeSql);
    const pool = new pg.Pool({ connectionString: url, max: options.concurrency });
    pool.on('error', () => undefined);
    pools.push(pool);
    // One seed for all: round k of every variant writes the same sales.
    const workload = new RetailWorkload({ db: pool, storeCode: STORE, linesPerSale: options.lines });
    await workload.setup({ products: 300, customers: 20 });
    dbs[variant] = { variant, serverPid: await postmasterPid(server), pool, workload };
    // As `branchline install` puts them at a store: without NOTIFY (see connectors/pg-trigger/sql.ts CaptureOptions).
    if (variant === 'pg-trigger') await new PgTriggerInstaller({ url, role: `store ${STORE}`, logger: silentLogger(), notify: false }).install(sources);
    if (variant === 'pg-logical') {
      const installer = new PgLogicalInstaller({ url, role: `store ${STORE}`, slot: defaultSlotName(STORE), publication: DEFAULT_PUBLICATION, logger: silentLogger() });
      await installer.ensureFullBeforeImages(aggregated);
      await installer.install(sources);
    }
  }
  const problems = await checkSetup(dbs, sources.length);
  say(`trigger cost: 3 store databases (example ERP, 300 products, 20 customers each); captured tables: ${sources.map(formatTable).join(', ')}`);

  for (const d of Object.values(dbs)) {
    await d.workload.sales(Math.ceil(options.triggerCostSales * WARM_UP_SHARE), { lines: options.lines, concurrency: options.concurrency });
  }
  const sequence = roundSequence(VARIANTS, options.triggerCostRounds);
  const rounds: TriggerCostRound[] = [];
  const done: Record<CaptureVariant, number> = { none: 0, 'pg-trigger': 0, 'pg-logical': 0 };
  for (const variant of sequence) {
    const round = ++done[variant];
    const r = await timedRound(dbs[variant], servers, round, options);
    rounds.push(r);
    problems.push(...(await checkRound(dbs[variant], r)));
    say(
      `trigger cost: ${CAPTURE_LABELS[variant]} round ${round}: ${r.sales} sales (${r.rows} rows) in ${r.seconds.toFixed(2)} s, ` +
        `${Math.round(r.sales / r.seconds)} sales/s` +
        (r.changeLogRows === null ? '' : `, ${r.changeLogRows} change-log rows`),
    );
  }
  const postgres = (await replica.query<{ v: string }>('postgres', `SELECT current_setting('server_version') AS v`))[0]?.v ?? 'unknown';
  await stop();

  const triggerRounds = rounds.filter((r) => r.variant === 'pg-trigger');
  return {
    settings: { servers: { ...settings, shared_buffers: '64MB' }, walLevel, postgres },
    workload: { salesPerRound: options.triggerCostSales, linesPerSale: options.lines, writers: options.concurrency, roundsPerVariant: options.triggerCostRounds, sequence },
    capturedTables: sources.map(formatTable),
    rounds,
    verification: {
      ok: problems.length === 0,
      problems,
      rowsWritten: triggerRounds.reduce((s, r) => s + r.rows, 0),
      changeLogRows: triggerRounds.reduce((s, r) => s + (r.changeLogRows ?? 0), 0),
    },
  };
}

/** Empties the sales tables (and the change log), checkpoints, then times the round's sales. */
async function timedRound(d: VariantDb, servers: readonly EmbeddedServer[], round: number, options: BenchOptions): Promise<TriggerCostRound> {
  await d.pool.query(`TRUNCATE sale, sale_line RESTART IDENTITY`);
  // Its TRUNCATE trigger logged the truncation: the round starts with an empty log.
  if (d.variant === 'pg-trigger') await d.pool.query(`TRUNCATE ${LOG_TABLE} RESTART IDENTITY`);
  for (const s of servers) await s.query('postgres', 'CHECKPOINT');
  const lsn = async () => (await d.pool.query<{ lsn: string }>(`SELECT pg_current_wal_lsn()::text AS lsn`)).rows[0]!.lsn;
  const walFrom = await lsn();
  const cpu = new PhaseCpu();
  const serverCpu = processTreeCpuSeconds(d.serverPid);
  const t = performance.now();
  const written = await d.workload.sales(options.triggerCostSales, { lines: options.lines, concurrency: options.concurrency });
  const seconds = (performance.now() - t) / 1000;
  const serverCpuSeconds = processTreeCpuSeconds(d.serverPid) - serverCpu;
  const { foreignCpuSeconds } = cpu.finish();
  const walTo = await lsn();
  const facts = await d.pool.query<{ wal: string; sales: string; lines: string }>(
    `SELECT pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::text AS wal, (SELECT count(*) FROM sale)::text AS sales, (SELECT count(*) FROM sale_line)::text AS lines`,
    [walFrom, walTo],
  );
  // Only pg-trigger's database has a change log (checkSetup and checkRound hold the others to that).
  const log = (await d.pool.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [LOG_TABLE])).rows[0]?.ok
    ? (await d.pool.query<{ rows: string; bytes: string }>(`SELECT (SELECT count(*) FROM ${LOG_TABLE})::text AS rows, pg_total_relation_size($1)::text AS bytes`, [LOG_TABLE])).rows[0]!
    : null;
  const f = facts.rows[0]!;
  const rows = Number(f.sales) + Number(f.lines);
  if (rows !== written || Number(f.sales) !== options.triggerCostSales) {
    throw new Error(`trigger cost: the ${CAPTURE_LABELS[d.variant]} round wrote ${written} rows by the workload's count but the tables hold ${f.sales} sales and ${f.lines} lines`);
  }
  return {
    variant: d.variant,
    round,
    sales: Number(f.sales),
    rows,
    seconds,
    walBytes: Number(f.wal),
    changeLogRows: log ? Number(log.rows) : null,
    changeLogBytes: log ? Number(log.bytes) : null,
    serverCpuSeconds,
    foreignCpuSeconds,
  };
}

/** The server's postmaster: the first line of postmaster.pid in its data directory. */
async function postmasterPid(server: EmbeddedServer): Promise<number> {
  const pid = Number((await readFile(path.join(server.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`trigger cost: no postmaster pid in ${server.dataDir}/postmaster.pid`);
  return pid;
}

/** After a pg-trigger round: one logged insert per row of each table, nothing else. Elsewhere: no change log at all. */
async function checkRound(d: VariantDb, r: TriggerCostRound): Promise<string[]> {
  const where = `${CAPTURE_LABELS[d.variant]} round ${r.round}`;
  if (d.variant !== 'pg-trigger') return r.changeLogRows === null ? [] : [`${where}: the store has a change log it should not have.`];
  const logged = (param: string) => `(SELECT count(*) FROM ${LOG_TABLE} WHERE schema_name = 'public' AND table_name = ${param} AND op = 'i')::int`;
  const [c] = (
    await d.pool.query<{ sale: number; sale_line: number; sale_logged: number; sale_line_logged: number }>(
      `SELECT (SELECT count(*) FROM sale)::int AS sale, (SELECT count(*) FROM sale_line)::int AS sale_line,
              ${logged('$1')} AS sale_logged, ${logged('$2')} AS sale_line_logged`,
      ['sale', 'sale_line'],
    )
  ).rows;
  const problems: string[] = [];
  for (const table of ['sale', 'sale_line'] as const) {
    const held = c![table];
    const log = c![`${table}_logged`];
    if (held !== log) problems.push(`${where}: ${table} holds ${held} rows, the change log has ${log} inserts of it.`);
  }
  const inserts = c!.sale_logged + c!.sale_line_logged;
  if (r.changeLogRows !== inserts) problems.push(`${where}: the change log holds ${r.changeLogRows} rows, ${inserts} of them inserts into sale and sale_line: something else was logged.`);
  if (r.changeLogRows !== r.rows) problems.push(`${where}: ${r.rows} rows written, ${r.changeLogRows} in the change log.`);
  return problems;
}

/** Each database is what its variant says: no capture without it, the triggers on every captured table, the slot in place. */
async function checkSetup(dbs: Record<CaptureVariant, VariantDb>, tables: number): Promise<string[]> {
  const problems: string[] = [];
  for (const d of Object.values(dbs)) {
    const [s] = (
      await d.pool.query<{ wal_level: string; triggers: number; slots: number; publications: number }>(
        `SELECT current_setting('wal_level') AS wal_level,
                (SELECT count(*)::int FROM pg_trigger WHERE tgname = 'branchline_capture' AND NOT tgisinternal) AS triggers,
                (SELECT count(*)::int FROM pg_replication_slots WHERE database = current_database()) AS slots,
                (SELECT count(*)::int FROM pg_publication) AS publications`,
      )
    ).rows;
    const want = { triggers: d.variant === 'pg-trigger' ? tables : 0, slots: d.variant === 'pg-logical' ? 1 : 0, publications: d.variant === 'pg-logical' ? 1 : 0 };
    const wantLevel = d.variant === 'pg-logical' ? 'logical' : 'replica';
    if (s?.wal_level !== wantLevel || s.triggers !== want.triggers || s.slots !== want.slots || s.publications !== want.publications) {
      problems.push(
        `${CAPTURE_LABELS[d.variant]}: the store database has wal_level ${s?.wal_level}, ${s?.triggers} capture triggers, ${s?.slots} slots, ${s?.publications} publications ` +
          `(expected ${wantLevel}, ${want.triggers}, ${want.slots}, ${want.publications}).`,
      );
    }
  }
  return problems;
}
