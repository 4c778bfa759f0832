import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CopyText, escaped } from '../src/apply/copy-rows.js';
import { planChunk, type PlanContext } from '../src/apply/plan.js';
import { TableStatements } from '../src/apply/statements.js';
import type { TableInfo } from '../src/catalog/pg-catalog.js';
import { TupleUpsert, type TargetOp, type TargetTable } from '../src/core/target-op.js';
import { TupleArena, TupleRow } from '../src/core/tuple-row.js';
import { col, table } from './support/mapping-catalog.js';
import { tupleData } from './support/pgoutput.js';

/**
 * The byte path's pieces without a database: TupleRow over pgoutput's
 * TupleData, the COPY text it becomes, and when the plan chooses COPY. What
 * the server makes of the text is checked by copy-apply.pg.test.ts.
 */


const COLUMNS = ['id', 'body', 'note'];

describe('TupleRow', () => {
  test('values by index, the row object, spans; copied out of the message buffer', () => {
    const msg = Buffer.concat([Buffer.from('XYZ'), tupleData(['7', 'café 😀\t\\', null])]);
    const arena = new TupleArena(64);
    const row = TupleRow.copy(msg, 3, COLUMNS, arena)!;
    msg.fill(0); // pg's parser reuses its buffer: the row must not depend on it
    assert.equal(row.value(0), '7');
    assert.equal(row.value(1), 'café 😀\t\\');
    assert.equal(row.value(2), null);
    assert.deepEqual(row.row(), { id: '7', body: 'café 😀\t\\', note: null });
    assert.equal(row.row(), row.row(), 'built once');
    const spans = new Int32Array(6);
    row.spans(spans);
    assert.equal(spans[3], Buffer.byteLength('café 😀\t\\'));
    assert.equal(spans[5], -1, 'NULL');
  });

  test('refuses an unchanged TOAST value, a wrong column count and a cut tuple', () => {
    const arena = new TupleArena();
    assert.equal(TupleRow.copy(tupleData(['1', 'UNCHANGED', null]), 0, COLUMNS, arena), null);
    assert.equal(TupleRow.copy(tupleData(['1', 'x']), 0, COLUMNS, arena), null);
    const whole = tupleData(['1', 'xyz', 'w']);
    assert.equal(TupleRow.copy(whole.subarray(0, whole.length - 1), 0, COLUMNS, arena), null);
  });

  test('the arena starts a new slab when a tuple does not fit, and a big tuple gets its own', () => {
    const arena = new TupleArena(32);
    const a = TupleRow.copy(tupleData(['1', 'aaaa', null]), 0, COLUMNS, arena)!;
    const b = TupleRow.copy(tupleData(['2', 'bbbbbbbbbbbb', null]), 0, COLUMNS, arena)!;
    const big = TupleRow.copy(tupleData(['3', 'c'.repeat(100), null]), 0, COLUMNS, arena)!;
    assert.notEqual(a.buf, b.buf);
    assert.notEqual(b.buf, big.buf);
    assert.deepEqual([a.value(1), b.value(1), big.value(1)], ['aaaa', 'bbbbbbbbbbbb', 'c'.repeat(100)]);
  });
});

describe('CopyText', () => {
  test('string rows: tabs between values, NULL as \\N, backslash, tab, newline and CR escaped', () => {
    const out = new CopyText(4);
    out.row(['a', null, 'b\\c\td\ne\rf', '', undefined, 'Ação']);
    out.row(['\\N', '\\.']);
    assert.equal(out.bytes().toString('utf8'), 'a\t\\N\tb\\\\c\\td\\ne\\rf\t\t\\N\tAção\n\\\\N\t\\\\.\n');
  });

  test('tuple rows: columns in the plan\'s order, constants as given, the same escapes as strings', () => {
    const row = TupleRow.copy(tupleData(['7', 'x\ty\\z\r\n', null]), 0, COLUMNS, new TupleArena())!;
    const fromBytes = new CopyText(8);
    fromBytes.tupleRow(row, Int32Array.from([-1, 0, 2, 1]), [escaped('S\t1'), null, null, null]);
    const fromStrings = new CopyText(8);
    fromStrings.row(['S\t1', '7', null, 'x\ty\\z\r\n']);
    assert.equal(fromBytes.bytes().toString('utf8'), fromStrings.bytes().toString('utf8'));
    assert.equal(fromBytes.bytes().toString('utf8'), 'S\\t1\t7\t\\N\tx\\ty\\\\z\\r\\n\n');
  });
});

