import type { TableInfo } from '../catalog/pg-catalog.js';
import { ProblemsError } from '../core/errors.js';
import type { TargetTable } from '../core/target-op.js';
import { analyzeMappings, type AnalyzedMapping } from './analyze.js';
import { CompiledMappingSet } from './compiled-mapping-set.js';
import { CompiledTableMapping, type CompiledColumn } from './compiled-table-mapping.js';
import { compileExpression } from './expr/compile.js';
import type { LoadedMappingFile } from './load.js';
import type { MappingSet } from './mapping.js';

/**
 * Compiles the enabled files into a MappingSet. Validates first and throws
 * a ProblemsError listing every problem when there is one (so callers should
 * run `validateMappings` and report its problems themselves before).
 */
export function compileMappings(
  files: readonly LoadedMappingFile[],
  opts: { source: ReadonlyMap<string, TableInfo> | null; target: ReadonlyMap<string, TableInfo> },
): MappingSet {
  const { mappings, problems } = analyzeMappings(files, opts);
  if (problems.length > 0) {
    throw new ProblemsError(`The mapping files have ${problems.length} problem${problems.length === 1 ? '' : 's'}.`, problems);
  }
  const targets = new Map<string, TargetTable>();
  const compiled = mappings.map((m) => compileOne(m, targets));
  return new CompiledMappingSet({ mappings: compiled, target: opts.target });
}

function compileOne(m: AnalyzedMapping, targets: Map<string, TargetTable>): CompiledTableMapping {
  const { spec, doc } = m.file;
  if (!m.key) throw new Error(`internal: ${m.file.file} has no key after validation`);
  // One TargetTable object per table and key, shared by the mappings that write it.
  const id = `${spec.target.schema}.${spec.target.table}(${m.key.join(',')})`;
  let target = targets.get(id);
  if (!target) {
    target = { schema: spec.target.schema, table: spec.target.table, key: [...m.key] };
    targets.set(id, target);
  }
  const columns: CompiledColumn[] = m.columns.map((c) => {
    if (!c.checked) throw new Error(`internal: ${m.file.file} column ${c.column.name} did not parse`);
    const e = c.checked.expr;
    return {
      name: c.column.name,
      bare: e.kind === 'column' ? e.name : null,
      reads: c.checked.columns,
      evaluate: compileExpression(c.checked),
      location: c.location,
    };
  });
  return new CompiledTableMapping({
    file: m.file.file,
    source: spec.source,
    target,
    columns,
    keyLocation: spec.key ? doc.location(['key']) : doc.location(['target']),
  });
}
