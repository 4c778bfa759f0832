import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkExpression, type ColumnScope } from '../src/mapping/expr/check.js';
import { compileExpression } from '../src/mapping/expr/compile.js';
import { ExprSyntaxError } from '../src/mapping/expr/lexer.js';
import { parseExpression } from '../src/mapping/expr/parser.js';
import { RowEvalError } from '../src/mapping/expr/runtime.js';
import { columnType } from '../src/mapping/expr/types.js';
import { col } from './support/mapping-catalog.js';

/** Source columns the expressions below may read. */
const COLUMNS = [
  col('name', 'text'),
  col('qty', 'integer'),
  col('price', 'numeric(12,2)'),
  col('rate', 'numeric(12,4)'),
  col('big', 'bigint'),
  col('flag', 'boolean'),
  col('born_on', 'date'),
  col('at', 'timestamp without time zone'),
  col('code', 'text'),
  col('Quoted Name', 'text'),
];

const SCOPE: ColumnScope = {
  table: 'public.t',
  names: COLUMNS.map((c) => c.name),
  lookup: (n) => {
    const c = COLUMNS.find((x) => x.name === n);
    return c ? columnType(c) : undefined;
  },
};

const CTX = { storeCode: 'S001' };

/** Evaluates `text` on `row`; `typed: false` checks it without a source catalog (types unknown). */
function ev(text: string, row: Record<string, string | null> = {}, typed = true): string | null {
  const checked = checkExpression(parseExpression(text), typed ? SCOPE : null);
  assert.deepEqual(checked.issues, [], `issues for ${text}`);
  return compileExpression(checked)(row, CTX);
}

function issues(text: string): { code: string; index: number; message: string; hint: string }[] {
  return checkExpression(parseExpression(text), SCOPE).issues.map((i) => ({ ...i }));
}

function syntaxError(text: string): { index: number; message: string } {
  try {
    parseExpression(text);
  } catch (e) {
    assert.ok(e instanceof ExprSyntaxError);
    return { index: e.index, message: e.message };
  }
  assert.fail(`${text} parsed`);
}

function rowError(text: string, row: Record<string, string | null> = {}): string {
  try {
    ev(text, row);
  } catch (e) {
    assert.ok(e instanceof RowEvalError, String(e));
    return e.message;
  }
  assert.fail(`${text} did not fail`);
}

describe('decimal arithmetic is exact', () => {
  test('0.1 + 0.2 is 0.3', () => {
    assert.equal(ev('0.1 + 0.2'), '0.3');
  });
  test('multiplication adds the scales', () => {
    assert.equal(ev('qty * price', { qty: '3', price: '2.50' }), '7.50');
    assert.equal(ev('price * rate', { price: '1.50', rate: '2.2500' }), '3.375000');
  });
  test('addition and subtraction keep the larger scale', () => {
    assert.equal(ev('price - rate', { price: '1.00', rate: '2.5000' }), '-1.5000');
    assert.equal(ev('-price', { price: '0.00' }), '0.00');
  });
  test('integers beyond 2^53 stay exact', () => {
    assert.equal(ev('big + 1', { big: '9007199254740993' }), '9007199254740994');
    assert.equal(ev('big * big', { big: '9223372036854775807' }), '85070591730234615847396907784232501249');
  });
  test('division gives at least 16 decimals, rounded half to even', () => {
    assert.equal(ev('1 / 3'), '0.3333333333333333');
    assert.equal(ev('2 / 3'), '0.6666666666666667');
    assert.equal(ev('10 / 4'), '2.5000000000000000');
    assert.equal(ev('0.0000000000000001 / 2'), '0.0000000000000000');
    assert.equal(ev('0.0000000000000003 / 2'), '0.0000000000000002');
    assert.equal(ev('-0.0000000000000003 / 2'), '-0.0000000000000002');
  });
  test('division by zero is a row error', () => {
    assert.equal(rowError('qty / 0', { qty: '5' }), 'division by zero');
    assert.equal(ev('qty / nullif(0, 0)', { qty: '5' }), null);
  });
  test('round is half away from zero, abs keeps the scale', () => {
    assert.equal(ev('round(2.5)'), '3');
    assert.equal(ev('round(-2.5)'), '-3');
    assert.equal(ev('round(1.005, 2)'), '1.01');
    assert.equal(ev('round(1234.5, -2)'), '1200');
    assert.equal(ev('round(1.5, 3)'), '1.500');
    assert.equal(ev('abs(price)', { price: '-1.50' }), '1.50');
  });
});

