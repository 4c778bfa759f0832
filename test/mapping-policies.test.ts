import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RowValues, TableId } from '../src/core/change.js';
import { BranchlineError, formatProblem } from '../src/core/errors.js';
import type { TargetOp } from '../src/core/target-op.js';
import { compileMappings, parseMappingFile, validateMappings, type LoadedMappingFile, type MappingSet } from '../src/mapping/index.js';
import { negate } from '../src/mapping/compiled-aggregate-mapping.js';
import { catalog, col, table } from './support/mapping-catalog.js';

/** Filters, conflict and delete policies, and aggregates, compiled without a database. */

const DOC: TableId = { schema: 'public', table: 'doc' };
const ITEM: TableId = { schema: 'public', table: 'item' };

const store = (itemIdentity: 'full' | 'default' = 'full') =>
  catalog(
    table(
      'doc',
      [
        col('id', 'bigint', { notNull: true }),
        col('status', 'text', { notNull: true }),
        col('total', 'numeric(12,2)'),
        col('note', 'text'),
      ],
      { primaryKey: ['id'] },
    ),
    table(
      'item',
      [
        col('id', 'bigint', { notNull: true }),
        col('day', 'date', { notNull: true }),
        col('product_id', 'integer', { notNull: true }),
        col('qty', 'numeric(12,3)', { notNull: true }),
        col('amount', 'numeric(14,2)', { notNull: true }),
        col('cancelled', 'boolean', { notNull: true }),
        col('label', 'text'),
      ],
      { primaryKey: ['id'], replicaIdentity: itemIdentity },
    ),
  );

const hq = () =>
  catalog(
    table(
      'h_doc',
      [
        col('store_code', 'text', { notNull: true }),
        col('id', 'bigint', { notNull: true }),
        col('status', 'text'),
        col('total', 'numeric(12,2)'),
        col('deleted', 'boolean', { notNull: true, hasDefault: true }),
        col('deleted_at', 'timestamp with time zone'),
      ],
      { primaryKey: ['store_code', 'id'] },
    ),
    table(
      'h_daily',
      [
        col('store_code', 'text', { notNull: true }),
        col('day', 'date', { notNull: true }),
        col('product_id', 'integer', { notNull: true }),
        col('qty', 'numeric(14,3)', { notNull: true, hasDefault: true }),
        col('amount', 'numeric(16,2)', { notNull: true, hasDefault: true }),
        col('items', 'integer', { notNull: true, hasDefault: true }),
        col('label', 'text'),
      ],
      { primaryKey: ['store_code', 'day', 'product_id'] },
    ),
  );

function load(name: string, text: string): LoadedMappingFile {
  const r = parseMappingFile(`mappings/${name}`, text);
  assert.deepEqual(r.problems.map(formatProblem), []);
  assert.ok(r.file);
  return r.file;
}

function compile(text: string, name = 'm.yml', itemIdentity: 'full' | 'default' = 'full'): MappingSet {
  return compileMappings([load(name, text)], { source: store(itemIdentity), target: hq() });
}

function problems(files: [string, string][], itemIdentity: 'full' | 'default' = 'full'): string[] {
  return validateMappings(
    files.map(([n, t]) => load(n, t)),
    { source: store(itemIdentity), target: hq() },
  ).map(formatProblem);
}

function plain(ops: TargetOp[]): unknown[] {
  return ops.map((op) => {
    const { target, ...rest } = op as TargetOp & { columns?: unknown; measures?: unknown };
    const { columns: _c, measures: _m, ...shown } = rest as Record<string, unknown>;
    return { table: target.table, ...shown };
  });
}

const CTX = { storeCode: 'S001', commitTime: new Date('2026-11-23T10:00:00.000Z') };

const DOC_BASE = `source: doc
target: h_doc
columns:
  store_code: store.code
  id: id
  status: status
  total: total
`;

const doc = (id: string, status: string, total = '1.00'): RowValues => ({ id, status, total, note: null });

