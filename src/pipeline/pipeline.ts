import type { SourceMessage } from '../core/change.js';
import { BranchlineError, describeProblem, isBranchlineError } from '../core/errors.js';
import type { ClockOffset } from './clock-offset.js';
import type { Logger } from '../core/logger.js';
import type { Source, SourceStream } from '../core/source.js';
import type { TargetOp } from '../core/target-op.js';
import type { CompiledMapping, MappingContext, MappingSet } from '../mapping/mapping.js';
import type { ErrorCode } from '../core/errors.js';
import { formatTable } from '../core/change.js';
import { ApplyRejected, type PgSink, type PipelineIdentity } from '../apply/pg-sink.js';
import type { PlanMode } from '../apply/plan.js';
import { Backoff } from './backoff.js';
import { haltsPipeline, waitWhileHalted } from './halt.js';
import { behindReason, ParkedRows, parkRecord, rowKeyText, type ChangeOrigin, type MappedChange, type ParkRecord } from './parking.js';
import type { ApplyGate } from './apply-gate.js';
import { Scheduler } from '../schedule/scheduler.js';
import type { ChunkExtras } from '../apply/pg-sink.js';
import type { LabelCapture } from '../labels/label-capture.js';
import type { PendingLabels } from '../labels/pending-labels.js';
import type { PipelineMetrics } from '../metrics/pipeline-metrics.js';

export interface BatchSettings {
  /** Commit the HQ transaction once it holds this many rows (at a source commit). */
  readonly maxRows: number;
  /** ... or once its first row is this old, even while the source keeps sending. */
  readonly maxDelayMs: number;
  /**
   * Commit as soon as the source has sent nothing for this long (and the
   * batch holds whole transactions): a live store's rows reach HQ within a
   * few milliseconds, while a backlog still goes in big batches.
   */
  readonly idleMs: number;
  /** Rows sent per statement round; a bigger source transaction is applied in several rounds. */
  readonly chunkRows: number;
}

/** `halted`: stopped by a failure no retry can cure (see halt.ts), until a person fixes it. */
export type PipelineState = 'starting' | 'streaming' | 'backoff' | 'halted' | 'stopped';

export interface PipelineSnapshot {
  /** `paused`: never the pipeline's own; the agent reports a pipeline stopped by `branchline pause` so. */
  readonly state: PipelineState | 'paused';
  readonly txnsApplied: number;
  readonly rowsApplied: number;
  readonly batchesApplied: number;
  readonly lastAppliedAt: Date | null;
  readonly lastSourceCommitTime: Date | null;
  /** Commit time of the oldest transaction received but not yet committed at the target. */
  readonly oldestUnapplied: Date | null;
  readonly lastError: { code: string; message: string; at: Date } | null;
  readonly position: string | null;
  /** Batches the grouped plan could not apply and that were redone in exact source order. */
  readonly batchesRedone: number;
  /** Rows with a parked change (this session's view). */
  readonly parkedRows: number;
  /** Parked changes at the target (this session's view). */
  readonly parkedChanges: number;
  /** Changes parked / parked changes applied by a retry, since the agent started. */
  readonly changesParked: number;
  readonly parkedApplied: number;
  /** Scheduled changes applied when due, since the agent started. */
  readonly scheduledApplied: number;
}

export interface PipelineHooks {
  /** After every committed batch (metrics, tests). */
  onBatch?(b: { txns: number; rows: number; durationMs: number; lagMs: number | null }): void;
  onState?(state: PipelineState, error?: unknown): void;
}

