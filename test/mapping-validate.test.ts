import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BranchlineError, formatProblem, type Problem } from '../src/core/errors.js';
import {
  loadMappingDir,
  mappedTables,
  mappingJsonSchemaText,
  parseMappingFile,
  validateMappings,
  type LoadedMappingFile,
} from '../src/mapping/index.js';
import { hqCatalog, storeCatalog } from './support/mapping-catalog.js';

function load(name: string, text: string): LoadedMappingFile {
  const r = parseMappingFile(`mappings/${name}`, text);
  assert.deepEqual(r.problems.map(formatProblem), []);
  assert.ok(r.file);
  return r.file;
}

function loadProblems(name: string, text: string): string[] {
  const r = parseMappingFile(`mappings/${name}`, text);
  assert.equal(r.file, null);
  return r.problems.map(formatProblem);
}

function validate(files: LoadedMappingFile[], source = storeCatalog()): string[] {
  return validateMappings(files, { source, target: hqCatalog() }).map(formatProblem);
}

/** A valid file; tests replace one line to break it. */
const SALE = `# yaml-language-server: $schema=../../schemas/mapping.schema.json
source: sale
target: store_sale
description: Sales documents (header)
columns:
  store_code: store.code
  sale_id: id
  issued_at: issued_at
  customer_name: upper(trim(customer_name))
  total: total
  origin: "'store'"
`;

function sale(replace: Record<string, string> = {}): string {
  let text = SALE;
  for (const [from, to] of Object.entries(replace)) {
    assert.ok(text.includes(from), `fixture has ${from}`);
    text = text.replace(from, to);
  }
  return text;
}

describe('syntax and schema', () => {
  test('the example file is valid', () => {
    assert.deepEqual(validate([load('sale.yml', SALE)]), []);
  });

  test('broken YAML is BL-M001 at the position', () => {
    assert.deepEqual(loadProblems('sale.yml', 'source: sale\ncolumns: [id\n'), [
      'mappings/sale.yml:3:1: BL-M001 is not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]. Fix the YAML syntax at this position (indentation, a missing colon, or an unclosed quote are the usual causes).',
    ]);
  });

  test('a duplicate column is a YAML error', () => {
    const problems = loadProblems('sale.yml', sale({ '  total: total\n': '  total: total\n  total: 0\n' }));
    assert.equal(problems[0], 'mappings/sale.yml:11:3: BL-M001 is not valid YAML: Map keys must be unique. Fix the YAML syntax at this position (indentation, a missing colon, or an unclosed quote are the usual causes).');
  });

  test('an unknown setting is BL-M002 and names the allowed ones', () => {
    assert.deepEqual(loadProblems('sale.yml', sale({ 'description:': 'descripton:' })), [
      'mappings/sale.yml:4:1: BL-M002 unknown setting "descripton" at the top level in this mapping file. Remove it or use one of: direction, source, target, route, effective_at, labels, key, enabled, description, columns, filter, on_conflict, on_delete, settlement.',
    ]);
  });

  test('a missing setting and a bad table name', () => {
    assert.deepEqual(loadProblems('sale.yml', 'source: sale items\ntarget: store_sale\n'), [
      'mappings/sale.yml:1:1: BL-M002 "columns" is missing at the top level in this mapping file. Add "columns:" here.',
      'mappings/sale.yml:1:9: BL-M002 at "source" is not in the expected form (must match pattern "^[A-Za-z_][A-Za-z0-9_$]*(\\.[A-Za-z_][A-Za-z0-9_$]*)?$"). Expected: Source table (at the store; at HQ for direction: down): "table" (schema public) or "schema.table", e.g. sale or erp.sale.',
    ]);
  });

  test('an expression written as a list', () => {
    assert.deepEqual(loadProblems('sale.yml', sale({ 'total: total': 'total: [total]' })), [
      'mappings/sale.yml:10:10: BL-M002 the expression for "total" must be text, not a list or a map. Write it after "total:" on the same line, e.g. total: upper(name); put it in double quotes when it contains ": " or " #", or starts with one of \' [ { * & ! | >.',
    ]);
  });

  test('settings get their defaults; numbers and booleans are expressions as written', () => {
    const f = load('sale.yml', sale({ 'total: total': 'total: 12.50\n  confirmed: true\n  qty: null' }));
    assert.equal(f.spec.enabled, true);
    assert.equal(f.spec.key, null);
    assert.deepEqual(f.spec.source, { schema: 'public', table: 'sale' });
    assert.equal(f.spec.description, 'Sales documents (header)');
    const exprs = Object.fromEntries(f.spec.columns.map((c) => [c.name, c.expression]));
    assert.equal(exprs['total'], '12.50');
    assert.equal(exprs['confirmed'], 'true');
    assert.equal(exprs['qty'], 'null');
    assert.equal(exprs['origin'], "'store'");
    assert.deepEqual(validate([f]), []);
  });

  test('an empty expression is BL-M007 at the value', () => {
    assert.deepEqual(validate([load('sale.yml', sale({ 'total: total': 'total:' }))]), [
      "mappings/sale.yml:10:9: BL-M007 the expression for \"total\" does not parse: the expression is empty. Write a source column, a constant such as 'text', or a function call.",
    ]);
  });

  test('schemas/mapping.schema.json is the generated schema', async () => {
    const committed = await readFile(new URL('../schemas/mapping.schema.json', import.meta.url), 'utf8');
    assert.equal(committed, mappingJsonSchemaText(), 'run: node --import tsx scripts/write-mapping-schema.ts');
  });
});

