import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { isScalar } from 'yaml';
import { tableKey, type TableId } from '../core/change.js';
import { BranchlineError, type Problem } from '../core/errors.js';
import { pointerToPath, schemaProblems, YamlDoc } from '../config/yaml-doc.js';
import { MappingFileSchema, type MappingFileDoc } from './schema.js';
import { sortProblems, tooLarge } from './problems.js';
import { ENTITIES_FILE, NO_ENTITIES, parseEntitiesFile, type EntitySet } from './entities.js';

/** One `target column: expression` line of a mapping file. */
export interface MappingColumn {
  /** Target column name. */
  readonly name: string;
  /** The expression's text as the integrator wrote it (YAML quoting removed). */
  readonly expression: string;
}

/** Which stores a down row goes to. */
export type Route = { readonly kind: 'all' } | { readonly kind: 'column'; readonly column: string } | { readonly kind: 'stores'; readonly stores: readonly string[] };

/** Shelf labels printed at a store when a down mapping changes a price: target columns (see docs/labels.md). */
export interface LabelsSpec {
  readonly code: string;
  readonly description: string;
  readonly price: string;
  /** Column holding the currency text, or null for the configuration's labels.currency. */
  readonly currency: string | null;
}

/** How a record's state is read for a settlement check: expressions over one row. */
export interface SettlementReadSpec {
  readonly amount: string;
  readonly settled: string;
  /** null: only a missing row is deleted. */
  readonly deleted: string | null;
}

/** The `settlement` setting of an up mapping (docs/settlement.md). */
export interface SettlementSpec {
  readonly kind: string;
  /** The store column a reference names; null: the source primary key. */
  readonly ref: string | null;
  readonly refEntity: string | null;
  readonly atStore: SettlementReadSpec;
  /** HQ's copy, for a store asking HQ; null: not declared. */
  readonly atHq: SettlementReadSpec | null;
}

/** A mapping file after the schema and defaults: what later steps read. */
export interface MappingSpec {
  /** up: store -> HQ; down: HQ -> stores. */
  readonly direction: 'up' | 'down';
  /** down only: which stores get a row. */
  readonly route: Route;
  /** down only: the source column that says when a row takes effect, or null. */
  readonly effectiveAt: string | null;
  /** down only: shelf labels for price changes, or null. */
  readonly labels: LabelsSpec | null;
  readonly source: TableId;
  readonly target: TableId;
  /** The `key` setting, or null for the target's primary key. */
  readonly key: readonly string[] | null;
  readonly enabled: boolean;
  readonly description: string | null;
  /** In the order written. */
  readonly columns: readonly MappingColumn[];
  /** The `filter` expression's text, or null. */
  readonly filter: string | null;
  readonly onConflict: 'upsert' | 'insert_only';
  /** null: the default (delete; ignore under insert_only). */
  readonly onDelete: { readonly kind: 'delete' } | { readonly kind: 'ignore' } | { readonly kind: 'soft'; readonly columns: readonly MappingColumn[] } | null;
  /** up only: how a settlement check reads a record's state, or null. */
  readonly settlement: SettlementSpec | null;
}

export interface LoadedMappingFile {
  /** The path as given (used in every message about this file). */
  readonly file: string;
  /** The parsed YAML, for positions. */
  readonly doc: YamlDoc;
  readonly spec: MappingSpec;
}

let validator: ValidateFunction | undefined;
function validate(): ValidateFunction {
  // verbose: the problems quote the schema's descriptions and list the allowed settings.
  validator ??= new Ajv({ allErrors: true, allowUnionTypes: true, strict: true, verbose: true, validateSchema: false, meta: false }).compile(
    MappingFileSchema,
  );
  return validator;
}

/** `sale` -> public.sale; `erp.sale` -> erp.sale. */
export function parseTableName(name: string): TableId {
  const dot = name.indexOf('.');
  return dot < 0 ? { schema: 'public', table: name } : { schema: name.slice(0, dot), table: name.slice(dot + 1) };
}

