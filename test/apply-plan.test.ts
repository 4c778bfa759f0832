import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { planChunk, type PlanContext, type PlannedStatement } from '../src/apply/plan.js';
import { castType, TableStatements } from '../src/apply/statements.js';
import type { TableInfo } from '../src/catalog/pg-catalog.js';
import type { TargetOp, TargetTable } from '../src/core/target-op.js';
import { col, table } from './support/mapping-catalog.js';
import { parseTextArray } from './support/pg-array.js';

/**
 * How a chunk of target operations becomes SQL: the exact statements for
 * one table, how operations on one row collapse to their net effect, and
 * the order of statements across tables in both plans.
 */

const SALE: TargetTable = { schema: 'public', table: 'store_sale', key: ['store_code', 'sale_id'] };
const LINE: TargetTable = { schema: 'public', table: 'store_sale_line', key: ['store_code', 'sale_line_id'] };
const NOTE: TargetTable = { schema: 'public', table: 'store_note', key: ['store_code', 'note_id'] };
/** Names that need quoting: a schema with a space, a table with a double quote, a reserved word, mixed case. */
const ODD: TargetTable = { schema: 'Retail Ops', table: 'order"items', key: ['select'] };

const INFO: Record<string, TableInfo> = {
  'public.store_sale': table('store_sale', [
    col('hq_id', 'bigint', { notNull: true, hasDefault: true, generated: true }),
    col('store_code', 'text', { notNull: true }),
    col('sale_id', 'bigint', { notNull: true }),
    col('issued_at', 'timestamp with time zone', { notNull: true }),
    col('total', 'numeric(14,2)', { notNull: true }),
    col('notes', 'text'),
  ]),
  'public.store_sale_line': table('store_sale_line', [
    col('store_code', 'text', { notNull: true }),
    col('sale_line_id', 'bigint', { notNull: true }),
    col('sale_id', 'bigint', { notNull: true }),
    col('amount', 'numeric(14,2)', { notNull: true }),
  ]),
  'public.store_note': table('store_note', [col('store_code', 'text'), col('note_id', 'integer'), col('body', 'text')]),
  'Retail Ops.order"items': table('Retail Ops.order"items', [col('select', 'integer', { notNull: true }), col('Mixed Case', 'text'), col('we"ird', 'date')]),
};

/** Parents first: sale, then line; note is unrelated and last. */
const RANK: Record<string, number> = { 'public.store_sale': 0, 'public.store_sale_line': 1, 'public.store_note': 2 };

function context(): PlanContext {
  const cache = new Map<string, TableStatements>();
  return {
    statements(t) {
      const id = `${t.schema}.${t.table}`;
      let s = cache.get(id);
      if (!s) {
        s = new TableStatements(t, INFO[id]!);
        cache.set(id, s);
      }
      return s;
    },
    rank: (t) => RANK[`${t.schema}.${t.table}`] ?? Number.MAX_SAFE_INTEGER,
  };
}

/** The statements of a plan (most tests look at nothing else). */
const planStatements = (...args: Parameters<typeof planChunk>) => planChunk(...args).statements;

const statementsFor = (t: TargetTable) => new TableStatements(t, INFO[`${t.schema}.${t.table}`]!);

// Operations, written the way a mapping emits them.
function upsert(target: TargetTable, row: Record<string, string | null>): TargetOp {
  return { kind: 'upsert', target, key: target.key.map((k) => row[k]!), row };
}
function del(target: TargetTable, ...key: string[]): TargetOp {
  return { kind: 'delete', target, key };
}
const sale = (id: string, row: Record<string, string | null> = {}) => upsert(SALE, { store_code: 'S001', sale_id: id, ...row });
const line = (id: string, saleId: string, amount: string) => upsert(LINE, { store_code: 'S001', sale_line_id: id, sale_id: saleId, amount });

// The exact SQL each statement must be.
const UPSERT_SALE_ALL =
  'INSERT INTO "public"."store_sale" AS t ("store_code", "sale_id", "issued_at", "total", "notes") ' +
  'SELECT u."store_code"::text, u."sale_id"::bigint, u."issued_at"::timestamp with time zone, u."total"::numeric, u."notes"::text ' +
  'FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u("store_code", "sale_id", "issued_at", "total", "notes") ' +
  'ON CONFLICT ("store_code", "sale_id") DO UPDATE SET "issued_at" = EXCLUDED."issued_at", "total" = EXCLUDED."total", "notes" = EXCLUDED."notes" ' +
  'WHERE record_image_ne(ROW(t."issued_at", t."total", t."notes"), ROW(EXCLUDED."issued_at", EXCLUDED."total", EXCLUDED."notes"))';
