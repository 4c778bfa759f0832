import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parkUnresolved } from '../src/apply/parked-chunk.js';
import type { TableId } from '../src/core/change.js';
import { formatProblem } from '../src/core/errors.js';
import type { TargetOp } from '../src/core/target-op.js';
import { parseEntitiesFile, type EntitySet } from '../src/mapping/entities.js';
import { compileMappings, parseMappingFile, validateMappings, type LoadedMappingFile } from '../src/mapping/index.js';
import { ParkedRows, rowKeyText, type ChangeOrigin } from '../src/pipeline/parking.js';
import { catalog, col, table } from './support/mapping-catalog.js';
import { TEST_ENTITIES } from './support/entities.js';

/** associate(...) in mapping files, entities.yml, and how a chunk parks what it cannot translate; no database. */

const DOC: TableId = { schema: 'public', table: 'doc' };

const store = () =>
  catalog(
    table(
      'doc',
      [
        col('id', 'bigint', { notNull: true }),
        col('cust_id', 'integer', { notNull: true }),
        col('cc', 'text', { notNull: true }),
        col('status', 'text'),
      ],
      { primaryKey: ['id'] },
    ),
  );

const hq = () =>
  catalog(
    table(
      'h_doc',
      [
        col('store_code', 'text', { notNull: true }),
        col('id', 'bigint', { notNull: true }),
        col('customer_id', 'bigint', { notNull: true }),
        col('cost_center_id', 'integer', { notNull: true }),
        col('status', 'text'),
      ],
      { primaryKey: ['store_code', 'id'], uniqueKeys: [['store_code', 'id'], ['store_code', 'customer_id']] },
    ),
    table('cost_center', [col('id', 'integer', { notNull: true })], { primaryKey: ['id'] }),
  );


function entities(text = TEST_ENTITIES): EntitySet {
  const r = parseEntitiesFile('mappings/entities.yml', text);
  assert.deepEqual(r.problems.map(formatProblem), []);
  return r.entities;
}

const DOC_MAPPING = (columns: string) => `source: doc
target: h_doc
columns:
  store_code: store.code
  id: id
${columns}`;

function load(text: string): LoadedMappingFile {
  const r = parseMappingFile('mappings/doc.yml', text);
  assert.deepEqual(r.problems.map(formatProblem), []);
  return r.file!;
}

function problems(text: string, opts: { entities?: EntitySet; sequences?: Set<string> } = {}): string[] {
  return validateMappings([load(text)], {
    source: store(),
    target: hq(),
    entities: opts.entities ?? entities(),
    sequences: opts.sequences ?? new Set(['public.customer_id_seq']),
  }).map(formatProblem);
}

const GOOD = DOC_MAPPING(`  customer_id: associate(customer, cust_id)
  cost_center_id: associate(cost_center, cc)
  status: status
`);

describe('entities.yml', () => {
  test('a well-formed file declares allocate and manual entities', () => {
    const e = entities();
    assert.deepEqual(
      [...e.byName.values()].map((x) => [x.name, x.kind, x.sequence, x.references]),
      [
        ['customer', 'allocate', { schema: 'public', table: 'customer_id_seq' }, null],
        ['cost_center', 'manual', null, { table: { schema: 'public', table: 'cost_center' }, column: 'id' }],
      ],
    );
  });

  test('an allocating entity without a sequence, and settings of the other kind, are BL-M020 at their line', () => {
    const r = parseEntitiesFile('mappings/entities.yml', 'customer:\n  kind: allocate\ncost_center:\n  kind: manual\n  sequence: cc_seq\n');
    assert.deepEqual(r.problems.map(formatProblem), [
      'mappings/entities.yml:2:3: BL-M020 entity "customer" allocates HQ keys but names no sequence to take them from. Add "sequence: <HQ sequence>" under customer, e.g. sequence: customer_id_seq (for an identity column, SELECT pg_get_serial_sequence(\'customer\', \'id\') at HQ names it).',
      'mappings/entities.yml:5:13: BL-M020 entity "cost_center" is manual: a person states its HQ keys, so "sequence" has no use here. Remove "sequence", or write "kind: allocate" to have HQ hand out new keys.',
    ]);
  });

  test('an unknown kind is a schema problem (BL-M002)', () => {
    const r = parseEntitiesFile('mappings/entities.yml', 'customer:\n  kind: automatic\n');
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0]!.code, 'BL-M002');
    assert.equal(r.problems[0]!.location?.line, 2);
  });
});

