import { isScalar } from 'yaml';
import { column, type ColumnInfo, type TableInfo } from '../catalog/pg-catalog.js';
import { formatTable, tableKey, type TableId } from '../core/change.js';
import type { ErrorCode, Problem, SourceLocation } from '../core/errors.js';
import { walk, type Expr } from './expr/ast.js';
import { checkExpression, type CheckedExpr, type ColumnScope } from './expr/check.js';
import { ExprSyntaxError } from './expr/lexer.js';
import { parseExpression } from './expr/parser.js';
import { columnType, conversionHint, describeType, fits, isNumberType, isOpen, T, type ExprType } from './expr/types.js';
import type { LoadedMappingFile, MappingColumn } from './load.js';
import { sortProblems } from './problems.js';
import { didYouMean, editDistance } from './suggest.js';
import type { Entity, EntitySet } from './entities.js';
import { analyzeSettlement, type AnalyzedSettlement } from './settlement-analysis.js';

/** The catalogs a set of mapping files is checked and compiled against. */
export interface MappingCatalogs {
  /**
   * The store's tables (from `describeTables`), or null when the store is not
   * reachable: source-side checks are skipped and source columns have an
   * unknown type.
   */
  readonly source: ReadonlyMap<string, TableInfo> | null;
  /** Every table at the store, for "did you mean" (default: the keys of `source`). */
  readonly sourceTables?: readonly TableId[];
  /** HQ's tables (from `describeTables`). */
  readonly target: ReadonlyMap<string, TableInfo>;
  /** Every table at HQ, for "did you mean" (default: the keys of `target`). */
  readonly targetTables?: readonly TableId[];
  /** The entities `associate(...)` may name (entities.yml). */
  readonly entities?: EntitySet;
  /** HQ's sequences (`schema.name`), to check allocating entities; unchecked when absent. */
  readonly sequences?: ReadonlySet<string>;
  /** Check entities.yml against the target (HQ) too; false for down files, whose target is a store. Default true. */
  readonly entityChecks?: boolean;
  /** HQ checks foreign keys of applied rows (apply.session_replication_role: origin, the default). */
  readonly foreignKeysChecked?: boolean;
}

export interface AnalyzedColumn {
  readonly column: MappingColumn;
  /** Null when the expression does not parse. For a measure: its argument (null for count()). */
  readonly checked: CheckedExpr | null;
  /** Where the expression is written. */
  readonly location: SourceLocation;
  /** `sum(...)` or `count()` at the top of an aggregate mapping's column. */
  readonly measure?: 'sum' | 'count';
  /** `associate(entity, code)`: `checked` is the code; the HQ key of that code is written. */
  readonly associate?: Entity;
}

/** The `filter` setting, checked. */
export interface AnalyzedFilter {
  readonly checked: CheckedExpr | null;
  readonly location: SourceLocation;
}

/** One enabled file, resolved against the catalogs. Complete only when no problem was found. */
export interface AnalyzedMapping {
  readonly file: LoadedMappingFile;
  readonly source: TableInfo | null;
  readonly target: TableInfo | null;
  /** The target key: the `key` setting or the target's primary key. */
  readonly key: readonly string[] | null;
  readonly columns: readonly AnalyzedColumn[];
  readonly filter: AnalyzedFilter | null;
  /** down: the `route` setting as a condition on the row and the store (null: every store). */
  readonly route: AnalyzedFilter | null;
  /** The `on_delete: soft` columns, checked like columns. */
  readonly soft: readonly AnalyzedColumn[];
  /** Some column is sum(...) or count(): totals per key, from before and after images. */
  readonly aggregate: boolean;
  /** down: the `effective_at` source column, and whether its values carry a time zone (timestamptz). */
  readonly effectiveAt: EffectiveAt | null;
  /** up: how settlement checks read a record's state (null: not declared, or not valid). */
  readonly settlement: AnalyzedSettlement | null;
}

/** When a down row takes effect: a source column; a timestamp or date without zone is read in the store's time zone. */
export interface EffectiveAt {
  readonly column: string;
  readonly zoned: boolean;
}

/**
 * Checks every enabled file against the catalogs and collects every problem
 * (BL-M003..BL-M014), sorted by file, line and column.
 */
