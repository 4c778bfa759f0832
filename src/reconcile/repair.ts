import type { PgSink } from '../apply/pg-sink.js';
import type { TargetOp } from '../core/target-op.js';
import type { CompiledMapping } from '../mapping/mapping.js';
import type { ChangeOrigin } from '../pipeline/parking.js';
import type { SourceRowsReader, SourceTable } from './source-rows.js';

/** What reconcile --fix repairs one mapping's target with: the source (in the comparison's snapshot) and the sink. */
export interface RepairArgs {
  readonly m: CompiledMapping;
  readonly ctx: { readonly storeCode: string };
  /** The source's rows, inside the read the comparison made. */
  readonly reader: SourceRowsReader;
  /** The source table and its primary key. */
  readonly table: SourceTable;
  /** Null without --fix. */
  readonly sink: PgSink | null;
}

type Row = Record<string, string | null>;

/**
 * What a soft delete sets that marks a row as deleted: a row holding it is
 * not extra. Only the values that do not depend on the commit time (a
 * `deleted_at: commit_time()` differs per row); null for other mappings.
 */
export function softMark(m: CompiledMapping, ctx: { storeCode: string }): Record<string, string | null> | null {
  const setAt = (ms: number) => {
    const op = m.mapTruncate({ ...ctx, commitTime: new Date(ms) }).find((o) => o.kind === 'delete-where' && o.set !== undefined);
    return op?.kind === 'delete-where' ? (op.set ?? null) : null;
  };
  const a = setAt(0);
  const b = setAt(86_400_000);
  if (!a || !b) return null;
  const mark = Object.fromEntries(Object.entries(a).filter(([c, v]) => b[c] === v));
  return Object.keys(mark).length > 0 ? mark : null;
}

/** Reads the source rows with these keys (`SourceRow.key`) again (in the same read) and applies them through the mapping and the sink. */
export async function resend(a: RepairArgs, sourceKeys: readonly string[]): Promise<number> {
  const { m, ctx, reader, table, sink } = a;
  if (!sink || sourceKeys.length === 0) return 0;
  let sent = 0;
  for (let i = 0; i < sourceKeys.length; i += 1000) {
    const rows = await reader.byKeys(table, sourceKeys.slice(i, i + 1000));
    const ops: TargetOp[] = [];
    const origins: (ChangeOrigin | undefined)[] = [];
    for (const row of rows) {
      const change = { op: 'insert' as const, table: m.source, after: row.values };
      for (const op of m.map(change, ctx)) {
        if (m.associates) origins[ops.length] = { mapping: m, change, xid: null, commitTime: null, position: null };
        ops.push(op.kind === 'upsert' && op.fresh ? { ...op, fresh: false } : op);
      }
    }
    await sink.apply(ops, 'grouped', { origins });
    await sink.commitWithoutPosition();
    sent += rows.length;
  }
  return sent;
}

/** Deletes the target rows no source row maps to, as a delete of the source row would (a soft delete where the mapping says so). */
export async function removeExtra(a: RepairArgs, extra: readonly (readonly string[])[]): Promise<number> {
  const { m, ctx, sink } = a;
  if (!sink || extra.length === 0) return 0;
  const soft = m.mapTruncate(ctx).find((op) => op.kind === 'delete-where' && op.set !== undefined);
  const ops: TargetOp[] = extra.map((key) => {
    if (soft && soft.kind === 'delete-where' && soft.set) {
      const row: Row = { ...soft.set };
      m.target.key.forEach((k, i) => (row[k] = key[i]!));
      return { kind: 'update', target: m.target, key, row };
    }
    return { kind: 'delete', target: m.target, key };
  });
  for (let i = 0; i < ops.length; i += 1000) {
    await sink.apply(ops.slice(i, i + 1000), 'grouped', { origins: [] });
    await sink.commitWithoutPosition();
  }
  return extra.length;
}
