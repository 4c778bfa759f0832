import client from 'prom-client';
import { METRIC } from './names.js';

export type Direction = 'up' | 'down';
export const DIRECTIONS: readonly Direction[] = ['up', 'down'];
/**
 * `none`: this agent runs no such pipeline (yet: e.g. no down mappings, or HQ not reached). `paused`: kept stopped by
 * `branchline pause` until `resume`. The rest are the pipeline's states.
 */
export const PIPELINE_STATES = ['none', 'starting', 'streaming', 'backoff', 'halted', 'stopped', 'paused'] as const;
export type MetricsPipelineState = (typeof PIPELINE_STATES)[number];

/** What one pipeline reports, per source transaction or per batch (never per row). */
export interface PipelineMetrics {
  /** Changes read in whole source transactions: a batch's, as it commits or as its session fails (per batch, not per transaction). */
  captured(changes: number): void;
  /** A batch committed at the target. `lagSeconds`: from the source commit of its last transaction to the target commit. */
  applied(batch: { readonly txns: number; readonly changes: number; readonly seconds: number; readonly lagSeconds: number; readonly at: Date }): void;
  /** Changes parked (written to branchline.parked instead of applied). */
  parked(count: number): void;
  state(state: Exclude<MetricsPipelineState, 'none' | 'paused'>): void;
}

/** What a pipeline holds in memory, read at each scrape (no database round trip). */
export interface PipelineView {
  readonly oldestUnapplied: Date | null;
  /** Parked changes of this pipeline at the target, as its session knows them. */
  readonly parked: number;
}

/** A store's capture as last read by the agent (null: not known, e.g. the store did not answer). */
export interface CaptureReading {
  readonly lagBytes: number | null;
  readonly retainedBytes: number | null;
}

export interface PipelineMetricsSet {
  /** The metrics of one pipeline; `view` is read at every scrape. */
  pipeline(store: string, direction: Direction, view: () => PipelineView): PipelineMetrics;
  /** A store's slot (or change table) as just read. */
  capture(store: string, reading: CaptureReading): void;
  /** The pipeline is paused (`branchline pause`) and nothing of it runs: its state is `paused` until it starts again. */
  paused(store: string, direction: Direction): void;
}