describe('NULL semantics', () => {
  test('operators give null when an input is null', () => {
    assert.equal(ev('qty + 1', { qty: null }), null);
    assert.equal(ev("name || 'x'", { name: null }), null);
    assert.equal(ev('upper(name)', { name: null }), null);
    assert.equal(ev('-qty', { qty: null }), null);
  });
  test('concat ignores nulls and coalesce takes the first value', () => {
    assert.equal(ev("concat('a', name, 'b')", { name: null }), 'ab');
    assert.equal(ev("coalesce(name, code, 'none')", { name: null, code: 'C1' }), 'C1');
    assert.equal(ev('coalesce(name, code)', { name: null, code: null }), null);
  });
  test('comparisons with null are null', () => {
    assert.equal(ev('qty = null', { qty: '1' }), null);
    assert.equal(ev('null = null'), null);
    assert.equal(ev('qty <> 1', { qty: null }), null);
  });
  test('and / or / not are three-valued', () => {
    assert.equal(ev('flag and false', { flag: null }), 'f');
    assert.equal(ev('flag and true', { flag: null }), null);
    assert.equal(ev('flag or true', { flag: null }), 't');
    assert.equal(ev('flag or false', { flag: null }), null);
    assert.equal(ev('not flag', { flag: null }), null);
    assert.equal(ev('not flag', { flag: 't' }), 'f');
  });
  test('is null / is not null', () => {
    assert.equal(ev('name is null', { name: null }), 't');
    assert.equal(ev('name is not null', { name: null }), 'f');
    assert.equal(ev('qty + 1 is null', { qty: '1' }), 'f');
  });
  test('nullif', () => {
    assert.equal(ev('nullif(qty, 0)', { qty: '0' }), null);
    assert.equal(ev('nullif(qty, 0)', { qty: '3' }), '3');
    assert.equal(ev("nullif(name, '')", { name: '' }), null);
  });
});

describe('comparisons', () => {
  test('numbers compare by value, not as text', () => {
    assert.equal(ev('qty > 5', { qty: '10' }), 't');
    assert.equal(ev('price = 1', { price: '1.00' }), 't');
    assert.equal(ev('price <> 1', { price: '1.01' }), 't');
    assert.equal(ev('qty != 10', { qty: '10' }), 'f');
  });
  test('text compares by character codes', () => {
    assert.equal(ev("name < 'b'", { name: 'a' }), 't');
    assert.equal(ev("name >= 'b'", { name: 'a' }), 'f');
  });
  test('a text constant is read as the type of the other side', () => {
    assert.equal(ev("born_on < '2000-01-01'", { born_on: '1999-12-31' }), 't');
    assert.equal(ev("flag = 'yes'", { flag: 't' }), 't');
    assert.equal(ev("qty = '10'", { qty: '10.0' }), 't');
  });
  test('without a catalog, values compare as numbers when both are numbers', () => {
    assert.equal(ev('qty > 5', { qty: '10' }, false), 't');
    assert.equal(ev("code > 'B'", { code: 'C' }, false), 't');
  });
});

describe('case', () => {
  const grade = "case when qty > 10 then 'big' when qty > 5 then 'mid' else 'small' end";
  test('takes the first true branch', () => {
    assert.equal(ev(grade, { qty: '11' }), 'big');
    assert.equal(ev(grade, { qty: '6' }), 'mid');
    assert.equal(ev(grade, { qty: '1' }), 'small');
  });
  test('a null condition is not true; no else gives null', () => {
    assert.equal(ev(grade, { qty: null }), 'small');
    assert.equal(ev("case when qty > 10 then 'big' end", { qty: '1' }), null);
  });
  test('numeric branches widen', () => {
    const checked = checkExpression(parseExpression('case when flag then qty else price end'), SCOPE);
    assert.equal(checked.type.category, 'numeric');
  });
});