describe('filter', () => {
  const set = compile(`${DOC_BASE}filter: status = 'confirmed'\n`);
  const m = set.forSource(DOC)[0]!;

  test('an insert that matches is written, one that does not is left out', () => {
    assert.deepEqual(plain(m.map({ op: 'insert', table: DOC, after: doc('1', 'confirmed') }, CTX)), [
      { table: 'h_doc', kind: 'upsert', key: ['S001', '1'], row: { store_code: 'S001', id: '1', status: 'confirmed', total: '1.00' }, fresh: true },
    ]);
    assert.deepEqual(m.map({ op: 'insert', table: DOC, after: doc('2', 'draft') }, CTX), []);
  });

  test('a row that starts to match is written; one that stops matching is removed', () => {
    assert.deepEqual(plain(m.map({ op: 'update', table: DOC, after: doc('2', 'confirmed') }, CTX)), [
      { table: 'h_doc', kind: 'upsert', key: ['S001', '2'], row: { store_code: 'S001', id: '2', status: 'confirmed', total: '1.00' } },
    ]);
    assert.deepEqual(plain(m.map({ op: 'update', table: DOC, after: doc('2', 'cancelled') }, CTX)), [{ table: 'h_doc', kind: 'delete', key: ['S001', '2'] }]);
    assert.deepEqual(plain(m.map({ op: 'delete', table: DOC, before: { id: '2' } }, CTX)), [{ table: 'h_doc', kind: 'delete', key: ['S001', '2'] }]);
  });

  test('a whole old row that did not match either: nothing to remove', () => {
    const before = doc('3', 'draft');
    assert.deepEqual(m.map({ op: 'update', table: DOC, before, after: doc('3', 'draft', '2.00') }, CTX), []);
  });

  test('a filter column the change does not carry is BL-M015 with the fix', () => {
    const set2 = compile(`${DOC_BASE}filter: note is not null\n`);
    assert.throws(
      () => set2.forSource(DOC)[0]!.map({ op: 'update', table: DOC, after: { id: '4', status: 'x', total: '1.00' } }, CTX),
      (e: unknown) => e instanceof BranchlineError && e.code === 'BL-M015' && /reads note/.test(e.message) && /REPLICA IDENTITY FULL/.test(e.hint ?? ''),
    );
  });
});

describe('conflict and delete policies', () => {
  test('on_delete: ignore leaves deletes out, counted as ignored', () => {
    const m = compile(`${DOC_BASE}on_delete: ignore\n`).forSource(DOC)[0]!;
    assert.deepEqual(plain(m.map({ op: 'delete', table: DOC, before: { id: '1' } }, CTX)), [{ table: 'h_doc', kind: 'ignore' }]);
    assert.deepEqual(plain(m.mapTruncate(CTX)), [{ table: 'h_doc', kind: 'ignore' }]);
  });

  test('on_delete: soft marks the row, with the source commit time', () => {
    const m = compile(`${DOC_BASE}on_delete:\n  soft:\n    deleted: true\n    deleted_at: commit_time()\n`).forSource(DOC)[0]!;
    assert.deepEqual(plain(m.map({ op: 'delete', table: DOC, before: { id: '7' } }, CTX)), [
      { table: 'h_doc', kind: 'update', key: ['S001', '7'], row: { store_code: 'S001', id: '7', deleted: 't', deleted_at: '2026-11-23T10:00:00.000Z' } },
    ]);
    assert.deepEqual(plain(m.mapTruncate(CTX)), [
      { table: 'h_doc', kind: 'delete-where', where: { store_code: 'S001' }, set: { deleted: 't', deleted_at: '2026-11-23T10:00:00.000Z' } },
    ]);
  });

  test('insert_only: creates, never alters: updates create only if missing, deletes are ignored', () => {
    const m = compile(`${DOC_BASE}on_conflict: insert_only\n`).forSource(DOC)[0]!;
    const row = { store_code: 'S001', id: '1', status: 'new', total: '1.00' };
    assert.deepEqual(plain(m.map({ op: 'insert', table: DOC, after: doc('1', 'new') }, CTX)), [{ table: 'h_doc', kind: 'insert-missing', key: ['S001', '1'], row }]);
    assert.deepEqual(plain(m.map({ op: 'update', table: DOC, after: doc('1', 'new') }, CTX)), [{ table: 'h_doc', kind: 'insert-missing', key: ['S001', '1'], row }]);
    assert.deepEqual(plain(m.map({ op: 'delete', table: DOC, before: { id: '1' } }, CTX)), [{ table: 'h_doc', kind: 'ignore' }]);
    // An update that does not carry every column cannot create the row whole.
    assert.deepEqual(plain(m.map({ op: 'update', table: DOC, after: { id: '1', status: 'x' } }, CTX)), [{ table: 'h_doc', kind: 'ignore' }]);
  });
});

