/**
 * The mapping engine: loads the YAML mapping files, checks them against the
 * store's and HQ's catalogs (every problem at once, with file:line:column),
 * and compiles them into a MappingSet. See docs/mapping.md.
 */
import type { Problem } from '../core/errors.js';
import type { LoadedMappingFile } from './load.js';
import { analyzeMappings, type MappingCatalogs } from './analyze.js';

export type { CompiledMapping, MappingContext, MappingSet } from './mapping.js';
export type { LoadedMappingFile, MappingColumn, MappingSpec } from './load.js';
export type { MappingCatalogs } from './analyze.js';
export { loadMappingDir, mappedTables, parseMappingFile, parseTableName } from './load.js';
export { compileMappings } from './compile.js';
export { aggregateSources, measureOf } from './analyze.js';
export { mappingJsonSchema, mappingJsonSchemaText, MappingFileSchema, type MappingFileDoc } from './schema.js';
export { orderTargets } from './compiled-mapping-set.js';

/**
 * Checks the enabled files against the catalogs (BL-M003..BL-M014). Returns
 * every problem, sorted by file, line and column; empty means
 * `compileMappings` will succeed.
 */
export function validateMappings(files: readonly LoadedMappingFile[], opts: MappingCatalogs): Problem[] {
  return analyzeMappings(files, opts).problems;
}
