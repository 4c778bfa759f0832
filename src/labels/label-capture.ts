import { tableKey, type TableId } from '../core/change.js';
import type { TargetOp } from '../core/target-op.js';
import type { PgSink } from '../apply/pg-sink.js';
import { qualified, quoteIdent } from '../db/connect.js';
import { rowKeyText } from '../pipeline/parking.js';

/** A store table whose rows get shelf labels when their price changes (a down mapping's `labels:`). */
export interface LabelTarget {
  readonly mapping: string;
  readonly table: TableId;
  /** The target key columns and their store types (as format_type prints them). */
  readonly key: readonly { readonly name: string; readonly type: string }[];
  readonly code: string;
  readonly description: string;
  readonly price: string;
  readonly currency: string | null;
}

/** The labelled rows a chunk writes, with their prices before it ran. */
export interface CapturedPrices {
  readonly tables: readonly { readonly target: LabelTarget; readonly keys: readonly (readonly string[])[]; readonly previous: ReadonlyMap<number, string | null> }[];
}

const WRITES = new Set<TargetOp['kind']>(['upsert', 'insert-missing', 'update', 'move']);

const PENDING_SQL = `INSERT INTO branchline.pending_labels (pipeline, mapping, code, description, price, previous_price, currency, effective_at)
  SELECT $1, e.v->>'mapping', e.v->>'code', e.v->>'description', e.v->>'price', e.v->>'previous_price', e.v->>'currency', (e.v->>'effective_at')::timestamptz
    FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e(v, n)
   ORDER BY e.n`;

/**
 * Which labelled rows a chunk changes the price of, read at the store in the
 * batch transaction: the prices of the chunk's rows before its statements
 * run, and the rows as stored after; a row whose stored price differs (or
 * that is new) gets a pending label (`branchline.pending_labels`) in that
 * same transaction. Comparing what the store holds, in its own types, means
 * a label exactly when the shelf price changes.
 */
export class LabelCapture {
  private readonly byTable: ReadonlyMap<string, LabelTarget>;

  constructor(private readonly options: { readonly pipeline: string; readonly targets: readonly LabelTarget[] }) {
    const m = new Map<string, LabelTarget>();
    for (const t of options.targets) if (!m.has(tableKey(t.table))) m.set(tableKey(t.table), t);
    this.byTable = m;
  }

  get active(): boolean {
    return this.byTable.size > 0;
  }

  /** Reads the current prices of the labelled rows `ops` write (opening the batch transaction); null when there are none. */
  async before(sink: PgSink, ops: readonly TargetOp[]): Promise<CapturedPrices | null> {
    const keysOf = new Map<string, Map<string, readonly string[]>>();
    for (const op of ops) {
      if (!WRITES.has(op.kind) || op.kind === 'ignore' || op.kind === 'delete-where') continue;
      const id = tableKey(op.target);
      if (!this.byTable.has(id)) continue;
      let keys = keysOf.get(id);
      if (!keys) keysOf.set(id, (keys = new Map()));
      keys.set(rowKeyText(op.key), op.key);
    }
    if (keysOf.size === 0) return null;
    const tables: { target: LabelTarget; keys: (readonly string[])[]; previous: Map<number, string | null> }[] = [];
    for (const [id, keyMap] of keysOf) {
      const target = this.byTable.get(id)!;
      const keys = [...keyMap.values()];
      const rows = await sink.execute<{ i: string; price: string | null }>(this.select(target, `t.${quoteIdent(target.price)}::text AS price`), this.keyParams(target, keys));
      tables.push({ target, keys, previous: new Map(rows.map((r) => [Number(r.i), r.price])) });
    }
    return { tables };
  }

  /**
   * After the chunk's statements: records a pending label for each captured
   * row whose stored price changed. `effectiveAt` (by `schema.table|key`)
   * gives the date printed for scheduled rows. Returns how many.
   */
  async after(sink: PgSink, captured: CapturedPrices, effectiveAt: ReadonlyMap<string, Date>): Promise<number> {
    const labels: Record<string, string | null>[] = [];
    for (const { target, keys, previous } of captured.tables) {
      const cols = [
        `t.${quoteIdent(target.code)}::text AS code`,
        `t.${quoteIdent(target.description)}::text AS description`,
        `t.${quoteIdent(target.price)}::text AS price`,
        target.currency ? `t.${quoteIdent(target.currency)}::text AS currency` : 'NULL::text AS currency',
      ].join(', ');
      const rows = await sink.execute<{ i: string; code: string | null; description: string | null; price: string | null; currency: string | null }>(this.select(target, cols), this.keyParams(target, keys));
      for (const r of rows) {
        const i = Number(r.i);
        if (r.price === null || r.code === null) continue;
        if (previous.has(i) && previous.get(i) === r.price) continue;
        const eff = effectiveAt.get(`${tableKey(target.table)}|${rowKeyText(keys[i - 1]!)}`);
        labels.push({
          mapping: target.mapping,
          code: r.code,
          description: r.description,
          price: r.price,
          previous_price: previous.get(i) ?? null,
          currency: r.currency,
          effective_at: eff ? eff.toISOString() : null,
        });
      }
    }
    if (labels.length > 0) await sink.execute(PENDING_SQL, [this.options.pipeline, JSON.stringify(labels)]);
    return labels.length;
  }

  /** The captured rows of `target` with their position (1-based) in `keys`, as `i`, and `cols`. */
  private select(target: LabelTarget, cols: string): string {
    const t = qualified(target.table.schema, target.table.table);
    const unnest = target.key.map((k, j) => `$${j + 1}::text[]::${k.type}[]`).join(', ');
    const names = target.key.map((_, j) => `k${j}`).join(', ');
    const on = target.key.map((k, j) => `t.${quoteIdent(k.name)} = n.k${j}`).join(' AND ');
    return `SELECT n.i, ${cols} FROM unnest(${unnest}) WITH ORDINALITY AS n(${names}, i) JOIN ${t} t ON ${on}`;
  }

  private keyParams(target: LabelTarget, keys: readonly (readonly string[])[]): string[][] {
    return target.key.map((_, j) => keys.map((k) => k[j]!));
  }
}
