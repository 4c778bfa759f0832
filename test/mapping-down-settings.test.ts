import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatProblem } from '../src/core/errors.js';
import { compileMappings, parseMappingFile, validateMappings, type LoadedMappingFile } from '../src/mapping/index.js';
import { parseEntitiesFile } from '../src/mapping/entities.js';
import { catalog, col, table } from './support/mapping-catalog.js';

/** `effective_at` and `labels` of down mappings: checked with file:line:column, compiled into the mapping. */

const HQ = catalog(
  table(
    'price_list',
    [
      col('product_id', 'integer', { notNull: true }),
      col('name', 'text', { notNull: true }),
      col('price', 'numeric(12,2)', { notNull: true }),
      col('valid_from', 'timestamp with time zone'),
      col('valid_day', 'date'),
      col('valid_local', 'timestamp without time zone'),
      col('note', 'text'),
    ],
    { primaryKey: ['product_id'] },
  ),
);
const STORE = catalog(
  table('product', [col('id', 'integer', { notNull: true }), col('description', 'text', { notNull: true }), col('price', 'numeric(12,2)', { notNull: true }), col('currency', 'text')], {
    primaryKey: ['id'],
  }),
);

const DOWN = `direction: down
source: price_list
target: product
effective_at: valid_from
labels:
  code: id
  description: description
  price: price
columns:
  id: product_id
  description: name
  price: price
`;

function load(text: string): LoadedMappingFile {
  const r = parseMappingFile('mappings/price-down.yml', text);
  assert.deepEqual(r.problems.map(formatProblem), []);
  assert.ok(r.file);
  return r.file;
}

const problems = (text: string) => validateMappings([load(text)], { source: HQ, target: STORE }).map(formatProblem);

describe('down settings: effective_at and labels', () => {
  test('a valid file has no problems and compiles with both settings', () => {
    assert.deepEqual(problems(DOWN), []);
    const [m] = compileMappings([load(DOWN)], { source: HQ, target: STORE }).mappings;
    assert.deepEqual(m!.effectiveAt, { column: 'valid_from', zoned: true });
    assert.deepEqual(m!.labels, { code: 'id', description: 'description', price: 'price', currency: null });
  });

  test('date and timestamp columns are times read in the store\'s zone', () => {
    for (const c of ['valid_day', 'valid_local']) {
      const text = DOWN.replace('effective_at: valid_from', `effective_at: ${c}`);
      assert.deepEqual(problems(text), []);
      assert.deepEqual(compileMappings([load(text)], { source: HQ, target: STORE }).mappings[0]!.effectiveAt, { column: c, zoned: false });
    }
  });

  test('an unknown effective_at column is BL-M024 with a suggestion', () => {
    assert.deepEqual(problems(DOWN.replace('effective_at: valid_from', 'effective_at: valid_form')), [
      'mappings/price-down.yml:4:15: BL-M024 effective_at column "valid_form" is not a column of public.price_list at HQ. Did you mean valid_from?',
    ]);
  });

  test('an effective_at column that is not a time is BL-M024', () => {
    assert.deepEqual(problems(DOWN.replace('effective_at: valid_from', 'effective_at: note')), [
      'mappings/price-down.yml:4:15: BL-M024 effective_at column "note" of public.price_list is text, not a time. Name a timestamptz, timestamp or date column that says when the row takes effect.',
    ]);
  });

  test('effective_at and labels in an up mapping are BL-M023', () => {
    const up = DOWN.replace('direction: down\n', '');
    assert.deepEqual(problems(up), [
      'mappings/price-down.yml:3:15: BL-M023 "effective_at" applies only to a mapping with "direction: down" (HQ to the stores). Add "direction: down" if this file hands HQ\'s data down to the stores, or remove the setting.',
      'mappings/price-down.yml:5:3: BL-M023 "labels" applies only to a mapping with "direction: down" (HQ to the stores). Add "direction: down" if this file hands HQ\'s data down to the stores, or remove the setting.',
    ]);
  });

  test('labels naming a column the file does not write is BL-M024', () => {
    const text = DOWN.replace('  price: price\ncolumns', '  price: cost\n  currency: currency\ncolumns');
    assert.deepEqual(problems(text), [
      'mappings/price-down.yml:8:10: BL-M024 labels.price "cost" is not a column this file writes. Name one of: id, description, price.',
      'mappings/price-down.yml:9:13: BL-M024 labels.currency "currency" is not a column this file writes. Name one of: id, description, price.',
    ]);
  });

  test('labels with associate(...) is BL-M017: a label is found by the key HQ sends', () => {
    const { entities, problems: p } = parseEntitiesFile('mappings/entities.yml', 'product:\n  kind: manual\n');
    assert.deepEqual(p, []);
    const text = DOWN.replace('  id: product_id', '  id: associate(product, product_id)');
    assert.deepEqual(validateMappings([load(text)], { source: HQ, target: STORE, entities, entityChecks: false }).map(formatProblem), [
      'mappings/price-down.yml:6:3: BL-M017 "labels" cannot go with associate(...) (column "id"): a label is found by the row\'s key as HQ sends it. Label the products from a down mapping without associations.',
    ]);
  });

  test('labels without a price column is a schema problem (BL-M002)', () => {
    const r = parseMappingFile('mappings/price-down.yml', DOWN.replace('  price: price\ncolumns', 'columns'));
    assert.equal(r.file, null);
    assert.deepEqual(
      r.problems.map((p) => p.code),
      ['BL-M002'],
    );
    assert.match(formatProblem(r.problems[0]!), /^mappings\/price-down\.yml:6:3: BL-M002 .*"price" is missing/);
  });
});
