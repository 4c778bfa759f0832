import type pg from 'pg';
import { XID8_CODEC } from '../../connectors/pg-trigger/index.js';
import { PgSink } from '../apply/pg-sink.js';
import type { TableInfo } from '../catalog/pg-catalog.js';
import type { Config, StoreConfig } from '../config/load.js';
import { formatTable, tableKey, type TableId } from '../core/change.js';
import { BranchlineError, isBranchlineError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { TargetOp } from '../core/target-op.js';
import { connect, qualified, quoteIdent } from '../db/connect.js';
import { PgSourceRows } from './pg-source-rows.js';
import type { SourceIsolation, SourceRow, SourceRowsReader, SourceTable } from './source-rows.js';
import type { CompiledMapping, MappingSet } from '../mapping/mapping.js';
import { translateCodes, truncateScope } from '../verify/compare.js';
import { checkAndCompile, checkAndCompileDown, downOriginName, downTablesOf, loadMappings, readCatalog, requireReadable, storeRole, tablesOf } from '../agent/prepare.js';
import { storeCapture } from '../agent/store-capture.js';
import { chooseTables, COPY_SESSION } from '../load/initial-load.js';
import { upSink } from '../load/initial-load-up.js';
import { ExpectedTable } from './table-diff.js';
import { ExpectedTotals } from './aggregate-diff.js';
import { effectiveInstant, StoreZone } from '../schedule/effective-time.js';
import { DownAssociationResolver } from '../associate/down-resolver.js';
import { readClock } from '../doctor/clock.js';
import { hashedDiff, type HashedSide } from './hashed-diff.js';
import { removeExtra, resend, softMark } from './repair.js';

export type Direction = 'up' | 'down';

export interface ReconcileProgress {
  readonly mapping: string;
  /** Source rows read so far in all. */
  readonly rowsRead: number;
  /** Estimate of the source rows of every table compared; null when unknown. */
  readonly rowsTotal: number | null;
}

export interface ReconcileOptions {
  readonly config: Config;
  readonly store: StoreConfig;
  readonly logger: Logger;
  /** up, down, or both (default both, where mappings exist). */
  readonly directions?: readonly Direction[];
  /** Only these tables (source or target names). */
  readonly tables?: readonly string[];
  /** Repair what differs through the normal apply path. */
  readonly fix?: boolean;
  /** Source rows read per chunk (default batch.chunk_rows). */
  readonly chunkRows?: number;
  readonly onProgress?: (p: ReconcileProgress) => void;
}

export interface TableReconciliation {
  readonly direction: Direction;
  readonly mapping: string;
  readonly source: string;
  readonly target: string;
  readonly sourceRows: number;
  /** Target rows in this store's scope. */
  readonly targetRows: number;
  /** Target keys (text form) of the rows the target lacks, of those it holds differently, and of those no source row maps to. */
  readonly missing: readonly (readonly string[])[];
  readonly different: readonly (readonly string[])[];
  readonly extra: readonly (readonly string[])[];
  /** Store rows whose associated codes have no HQ key yet (up): the target lacks them; --fix sends them (allocate, or park). */
  readonly unassociated: number;
  /** Extra rows cannot be found: no target column tells this store's rows apart. */
  readonly extraUnknown: boolean;
  /**
   * hashed: both databases hashed the mapped rows themselves (bare columns and constants), only counts,
   * bucket hashes and the differing buckets' row hashes crossed; mapped: the source rows were read and
   * mapped by the agent and written into a temporary table at the target.
   */
  readonly method: 'hashed' | 'mapped' | null;
  /** hashed: buckets, those that differed, and the row hashes fetched to narrow them down. */
  readonly buckets: number;
  readonly bucketsDiffering: number;
  readonly rowsFetched: number;
  /** Why the mapping was not compared (aggregates, ...); null when compared. */
  readonly skipped: string | null;
  /** down with effective_at: source rows due later by the store's clock, left out of the comparison (the store holds them as scheduled). */
  readonly held: number;
  /** With --fix: why this table's differences were left as they are (aggregate totals); null otherwise. */
  readonly notFixed: string | null;
  /**
   * How the source was read: one snapshot for the run (`repeatable read`,
   * `snapshot`), or each statement its own (`read committed`: a SQL Server
   * store without snapshot isolation, where rows written during the run may
   * show as differences and a second run settles them); null when skipped.
   */
  readonly isolation: SourceIsolation | null;
  /** With --fix: rows re-sent and rows removed. */
  readonly resent: number;
  readonly removed: number;
}

export interface ReconcileResult {
  readonly store: string;
  readonly tables: readonly TableReconciliation[];
  readonly differences: number;
  readonly fixed: boolean;
}

/** Differences of one result (rows not equal); 0 when in step. */
export function differencesOf(t: TableReconciliation): number {
  return t.missing.length + t.different.length + t.extra.length + t.unassociated;
}

/**
 * `branchline reconcile --store S`: compares each mapping's target table
 * with its source, through the mapping (up: the store's rows mapped and
 * compared with HQ's rows of the store; down: HQ's rows mapped and compared
 * with the store's table), and with `fix` repairs what differs: missing or
 * different rows re-sent through the mapping and the sink (associations,
 * policies, routes apply as in the stream), extra rows deleted (or soft
 * deleted where the mapping says so).
 *
 * The source is read through a SourceRowsReader (source-rows.ts): a
 * PostgreSQL source in one REPEATABLE READ snapshot, a SQL Server store's
 * up tables in SNAPSHOT or READ COMMITTED. Mappings of bare columns at a
 * PostgreSQL source are hashed by both databases (hashed-diff.ts); the
 * others are read in keyset chunks, each chunk mapped in the agent and
 * written into a temporary table at the target, where one statement finds
 * the differing keys (see table-diff.ts). A SQL Server store has no down
 * channel: only its up mappings are compared.
 */
export async function runReconcile(options: ReconcileOptions): Promise<ReconcileResult> {
  const { config, store } = options;
  const wanted = options.directions ?? ['up', 'down'];
  // A SQL Server store has the up channel only (HQ writes to PostgreSQL stores): its up tables are compared, down is not.
  const postgres = storeCapture(store).postgres;
  if (!postgres && !wanted.includes('up'))
    throw new BranchlineError({
      code: 'BL-R001',
      message: `store ${store.code} is a SQL Server store (mssql-trigger): it has no down channel (HQ -> store), so there is nothing to reconcile down.`,
      hint: `Compare its up tables: branchline reconcile --store ${store.code} --direction up.`,
    });
  const files = await loadMappings(config);
  requireReadable(files);
  const tables: TableReconciliation[] = [];
  let rowsRead = 0;
  const progress = (mapping: string, n: number, total: number | null) => {
    rowsRead += n;
    options.onProgress?.({ mapping, rowsRead, rowsTotal: total });
  };
  const sides: { direction: Direction; side: Side }[] = [];
  for (const direction of wanted) {
    if (direction === 'down' && !postgres) continue;
    const side = direction === 'up' ? await upSide(options, files) : await downSide(options, files);
    if (side) sides.push({ direction, side });
  }
  // --tables: a name may be a table of either direction (an error only when it is one of none).
  const names = options.tables ?? [];
  const knownIn = (side: Side, direction: Direction, n: string) => {
    try {
      chooseTables(side.mappings, [n], undefined, direction);
      return true;
    } catch {
      return false;
    }
  };
  for (const n of names)
    if (!sides.some((s) => knownIn(s.side, s.direction, n)))
      throw new BranchlineError({
        code: 'BL-U001',
        message: `"${n}" is not a table the ${wanted.join(' or ')} mappings read or write.`,
        hint: `Tables: ${sides.flatMap((s) => s.side.mappings.sourceTables.map(formatTable)).join(', ')}.`,
      });
  for (const { direction, side } of sides) {
    const own = names.filter((n) => knownIn(side, direction, n));
    if (names.length > 0 && own.length === 0) continue;
    const chosen = chooseTables(side.mappings, own, undefined, direction);
    if (chosen.length === 0) continue;
    tables.push(...(await reconcileSide({ ...side, direction, chosen, options, progress })));
  }
  const differences = tables.reduce((n, t) => n + differencesOf(t), 0);
  return { store: store.code, tables, differences, fixed: options.fix === true };
}

interface Side {
  readonly mappings: MappingSet;
  readonly sourceRole: string;
  /** The source's rows, read through the seam (PostgreSQL or SQL Server). */
  readonly reader: () => Promise<SourceRowsReader>;
  readonly sourceCatalog: ReadonlyMap<string, TableInfo>;
  readonly targetUrl: string;
  readonly targetRole: string;
  readonly targetCatalog: ReadonlyMap<string, TableInfo>;
  readonly sink: () => PgSink;
}

async function upSide(o: ReconcileOptions, files: Awaited<ReturnType<typeof loadMappings>>): Promise<Side | null> {
  if (files.files.length === 0) return null;
  const { config, store, logger } = o;
  const { sources, targets } = tablesOf(files);
  const hqCatalog = await readCatalog(config.hq.url, 'HQ', targets);
  const storeCatalog = await storeCapture(store).catalog(sources);
  const mappings = checkAndCompile(files, hqCatalog, storeCatalog, `HQ and ${storeRole(store)}`);
  return {
    mappings,
    sourceRole: storeRole(store),
    reader: () => storeRows(store),
    sourceCatalog: storeCatalog.tables,
    targetUrl: config.hq.url,
    targetRole: 'HQ',
    targetCatalog: hqCatalog.tables,
    sink: () => upSink({ config, store, positionKind: storeCapture(store).positionKind, catalog: hqCatalog.tables, mappings, entities: files.entities.byName, logger }),
  };
}

async function downSide(o: ReconcileOptions, files: Awaited<ReturnType<typeof loadMappings>>): Promise<Side | null> {
  if (files.down.length === 0) return null;
  const { config, store, logger } = o;
  const { hqSources, storeTargets } = downTablesOf(files);
  const hqCatalog = await readCatalog(config.hq.url, 'HQ', hqSources);
  const storeCatalog = await readCatalog(store.url, storeRole(store), storeTargets);
  const mappings = checkAndCompileDown(files, hqCatalog, storeCatalog, `HQ and ${storeRole(store)}`);
  return {
    mappings,
    sourceRole: 'HQ',
    reader: async () => new PgSourceRows({ url: config.hq.url, role: 'HQ', applicationName: `branchline-reconcile-${store.code}` }),
    sourceCatalog: hqCatalog.tables,
    targetUrl: store.url,
    targetRole: storeRole(store),
    targetCatalog: storeCatalog.tables,
    sink: () =>
      new PgSink({
        url: store.url,
        role: storeRole(store),
        pipeline: { name: `down:${store.code}`, storeCode: store.code, direction: 'down', connector: 'pg-trigger' },
        positionKind: XID8_CODEC.kind,
        catalog: storeCatalog.tables,
        targetOrder: mappings.targetOrder,
        statementTimeoutMs: config.apply.statementTimeoutMs,
        // Marked as HQ's writes: the store's capture does not send them back up.
        // HQ keys become the store's codes as in the stream (allocated, or parked until associated).
        associations: new DownAssociationResolver({ storeCode: store.code, entities: files.entities.byName, hqUrl: config.hq.url, statementTimeoutMs: config.apply.statementTimeoutMs }),
        origin: { name: 'HQ', replicationOrigin: downOriginName(store.code) },
        logger,
      }),
  };
}

interface SideRun extends Side {
  readonly direction: Direction;
  readonly chosen: readonly TableId[];
  readonly options: ReconcileOptions;
  readonly progress: (mapping: string, n: number, total: number | null) => void;
}

/** A store's source rows: its own database's reader (SQL Server's driver loaded only for a SQL Server store). */
async function storeRows(store: StoreConfig): Promise<SourceRowsReader> {
  const options = { url: store.url, role: storeRole(store), applicationName: `branchline-reconcile-${store.code}` };
  if (storeCapture(store).postgres) return new PgSourceRows(options);
  return new (await import('./mssql-source-rows.js')).MssqlSourceRows(options);
}

async function reconcileSide(s: SideRun): Promise<TableReconciliation[]> {
  const { options, direction } = s;
  const ctx = { storeCode: options.store.code };
  const reader = await s.reader();
  let target: pg.Client | null = null;
  let sink: PgSink | null = null;
  try {
    target = await connect(s.targetUrl, { role: s.targetRole, applicationName: `branchline-reconcile-${options.store.code}` });
    for (const q of COPY_SESSION) await target.query(q);
    if (options.fix) sink = await openSink(s);
    await reader.begin();
    const out: TableReconciliation[] = [];
    const chosen = new Set(s.chosen.map(tableKey));
    const mappings = s.mappings.mappings.filter((m) => chosen.has(tableKey(m.source)));
    const total = await reader.estimate(s.chosen);
    const storeNowMs = direction === 'down' && mappings.some((m) => m.effectiveAt) ? (await readClock(target!)).serverAt : null;
    const runOf = (m: CompiledMapping): MappingRun => {
      const srcInfo = s.sourceCatalog.get(tableKey(m.source));
      const tgtInfo = s.targetCatalog.get(tableKey(m.target));
      if (!srcInfo || !tgtInfo) throw new Error(`internal: ${m.file} is not described`);
      const pk = srcInfo.primaryKey;
      if (!pk || pk.length === 0)
        throw new BranchlineError({
          code: 'BL-R002',
          message: `${formatTable(m.source)} at ${s.sourceRole} has no primary key, so reconcile cannot read it in key ranges nor find a row again to re-send it.`,
          hint: `Give the table a primary key at ${s.sourceRole}, or leave it out with --tables.`,
        });
      const table: SourceTable = { id: m.source, info: srcInfo, primaryKey: pk };
      return { m, ctx, reader, target: target!, table, tgtInfo, sink, run: s, total, storeNowMs };
    };
    const totalsDone = new Set<string>();
    for (const m of mappings) {
      if (m.aggregate) {
        // A table of totals may be written by several aggregate mappings: compared once, as the sum of all.
        const t = tableKey(m.target);
        if (totalsDone.has(t)) continue;
        totalsDone.add(t);
        const group = s.mappings.mappings.filter((g) => g.aggregate && tableKey(g.target) === t);
        const base = { direction, mapping: group.map((g) => g.name).join(', '), source: group.map((g) => formatTable(g.source)).join(', '), target: formatTable(m.target) };
        const left = group.filter((g) => !chosen.has(tableKey(g.source)));
        if (left.length > 0) {
          out.push({ ...base, ...NOT_COMPARED, skipped: `its totals are also added from ${left.map((g) => formatTable(g.source)).join(', ')}: name those tables too` });
          continue;
        }
        out.push({ ...base, ...(await reconcileTotals(group.map(runOf))), isolation: reader.isolation });
        continue;
      }
      const base = { direction, mapping: m.name, source: formatTable(m.source), target: formatTable(m.target) };
      out.push({ ...base, ...(await reconcileMapping(runOf(m))), isolation: reader.isolation });
    }
    await reader.end();
    return out;
  } finally {
    await reader.close();
    await target?.end().catch(() => undefined);
    await sink?.close();
  }
}

const NOT_COMPARED = {
  sourceRows: 0,
  targetRows: 0,
  missing: [],
  different: [],
  extra: [],
  unassociated: 0,
  extraUnknown: false,
  method: null,
  buckets: 0,
  bucketsDiffering: 0,
  rowsFetched: 0,
  held: 0,
  notFixed: null,
  resent: 0,
  removed: 0,
  isolation: null,
} as const;

/** The sink --fix writes with: the pipeline's own lock, so a running agent's pipeline is refused (stop it first). */
async function openSink(s: SideRun): Promise<PgSink> {
  const sink = s.sink();
  try {
    await sink.connect();
  } catch (e) {
    if (isBranchlineError(e) && e.code === 'BL-A002')
      throw new BranchlineError(
        {
          code: 'BL-R003',
          message: `an agent is running the ${s.direction} pipeline of store ${s.options.store.code}, so reconcile --fix cannot write beside it.`,
          hint: `Stop the agent (or run it without this store), run \`branchline reconcile --store ${s.options.store.code} --fix\`, then start it again; without --fix reconcile only reads.`,
        },
        { cause: e },
      );
    throw e;
  }
  return sink;
}

interface MappingRun {
  readonly m: CompiledMapping;
  readonly ctx: { storeCode: string };
  readonly reader: SourceRowsReader;
  readonly target: pg.Client;
  readonly table: SourceTable;
  readonly tgtInfo: TableInfo;
  readonly sink: PgSink | null;
  readonly run: SideRun;
  readonly total: number | null;
  /** down with effective_at: the store's clock when the comparison began (rows due later are held, not compared). */
  readonly storeNowMs: number | null;
}

type Written = Extract<TargetOp, { kind: 'upsert' | 'insert-missing' }>;

type MappingResult = Omit<TableReconciliation, 'direction' | 'mapping' | 'source' | 'target' | 'isolation'>;

async function reconcileMapping(a: MappingRun): Promise<MappingResult> {
  const sides = await hashedSides(a);
  if (!sides) return mappedReconcile(a);
  const diff = await hashedDiff(sides.source, sides.target);
  const scope = truncateScope(a.m, a.ctx);
  let resent = 0;
  let removed = 0;
  if (a.sink) {
    resent = await resend(a, [...diff.missing, ...diff.different].map((k) => JSON.stringify(sides.sourceKeyOf(k))));
    removed = await removeExtra(a, diff.extra);
  }
  a.run.progress(a.m.name, diff.sourceRows, a.total);
  return { ...diff, unassociated: 0, extraUnknown: scope === null, method: 'hashed', held: 0, skipped: null, notFixed: null, resent, removed };
}

/**
 * Both sides as SQL for hashedDiff, when the mapping's columns are bare
 * source columns and constants, every source key column is a target key
 * column, and the source database knows the target's column types (it
 * casts to them); null otherwise.
 */
async function hashedSides(a: MappingRun): Promise<{ source: HashedSide; target: HashedSide; sourceKeyOf: (targetKey: readonly string[]) => string[] } | null> {
  const { m, ctx } = a;
  const pk = a.table.primaryKey;
  const source = a.reader.postgres;
  const plain = m.plainColumns?.(ctx) ?? null;
  const scope = truncateScope(m, ctx);
  // Hashing needs the source database to compute the mapped rows itself: PostgreSQL sources only.
  if (!plain || !source) return null;
  const keyIndex = pk.map((p) => m.target.key.findIndex((k) => { const c = plain.get(k); return c !== undefined && 'source' in c && c.source === p; }));
  if (keyIndex.some((i) => i < 0)) return null;
  const tgtType = new Map(a.tgtInfo.columns.map((c) => [c.name, c]));
  const typeOf = (c: string) => {
    const t = tgtType.get(c);
    if (!t) throw new Error(`internal: ${c} is not a column of ${formatTable(m.target)}`);
    return t;
  };
  const types = [...new Set(m.columns.map((c) => typeOf(c).type))];
  const known = await source.query<{ ok: boolean }>(`SELECT bool_and(to_regtype(t) IS NOT NULL) AS ok FROM unnest($1::text[]) t`, [types]);
  if (!known.rows[0]?.ok) return null;
  // json has no canonical text: compared as jsonb, as the mapped comparison does.
  const asText = (expr: string, c: string) => (typeOf(c).typeName === 'json' ? `(${expr})::jsonb::text` : `(${expr})::text`);
  const sourceParams: unknown[] = [];
  const sourceText = (c: string) => {
    const col = plain.get(c)!;
    if ('source' in col) return asText(`t.${quoteIdent(col.source)}::text::${typeOf(c).type}`, c);
    sourceParams.push(col.value);
    return asText(`$${sourceParams.length}::text::${typeOf(c).type}`, c);
  };
  // Key columns are among the compared columns: one placeholder each, used by both.
  const texts = new Map(m.columns.map((c) => [c, sourceText(c)]));
  const sourceKeys = m.target.key.map((k) => texts.get(k)!);
  const sourceRowTexts = m.columns.map((c) => texts.get(c)!);
  const targetParams: unknown[] = [];
  const conditions = (scope ?? []).map(([c, v]) => {
    targetParams.push(v);
    return `t.${quoteIdent(c)} = $${targetParams.length}::${typeOf(c).type}`;
  });
  // No column tells this store's rows apart: only the keys the source has are looked at (extras cannot be found).
  if (scope === null) return null;
  return {
    source: { db: source, from: `${qualified(m.source.schema, m.source.table)} t`, conditions: [], params: sourceParams, keyTexts: sourceKeys, rowTexts: sourceRowTexts },
    target: {
      db: a.target,
      from: `${qualified(m.target.schema, m.target.table)} t`,
      conditions,
      params: targetParams,
      keyTexts: m.target.key.map((k) => asText(`t.${quoteIdent(k)}`, k)),
      rowTexts: m.columns.map((c) => asText(`t.${quoteIdent(c)}`, c)),
    },
    sourceKeyOf: (k) => keyIndex.map((i) => k[i]!),
  };
}

/** Reads the source table in keyset chunks (within the reader's read), in key order; returns the rows read. */
async function readSource(a: MappingRun, onChunk: (rows: readonly SourceRow[]) => Promise<void>): Promise<number> {
  const chunkRows = a.run.options.chunkRows ?? a.run.options.config.batch.chunkRows;
  let last: string | null = null;
  let n = 0;
  for (;;) {
    const rows = await a.reader.chunk(a.table, last, chunkRows);
    if (rows.length === 0) break;
    await onChunk(rows);
    n += rows.length;
    a.run.progress(a.m.name, rows.length, a.total);
    last = rows[rows.length - 1]!.key;
    if (rows.length < chunkRows) break;
  }
  return n;
}

/**
 * Replaces the codes of `associate(...)` columns as the stream does: up, the
 * store's codes by HQ's keys; down, HQ's keys by the store's codes (both
 * kept at HQ: the target for up, the source for down, read in its
 * snapshot). Rows with a code not associated yet are left out (`kept`
 * false): the target lacks them.
 */
function translate(a: MappingRun, written: Parameters<typeof translateCodes>[3]): ReturnType<typeof translateCodes> {
  if (a.run.direction === 'up') return translateCodes(a.target, a.ctx.storeCode, a.m.associates, written, 'hq-keys');
  const hq = a.reader.postgres;
  if (!hq) throw new Error('internal: the down source (HQ) is PostgreSQL');
  return translateCodes(hq, a.ctx.storeCode, a.m.associates, written, 'branch-codes');
}

async function mappedReconcile(a: MappingRun): Promise<MappingResult> {
  const { m, ctx, target } = a;
  let keyOnly = false;
  const expected = new ExpectedTable({ db: target, target: m.target, info: a.tgtInfo, columns: m.columns });
  await expected.create();
  const unassociatedKeys: string[] = [];
  let held = 0;
  const zone = m.effectiveAt && a.storeNowMs !== null ? new StoreZone(a.run.options.store.timeZone) : null;
  // Due later by the store's clock: the store holds it in branchline.scheduled, not in its table yet.
  const dueLater = (row: SourceRow['values']): boolean => {
    if (!zone || !m.effectiveAt) return false;
    try {
      const at = effectiveInstant(row[m.effectiveAt.column], m.effectiveAt, zone, m.name);
      return at !== null && at > a.storeNowMs!;
    } catch {
      return false; // unreadable: the stream parks it, so the store lacks it
    }
  };
  try {
    const sourceRows = await readSource(a, async (rows) => {
      const written: Written[] = [];
      const srcKeys: string[] = [];
      const later: boolean[] = [];
      for (const row of rows) {
        const isLater = dueLater(row.values);
        for (const op of m.map({ op: 'insert', table: m.source, after: row.values }, ctx)) {
          if (op.kind !== 'upsert' && op.kind !== 'insert-missing') continue;
          if (op.kind === 'insert-missing') keyOnly = true;
          written.push(op);
          srcKeys.push(row.key);
          later.push(isLater);
        }
      }
      const translated = await translate(a, written);
      const keptKeys: string[] = [];
      const keptLater: boolean[] = [];
      translated.kept.forEach((ok, i) => {
        if (ok) {
          keptKeys.push(srcKeys[i]!);
          keptLater.push(later[i]!);
          if (later[i]) held++;
        } else if (!later[i]) unassociatedKeys.push(srcKeys[i]!);
      });
      await expected.add(translated.rows, keptKeys, keptLater);
    });
    const scope = truncateScope(m, ctx);
    // insert_only: HQ keeps the row as first created and ignores later changes, so only its presence is compared.
    const diff = await expected.diff(scope, keyOnly ? m.target.key : m.columns, softMark(m, ctx));
    let resent = 0;
    let removed = 0;
    if (a.sink) {
      const keys = [...unassociatedKeys, ...(await expected.sourceKeys([...diff.missing, ...diff.different]))];
      resent = await resend(a, keys);
      removed = await removeExtra(a, diff.extra);
    }
    return { sourceRows, ...diff, unassociated: unassociatedKeys.length, held, extraUnknown: scope === null, method: 'mapped', buckets: 0, bucketsDiffering: 0, rowsFetched: 0, skipped: null, notFixed: null, resent, removed };
  } finally {
    await expected.drop();
  }
}

/**
 * Aggregate targets: the totals HQ holds of this store against the sums of
 * the store's rows, through every aggregate mapping that adds to that
 * table (each source read in the same read). --fix leaves totals as they
 * are (see notFixed).
 */
async function reconcileTotals(runs: readonly MappingRun[]): Promise<MappingResult> {
  const first = runs[0]!;
  const measures = [...new Set(runs.flatMap((r) => r.m.columns.filter((c) => !r.m.target.key.includes(c))))];
  const totals = new ExpectedTotals({ db: first.target, target: first.m.target, info: first.tgtInfo, measures });
  await totals.create();
  try {
    let sourceRows = 0;
    let unassociated = 0;
    for (const a of runs) {
      sourceRows += await readSource(a, async (rows) => {
        const adds: Extract<TargetOp, { kind: 'add' }>[] = [];
        for (const row of rows) for (const op of a.m.map({ op: 'insert', table: a.m.source, after: row.values }, a.ctx)) if (op.kind === 'add') adds.push(op);
        const translated = await translate(a, adds);
        unassociated += translated.unassociated;
        await totals.add(translated.rows);
      });
    }
    const scope = truncateScope(first.m, first.ctx) ?? [];
    const diff = await totals.diff(scope);
    const differs = diff.missing.length + diff.different.length + diff.extra.length > 0;
    const notFixed =
      first.sink && (differs || unassociated > 0)
        ? "totals are not rewritten by --fix: the store's changes the stream has not delivered yet would then be added a second time"
        : null;
    return { sourceRows, ...diff, unassociated, held: 0, extraUnknown: false, method: 'mapped', buckets: 0, bucketsDiffering: 0, rowsFetched: 0, skipped: null, notFixed, resent: 0, removed: 0 };
  } finally {
    await totals.drop();
  }
}