const UPSERT_SALE_TOTAL =
  'INSERT INTO "public"."store_sale" AS t ("store_code", "sale_id", "total") ' +
  'SELECT u."store_code"::text, u."sale_id"::bigint, u."total"::numeric ' +
  'FROM unnest($1::text[], $2::text[], $3::text[]) AS u("store_code", "sale_id", "total") ' +
  'ON CONFLICT ("store_code", "sale_id") DO UPDATE SET "total" = EXCLUDED."total" WHERE record_image_ne(ROW(t."total"), ROW(EXCLUDED."total"))';
const UPSERT_SALE_KEY_ONLY =
  'INSERT INTO "public"."store_sale" AS t ("store_code", "sale_id") ' +
  'SELECT u."store_code"::text, u."sale_id"::bigint FROM unnest($1::text[], $2::text[]) AS u("store_code", "sale_id") ' +
  'ON CONFLICT ("store_code", "sale_id") DO NOTHING';
const UPSERT_LINE =
  'INSERT INTO "public"."store_sale_line" AS t ("store_code", "sale_line_id", "sale_id", "amount") ' +
  'SELECT u."store_code"::text, u."sale_line_id"::bigint, u."sale_id"::bigint, u."amount"::numeric ' +
  'FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u("store_code", "sale_line_id", "sale_id", "amount") ' +
  'ON CONFLICT ("store_code", "sale_line_id") DO UPDATE SET "sale_id" = EXCLUDED."sale_id", "amount" = EXCLUDED."amount" ' +
  'WHERE record_image_ne(ROW(t."sale_id", t."amount"), ROW(EXCLUDED."sale_id", EXCLUDED."amount"))';
const DELETE_SALE =
  'DELETE FROM "public"."store_sale" AS t USING unnest($1::text[], $2::text[]) AS u("store_code", "sale_id") ' +
  'WHERE t."store_code" = u."store_code"::text AND t."sale_id" = u."sale_id"::bigint';
const DELETE_LINE =
  'DELETE FROM "public"."store_sale_line" AS t USING unnest($1::text[], $2::text[]) AS u("store_code", "sale_line_id") ' +
  'WHERE t."store_code" = u."store_code"::text AND t."sale_line_id" = u."sale_line_id"::bigint';
const DELETE_WHERE_SALE = 'DELETE FROM "public"."store_sale" WHERE "store_code" = $1::text';
const DELETE_WHERE_LINE = 'DELETE FROM "public"."store_sale_line" WHERE "store_code" = $1::text';

/** A statement in a form that is easy to compare: which SQL, which parameters, how many rows. */
/** Array parameters read back into values (the sink sends text[] literals). */
function values(s: PlannedStatement): unknown[] {
  return s.kind === 'delete-where' ? s.params : s.params.map((p) => parseTextArray(p as string));
}

function brief(s: PlannedStatement): { sql: string; params: unknown[]; rows: number; kind: string; table: string } {
  return { sql: s.sql, params: values(s), rows: s.rows, kind: s.kind, table: `${s.table.schema}.${s.table.table}` };
}