export interface PipelineOptions<P> {
  readonly id: PipelineIdentity;
  readonly source: Source<P>;
  /** A fresh sink per session (connection + pipeline lock). */
  readonly sink: () => PgSink;
  readonly mappings: MappingSet;
  readonly context: MappingContext;
  readonly batch: BatchSettings;
  readonly retry: { readonly initialMs: number; readonly maxMs: number };
  readonly gate?: ApplyGate;
  readonly logger: Logger;
  readonly hooks?: PipelineHooks;
  /** Counters, histograms and gauges of this pipeline (docs/operations.md), fed per transaction and per batch. */
  readonly metrics?: PipelineMetrics;
  /** How often parked changes are checked for a retry (their association created, `branchline retry`). Default 2000. */
  readonly retryCheckMs?: number;
  /** Down pipelines: scheduled rows (`effective_at`); the zone in which times without one are read. */
  readonly schedule?: { readonly timeZone: string };
  /** Down pipelines: shelf labels for price changes (captured with the rows, written after the commit). */
  readonly labels?: { readonly capture: LabelCapture; readonly pending: PendingLabels };
  /**
   * The source's and the target's clocks as offsets from the agent's: commit
   * times are read in the source's clock, lag is measured in the agent's,
   * and times written to the target are in the target's (docs/operations.md,
   * "Lag and clocks"). Without: all three clocks are taken to agree.
   */
  readonly clocks?: { readonly source: ClockOffset; readonly target: ClockOffset };
}

const NO_EFFECTIVE: ReadonlyMap<string, Date> = new Map();

/** How often an idle position is stored at the target, for a source that purges below what it was acknowledged (Source.idlePositionsStored). */
const IDLE_STORE_MS = 5_000;

/** A grouped batch failed on the data: redo it in exact order, through the transaction that failed. */
interface SafeMode<P> {
  /** Last commit seen before the failure; null if none was seen in this pipeline yet. */
  readonly through: P | null;
  /**
   * True when the failure came while applying transactions up to and
   * including `through` (at a batch commit); false when it came inside the
   * transaction after it (a chunk of a big transaction).
   */
  readonly inclusive: boolean;
}

/**
 * Source -> mapping -> sink for one store and one direction.
 *
 * Many source transactions go into one target transaction (by rows and by
 * time); a huge source transaction is applied in chunks into the open
 * target transaction as it arrives and committed at its source commit, so
 * memory stays bounded. The position is committed with the rows; the source
 * is acknowledged only after that commit. Any failure ends the session: the
 * open target transaction rolls back, and after a back-off the next session
 * resumes from the position stored at the target.
 */
export class Pipeline<P> {
  private state: PipelineState = 'stopped';
  private txnsApplied = 0;
  private rowsApplied = 0;
  private batchesApplied = 0;
  private lastAppliedAt: Date | null = null;
  private lastSourceCommitTime: Date | null = null;
  private oldestUnapplied: Date | null = null;
  private lastError: PipelineSnapshot['lastError'] = null;
  private position: string | null = null;
  private safeMode: SafeMode<P> | null = null;
  private batchesRedone = 0;
  private readonly parked = new ParkedRows();
  /** Parked changes of this pipeline at HQ, as far as this session knows. */
  private parkedRecords = 0;
  private changesParked = 0;
  private parkedApplied = 0;
  private scheduledApplied = 0;
  private readonly scheduler: Scheduler | null;
  /** Labels were recorded in the open transaction (written once it commits). */
  private labelsRecorded = false;

  constructor(private readonly options: PipelineOptions<P>) {
    this.scheduler = options.schedule ? new Scheduler({ pipeline: options.id.name, mappings: options.mappings.mappings.map((m) => m.name), timeZone: options.schedule.timeZone, logger: options.logger }) : null;
  }

  snapshot(): PipelineSnapshot {
    return {
      state: this.state,
      txnsApplied: this.txnsApplied,
      rowsApplied: this.rowsApplied,
      batchesApplied: this.batchesApplied,
      lastAppliedAt: this.lastAppliedAt,
      lastSourceCommitTime: this.lastSourceCommitTime,
      oldestUnapplied: this.oldestUnapplied,
      lastError: this.lastError,
      position: this.position,
      batchesRedone: this.batchesRedone,
      parkedRows: this.parked.size,
      parkedChanges: this.parkedRecords,
      changesParked: this.changesParked,
      parkedApplied: this.parkedApplied,
      scheduledApplied: this.scheduledApplied,
    };
  }