describe('checks against the catalogs', () => {
  test('unknown source column, with a suggestion, at the identifier inside the expression', () => {
    assert.deepEqual(validate([load('sale.yml', sale({ 'trim(customer_name)': 'trim(custmer_name)' }))]), [
      'mappings/sale.yml:9:29: BL-M005 unknown source column "custmer_name": table public.sale has no such column. Did you mean "customer_name"?',
    ]);
  });

  test('a constant whose quotes YAML removed', () => {
    assert.deepEqual(validate([load('sale.yml', sale({ 'origin: "\'store\'"': "origin: 'shop'" }))]), [
      `mappings/sale.yml:11:12: BL-M005 unknown source column "shop": table public.sale has no such column. YAML took away the quotes: to write the text 'shop', quote it twice: "'shop'".`,
    ]);
  });

  test('an unknown column with no close name lists the columns', () => {
    assert.deepEqual(validate([load('sale.yml', sale({ 'total: total': 'total: amount' }))]), [
      `mappings/sale.yml:10:10: BL-M005 unknown source column "amount": table public.sale has no such column. Its columns are: id, number, issued_at, customer_name, total, qty, price, notes, confirmed, due_on. A text constant is written in single quotes, in YAML inside double quotes: "'text'".`,
    ]);
  });

  test('an expression over several lines is reported at its start', () => {
    const text = sale({ 'origin: "\'store\'"': "origin: case when qty > 0 then 'store'\n    else 'return' ed" });
    assert.deepEqual(validate([load('sale.yml', text)]), [
      'mappings/sale.yml:11:11: BL-M007 the expression for "origin" does not parse: expected "end" but found "ed". Finish the case expression with "end".',
    ]);
  });

  test('unknown target column, with a suggestion', () => {
    assert.deepEqual(validate([load('sale.yml', sale({ 'customer_name: upper': 'custome_name: upper' }))]), [
      'mappings/sale.yml:9:3: BL-M006 unknown target column "custome_name": table public.store_sale has no such column. Did you mean "customer_name"?',
    ]);
  });

  test('writing a generated column', () => {
    assert.deepEqual(validate([load('sale.yml', sale({ '  total: total\n': '  total: total\n  total_cents: 1\n' }))]), [
      'mappings/sale.yml:11:3: BL-M006 target column "total_cents" of public.store_sale is a generated column; it cannot be written. Remove this line: HQ computes the column itself.',
    ]);
  });

  test('wrong type says what to write', () => {
    assert.deepEqual(
      validate([load('sale.yml', sale({ '  total: total\n': '  total: total\n  qty: notes\n  issued_on: issued_at\n  confirmed: qty\n' }))]),
      [
        'mappings/sale.yml:11:8: BL-M008 the expression for "qty" gives text, but column "qty" of public.store_sale is integer. Wrap it in integer(...) if the text always holds a whole number.',
        'mappings/sale.yml:12:14: BL-M008 the expression for "issued_on" gives timestamp, but column "issued_on" of public.store_sale is date. Wrap it in date(...) to keep the date part.',
        "mappings/sale.yml:13:14: BL-M008 the expression for \"confirmed\" gives integer, but column \"confirmed\" of public.store_sale is boolean. Wrap it in boolean(...) (it accepts t/f, true/false, yes/no, 1/0), or compare it, e.g. x = 'Y'.",
      ],
    );
  });

  test('wrong type with no conversion lists the source columns that fit', () => {
    assert.deepEqual(validate([load('sale.yml', sale({ 'issued_at: issued_at': 'issued_at: total' }))]), [
      'mappings/sale.yml:8:14: BL-M008 the expression for "issued_at" gives numeric, but column "issued_at" of public.store_sale is timestamp without time zone. Source columns of a fitting type: issued_at, due_on.',
    ]);
  });

  test('a text constant is checked against the column type', () => {
    assert.deepEqual(validate([load('sale.yml', sale({ '  total: total\n': `  total: "'12.5x'"\n  issued_on: "'2024-01-31'"\n` }))]), [
      "mappings/sale.yml:10:11: BL-M008 '12.5x' is not a number, but numeric is needed here. Write a constant of type numeric, or convert the other value with text(...).",
    ]);
  });

  test('unknown function, with a suggestion', () => {
    assert.deepEqual(validate([load('sale.yml', sale({ 'upper(trim(': 'upper(trimm(' }))]), [
      'mappings/sale.yml:9:24: BL-M012 unknown function "trimm". Did you mean trim(...)?',
    ]);
  });

  test('a parse error points inside the expression, also in a quoted value', () => {
    assert.deepEqual(
      validate([load('sale.yml', sale({ 'upper(trim(customer_name))': 'upper(trim(customer_name)', 'origin: "\'store\'"': `origin: "'store' || "` }))]),
      [
        'mappings/sale.yml:9:43: BL-M007 the expression for "customer_name" does not parse: expected "," or ")" but found the end of the expression. Separate the arguments of upper(...) with commas and close it with ).',
        "mappings/sale.yml:11:22: BL-M007 the expression for \"origin\" does not parse: expected a value but found the end of the expression. Write a source column, a constant such as 'text' or 12, or a function call here.",
      ],
    );
  });

  test('a key that is not unique at HQ', () => {
    assert.deepEqual(validate([load('sale.yml', sale({ 'columns:': 'key: [store_code, issued_at]\ncolumns:' }))]), [
      'mappings/sale.yml:5:6: BL-M009 the key (store_code, issued_at) is not a unique key of public.store_sale at HQ. Use one of its unique keys: [store_code, sale_id], [store_code, number]; or create a unique index on (store_code, issued_at) at HQ.',
    ]);
  });

  test('a key column that is not a column', () => {
    assert.deepEqual(validate([load('sale.yml', sale({ 'columns:': 'key: [store_code, sale]\ncolumns:' }))]), [
      'mappings/sale.yml:5:19: BL-M006 key column "sale" is not a column of public.store_sale. Did you mean "sale_id"?',
    ]);
  });

  test('a target without a primary key needs a key', () => {
    const f = load('copy.yml', 'source: sale\ntarget: sale_copy\ncolumns:\n  id: id\n');
    assert.deepEqual(validate([f]), [
      'mappings/copy.yml:2:9: BL-M009 target table public.sale_copy has no primary key, and this file does not say which columns identify a row. Add a primary key or a unique index to public.sale_copy at HQ, and name its columns with "key: [...]".',
    ]);
  });

  test('a key that a delete could not compute', () => {
    const text = sale({ 'columns:': 'key: [store_code, number]\ncolumns:', '  total: total\n': '  total: total\n  number: number + 0\n' });
    assert.deepEqual(validate([load('sale.yml', text)]), [
      "mappings/sale.yml:12:11: BL-M010 key column \"number\" reads \"number\", which a delete of public.sale does not carry. A key may read only public.sale's identity columns (id), store.code and constants: compute it from those, choose another key, or set REPLICA IDENTITY FULL on public.sale at the store.",
    ]);
  });

  test('an unmapped key column', () => {
    assert.deepEqual(validate([load('sale.yml', sale({ '  sale_id: id\n': '' }))]), [
      'mappings/sale.yml:5:1: BL-M010 key column "sale_id" of public.store_sale is not mapped. Add "sale_id: <expression>" under columns, computed from the source key (id), store.code or constants.',
    ]);
  });

  test('a NOT NULL column without default that is not mapped', () => {
    assert.deepEqual(validate([load('sale.yml', sale({ '  total: total\n': '' }))]), [
      `mappings/sale.yml:5:1: BL-M014 target column "total" of public.store_sale is NOT NULL and has no default, but this file does not map it. Add "total: <expression>" under columns (a constant such as "'X'" will do).`,
    ]);
  });

  test('source tables without a usable identity', () => {
    const audit = load('audit.yml', 'source: audit_log\ntarget: store\ncolumns:\n  code: what\n');
    const product = load('product.yml', 'source: product\ntarget: store\ncolumns:\n  code: code\n');
    assert.deepEqual(validate([audit, product]), [
      'mappings/audit.yml:1:9: BL-M013 source table public.audit_log has no primary key, so its deletes and key changes carry no key. At the store, add a primary key to public.audit_log, or run ALTER TABLE public.audit_log REPLICA IDENTITY FULL (or USING INDEX on a unique index).',
      'mappings/product.yml:1:9: BL-M013 source table public.product has REPLICA IDENTITY NOTHING, so its deletes and key changes carry no key. At the store, run ALTER TABLE public.product REPLICA IDENTITY DEFAULT (it needs a primary key) or REPLICA IDENTITY FULL.',
    ]);
  });

  test('missing tables, with suggestions from the table lists', () => {
    const f = load('sale.yml', sale({ 'source: sale': 'source: erp.sale', 'target: store_sale': 'target: store_sales' }));
    const problems = validateMappings([f], {
      source: storeCatalog(),
      sourceTables: [
        { schema: 'public', table: 'sale' },
        { schema: 'public', table: 'customer' },
      ],
      target: hqCatalog(),
    }).map(formatProblem);
    assert.deepEqual(problems, [
      'mappings/sale.yml:2:9: BL-M003 source table erp.sale does not exist at the store. Did you mean public.sale?',
      'mappings/sale.yml:3:9: BL-M004 target table public.store_sales does not exist at HQ. Did you mean public.store_sale?',
    ]);
  });

  test('two files with the same source and target', () => {
    assert.deepEqual(validate([load('a.yml', SALE), load('b.yml', SALE)]), [
      'mappings/b.yml:3:9: BL-M011 this file maps public.sale to public.store_sale, as mappings/a.yml already does. Merge the two files into one, or switch one off with "enabled: false".',
    ]);
  });

  test('disabled files are skipped', () => {
    const off = load('off.yml', 'source: nothing\ntarget: nowhere\nenabled: false\ncolumns:\n  x: y\n');
    assert.deepEqual(validate([load('sale.yml', SALE), off]), []);
    assert.deepEqual(mappedTables([off]), { sources: [], targets: [] });
  });

  test('without the store catalog, source checks are skipped and the rest still runs', () => {
    const f = load('sale.yml', sale({ 'trim(customer_name)': 'trimm(custmer_name)', 'source: sale': 'source: sales' }));
    assert.deepEqual(validate([f], null as never), [
      'mappings/sale.yml:9:24: BL-M012 unknown function "trimm". Did you mean trim(...)?',
    ]);
  });

  test('every problem of several files at once, sorted by file, line and column', () => {
    const a = load(
      'a-sale.yml',
      `source: sale
target: store_sale
columns:
  store_code: store.code
  sale_id: id
  issued_at: issued_at
  customer_name: uper(customer_nme)
  total: total_amount
  colour: "'red'"
`,
    );
    const b = load('b-items.yml', 'source: sale_item\ntarget: store_sale_item\nkey: [store_code, line_no]\ncolumns:\n  store_code: store.code\n  line_no: line_no\n');
    const c = load('c-nokey.yml', 'source: sales\ntarget: sale_copy\ncolumns:\n  id: id\n');
    const problems: Problem[] = validateMappings([c, a, b], { source: storeCatalog(), target: hqCatalog() });
    assert.deepEqual(
      problems.map((p) => `${p.location?.file}:${p.location?.line}:${p.location?.column} ${p.code}`),
      [
        'mappings/a-sale.yml:7:18 BL-M012',
        'mappings/a-sale.yml:7:23 BL-M005',
        'mappings/a-sale.yml:8:10 BL-M005',
        'mappings/a-sale.yml:9:3 BL-M006',
        'mappings/b-items.yml:3:6 BL-M009',
        'mappings/b-items.yml:4:1 BL-M014',
        'mappings/b-items.yml:4:1 BL-M014',
        'mappings/c-nokey.yml:1:9 BL-M003',
        'mappings/c-nokey.yml:2:9 BL-M009',
      ],
    );
  });
});

