import type { Logger } from '../core/logger.js';
import { watchHq } from '../db/hq-watch.js';
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
  let last = options.since ?? null;
  await watchHq({
    hqUrl,
    applicationName: 'branchline-config-watch',
    channel: CONFIG_CHANNEL,
    what: 'configuration versions',
    prepare: (db) => requireConfigTable(db, hqUrl),
    look: async (db) => {
      const newest = await newestVersion(db);
      if (newest && newest.version !== last) {
        last = newest.version;
        deliver(options, newest.version, newest.sha256);
      }
    },
    pollMs: options.pollMs ?? 30_000,
    ...(options.retry ? { retry: options.retry } : {}),
    logger,
    signal,
  });
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