describe('functions', () => {
  test('text functions', () => {
    assert.equal(ev("upper(trim('  ab c  '))"), 'AB C');
    assert.equal(ev("lower('ÀB')"), 'àb');
    assert.equal(ev("trim('\tx ')"), '\tx', 'trim removes spaces only, like PostgreSQL');
    assert.equal(ev("ltrim('xxaxx', 'x')"), 'axx');
    assert.equal(ev("rtrim('xxaxx', 'x')"), 'xxa');
    assert.equal(ev("replace('a-b-c', '-', '/')"), 'a/b/c');
    assert.equal(ev("replace('abc', '', 'x')"), 'abc');
  });
  test('length and positions count characters, not UTF-16 units', () => {
    assert.equal(ev("length('a😀b')"), '3');
    assert.equal(ev("substr('a😀bc', 2, 2)"), '😀b');
    assert.equal(ev("right('a😀', 1)"), '😀');
  });
  test('substr is 1-based like SQL', () => {
    assert.equal(ev("substr('hello', 2)"), 'ello');
    assert.equal(ev("substr('hello', 2, 3)"), 'ell');
    assert.equal(ev("substr('hello', 0, 3)"), 'he');
    assert.equal(rowError("substr('hello', 1, -1)"), 'substr was given a negative length');
  });
  test('left, right, lpad, rpad', () => {
    assert.equal(ev("left('hello', 2)"), 'he');
    assert.equal(ev("left('hello', -2)"), 'hel');
    assert.equal(ev("right('hello', 2)"), 'lo');
    assert.equal(ev("right('hello', -2)"), 'llo');
    assert.equal(ev("lpad(text(qty), 5, '0')", { qty: '42' }), '00042');
    assert.equal(ev("lpad('abcd', 2)"), 'ab');
    assert.equal(ev("rpad('ab', 5, 'xy')"), 'abxyx');
    assert.equal(ev("rpad('ab', 4)"), 'ab  ');
  });
  test('conversions', () => {
    assert.equal(ev("integer(' 12 ')"), '12');
    assert.equal(ev('integer(price)', { price: '12.50' }), '13');
    assert.equal(ev('integer(flag)', { flag: 't' }), '1');
    assert.equal(ev("numeric('1e3')"), '1000');
    assert.equal(ev("numeric('+1.50')"), '1.50');
    assert.equal(ev('text(qty)', { qty: '7' }), '7');
    assert.equal(ev('date(at)', { at: '2024-05-01 13:45:00' }), '2024-05-01');
    assert.equal(ev("date('2024-05-01 13:45:00+02')"), '2024-05-01');
    assert.equal(ev("boolean('yes')"), 't');
    assert.equal(ev("boolean('OFF')"), 'f');
    assert.equal(ev('boolean(qty)', { qty: '0' }), 'f');
    assert.equal(ev('boolean(qty)', { qty: '2' }), 't');
  });
  test('conversions that fail are row errors', () => {
    assert.equal(rowError('integer(name)', { name: 'abc' }), "integer() cannot convert 'abc': it is not a number");
    assert.equal(rowError('date(name)', { name: '2024-02-30' }), "date() cannot convert '2024-02-30': it is not a date or timestamp");
    assert.equal(
      rowError('boolean(name)', { name: 'maybe' }),
      "boolean() cannot convert 'maybe': it is not one of t/f, true/false, yes/no, on/off, 1/0",
    );
  });
  test('function names are case-insensitive', () => {
    assert.equal(ev("UPPER('a') || Lower('B')"), 'Ab');
  });
});

describe('names', () => {
  test('store.code is the pipeline store', () => {
    assert.equal(ev("store.code || '-' || text(qty)", { qty: '1' }), 'S001-1');
  });
  test('a quoted name reads a column with spaces or capitals', () => {
    assert.equal(ev('"Quoted Name"', { 'Quoted Name': 'x' }), 'x');
  });
  test("'' escapes a quote in a text constant", () => {
    assert.equal(ev("'it''s'"), "it's");
  });
  test('constant expressions are computed once', () => {
    const checked = checkExpression(parseExpression("upper('a') || store.code"), SCOPE);
    assert.deepEqual(checked.columns, []);
    assert.equal(checked.readsStoreCode, true);
  });
});

describe('precedence', () => {
  test('follows PostgreSQL', () => {
    assert.equal(ev('1 + 2 * 3'), '7');
    assert.equal(ev('(1 + 2) * 3'), '9');
    assert.equal(ev("'n' || 1 + 2"), 'n3');
    assert.equal(ev('-2 * 3'), '-6');
    assert.equal(ev('not 1 = 2 and 2 = 2'), 't');
    assert.equal(ev('1 = 2 or 2 = 2 and 3 = 4'), 'f');
    assert.equal(ev('1 = 1 is null'), 'f');
  });
  test('keywords are case-insensitive', () => {
    assert.equal(ev("CASE WHEN name IS NOT NULL AND TRUE THEN 'y' ELSE NULL END", { name: 'x' }), 'y');
  });
});