describe('loading a directory', () => {
  test('reads *.yml and *.yaml in name order, not recursively, and collects problems', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bl-mappings-'));
    try {
      await writeFile(join(dir, 'b-sale.yaml'), SALE);
      await writeFile(join(dir, 'a-item.yml'), 'source: sale_item\ntarget: store_sale_item\ncolumns:\n  line_no: line_no\n');
      await writeFile(join(dir, 'c-bad.yml'), 'source: sale\ntarget: store_sale\nextra: 1\ncolumns:\n  a: b\n');
      await writeFile(join(dir, 'notes.txt'), 'not a mapping');
      await mkdir(join(dir, 'old.yml'));
      await writeFile(join(dir, 'old.yml', 'x.yml'), 'broken: [');
      const { files, problems } = await loadMappingDir(dir);
      assert.deepEqual(
        files.map((f) => f.file),
        [join(dir, 'a-item.yml'), join(dir, 'b-sale.yaml')],
      );
      assert.deepEqual(problems.map(formatProblem), [
        `${join(dir, 'c-bad.yml')}:3:1: BL-M002 unknown setting "extra" at the top level in this mapping file. Remove it or use one of: direction, source, target, route, effective_at, labels, key, enabled, description, columns, filter, on_conflict, on_delete, settlement.`,
      ]);
      assert.deepEqual(mappedTables(files), {
        sources: [
          { schema: 'public', table: 'sale_item' },
          { schema: 'public', table: 'sale' },
        ],
        targets: [
          { schema: 'public', table: 'store_sale_item' },
          { schema: 'public', table: 'store_sale' },
        ],
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a missing directory is BL-C006', async () => {
    await assert.rejects(loadMappingDir('/nonexistent/branchline-mappings'), (e: unknown) => {
      assert.ok(e instanceof BranchlineError);
      assert.equal(e.code, 'BL-C006');
      assert.equal(
        e.message,
        "BL-C006 mapping directory /nonexistent/branchline-mappings cannot be read (ENOENT). Create it, or point the configuration's mapping directory at the folder that holds the *.yml mapping files.",
      );
      return true;
    });
  });
});
