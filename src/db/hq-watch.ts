import type pg from 'pg';
import { isBranchlineError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { Backoff } from '../pipeline/backoff.js';
import { bounded, connect, quoteIdent } from './connect.js';

export interface HqWatchOptions {
  readonly hqUrl: string;
  readonly applicationName: string;
  /** The NOTIFY channel that says "look now". */
  readonly channel: string;
  /** What is watched, for the log lines ("cannot watch HQ for <what>; retrying"). */
  readonly what: string;
  /** Runs once per connection, after LISTEN (e.g. checks the watched table is there); throwing counts as a failed connection. */
  readonly prepare?: (db: pg.Client) => Promise<void>;
  /** Reads what is watched: once connected, after each notification, and every `pollMs`. */
  readonly look: (db: pg.Client) => Promise<void>;
  /** How often to look without a notification (ms). */
  readonly pollMs: number;
  /** Reconnect back-off (default 1 s doubling to 30 s). */
  readonly retry?: { readonly initialMs: number; readonly maxMs: number };
  readonly logger: Logger;
  readonly signal: AbortSignal;
}

/** A look is one small query: HQ answers it in milliseconds. */
const LOOK_TIMEOUT_MS = 10_000;

/**
 * Watches something kept in a table at HQ until `signal` aborts: LISTEN on
 * a channel (whoever changes the table notifies in its transaction), and a
 * look every `pollMs` in case a notification was missed. HQ going away is
 * logged (warn) and the connection re-opened with back-off; it never throws.
 */
export async function watchHq(options: HqWatchOptions): Promise<void> {
  const { hqUrl, logger, signal, what } = options;
  const backoff = new Backoff(options.retry ?? { initialMs: 1_000, maxMs: 30_000 });
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
      // Bounded statements: a link that stalls without a reset fails the next look, and the watch reconnects.
      db = await connect(hqUrl, { role: 'HQ', applicationName: options.applicationName, ...bounded(LOOK_TIMEOUT_MS) });
      db.on('notification', (m) => m.channel === options.channel && poke());
      db.on('error', (e) => {
        conn.lost ??= e;
        poke();
      });
      db.on('end', () => {
        conn.lost ??= new Error('the connection to HQ ended');
        poke();
      });
      await db.query(`LISTEN ${quoteIdent(options.channel)}`);
      await options.prepare?.(db);
      if (failing) logger.info(`watching HQ for ${what} again`);
      failing = false;
      backoff.reset();
      while (!signal.aborted && !conn.lost) {
        woken = false;
        await options.look(db);
        await pause(options.pollMs, true);
      }
      if (conn.lost && !signal.aborted) throw conn.lost;
    } catch (e) {
      if (signal.aborted) break;
      failing = true;
      const delay = backoff.next();
      logger.warn(`cannot watch HQ for ${what}; retrying`, {
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

