import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { categorize } from '../src/catalog/pg-catalog.js';
import { BranchlineError, formatProblem } from '../src/core/errors.js';
import { parseMappingFile, validateMappings } from '../src/mapping/index.js';
import { tableInfoFromCatalog, type CatalogKeyRow } from '../connectors/mssql-trigger/catalog.js';
import { purgeBound } from '../connectors/mssql-trigger/purge.js';
import { ROWVERSION_CODEC, RowversionPosition } from '../connectors/mssql-trigger/rowversion-codec.js';
import { mssqlTypeMapping } from '../connectors/mssql-trigger/types.js';
import { hqCatalog } from './support/mapping-catalog.js';
import { TYPE_CASES } from './support/mssql-type-cases.js';
import { colRow } from './support/mssql-catalog-row.js';


const SALE_COLUMNS = [
  colRow(1, 'id', 'bigint', 8, 19, 0, { is_nullable: false, is_identity: true }),
  colRow(2, 'issued_at', 'datetime2', 8, 27, 7, { is_nullable: false }),
  colRow(3, 'customer_name', 'nvarchar', 200),
  colRow(4, 'total', 'decimal', 9, 12, 2, { is_nullable: false, has_default: true }),
  colRow(5, 'total_cents', 'bigint', 8, 19, 0, { is_computed: true }),
];
const SALE_KEYS: CatalogKeyRow[] = [
  { index_id: 1, is_primary_key: true, column_name: 'id' },
  { index_id: 3, is_primary_key: false, column_name: 'issued_at' },
  { index_id: 3, is_primary_key: false, column_name: 'customer_name' },
];

describe('mssql-trigger catalog: SQL Server rows to TableInfo', () => {
  test('columns get PostgreSQL-equivalent types; keys in order; the whole old row is logged', () => {
    const info = tableInfoFromCatalog(SALE_COLUMNS, SALE_KEYS)!;
    assert.deepEqual(info.id, { schema: 'dbo', table: 'sale' });
    assert.deepEqual(
      info.columns.map((c) => [c.name, c.type, c.typeName, c.category, c.notNull, c.hasDefault, c.generated]),
      [
        ['id', 'bigint', 'int8', 'integer', true, true, true],
        ['issued_at', 'timestamp(6) without time zone', 'timestamp', 'timestamp', true, false, false],
        ['customer_name', 'character varying(100)', 'varchar', 'text', false, false, false],
        ['total', 'numeric(12,2)', 'numeric', 'numeric', true, true, false],
        ['total_cents', 'bigint', 'int8', 'integer', false, true, true],
      ],
    );
    assert.deepEqual(info.primaryKey, ['id']);
    assert.deepEqual(info.uniqueKeys, [['id'], ['issued_at', 'customer_name']]);
    assert.equal(info.replicaIdentity, 'full');
    assert.deepEqual(info.identityColumns, ['id', 'issued_at', 'customer_name', 'total', 'total_cents']);
    assert.equal(info.mssqlTypes.get('issued_at')?.scale, 7);
  });

  test('no primary key: null; no columns: no table', () => {
    assert.equal(tableInfoFromCatalog(SALE_COLUMNS, [])!.primaryKey, null);
    assert.equal(tableInfoFromCatalog([], []), null);
  });

  test('a column of a type it cannot capture is BL-D007 naming table, column and type', () => {
    assert.throws(
      () => tableInfoFromCatalog([...SALE_COLUMNS, colRow(6, 'shape', 'geography', -1)], SALE_KEYS),
      (e: unknown) => e instanceof BranchlineError && e.code === 'BL-D007' && e.problem.message.startsWith('column shape of dbo.sale at the SQL Server store has type geography'),
    );
  });

  test('every mapped category is the one pg-catalog gives that PostgreSQL type', () => {
    for (const c of TYPE_CASES) {
      const m = mssqlTypeMapping(c.type)!;
      assert.equal(m.category, categorize(m.pgTypeName, ''), c.label);
    }
  });

  test('the mapping validator checks a mapping of a SQL Server table unchanged', () => {
    const file = (total: string) =>
      parseMappingFile(
        'mappings/sale.yml',
        `source: dbo.sale\ntarget: store_sale\ncolumns:\n  store_code: "'S001'"\n  sale_id: id\n  issued_at: issued_at\n  customer_name: upper(trim(customer_name))\n  total: ${total}\n  origin: "'store'"\n`,
      ).file!;
    const source = new Map([['dbo.sale', tableInfoFromCatalog(SALE_COLUMNS, SALE_KEYS)!]]);
    assert.deepEqual(validateMappings([file('total')], { source, target: hqCatalog() }).map(formatProblem), []);
    const problems = validateMappings([file('customer_name')], { source, target: hqCatalog() }).map(formatProblem);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, /BL-M008/);
    const unknown = validateMappings([file('totl')], { source, target: hqCatalog() }).map(formatProblem);
    assert.match(unknown.join('\n'), /BL-M005/);
  });
});