describe('TableStatements: exact SQL', () => {
  test('upsert: unnest of one text[] per column, casts to the column types, a guard that compares stored images', () => {
    assert.equal(statementsFor(SALE).upsert(['store_code', 'sale_id', 'issued_at', 'total', 'notes']), UPSERT_SALE_ALL);
  });

  test('upsert with one non-key column compares that column without a row constructor', () => {
    assert.equal(statementsFor(SALE).upsert(['store_code', 'sale_id', 'total']), UPSERT_SALE_TOTAL);
  });

  test('upsert of key columns only does nothing on conflict', () => {
    assert.equal(statementsFor(SALE).upsert(['store_code', 'sale_id']), UPSERT_SALE_KEY_ONLY);
  });

  test('upsert follows the column order it is given (parameters in that order)', () => {
    assert.equal(
      statementsFor(SALE).upsert(['total', 'sale_id', 'store_code']),
      'INSERT INTO "public"."store_sale" AS t ("total", "sale_id", "store_code") ' +
        'SELECT u."total"::numeric, u."sale_id"::bigint, u."store_code"::text ' +
        'FROM unnest($1::text[], $2::text[], $3::text[]) AS u("total", "sale_id", "store_code") ' +
        'ON CONFLICT ("store_code", "sale_id") DO UPDATE SET "total" = EXCLUDED."total" WHERE record_image_ne(ROW(t."total"), ROW(EXCLUDED."total"))',
    );
  });

  test('the same column set gives the same statement text (cached), another set another text', () => {
    const s = statementsFor(SALE);
    const a = s.upsert(['store_code', 'sale_id', 'total']);
    assert.equal(s.upsert(['store_code', 'sale_id', 'total']), a);
    assert.notEqual(s.upsert(['store_code', 'sale_id', 'notes']), a);
    assert.equal(s.upsert(['store_code', 'sale_id', 'total']), UPSERT_SALE_TOTAL);
  });

  test('delete: unnest of the key columns, compared after casting to their types', () => {
    assert.equal(statementsFor(SALE).delete(), DELETE_SALE);
    assert.equal(statementsFor(LINE).delete(), DELETE_LINE);
  });

  test('delete-where: one typed parameter per column', () => {
    assert.equal(statementsFor(SALE).deleteWhere(['store_code']), DELETE_WHERE_SALE);
    assert.equal(
      statementsFor(SALE).deleteWhere(['store_code', 'issued_at']),
      'DELETE FROM "public"."store_sale" WHERE "store_code" = $1::text AND "issued_at" = $2::timestamp with time zone',
    );
  });

  test('identifiers are always quoted, embedded double quotes doubled', () => {
    const s = statementsFor(ODD);
    assert.equal(
      s.upsert(['select', 'Mixed Case', 'we"ird']),
      'INSERT INTO "Retail Ops"."order""items" AS t ("select", "Mixed Case", "we""ird") ' +
        'SELECT u."select"::integer, u."Mixed Case"::text, u."we""ird"::date ' +
        'FROM unnest($1::text[], $2::text[], $3::text[]) AS u("select", "Mixed Case", "we""ird") ' +
        'ON CONFLICT ("select") DO UPDATE SET "Mixed Case" = EXCLUDED."Mixed Case", "we""ird" = EXCLUDED."we""ird" ' +
        'WHERE record_image_ne(ROW(t."Mixed Case", t."we""ird"), ROW(EXCLUDED."Mixed Case", EXCLUDED."we""ird"))',
    );
    assert.equal(
      s.delete(),
      'DELETE FROM "Retail Ops"."order""items" AS t USING unnest($1::text[]) AS u("select") WHERE t."select" = u."select"::integer',
    );
    assert.equal(s.deleteWhere(['Mixed Case']), 'DELETE FROM "Retail Ops"."order""items" WHERE "Mixed Case" = $1::text');
  });

  test('a column the table does not have is an error naming it', () => {
    assert.throws(() => statementsFor(SALE).upsert(['store_code', 'sale_id', 'totl']), {
      message: 'column totl not in "public"."store_sale"',
    });
    // Casts name the base type: the column applies its modifier on write (castType).
    assert.equal(statementsFor(SALE).typeOf('total'), 'numeric');
  });

  test('casts drop the type modifier, so the column refuses a value too long instead of a cast cutting it', () => {
    assert.deepEqual(
      ['character varying(10)', 'character(3)', 'bit(4)', 'bit varying(8)', 'numeric(5,2)', 'numeric(12,3)[]', 'timestamp(3) with time zone', 'time(6) without time zone', 'interval(2)', 'text', 'integer[]', '"Odd(1)"', 'character(3)[]'].map(castType),
      ['character varying', 'bpchar', 'bit varying', 'bit varying', 'numeric', 'numeric[]', 'timestamp with time zone', 'time without time zone', 'interval', 'text', 'integer[]', '"Odd(1)"', 'bpchar[]'],
    );
  });
});