const DAILY = `source: item
target: h_daily
filter: not cancelled
columns:
  store_code: store.code
  day: day
  product_id: product_id
  qty: sum(qty)
  amount: sum(amount * 2)
  items: count()
`;

const item = (over: Partial<Record<string, string>> = {}): RowValues => ({
  id: '1',
  day: '2026-11-23',
  product_id: '10',
  qty: '2.500',
  amount: '3.10',
  cancelled: 'f',
  label: null,
  ...over,
});

describe('aggregate', () => {
  const m = compile(DAILY).forSource(ITEM)[0]!;
  const key = ['S001', '2026-11-23', '10'];

  test('an insert adds, a delete takes out', () => {
    assert.deepEqual(plain(m.map({ op: 'insert', table: ITEM, after: item() }, CTX)), [
      { table: 'h_daily', kind: 'add', key, row: { store_code: 'S001', day: '2026-11-23', product_id: '10', qty: '2.500', amount: '6.20', items: '1' } },
    ]);
    assert.deepEqual(plain(m.map({ op: 'delete', table: ITEM, before: item() }, CTX)), [
      { table: 'h_daily', kind: 'add', key, row: { store_code: 'S001', day: '2026-11-23', product_id: '10', qty: '-2.500', amount: '-6.20', items: '-1' } },
    ]);
  });

  test('an update takes the old row out and puts the new one in; a cancellation only takes out', () => {
    const ops = plain(m.map({ op: 'update', table: ITEM, before: item(), after: item({ qty: '3.000', product_id: '11' }) }, CTX));
    assert.deepEqual(ops, [
      { table: 'h_daily', kind: 'add', key, row: { store_code: 'S001', day: '2026-11-23', product_id: '10', qty: '-2.500', amount: '-6.20', items: '-1' } },
      { table: 'h_daily', kind: 'add', key: ['S001', '2026-11-23', '11'], row: { store_code: 'S001', day: '2026-11-23', product_id: '11', qty: '3.000', amount: '6.20', items: '1' } },
    ]);
    assert.deepEqual(plain(m.map({ op: 'update', table: ITEM, before: item(), after: item({ cancelled: 't' }) }, CTX)), [
      { table: 'h_daily', kind: 'add', key, row: { store_code: 'S001', day: '2026-11-23', product_id: '10', qty: '-2.500', amount: '-6.20', items: '-1' } },
    ]);
    // Cancelled before and after: counts nowhere.
    assert.deepEqual(m.map({ op: 'update', table: ITEM, before: item({ cancelled: 't' }), after: item({ cancelled: 't', qty: '9' }) }, CTX), []);
  });

  test('an update without the old row cannot be subtracted: BL-M015 says to set REPLICA IDENTITY FULL', () => {
    assert.throws(
      () => m.map({ op: 'update', table: ITEM, before: { id: '1' }, after: item() }, CTX),
      (e: unknown) => e instanceof BranchlineError && e.code === 'BL-M015' && /REPLICA IDENTITY FULL/.test(e.hint ?? ''),
    );
  });

  test('a truncate removes this store\'s totals only', () => {
    assert.deepEqual(plain(m.mapTruncate(CTX)), [{ table: 'h_daily', kind: 'delete-where', where: { store_code: 'S001' } }]);
  });

  test('negate flips the sign of numbers in PostgreSQL text form', () => {
    assert.deepEqual(['1', '-2.50', '0', '+3', '1e+20', 'NaN'].map(negate), ['-1', '2.50', '-0', '-3', '-1e+20', 'NaN']);
  });
});

