import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RowValues, TableId } from '../src/core/change.js';
import { BranchlineError, formatProblem, ProblemsError } from '../src/core/errors.js';
import type { TargetOp } from '../src/core/target-op.js';
import { compileMappings, orderTargets, parseMappingFile, type LoadedMappingFile, type MappingSet } from '../src/mapping/index.js';
import { catalog, col, hqCatalog, storeCatalog, table } from './support/mapping-catalog.js';

const CTX = { storeCode: 'S001' };
const SALE_T: TableId = { schema: 'public', table: 'sale' };
const ITEM_T: TableId = { schema: 'public', table: 'sale_item' };

function load(name: string, text: string): LoadedMappingFile {
  const r = parseMappingFile(`mappings/${name}`, text);
  assert.deepEqual(r.problems.map(formatProblem), []);
  assert.ok(r.file);
  return r.file;
}

const SALE = `source: sale
target: store_sale
columns:
  store_code: store.code
  sale_id: id
  number: number
  issued_at: issued_at
  customer_name: upper(trim(customer_name))
  total: total
  confirmed: "'yes'"
  issued_on: date(issued_at)
  origin: "case when qty > 0 then 'store' else 'return' end"
`;

const ITEMS = `source: sale_item
target: store_sale_item
columns:
  store_code: store.code
  sale_id: sale_id
  line_no: line_no
  product_code: product_code
  qty: qty
  price: price
  line_total: qty * price
`;

const STORE = `source: sale
target: store
columns:
  code: store.code
  name: "'Store ' || store.code"
`;

function compile(...files: [string, string][]): MappingSet {
  return compileMappings(
    files.map(([n, t]) => load(n, t)),
    { source: storeCatalog(), target: hqCatalog() },
  );
}

function only(set: MappingSet, source: TableId) {
  const ms = set.forSource(source);
  assert.equal(ms.length, 1);
  return ms[0]!;
}

/** Ops without the shared target object, for readable assertions. */
function plain(ops: TargetOp[]): unknown[] {
  return ops.map((op) => {
    const { target, ...rest } = op;
    return { table: `${target.schema}.${target.table}`, ...rest };
  });
}

const SALE_ROW: RowValues = {
  id: '1001',
  number: '17',
  issued_at: '2024-05-01 13:45:00.123456',
  customer_name: '  ana maria ',
  total: '12.50',
  qty: '2',
  price: '6.250',
  notes: null,
  confirmed: 't',
  due_on: null,
};

function error(fn: () => unknown): BranchlineError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof BranchlineError, String(e));
    return e;
  }
  assert.fail('did not throw');
}