describe('planChunk: one row, several operations (collapse)', () => {
  for (const mode of ['grouped', 'ordered'] as const) {
    test(`${mode}: insert then update is one upsert with the later values`, () => {
      const plan = planStatements(
        [sale('1', { issued_at: '2024-05-01 10:00:00+00', total: '10.00', notes: null }), sale('1', { issued_at: '2024-05-01 10:00:00+00', total: '12.50', notes: 'fixed' })],
        mode,
        context(),
      );
      assert.deepEqual(plan.map(brief), [
        { sql: UPSERT_SALE_ALL, params: [['S001'], ['1'], ['2024-05-01 10:00:00+00'], ['12.50'], ['fixed']], rows: 1, kind: 'upsert', table: 'public.store_sale' },
      ]);
    });
  }

  test('upsert then delete is the delete alone', () => {
    const plan = planStatements([sale('1', { total: '1.00' }), sale('1', { total: '2.00' }), del(SALE, 'S001', '1')], 'grouped', context());
    assert.deepEqual(plan.map(brief), [{ sql: DELETE_SALE, params: [['S001'], ['1']], rows: 1, kind: 'delete', table: 'public.store_sale' }]);
  });

  test('delete then insert of one key is one upsert (no delete statement)', () => {
    const plan = planStatements([del(SALE, 'S001', '7'), sale('7', { total: '3.00' })], 'grouped', context());
    assert.deepEqual(plan.map(brief), [{ sql: UPSERT_SALE_TOTAL, params: [['S001'], ['7'], ['3.00']], rows: 1, kind: 'upsert', table: 'public.store_sale' }]);
  });

  test('insert, delete, insert again: the last insert alone, not merged with the first', () => {
    const plan = planStatements(
      [sale('7', { total: '1.00', notes: 'first life' }), del(SALE, 'S001', '7'), sale('7', { total: '2.00' })],
      'grouped',
      context(),
    );
    assert.deepEqual(plan.map(brief), [{ sql: UPSERT_SALE_TOTAL, params: [['S001'], ['7'], ['2.00']], rows: 1, kind: 'upsert', table: 'public.store_sale' }]);
  });

  test('an unchanged TOAST column absent from a later update is filled from the earlier operation', () => {
    const big = 'x'.repeat(10_000);
    const plan = planStatements(
      [
        sale('1', { issued_at: '2024-05-01 10:00:00+00', total: '10.00', notes: big }),
        // notes unchanged and TOASTed: the update does not carry it.
        sale('1', { issued_at: '2024-05-01 10:00:00+00', total: '11.00' }),
        sale('1', { total: '12.00' }),
      ],
      'grouped',
      context(),
    );
    assert.deepEqual(plan.map(brief), [
      { sql: UPSERT_SALE_ALL, params: [['S001'], ['1'], ['2024-05-01 10:00:00+00'], ['12.00'], [big]], rows: 1, kind: 'upsert', table: 'public.store_sale' },
    ]);
  });

  test('a column absent from every operation stays absent (it is left as it is at HQ, never written as NULL)', () => {
    const plan = planStatements([sale('1', { total: '10.00' }), sale('1', { total: '11.00' })], 'grouped', context());
    assert.equal(plan.length, 1);
    assert.equal(plan[0]!.sql, UPSERT_SALE_TOTAL);
    assert.deepEqual(values(plan[0]!), [['S001'], ['1'], ['11.00']]);
  });

  test('an explicit NULL in a later operation overwrites an earlier value', () => {
    const plan = planStatements([sale('1', { total: '10.00', notes: 'a' }), sale('1', { total: '10.00', notes: null })], 'grouped', context());
    assert.deepEqual(values(plan[0]!), [['S001'], ['1'], ['10.00'], [null]]);
  });

  test('rows with the same key in different tables, or the same id in another store, do not collapse', () => {
    const plan = planStatements(
      [sale('1', { total: '1.00' }), upsert(SALE, { store_code: 'S002', sale_id: '1', total: '2.00' }), line('1', '1', '1.00')],
      'grouped',
      context(),
    );
    assert.deepEqual(plan.map(brief), [
      { sql: UPSERT_SALE_TOTAL, params: [['S001', 'S002'], ['1', '1'], ['1.00', '2.00']], rows: 2, kind: 'upsert', table: 'public.store_sale' },
      { sql: UPSERT_LINE, params: [['S001'], ['1'], ['1'], ['1.00']], rows: 1, kind: 'upsert', table: 'public.store_sale_line' },
    ]);
  });
});