describe('associate(entity, code) in a mapping', () => {
  test('a well-formed mapping has no problem', () => {
    assert.deepEqual(problems(GOOD), []);
  });

  test('an undeclared entity is BL-M020 at the name, with the close declared one', () => {
    assert.deepEqual(problems(GOOD.replace('associate(customer,', 'associate(custmer,')), [
      'mappings/doc.yml:6:26: BL-M020 entity "custmer" is not declared. Did you mean "customer"?',
    ]);
  });

  test('an entity when no entities.yml exists says where to declare it', () => {
    const none = { file: null, byName: new Map() };
    const p = problems(GOOD, { entities: none });
    assert.equal(p.length, 2);
    assert.match(p[0]!, /BL-M020 entity "customer" is not declared\. Declare it in entities\.yml in the mapping directory, e\.g\. customer: \{kind: allocate, sequence: customer_id_seq\}\./);
  });

  test('associate inside a larger expression, and the wrong number of arguments, are BL-M020', () => {
    assert.deepEqual(problems(GOOD.replace('associate(cost_center, cc)', 'coalesce(associate(cost_center, cc), 0)')), [
      'mappings/doc.yml:7:28: BL-M020 associate(...) must be the whole expression of "cost_center_id": the HQ key it stands for is known only when the row is applied. Write the column as associate(entity, code) and compute the code inside it, e.g. associate(customer, trim(code)).',
    ]);
    assert.deepEqual(problems(GOOD.replace('associate(cost_center, cc)', 'associate(cc)')), [
      'mappings/doc.yml:7:19: BL-M020 associate takes two arguments (the entity and the store\'s code), not 1. Write e.g. cost_center_id: associate(customer, customer_id).',
    ]);
  });

  test('the code is an ordinary expression: an unknown column in it is BL-M005', () => {
    assert.deepEqual(problems(GOOD.replace('associate(cost_center, cc)', 'associate(cost_center, ccc)')), [
      'mappings/doc.yml:7:42: BL-M005 unknown source column "ccc": table public.doc has no such column. Did you mean "cc"?',
    ]);
  });

  test('a key column may be associated, but its code must come from the source key (BL-M010)', () => {
    const keyed = `source: doc
target: h_doc
key: [store_code, customer_id]
columns:
  store_code: store.code
  id: id
  customer_id: associate(customer, cust_id)
  cost_center_id: associate(cost_center, cc)
`;
    const p = problems(keyed);
    assert.ok(p.some((x) => /BL-M010 key column "customer_id" reads "cust_id", which a delete of public\.doc does not carry/.test(x)), p.join('\n'));
  });

  test('a sequence or referenced column HQ does not have is BL-M020 at the entity', () => {
    const bad = entities(TEST_ENTITIES.replace('references: cost_center.id', 'references: cost_center.code'));
    assert.deepEqual(problems(GOOD, { entities: bad, sequences: new Set(['public.customer_seq']) }), [
      'mappings/entities.yml:1:1: BL-M020 entity "customer" takes new HQ keys from sequence public.customer_id_seq, which does not exist at HQ. Did you mean public.customer_seq?',
      'mappings/entities.yml:4:1: BL-M020 entity "cost_center" references public.cost_center.code, which has no such column. Its columns are: id.',
    ]);
  });

  test('compiled, its operations carry the store codes and which columns to translate', () => {
    const set = compileMappings([load(GOOD)], { source: store(), target: hq(), entities: entities() });
    const m = set.mappings[0]!;
    assert.equal(m.associates, true);
    const [op] = m.map({ op: 'insert', table: DOC, after: { id: '7', cust_id: '3', cc: 'CC-01', status: 'open' } }, { storeCode: 'S1' });
    assert.equal(op?.kind, 'upsert');
    const up = op as Extract<TargetOp, { kind: 'upsert' }>;
    assert.deepEqual(up.row, { store_code: 'S1', id: '7', customer_id: '3', cost_center_id: 'CC-01', status: 'open' });
    assert.deepEqual(up.assoc, [
      { entity: 'customer', allocate: true, column: 'customer_id', keyIndex: -1 },
      { entity: 'cost_center', allocate: false, column: 'cost_center_id', keyIndex: -1 },
    ]);
    assert.deepEqual(m.rowKeys({ op: 'delete', table: DOC, before: { id: '7' } }, { storeCode: 'S1' }), [['S1', '7']]);
  });
});