/**
 * Parses one mapping file: its size (BL-M026), YAML syntax (BL-M001) and the schema (BL-M002).
 * The file comes back only when it has neither kind of problem.
 */
export function parseMappingFile(file: string, text: string): { file: LoadedMappingFile | null; problems: Problem[] } {
  const large = tooLarge(file, text);
  if (large) return { file: null, problems: [large] };
  const parsed = YamlDoc.parse(file, text, 'BL-M001');
  const doc = parsed.doc;
  if (!doc) return { file: null, problems: sortProblems(parsed.problems) };
  const value = doc.toJS();
  spellExpressions(doc, value);
  const check = validate();
  if (!check(value)) return { file: null, problems: sortProblems(mappingSchemaProblems(doc, check)) };
  const m = value as MappingFileDoc;
  const spec: MappingSpec = {
    direction: m.direction ?? 'up',
    route: m.route === undefined || m.route === 'all' ? { kind: 'all' } : 'column' in m.route ? { kind: 'column', column: m.route.column } : { kind: 'stores', stores: m.route.stores },
    effectiveAt: m.effective_at ?? null,
    labels: m.labels ? { code: m.labels.code, description: m.labels.description, price: m.labels.price, currency: m.labels.currency ?? null } : null,
    source: parseTableName(m.source),
    target: parseTableName(m.target),
    key: m.key ?? null,
    enabled: m.enabled ?? true,
    description: m.description ?? null,
    columns: Object.entries(m.columns).map(([name, expression]) => ({ name, expression: String(expression ?? '') })),
    filter: m.filter === undefined ? null : String(m.filter),
    onConflict: m.on_conflict ?? 'upsert',
    onDelete:
      m.on_delete === undefined
        ? null
        : typeof m.on_delete === 'string'
          ? { kind: m.on_delete }
          : { kind: 'soft', columns: Object.entries(m.on_delete.soft).map(([name, expression]) => ({ name, expression: String(expression ?? '') })) },
    settlement: m.settlement
      ? {
          kind: m.settlement.kind ?? parseTableName(m.source).table.toLowerCase(),
          ref: m.settlement.ref ?? null,
          refEntity: m.settlement.ref_entity ?? null,
          atStore: readSpec(m.settlement),
          atHq: m.settlement.at_hq ? readSpec(m.settlement.at_hq) : null,
        }
      : null,
  };
  return { file: { file, doc, spec }, problems: [] };
}

function readSpec(r: { amount: unknown; settled: unknown; deleted?: unknown }): SettlementReadSpec {
  return { amount: String(r.amount ?? ''), settled: String(r.settled ?? ''), deleted: r.deleted === undefined ? null : String(r.deleted ?? '') };
}

/** Ajv's problems, with a plain sentence for an expression written as a list or a map. */
function mappingSchemaProblems(doc: YamlDoc, check: ValidateFunction): Problem[] {
  const problems: Problem[] = [];
  const rest: ErrorObject[] = [];
  for (const e of check.errors ?? []) {
    const path = pointerToPath(e.instancePath);
    if (e.keyword === 'type' && path.length === 2 && path[0] === 'columns') {
      const name = path[1]!;
      problems.push({
        code: 'BL-M002',
        message: `the expression for "${name}" must be text, not a list or a map.`,
        hint: `Write it after "${name}:" on the same line, e.g. ${name}: upper(name); put it in double quotes when it contains ": " or " #", or starts with one of ' [ { * & ! | >.`,
        location: doc.location(path),
      });
    } else {
      rest.push(e);
    }
  }
  check.errors = rest;
  return [...problems, ...schemaProblems(doc, check, 'BL-M002', 'mapping file')];
}

/**
 * YAML turns `qty: 1` into a number and `flag: true` into a boolean; an
 * expression is the text as written, so put the source text back (`12.50`
 * stays `12.50`). An empty value becomes an empty expression (reported by
 * the parser), `null` the null expression.
 */