describe('insert, update, delete', () => {
  const m = only(compile(['sale.yml', SALE]), SALE_T);

  test('the compiled mapping describes itself', () => {
    assert.equal(m.file, 'mappings/sale.yml');
    assert.deepEqual(m.source, SALE_T);
    assert.deepEqual(m.target, { schema: 'public', table: 'store_sale', key: ['store_code', 'sale_id'] });
    assert.deepEqual(m.columns, ['store_code', 'sale_id', 'number', 'issued_at', 'customer_name', 'total', 'confirmed', 'issued_on', 'origin']);
  });

  test('insert is one upsert of every mapped column, keyed by the target key, marked fresh (new at HQ)', () => {
    assert.deepEqual(plain(m.map({ op: 'insert', table: SALE_T, after: SALE_ROW }, CTX)), [
      {
        table: 'public.store_sale',
        kind: 'upsert',
        key: ['S001', '1001'],
        row: {
          store_code: 'S001',
          sale_id: '1001',
          number: '17',
          issued_at: '2024-05-01 13:45:00.123456',
          customer_name: 'ANA MARIA',
          total: '12.50',
          confirmed: 't',
          issued_on: '2024-05-01',
          origin: 'store',
        },
        columns: ['store_code', 'sale_id', 'number', 'issued_at', 'customer_name', 'total', 'confirmed', 'issued_on', 'origin'],
        fresh: true,
      },
    ]);
  });

  test('complete rows share the mapping\'s column list; a row missing a value lists what it has', () => {
    const [whole] = m.map({ op: 'insert', table: SALE_T, after: SALE_ROW }, CTX) as unknown as [{ columns?: readonly string[] }];
    assert.equal(whole.columns, m.columns, 'the same array, so a sink groups rows by identity');
    const [partial] = m.map({ op: 'update', table: SALE_T, after: { ...SALE_ROW, customer_name: undefined } }, CTX) as unknown as [{ columns?: readonly string[]; row: object }];
    assert.notEqual(partial.columns, m.columns);
    assert.deepEqual(partial.columns, Object.keys(partial.row));
    assert.ok(!partial.columns!.includes('customer_name'));
  });

  test('update without an old key is an upsert', () => {
    const ops = m.map({ op: 'update', table: SALE_T, after: { ...SALE_ROW, qty: '-1' } }, CTX);
    assert.deepEqual(plain(ops).map((o) => (o as { kind: string }).kind), ['upsert']);
    assert.equal((ops[0] as { row: Record<string, string> }).row['origin'], 'return');
  });

  test('update with an unchanged old key is an upsert', () => {
    const ops = m.map({ op: 'update', table: SALE_T, before: { id: '1001' }, after: SALE_ROW }, CTX);
    assert.deepEqual(
      ops.map((o) => [o.kind, 'key' in o ? o.key : null]),
      [['upsert', ['S001', '1001']]],
    );
  });

  test('update that changes the key deletes the old target row, then upserts the new one', () => {
    const ops = m.map({ op: 'update', table: SALE_T, before: { id: '1001' }, after: { ...SALE_ROW, id: '2002' } }, CTX);
    assert.deepEqual(
      ops.map((o) => [o.kind, 'key' in o ? o.key : null]),
      [
        ['delete', ['S001', '1001']],
        ['upsert', ['S001', '2002']],
      ],
    );
  });

  test('delete carries only the identity, and the key is computed from it', () => {
    assert.deepEqual(plain(m.map({ op: 'delete', table: SALE_T, before: { id: '1001' } }, CTX)), [
      { table: 'public.store_sale', kind: 'delete', key: ['S001', '1001'] },
    ]);
  });

  test('an unchanged TOAST value is left out of the row, with every expression that reads it', () => {
    const after = { ...SALE_ROW, customer_name: undefined, issued_at: undefined };
    const ops = m.map({ op: 'update', table: SALE_T, after }, CTX);
    const row = (ops[0] as { row: Record<string, string | null> }).row;
    assert.deepEqual(Object.keys(row), ['store_code', 'sale_id', 'number', 'total', 'confirmed', 'origin']);
    assert.equal('customer_name' in row, false);
  });

  test('NULL is written as NULL', () => {
    const ops = m.map({ op: 'insert', table: SALE_T, after: { ...SALE_ROW, customer_name: null } }, CTX);
    assert.equal((ops[0] as { row: Record<string, string | null> }).row['customer_name'], null);
  });

  test('a key that evaluates to null is BL-M015 naming the file, the column and the table', () => {
    const e = error(() => m.map({ op: 'insert', table: SALE_T, after: { ...SALE_ROW, id: null } }, CTX));
    assert.equal(e.code, 'BL-M015');
    assert.equal(
      e.message,
      'mappings/sale.yml:5:12: BL-M015 target key column "sale_id" of public.store_sale is null for a row of public.sale. Every key column needs a value: fix the row at the store, or make the expression give a value (e.g. coalesce(x, ...)).',
    );
    assert.equal(e.stack?.includes('BL-M015'), true);
  });

  test('a delete whose old row lacks the key is BL-M015', () => {
    const e = error(() => m.map({ op: 'delete', table: SALE_T, before: { number: '17' } }, CTX));
    assert.equal(
      e.message,
      'mappings/sale.yml:5:12: BL-M015 target key column "sale_id" of public.store_sale cannot be computed for the old row of a delete of public.sale: the change does not carry id. Key columns may read only the identity columns of public.sale (what a delete carries), store.code and constants.',
    );
  });

  test('truncate deletes this store\'s rows', () => {
    assert.deepEqual(plain(m.mapTruncate(CTX)), [{ table: 'public.store_sale', kind: 'delete-where', where: { store_code: 'S001' } }]);
  });
});

describe('REPLICA IDENTITY FULL', () => {
  const m = only(compile(['items.yml', ITEMS]), ITEM_T);
  const before: RowValues = { sale_id: '1001', line_no: '1', product_code: 'P-1', qty: '1.500', price: '2.50' };

  test('unchanged values are filled from the old row', () => {
    const after = { sale_id: '1001', line_no: '1', product_code: undefined, qty: '3.000', price: undefined };
    assert.deepEqual(plain(m.map({ op: 'update', table: ITEM_T, before, after }, CTX)), [
      {
        table: 'public.store_sale_item',
        kind: 'upsert',
        key: ['S001', '1001', '1'],
        row: {
          store_code: 'S001',
          sale_id: '1001',
          line_no: '1',
          product_code: 'P-1',
          qty: '3.000',
          price: '2.50',
          line_total: '7.50000',
        },
        columns: ['store_code', 'sale_id', 'line_no', 'product_code', 'qty', 'price', 'line_total'],
      },
    ]);
  });

  test('a key change compares the old and new target keys', () => {
    const ops = m.map({ op: 'update', table: ITEM_T, before, after: { ...before, line_no: '2' } }, CTX);
    assert.deepEqual(
      ops.map((o) => [o.kind, 'key' in o ? o.key : null]),
      [
        ['delete', ['S001', '1001', '1']],
        ['upsert', ['S001', '1001', '2']],
      ],
    );
  });

  test('products are exact decimals', () => {
    const ops = m.map({ op: 'insert', table: ITEM_T, after: { ...before, qty: '0.1', price: '0.30' } }, CTX);
    assert.equal((ops[0] as { row: Record<string, string> }).row['line_total'], '0.030');
  });
});

