import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CpuTracker } from './cpu-tracker.js';
import { PhaseCpu } from './proc-stats.js';
import { NATIVE_PUBLICATION, type BenchTopology, type Say } from './topology.js';
import { sleep } from './wait.js';

/** How to get pg_recvlogical when it is missing (Debian and Ubuntu). */
export const RECVLOGICAL_INSTALL = 'no pg_recvlogical that answers --version was found on PATH or under /usr/lib/postgresql/*/bin; install it with `apt-get install -y postgresql-client` to measure the decode ceiling.';

export type DecodeCeiling =
  | {
      readonly measured: true;
      /** The pg_recvlogical used and its version line. */
      readonly tool: string;
      readonly rows: number;
      /** From the spawn of every pg_recvlogical to the exit of the last one (each stops at the WAL end, --endpos). */
      readonly seconds: number;
      readonly rowsPerSecond: number;
      /** Bytes of pgoutput messages the processes wrote, all stores together. */
      readonly bytes: number;
      /** CPU seconds by role: decode (the store walsenders), client (pg_recvlogical). */
      readonly cpuSeconds: Readonly<Record<string, number>>;
      readonly machineBusy: number | null;
      readonly kernelCpuSeconds: number;
      readonly foreignCpuSeconds: number;
    }
  | { readonly measured: false; readonly reason: string };

/** pg_recvlogical on PATH, else the newest under /usr/lib/postgresql/<version>/bin, that answers --version; null when none does. */
export function findRecvlogical(): { path: string; version: string } | null {
  const candidates: string[] = [];
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) if (dir) candidates.push(path.join(dir, 'pg_recvlogical'));
  const lib = '/usr/lib/postgresql';
  if (existsSync(lib)) {
    const versions = readdirSync(lib).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(path.join(lib, v, 'bin', 'pg_recvlogical'));
  }
  for (const c of candidates) {
    if (!existsSync(c)) continue;
    const r = spawnSync(c, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return { path: c, version: r.stdout.trim() };
  }
  return null;
}

export interface CeilingOptions {
  readonly rows: number;
  readonly timeoutMs: number;
  readonly say: Say;
}

/**
 * The machine's decode limit for the backlog: per store, pg_recvlogical
 * reads the store's ceiling slot with pgoutput (protocol 1, the native
 * publication: the same tables) from where the slot was created, before the
 * backlog, up to the WAL end at the start of the phase (--endpos), and
 * exits. Nothing is applied anywhere: this is what decoding alone costs, the
 * most any replication of this WAL can do. All stores at once, as both
 * contenders run them.
 */
export async function measureDecodeCeiling(topology: BenchTopology, tool: { path: string; version: string }, options: CeilingOptions): Promise<DecodeCeiling> {
  const { rows, timeoutMs, say } = options;
  const server = topology.storesServer;
  const [end] = await server.query<{ lsn: string }>('postgres', 'SELECT pg_current_wal_lsn()::text AS lsn');
  const endLsn = end!.lsn;
  const url = new URL(server.url());
  const slots = topology.stores.map((s) => s.ceilingSlot);
  const children: ChildProcess[] = [];
  const tracker = new CpuTracker(async () => {
    const senders = await server.query<{ pid: number }>('postgres', `SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = ANY($1) AND active_pid IS NOT NULL`, [slots]);
    return [...children.flatMap((c) => (c.pid === undefined ? [] : [{ role: 'client', pid: c.pid }])), ...senders.map((r) => ({ role: 'decode', pid: r.pid }))];
  });
  let bytes = 0;
  const errors: string[] = [];
  await tracker.start();
  const phaseCpu = new PhaseCpu();
  const t0 = performance.now();
  const exits = topology.stores.map((s) => {
    const args = ['--host', url.hostname, '--port', url.port, '--username', decodeURIComponent(url.username), '--dbname', s.db, '--no-password'];
    args.push('--slot', s.ceilingSlot, '--start', '--endpos', endLsn, '--no-loop', '-o', 'proto_version=1', '-o', `publication_names=${NATIVE_PUBLICATION}`, '--file', '-');
    // The password through the environment, never on the command line.
    const child = spawn(tool.path, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PGPASSWORD: decodeURIComponent(url.password) } });
    children.push(child);
    child.stdout!.on('data', (d: Buffer) => (bytes += d.length));
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    return new Promise<void>((resolve) => {
      child.on('error', (e) => {
        errors.push(`${s.code}: ${e.message}`);
        resolve();
      });
      child.on('close', (code) => {
        if (code !== 0) errors.push(`${s.code}: pg_recvlogical exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' ')}`);
        resolve();
      });
    });
  });
  let done = false;
  const all = Promise.all(exits).then(() => {
    done = true;
  });
  // Samples CPU while the processes run (an exited one keeps its last reading).
  const sampling = (async () => {
    for (let i = 0; !done; i++) {
      if (i % 4 === 0) await tracker.discover().catch(() => undefined);
      tracker.sample();
      if (performance.now() - t0 > timeoutMs) {
        for (const c of children) c.kill('SIGKILL');
        errors.push(`not at the WAL end after ${Math.round(timeoutMs / 1000)} s`);
        return;
      }
      await sleep(25);
    }
  })();
  await all;
  const seconds = (performance.now() - t0) / 1000;
  await sampling;
  if (errors.length) throw new Error(`decode ceiling: ${errors.join('; ')}`);
  const result: DecodeCeiling = {
    measured: true,
    tool: `${tool.path} (${tool.version})`,
    rows,
    seconds,
    rowsPerSecond: rows / seconds,
    bytes,
    cpuSeconds: tracker.totals(),
    ...phaseCpu.finish(),
  };
  say(`decode ceiling: ${topology.stores.length} pg_recvlogical read ${(bytes / 1024 / 1024).toFixed(1)} MiB of pgoutput up to ${endLsn} in ${seconds.toFixed(2)} s (${Math.round(result.rowsPerSecond)} rows/s)`);
  return result;
}