describe('mistakes integrators make, each with file:line:column', () => {
  test('a filter that is not true/false, and one that reads a missing column', () => {
    assert.deepEqual(problems([['a.yml', `${DOC_BASE}filter: total + 1\n`]]), [
      'mappings/a.yml:8:9: BL-M016 the filter gives numeric, not true or false. Write a condition, e.g. status = \'confirmed\', not cancelled, or amount > 0.',
    ]);
    const missing = problems([['a.yml', `${DOC_BASE}filter: stauts = 'x'\n`]]);
    assert.equal(missing.length, 1);
    assert.match(missing[0]!, /^mappings\/a\.yml:8:9: BL-M005 .*stauts.*Did you mean "status"/);
  });

  test('insert_only with on_delete: delete contradicts itself', () => {
    assert.deepEqual(problems([['a.yml', `${DOC_BASE}on_conflict: insert_only\non_delete: delete\n`]]), [
      'mappings/a.yml:9:12: BL-M017 "on_conflict: insert_only" never alters a row HQ holds, so it cannot go with "on_delete: delete". Remove "on_delete" (under insert_only, deletes at the store are ignored and counted), or use "on_conflict: upsert".',
    ]);
  });

  test('a soft-delete column that is not at HQ, or that reads what a delete does not carry', () => {
    const p = problems([['a.yml', `${DOC_BASE}on_delete:\n  soft:\n    deleted: true\n    gone_at: commit_time()\n    deleted_at: commit_time()\n`]]);
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^mappings\/a\.yml:11:5: BL-M006 unknown target column "gone_at"/);
    const q = problems([['a.yml', `${DOC_BASE}on_delete:\n  soft:\n    deleted: status = 'x'\n`]]);
    assert.equal(q.length, 1);
    assert.match(q[0]!, /^mappings\/a\.yml:10:14: BL-M010 soft-delete value "deleted" reads "status", which a delete of public\.doc does not carry/);
  });

  test('aggregate: a plain column that is not in the key, a sum of text, a sum into text, on_conflict', () => {
    const p = problems([
      [
        'a.yml',
        `source: item
target: h_daily
on_conflict: upsert
columns:
  store_code: store.code
  day: day
  product_id: product_id
  qty: qty
  amount: sum(label)
  label: sum(qty)
`,
      ],
    ]);
    assert.deepEqual(p, [
      'mappings/a.yml:3:14: BL-M017 "on_conflict" does not apply to an aggregate mapping: its rows are totals that every change adds to or takes from. Remove "on_conflict"; use "filter" to choose which rows count.',
      'mappings/a.yml:8:8: BL-M018 column "qty" of an aggregate mapping is neither a key column (store_code, day, product_id) nor sum(...)/count(). Write "qty: sum(qty)" to add it up, or add "qty" to the key to group by it.',
      'mappings/a.yml:9:15: BL-M018 sum needs a number, but its argument is text. Convert it first, e.g. sum(numeric(x)).',
      'mappings/a.yml:10:10: BL-M018 column "label" of public.h_daily is text; a sum needs a number column. Point the total at a numeric, integer or float column.',
    ]);
  });

  test('aggregate over a table without REPLICA IDENTITY FULL is BL-M019, and says install sets it', () => {
    const p = problems([['d.yml', DAILY]], 'default');
    assert.equal(p.length, 1);
    assert.match(p[0]!, /^mappings\/d\.yml:1:9: BL-M019 source table public\.item feeds an aggregate.*REPLICA IDENTITY DEFAULT.*branchline install/);
  });

  test('a table of totals written by a plain mapping too is BL-M018', () => {
    const plainToDaily = `source: item
target: h_daily
key: [store_code, day, product_id]
columns:
  store_code: store.code
  day: day
  product_id: product_id
  label: label
`;
    const p = problems([
      ['a.yml', DAILY],
      ['b.yml', plainToDaily],
    ]);
    assert.equal(p.length, 2, p.join('\n')); // also BL-M011: the same source and target twice
    assert.ok(p.some((x) => /^mappings\/b\.yml:2:9: BL-M018 this file writes rows into public\.h_daily, which mappings\/a\.yml keeps as totals/.test(x)), p.join('\n'));
  });
});