const BATCH_BUCKETS = [1, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000];
const APPLY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The pipeline and capture metrics, every series at 0 for every store and both directions. */
export function createPipelineMetrics(registry: client.Registry, stores: readonly string[]): PipelineMetricsSet {
  const labelNames = ['store', 'direction'] as const;
  const counter = (name: string, help: string) => new client.Counter({ name, help, labelNames, registers: [registry] });
  const captured = counter(METRIC.changesCaptured, 'Source changes read in whole transactions (read again after a failed session: counted again).');
  const applied = counter(METRIC.changesApplied, 'Source changes whose batch committed at the target (parked ones included: their batch committed them to branchline.parked).');
  const txns = counter(METRIC.transactionsApplied, 'Source transactions committed at the target.');
  const batches = counter(METRIC.batchesApplied, 'Target transactions (batches) committed.');
  const parkedTotal = counter(METRIC.changesParked, 'Changes parked instead of applied, since the agent started.');
  const errors = counter(METRIC.sessionErrors, 'Pipeline sessions that ended in an error (each is retried after a back-off).');
  const rows = new client.Histogram({ name: METRIC.batchRows, help: 'Source changes per committed batch.', labelNames, buckets: BATCH_BUCKETS, registers: [registry] });
  const seconds = new client.Histogram({
    name: METRIC.applySeconds,
    help: 'Time from the batch\'s commit starting to the target commit done (the last chunk, the position and the commit), seconds.',
    labelNames,
    buckets: APPLY_BUCKETS,
    registers: [registry],
  });
  const lag = new client.Gauge({ name: METRIC.lagSeconds, help: 'Seconds from the source commit to the target commit, of the last committed batch.', labelNames, registers: [registry] });
  const last = new client.Gauge({ name: METRIC.lastApplyTime, help: 'Unix time of the last committed batch (0: none since the agent started).', labelNames, registers: [registry] });
  const state = new client.Gauge({ name: METRIC.pipelineState, help: 'The pipeline\'s state: 1 for the state it is in, 0 for the others.', labelNames: ['store', 'direction', 'state'] as const, registers: [registry] });
  const views = new Map<string, { store: string; direction: Direction; read: () => PipelineView }>();
  const oldest = new client.Gauge({
    name: METRIC.oldestUnappliedSeconds,
    help: 'Age of the oldest source change read but not committed at the target, seconds (0: none waiting).',
    labelNames,
    registers: [registry],
    collect() {
      const now = Date.now();
      for (const v of views.values()) {
        const at = v.read().oldestUnapplied;
        this.set({ store: v.store, direction: v.direction }, at ? Math.max(0, (now - at.getTime()) / 1000) : 0);
      }
    },
  });
  const parkedNow = new client.Gauge({
    name: METRIC.parkedChanges,
    help: 'Parked changes waiting at the target (not applied, not discarded), as the running pipeline knows them.',
    labelNames,
    registers: [registry],
    collect() {
      for (const v of views.values()) this.set({ store: v.store, direction: v.direction }, v.read().parked);
    },
  });
  const slotLag = new client.Gauge({ name: METRIC.slotLagBytes, help: 'Bytes the store holds that HQ has not applied (slot: WAL after its confirmed position; change table: its rows HQ lacks), as last read.', labelNames: ['store'] as const, registers: [registry] });
  const retained = new client.Gauge({ name: METRIC.slotRetainedBytes, help: 'Bytes the store keeps for HQ (slot: WAL from its restart position; change table: its size), as last read.', labelNames: ['store'] as const, registers: [registry] });

  for (const store of stores) {
    slotLag.set({ store }, 0);
    retained.set({ store }, 0);
    for (const direction of DIRECTIONS) {
      const l = { store, direction };
      for (const c of [captured, applied, txns, batches, parkedTotal, errors]) c.inc(l, 0);
      rows.zero(l);
      seconds.zero(l);
      for (const g of [lag, last, oldest, parkedNow]) g.set(l, 0);
      for (const s of PIPELINE_STATES) state.set({ ...l, state: s }, s === 'none' ? 1 : 0);
    }
  }

  return {
    pipeline(store, direction, read) {
      const l = { store, direction };
      views.set(`${direction}:${store}`, { store, direction, read });
      // Children bound once: per batch, no label lookup.
      const c = { captured: captured.labels(l), applied: applied.labels(l), txns: txns.labels(l), batches: batches.labels(l), parked: parkedTotal.labels(l) };
      const h = { rows: rows.labels(l), seconds: seconds.labels(l) };
      const g = { lag: lag.labels(l), last: last.labels(l) };
      let current: MetricsPipelineState = 'none';
      // A pipeline started again (its store's lease taken back) starts from `none`, not beside its last state.
      for (const s of PIPELINE_STATES) state.set({ ...l, state: s }, s === 'none' ? 1 : 0);
      return {
        captured: (n) => c.captured.inc(n),
        applied(b) {
          c.applied.inc(b.changes);
          c.txns.inc(b.txns);
          c.batches.inc();
          h.rows.observe(b.changes);
          h.seconds.observe(b.seconds);
          g.lag.set(Math.max(0, b.lagSeconds));
          g.last.set(b.at.getTime() / 1000);
        },
        parked: (n) => c.parked.inc(n),
        state(s) {
          if (s === current) return;
          if (s === 'backoff' || s === 'halted') errors.inc(l);
          state.set({ ...l, state: current }, 0);
          state.set({ ...l, state: s }, 1);
          current = s;
        },
      };
    },
    paused(store, direction) {
      for (const s of PIPELINE_STATES) state.set({ store, direction, state: s }, s === 'paused' ? 1 : 0);
    },
    capture(store, reading) {
      if (reading.lagBytes !== null) slotLag.set({ store }, reading.lagBytes);
      if (reading.retainedBytes !== null) retained.set({ store }, reading.retainedBytes);
    },
  };
}
