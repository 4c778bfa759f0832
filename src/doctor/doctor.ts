import type pg from 'pg';
import type { Config, StoreConfig } from '../config/load.js';
import { formatProblem, isBranchlineError, type Problem } from '../core/errors.js';
import { bounded, connect, describeUrl, endClient, isConnectionError, isReadTimeout } from '../db/connect.js';
import { redact } from '../core/logger.js';
import {
  downMappingProblems,
  downTablesOf,
  hasDown,
  loadMappings,
  mappingProblems,
  readCatalog,
  storeRole,
  tablesOf,
  type Catalog,
  type MappingFiles,
} from '../agent/prepare.js';
import { storeCapture } from '../agent/store-capture.js';
import { ok, problem, skip, type CheckResult } from './check.js';
import { clockSkew, readClock, skewBeyond, type ClockSample } from './clock.js';
import { captureChecks, changeTableCheck } from './store-capture-checks.js';
import { tlsCheck } from './tls.js';

export interface DoctorOptions {
  readonly config: Config;
  readonly stores: readonly StoreConfig[];
  /** How long to wait for each database to answer a connection (default 5 s). */
  readonly connectTimeoutMs?: number;
  /** Clock skew between a store and HQ beyond this is a warning (default 5 s). */
  readonly skewWarnMs?: number;
}

/** Every check, in order (HQ first, then each store), and how many ended each way. */
export interface DoctorReport {
  readonly checks: readonly CheckResult[];
  readonly summary: { readonly ok: number; readonly warn: number; readonly fail: number; readonly skip: number };
}

/** What HQ gave the store checks: its catalogs and a reading of its clock (null where HQ did not answer). */
interface HqSide {
  readonly catalog: Catalog | null;
  readonly downCatalog: Catalog | null;
  readonly clock: ClockSample | null;
  /** Keys of the problems already reported against HQ alone (not repeated per store). */
  readonly reported: ReadonlySet<string>;
}

const REPLICA_IDENTITY = new Set(['BL-M013', 'BL-M019']);
const problemKey = (p: Problem) => `${p.location?.file}:${p.location?.line}:${p.location?.column}:${p.code}:${p.message}`;

/**
 * `branchline doctor`: checks HQ and each store as the configuration
 * describes them, each check a line (ok, warn, fail, skip) with the fix. A
 * database that does not answer is a failed check, never a crash.
 */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const timeout = options.connectTimeoutMs ?? 5_000;
  const files = await loadMappings(options.config);
  const checks: CheckResult[] = [];
  const hq = await guarded('HQ', checks, (out) => hqChecks(options.config, files, timeout, out), NO_HQ);
  const perStore = await Promise.all(
    options.stores.map(async (s) => {
      const out: CheckResult[] = [];
      // Into `out` as they pass: a store that stops answering midway keeps the checks it passed, then the one that failed.
      await guarded(storeRole(s), out, (o) => storeChecks(s, files, hq, timeout, options.skewWarnMs ?? 5_000, o), undefined);
      return out;
    }),
  );
  for (const c of perStore) checks.push(...c);
  const count = (s: string) => checks.filter((c) => c.status === s).length;
  return { checks, summary: { ok: count('ok'), warn: count('warn'), fail: count('fail'), skip: count('skip') } };
}

const NO_HQ: HqSide = { catalog: null, downCatalog: null, clock: null, reported: new Set() };

/** Runs checks; a user-facing error midway (a database that stopped answering, a privilege missing) becomes one failed check, not a crash. */
async function guarded<T>(database: string, out: CheckResult[], fn: (out: CheckResult[]) => Promise<T>, otherwise: T): Promise<T> {
  try {
    return await fn(out);
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (isBranchlineError(e)) out.push(problem(database, 'checks', 'fail', e.code, `checking stopped midway: ${e.problem.message}`, e.hint ?? null));
    else if (isReadTimeout(e))
      out.push(
        problem(database, 'checks', 'fail', 'BL-S010', 'checking stopped midway: the database stopped answering (no reply within the deadline, and the connection was not reset: a firewall dropping packets, a dead link, a stalled server).', 'Check the link to that server, then run doctor again.'),
      );
    else if (isConnectionError(e))
      out.push(problem(database, 'checks', 'fail', 'BL-D001', `checking stopped midway: the connection was lost (${redact(err.message ?? '')}).`, 'Check the server and the network, then run doctor again.'));
    else if (err?.code === '42501')
      out.push(problem(database, 'checks', 'fail', 'BL-D004', `checking stopped midway: the user may not read what doctor reads (${redact(err.message ?? '')}).`, 'Grant the privilege named, or run doctor with the role the agent uses.'));
    else throw e;
    return otherwise;
  }
}

