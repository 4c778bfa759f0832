import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { textArrayLiteral } from '../src/apply/array-literal.js';
import { startTestServer, type TestServer } from './support/pg.js';

let server: TestServer;
let db: string;
before(async () => {
  server = await startTestServer('arrays');
  db = await server.createDatabase('arrays');
});
after(async () => server?.dispose());

test('PostgreSQL reads the literal back into exactly the values sent, in order', async () => {
  const values = ['', 'NULL', 'null', ' lead', 'trail ', 'a b', 'a,b', '{x}', 'say "hi"', 'back\\slash', 'tab\there', 'new\nline', 'café 😀 ✓', '\\"', null, 'x'.repeat(10_000), '0.1', '-0'];
  const rows = await server.query<{ v: string | null }>(db, `SELECT v FROM unnest($1::text[]) WITH ORDINALITY AS u(v, n) ORDER BY u.n`, [textArrayLiteral(values)]);
  assert.deepEqual(
    rows.map((r) => r.v),
    values,
  );
});
