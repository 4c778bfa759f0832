import { tableKey, type TableId } from '../core/change.js';
import type { TableInfo } from '../catalog/pg-catalog.js';
import type { TargetTable } from '../core/target-op.js';
import type { CompiledMapping, MappingSet } from './mapping.js';

export interface CompiledMappingSetOptions {
  /** Enabled mappings, in file order. */
  readonly mappings: readonly CompiledMapping[];
  /** HQ's catalog, for the foreign keys that order the targets. */
  readonly target: ReadonlyMap<string, TableInfo>;
}

export class CompiledMappingSet implements MappingSet {
  readonly mappings: readonly CompiledMapping[];
  readonly sourceTables: readonly TableId[];
  readonly targetOrder: readonly TargetTable[];
  private readonly bySource: ReadonlyMap<string, readonly CompiledMapping[]>;
  private readonly byIdentity = new WeakMap<TableId, readonly CompiledMapping[]>();

  constructor(options: CompiledMappingSetOptions) {
    this.mappings = options.mappings;
    const bySource = new Map<string, CompiledMapping[]>();
    const sources: TableId[] = [];
    for (const m of options.mappings) {
      const k = tableKey(m.source);
      let list = bySource.get(k);
      if (!list) {
        list = [];
        bySource.set(k, list);
        sources.push(m.source);
      }
      list.push(m);
    }
    this.bySource = bySource;
    this.sourceTables = sources;
    this.targetOrder = orderTargets(options.mappings.map((m) => m.target), options.target);
  }

  forSource(table: TableId): readonly CompiledMapping[] {
    // Sources hand out one TableId object per relation: look it up by identity first.
    let found = this.byIdentity.get(table);
    if (!found) {
      found = this.bySource.get(tableKey(table)) ?? [];
      this.byIdentity.set(table, found);
    }
    return found;
  }
}

/**
 * Distinct targets, parents first: a table comes after every other target it
 * references by a foreign key. Stable (ties keep file order); on a cycle, the
 * member that comes first in file order goes first and the rest follow.
 */
export function orderTargets(targets: readonly TargetTable[], catalog: ReadonlyMap<string, TableInfo>): TargetTable[] {
  const nodes: TargetTable[] = [];
  const index = new Map<string, number>();
  for (const t of targets) {
    const k = tableKey(t);
    if (index.has(k)) continue;
    index.set(k, nodes.length);
    nodes.push(t);
  }
  // parents[i]: the other targets node i references.
  const parents = nodes.map((t) => {
    const refs = new Set<number>();
    for (const fk of catalog.get(tableKey(t))?.foreignKeys ?? []) {
      const p = index.get(tableKey(fk.references));
      if (p !== undefined && p !== index.get(tableKey(t))) refs.add(p);
    }
    return refs;
  });
  const done = new Array<boolean>(nodes.length).fill(false);
  const order: TargetTable[] = [];
  while (order.length < nodes.length) {
    let next = nodes.findIndex((_, i) => !done[i] && [...parents[i]!].every((p) => done[p]));
    if (next < 0) next = nodes.findIndex((_, i) => !done[i] && onCycle(i, parents, done)); // a cycle: its first member in file order
    done[next] = true;
    order.push(nodes[next]!);
  }
  return order;
}

/** Whether `start` reaches itself through parents that are not done yet. */
function onCycle(start: number, parents: readonly Set<number>[], done: readonly boolean[]): boolean {
  const seen = new Set<number>();
  const stack = [...parents[start]!];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (n === start) return true;
    if (done[n] || seen.has(n)) continue;
    seen.add(n);
    stack.push(...parents[n]!);
  }
  return false;
}
