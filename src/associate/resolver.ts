import type pg from 'pg';
import type { AssocRef, TargetOp } from '../core/target-op.js';
import type { Entity } from '../mapping/entities.js';
import { allocateHqKeys, lookupHqKeys } from './association-store.js';

/** An operation that cannot be applied yet: a manual association is missing. */
export interface UnresolvedOp {
  /** Index of the operation in the chunk. */
  readonly index: number;
  readonly entity: string;
  readonly code: string;
}

export interface Resolution {
  /** The chunk with every code replaced by its HQ key; unresolved operations are `null`. */
  readonly ops: (TargetOp | null)[];
  readonly unresolved: readonly UnresolvedOp[];
}

type Keyed = Exclude<TargetOp, { kind: 'ignore' | 'delete-where' }>;

/** What a sink asks of whatever translates the codes in its chunks (store -> HQ, or HQ -> store). */
export interface KeyTranslator {
  /** Translates a chunk inside the sink's open transaction on `db`. */
  resolve(db: pg.ClientBase, ops: readonly TargetOp[]): Promise<Resolution>;
  /** The sink's transaction committed. */
  commit(): void;
  /** The sink's transaction rolled back. */
  rollback(): void;
  /**
   * Whether any of these missing associations (what parked changes wait
   * for: an entity and the code the pipeline could not translate) exists
   * now. For a translator whose associations are not in the sink's own
   * database (down: they are at HQ, the sink writes to a store); without
   * it, the sink looks in its own `branchline.associations`.
   */
  associatedAny?(waiting: readonly { readonly entity: string; readonly code: string }[]): Promise<boolean>;
}

/** Cached associations per entity; a cap keeps a store with millions of codes from growing memory without bound. */
const CACHE_LIMIT = 200_000;

/**
 * Translates the store's codes in a chunk's operations into HQ keys, for
 * one store, on the pipeline's HQ connection and inside its open batch
 * transaction: codes not in the cache are looked up in one query per entity,
 * and new keys of `allocate` entities are allocated in that transaction, so
 * they commit (or vanish) with the rows that use them. Associations read
 * from HQ go into the cache at once (they never change); allocations only
 * at `commit`.
 */
export class AssociationResolver implements KeyTranslator {
  private readonly cache = new Map<string, Map<string, string>>();
  private readonly pending = new Map<string, Map<string, string>>();

  constructor(
    private readonly storeCode: string,
    private readonly entities: ReadonlyMap<string, Entity>,
  ) {}

  /** Whether some operation of the chunk names an association. */
  static needed(ops: readonly TargetOp[]): boolean {
    for (let i = 0; i < ops.length; i++) if ((ops[i] as Keyed).assoc !== undefined) return true;
    return false;
  }

  async resolve(db: pg.ClientBase, ops: readonly TargetOp[]): Promise<Resolution> {
    // 1. Codes not known yet, per entity; allocation only for codes a row is written with.
    const { unknown, allocatable } = unknownCodes(ops, (entity, code) => this.known(entity, code));
    for (const [entity, codes] of unknown) {
      const found = await lookupHqKeys(db, this.storeCode, entity, [...codes]);
      const cache = this.entityCache(this.cache, entity);
      for (const [c, k] of found) cache.set(c, k);
      const toAllocate = [...(allocatable.get(entity) ?? [])].filter((c) => !found.has(c));
      const sequence = this.entities.get(entity)?.sequence;
      if (toAllocate.length > 0 && sequence) {
        const allocated = await allocateHqKeys(db, this.storeCode, entity, sequence, toAllocate);
        const pending = this.entityCache(this.pending, entity);
        for (const [c, k] of allocated) pending.set(c, k);
      }
    }
    // 2. Translate.
    return translateChunk(ops, (entity, code) => this.known(entity, code));
  }

  /** The transaction committed: its allocations are associations now. */
  commit(): void {
    for (const [entity, m] of this.pending) {
      const cache = this.entityCache(this.cache, entity);
      for (const [c, k] of m) cache.set(c, k);
    }
    this.pending.clear();
  }

  /** The transaction rolled back: its allocations never happened. */
  rollback(): void {
    this.pending.clear();
  }

  private known(entity: string, code: string): string | undefined {
    return this.cache.get(entity)?.get(code) ?? this.pending.get(entity)?.get(code);
  }

