import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatProblem, isBranchlineError } from '../src/core/errors.js';
import { parseEntitiesFile } from '../src/mapping/entities.js';
import { parseMappingFile, validateMappings, type LoadedMappingFile } from '../src/mapping/index.js';
import { checkRequest, judge, resolveKind } from '../src/settlement/answer.js';
import { statement } from '../src/settlement/pg-record-reader.js';
import { settlementRules } from '../src/settlement/rules.js';
import { catalog, col, table } from './support/mapping-catalog.js';

const store = () =>
  catalog(
    table(
      'receivable',
      [
        col('id', 'bigint', { notNull: true }),
        col('document_number', 'text', { notNull: true }),
        col('amount', 'numeric(14,2)', { notNull: true }),
        col('paid', 'numeric(14,2)'),
        col('status', 'text', { notNull: true }),
      ],
      { primaryKey: ['id'] },
    ),
  );
const hq = () =>
  catalog(
    table(
      'store_receivable',
      [
        col('store_code', 'text', { notNull: true }),
        col('receivable_id', 'bigint', { notNull: true }),
        col('document_number', 'text', { notNull: true }),
        col('amount', 'numeric(14,2)', { notNull: true }),
        col('status', 'text', { notNull: true }),
        col('deleted_at', 'timestamp with time zone'),
        col('hq_receivable', 'bigint'),
      ],
      { primaryKey: ['store_code', 'receivable_id'] },
    ),
  );
const ENTITIES = parseEntitiesFile('mappings/entities.yml', 'receivable:\n  kind: manual\n').entities;

const FILE = (settlement: string, columns = '') => `source: receivable
target: store_receivable
columns:
  store_code: store.code
  receivable_id: id
  document_number: document_number
  amount: amount
  status: status
${columns}settlement:
${settlement}`;

function load(text: string, name = 'receivable.yml'): LoadedMappingFile {
  const r = parseMappingFile(`mappings/${name}`, text);
  assert.deepEqual(r.problems.map(formatProblem), []);
  return r.file!;
}

function problems(text: string): string[] {
  return validateMappings([load(text)], { source: store(), target: hq(), entities: ENTITIES }).map(formatProblem);
}

const GOOD = `  amount: amount - coalesce(paid, 0)
  settled: status = 'settled'
  deleted: status = 'cancelled'
  at_hq:
    amount: amount
    settled: status = 'settled'
    deleted: deleted_at is not null
`;

