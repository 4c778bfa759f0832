import os from 'node:os';
import type pg from 'pg';
import { loadMappings } from '../../agent/prepare.js';
import { selectStores, type Config, type StoreConfig } from '../../config/load.js';
import { BranchlineError, ProblemsError } from '../../core/errors.js';
import { connect, describeUrl } from '../../db/connect.js';
import type { EntitySet } from '../../mapping/entities.js';

/**
 * What the commands for associations and parked changes share (associate.ts,
 * parked.ts). Each of them talks to HQ only and never applies a change
 * itself: it records an association, asks for a retry or marks a change
 * discarded, and the running agent (`branchline run`) notices within seconds
 * and does the rest.
 */

export const out = (s: string) => process.stdout.write(s);

/** Who did it, when --by is not given: user@host. */
export function defaultActor(): string {
  let user: string;
  try {
    user = os.userInfo().username;
  } catch {
    user = process.env['USER'] ?? process.env['USERNAME'] ?? 'unknown';
  }
  return `${user}@${os.hostname()}`;
}

export function usage(message: string, hint = 'See `branchline <command> --help`.'): BranchlineError {
  return new BranchlineError({ code: 'BL-U001', message, hint });
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** "2026-11-23T14:03:12Z": a moment to the second, in UTC. */
export function formatTime(d: Date | null): string {
  return d ? `${d.toISOString().slice(0, 19)}Z` : '-';
}

/** Connects to HQ and checks that branchline's association and parking tables are there (BL-D005). */
async function openHq(config: Config, applicationName: string): Promise<pg.Client> {
  const db = await connect(config.hq.url, { role: 'HQ', applicationName });
  try {
    const r = await db.query<{ ok: boolean }>(
      `SELECT to_regclass('branchline.associations') IS NOT NULL AND to_regclass('branchline.parked') IS NOT NULL AS ok`,
    );
    if (!r.rows[0]?.ok)
      throw new BranchlineError({
        code: 'BL-D005',
        message: `branchline is not installed at the HQ database at ${describeUrl(config.hq.url)} (it has no branchline.associations table).`,
        hint: 'Run `branchline install`: it creates branchline\'s schema at HQ, or brings an older one up to date.',
      });
  } catch (e) {
    await db.end().catch(() => undefined);
    throw e;
  }
  return db;
}

export async function withHq<T>(config: Config, applicationName: string, fn: (db: pg.Client) => Promise<T>): Promise<T> {
  const db = await openHq(config, applicationName);
  try {
    return await fn(db);
  } finally {
    await db.end().catch(() => undefined);
  }
}

/** Runs `fn` in one HQ transaction (rolled back when it throws). */
export async function inTransaction<T>(db: pg.Client, fn: () => Promise<T>): Promise<T> {
  await db.query('BEGIN');
  try {
    const r = await fn();
    await db.query('COMMIT');
    return r;
  } catch (e) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

/** The entities of the configuration's mapping directory; entities.yml must be free of problems. */
export async function loadEntities(config: Config): Promise<EntitySet> {
  const m = await loadMappings(config);
  const file = m.entities.file;
  const problems = file ? m.problems.filter((p) => p.location?.file === file) : [];
  if (problems.length) throw new ProblemsError(`The entities file ${file} has problems.`, problems);
  return m.entities;
}

/** The store codes to filter on: those named (checked against the configuration), or null for all. */
export function storeFilter(config: Config, codes: readonly string[] | undefined): string[] | null {
  if (!codes || codes.length === 0) return null;
  return selectStores(config, codes).map((s: StoreConfig) => s.code);
}