  private entityCache(root: Map<string, Map<string, string>>, entity: string): Map<string, string> {
    let m = root.get(entity);
    if (!m) {
      m = new Map();
      root.set(entity, m);
    }
    if (root === this.cache && m.size >= CACHE_LIMIT) m.clear();
    return m;
  }
}

/** The key `code` of `entity` stands for on the other side, if known. */
export type Known = (entity: string, code: string) => string | undefined;

function translateOp(op: Keyed, refs: readonly AssocRef[], known: Known): TargetOp | { missing: string; entity: string; allocate: boolean } {
  const row = 'row' in op ? { ...op.row } : undefined;
  const key = [...op.key];
  const from = op.kind === 'move' ? [...op.from] : undefined;
  for (const ref of refs) {
    if (row !== undefined) {
      const v = row[ref.column];
      if (v !== undefined && v !== null) {
        const k = known(ref.entity, v);
        if (k === undefined) return { missing: v, entity: ref.entity, allocate: ref.allocate };
        row[ref.column] = k;
      }
    }
    if (ref.keyIndex >= 0) {
      const c = key[ref.keyIndex]!;
      const k = known(ref.entity, c);
      if (k === undefined) return { missing: c, entity: ref.entity, allocate: ref.allocate };
      key[ref.keyIndex] = k;
      if (from) {
        const f = from[ref.keyIndex]!;
        const fk = known(ref.entity, f);
        if (fk === undefined) return { missing: f, entity: ref.entity, allocate: ref.allocate };
        from[ref.keyIndex] = fk;
      }
    }
  }
  // A new operation without `assoc`: translated, it is an ordinary one.
  const { assoc: _assoc, ...rest } = op;
  const base: Record<string, unknown> = { ...rest, key };
  if (row !== undefined) base['row'] = row;
  if (from !== undefined) base['from'] = from;
  return base as unknown as TargetOp;
}

/**
 * Replaces the codes in a chunk's operations with the other side's keys, as
 * `known` gives them; an operation with a code `known` lacks is `null` and
 * listed as unresolved, except a delete of an allocated code (the other side
 * never saw it: nothing to remove).
 */
export function translateChunk(ops: readonly TargetOp[], known: Known): Resolution {
  const out: (TargetOp | null)[] = new Array(ops.length);
  const unresolved: UnresolvedOp[] = [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    const refs = (op as Keyed).assoc;
    if (refs === undefined) {
      out[i] = op;
      continue;
    }
    const translated = translateOp(op as Keyed, refs, known);
    if (typeof translated === 'object' && translated !== null && 'missing' in translated) {
      if (op.kind === 'delete' && translated.allocate) out[i] = { kind: 'ignore', target: op.target };
      else {
        out[i] = null;
        unresolved.push({ index: i, entity: translated.entity, code: translated.missing });
      }
    } else {
      out[i] = translated;
    }
  }
  return { ops: out, unresolved };
}

/**
 * The codes of a chunk `known` lacks, per entity, and among them those an
 * `allocate` entity may get a new key for (codes a row is written with, not
 * deleted by).
 */
export function unknownCodes(ops: readonly TargetOp[], known: Known): { unknown: Map<string, Set<string>>; allocatable: Map<string, Set<string>> } {
  const unknown = new Map<string, Set<string>>();
  const allocatable = new Map<string, Set<string>>();
  for (const op of ops) {
    const refs = (op as Keyed).assoc;
    if (refs === undefined) continue;
    const creates = op.kind !== 'delete';
    for (const ref of refs) {
      for (const code of codesOf(op as Keyed, ref)) {
        if (known(ref.entity, code) !== undefined) continue;
        add(unknown, ref.entity, code);
        if (ref.allocate && creates) add(allocatable, ref.entity, code);
      }
    }
  }
  return { unknown, allocatable };
}

function codesOf(op: Keyed, ref: AssocRef): string[] {
  const out: string[] = [];
  if ('row' in op) {
    const v = op.row[ref.column];
    if (v !== undefined && v !== null) out.push(v);
  }
  if (ref.keyIndex >= 0) {
    out.push(op.key[ref.keyIndex]!);
    if (op.kind === 'move') out.push(op.from[ref.keyIndex]!);
  }
  return out;
}

function add(m: Map<string, Set<string>>, k: string, v: string): void {
  let s = m.get(k);
  if (!s) {
    s = new Set();
    m.set(k, s);
  }
  s.add(v);
}
