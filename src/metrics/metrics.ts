import client from 'prom-client';
import { METRIC } from './names.js';
import { createPipelineMetrics, type PipelineMetricsSet } from './pipeline-metrics.js';
import { createLeaseMetrics, type LeaseMetrics } from './lease-metrics.js';

export { METRIC } from './names.js';

/** The prefix of the default process metrics (prom-client's, e.g. `branchline_process_cpu_user_seconds_total`). */
export const PROCESS_METRIC_PREFIX = 'branchline_';

export type SettlementAnswer = 'released' | 'deleted' | 'settled' | 'amount_differs' | 'unavailable';
export const SETTLEMENT_ANSWERS: readonly SettlementAnswer[] = ['released', 'deleted', 'settled', 'amount_differs', 'unavailable'];

/** What settlement checks report. `asked`: `store` (HQ asked a store) or `hq` (a store asked HQ). */
export interface SettlementMetrics {
  answered(store: string, asked: 'store' | 'hq', answer: SettlementAnswer, count: number): void;
  /** One round trip to one database, in seconds. */
  observeRound(store: string, asked: 'store' | 'hq', seconds: number): void;
}

export interface Metrics extends PipelineMetricsSet {
  readonly registry: client.Registry;
  readonly settlement: SettlementMetrics;
  readonly leases: LeaseMetrics;
}

/** The agent's metrics for these stores (one registry per agent; tests make their own). */
export function createMetrics(stores: readonly string[], options: { processMetrics?: boolean } = {}): Metrics {
  const registry = new client.Registry();
  if (options.processMetrics ?? true) client.collectDefaultMetrics({ register: registry, prefix: PROCESS_METRIC_PREFIX });
  const checks = new client.Counter({
    name: METRIC.settlementChecks,
    help: 'Settlement checks answered, by store, by whom was asked (store: HQ asked the origin store; hq: a store asked HQ) and by answer.',
    labelNames: ['store', 'asked', 'answer'] as const,
    registers: [registry],
  });
  const rounds = new client.Histogram({
    name: METRIC.settlementCheckSeconds,
    help: 'Time of one settlement-check round trip to the database asked (connecting included), by store and by whom was asked.',
    labelNames: ['store', 'asked'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  for (const store of stores)
    for (const asked of ['store', 'hq'] as const) {
      for (const answer of SETTLEMENT_ANSWERS) checks.inc({ store, asked, answer }, 0);
      rounds.zero({ store, asked });
    }
  return {
    registry,
    settlement: {
      answered: (store, asked, answer, count) => checks.inc({ store, asked, answer }, count),
      observeRound: (store, asked, seconds) => rounds.observe({ store, asked }, seconds),
    },
    leases: createLeaseMetrics(registry, stores),
    ...createPipelineMetrics(registry, stores),
  };
}