describe('syntax errors point at the token', () => {
  test('unclosed call', () => {
    assert.deepEqual(syntaxError('upper(name'), { index: 10, message: 'expected "," or ")" but found the end of the expression' });
  });
  test('missing operand', () => {
    assert.deepEqual(syntaxError('qty +'), { index: 5, message: 'expected a value but found the end of the expression' });
  });
  test('missing operator', () => {
    assert.deepEqual(syntaxError('qty 5'), { index: 4, message: 'unexpected "5" after a complete expression' });
  });
  test('unclosed text', () => {
    assert.deepEqual(syntaxError("name || 'abc"), { index: 8, message: 'the text literal is not closed' });
  });
  test('chained comparison', () => {
    assert.deepEqual(syntaxError('1 < qty < 3'), { index: 8, message: 'comparisons cannot be chained' });
  });
  test('dotted names other than store.code', () => {
    assert.deepEqual(syntaxError('sale.id'), { index: 4, message: '"sale.id" is not a column: only store.code is written with a dot' });
  });
  test('unexpected character', () => {
    assert.deepEqual(syntaxError('qty @ 2'), { index: 4, message: 'unexpected character "@"' });
  });
  test('case without end', () => {
    assert.deepEqual(syntaxError("case when flag then 'y'"), { index: 23, message: 'expected "end" but found the end of the expression' });
  });
  test('empty', () => {
    assert.deepEqual(syntaxError('  '), { index: 0, message: 'the expression is empty' });
  });
});

describe('static checks', () => {
  test('unknown column with a suggestion', () => {
    assert.deepEqual(issues('upper(nmae)'), [
      {
        code: 'BL-M005',
        index: 6,
        message: 'unknown source column "nmae": table public.t has no such column',
        hint: 'Did you mean "name"?',
      },
    ]);
  });
  test('unknown function with a suggestion', () => {
    assert.deepEqual(issues("uper(name) || 'x'"), [
      { code: 'BL-M012', index: 0, message: 'unknown function "uper"', hint: 'Did you mean upper(...)?' },
    ]);
  });
  test('wrong number of arguments', () => {
    assert.deepEqual(issues('substr(name)'), [
      {
        code: 'BL-M007',
        index: 0,
        message: 'substr takes 2 or 3 arguments, but 1 is given',
        hint: 'Write substr(text, start[, length]).',
      },
    ]);
  });
  test('arithmetic on text', () => {
    assert.deepEqual(issues('qty + name'), [
      {
        code: 'BL-M008',
        index: 6,
        message: '"+" needs numbers, but this is text',
        hint: "To join texts use ||, e.g. a || ' ' || b; to add, convert with numeric(...).",
      },
    ]);
  });
  test('comparing unrelated types', () => {
    assert.deepEqual(issues('qty = name'), [
      {
        code: 'BL-M008',
        index: 4,
        message: 'cannot compare integer with text',
        hint: 'Convert one side so both have the same type, e.g. text(x), integer(x) or date(x).',
      },
    ]);
  });
  test('a condition must be boolean', () => {
    assert.deepEqual(issues("case when qty then 'a' end"), [
      {
        code: 'BL-M008',
        index: 10,
        message: 'the condition after "when" must be true or false, but it is integer',
        hint: "Compare it, e.g. x > 0, x = 'S' or x is not null.",
      },
    ]);
  });
  test('a text constant that is not a number', () => {
    assert.deepEqual(issues("qty = 'ten'"), [
      {
        code: 'BL-M008',
        index: 6,
        message: "'ten' is not a whole number, but integer is needed here",
        hint: 'Write a constant of type integer, or convert the other value with text(...).',
      },
    ]);
  });
  test('case branches of different types', () => {
    assert.deepEqual(issues('case when flag then qty else born_on end'), [
      {
        code: 'BL-M008',
        index: 29,
        message: 'the branches of this case give different types (integer, date)',
        hint: 'Give every branch the same type, e.g. convert with text(...), integer(...) or numeric(...).',
      },
    ]);
  });
  test('whole-number arguments', () => {
    assert.deepEqual(issues('substr(name, price)'), [
      {
        code: 'BL-M008',
        index: 13,
        message: 'the 2nd argument of substr must be a whole number, but it is numeric',
        hint: 'Wrap it in round(...).',
      },
    ]);
  });
  test('every problem of one expression is reported', () => {
    assert.deepEqual(
      issues('nmae || uper(cod)').map((i) => [i.code, i.index]),
      [
        ['BL-M005', 0],
        ['BL-M005', 13],
        ['BL-M012', 8],
      ],
    );
  });
  test('without a source catalog, any name is a column', () => {
    const checked = checkExpression(parseExpression('anything + 1'), null);
    assert.deepEqual(checked.issues, []);
    assert.deepEqual(checked.columns, ['anything']);
    assert.equal(checked.type.category, 'unknown');
  });
});