  /** A source commit time in the agent's clock. */
  private local(commitTime: Date): Date {
    return this.options.clocks ? this.options.clocks.source.toLocal(commitTime) : commitTime;
  }

  /** A time of the agent's clock in the target's (for what the sink writes there). */
  private atTarget<T extends Date | null>(d: T): T {
    return (d && this.options.clocks ? this.options.clocks.target.fromLocal(d) : d) as T;
  }

  /** Re-reads the clock offsets when they are a minute old (best effort: never throws). */
  private async readClocks(): Promise<void> {
    const c = this.options.clocks;
    if (c) await Promise.all([c.source.refresh(), c.target.refresh()]);
  }

  /** Runs sessions until `signal` aborts; never throws for runtime failures. */
  async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(this.options.retry);
    const log = this.options.logger;
    while (!signal.aborted) {
      this.setState('starting');
      const startedAt = Date.now();
      try {
        await this.session(signal);
      } catch (e) {
        if (signal.aborted) break;
        if (Date.now() - startedAt > 60_000) backoff.reset();
        this.recordError(e);
        if (haltsPipeline(e)) {
          this.setState('halted', e);
          await waitWhileHalted({ error: e, since: this.position, sink: this.options.sink, intervalMs: Math.min(this.options.retry.maxMs, HALT_REPORT_MS), logger: log, signal });
          backoff.reset();
          continue;
        }
        const delay = backoff.next();
        const level = isBranchlineError(e) ? 'warn' : 'error';
        log.log(level, 'pipeline session ended; retrying', {
          code: isBranchlineError(e) ? e.code : undefined,
          error: (e as Error)?.message ?? String(e),
          ...(isBranchlineError(e) ? {} : { stack: (e as Error)?.stack }),
          retryInMs: delay,
          safeMode: this.safeMode !== null,
        });
        this.setState('backoff', e);
        await sleep(delay, signal);
      }
    }
    this.setState('stopped');
  }

  private async session(signal: AbortSignal): Promise<void> {
    const { source, mappings, context, batch, logger, gate } = this.options;
    const retryCheckMs = this.options.retryCheckMs ?? 2_000;
    const codec = source.positions;
    const sink = this.options.sink();
    let stream: SourceStream<P> | null = null;
    let pending: Promise<IteratorResult<SourceMessage<P>>> | null = null;
    let releaseGate: (() => void) | null = null;
    const onAbort = () => void stream?.close();
    signal.addEventListener('abort', onAbort, { once: true });

    try {
      await sink.connect();
      await this.readClocks();
      const stored = await sink.storedPosition();
      const after = stored === null ? null : codec.parse(stored);
      this.position = stored;
      await this.reloadParked(sink);
      let lastRetryCheck = Date.now();
      let idleStoredAt = 0;
      await this.retryParked(sink);
      if (this.scheduler) await this.scheduler.load(sink);
      await this.idleWork(sink);
      stream = await source.open(after);
      this.setState('streaming');
      await sink.reportStatus('streaming', { error: null });
      const safe = this.safeMode;
      let mode: PlanMode = safe ? 'ordered' : 'grouped';
      if (safe) logger.info('redoing the failed batch in exact source order', { through: safe.through === null ? 'first transaction' : codec.format(safe.through) });

      let chunk: TargetOp[] = [];
      // origins[i]: where chunk[i] came from, for operations that may have to be parked (associations).
      let origins: (ChangeOrigin | undefined)[] = [];
      let parks: ParkRecord[] = [];
      let supersede: { mapping: string; reason: string }[] = [];
      let txn: { xid: number; commitTime: Date; position: string | null } | null = null;
      let inTxn = false;
      let batchStarted = 0; // ms; 0 = no open batch
      let batchTxns = 0;
      let batchRows = 0;
      /** Changes of the batch that this pipeline's mappings kept (mapped, parked or scheduled): what the metrics count. */
      let batchKept = 0;
      /** batchKept at the last source commit read: the kept changes of the batch's whole transactions. */
      let wholeKept = 0;
      let lastCommit: { position: P; commitTime: Date } | null = null;
      let lastStatusAt = Date.now();

      const flushChunk = async () => {
        const scheduling = this.scheduler?.dirty ?? false;
        if (chunk.length === 0 && parks.length === 0 && supersede.length === 0 && !scheduling) return;
        if (!releaseGate && gate) releaseGate = await gate.acquire();
        const ops = chunk;
        const extras = { origins, parks, supersede };
        chunk = [];
        origins = [];
        parks = [];
        supersede = [];
        // What this chunk scheduled or superseded goes in the batch transaction, before its rows.
        if (scheduling) await this.scheduler!.flush(sink);
        const parked = await this.applyOps(sink, ops, mode, extras, NO_EFFECTIVE);
        for (const r of parked) this.parked.add(r.mapping, r.rowKeys);
        this.parkedRecords += parked.length;
        if (parked.length > 0) {
          this.changesParked += parked.length;
          this.options.metrics?.parked(parked.length);
          for (const r of parked) logger.warn('change parked', { code: r.reasonCode, reason: r.reason, mapping: r.mapping, rowKeys: r.rowKeys });
        }
      };

      /** Parks the change through `m` instead of mapping it; it is written with the next chunk. */
      const park = (m: CompiledMapping, change: MappedChange, rowKeys: string[], why: { code: ErrorCode; message: string }) => {
        parks.push(parkRecord({ mapping: m, change, xid: txn?.xid ?? null, commitTime: txn?.commitTime ?? null, position: txn?.position ?? null }, rowKeys, why, chunk.length));
        this.parked.add(m.name, rowKeys);
      };

      const commitBatch = async () => {
        if (!lastCommit) return;
        const started = Date.now();
        await flushChunk();
        if (!releaseGate && gate) releaseGate = await gate.acquire();
        const pos = codec.format(lastCommit.position);
        // The commit time in the agent's clock (lag), and in the target's (what the target stores and compares with its now()).
        const committedAt = this.local(lastCommit.commitTime);
        await sink.commit(pos, { txns: batchTxns, rows: batchRows, sourceCommitTime: this.atTarget(committedAt) });
        this.committedLabels();
        const release = releaseGate as (() => void) | null;
        releaseGate = null;
        release?.();
        stream!.ack(lastCommit.position);
        const now = new Date();
        this.position = pos;
        this.txnsApplied += batchTxns;
        this.rowsApplied += batchRows;
        this.batchesApplied++;
        this.lastAppliedAt = now;
        this.lastSourceCommitTime = committedAt;
        this.oldestUnapplied = null;
        const lagMs = now.getTime() - committedAt.getTime();
        this.options.hooks?.onBatch?.({ txns: batchTxns, rows: batchRows, durationMs: now.getTime() - started, lagMs });
        this.options.metrics?.captured(wholeKept);
        wholeKept = 0;
        this.options.metrics?.applied({ txns: batchTxns, changes: batchKept, seconds: (now.getTime() - started) / 1000, lagSeconds: lagMs / 1000, at: now });
        const safeDone = (m: SafeMode<P>, pos: P) => {
          if (m.through === null) return true;
          const c = codec.compare(pos, m.through);
          return c > 0 || (c === 0 && m.inclusive);
        };
        if (this.safeMode && safeDone(this.safeMode, lastCommit.position)) {
          this.safeMode = null;
          mode = 'grouped';
          logger.info('batch applied in exact order; back to grouped apply');
        }
        this.lastError = null;
        if (Date.now() - lastStatusAt > 5_000) {
          lastStatusAt = Date.now();
          await sink.reportStatus('streaming', { receivedPosition: pos, oldestUnapplied: null });
        }
        lastCommit = null;
        batchStarted = 0;
        batchTxns = 0;
        batchRows = 0;
        batchKept = 0;
        if (Date.now() - lastRetryCheck >= retryCheckMs) {
          lastRetryCheck = Date.now();
          await this.retryParked(sink);
        }
        await this.idleWork(sink);
      };

      const due = () => batchStarted !== 0 && (batchRows >= batch.maxRows || Date.now() - batchStarted >= batch.maxDelayMs);

      try {
        for (;;) {
          if (signal.aborted) return;
          // Buffered messages are taken synchronously: no promise or timer per row.
          let msg = pending ? undefined : stream.poll();
          if (!msg) {
            pending ??= stream.messages.next();
            // Nothing buffered: a batch of whole transactions waits only idle_ms more.
            const committable: boolean = (lastCommit as unknown) !== null && !inTxn;
            // Nothing open: wake at the next scheduled change's time, not only on the next poll.
            const dueIn = !inTxn && (lastCommit as unknown) === null ? (this.scheduler?.dueInMs() ?? null) : null;
            const waitMs: number = committable ? Math.min(batch.idleMs, Math.max(0, batch.maxDelayMs - (Date.now() - batchStarted))) : Math.min(1_000, dueIn ?? 1_000);
            const result: IteratorResult<SourceMessage<P>> | typeof TIMEOUT = await raceTimeout(pending, waitMs);
            if (result === TIMEOUT) {
              if (!inTxn && lastCommit) await commitBatch();
              else if (!inTxn && !sink.open && Date.now() - lastRetryCheck >= retryCheckMs) {
                lastRetryCheck = Date.now();
                await this.retryParked(sink);
              }
              if (!inTxn && !lastCommit && !sink.open) await this.idleWork(sink);
              if (Date.now() - lastStatusAt > 5_000 && !sink.open) {
                lastStatusAt = Date.now();
                void this.readClocks();
                await sink.reportStatus('streaming', { oldestUnapplied: this.atTarget(this.oldestUnapplied) });
              }
              continue;
            }
            pending = null;
            if (result.done) {
              if (signal.aborted) return; // closed by us: a clean stop, not an error
              throw new BranchlineError({ code: 'BL-D001', message: 'the source stream ended.', hint: 'branchline reconnects on its own.' });
            }
            msg = result.value;
          }
          switch (msg.kind) {
            case 'begin':
              inTxn = true;
              if (batchStarted === 0) batchStarted = Date.now();
              this.oldestUnapplied ??= this.local(msg.commitTime);
              context.commitTime = msg.commitTime;
              txn = { xid: msg.xid, commitTime: msg.commitTime, position: msg.commitPosition === undefined ? null : codec.format(msg.commitPosition) };
              break;
            case 'change': {
              const change = msg.change;
              if (change.op === 'truncate') {
                // Parked changes of a truncated table would bring back rows the store
                // removed: the truncate supersedes them (discarded, with that reason).
                this.scheduler?.truncate(change.tables.flatMap((t) => mappings.forSource(t)));
                const superseded = change.tables.flatMap((t) => mappings.forSource(t)).filter((m) => this.parked.holds(m.name));
                if (superseded.length > 0) {
                  await flushChunk();
                  supersede = superseded.map((m) => ({ mapping: m.name, reason: `the store truncated ${formatTable(m.source)} after this change (store transaction ${txn?.xid ?? '?'}).` }));
                  for (const m of superseded) this.parked.release(m.name);
                }
                for (const t of change.tables) for (const m of mappings.forSource(t)) for (const op of m.mapTruncate(context)) chunk.push(op);
                batchKept++;
              } else {
                const ms = mappings.forSource(change.table);
                // A change no mapping keeps (routed to another store, filtered out) is read, not counted.
                const mark = chunk.length + parks.length;
                let scheduled = false;
                for (let i = 0; i < ms.length; i++) {
                  const m = ms[i]!;
                  if (this.parked.size > 0) {
                    const keys = this.parked.touched(m, change, context);
                    if (keys !== null) {
                      park(m, change, keys, behindReason(m.name));
                      continue;
                    }
                  }
                  let ops: TargetOp[];
                  try {
                    ops = m.map(change, context);
                    // A row that takes effect later waits at the store (branchline.scheduled) instead.
                    if (this.scheduler?.consider(m, change, ops, context, txn?.commitTime ?? null)) {
                      scheduled = true;
                      continue;
                    }
                  } catch (e) {
                    // An expression that fails on this row: park it, the stream goes on.
                    if (!isBranchlineError(e) || e.code !== 'BL-M015') throw e;
                    park(m, change, m.rowKeys(change, context).map(rowKeyText), { code: 'BL-M015', message: errorReport(e).message });
                    continue;
                  }
                  // Where an operation came from, for those that may be parked: associations,
                  // and every change while a batch is redone change by change.
                  if (m.associates || mode === 'ordered') {
                    const origin: ChangeOrigin = { mapping: m, change, xid: txn?.xid ?? null, commitTime: txn?.commitTime ?? null, position: txn?.position ?? null };
                    for (let j = 0; j < ops.length; j++) {
                      origins[chunk.length] = origin;
                      chunk.push(ops[j]!);
                    }
                  } else {
                    for (let j = 0; j < ops.length; j++) chunk.push(ops[j]!);
                  }
                }
                if (scheduled || chunk.length + parks.length > mark) batchKept++;
              }
              batchRows++;
              if (chunk.length >= batch.chunkRows) await flushChunk();
              break;
            }
            case 'commit':
              inTxn = false;
              batchTxns++;
              wholeKept = batchKept;
              lastCommit = { position: msg.position, commitTime: msg.commitTime };
              if (due()) await commitBatch();
              break;
            case 'idle':
              // A keepalive says the walsender caught up with the store's WAL, not
              // that we did: when we are behind, one follows every transaction.
              // So it closes a batch only when due; an empty buffer (the wait
              // above) is what closes a batch early.
              if (!inTxn && lastCommit && due()) await commitBatch();
              // Nothing held anywhere: let the source release what it keeps.
              if (!inTxn && !lastCommit && batchStarted === 0 && chunk.length === 0 && !sink.open) {
                if (!source.idlePositionsStored) stream.ack(msg.position);
                else if (Date.now() - idleStoredAt >= IDLE_STORE_MS) {
                  // What is acknowledged may be purged at the source: the target holds it first (no counter or "last apply" moves).
                  idleStoredAt = Date.now();
                  if (await sink.storeIdlePosition(codec.format(msg.position))) stream.ack(msg.position);
                }
                // Keepalives may arrive more often than the wait above times out: check parked changes here too.
                if (Date.now() - lastRetryCheck >= retryCheckMs) {
                  lastRetryCheck = Date.now();
                  await this.retryParked(sink);
                }
                await this.idleWork(sink);
              }
              break;
          }
        }
      } catch (e) {
        await sink.rollback().catch(() => undefined);
        // Read whole but not committed: the next session reads them again, and they count again.
        if (wholeKept > 0) this.options.metrics?.captured(wholeKept);
        this.scheduler?.reset();
        this.labelsRecorded = false;
        if (signal.aborted) return; // whatever failed, it failed because we were stopping
        await sink.reportStatus('backoff', { error: errorReport(e) });
        if (e instanceof ApplyRejected && mode === 'grouped') {
          this.batchesRedone++;
          this.safeMode = {
            through: lastCommit ? (lastCommit as { position: P }).position : this.position === null ? null : codec.parse(this.position),
            inclusive: !inTxn && lastCommit !== null,
          };
        }
        throw e;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      const release = releaseGate as (() => void) | null;
      release?.();
      await sink.rollback().catch(() => undefined);
      if (stream) await stream.close().catch(() => undefined);
      pending?.catch(() => undefined);
      if (signal.aborted) await sink.reportStatus('stopped', {}).catch(() => undefined);
      await sink.close();
    }
  }

  /**
   * Applies the parked changes that may go now (see PgSink.retryParked), and
   * refreshes which rows are held back when the parked changes at HQ are
   * fewer than this pipeline parked (someone discarded one).
   */
  private async retryParked(sink: PgSink): Promise<void> {
    const state = await sink.parkedState();
    if (!state.retryable) {
      if (state.parked < this.parkedRecords) await this.reloadParked(sink);
      return;
    }
    const { mappings, context, logger } = this.options;
    const saved = context.commitTime;
    try {
      const r = await sink.retryParked((name, change, commitTime) => {
        const m = mappings.mappings.find((x) => x.name === name);
        if (!m)
          throw new BranchlineError({
            code: 'BL-P007',
            message: `mapping file ${name} is no longer in the mapping directory.`,
            hint: 'Put the file back, or discard the change with `branchline discard`.',
          });
        context.commitTime = commitTime;
        return m.map(change, context);
      });
      this.parked.clear();
      for (const x of r.remaining) this.parked.add(x.mapping, x.rowKeys);
      this.parkedRecords = r.remaining.length;
      this.parkedApplied += r.applied;
      if (r.applied > 0) logger.info('parked changes applied', { applied: r.applied, stillParked: r.remaining.length });
    } finally {
      context.commitTime = saved;
    }
  }

  /** A set of operations applied in the open transaction, with the shelf labels of the prices it changes. */
  private async applyOps(sink: PgSink, ops: readonly TargetOp[], mode: PlanMode, extras: ChunkExtras, effectiveAt: ReadonlyMap<string, Date>): Promise<ParkRecord[]> {
    const capture = this.options.labels?.capture;
    const before = capture && ops.length > 0 ? await capture.before(sink, ops) : null;
    const parked = await sink.apply(ops, mode, extras);
    if (capture && before && (await capture.after(sink, before, effectiveAt)) > 0) this.labelsRecorded = true;
    return parked;
  }

  /** The transaction that recorded labels committed: they may be written. */
  private committedLabels(): void {
    if (!this.labelsRecorded) return;
    this.labelsRecorded = false;
    this.options.labels?.pending.owe();
  }

  /** Outside a batch: apply the scheduled changes that are due, then write pending shelf labels. */
  private async idleWork(sink: PgSink): Promise<void> {
    if (sink.open) return;
    const s = this.scheduler;
    if (s && s.dueInMs() === 0) {
      const { mappings, context, logger, gate } = this.options;
      const release = gate ? await gate.acquire() : null;
      try {
        const r = await s.applyDue(sink, mappings, context, (ops, mode, extras, eff) => this.applyOps(sink, ops, mode, extras, eff));
        this.committedLabels();
        for (const p of r.parks) this.parked.add(p.mapping, p.rowKeys);
        this.parkedRecords += r.parks.length;
        this.changesParked += r.parks.length;
        if (r.parks.length > 0) this.options.metrics?.parked(r.parks.length);
        this.scheduledApplied += r.applied;
        if (r.applied > 0 || r.parks.length > 0) logger.info('scheduled changes applied', { applied: r.applied, parked: r.parks.length, next: s.next?.toISOString() ?? null });
      } finally {
        this.labelsRecorded = false;
        release?.();
      }
    }
    await this.options.labels?.pending.flush(sink);
  }

  private async reloadParked(sink: PgSink): Promise<void> {
    const rows = await sink.parkedRows();
    this.parked.clear();
    for (const r of rows) this.parked.add(r.mapping, r.rowKeys);
    this.parkedRecords = rows.length;
  }

  private recordError(e: unknown): void {
    this.lastError = { ...errorReport(e), at: new Date() };
  }

  private setState(state: PipelineState, error?: unknown): void {
    this.state = state;
    this.options.hooks?.onState?.(state, error);
    this.options.metrics?.state(state);
  }
}

/** Code and sentence of an error, the code not repeated in the sentence. */
function errorReport(e: unknown): { code: string; message: string } {
  if (isBranchlineError(e)) return { code: e.code, message: describeProblem(e.problem) };
  return { code: 'internal', message: (e as Error)?.message ?? String(e) };
}

/** A halted pipeline reports itself (and looks for a new position) at least this often: as often as a running one reports. */
const HALT_REPORT_MS = 5_000;

const TIMEOUT = Symbol('timeout');

function raceTimeout<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMEOUT> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => resolve(TIMEOUT), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