function unreachable(database: string, e: unknown, what: string): CheckResult {
  if (!isBranchlineError(e)) throw e;
  return problem(database, 'reachable', 'fail', e.code, e.problem.message, `${e.hint ?? ''} ${what}`.trim());
}

function mappingCheck(database: string, problems: readonly Problem[], okText: string, dir: string): CheckResult {
  if (!problems.length) return ok(database, 'mappings', okText);
  const n = problems.length;
  return {
    ...problem(database, 'mappings', 'fail', problems[0]!.code, `${n} problem${n === 1 ? '' : 's'} in the mapping files of ${dir} (listed below).`,
      'Fix each as its hint says; `branchline validate` lists them with file:line:column.'),
    details: problems.map(formatProblem),
  };
}

async function hqChecks(config: Config, files: MappingFiles, timeout: number, out: CheckResult[]): Promise<HqSide> {
  const { targets } = tablesOf(files);
  let db: pg.Client;
  try {
    db = await connect(config.hq.url, { role: 'HQ', applicationName: 'branchline-doctor', connectTimeoutMs: timeout, ...bounded(timeout) });
  } catch (e) {
    out.push(unreachable('HQ', e, 'A store agent needs HQ reachable from its machine (port, firewall, sslmode).'));
    out.push(mappingCheck('HQ', files.problems, `the mapping files of ${files.dir} read well (not checked against HQ: HQ did not answer).`, files.dir));
    return { catalog: null, downCatalog: null, clock: null, reported: new Set(files.problems.map(problemKey)) };
  }
  let clock: ClockSample;
  try {
    out.push(ok('HQ', 'reachable', `HQ at ${describeUrl(config.hq.url)} answers from this machine.`));
    out.push(await tlsCheck('HQ', db, config.hq.url));
    clock = await readClock(db);
    const s = await db.query<{ ok: boolean }>(`SELECT to_regclass('branchline.pipelines') IS NOT NULL AS ok`);
    out.push(
      s.rows[0]?.ok
        ? ok('HQ', 'branchline schema', "branchline's schema is installed.")
        : problem('HQ', 'branchline schema', 'fail', 'BL-D005', "branchline's schema (positions, status, parked changes) is not installed at HQ.", 'Run `branchline install`.'),
    );
    // The down channel reads HQ's change log, which capture triggers on the down files' source tables fill.
    if (hasDown(files)) out.push(await changeTableCheck('HQ', db, downTablesOf(files).hqSources, 'Run `branchline install` (it creates the change log and the capture triggers on the down mappings\' source tables).'));
  } finally {
    await endClient(db);
  }
  const catalog = await readCatalog(config.hq.url, 'HQ', targets, timeout);
  const downCatalog = hasDown(files) ? await readCatalog(config.hq.url, 'HQ', downTablesOf(files).hqSources, timeout) : null;
  const problems = mappingProblems(files, catalog, null);
  const n = files.files.length + files.down.length;
  out.push(mappingCheck('HQ', problems, `${n} mapping file${n === 1 ? '' : 's'} fit HQ.`, files.dir));
  return { catalog, downCatalog, clock, reported: new Set(problems.map(problemKey)) };
}