describe('planChunk: grouped plan order', () => {
  test('deletes children first, then upserts parents first, whatever the source order', () => {
    const plan = planStatements(
      [
        line('10', '1', '5.00'),
        del(SALE, 'S001', '2'),
        sale('1', { issued_at: '2024-05-01 10:00:00+00', total: '5.00', notes: null }),
        del(LINE, 'S001', '20'),
        del(LINE, 'S001', '21'),
        line('11', '1', '6.00'),
      ],
      'grouped',
      context(),
    );
    assert.deepEqual(plan.map(brief), [
      { sql: DELETE_LINE, params: [['S001', 'S001'], ['20', '21']], rows: 2, kind: 'delete', table: 'public.store_sale_line' },
      { sql: DELETE_SALE, params: [['S001'], ['2']], rows: 1, kind: 'delete', table: 'public.store_sale' },
      { sql: UPSERT_SALE_ALL, params: [['S001'], ['1'], ['2024-05-01 10:00:00+00'], ['5.00'], [null]], rows: 1, kind: 'upsert', table: 'public.store_sale' },
      { sql: UPSERT_LINE, params: [['S001', 'S001'], ['10', '11'], ['1', '1'], ['5.00', '6.00']], rows: 2, kind: 'upsert', table: 'public.store_sale_line' },
    ]);
  });

  test('three ranks: deletes 2, 1, 0 then upserts 0, 1, 2', () => {
    const note = (id: string) => upsert(NOTE, { store_code: 'S001', note_id: id, body: 'b' });
    const plan = planStatements(
      [note('1'), del(NOTE, 'S001', '9'), line('1', '1', '1.00'), del(SALE, 'S001', '9'), del(LINE, 'S001', '9'), sale('1', { total: '1.00' })],
      'grouped',
      context(),
    );
    assert.deepEqual(
      plan.map((s) => `${s.kind} ${s.table.table}`),
      ['delete store_note', 'delete store_sale_line', 'delete store_sale', 'upsert store_sale', 'upsert store_sale_line', 'upsert store_note'],
    );
  });

  test('one upsert statement per column set of a table, in first-seen order', () => {
    const plan = planStatements([sale('1', { total: '1.00' }), sale('2', { notes: 'n' }), sale('3', { total: '3.00' })], 'grouped', context());
    assert.deepEqual(
      plan.map((s) => [s.rows, values(s)]),
      [
        [2, [['S001', 'S001'], ['1', '3'], ['1.00', '3.00']]],
        [1, [['S001'], ['2'], ['n']]],
      ],
    );
    assert.equal(plan[0]!.sql, UPSERT_SALE_TOTAL);
    assert.equal(plan[1]!.sql, statementsFor(SALE).upsert(['store_code', 'sale_id', 'notes']));
  });

  test('parameters are one text array per column, SQL NULL as null, values untouched (no numbers)', () => {
    const plan = planStatements(
      [
        sale('9007199254740993', { issued_at: '2024-01-01 00:00:00+00', total: '12345678901234.56', notes: null }),
        sale('2', { issued_at: '2024-01-02 00:00:00+00', total: '0.10', notes: "it's \"quoted\", {braces}" }),
      ],
      'grouped',
      context(),
    );
    assert.equal(plan.length, 1);
    assert.deepEqual(values(plan[0]!), [
      ['S001', 'S001'],
      ['9007199254740993', '2'],
      ['2024-01-01 00:00:00+00', '2024-01-02 00:00:00+00'],
      ['12345678901234.56', '0.10'],
      [null, "it's \"quoted\", {braces}"],
    ]);
    for (const p of values(plan[0]!) as unknown[][]) for (const v of p) assert.ok(v === null || typeof v === 'string');
  });

  test('an empty chunk plans nothing', () => {
    assert.deepEqual(planStatements([], 'grouped', context()), []);
    assert.deepEqual(planStatements([], 'ordered', context()), []);
  });
});

describe('planChunk: ordered plan', () => {
  test('runs of one table and one kind, in source order across tables', () => {
    const plan = planStatements(
      [
        line('10', '1', '5.00'),
        line('11', '1', '6.00'),
        sale('1', { total: '11.00' }),
        del(LINE, 'S001', '10'),
        del(LINE, 'S001', '12'),
        sale('2', { total: '1.00' }),
        sale('3', { total: '2.00' }),
        line('11', '1', '7.00'),
      ],
      'ordered',
      context(),
    );
    assert.deepEqual(plan.map(brief), [
      { sql: UPSERT_LINE, params: [['S001', 'S001'], ['10', '11'], ['1', '1'], ['5.00', '6.00']], rows: 2, kind: 'upsert', table: 'public.store_sale_line' },
      { sql: UPSERT_SALE_TOTAL, params: [['S001'], ['1'], ['11.00']], rows: 1, kind: 'upsert', table: 'public.store_sale' },
      { sql: DELETE_LINE, params: [['S001', 'S001'], ['10', '12']], rows: 2, kind: 'delete', table: 'public.store_sale_line' },
      { sql: UPSERT_SALE_TOTAL, params: [['S001', 'S001'], ['2', '3'], ['1.00', '2.00']], rows: 2, kind: 'upsert', table: 'public.store_sale' },
      { sql: UPSERT_LINE, params: [['S001'], ['11'], ['1'], ['7.00']], rows: 1, kind: 'upsert', table: 'public.store_sale_line' },
    ]);
  });

  test('a delete and a re-insert of one key stay two statements, in order (a unique value is freed before it is taken)', () => {
    const plan = planStatements([sale('1', { total: '1.00' }), del(SALE, 'S001', '1'), sale('1', { total: '2.00' })], 'ordered', context());
    assert.deepEqual(plan.map(brief), [
      { sql: UPSERT_SALE_TOTAL, params: [['S001'], ['1'], ['1.00']], rows: 1, kind: 'upsert', table: 'public.store_sale' },
      { sql: DELETE_SALE, params: [['S001'], ['1']], rows: 1, kind: 'delete', table: 'public.store_sale' },
      { sql: UPSERT_SALE_TOTAL, params: [['S001'], ['1'], ['2.00']], rows: 1, kind: 'upsert', table: 'public.store_sale' },
    ]);
  });

  test('a child before its parent in the source stays before it (no reordering by rank)', () => {
    const plan = planStatements([del(LINE, 'S001', '1'), del(SALE, 'S001', '1'), sale('2', { total: '1.00' }), line('2', '2', '1.00')], 'ordered', context());
    assert.deepEqual(
      plan.map((s) => `${s.kind} ${s.table.table}`),
      ['delete store_sale_line', 'delete store_sale', 'upsert store_sale', 'upsert store_sale_line'],
    );
    const reversed = planStatements([line('2', '2', '1.00'), sale('2', { total: '1.00' })], 'ordered', context());
    assert.deepEqual(
      reversed.map((s) => `${s.kind} ${s.table.table}`),
      ['upsert store_sale_line', 'upsert store_sale'],
    );
  });
});