function spellExpressions(doc: YamlDoc, value: unknown): void {
  if (typeof value !== 'object' || value === null) return;
  const top = value as Record<string, unknown>;
  spellRecord(doc, top['columns'], ['columns']);
  const onDelete = top['on_delete'];
  if (typeof onDelete === 'object' && onDelete !== null) spellRecord(doc, (onDelete as Record<string, unknown>)['soft'], ['on_delete', 'soft']);
  const settlement = top['settlement'];
  if (typeof settlement === 'object' && settlement !== null) {
    const sr = settlement as Record<string, unknown>;
    spellRecord(doc, sr, ['settlement'], ['amount', 'settled', 'deleted']);
    spellRecord(doc, sr['at_hq'], ['settlement', 'at_hq']);
  }
  const filter = top['filter'];
  if (typeof filter === 'boolean') {
    const node = doc.nodeAt(['filter']);
    top['filter'] = isScalar(node) && node.source ? node.source : String(filter);
  }
}

function spellRecord(doc: YamlDoc, record: unknown, path: readonly string[], only?: readonly string[]): void {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return;
  const r = record as Record<string, unknown>;
  for (const [name, v] of Object.entries(r)) {
    if (typeof v === 'string' || (only && !only.includes(name))) continue;
    const node = doc.nodeAt([...path, name]);
    if (v === null) r[name] = isScalar(node) && node.source !== '' && node.source !== undefined ? 'null' : '';
    else if (typeof v === 'number' || typeof v === 'boolean') r[name] = isScalar(node) && node.source ? node.source : String(v);
  }
}

/**
 * Reads every `*.yml` / `*.yaml` file of `dir` (not recursive) in name
 * order, with syntax and schema checks; `entities.yml` declares the
 * associated entities (see entities.ts) and is not a mapping file. Files with problems are left out
 * of `files`. Throws BL-C006 when the directory cannot be read.
 */
export async function loadMappingDir(dir: string): Promise<{ files: LoadedMappingFile[]; problems: Problem[]; entities: EntitySet }> {
  let names: string[];
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    names = entries.filter((e) => e.isFile() && /\.ya?ml$/i.test(e.name)).map((e) => e.name);
  } catch (cause) {
    throw new BranchlineError(
      {
        code: 'BL-C006',
        message: `mapping directory ${dir} cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'error'}).`,
        hint: 'Create it, or point the configuration\'s mapping directory at the folder that holds the *.yml mapping files.',
      },
      { cause },
    );
  }
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const files: LoadedMappingFile[] = [];
  const problems: Problem[] = [];
  let entities = NO_ENTITIES;
  for (const name of names) {
    const path = join(dir, name);
    if (name === ENTITIES_FILE || name === 'entities.yaml') {
      const r = parseEntitiesFile(path, await readFile(path, 'utf8'));
      entities = r.entities;
      problems.push(...r.problems);
      continue;
    }
    const r = parseMappingFile(path, await readFile(path, 'utf8'));
    if (r.file) files.push(r.file);
    problems.push(...r.problems);
  }
  return { files, problems: sortProblems(problems), entities };
}

/** The tables the enabled files read and write, without duplicates, so the caller knows what to describe. */
export function mappedTables(files: readonly LoadedMappingFile[]): { sources: TableId[]; targets: TableId[] } {
  const sources = new Map<string, TableId>();
  const targets = new Map<string, TableId>();
  for (const f of files) {
    if (!f.spec.enabled) continue;
    if (!sources.has(tableKey(f.spec.source))) sources.set(tableKey(f.spec.source), f.spec.source);
    if (!targets.has(tableKey(f.spec.target))) targets.set(tableKey(f.spec.target), f.spec.target);
  }
  return { sources: [...sources.values()], targets: [...targets.values()] };
}