async function storeChecks(store: StoreConfig, files: MappingFiles, hq: HqSide, timeout: number, skewWarnMs: number, out: CheckResult[]): Promise<CheckResult[]> {
  const where = storeRole(store);
  const capture = storeCapture(store);
  const { sources } = tablesOf(files);
  if (!capture.postgres) {
    // SQL Server: whether it answers and the mappings against its tables; the rest is PostgreSQL's.
    try {
      await capture.inspect(null, null);
      out.push(ok(where, 'reachable', `the SQL Server store at ${describeUrl(store.url)} answers.`));
    } catch (e) {
      out.push(unreachable(where, e, 'The agent retries while running, but nothing of this store reaches HQ meanwhile.'));
      return out;
    }
    out.push(skip(where, 'server', 'connector mssql-trigger: wal_level, slot, publication and clock are not checked for SQL Server stores.'));
    if (hq.catalog) out.push(...(await storeMappingCheck(store, files, hq, () => capture.catalog(sources, timeout), null)));
    return out;
  }
  let db: pg.Client;
  try {
    db = await connect(store.url, { role: where, applicationName: 'branchline-doctor', connectTimeoutMs: timeout, ...bounded(timeout) });
  } catch (e) {
    out.push(unreachable(where, e, 'The agent retries while running, but nothing of this store reaches HQ meanwhile.'));
    return out;
  }
  try {
    out.push(ok(where, 'reachable', `the store at ${describeUrl(store.url)} answers.`));
    out.push(await tlsCheck(where, db, store.url));
    out.push(...(await captureChecks(store, db, sources, hasDown(files))));
    out.push(clockCheck(where, await readClock(db), hq.clock, skewWarnMs));
  } finally {
    await endClient(db);
  }
  if (!hq.catalog) {
    out.push(skip(where, 'mappings', 'not checked: HQ did not answer, and the mappings are checked against both sides.'));
    return out;
  }
  const downProblems = async () =>
    hasDown(files) && hq.downCatalog ? downMappingProblems(files, hq.downCatalog, await readCatalog(store.url, where, downTablesOf(files).storeTargets, timeout)) : [];
  out.push(...(await storeMappingCheck(store, files, hq, () => capture.catalog(sources, timeout), downProblems)));
  return out;
}

/** The replica identity of the mapped tables (pg-logical), then the rest of the mapping problems this store adds to HQ's. */
async function storeMappingCheck(
  store: StoreConfig,
  files: MappingFiles,
  hq: HqSide,
  catalog: () => Promise<Catalog>,
  down: (() => Promise<Problem[]>) | null,
): Promise<CheckResult[]> {
  const where = storeRole(store);
  const all = [...mappingProblems(files, hq.catalog!, await catalog()), ...((await down?.()) ?? [])];
  const fresh = [...new Map(all.filter((p) => !hq.reported.has(problemKey(p))).map((p) => [problemKey(p), p])).values()];
  const identity = fresh.filter((p) => REPLICA_IDENTITY.has(p.code));
  const rest = fresh.filter((p) => !REPLICA_IDENTITY.has(p.code));
  const out: CheckResult[] = [];
  if (store.connector !== 'pg-logical') out.push(ok(where, 'replica identity', `not needed: connector ${store.connector}'s capture triggers write the whole old row of every update and delete.`));
  else if (identity.length)
    out.push({
      ...problem(where, 'replica identity', 'fail', identity[0]!.code, identity.map((p) => p.message).join(' '), identity.map((p) => p.hint ?? '').join(' ').trim()),
    });
  else out.push(ok(where, 'replica identity', 'every mapped table carries its key in updates and deletes (and the sources of aggregates their whole old row).'));
  out.push(mappingCheck(where, rest, `the mapping files fit HQ and this store's tables.`, files.dir));
  return out;
}

function clockCheck(where: string, store: ClockSample, hq: ClockSample | null, limitMs: number): CheckResult {
  if (!hq) return skip(where, 'clock', 'not compared: HQ did not answer.');
  const s = clockSkew(store, hq);
  const text = `${(Math.abs(s.skewMs) / 1000).toFixed(3)} s ${s.skewMs >= 0 ? 'ahead of' : 'behind'} HQ (± ${(s.uncertaintyMs / 1000).toFixed(3)} s)`;
  if (skewBeyond(s, limitMs))
    return problem(where, 'clock', 'warn', 'BL-D010', `the store's clock is ${text}, more than ${limitMs / 1000} s: the ERP's own times and when effective_at rows fall due are the store's (branchline measures lag across the difference: docs/operations.md).`,
      'Keep both servers on NTP (e.g. `timedatectl set-ntp true`, or chrony pointed at the same source) and check again.');
  return ok(where, 'clock', `the store's clock is ${text}.`);
}