export function analyzeMappings(
  files: readonly LoadedMappingFile[],
  catalogs: MappingCatalogs,
): { mappings: AnalyzedMapping[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const mappings: AnalyzedMapping[] = [];
  const seen = new Map<string, string>();
  for (const f of files) {
    if (!f.spec.enabled) continue;
    const a = new FileAnalysis(f, catalogs, problems);
    mappings.push(a.run());
    const pair = `${tableKey(f.spec.source)} -> ${tableKey(f.spec.target)}`;
    const first = seen.get(pair);
    if (first === undefined) {
      seen.set(pair, f.file);
    } else {
      problems.push({
        code: 'BL-M011',
        message: `this file maps ${formatTable(f.spec.source)} to ${formatTable(f.spec.target)}, as ${first} already does.`,
        hint: 'Merge the two files into one, or switch one off with "enabled: false".',
        location: f.doc.location(['target']),
      });
    }
  }
  const kinds = new Map<string, string>();
  for (const m of mappings) {
    const kind = m.file.spec.settlement?.kind;
    if (kind === undefined) continue;
    const first = kinds.get(kind);
    if (first !== undefined)
      problems.push({
        code: 'BL-M025',
        message: `settlement kind "${kind}" is declared by ${first} too; a check names one kind of record.`,
        hint: 'Give one of them another kind, e.g. kind: payable.',
        location: m.file.doc.location(['settlement']),
      });
    else kinds.set(kind, m.file.file);
  }
  if (catalogs.entities && (catalogs.entityChecks ?? true)) checkEntities(catalogs.entities, catalogs, problems);
  if (catalogs.foreignKeysChecked ?? true) checkCycles(mappings, catalogs.target, problems);
  const aggregateTargets = new Map(mappings.filter((m) => m.aggregate).map((m) => [tableKey(m.file.spec.target), m.file.file]));
  for (const m of mappings) {
    const agg = aggregateTargets.get(tableKey(m.file.spec.target));
    if (m.aggregate || agg === undefined) continue;
    problems.push({
      code: 'BL-M018',
      message: `this file writes rows into ${formatTable(m.file.spec.target)}, which ${agg} keeps as totals (an aggregate).`,
      hint: 'Let one aggregate mapping own a table of totals: point this file at another table, or make it an aggregate (sum(...)/count() columns) too.',
      location: m.file.doc.location(['target']),
    });
  }
  return { mappings, problems: sortProblems(problems) };
}

/** Whether an expression's text is a top-level sum(...) or count(...) (an aggregate measure), without checking it. */
export function measureOf(expression: string): 'sum' | 'count' | null {
  try {
    const e = parseExpression(expression);
    if (e.kind !== 'call') return null;
    const name = e.name.toLowerCase();
    return name === 'sum' || name === 'count' ? name : null;
  } catch {
    return null;
  }
}

/** Source tables of aggregate mappings: they need REPLICA IDENTITY FULL (install sets it). */
export function aggregateSources(files: readonly LoadedMappingFile[]): TableId[] {
  const out = new Map<string, TableId>();
  for (const f of files) {
    if (!f.spec.enabled || !f.spec.columns.some((c) => measureOf(c.expression) !== null)) continue;
    out.set(tableKey(f.spec.source), f.spec.source);
  }
  return [...out.values()];
}

/** BL-M020: an allocating entity's sequence and a manual entity's referenced column exist at HQ. */
function checkEntities(entities: EntitySet, catalogs: MappingCatalogs, problems: Problem[]): void {
  for (const e of entities.byName.values()) {
    if (e.sequence && catalogs.sequences && !catalogs.sequences.has(tableKey(e.sequence))) {
      const near = didYouMean(tableKey(e.sequence), [...catalogs.sequences]);
      problems.push({
        code: 'BL-M020',
        message: `entity "${e.name}" takes new HQ keys from sequence ${formatTable(e.sequence)}, which does not exist at HQ.`,
        hint: near.length > 0 ? `Did you mean ${near.join(' or ')}?` : `Create it at HQ (CREATE SEQUENCE ${formatTable(e.sequence)}), or name the sequence of the HQ key column: SELECT pg_get_serial_sequence('<table>', '<column>').`,
        location: e.location,
      });
    }
    const ref = e.references;
    if (ref) {
      const info = catalogs.target.get(tableKey(ref.table));
      if (!info || !column(info, ref.column)) {
        problems.push({
          code: 'BL-M020',
          message: `entity "${e.name}" references ${formatTable(ref.table)}.${ref.column}, which ${info ? 'has no such column' : 'does not exist at HQ'}.`,
          hint: info ? `Its columns are: ${info.columns.map((c) => c.name).join(', ')}.` : 'Name the HQ table and column that hold the keys, e.g. references: cost_center.id.',
          location: e.location,
        });
      }
    }
  }
}

/**
 * BL-M022: target tables that reference each other through foreign keys HQ
 * checks at once (not deferrable) cannot always be written parents first:
 * rows of one batch may need the other table's rows first in both
 * directions. A table referencing itself is fine (one statement writes it).
 */
function checkCycles(mappings: readonly AnalyzedMapping[], target: ReadonlyMap<string, TableInfo>, problems: Problem[]): void {
  const files = new Map<string, AnalyzedMapping>(); // target -> first file writing it
  for (const m of mappings) if (!files.has(tableKey(m.file.spec.target))) files.set(tableKey(m.file.spec.target), m);
  const edges = new Map<string, { to: string; fk: string }[]>();
  for (const t of files.keys()) {
    for (const fk of target.get(t)?.foreignKeys ?? []) {
      const to = tableKey(fk.references);
      if (to === t || fk.deferrable || !files.has(to)) continue;
      edges.set(t, [...(edges.get(t) ?? []), { to, fk: fk.name ?? `${t} -> ${to}` }]);
    }
  }
  const reported = new Set<string>();
  for (const start of files.keys()) {
    // Depth-first from `start`: a path back to it is a cycle.
    const stack: { at: string; path: { table: string; fk: string }[] }[] = [{ at: start, path: [] }];
    const seen = new Set<string>();
    while (stack.length > 0) {
      const { at, path } = stack.pop()!;
      for (const e of edges.get(at) ?? []) {
        const step = [...path, { table: at, fk: e.fk }];
        if (e.to === start) {
          const members = step.map((s) => s.table);
          const id = [...members].sort().join(' ');
          if (reported.has(id)) continue;
          reported.add(id);
          const last = files.get(members.reduce((a, b) => ((files.get(a)!.file.file > files.get(b)!.file.file ? a : b))))!;
          const names = members.map((t) => formatTable(files.get(t)!.file.spec.target));
          problems.push({
            code: 'BL-M022',
            message: `target tables ${names.join(', ')} reference each other at HQ through foreign keys that are checked at once (${step.map((s) => s.fk).join(', ')}), a cycle: their rows cannot always be written parents first.`,
            hint: `Make one of those foreign keys DEFERRABLE INITIALLY DEFERRED at HQ (ALTER TABLE ... ALTER CONSTRAINT ${step[step.length - 1]!.fk} DEFERRABLE INITIALLY DEFERRED), or set apply.session_replication_role: replica, or leave one of the tables out of the mappings.`,
            location: last.file.doc.location(['target']),
          });
        } else if (!seen.has(e.to)) {
          seen.add(e.to);
          stack.push({ at: e.to, path: step });
        }
      }
    }
  }
}

/** Tables entities reference at HQ: describe them with the targets. */
export function entityTables(entities: EntitySet): TableId[] {
  return [...entities.byName.values()].flatMap((e) => (e.references ? [e.references.table] : []));
}

const ENTITIES_HINT = 'entities.yml in the mapping directory';

function list(names: readonly string[]): string {
  return names.map((n) => `"${n}"`).join(', ');
}

function tableSuggestion(wanted: TableId, known: readonly TableId[]): string | null {
  const names = known.map(formatTable);
  const near = didYouMean(formatTable(wanted), names);
  if (near.length === 0) {
    // "sales" for public.sale, or the right name in another schema.
    const byName = known.filter((t) => t.table === wanted.table || editDistance(t.table, wanted.table) <= 1).map(formatTable);
    near.push(...byName.slice(0, 3));
  }
  return near.length > 0 ? `Did you mean ${near.join(' or ')}?` : null;
}

class FileAnalysis {
  private readonly doc;
  private readonly spec;

  constructor(
    private readonly f: LoadedMappingFile,
    private readonly catalogs: MappingCatalogs,
    private readonly problems: Problem[],
  ) {
    this.doc = f.doc;
    this.spec = f.spec;
  }

  private report(code: ErrorCode, location: SourceLocation, message: string, hint: string): void {
    this.problems.push({ code, message, hint, location });
  }

  run(): AnalyzedMapping {
    const aggregate = this.spec.columns.some((c) => measureOf(c.expression) !== null);
    const source = this.resolveSource(aggregate);
    const target = this.resolveTarget();
    const columns = this.spec.columns.map((c) => this.analyzeColumn(c, source, target, ['columns', c.name], aggregate));
    const key = target ? this.resolveKey(target) : null;
    const filter = this.analyzeFilter(source);
    const route = this.analyzeRoute(source);
    const effectiveAt = this.checkDownSettings(source, columns, aggregate);
    const onDelete = this.spec.onDelete;
    const soft = onDelete?.kind === 'soft' ? onDelete.columns.map((c) => this.analyzeColumn(c, source, target, ['on_delete', 'soft', c.name], false)) : [];
    this.checkPolicies(aggregate);
    if (aggregate) {
      if (key) this.checkAggregateShape(key, columns);
    } else if (target && key) {
      this.checkKeyComputable(key, columns, source, target);
      for (const c of soft) this.checkReadsIdentity(c, ['on_delete', 'soft', c.column.name], `soft-delete value "${c.column.name}"`, source);
    }
    if (target) this.checkRequired(target, key);
    const settlement = analyzeSettlement({
      spec: this.spec,
      doc: this.doc,
      source,
      target,
      key,
      columns,
      aggregate,
      entities: this.catalogs.entities,
      report: (code, location, message, hint) => this.report(code, location, message, hint),
      inExpression: (path, index) => this.inExpression(path, index),
      scope: (table) => this.scope(table),
    });
    return { file: this.f, source, target, key, columns, filter, route, soft, aggregate, effectiveAt, settlement };
  }

  /** `route` as the condition it stands for: the row's store column is this store, or this store is listed. */
  private analyzeRoute(source: TableInfo | null): AnalyzedFilter | null {
    const route = this.spec.route;
    if (route.kind === 'all' || this.spec.direction !== 'down') return null;
    if (route.kind === 'column') {
      if (source && !column(source, route.column)) {
        const near = didYouMean(route.column, source.columns.map((c) => c.name));
        this.report(
          'BL-M024',
          this.doc.location(['route', 'column']),
          `route column "${route.column}" is not a column of ${formatTable(this.spec.source)} at HQ.`,
          near.length > 0 ? `Did you mean ${near.join(' or ')}?` : `Its columns are: ${source.columns.map((c) => c.name).join(', ')}.`,
        );
        return { checked: null, location: this.doc.location(['route']) };
      }
      return this.analyzeCondition(`${route.column} = store.code`, ['route'], source, 'the route');
    }
    const text = route.stores.map((s) => `store.code = '${s.replace(/'/g, "''")}'`).join(' or ');
    return this.analyzeCondition(text, ['route'], source, 'the route');
  }

  /** BL-M023 / BL-M024 (and BL-M017 for an aggregate): settings of down mappings; the checked effective_at. */
  private checkDownSettings(source: TableInfo | null, columns: readonly AnalyzedColumn[], aggregate: boolean): EffectiveAt | null {
    const down = this.spec.direction === 'down';
    for (const setting of ['route', 'effective_at', 'labels'] as const) {
      if (down || this.doc.nodeAt([setting]) === undefined) continue;
      this.report(
        'BL-M023',
        this.doc.location([setting]),
        `"${setting}" applies only to a mapping with "direction: down" (HQ to the stores).`,
        'Add "direction: down" if this file hands HQ\'s data down to the stores, or remove the setting.',
      );
    }
    if (!down) return null;
    let effectiveAt: EffectiveAt | null = null;
    const eff = this.spec.effectiveAt;
    if (eff !== null && aggregate) {
      this.report('BL-M017', this.doc.location(['effective_at']), '"effective_at" does not apply to an aggregate mapping: its rows are totals, not rows that take effect later.', 'Remove "effective_at", or map the rows themselves (without sum/count).');
    } else if (eff !== null && source) {
      const c = column(source, eff);
      if (!c) {
        const near = didYouMean(eff, source.columns.map((x) => x.name));
        this.report('BL-M024', this.doc.location(['effective_at']), `effective_at column "${eff}" is not a column of ${formatTable(this.spec.source)} at HQ.`, near.length > 0 ? `Did you mean ${near.join(' or ')}?` : `Its columns are: ${source.columns.map((x) => x.name).join(', ')}.`);
      } else if (!/^(timestamp|date$)/.test(c.type)) {
        this.report('BL-M024', this.doc.location(['effective_at']), `effective_at column "${eff}" of ${formatTable(this.spec.source)} is ${c.type}, not a time.`, 'Name a timestamptz, timestamp or date column that says when the row takes effect.');
      } else {
        effectiveAt = { column: eff, zoned: c.type.startsWith('timestamp') && c.type.endsWith('with time zone') };
      }
    }
    const labels = this.spec.labels;
    if (labels) {
      const written = new Set(columns.map((c) => c.column.name));
      for (const k of ['code', 'description', 'price', 'currency'] as const) {
        const name = labels[k];
        if (name === null || written.has(name)) continue;
        this.report('BL-M024', this.doc.location(['labels', k]), `labels.${k} "${name}" is not a column this file writes.`, `Name one of: ${[...written].join(', ')}.`);
      }
      if (aggregate) this.report('BL-M017', this.doc.location(['labels']), '"labels" does not apply to an aggregate mapping: its rows are totals, not products with prices.', 'Remove "labels".');
      const associated = columns.find((c) => c.associate);
      if (associated)
        this.report('BL-M017', this.doc.location(['labels']), `"labels" cannot go with associate(...) (column "${associated.column.name}"): a label is found by the row's key as HQ sends it.`, 'Label the products from a down mapping without associations.');
    }
    return effectiveAt;
  }

  private analyzeFilter(source: TableInfo | null): AnalyzedFilter | null {
    const text = this.spec.filter;
    if (text === null) return null;
    return this.analyzeCondition(text, ['filter'], source, 'the filter');
  }

  private analyzeCondition(text: string, path: readonly string[], source: TableInfo | null, what: string): AnalyzedFilter {
    const location = this.doc.location(path);
    let checked: CheckedExpr;
    try {
      const parsed = parseExpression(text);
      if (this.nestedAssociate(parsed, path, 'filter')) return { checked: null, location };
      checked = checkExpression(parsed, this.scope(source), T.boolean);
    } catch (e) {
      if (!(e instanceof ExprSyntaxError)) throw e;
      this.report('BL-M016', this.inExpression(path, e.index), `${what} does not parse: ${e.message}.`, e.hint);
      return { checked: null, location };
    }
    for (const issue of checked.issues) this.report(issue.code, this.inExpression(path, issue.index), `${issue.message}.`, issue.hint);
    this.checkSendable(checked, path, source);
    if (checked.issues.length === 0 && checked.type.category !== 'boolean' && !isOpen(checked.type)) {
      this.report(
        'BL-M016',
        location,
        `${what} gives ${describeType(checked.type)}, not true or false.`,
        "Write a condition, e.g. status = 'confirmed', not cancelled, or amount > 0.",
      );
    }
    return { checked, location };
  }

  /** BL-M017: settings that cannot go together. */
  private checkPolicies(aggregate: boolean): void {
    if (aggregate) {
      for (const setting of ['on_conflict', 'on_delete'] as const) {
        if (this.doc.nodeAt([setting]) === undefined) continue;
        this.report(
          'BL-M017',
          this.doc.location([setting]),
          `"${setting}" does not apply to an aggregate mapping: its rows are totals that every change adds to or takes from.`,
          `Remove "${setting}"; use "filter" to choose which rows count.`,
        );
      }
      return;
    }
    const onDelete = this.spec.onDelete;
    if (this.spec.onConflict === 'insert_only' && onDelete !== null && onDelete.kind !== 'ignore') {
      this.report(
        'BL-M017',
        this.doc.location(['on_delete']),
        `"on_conflict: insert_only" never alters a row HQ holds, so it cannot go with "on_delete: ${onDelete.kind === 'soft' ? 'soft' : onDelete.kind}".`,
        'Remove "on_delete" (under insert_only, deletes at the store are ignored and counted), or use "on_conflict: upsert".',
      );
    }
  }

  /** BL-M005: a stored generated source column is never in a change (pgoutput leaves it out). */
  private checkSendable(checked: CheckedExpr, path: readonly string[], source: TableInfo | null): void {
    if (!source) return;
    const reported = new Set<string>();
    walk(checked.expr, (n) => {
      if (n.kind !== 'column' || reported.has(n.name)) return;
      if (!column(source, n.name)?.storedGenerated) return;
      reported.add(n.name);
      this.report(
        'BL-M005',
        this.inExpression(path, n.start),
        `source column "${n.name}" of ${formatTable(source.id)} is a generated column, which logical replication does not send, so HQ would never get its value.`,
        'Compute it in the mapping from the columns it is generated from (e.g. total: qty * price), or make it a generated column at HQ too.',
      );
    });
  }

  /** BL-M018: every column of an aggregate is a key column or a measure, and the key has no measure. */
  private checkAggregateShape(key: readonly string[], columns: readonly AnalyzedColumn[]): void {
    const keySet = new Set(key);
    for (const c of columns) {
      const isKey = keySet.has(c.column.name);
      if (c.measure !== undefined && isKey) {
        this.report(
          'BL-M018',
          c.location,
          `key column "${c.column.name}" is a ${c.measure}(...): the key says which total a row adds to, so it must be a plain value.`,
          `Write the grouping value (e.g. ${c.column.name}: ${c.column.name}), or choose another key.`,
        );
      } else if (c.measure === undefined && !isKey) {
        this.report(
          'BL-M018',
          c.location,
          `column "${c.column.name}" of an aggregate mapping is neither a key column (${key.join(', ')}) nor sum(...)/count().`,
          `Write "${c.column.name}: sum(${c.column.expression})" to add it up, or add "${c.column.name}" to the key to group by it.`,
        );
      }
    }
  }

  private resolveSource(aggregate: boolean): TableInfo | null {
    const catalog = this.catalogs.source;
    if (catalog === null) return null;
    const name = formatTable(this.spec.source);
    const info = catalog.get(tableKey(this.spec.source));
    if (!info) {
      const known = this.catalogs.sourceTables ?? [...catalog.values()].map((t) => t.id);
      this.report(
        'BL-M003',
        this.doc.location(['source']),
        `source table ${name} does not exist at the store.`,
        tableSuggestion(this.spec.source, known) ?? 'Check the name; write "schema.table" when the table is not in schema public.',
      );
      return null;
    }
    if (aggregate && info.replicaIdentity !== 'full') {
      this.report(
        'BL-M019',
        this.doc.location(['source']),
        `source table ${name} feeds an aggregate, but its updates and deletes do not carry the old row (REPLICA IDENTITY ${info.replicaIdentity.toUpperCase()}), so there is nothing to take back out of the totals.`,
        `Run \`branchline install\` (it sets REPLICA IDENTITY FULL on the sources of aggregates), or at the store: ALTER TABLE ${name} REPLICA IDENTITY FULL.`,
      );
      return info;
    }
    if (info.replicaIdentity === 'nothing') {
      this.report(
        'BL-M013',
        this.doc.location(['source']),
        `source table ${name} has REPLICA IDENTITY NOTHING, so its deletes and key changes carry no key.`,
        `At the store, run ALTER TABLE ${name} REPLICA IDENTITY DEFAULT (it needs a primary key) or REPLICA IDENTITY FULL.`,
      );
    } else if (info.identityColumns.length === 0) {
      this.report(
        'BL-M013',
        this.doc.location(['source']),
        `source table ${name} has no primary key, so its deletes and key changes carry no key.`,
        `At the store, add a primary key to ${name}, or run ALTER TABLE ${name} REPLICA IDENTITY FULL (or USING INDEX on a unique index).`,
      );
    }
    return info;
  }

  private resolveTarget(): TableInfo | null {
    const info = this.catalogs.target.get(tableKey(this.spec.target));
    if (info) return info;
    const known = this.catalogs.targetTables ?? [...this.catalogs.target.values()].map((t) => t.id);
    this.report(
      'BL-M004',
      this.doc.location(['target']),
      `target table ${formatTable(this.spec.target)} does not exist at HQ.`,
      tableSuggestion(this.spec.target, known) ?? 'Check the name; write "schema.table" when the table is not in schema public.',
    );
    return null;
  }

  private scope(source: TableInfo | null): ColumnScope | null {
    if (source === null) return null;
    return {
      table: formatTable(source.id),
      names: source.columns.map((c) => c.name),
      lookup: (name) => {
        const c = column(source, name);
        return c ? columnType(c) : undefined;
      },
    };
  }

  private analyzeColumn(c: MappingColumn, source: TableInfo | null, target: TableInfo | null, path: readonly string[], aggregate: boolean): AnalyzedColumn {
    const location = this.doc.location(path);
    const targetCol = target ? this.targetColumn(c.name, target, path) : undefined;
    let checked: CheckedExpr | null = null;
    try {
      const expr = parseExpression(c.expression);
      if (aggregate && expr.kind === 'call' && (expr.name.toLowerCase() === 'sum' || expr.name.toLowerCase() === 'count'))
        return this.analyzeMeasure(c, expr, path, location, source, target, targetCol);
      if (expr.kind === 'call' && expr.name.toLowerCase() === 'associate') return this.analyzeAssociate(c, expr, path, location, source);
      if (this.nestedAssociate(expr, path, c.name)) return { column: c, checked: null, location };
      const expected = targetCol ? columnType(targetCol) : undefined;
      checked = checkExpression(expr, this.scope(source), expected);
    } catch (e) {
      if (!(e instanceof ExprSyntaxError)) throw e;
      this.report(
        'BL-M007',
        this.inExpression(path, e.index),
        `the expression for "${c.name}" does not parse: ${e.message}.`,
        e.hint,
      );
      return { column: c, checked: null, location };
    }
    for (const issue of checked.issues) {
      let hint = issue.hint;
      if (issue.code === 'BL-M005' && checked.expr.kind === 'column' && this.wasQuotedInYaml(path)) {
        hint = `YAML took away the quotes: to write the text '${checked.expr.name}', quote it twice: "'${checked.expr.name}'".`;
      }
      this.report(issue.code, this.inExpression(path, issue.index), `${issue.message}.`, hint);
    }
    this.checkSendable(checked, path, source);
    if (checked.issues.length === 0 && targetCol && target && !fits(checked.type, columnType(targetCol))) {
      this.report(
        'BL-M008',
        location,
        `the expression for "${c.name}" gives ${describeType(checked.type)}, but column "${c.name}" of ${formatTable(target.id)} is ${targetCol.type}.`,
        conversionHint(checked.type, columnType(targetCol)) ?? this.fittingColumnsHint(c.name, targetCol, source),
      );
    }
    return { column: c, checked, location };
  }

  /** `associate(entity, code)`: the HQ key associated with `code` at this store is written. */
  private analyzeAssociate(
    c: MappingColumn,
    expr: Extract<Expr, { kind: 'call' }>,
    path: readonly string[],
    location: SourceLocation,
    source: TableInfo | null,
  ): AnalyzedColumn {
    const entities = this.catalogs.entities?.byName ?? new Map<string, Entity>();
    if (expr.args.length !== 2) {
      this.report(
        'BL-M020',
        this.inExpression(path, expr.start),
        `associate takes two arguments (the entity and the store's code), not ${expr.args.length}.`,
        `Write e.g. ${c.name}: associate(customer, customer_id).`,
      );
      return { column: c, checked: null, location };
    }
    const [nameArg, codeArg] = expr.args as [Expr, Expr];
    const name = nameArg.kind === 'column' ? nameArg.name : nameArg.kind === 'literal' && nameArg.type === 'text' ? nameArg.value : null;
    const entity = name === null ? undefined : entities.get(name);
    if (!entity) {
      const declared = [...entities.keys()];
      const near = name === null ? [] : didYouMean(name, declared);
      this.report(
        'BL-M020',
        this.inExpression(path, nameArg.start),
        name === null ? 'the first argument of associate must name an entity.' : `entity "${name}" is not declared.`,
        near.length > 0
          ? `Did you mean ${list(near)}?`
          : declared.length > 0
            ? `Declared entities: ${declared.join(', ')}; or declare "${name ?? 'name'}" in ${ENTITIES_HINT}.`
            : `Declare it in ${ENTITIES_HINT}, e.g. ${name ?? 'customer'}: {kind: allocate, sequence: ${name ?? 'customer'}_id_seq}.`,
      );
    }
    if (this.nestedAssociate(codeArg, path, c.name)) return { column: c, checked: null, location };
    const checked = checkExpression(codeArg, this.scope(source), undefined);
    for (const issue of checked.issues) this.report(issue.code, this.inExpression(path, issue.index), `${issue.message}.`, issue.hint);
    this.checkSendable(checked, path, source);
    return entity ? { column: c, checked, location, associate: entity } : { column: c, checked: null, location };
  }

  /** BL-M020 for an associate(...) inside a larger expression: it must be the whole column. */
  private nestedAssociate(e: Expr, path: readonly string[], name: string): boolean {
    let found: Expr | null = null;
    walk(e, (n) => {
      if (!found && n.kind === 'call' && n.name.toLowerCase() === 'associate') found = n;
    });
    if (!found) return false;
    this.report(
      'BL-M020',
      this.inExpression(path, (found as Expr).start),
      `associate(...) must be the whole expression of "${name}": the HQ key it stands for is known only when the row is applied.`,
      'Write the column as associate(entity, code) and compute the code inside it, e.g. associate(customer, trim(code)).',
    );
    return true;
  }

  /** A `sum(expression)` or `count()` column of an aggregate mapping. */
  private analyzeMeasure(
    c: MappingColumn,
    expr: Extract<Expr, { kind: 'call' }>,
    path: readonly string[],
    location: SourceLocation,
    source: TableInfo | null,
    target: TableInfo | null,
    targetCol: ColumnInfo | undefined,
  ): AnalyzedColumn {
    const kind = expr.name.toLowerCase() === 'sum' ? 'sum' : 'count';
    if (targetCol && target && !isNumberType(columnType(targetCol))) {
      this.report(
        'BL-M018',
        location,
        `column "${c.name}" of ${formatTable(target.id)} is ${targetCol.type}; a ${kind} needs a number column.`,
        'Point the total at a numeric, integer or float column.',
      );
    }
    if (kind === 'count') {
      if (expr.args.length > 0)
        this.report('BL-M018', this.inExpression(path, expr.args[0]!.start), 'count() takes no argument: it counts the rows that pass the filter.', 'Write count(); to add up a value, write sum(value).');
      return { column: c, checked: null, location, measure: 'count' };
    }
    if (expr.args.length !== 1) {
      this.report('BL-M018', this.inExpression(path, expr.start), `sum takes one argument, not ${expr.args.length}.`, 'Write sum(quantity), sum(amount * 2), ...');
      return { column: c, checked: null, location, measure: 'sum' };
    }
    if (this.nestedAssociate(expr.args[0]!, path, c.name)) return { column: c, checked: null, location, measure: 'sum' };
    const checked = checkExpression(expr.args[0]!, this.scope(source), undefined);
    for (const issue of checked.issues) this.report(issue.code, this.inExpression(path, issue.index), `${issue.message}.`, issue.hint);
    this.checkSendable(checked, path, source);
    if (checked.issues.length === 0 && !isNumberType(checked.type) && !isOpen(checked.type)) {
      this.report(
        'BL-M018',
        this.inExpression(path, expr.args[0]!.start),
        `sum needs a number, but its argument is ${describeType(checked.type)}.`,
        checked.type.category === 'text' ? 'Convert it first, e.g. sum(numeric(x)).' : 'Add up a numeric or integer column.',
      );
    }
    return { column: c, checked, location, measure: 'sum' };
  }

  /**
   * Where character `index` of a column's expression is. An expression
   * written over several lines is reported at its start: YAML folded its
   * lines, so indexes no longer match columns.
   */
  private inExpression(path: readonly string[], index: number): SourceLocation {
    const node = this.doc.nodeAt(path);
    const range = node?.range;
    if (!range || !isScalar(node) || this.doc.text.slice(range[0], range[1]).includes('\n')) return this.doc.location(path);
    return this.doc.locationInScalar(path, index);
  }

  private wasQuotedInYaml(path: readonly string[]): boolean {
    const node = this.doc.nodeAt(path);
    return isScalar(node) && (node.type === 'QUOTE_SINGLE' || node.type === 'QUOTE_DOUBLE');
  }

  private targetColumn(name: string, target: TableInfo, path: readonly string[]): ColumnInfo | undefined {
    const t = formatTable(target.id);
    const where = this.doc.keyLocation(path.slice(0, -1), name) ?? this.doc.location(path);
    const info = column(target, name);
    if (!info) {
      const near = didYouMean(name, target.columns.map((c) => c.name));
      this.report(
        'BL-M006',
        where,
        `unknown target column "${name}": table ${t} has no such column.`,
        near.length > 0 ? `Did you mean ${near.map((n) => `"${n}"`).join(' or ')}?` : `Its columns are: ${target.columns.map((c) => c.name).join(', ')}.`,
      );
      return undefined;
    }
    if (info.generated) {
      this.report(
        'BL-M006',
        where,
        `target column "${name}" of ${t} is a generated column; it cannot be written.`,
        'Remove this line: HQ computes the column itself.',
      );
      return undefined;
    }
    return info;
  }

  private fittingColumnsHint(name: string, targetCol: ColumnInfo, source: TableInfo | null): string {
    const want: ExprType = columnType(targetCol);
    if (source === null) return `Write an expression of type ${targetCol.type}.`;
    const fitting = source.columns
      .filter((c) => fits(columnType(c), want))
      .map((c) => c.name)
      .sort((a, b) => editDistance(a, name) - editDistance(b, name))
      .slice(0, 5);
    return fitting.length > 0
      ? `Source columns of a fitting type: ${fitting.join(', ')}.`
      : `No column of ${formatTable(source.id)} has a fitting type; write an expression of type ${targetCol.type}.`;
  }

  private resolveKey(target: TableInfo): readonly string[] | null {
    const t = formatTable(target.id);
    const key = this.spec.key ?? target.primaryKey;
    const uniqueKeys = target.uniqueKeys.filter((k) => k.length > 0);
    if (!key || key.length === 0) {
      this.report(
        'BL-M009',
        this.doc.location(['target']),
        `target table ${t} has no primary key, and this file does not say which columns identify a row.`,
        uniqueKeys.length > 0
          ? `Add "key: [${uniqueKeys[0]!.join(', ')}]" (a unique key of ${t}).`
          : `Add a primary key or a unique index to ${t} at HQ, and name its columns with "key: [...]".`,
      );
      return null;
    }
    let ok = true;
    key.forEach((k, i) => {
      if (column(target, k)) return;
      ok = false;
      const near = didYouMean(k, target.columns.map((c) => c.name));
      this.report(
        'BL-M006',
        this.doc.location(['key', i]),
        `key column "${k}" is not a column of ${t}.`,
        near.length > 0 ? `Did you mean ${list(near)}?` : `Its columns are: ${target.columns.map((c) => c.name).join(', ')}.`,
      );
    });
    if (!ok) return null;
    const set = new Set(key);
    const unique = uniqueKeys.some((u) => u.length === set.size && u.every((c) => set.has(c)));
    if (!unique) {
      this.report(
        'BL-M009',
        this.spec.key ? this.doc.location(['key']) : this.doc.location(['target']),
        `the key (${key.join(', ')}) is not a unique key of ${t} at HQ.`,
        uniqueKeys.length > 0
          ? `Use one of its unique keys: ${uniqueKeys.map((u) => `[${u.join(', ')}]`).join(', ')}; or create a unique index on (${key.join(', ')}) at HQ.`
          : `${t} has no unique key: create a unique index on (${key.join(', ')}) at HQ.`,
      );
      return null;
    }
    return key;
  }

  /** BL-M010: a delete carries only the source's identity columns, so keys may read nothing else. */
  private checkKeyComputable(key: readonly string[], columns: readonly AnalyzedColumn[], source: TableInfo | null, target: TableInfo): void {
    const t = formatTable(target.id);
    key.forEach((k, i) => {
      const mapped = columns.find((c) => c.column.name === k);
      if (!mapped) {
        const identity = source && source.identityColumns.length > 0 ? ` (${source.identityColumns.join(', ')})` : '';
        this.report(
          'BL-M010',
          this.spec.key ? this.doc.location(['key', i]) : (this.doc.keyLocation([], 'columns') ?? this.doc.location(['columns'])),
          `key column "${k}" of ${t} is not mapped.`,
          `Add "${k}: <expression>" under columns, computed from the source key${identity}, store.code or constants.`,
        );
        return;
      }
      this.checkReadsIdentity(mapped, ['columns', k], `key column "${k}"`, source, (s, ids) =>
        `A key may read only ${s}'s identity columns (${ids}), store.code and constants: compute it from those, choose another key, or set REPLICA IDENTITY FULL on ${s} at the store.`,
      );
    });
  }

  /** BL-M010: what a delete needs may read only the columns a delete carries (the source's identity). */
  private checkReadsIdentity(
    mapped: AnalyzedColumn,
    path: readonly string[],
    what: string,
    source: TableInfo | null,
    hint: (table: string, identity: string) => string = (t, ids) =>
      `It may read only ${t}'s identity columns (${ids}), store.code, constants and commit_time(): compute it from those, or set REPLICA IDENTITY FULL on ${t} at the store.`,
  ): void {
    if (!source || source.identityColumns.length === 0 || !mapped.checked) return;
    const identity = new Set(source.identityColumns);
    const s = formatTable(source.id);
    const reported = new Set<string>();
    walk(mapped.checked.expr, (n) => {
      if (n.kind !== 'column' || identity.has(n.name) || reported.has(n.name)) return;
      if (!source.columns.some((c) => c.name === n.name)) return; // already BL-M005
      reported.add(n.name);
      this.report(
        'BL-M010',
        this.inExpression(path, n.start),
        `${what} reads "${n.name}", which a delete of ${s} does not carry.`,
        hint(s, source.identityColumns.join(', ')),
      );
    });
  }

  /** BL-M014: NOT NULL target columns without a default must be written. */
  private checkRequired(target: TableInfo, key: readonly string[] | null): void {
    // Unmapped key columns are already BL-M010.
    const mapped = new Set([...this.spec.columns.map((c) => c.name), ...(key ?? [])]);
    const where = this.doc.keyLocation([], 'columns') ?? this.doc.location(['columns']);
    for (const c of target.columns) {
      if (!c.notNull || c.hasDefault || c.generated || mapped.has(c.name)) continue;
      this.report(
        'BL-M014',
        where,
        `target column "${c.name}" of ${formatTable(target.id)} is NOT NULL and has no default, but this file does not map it.`,
        `Add "${c.name}: <expression>" under columns (a constant such as "'X'" will do).`,
      );
    }
  }
}
