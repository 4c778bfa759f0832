import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { mssqlTypeMapping } from '../connectors/mssql-trigger/types.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { TYPE_CASES } from './support/mssql-type-cases.js';

/**
 * What the mssql-trigger reader delivers applies at HQ unchanged: every
 * normalized text is cast by a real PostgreSQL into the type it maps to, and
 * PostgreSQL's own text of the result (raw, no driver parsing, session in
 * UTC as branchline's connections are) is exactly the delivered text.
 */
describe('mssql-trigger types at a real PostgreSQL', () => {
  let server: TestServer;
  let db: pg.Client;

  before(async () => {
    server = await startTestServer('mssql-types');
    const name = await server.createDatabase('mssql_types');
    db = new pg.Client({ connectionString: server.url(name), options: '-c TimeZone=UTC -c DateStyle=ISO,YMD' });
    await db.connect();
  });

  after(async () => {
    await db?.end().catch(() => undefined);
    await server?.dispose();
  });

  const raw = { getTypeParser: () => (v: string) => v };

  for (const c of TYPE_CASES) {
    test(`${c.label} -> ${c.pgType}`, async () => {
      const m = mssqlTypeMapping(c.type)!;
      for (const [text, expected] of c.samples) {
        const delivered = m.normalize(text);
        assert.equal(delivered, expected);
        const res = await db.query<{ v: string }>({ text: `SELECT CAST($1::text AS ${m.pgType}) AS v`, values: [delivered], types: raw });
        assert.equal(res.rows[0]!.v, delivered, `${c.label}: PostgreSQL reads ${JSON.stringify(delivered)} back as ${JSON.stringify(res.rows[0]!.v)}`);
      }
      const nul = await db.query<{ v: string | null }>({ text: `SELECT CAST($1::text AS ${m.pgType}) AS v`, values: [null], types: raw });
      assert.equal(nul.rows[0]!.v, null);
    });
  }

  test('the type names the catalog reports are the ones PostgreSQL prints (format_type)', async () => {
    for (const c of TYPE_CASES) {
      const m = mssqlTypeMapping(c.type)!;
      const res = await db.query<{ t: string; n: string }>(
        `SELECT format_type(t.oid, NULL) AS n, format_type(pg_typeof(CAST(NULL AS ${m.pgType}))::oid, NULL) AS t FROM pg_type t WHERE t.typname = $1`,
        [m.pgTypeName],
      );
      assert.equal(res.rows.length, 1, `${m.pgTypeName} exists`);
      assert.equal(res.rows[0]!.t, res.rows[0]!.n, `${c.label}: ${m.pgType} is a ${m.pgTypeName}`);
    }
  });
});
