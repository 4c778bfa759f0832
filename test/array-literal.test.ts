import assert from 'node:assert/strict';
import { test } from 'node:test';
import { textArrayLiteral } from '../src/apply/array-literal.js';
import { parseTextArray } from './support/pg-array.js';

const HOSTILE = ['', 'NULL', 'null', 'Null ', ' lead', 'trail ', 'a b', 'a,b', '{x}', 'say "hi"', 'back\\slash', 'tab\there', 'new\nline', 'café 😀', '\\"', 'ok'];

test('plain values go as they are, others are quoted and escaped, nulls are NULL', () => {
  assert.equal(textArrayLiteral([]), '{}');
  assert.equal(textArrayLiteral(['1', '12.50', 'S001', '2026-11-23']), '{1,12.50,S001,2026-11-23}');
  assert.equal(textArrayLiteral([null, undefined, '']), '{NULL,NULL,""}');
  assert.equal(textArrayLiteral(['NULL', 'null', 'nullx']), '{"NULL","null",nullx}');
  assert.equal(textArrayLiteral(['a b', 'a,b', '{x}', 'say "hi"', 'back\\slash']), '{"a b","a,b","{x}","say \\"hi\\"","back\\\\slash"}');
  assert.equal(textArrayLiteral(['2026-11-23 10:11:12.345678+00']), '{"2026-11-23 10:11:12.345678+00"}');
});

test('every hostile value reads back exactly', () => {
  assert.deepEqual(parseTextArray(textArrayLiteral([...HOSTILE, null])), [...HOSTILE, null]);
});
