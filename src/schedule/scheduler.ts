import { describeProblem, isBranchlineError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { upsertWith, type TargetOp } from '../core/target-op.js';
import type { CompiledMapping, MappingContext, MappingSet } from '../mapping/mapping.js';
import { ApplyRejected, type ChunkExtras, type PgSink } from '../apply/pg-sink.js';
import type { PlanMode } from '../apply/plan.js';
import { changeFromJson, changeJson, ParkedRows, parkRecord, rowKeyText, type ChangeOrigin, type MappedChange, type ParkRecord } from '../pipeline/parking.js';
import { effectiveInstant, instantText, StoreZone } from './effective-time.js';

/** A change that waits at the store for its effective time (a row of `branchline.scheduled`). */
interface ScheduleRecord {
  readonly mapping: string;
  readonly target: string;
  readonly rowKeys: readonly string[];
  readonly effectiveAt: number;
  readonly change: MappedChange;
  readonly commitTime: Date | null;
}

/** How the pipeline applies a set of operations (labels are captured around it): the scheduler's one way to write rows. */
export type ApplyOps = (ops: readonly TargetOp[], mode: PlanMode, extras: ChunkExtras, effectiveAt: ReadonlyMap<string, Date>) => Promise<ParkRecord[]>;

const SCHEDULE_SQL = `INSERT INTO branchline.scheduled (pipeline, mapping, target_table, row_keys, effective_at, change, source_commit_time)
  SELECT $1, e.v->>'mapping', e.v->>'target_table', ARRAY(SELECT jsonb_array_elements_text(e.v->'row_keys')), (e.v->>'effective_at')::timestamptz,
         e.v->'change', (e.v->>'source_commit_time')::timestamptz
    FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e(v, n)
   ORDER BY e.n`;

const UNSCHEDULE_SQL = `DELETE FROM branchline.scheduled s
  USING jsonb_array_elements($2::jsonb) AS e(v)
  WHERE s.pipeline = $1 AND s.mapping = e.v->>'mapping' AND s.row_keys && ARRAY(SELECT jsonb_array_elements_text(e.v->'row_keys'))`;

const WRITES = new Set<TargetOp['kind']>(['upsert', 'insert-missing', 'update', 'move']);

export interface SchedulerOptions {
  readonly pipeline: string;
  /** Names of the mapping files in use: scheduled changes of other (removed) files wait, untouched. */
  readonly mappings: readonly string[];
  /** Zone in which effective times without a zone (timestamp, date) are read. */
  readonly timeZone: string;
  readonly logger: Logger;
}

/**
 * Scheduled down rows (`effective_at`), for one pipeline. While mapping, a
 * change whose effective time is still in the future at the store is held
 * here instead of applied, and written to `branchline.scheduled` with the
 * chunk, in the batch transaction that moves the position past it. A later
 * change of the same row (mapping and target key), a delete included,
 * supersedes its scheduled changes (deleted in that batch); a TRUNCATE
 * supersedes its mappings' ones. When due, they are applied oldest effective
 * time first (then in scheduling order), through the mapping and the normal
 * set-based apply, in one store transaction that deletes them.
 */
export class Scheduler {
  /** The rows that have a scheduled change, by mapping (the same bookkeeping as the rows held behind parked changes). */
  private readonly rows = new ParkedRows();
  private pending: ScheduleRecord[] = [];
  private unschedule: { mapping: string; row_keys: readonly string[] }[] = [];
  private unscheduleMappings: string[] = [];
  /** Store clock minus this host's clock (ms), measured each session. */
  private offsetMs = 0;
  /** The next effective time of a scheduled change (store clock, ms), or null. */
  private nextDue: number | null = null;
  private readonly zone: StoreZone;

  private readonly known: string[];

  constructor(private readonly options: SchedulerOptions) {
    this.zone = new StoreZone(options.timeZone);
    this.known = [...options.mappings];
  }

  /** Changes scheduled (this session's view) and the next due time. */
  get next(): Date | null {
    return this.nextDue === null || !Number.isFinite(this.nextDue) ? null : new Date(this.nextDue);
  }

  private storeNow(): number {
    return Date.now() + this.offsetMs;
  }

  /** Measures the store's clock and reads the rows that have a scheduled change (session start, outside a batch). */
  async load(sink: PgSink): Promise<void> {
    await this.measureClock(sink);
    const [gone] = await sink.execute<{ n: string; mappings: string[] | null }>(
      `SELECT count(*) AS n, array_agg(DISTINCT mapping) AS mappings FROM branchline.scheduled WHERE pipeline = $1 AND NOT (mapping = ANY($2::text[]))`,
      [this.options.pipeline, this.known],
    );
    if (Number(gone?.n ?? 0) > 0)
      this.options.logger.warn('scheduled changes wait for mapping files that are no longer in the mapping directory; put them back to apply them', {
        code: 'BL-P007',
        scheduled: Number(gone!.n),
        mappings: gone!.mappings,
      });
    const rows = await sink.execute<{ mapping: string; row_keys: string[] }>(`SELECT mapping, row_keys FROM branchline.scheduled WHERE pipeline = $1`, [this.options.pipeline]);
    await this.readNext(sink);
    await sink.commitWithoutPosition();
    this.rows.clear();
    for (const r of rows) this.rows.add(r.mapping, r.row_keys);
    this.pending = [];
    this.unschedule = [];
    this.unscheduleMappings = [];
  }

  /** The store's clock against this host's (inside a transaction: the caller ends it). */
  private async measureClock(sink: PgSink): Promise<void> {
    const t0 = Date.now();
    const [clock] = await sink.execute<{ ms: number }>(`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`);
    const t1 = Date.now();
    this.offsetMs = Math.round(clock!.ms - (t0 + t1) / 2);
  }

  private async readNext(sink: PgSink): Promise<void> {
    // Epoch milliseconds (float8: 'infinity' comes back as Infinity), read by the store, in no session zone.
    const [n] = await sink.execute<{ next: number | null }>(
      `SELECT (extract(epoch FROM min(effective_at)) * 1000)::float8 AS next FROM branchline.scheduled WHERE pipeline = $1 AND mapping = ANY($2::text[])`,
      [this.options.pipeline, this.known],
    );
    this.nextDue = n?.next ?? null;
  }

  /** Milliseconds (this host's clock) until the next scheduled change is due: 0 when it is, null when there is none. */
  dueInMs(): number | null {
    if (this.nextDue === null || this.nextDue === Number.POSITIVE_INFINITY) return null;
    // A few ms late rather than early: the store decides what is due by its own clock.
    return Math.max(0, this.nextDue + 5 - this.storeNow());
  }

  /**
   * A change of `m` mapped to `ops`: supersedes the row's scheduled changes,
   * and holds the change back (true) when it takes effect later. Throws
   * BL-M015 for an effective time that cannot be read (the change is parked).
   */
  consider(m: CompiledMapping, change: MappedChange, ops: readonly TargetOp[], ctx: MappingContext, commitTime: Date | null): boolean {
    const eff = m.effectiveAt;
    if (eff === null && !this.rows.holds(m.name)) return false;
    const keys = m.rowKeys(change, ctx).map(rowKeyText);
    if (this.rows.remove(m.name, keys)) {
      // HQ's row is HQ's current intention: what was scheduled for it is gone.
      // Not flushed yet: dropped here; already in the table (this batch or before): deleted with the next chunk.
      this.pending = this.pending.filter((p) => p.mapping !== m.name || !p.rowKeys.some((k) => keys.includes(k)));
      this.unschedule.push({ mapping: m.name, row_keys: keys });
    }
    if (eff === null || change.op === 'delete') return false;
    const at = effectiveInstant(change.after[eff.column], eff, this.zone, m.name);
    if (at === null || at <= this.storeNow()) return false;
    // Only a row this store gets waits: one routed or filtered away is removed now.
    if (!ops.some((o) => WRITES.has(o.kind))) return false;
    this.pending.push({ mapping: m.name, target: `${m.target.schema}.${m.target.table}`, rowKeys: keys, effectiveAt: at, change, commitTime });
    this.rows.add(m.name, keys);
    if (this.nextDue === null || at < this.nextDue) this.nextDue = at;
    return true;
  }

  /** A TRUNCATE of a source table: its mappings' scheduled changes are gone. */
  truncate(mappings: readonly CompiledMapping[]): void {
    for (const m of mappings) {
      if (!this.rows.holds(m.name)) continue;
      this.rows.release(m.name);
      this.pending = this.pending.filter((p) => p.mapping !== m.name);
      this.unscheduleMappings.push(m.name);
    }
  }

  /** Whether the next chunk has scheduling work for the batch transaction. */
  get dirty(): boolean {
    return this.pending.length > 0 || this.unschedule.length > 0 || this.unscheduleMappings.length > 0;
  }

  /** Writes what this chunk scheduled and superseded, in the open batch transaction (opening it). */
  async flush(sink: PgSink): Promise<void> {
    const p = this.options.pipeline;
    if (this.unscheduleMappings.length > 0) await sink.execute(`DELETE FROM branchline.scheduled WHERE pipeline = $1 AND mapping = ANY($2::text[])`, [p, this.unscheduleMappings]);
    if (this.unschedule.length > 0) await sink.execute(UNSCHEDULE_SQL, [p, JSON.stringify(this.unschedule)]);
    if (this.pending.length > 0) {
      const json = `[${this.pending
        .map(
          (r) =>
            `{"mapping":${JSON.stringify(r.mapping)},"target_table":${JSON.stringify(r.target)},"row_keys":${JSON.stringify(r.rowKeys)},"effective_at":${JSON.stringify(instantText(r.effectiveAt))},` +
            `"change":${changeJson(r.change)},"source_commit_time":${r.commitTime ? JSON.stringify(r.commitTime.toISOString()) : 'null'}}`,
        )
        .join(',')}]`;
      await sink.execute(SCHEDULE_SQL, [p, json]);
    }
    this.pending = [];
    this.unschedule = [];
    this.unscheduleMappings = [];
  }

  /** The batch rolled back: what it scheduled is not in the table (the session ends; the next one reloads). */
  reset(): void {
    this.pending = [];
    this.unschedule = [];
    this.unscheduleMappings = [];
  }

  /**
   * Applies every due scheduled change (outside a batch) in one store
   * transaction that also deletes them: grouped and set-based; if the store
   * rejects that, again change by change, parking what it still rejects.
   * Returns how many were applied and what was parked.
   */
  async applyDue(sink: PgSink, mappings: MappingSet, ctx: MappingContext, apply: ApplyOps): Promise<{ applied: number; parks: ParkRecord[] }> {
    if (sink.open) throw new Error('internal: applyDue inside a batch');
    for (const mode of ['grouped', 'ordered'] as const) {
      try {
        const r = await this.applyDueOnce(sink, mappings, ctx, apply, mode);
        await this.readNext(sink);
        await this.measureClock(sink);
        await sink.commitWithoutPosition();
        return r;
      } catch (e) {
        await sink.rollback();
        if (!(e instanceof ApplyRejected) || mode === 'ordered') throw e;
        this.options.logger.warn('the store rejected the due scheduled changes as a set; applying them one by one', { error: e.message });
      }
    }
    throw new Error('unreachable');
  }

  private async applyDueOnce(sink: PgSink, mappings: MappingSet, ctx: MappingContext, apply: ApplyOps, mode: PlanMode): Promise<{ applied: number; parks: ParkRecord[] }> {
    const due = await sink.execute<{ id: string; mapping: string; row_keys: string[]; change: unknown; source_commit_time: Date | null; effective_at: Date }>(
      `SELECT id, mapping, row_keys, change, source_commit_time, effective_at FROM branchline.scheduled
        WHERE pipeline = $1 AND effective_at <= clock_timestamp() AND mapping = ANY($2::text[]) ORDER BY effective_at, id FOR UPDATE`,
      [this.options.pipeline, this.known],
    );
    if (due.length === 0) return { applied: 0, parks: [] };
    const ops: TargetOp[] = [];
    const origins: (ChangeOrigin | undefined)[] = [];
    const parks: ParkRecord[] = [];
    const effective = new Map<string, Date>();
    const saved = ctx.commitTime;
    try {
      for (const row of due) {
        const m = mappings.mappings.find((x) => x.name === row.mapping);
        if (!m) throw new Error(`internal: mapping ${row.mapping} is not in the mapping set`);
        const change = changeFromJson(row.change);
        const origin: ChangeOrigin = { mapping: m, change, xid: null, commitTime: row.source_commit_time, position: null };
        ctx.commitTime = row.source_commit_time;
        let mapped: TargetOp[];
        try {
          mapped = m.map(change, ctx);
        } catch (e) {
          if (!isBranchlineError(e) || e.code !== 'BL-M015') throw e;
          parks.push(parkRecord(origin, row.row_keys, { code: 'BL-M015', message: describeProblem(e.problem) }, ops.length));
          continue;
        }
        for (const op of mapped) {
          if (op.kind !== 'ignore' && op.kind !== 'delete-where') effective.set(`${op.target.schema}.${op.target.table}|${rowKeyText(op.key)}`, row.effective_at);
          origins[ops.length] = origin;
          // The row may exist by now (a load, another change): a scheduled insert writes it whatever is there.
          ops.push(op.kind === 'upsert' && op.fresh ? upsertWith(op, false) : op);
        }
      }
    } finally {
      ctx.commitTime = saved;
    }
    const parked = await apply(ops, mode, { origins, parks }, effective);
    await sink.execute(`DELETE FROM branchline.scheduled WHERE id = ANY($1::bigint[])`, [due.map((r) => r.id)]);
    for (const r of due) this.rows.remove(r.mapping, r.row_keys);
    return { applied: due.length - parked.length, parks: parked };
  }
}