describe('planChunk: a delete-where is a barrier', () => {
  const truncateSales: TargetOp = { kind: 'delete-where', target: SALE, where: { store_code: 'S001' } };
  const truncateLines: TargetOp = { kind: 'delete-where', target: LINE, where: { store_code: 'S001' } };

  for (const mode of ['grouped', 'ordered'] as const) {
    test(`${mode}: what came before runs before it, what came after runs after it, nothing collapses across it`, () => {
      const plan = planStatements([sale('1', { total: '1.00' }), truncateSales, sale('1', { total: '2.00' }), sale('2', { total: '3.00' })], mode, context());
      assert.deepEqual(plan.map(brief), [
        { sql: UPSERT_SALE_TOTAL, params: [['S001'], ['1'], ['1.00']], rows: 1, kind: 'upsert', table: 'public.store_sale' },
        { sql: DELETE_WHERE_SALE, params: ['S001'], rows: 1, kind: 'delete-where', table: 'public.store_sale' },
        { sql: UPSERT_SALE_TOTAL, params: [['S001', 'S001'], ['1', '2'], ['2.00', '3.00']], rows: 2, kind: 'upsert', table: 'public.store_sale' },
      ]);
    });
  }

  test('grouped: a delete before the barrier is not moved after it, and a delete after it is not moved before it', () => {
    const plan = planStatements([del(LINE, 'S001', '5'), truncateLines, truncateSales, line('6', '1', '1.00'), sale('1', { total: '1.00' }), del(SALE, 'S001', '8')], 'grouped', context());
    assert.deepEqual(plan.map(brief), [
      { sql: DELETE_LINE, params: [['S001'], ['5']], rows: 1, kind: 'delete', table: 'public.store_sale_line' },
      { sql: DELETE_WHERE_LINE, params: ['S001'], rows: 1, kind: 'delete-where', table: 'public.store_sale_line' },
      { sql: DELETE_WHERE_SALE, params: ['S001'], rows: 1, kind: 'delete-where', table: 'public.store_sale' },
      { sql: DELETE_SALE, params: [['S001'], ['8']], rows: 1, kind: 'delete', table: 'public.store_sale' },
      { sql: UPSERT_SALE_TOTAL, params: [['S001'], ['1'], ['1.00']], rows: 1, kind: 'upsert', table: 'public.store_sale' },
      { sql: UPSERT_LINE, params: [['S001'], ['6'], ['1'], ['1.00']], rows: 1, kind: 'upsert', table: 'public.store_sale_line' },
    ]);
  });

  test('a delete-where with several columns passes one value per column, in the order written', () => {
    const plan = planStatements(
      [{ kind: 'delete-where', target: SALE, where: { store_code: 'S001', issued_at: '2024-05-01 00:00:00+00' } }],
      'grouped',
      context(),
    );
    assert.deepEqual(plan.map(brief), [
      {
        sql: 'DELETE FROM "public"."store_sale" WHERE "store_code" = $1::text AND "issued_at" = $2::timestamp with time zone',
        params: ['S001', '2024-05-01 00:00:00+00'],
        rows: 1,
        kind: 'delete-where',
        table: 'public.store_sale',
      },
    ]);
  });
});

