import type { RowChange } from '../core/change.js';
import type { ErrorCode } from '../core/errors.js';
import type { TargetTable } from '../core/target-op.js';
import type { CompiledMapping, MappingContext } from '../mapping/mapping.js';

export type MappedChange = Exclude<RowChange, { op: 'truncate' }>;

/** Where a chunk's operations came from, for the ones that may have to be parked. */
export interface ChangeOrigin {
  readonly mapping: CompiledMapping;
  readonly change: MappedChange;
  readonly xid: number | null;
  readonly commitTime: Date | null;
  /** The source transaction's commit position, formatted (e.g. a store LSN). */
  readonly position?: string | null;
}

/**
 * A change of one row, through one mapping, that cannot be applied now. It
 * is written to `branchline.parked` in the batch transaction that moves the
 * position past it: nothing is lost, nothing is parked twice.
 */
export interface ParkRecord {
  readonly mapping: string;
  readonly target: TargetTable;
  /** The target keys (store side, JSON) of the rows it touches; later changes to them park behind it. */
  readonly rowKeys: readonly string[];
  readonly reasonCode: ErrorCode;
  readonly reason: string;
  readonly entity: string | null;
  readonly branchCode: string | null;
  readonly change: MappedChange;
  readonly xid: number | null;
  readonly commitTime: Date | null;
  readonly position: string | null;
  /** Where in its chunk the change was (index of its first operation): parks of one chunk are written in this order. */
  readonly at: number;
}

/** Why a change is parked: a code, a sentence, and for a missing association which one. */
export interface ParkReason {
  readonly code: ErrorCode;
  readonly message: string;
  readonly entity?: string;
  readonly branchCode?: string;
}

/** Why a change waits behind an earlier parked change of its row (BL-P006). */
export function behindReason(mapping: string): { code: 'BL-P006'; message: string } {
  return { code: 'BL-P006', message: `${mapping}: an earlier change of this row is parked; this one waits behind it.` };
}

/** Why a change waits for a manual association (BL-M021); `entity` and `branchCode` let a new association release it. */
export function missingReason(mapping: string, target: string, entity: string, code: string): { code: 'BL-M021'; message: string; entity: string; branchCode: string } {
  return {
    code: 'BL-M021',
    message: `${mapping}: ${target} needs the HQ key of ${entity} "${code}", which is not associated for this store yet.`,
    entity,
    branchCode: code,
  };
}

export function rowKeyText(key: readonly string[]): string {
  return JSON.stringify(key);
}

export function parkRecord(
  origin: ChangeOrigin,
  rowKeys: readonly string[],
  reason: ParkReason,
  at: number,
): ParkRecord {
  return {
    mapping: origin.mapping.name,
    target: origin.mapping.target,
    rowKeys,
    reasonCode: reason.code,
    reason: reason.message,
    entity: reason.entity ?? null,
    branchCode: reason.branchCode ?? null,
    change: origin.change,
    xid: origin.xid,
    commitTime: origin.commitTime,
    position: origin.position ?? null,
    at,
  };
}

/**
 * Rows held back by a parked change, by mapping and store-side key: a later
 * change to one of them parks behind it, so a row never goes out of order.
 * The pipeline keeps one for the stream; a chunk, a redo and a retry pass
 * each keep their own for the rows they park.
 */
export class ParkedRows {
  private readonly rows = new Map<string, Set<string>>();
  private count = 0;

  /** How many row keys are held (read per change on the hot path: kept, not counted). */
  get size(): number {
    return this.count;
  }

  clear(): void {
    this.rows.clear();
    this.count = 0;
  }

  add(mapping: string, rowKeys: readonly string[]): void {
    let s = this.rows.get(mapping);
    if (!s) {
      s = new Set();
      this.rows.set(mapping, s);
    }
    for (const k of rowKeys) {
      if (s.has(k)) continue;
      s.add(k);
      this.count++;
    }
  }

  /** Whether some row of `mapping` is held. */
  holds(mapping: string): boolean {
    return (this.rows.get(mapping)?.size ?? 0) > 0;
  }

  /** Holds no row of `mapping` any more (its parked changes were superseded). */
  release(mapping: string): void {
    const s = this.rows.get(mapping);
    if (!s) return;
    this.count -= s.size;
    this.rows.delete(mapping);
  }

  /** Holds none of `rowKeys` of `mapping` any more; whether one of them was held. */
  remove(mapping: string, rowKeys: readonly string[]): boolean {
    const s = this.rows.get(mapping);
    if (!s) return false;
    let hit = false;
    for (const k of rowKeys) {
      if (!s.delete(k)) continue;
      this.count--;
      hit = true;
    }
    return hit;
  }

  has(mapping: string, rowKey: string): boolean {
    return this.rows.get(mapping)?.has(rowKey) ?? false;
  }

  /** The row keys of `change` through `m` when one of them is parked, else null. Cheap when nothing of `m` is parked. */
  touched(m: CompiledMapping, change: MappedChange, ctx: MappingContext): string[] | null {
    const s = this.rows.get(m.name);
    if (s === undefined || s.size === 0) return null;
    const keys = m.rowKeys(change, ctx).map(rowKeyText);
    return keys.some((k) => s.has(k)) ? keys : null;
  }
}

/** The source change as stored with a parked record (values the change did not carry stay absent). */
export function changeJson(change: MappedChange): string {
  return JSON.stringify({ op: change.op, table: change.table, ...('before' in change && change.before ? { before: change.before } : {}), ...('after' in change ? { after: change.after } : {}) });
}

/** A stored change back (JSON drops `undefined`, which reads back as absent: still "not sent"). */
export function changeFromJson(v: unknown): MappedChange {
  const c = v as { op: 'insert' | 'update' | 'delete'; table: { schema: string; table: string }; before?: Record<string, string | null>; after?: Record<string, string | null> };
  switch (c.op) {
    case 'insert':
      return { op: 'insert', table: c.table, after: c.after! };
    case 'update':
      return c.before ? { op: 'update', table: c.table, before: c.before, after: c.after! } : { op: 'update', table: c.table, after: c.after! };
    case 'delete':
      return { op: 'delete', table: c.table, before: c.before! };
  }
}
