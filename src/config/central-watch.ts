import type pg from 'pg';
import { isBranchlineError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { connect } from '../db/connect.js';
import { Backoff } from '../pipeline/backoff.js';
import { CONFIG_CHANNEL, newestVersion, requireConfigTable } from './central-table.js';

export interface WatchConfigOptions {
  readonly hqUrl: string;
  /** Called when the newest published version differs from the last one seen (not awaited; errors are logged). */
  readonly onVersion: (version: number, sha256: string) => void | Promise<void>;
  /** The version the caller already has: not reported until another one is newest. Default: none (the first one seen is reported). */
  readonly since?: number | null;
  /** How often to look without a notification (ms). Default 30 s. */
  readonly pollMs?: number;
  /** Reconnect back-off (default 1 s doubling to 30 s). */
  readonly retry?: { readonly initialMs: number; readonly maxMs: number };
  readonly logger: Logger;
  readonly signal: AbortSignal;
}

/**
 * Watches HQ for newly published configuration versions until `signal`
 * aborts: LISTEN on `branchline_config` (push notifies in its transaction),
 * and a look every `pollMs` in case a notification was missed. HQ going
 * away is logged (warn) and the connection re-opened with back-off; it never
 * throws.
 */
export async function watchConfig(options: WatchConfigOptions): Promise<void> {
  const { hqUrl, logger, signal } = options;
  const pollMs = options.pollMs ?? 30_000;
  const backoff = new Backoff(options.retry ?? { initialMs: 1_000, maxMs: 30_000 });
  let last = options.since ?? null;
  let woken = false;
  let wake: (() => void) | null = null;
  const poke = () => {
    woken = true;
    wake?.();
  };
  /** Resolves after `ms`, or at once on abort or (with `notifications`) a notification or a lost connection. */
  const pause = (ms: number, notifications: boolean) =>
    new Promise<void>((resolve) => {
      if (signal.aborted || (notifications && woken)) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        if (wake === done) wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
      if (notifications) wake = done;
    });
  let failing = false;
  while (!signal.aborted) {
    let db: pg.Client | null = null;
    const conn: { lost: unknown } = { lost: null };
    try {
      db = await connect(hqUrl, { role: 'HQ', applicationName: 'branchline-config-watch' });
      db.on('notification', (m) => m.channel === CONFIG_CHANNEL && poke());
      db.on('error', (e) => {
        conn.lost ??= e;
        poke();
      });
      db.on('end', () => {
        conn.lost ??= new Error('the connection to HQ ended');
        poke();
      });
      await db.query(`LISTEN ${CONFIG_CHANNEL}`);
      await requireConfigTable(db, hqUrl);
      if (failing) logger.info('watching HQ for configuration versions again');
      failing = false;
      backoff.reset();
      while (!signal.aborted && !conn.lost) {
        woken = false;
        const newest = await newestVersion(db);
        if (newest && newest.version !== last) {
          last = newest.version;
          deliver(options, newest.version, newest.sha256);
        }
        await pause(pollMs, true);
      }
      if (conn.lost && !signal.aborted) throw conn.lost;
    } catch (e) {
      if (signal.aborted) break;
      failing = true;
      const delay = backoff.next();
      logger.warn('cannot watch HQ for configuration versions; retrying', {
        ...(isBranchlineError(e) ? { code: e.code } : {}),
        error: (e as Error)?.message ?? String(e),
        retryInMs: delay,
      });
      await pause(delay, false);
    } finally {
      conn.lost ??= 'closing';
      await db?.end().catch(() => undefined);
    }
  }
}

function deliver(options: WatchConfigOptions, version: number, sha256: string): void {
  const failed = (e: unknown) => options.logger.error('configuration version handler failed', { version, error: (e as Error)?.stack ?? String(e) });
  try {
    const r = options.onVersion(version, sha256);
    if (r && typeof (r as Promise<void>).catch === 'function') (r as Promise<void>).catch(failed);
  } catch (e) {
    failed(e);
  }
}
