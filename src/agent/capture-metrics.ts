import type { StoreConfig } from '../config/load.js';
import type { Logger } from '../core/logger.js';
import { bounded, connect, endClient } from '../db/connect.js';
import { sleepUnlessAborted } from '../core/sleep-unless-aborted.js';
import type { PipelineMetricsSet } from '../metrics/pipeline-metrics.js';
import { storeRole } from './prepare.js';
import { storeCapture } from './store-capture.js';

export interface CaptureMetricsOptions {
  readonly stores: readonly StoreConfig[];
  readonly metrics: PipelineMetricsSet;
  /** The position HQ holds for a store's up pipeline (what its running pipeline last committed), null when unknown. */
  readonly position: (store: string) => string | null;
  /** How often each store is read (`source.status_interval_ms`). */
  readonly intervalMs: number;
  readonly logger: Logger;
}

/**
 * Reads each store's slot (or change table) every `intervalMs` into the
 * slot lag and WAL retained gauges: a scrape reads the cached values and
 * never waits for a store. A store that does not answer keeps its last
 * values (its pipeline's state says it is away).
 */
export async function runCaptureMetrics(options: CaptureMetricsOptions, signal: AbortSignal): Promise<void> {
  const log = options.logger.child({ task: 'capture-metrics' });
  // Each store on its own round: one that is slow to answer (or stalls until its read deadline) delays only its own readings.
  await Promise.all(
    options.stores.map(async (store) => {
      while (!signal.aborted) {
        await readOne(store, options, log);
        await sleepUnlessAborted(options.intervalMs, signal);
      }
    }),
  );
}

async function readOne(store: StoreConfig, options: CaptureMetricsOptions, log: Logger): Promise<void> {
  const capture = storeCapture(store);
  try {
    const db = capture.postgres
      ? await connect(store.url, { role: storeRole(store), applicationName: 'branchline-metrics', connectTimeoutMs: 3_000, ...bounded(5_000) })
      : null;
    try {
      const seen = await capture.inspect(options.position(store.code), db);
      options.metrics.capture(store.code, { lagBytes: seen.lagBytes, retainedBytes: seen.retainedBytes });
    } finally {
      if (db) await endClient(db);
    }
  } catch (e) {
    log.debug('store capture not read for the metrics this time', { store: store.code, error: e instanceof Error ? e.message : String(e) });
  }
}