describe('mssql-trigger positions (mssql-rowversion)', () => {
  test('16 lower-case hex digits, the bytes of binary(8) in order', () => {
    const p = ROWVERSION_CODEC.parse('00000000000007d1');
    assert.equal(p.bound, 2001n);
    assert.equal(ROWVERSION_CODEC.format(p), '00000000000007d1');
    assert.equal(p.toBuffer().toString('hex'), '00000000000007d1');
    assert.equal(RowversionPosition.fromBuffer(Buffer.from('00000000000007d1', 'hex')).bound, 2001n);
    const max = RowversionPosition.fromBuffer(Buffer.from('ffffffffffffffff', 'hex'));
    assert.equal(max.bound, (1n << 64n) - 1n, 'the top bit is not a sign');
    assert.equal(ROWVERSION_CODEC.format(max), 'ffffffffffffffff');
    assert.equal(ROWVERSION_CODEC.format(RowversionPosition.of(0n)), '0000000000000000');
    assert.equal(ROWVERSION_CODEC.kind, 'mssql-rowversion');
  });

  test('compares as unsigned numbers, beyond 2^53', () => {
    const a = RowversionPosition.of((1n << 53n) + 1n);
    const b = RowversionPosition.of((1n << 53n) + 2n);
    assert.equal(ROWVERSION_CODEC.compare(a, b), -1);
    assert.equal(ROWVERSION_CODEC.compare(b, a), 1);
    assert.equal(ROWVERSION_CODEC.compare(a, RowversionPosition.of((1n << 53n) + 1n)), 0);
    assert.equal(ROWVERSION_CODEC.compare(RowversionPosition.parse('8000000000000000'), RowversionPosition.parse('7fffffffffffffff')), 1);
  });

  test('anything else is refused with a clear message', () => {
    for (const bad of ['', '7d1', '00000000000007D1', '0x00000000000007d1', '00000000000007d1 ', '000000000000007d1', 'zzzzzzzzzzzzzzzz', '1234']) {
      assert.throws(() => ROWVERSION_CODEC.parse(bad), /not an mssql-trigger position: .* 16 lower-case hex digits/, JSON.stringify(bad));
    }
    assert.throws(() => RowversionPosition.fromBuffer(Buffer.alloc(7)), /8 bytes/);
    assert.throws(() => RowversionPosition.of(-1n), /8 bytes unsigned/);
    assert.throws(() => RowversionPosition.of(1n << 64n), /8 bytes unsigned/);
  });
});

describe('mssql-trigger purge bound', () => {
  const rv = (n: number) => RowversionPosition.of(BigInt(n));
  test('below what every reader applied, or the retention when that is further; never above the horizon', () => {
    assert.equal(purgeBound({ horizon: rv(100), minReader: rv(40), retentionBound: rv(10), purgedBelow: rv(0) })?.bound, 40n, 'readers');
    assert.equal(purgeBound({ horizon: rv(100), minReader: rv(40), retentionBound: rv(70), purgedBelow: rv(0) })?.bound, 70n, 'a reader away longer than the retention');
    assert.equal(purgeBound({ horizon: rv(100), minReader: null, retentionBound: rv(70), purgedBelow: rv(0) })?.bound, 100n, 'no readers: up to the horizon');
    assert.equal(purgeBound({ horizon: rv(100), minReader: rv(40), retentionBound: null, purgedBelow: rv(0) })?.bound, 100n, 'nothing within the retention');
    assert.equal(purgeBound({ horizon: rv(30), minReader: rv(40), retentionBound: rv(70), purgedBelow: rv(0) })?.bound, 30n, 'an open transaction holds it');
    assert.equal(purgeBound({ horizon: rv(100), minReader: rv(40), retentionBound: rv(10), purgedBelow: rv(40) }), null, 'not past the last purge');
  });
});
