import type { TableInfo } from '../catalog/pg-catalog.js';
import { ProblemsError } from '../core/errors.js';
import type { TargetTable } from '../core/target-op.js';
import { analyzeMappings, type AnalyzedColumn, type AnalyzedMapping } from './analyze.js';
import { CompiledAggregateMapping } from './compiled-aggregate-mapping.js';
import { CompiledMappingSet } from './compiled-mapping-set.js';
import { CompiledTableMapping, type CompiledColumn } from './compiled-table-mapping.js';
import type { CompiledFilter } from './row-filter.js';
import type { CheckedExpr } from './expr/check.js';
import { compileExpression } from './expr/compile.js';
import { FUNCTIONS } from './expr/functions.js';
import { truth } from './expr/runtime.js';
import type { LoadedMappingFile } from './load.js';
import type { EntitySet } from './entities.js';
import type { CompiledMapping, MappingSet } from './mapping.js';

/**
 * Compiles the enabled files into a MappingSet. Validates first and throws
 * a ProblemsError listing every problem when there is one (so callers should
 * run `validateMappings` and report its problems themselves before).
 */
export function compileMappings(
  files: readonly LoadedMappingFile[],
  opts: {
    source: ReadonlyMap<string, TableInfo> | null;
    target: ReadonlyMap<string, TableInfo>;
    entities?: EntitySet;
    /** Check entities.yml's HQ sequences and references against `target` (default true; false for the down files, whose target is a store). */
    entityChecks?: boolean;
    /** What a TRUNCATE does to a target whose key does not tell this source's rows apart (see CompiledTableMappingOptions). Default: error. */
    unscopedTruncate?: (target: { schema: string; table: string }) => 'error' | 'all' | 'keep';
  },
): MappingSet {
  // Foreign-key cycles (BL-M022) depend on the apply settings: `validate` and start-up report them.
  const { mappings, problems } = analyzeMappings(files, { ...opts, foreignKeysChecked: false });
  if (problems.length > 0) {
    throw new ProblemsError(`The mapping files have ${problems.length} problem${problems.length === 1 ? '' : 's'}.`, problems);
  }
  const targets = new Map<string, TargetTable>();
  const compiled = mappings.map((m) => compileOne(m, targets, opts.unscopedTruncate?.(m.file.spec.target) ?? 'error'));
  return new CompiledMappingSet({ mappings: compiled, target: opts.target });
}

function compileOne(m: AnalyzedMapping, targets: Map<string, TargetTable>, unscopedTruncate: 'error' | 'all' | 'keep'): CompiledMapping {
  const { spec, doc } = m.file;
  if (!m.key) throw new Error(`internal: ${m.file.file} has no key after validation`);
  // One TargetTable object per table and key, shared by the mappings that write it.
  const id = `${spec.target.schema}.${spec.target.table}(${m.key.join(',')})`;
  let target = targets.get(id);
  if (!target) {
    target = { schema: spec.target.schema, table: spec.target.table, key: [...m.key] };
    targets.set(id, target);
  }
  const keyLocation = spec.key ? doc.location(['key']) : doc.location(['target']);
  const own: CompiledFilter | null = m.filter
    ? { evaluate: compileExpression(checkedOf(m.filter.checked, m, 'filter')), reads: m.filter.checked!.columns, location: m.filter.location }
    : null;
  // A down route is one more condition: a row routed to another store is, for this store, a row outside the filter.
  const route: CompiledFilter | null = m.route
    ? { evaluate: compileExpression(checkedOf(m.route.checked, m, 'route')), reads: m.route.checked!.columns, location: m.route.location }
    : null;
  const filter = both(own, route);
  if (m.aggregate) {
    const byName = new Map(m.columns.map((c) => [c.column.name, c]));
    return new CompiledAggregateMapping({
      file: m.file.file,
      source: spec.source,
      target,
      keyColumns: target.key.map((k) => compileColumn(byName.get(k)!, m)),
      measures: m.columns
        .filter((c) => c.measure !== undefined)
        .map((c) => ({ name: c.column.name, value: c.measure === 'count' ? null : compileColumn(c, m) })),
      filter,
      keyLocation,
    });
  }
  const onDelete = spec.onDelete;
  return new CompiledTableMapping({
    file: m.file.file,
    source: spec.source,
    target,
    columns: m.columns.map((c) => compileColumn(c, m)),
    keyLocation,
    filter,
    onConflict: spec.onConflict,
    removal: onDelete === null ? { kind: 'delete' } : onDelete.kind === 'soft' ? { kind: 'soft', columns: m.soft.map((c) => compileColumn(c, m)) } : onDelete,
    effectiveAt: m.effectiveAt,
    labels: spec.labels,
    unscopedTruncate,
  });
}

function both(a: CompiledFilter | null, b: CompiledFilter | null): CompiledFilter | null {
  if (!a || !b) return a ?? b;
  return {
    evaluate: (row, ctx) => {
      const first = b.evaluate(row, ctx);
      return first !== null && truth(first, 'route') ? a.evaluate(row, ctx) : 'f';
    },
    reads: [...new Set([...b.reads, ...a.reads])],
    location: a.location,
  };
}

function checkedOf(checked: CheckedExpr | null, m: AnalyzedMapping, what: string): CheckedExpr {
  if (!checked) throw new Error(`internal: ${m.file.file} ${what} did not parse`);
  return checked;
}

function compileColumn(c: AnalyzedColumn, m: AnalyzedMapping): CompiledColumn {
  const checked = checkedOf(c.checked, m, `column ${c.column.name}`);
  const e = checked.expr;
  return {
    name: c.column.name,
    associate: c.associate ? { entity: c.associate.name, allocate: c.associate.kind === 'allocate' } : null,
    bare: e.kind === 'column' ? e.name : null,
    reads: checked.columns,
    contextual: callsContextual(e),
    evaluate: compileExpression(checked),
    location: c.location,
  };
}

/** Whether an expression calls a function that reads the transaction (commit_time()): its value differs between rows that read no column. */
function callsContextual(e: unknown): boolean {
  if (e === null || typeof e !== 'object') return false;
  if (Array.isArray(e)) return e.some(callsContextual);
  const node = e as { kind?: unknown; name?: unknown };
  if (node.kind === 'call' && typeof node.name === 'string' && FUNCTIONS.get(node.name.toLowerCase())?.contextual === true) return true;
  return Object.values(node).some((v) => typeof v === 'object' && callsContextual(v));
}