describe('planChunk: rows the source inserted go as plain INSERTs', () => {
  const INSERT_SALE_TOTAL = `INSERT INTO "public"."store_sale" ("store_code", "sale_id", "total") SELECT u."store_code"::text, u."sale_id"::bigint, u."total"::numeric FROM unnest($1::text[], $2::text[], $3::text[]) AS u("store_code", "sale_id", "total")`;
  const fresh = (id: string, total: string): TargetOp => ({ kind: 'upsert', target: SALE, key: ['S001', id], row: { store_code: 'S001', sale_id: id, total }, fresh: true });
  const update = (id: string, total: string): TargetOp => ({ kind: 'upsert', target: SALE, key: ['S001', id], row: { store_code: 'S001', sale_id: id, total } });
  const del = (id: string): TargetOp => ({ kind: 'delete', target: SALE, key: ['S001', id] });

  test('a fresh row is a plain INSERT; an updated one stays an upsert, in the same table', () => {
    const plan = planStatements([fresh('1', '1.00'), update('2', '2.00')], 'grouped', context());
    assert.deepEqual(
      plan.map((s) => [s.kind, s.sql === INSERT_SALE_TOTAL, values(s)]),
      [
        ['insert', true, [['S001'], ['1'], ['1.00']]],
        ['upsert', false, [['S001'], ['2'], ['2.00']]],
      ],
    );
  });

  test('inserted then updated in one chunk: still new at HQ, one INSERT with the later values', () => {
    const plan = planStatements([fresh('1', '1.00'), update('1', '5.00')], 'grouped', context());
    assert.deepEqual(plan.map((s) => [s.kind, values(s)]), [['insert', [['S001'], ['1'], ['5.00']]]]);
  });

  test('deleted then inserted again: the delete is dropped by the collapse, so the row may be at HQ: an upsert', () => {
    const plan = planStatements([del('1'), fresh('1', '3.00')], 'grouped', context());
    assert.deepEqual(plan.map((s) => s.kind), ['upsert']);
  });

  test('a target that may hold inserted rows (plainInserts: false, the down channel) gets upserts for them', () => {
    const plan = planStatements([fresh('1', '1.00'), fresh('2', '2.00')], 'grouped', { ...context(), plainInserts: false });
    assert.deepEqual(plan.map((s) => [s.kind, values(s)]), [['upsert', [['S001', 'S001'], ['1', '2'], ['1.00', '2.00']]]]);
  });

  test('the ordered plan (the redo) never uses plain INSERTs', () => {
    const plan = planStatements([fresh('1', '1.00'), fresh('2', '2.00')], 'ordered', context());
    assert.deepEqual(plan.map((s) => s.kind), ['upsert']);
  });
});

