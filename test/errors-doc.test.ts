import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ERROR_CODES } from '../src/core/errors.js';

test('every error code is documented in docs/errors.md, and nothing else is', async () => {
  const doc = await readFile(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| (BL-[A-Z]\d{3}) \|/gm)].map((m) => m[1]));
  const declared = new Set(Object.keys(ERROR_CODES));
  assert.deepEqual([...declared].filter((c) => !documented.has(c)), [], 'declared but not documented');
  assert.deepEqual([...documented].filter((c) => !declared.has(c!)), [], 'documented but not declared');
});
