import client from 'prom-client';
import { METRIC } from './names.js';

/** What the lease manager reports: whether this agent holds a store's lease (and runs its pipelines). */
export interface LeaseMetrics {
  held(store: string, held: boolean): void;
}

/** The lease gauge, 0 for every store until this agent takes its lease. */
export function createLeaseMetrics(registry: client.Registry, stores: readonly string[]): LeaseMetrics {
  const gauge = new client.Gauge({
    name: METRIC.storeLeaseHeld,
    help: 'Whether this agent holds the store\'s lease at HQ and runs its pipelines (1) or not (0); with lease: configured. Without it, 1 for every store it runs.',
    labelNames: ['store'] as const,
    registers: [registry],
  });
  for (const store of stores) gauge.set({ store }, 0);
  return { held: (store, held) => gauge.set({ store }, held ? 1 : 0) };
}