describe('settlement: the mapping section', () => {
  test('a well-formed section compiles: the reference is the store column the key is written from', () => {
    assert.deepEqual(problems(FILE(GOOD)), []);
    const rules = settlementRules([load(FILE(GOOD))], { target: hq(), entities: ENTITIES });
    const rule = rules.get('receivable');
    assert.ok(rule, 'the kind defaults to the source table name');
    assert.equal(rule.ref, 'id');
    assert.equal(rule.hqRef, 'receivable_id');
    assert.equal(rule.hqStore, 'store_code');
    assert.equal(rule.hqRefType, 'bigint');
    assert.deepEqual([...rule.atStore.columns].sort(), ['amount', 'paid', 'status']);
    assert.deepEqual([...rule.atHq!.columns].sort(), ['amount', 'deleted_at', 'status']);
  });

  test('an explicit ref must be a store column written to HQ; ref_entity must be declared', () => {
    assert.deepEqual(problems(FILE(`  ref: document_number\n${GOOD}`)), []);
    const rule = settlementRules([load(FILE(`  ref: document_number\n${GOOD}`))], { target: hq(), entities: ENTITIES }).get('receivable')!;
    assert.equal(rule.ref, 'document_number');
    assert.equal(rule.hqRef, 'document_number');
    const unknown = problems(FILE(`  ref: doc_no\n${GOOD}`));
    assert.equal(unknown.length, 2, unknown.join('\n'));
    assert.match(unknown[0]!, /^mappings\/receivable\.yml:10:8: BL-M025 ref "doc_no" is not a column of public\.receivable at the store\./);
    assert.match(unknown[1]!, /BL-M025 no column of this file writes "doc_no" to HQ/);
    assert.match(problems(FILE(`  ref_entity: recievable\n${GOOD}`)).join('\n'), /10:15: BL-M025 entity "recievable" is not declared\. Did you mean receivable\?/);
  });

  test('amount must be a number, settled and deleted true/false, and only over the row', () => {
    const p = problems(FILE(`  amount: status\n  settled: amount\n  deleted: commit_time() is null\n`));
    assert.equal(p.length, 3, p.join('\n'));
    assert.match(p[0]!, /10:11: BL-M025 settlement amount gives text, not a number\./);
    assert.match(p[1]!, /11:12: BL-M025 settlement settled gives numeric, not true or false\./);
    assert.match(p[2]!, /12:12: BL-M025 settlement deleted cannot use commit_time\(\.\.\.\)/);
    assert.match(problems(FILE(`  amount: amount\n  settled: stauts = 'settled'\n`)).join('\n'), /11:12: BL-M005 .*stauts/);
    assert.match(problems(FILE(`  amount: amount\n  settled: status = 'settled'\n  at_hq:\n    amount: amount\n    settled: setled\n`)).join('\n'), /BL-M005 .*setled.*store_receivable/s);
  });

  test('only up, non-aggregate mappings with the store code mapped; one file per kind', () => {
    assert.match(problems(`direction: down\n${FILE(GOOD)}`).join('\n'), /BL-M025 "settlement" applies only to up mappings/);
    const noStore = FILE(GOOD).replace('  store_code: store.code\n', "  store_code: \"'S001'\"\n");
    assert.match(problems(noStore).join('\n'), /BL-M025 a settlement check finds HQ's copy of a record by its store, but no column of this file writes store\.code/);
    const twice = validateMappings([load(FILE(GOOD)), load(FILE(GOOD).replace('target: store_receivable', 'target: store_receivable_copy'), 'copy.yml')], {
      source: store(),
      target: catalog(...hq().values(), { ...[...hq().values()][0]!, id: { schema: 'public', table: 'store_receivable_copy' } }),
    }).map(formatProblem);
    assert.ok(twice.some((p) => /BL-M025 settlement kind "receivable" is declared by mappings\/receivable\.yml too/.test(p)), twice.join('\n'));
  });
});

describe('settlement: requests and verdicts', () => {
  const stores = new Set(['S001', 'S002']);
  const bad = (r: unknown, kinds = ['receivable']) => {
    try {
      checkRequest(r as Record<string, unknown>, 'the check', stores, kinds);
    } catch (e) {
      assert.ok(isBranchlineError(e));
      return `${e.code} ${e.problem.message}`;
    }
    assert.fail('accepted');
  };

  test('requests are checked field by field, with the kind resolved', () => {
    assert.deepEqual(checkRequest({ store: 'S001', ref: 42, amount: 129.9 }, 'x', stores, ['receivable']), { store: 'S001', kind: 'receivable', ref: '42', amount: '129.9' });
    assert.match(bad({ ref: '1', amount: '1' }), /^BL-K002 the check: "store" is missing/);
    assert.match(bad({ store: "S001' OR '1'='1", ref: '1', amount: '1' }), /^BL-K002 the check: store "S001' OR '1'='1" is not configured/);
    assert.match(bad({ store: 'S001', ref: '', amount: '1' }), /"ref" is missing/);
    assert.match(bad({ store: 'S001', ref: 'x'.repeat(201), amount: '1' }), /longer than 200/);
    assert.match(bad({ store: 'S001', ref: 'a\u0000b', amount: '1' }), /NUL/);
    for (const amount of ['1e3', 'NaN', '1,50', '', '12.5; DROP TABLE receivable', 1e21, Infinity, null])
      assert.match(bad({ store: 'S001', ref: '1', amount }), /"amount" (is not a decimal number|is missing)/, String(amount));
    assert.match(bad({ store: 'S001', kind: 'payable', ref: '1', amount: '1' }), /^BL-K001 no mapping file declares settlement checks for "payable"/);
    assert.match(bad({ store: 'S001', ref: '1', amount: '1' }, ['receivable', 'payable']), /^BL-K001 the check names no kind of record, and several are declared/);
    assert.equal(resolveKind(['payable'], undefined), 'payable');
  });

  test('verdicts: deleted, then settled, then the amount, exactly as decimals', () => {
    const rule = settlementRules([load(FILE(GOOD))], { target: hq(), entities: ENTITIES }).get('receivable')!;
    const v = (row: Record<string, string | null>, asked: string) => judge(rule.atStore, [row], asked, 'store S001', 'S001');
    assert.equal(v({ amount: '129.90', paid: null, status: 'open' }, '129.9')!.status, 'released');
    assert.deepEqual(v({ amount: '129.90', paid: '29.90', status: 'open' }, '129.90'), {
      status: 'amount_differs',
      originAmount: '100.00',
      reason: null,
      detail: 'store S001 holds the record open with 100.00, not 129.90.',
    });
    assert.equal(v({ amount: '129.90', paid: null, status: 'settled' }, '129.90')!.status, 'settled');
    assert.equal(v({ amount: '129.90', paid: null, status: 'cancelled' }, '1')!.status, 'deleted');
    assert.equal(judge(rule.atStore, undefined, '1', 'store S001', 'S001'), null, 'no row: the caller tells deleted from unknown');
    const two = judge(rule.atStore, [{ amount: '1', paid: null, status: 'open' }, { amount: '1', paid: null, status: 'open' }], '1', 'store S001', 'S001')!;
    assert.equal(two.status, 'unavailable');
    assert.equal(two.reason, 'error');
    // 0.1 + 0.2 style: decimals are compared exactly, never as floats.
    assert.equal(v({ amount: '0.30', paid: '0.00', status: 'open' }, '0.3')!.status, 'released');
    assert.equal(v({ amount: '0.30', paid: '0.00', status: 'open' }, '0.30000000000000004')!.status, 'amount_differs');
  });

  test('the one statement of a round binds the references and quotes every name', () => {
    const sql = statement(
      { table: { schema: 'erp"x', table: 'receivable' }, refColumn: 'id', refType: 'bigint', columns: ['amount', 'st"atus'], filters: [{ column: 'store_code', value: 'S001' }], association: { store: 'S001', entity: 'receivable' } },
      'bigint',
      false,
    );
    assert.equal(
      sql,
      [
        'SELECT r.ord AS "__ord", t."amount", t."st""atus"',
        'FROM unnest($1::text[]) WITH ORDINALITY AS r(ref, ord)',
        'JOIN branchline.associations a ON a.store_code = $3 AND a.entity = $4 AND a.branch_code = r.ref',
        'JOIN "erp""x"."receivable" t ON t."id" = a.hq_key::bigint AND t."store_code" = $2',
      ].join('\n'),
    );
    assert.match(statement({ table: { schema: 'public', table: 'r' }, refColumn: 'id', refType: 'bigint', columns: [] }, 'bigint', true), /ON t\."id"::text = r\.ref$/);
  });
});