describe('the plan chooses COPY', () => {
  const NOTE: TargetTable = { schema: 'public', table: 'h_note', key: ['store_code', 'id'] };
  const info = (rowSecurity: boolean): TableInfo => ({
    ...table('h_note', [col('store_code', 'text', { notNull: true }), col('id', 'integer', { notNull: true }), col('body', 'text'), col('note', 'text')]),
    ...(rowSecurity ? { rowSecurity: true } : {}),
  });
  const ctx = (copyMinRows: number | undefined, rowSecurity = false): PlanContext => {
    const s = new TableStatements(NOTE, info(rowSecurity));
    return { statements: () => s, rank: () => 0, ...(copyMinRows === undefined ? {} : { copyMinRows }) };
  };
  const columns = ['store_code', 'id', 'body', 'note'];
  const plan = { sources: Int32Array.from([-1, 0, 1, 2]), constants: ['S1', null, null, null], escaped: [escaped('S1'), null, null, null] };
  const inserts = (n: number): TargetOp[] =>
    Array.from({ length: n }, (_, i) => new TupleUpsert(NOTE, ['S1', String(i + 1)], columns, TupleRow.copy(tupleData([String(i + 1), `b${i}`, null]), 0, COLUMNS, new TupleArena())!, plan));

  test('at copy_min_rows inserted rows and more: one COPY with every row, the updated one from its row object', () => {
    const ops = inserts(3);
    ops.push({ kind: 'upsert', target: NOTE, key: ['S1', '2'], row: { store_code: 'S1', id: '2', body: 'changed', note: 'n' }, columns });
    const [st, ...rest] = planChunk(ops, 'grouped', ctx(3)).statements;
    assert.equal(rest.length, 0);
    assert.equal(st!.sql, 'COPY "public"."h_note" ("store_code", "id", "body", "note") FROM STDIN');
    assert.equal(st!.rows, 3);
    assert.equal(st!.copy!.toString('utf8'), 'S1\t1\tb0\t\\N\nS1\t2\tchanged\tn\nS1\t3\tb2\t\\N\n');
  });

  test('below it, without it, with row-level security at HQ and in the exact plan: an INSERT of arrays', () => {
    for (const [what, c, mode] of [
      ['2 rows, copy_min_rows 3', ctx(3), 'grouped'],
      ['no copy_min_rows', ctx(undefined), 'grouped'],
      ['row-level security', ctx(1, true), 'grouped'],
      ['exact plan', ctx(1), 'ordered'],
    ] as const) {
      const sts = planChunk(inserts(what.startsWith('2') ? 2 : 5), mode, c).statements;
      assert.ok(sts.length > 0 && sts.every((s) => s.copy === undefined && s.sql.startsWith('INSERT')), `${what}: ${sts.map((s) => s.sql).join('; ')}`);
    }
  });

  test('a TupleUpsert\'s row is built from its bytes, and a re-insert after a delete is an upsert with that row', () => {
    const [op] = inserts(1) as TupleUpsert[];
    assert.deepEqual(op!.row, { store_code: 'S1', id: '1', body: 'b0', note: null });
    const sts = planChunk([{ kind: 'delete', target: NOTE, key: ['S1', '1'] }, op!], 'grouped', ctx(1)).statements;
    assert.equal(sts.length, 1);
    assert.match(sts[0]!.sql, /^INSERT .* ON CONFLICT/);
    assert.equal(sts[0]!.params[2], '{b0}');
  });
});
