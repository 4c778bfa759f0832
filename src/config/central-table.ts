import type pg from 'pg';
import { BranchlineError, isBranchlineError } from '../core/errors.js';
import { bounded, connect, connectionError, describeUrl, endClient, isConnectionError } from '../db/connect.js';

/**
 * HQ's table of published configuration versions
 * (migrations/20261123000005_central_config.ts), as central.ts and
 * central-watch.ts read and write it.
 */

export const CONFIG_TABLE = 'branchline.config_versions';
/** NOTIFY channel on which `config push` announces a new version (payload: the version), in its transaction. */
export const CONFIG_CHANNEL = 'branchline_config';

export interface NewestVersion {
  readonly version: number;
  readonly sha256: string;
}

/** The current (newest) version, or null when none was published. */
export async function newestVersion(db: pg.ClientBase): Promise<NewestVersion | null> {
  const r = await db.query<{ version: string; sha256: string }>(`SELECT version::text AS version, sha256 FROM ${CONFIG_TABLE} ORDER BY version DESC LIMIT 1`);
  const row = r.rows[0];
  return row ? { version: Number(row.version), sha256: row.sha256 } : null;
}

/** BL-D005 unless HQ has the table (`branchline install` creates it). */
export async function requireConfigTable(db: pg.ClientBase, hqUrl: string): Promise<void> {
  const r = await db.query<{ ok: boolean }>(`SELECT to_regclass('${CONFIG_TABLE}') IS NOT NULL AS ok`);
  if (!r.rows[0]?.ok)
    throw new BranchlineError({
      code: 'BL-D005',
      message: `branchline's central configuration is not installed at the HQ database at ${describeUrl(hqUrl)} (it has no ${CONFIG_TABLE} table).`,
      hint: "Run `branchline install` at HQ: it brings branchline's schema up to date.",
    });
}

/** A statement on the configuration table that takes longer than this fails (the agent keeps the version it runs). */
const CONFIG_STATEMENT_TIMEOUT_MS = 15_000;

/** One HQ connection for `fn`, after checking the table is there; a lost connection becomes BL-D001. */
export async function withConfigTable<T>(hqUrl: string, applicationName: string, fn: (db: pg.Client) => Promise<T>): Promise<T> {
  // Bounded: an agent fetches its configuration at start and at every publication; a stalled link must not hold either.
  const db = await connect(hqUrl, { role: 'HQ', applicationName, ...bounded(CONFIG_STATEMENT_TIMEOUT_MS) });
  try {
    await requireConfigTable(db, hqUrl);
    return await fn(db);
  } catch (e) {
    if (!isBranchlineError(e) && isConnectionError(e)) throw connectionError(e, hqUrl, 'HQ');
    throw e;
  } finally {
    await endClient(db);
  }
}