describe('parking a chunk', () => {
  const set = () => compileMappings([load(GOOD)], { source: store(), target: hq(), entities: entities() });
  const origin = (m: ReturnType<typeof set>['mappings'][number], id: string): ChangeOrigin => ({
    mapping: m,
    change: { op: 'insert', table: DOC, after: { id, cust_id: '1', cc: 'CC-01', status: 'open' } },
    xid: 1,
    commitTime: null,
  });

  test('a change with a missing association is parked, later changes of its row behind it, the rest goes on', () => {
    const m = set().mappings[0]!;
    const ctx = { storeCode: 'S1' };
    const changes = ['1', '2', '1'].map((id) => origin(m, id));
    const ops = changes.flatMap((o) => m.map(o.change, ctx));
    const origins = changes.map((o) => o);
    const translated = ops.map((op) => ({ ...op, assoc: undefined }) as TargetOp);
    const r = parkUnresolved(ops, { ops: [null, translated[1]!, translated[2]!], unresolved: [{ index: 0, entity: 'cost_center', code: 'CC-01' }] }, origins);
    assert.deepEqual(r.ops, [translated[1]], 'only row 2 goes; the second change of row 1 waits behind the first');
    assert.deepEqual(
      r.parks.map((p) => [p.reasonCode, p.entity, p.branchCode, p.rowKeys, p.at]),
      [
        ['BL-M021', 'cost_center', 'CC-01', [rowKeyText(['S1', '1'])], 0],
        ['BL-P006', null, null, [rowKeyText(['S1', '1'])], 2],
      ],
    );
  });

  test('ParkedRows tells a later change of a parked row apart from others', () => {
    const m = set().mappings[0]!;
    const rows = new ParkedRows();
    const ctx = { storeCode: 'S1' };
    assert.equal(rows.touched(m, origin(m, '1').change, ctx), null, 'nothing parked');
    rows.add(m.name, [rowKeyText(['S1', '1'])]);
    assert.deepEqual(rows.touched(m, origin(m, '1').change, ctx), [rowKeyText(['S1', '1'])]);
    assert.equal(rows.touched(m, origin(m, '2').change, ctx), null);
    assert.equal(rows.touched(m, { op: 'delete', table: DOC, before: { id: '1' } }, { storeCode: 'S2' }), null, "another store's row 1 is another row");
  });
});

describe('a cycle of foreign keys among target tables (BL-M022)', () => {
  const src = () =>
    catalog(
      table('a', [col('id', 'integer', { notNull: true }), col('b_id', 'integer')], { primaryKey: ['id'] }),
      table('b', [col('id', 'integer', { notNull: true }), col('a_id', 'integer')], { primaryKey: ['id'] }),
    );
  const target = (deferrable: boolean) =>
    catalog(
      table('h_a', [col('id', 'integer', { notNull: true }), col('b_id', 'integer'), col('parent', 'integer')], {
        primaryKey: ['id'],
        foreignKeys: [
          { name: 'h_a_b_fkey', columns: ['b_id'], references: 'h_b', referencedColumns: ['id'] },
          { name: 'h_a_parent_fkey', columns: ['parent'], references: 'h_a', referencedColumns: ['id'] },
        ],
      }),
      table('h_b', [col('id', 'integer', { notNull: true }), col('a_id', 'integer')], {
        primaryKey: ['id'],
        foreignKeys: [{ name: 'h_b_a_fkey', columns: ['a_id'], references: 'h_a', referencedColumns: ['id'], deferrable }],
      }),
    );
  const files = () => [
    parseMappingFile('mappings/a.yml', 'source: a\ntarget: h_a\ncolumns:\n  id: id\n  b_id: b_id\n').file!,
    parseMappingFile('mappings/b.yml', 'source: b\ntarget: h_b\ncolumns:\n  id: id\n  a_id: a_id\n').file!,
  ];

  test('two targets referencing each other through foreign keys HQ checks at once are reported at the second file', () => {
    assert.deepEqual(validateMappings(files(), { source: src(), target: target(false) }).map(formatProblem), [
      'mappings/b.yml:2:9: BL-M022 target tables public.h_a, public.h_b reference each other at HQ through foreign keys that are checked at once (h_a_b_fkey, h_b_a_fkey), a cycle: their rows cannot always be written parents first. Make one of those foreign keys DEFERRABLE INITIALLY DEFERRED at HQ (ALTER TABLE ... ALTER CONSTRAINT h_b_a_fkey DEFERRABLE INITIALLY DEFERRED), or set apply.session_replication_role: replica, or leave one of the tables out of the mappings.',
    ]);
  });

  test('no problem when one of them is deferrable, a table references itself, or HQ does not check foreign keys (replica)', () => {
    assert.deepEqual(validateMappings(files(), { source: src(), target: target(true) }), []);
    assert.deepEqual(validateMappings(files(), { source: src(), target: target(false), foreignKeysChecked: false }), []);
    assert.doesNotThrow(() => compileMappings(files(), { source: src(), target: target(false) }), 'compiling leaves the check to validate');
  });
});
