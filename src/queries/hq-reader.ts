import type pg from 'pg';
import type { Queryable } from '../catalog/pg-catalog.js';
import { bounded, connectionError, destroyClient, isConnectionError, newPool } from '../db/connect.js';

/**
 * Where the cross-store queries read: HQ through `hq.read_url` (a read-only
 * role), every read in a READ ONLY transaction as well.
 */
export interface HqReader {
  /** Runs `fn` in one READ ONLY transaction at HQ; a lost or refused connection comes back as BL-D001/BL-D002. */
  read<T>(fn: (db: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A query that takes longer than this is cancelled (a clerk is waiting). */
export const QUERY_TIMEOUT_MS = 15_000;

const ROLE = 'HQ (read_url)';

/** A small pool on `readUrl` (Config.hq.readUrl). */
export function poolHqReader(readUrl: string, options: { applicationName?: string; max?: number } = {}): HqReader {
  const pool = newPool(readUrl, { role: ROLE, applicationName: options.applicationName ?? 'branchline-queries', ...bounded(QUERY_TIMEOUT_MS), max: options.max ?? 2 });
  const fail = (e: unknown): never => {
    throw isConnectionError(e) || (e as { code?: string })?.code?.startsWith('28') ? connectionError(e, readUrl, ROLE) : e;
  };
  return {
    async read<T>(fn: (db: Queryable) => Promise<T>): Promise<T> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (e) {
        return fail(e);
      }
      let broken: Error | undefined;
      try {
        await client.query('BEGIN TRANSACTION READ ONLY');
        const r = await fn(client);
        await client.query('COMMIT');
        return r;
      } catch (e) {
        if (isConnectionError(e)) {
          // No ROLLBACK over a lost or stalled link (it would wait out a deadline of its own): the session goes, and its transaction with it.
          broken = e as Error;
          destroyClient(client);
        } else await client.query('ROLLBACK').catch((err: Error) => (broken = err));
        return fail(e);
      } finally {
        client.release(broken);
      }
    },
    close: () => pool.end(),
  };
}