describe('planChunk: insert_only, soft deletes, ignored changes, aggregates', () => {
  const DAILY: TargetTable = { schema: 'public', table: 'daily', key: ['store_code', 'day'] };
  INFO['public.daily'] = table('daily', [col('store_code', 'text', { notNull: true }), col('day', 'date', { notNull: true }), col('qty', 'numeric(14,3)'), col('n', 'integer')]);
  const COLS = ['store_code', 'sale_id', 'total'];
  const create = (id: string, total: string): TargetOp => ({ kind: 'insert-missing', target: SALE, key: ['S001', id], row: { store_code: 'S001', sale_id: id, total }, columns: COLS });
  const soft = (id: string): TargetOp => ({ kind: 'update', target: SALE, key: ['S001', id], row: { store_code: 'S001', sale_id: id, notes: 'gone' } });
  const add = (day: string, qty: string, n: string): TargetOp => ({ kind: 'add', target: DAILY, key: ['S001', day], row: { store_code: 'S001', day, qty, n }, measures: MEASURES });
  const MEASURES = ['qty', 'n'];

  test('insert-missing is INSERT ... ON CONFLICT (key) DO NOTHING; a second create of one row in a chunk is ignored and counted', () => {
    const plan = planChunk([create('1', '1.00'), create('1', '2.00'), create('2', '3.00'), { kind: 'ignore', target: SALE }], 'grouped', context());
    assert.equal(plan.ignored, 2);
    assert.deepEqual(plan.statements.map(brief), [
      {
        sql:
          'INSERT INTO "public"."store_sale" ("store_code", "sale_id", "total") SELECT u."store_code"::text, u."sale_id"::bigint, u."total"::numeric ' +
          'FROM unnest($1::text[], $2::text[], $3::text[]) AS u("store_code", "sale_id", "total") ON CONFLICT ("store_code", "sale_id") DO NOTHING',
        params: [['S001', 'S001'], ['1', '2'], ['1.00', '3.00']],
        rows: 2,
        kind: 'insert-missing',
        table: 'public.store_sale',
      },
    ]);
  });

  test('a soft delete is an UPDATE ... FROM unnest of the rows HQ holds; after an upsert in the chunk it merges into it', () => {
    assert.deepEqual(planStatements([soft('5')], 'grouped', context()).map(brief), [
      {
        sql: 'UPDATE "public"."store_sale" AS t SET "notes" = u."notes"::text FROM unnest($1::text[], $2::text[], $3::text[]) AS u("store_code", "sale_id", "notes") WHERE t."store_code" = u."store_code"::text AND t."sale_id" = u."sale_id"::bigint',
        params: [['S001'], ['5'], ['gone']],
        rows: 1,
        kind: 'update',
        table: 'public.store_sale',
      },
    ]);
    const merged = planStatements([sale('6', { total: '1.00' }), soft('6')], 'grouped', context());
    assert.equal(merged.length, 1);
    assert.equal(merged[0]!.kind, 'upsert');
    assert.deepEqual(merged[0]!.params.map((p) => parseTextArray(p as string)), [['S001'], ['6'], ['1.00'], ['gone']]);
  });

  test('additions are summed per key by one statement, after the other writes; in both plans', () => {
    for (const mode of ['grouped', 'ordered'] as const) {
      const plan = planStatements([add('2026-11-23', '2.5', '1'), sale('1', { total: '1.00' }), add('2026-11-23', '-2.5', '-1'), add('2026-11-24', '1', '1')], mode, context());
      const adds = plan.filter((p) => p.kind === 'add');
      assert.equal(adds.length, mode === 'grouped' ? 1 : 2, mode);
      assert.equal(
        adds[0]!.sql,
        'INSERT INTO "public"."daily" AS t ("store_code", "day", "qty", "n") SELECT u."store_code"::text, u."day"::date, coalesce(sum(u."qty"::numeric), 0)::numeric, coalesce(sum(u."n"::numeric), 0)::integer ' +
          'FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u("store_code", "day", "qty", "n") GROUP BY 1, 2 ' +
          'ON CONFLICT ("store_code", "day") DO UPDATE SET "qty" = t."qty" + EXCLUDED."qty", "n" = t."n" + EXCLUDED."n"',
      );
      if (mode === 'grouped') {
        assert.deepEqual(plan.map((p) => p.kind), ['upsert', 'add']);
        assert.deepEqual(adds[0]!.params.map((p) => parseTextArray(p as string)), [
          ['S001', 'S001', 'S001'],
          ['2026-11-23', '2026-11-23', '2026-11-24'],
          ['2.5', '-2.5', '1'],
          ['1', '-1', '1'],
        ]);
      } else {
        assert.deepEqual(plan.map((p) => p.kind), ['add', 'upsert', 'add']);
      }
    }
  });

  test('operations on one row that cannot be collapsed exactly are planned in order', () => {
    // Deleted by one mapping, created again under insert_only: the delete must run first, then the create.
    const plan = planStatements([del(SALE, 'S001', '9'), create('9', '1.00')], 'grouped', context());
    assert.deepEqual(plan.map((p) => p.kind), ['delete', 'insert-missing']);
    // A soft delete then a write of the whole row: the write must come after.
    const plan2 = planStatements([soft('8'), sale('8', { total: '2.00' })], 'grouped', context());
    assert.deepEqual(plan2.map((p) => p.kind), ['update', 'upsert']);
  });
});

describe('planChunk: a key change that must keep values the change did not carry', () => {
  test('is a barrier: an UPDATE of the old key in place, then an upsert of the row (which inserts it if HQ lacked it)', () => {
    const move: TargetOp = { kind: 'move', target: SALE, from: ['S001', '1'], key: ['S001', '2'], row: { store_code: 'S001', sale_id: '2', total: '5.00' } };
    for (const mode of ['grouped', 'ordered'] as const) {
      const plan = planStatements([sale('7', { total: '1.00' }), move, sale('8', { total: '2.00' })], mode, context());
      assert.deepEqual(
        plan.map((p) => p.kind),
        ['upsert', 'update', 'upsert', 'upsert'],
        mode,
      );
      assert.equal(plan[1]!.sql, 'UPDATE "public"."store_sale" SET "store_code" = $3::text, "sale_id" = $4::bigint, "total" = $5::numeric WHERE "store_code" = $1::text AND "sale_id" = $2::bigint');
      assert.deepEqual(plan[1]!.params, ['S001', '1', 'S001', '2', '5.00']);
      assert.deepEqual(plan[2]!.params.map((p) => parseTextArray(p as string)), [['S001'], ['2'], ['5.00']]);
    }
  });
});