describe('row errors', () => {
  test('an expression that fails on a row is BL-M015 with a sentence and a hint', () => {
    const set = compile([
      'sale.yml',
      SALE.replace('  total: total\n', '  total: total / qty\n'),
    ]);
    const m = only(set, SALE_T);
    const e = error(() => m.map({ op: 'insert', table: SALE_T, after: { ...SALE_ROW, qty: '0' } }, CTX));
    assert.equal(
      e.message,
      'mappings/sale.yml:9:10: BL-M015 the expression for "total" failed on a row of public.sale: division by zero. Guard the divisor: x / nullif(y, 0) gives null instead of failing.',
    );
    assert.equal(e.hint, 'Guard the divisor: x / nullif(y, 0) gives null instead of failing.');
  });

  test('truncate without a store-scoped key column is BL-M015', () => {
    const text = 'source: sale\ntarget: sale_copy\nkey: [id]\ncolumns:\n  id: id\n  total: total\n';
    const target = catalog(...hqCatalog().values(), table('sale_copy', [col('id', 'bigint'), col('total', 'numeric(12,2)')], { primaryKey: ['id'] }));
    const m = compileMappings([load('copy.yml', text)], { source: storeCatalog(), target }).mappings[0]!;
    const e = error(() => m.mapTruncate(CTX));
    assert.equal(
      e.message,
      'mappings/copy.yml:3:6: BL-M015 a TRUNCATE of public.sale cannot be applied to public.sale_copy: no key column tells this store\'s rows apart from the others. Add a key column mapped from store.code (e.g. "store_code: store.code" with key [store_code, ...]) so a truncate removes only this store\'s rows.',
    );
  });
});

describe('mapping sets', () => {
  test('targets are ordered parents first by HQ foreign keys; sources are listed once', () => {
    const set = compile(['1-items.yml', ITEMS], ['2-sale.yml', SALE], ['3-store.yml', STORE]);
    assert.deepEqual(
      set.targetOrder.map((t) => t.table),
      ['store', 'store_sale', 'store_sale_item'],
    );
    assert.deepEqual(set.sourceTables, [ITEM_T, SALE_T]);
    assert.deepEqual(
      set.forSource(SALE_T).map((m) => m.target.table),
      ['store_sale', 'store'],
    );
    assert.deepEqual(set.forSource({ schema: 'public', table: 'other' }), []);
    assert.equal(set.targetOrder[1], set.mappings[1]!.target, 'one TargetTable object per table');
  });

  test('a sale maps to two targets at once', () => {
    const set = compile(['2-sale.yml', SALE], ['3-store.yml', STORE]);
    const ops = set.forSource(SALE_T).flatMap((m) => m.map({ op: 'insert', table: SALE_T, after: SALE_ROW }, CTX));
    assert.deepEqual(
      ops.map((o) => [o.target.table, 'key' in o ? o.key : null]),
      [
        ['store_sale', ['S001', '1001']],
        ['store', ['S001']],
      ],
    );
    assert.deepEqual((ops[1] as { row: unknown }).row, { code: 'S001', name: 'Store S001' });
  });

  test('foreign-key cycles keep file order for their members', () => {
    const t = (name: string, refs: string[]) =>
      table(name, [col('id', 'integer')], {
        primaryKey: ['id'],
        foreignKeys: refs.map((r) => ({ columns: ['id'], references: r, referencedColumns: ['id'] })),
      });
    const hq = catalog(t('c', ['b']), t('a', ['b']), t('b', ['a']), t('d', []), t('e', ['e']));
    const targets = ['c', 'a', 'b', 'd', 'e', 'a'].map((name) => ({ schema: 'public', table: name, key: ['id'] }));
    assert.deepEqual(
      orderTargets(targets, hq).map((x) => x.table),
      ['d', 'e', 'a', 'b', 'c'],
    );
  });

  test('compiling invalid files throws every problem at once', () => {
    const bad = SALE.replace('trim(customer_name)', 'trim(custmer_name)').replace('total: total', 'total: totl');
    assert.throws(
      () => compile(['sale.yml', bad]),
      (e: unknown) => {
        assert.ok(e instanceof ProblemsError);
        assert.deepEqual(
          e.problems.map((p) => p.code),
          ['BL-M005', 'BL-M005'],
        );
        assert.equal(e.message.split('\n')[0], 'The mapping files have 2 problems.');
        return true;
      },
    );
  });

  test('without the store catalog, expressions compile with values typed at the row', () => {
    const set = compileMappings([load('items.yml', ITEMS)], { source: null, target: hqCatalog() });
    const ops = set.mappings[0]!.map(
      { op: 'insert', table: ITEM_T, after: { sale_id: '1', line_no: '1', product_code: 'P', qty: '2', price: '1.25' } },
      CTX,
    );
    assert.equal((ops[0] as { row: Record<string, string> }).row['line_total'], '2.50');
  });
});
