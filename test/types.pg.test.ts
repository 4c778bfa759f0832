import { NO_ENTITIES } from '../src/mapping/entities.js';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';
import { mappingProblems, readCatalog } from '../src/agent/prepare.js';
import { parseMappingFile } from '../src/mapping/index.js';
import { startInProcess, type InProcess } from './support/in-process.js';
import { eventually } from './support/world.js';

/**
 * Types and odd schemas: values of every common type reach HQ exactly as the
 * store holds them, through inserts, updates (one transaction for all rows,
 * then one transaction per row) and deletes. Store and HQ are compared by
 * reading both sides as text (md5 for big values) in sessions with the same
 * settings, so "equal" means the same value, not just "= says so".
 *
 * The stores run with odd session defaults (America/Sao_Paulo, DateStyle
 * SQL/DMY, IntervalStyle sql_standard, bytea_output escape,
 * extra_float_digits 0), HQ with UTC and a German DateStyle: what the
 * walsender and the sink print must not depend on them.
 *
 * Cases are grouped into stores (one pipeline each), so a case that stops its
 * pipeline on an error cannot hold up the cases of another group.
 */

type Value = string | null;

interface ValueCase {
  readonly name: string;
  /** Names the tables: t_<slug> at the store, h_<slug> at HQ. */
  readonly slug: string;
  readonly store: string;
  readonly storeType: string;
  readonly hqType: string;
  /** Input forms (as typed into psql); a NULL row is added when there is none. */
  readonly values: readonly Value[];
  /** SQL that reads column `c` for comparison (default `c::text`). */
  readonly cmp?: (c: string) => string;
  readonly todo?: string;
}

/**
 * The cases of store EQ (and json): values that each type's = calls equal
 * (0 = -0, 1.0 = 1.00, '1 mon' = '30 days', citext ignores case; json has no
 * = at all) must still reach HQ as the store holds them. The upsert's guard
 * compares stored images (record_image_ne), not =.
 */

const BIG = (c: string) => `CASE WHEN ${c} IS NULL THEN NULL ELSE md5(${c}) || ' ' || length(${c}) END`;
const HEX = (c: string) => `encode(${c}, 'hex')`;

const bigText = (chars: number) => {
  let s = '';
  while (s.length < chars) s += randomBytes(3000).toString('base64') + ' Ação 中文 🍕 e\u0301 "q" \\ {x} ';
  return s.slice(0, chars);
};
const hex = (b: Buffer) => `\\x${b.toString('hex')}`;
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

const HOSTILE_TEXT: readonly Value[] = [
  'Ação',
  'naïve café — “curly” ‘quotes’',
  '中文 日本語 한국어',
  '🍕 pizza 👩‍👩‍👧 family 🇧🇷',
  'e\u0301 combining, A\u030A vs \u00C5',
  'say "hi"',
  "it's",
  'back\\slash \\\\ two, and \\" an escaped quote',
  'a,b,c',
  '{braces}',
  '{"a","b"}',
  '{}',
  'NULL',
  'null',
  '',
  ' leading and trailing ',
  '   ',
  'line1\nline2\r\nline3',
  'tab\there\tand\tthere',
  '\v\f',
  'שלום עולם',
  'zero\u200bwidth nbsp\u00a0here line\u2028sep',
  '\\x00 \\000 not a NUL',
  '$1 %s ${x} ? :name',
  "'; DROP TABLE t; --",
  'x'.repeat(3000),
  null,
];

/** Every value case: one row of store type, HQ type and values (edge values included). */
const CASES: readonly ValueCase[] = [
  // numbers
  {
    name: 'numeric(30,10): many digits, no float drift, NaN',
    slug: 'num30',
    store: 'NUM',
    storeType: 'numeric(30,10)',
    hqType: 'numeric(30,10)',
    values: ['12345678901234567890.0123456789', '-12345678901234567890.0123456789', '-0.0000000001', '0', '0.0000000001', '99999999999999999999.9999999999', 'NaN', '1.5', null],
  },
  {
    name: 'numeric without typmod: 80 digits, 1e100, tiny, NaN, ±Infinity',
    slug: 'numfree',
    store: 'NUM',
    storeType: 'numeric',
    hqType: 'numeric',
    values: [
      '3.14159265358979323846264338327950288419716939937510582097494459230781640628620899',
      '-0.000000000000000000000000000000000000000000000001',
      '1' + '0'.repeat(100),
      '1e-300',
      'NaN',
      'Infinity',
      '-Infinity',
      '0.000',
      '-42.50',
      null,
    ],
  },
  { name: 'integer (to bigint at HQ)', slug: 'int4', store: 'NUM', storeType: 'integer', hqType: 'bigint', values: ['0', '1', '-1', '2147483647', '-2147483648', null] },
  {
    name: 'bigint: max, min, beyond 2^53',
    slug: 'int8',
    store: 'NUM',
    storeType: 'bigint',
    hqType: 'bigint',
    values: ['9223372036854775807', '-9223372036854775808', '0', '9007199254740993', '-9007199254740993', null],
  },
  { name: 'smallint', slug: 'int2', store: 'NUM', storeType: 'smallint', hqType: 'smallint', values: ['32767', '-32768', '0', '-1', null] },
  {
    name: 'real: extremes, denormals, NaN, ±Infinity',
    slug: 'float4',
    store: 'NUM',
    storeType: 'real',
    hqType: 'real',
    values: ['3.4028235e+38', '-3.4028235e+38', '1.1754944e-38', '1e-45', '0.1', '-2.5', 'NaN', 'Infinity', '-Infinity', '0', '1.2345679', null],
  },
  {
    name: 'double precision: extremes, denormals, 0.1+0.2, NaN, ±Infinity',
    slug: 'float8',
    store: 'NUM',
    storeType: 'double precision',
    hqType: 'double precision',
    values: ['1.7976931348623157e+308', '5e-324', '2.2250738585072014e-308', '0.30000000000000004', '0.1', '-1e+100', 'NaN', 'Infinity', '-Infinity', '0', '1234567890.0123457', null],
  },
  // time
  {
    name: 'timestamp without time zone: microseconds, BC, limits, infinity',
    slug: 'ts',
    store: 'TIME',
    storeType: 'timestamp',
    hqType: 'timestamp',
    values: [
      '2024-02-29 23:59:59.999999',
      '1970-01-01 00:00:00',
      '0001-01-01 00:00:00',
      '0044-03-15 12:00:00 BC',
      '4714-11-24 00:00:00 BC',
      '294276-12-31 23:59:59.999999',
      'infinity',
      '-infinity',
      '2024-03-10 01:30:00.5',
      null,
    ],
  },
  {
    name: 'timestamptz: microseconds, offsets, local times of a Sao Paulo store (DST gap and overlap), limits, infinity',
    slug: 'tstz',
    store: 'TIME',
    storeType: 'timestamptz',
    hqType: 'timestamptz',
    values: [
      '2024-02-29 23:59:59.999999+00',
      '2024-06-01 12:34:56.789012-03',
      '2023-02-26 00:30:00',
      '2018-11-04 00:30:00',
      '2018-02-17 23:30:00',
      '1900-01-01 00:00:00+05:30',
      '2000-01-01 00:00:00.000001+14',
      '0001-01-01 00:00:00+00',
      '294276-12-31 23:59:59.999999+00',
      'infinity',
      '-infinity',
      null,
    ],
  },
  {
    name: 'date: leap day, BC, limits, infinity',
    slug: 'date',
    store: 'TIME',
    storeType: 'date',
    hqType: 'date',
    values: ['2024-02-29', '0001-01-01', '4714-11-24 BC', '0001-12-31 BC', '5874897-12-31', 'infinity', '-infinity', '1999-12-31', null],
  },
  { name: 'time', slug: 'time', store: 'TIME', storeType: 'time', hqType: 'time', values: ['00:00:00', '23:59:59.999999', '24:00:00', '12:34:56.5', '04:05:06.000001', null] },
  {
    name: 'time with time zone',
    slug: 'timetz',
    store: 'TIME',
    storeType: 'timetz',
    hqType: 'timetz',
    values: ['12:34:56.789+05:30', '00:00:00-12', '23:59:59.999999+14', '00:00:00+00', null],
  },
  {
    name: 'interval: mixed signs, limits, ISO and verbose input',
    slug: 'interval',
    store: 'TIME',
    storeType: 'interval',
    hqType: 'interval',
    values: [
      '1 year 2 mons 3 days 04:05:06.789',
      '-1 days +02:00:00',
      '178000000 years',
      '-178000000 years',
      '00:00:00.000001',
      '1 mon -1 days',
      'P1Y2M3DT4H5M6.5S',
      '@ 3 days 4 hours ago',
      '-2147483648 days',
      '2562047788:00:54.775807',
      null,
    ],
  },
  // text
  { name: 'text: any Unicode, quotes, backslashes, commas, braces, "NULL", empty, newlines, tabs', slug: 'text', store: 'TEXT', storeType: 'text', hqType: 'text', values: HOSTILE_TEXT },
  { name: 'character(10) (blank-padded)', slug: 'bpchar', store: 'TEXT', storeType: 'character(10)', hqType: 'character(10)', values: ['abc', '', 'Ação', ' x', 'ten chars!', null] },
  { name: 'varchar(40) to text', slug: 'varchar', store: 'TEXT', storeType: 'varchar(40)', hqType: 'text', values: HOSTILE_TEXT.filter((v) => v === null || v.length <= 40) },
  {
    name: 'large text (~200 KB, TOASTed)',
    slug: 'bigtext',
    store: 'TEXT',
    storeType: 'text',
    hqType: 'text',
    values: [bigText(200_000), 'x'.repeat(250_000), bigText(120_000), 'a', null],
    cmp: BIG,
  },
  {
    name: 'text[]: elements that need quoting inside the array literal',
    slug: 'textarr',
    store: 'TEXT',
    storeType: 'text[]',
    hqType: 'text[]',
    values: ['{}', '{NULL,"NULL","",a}', '{"a,b","{x}","q\\"uote","back\\\\slash"," sp "}', '{{a,b},{c,d}}', '{Ação,🍕,"line\nbreak"}', null],
  },
  { name: 'integer[] with NULLs and a lower bound', slug: 'intarr', store: 'TEXT', storeType: 'integer[]', hqType: 'integer[]', values: ['{1,NULL,-2147483648,2147483647}', '{}', '[0:1]={7,8}', null] },
  { name: 'enum (same type at HQ)', slug: 'enum', store: 'TEXT', storeType: 'mood', hqType: 'mood', values: ['ok', 'with space', 'Ação', 'so-so', null] },
  { name: 'inet', slug: 'inet', store: 'TEXT', storeType: 'inet', hqType: 'inet', values: ['192.168.0.1/24', '::1', '2001:db8::ff00:42:8329/64', '10.0.0.1', null] },
  // binary
  {
    name: 'bytea: empty, 0x00 bytes, every byte value, backslashes and quotes',
    slug: 'bytea',
    store: 'BIN',
    storeType: 'bytea',
    hqType: 'bytea',
    values: ['\\x', '\\x00', '\\x0000ff00', '\\x5c225c27', hex(ALL_BYTES), 'escape\\000input\\\\', null],
    cmp: HEX,
  },
  {
    name: 'bytea ~1 MB (TOASTed)',
    slug: 'bigbytea',
    store: 'BIN',
    storeType: 'bytea',
    hqType: 'bytea',
    values: [hex(randomBytes(1 << 20)), hex(Buffer.alloc(300_000)), hex(randomBytes(200_000)), '\\x01', null],
    cmp: BIG,
  },
  // json
  {
    name: 'jsonb: nested, unicode, quotes',
    slug: 'jsonb',
    store: 'JSONB',
    storeType: 'jsonb',
    hqType: 'jsonb',
    values: [
      '{"a": [1, 2.50, {"b": null}], "c": "Ação 🍕"}',
      '{"quote": "say \\"hi\\"", "bs": "a\\\\b", "uni": "\\u00e7\\ud83c\\udf55"}',
      '[]',
      '{}',
      '"just a string"',
      '123.4500',
      'null',
      '{"dup": 1, "dup": 2}',
      '[{"nested": [[[]]]}, "{", "}", ",", "NULL"]',
      null,
    ],
  },
  {
    name: 'json: kept verbatim (whitespace, duplicate keys), nested, unicode, quotes',
    slug: 'json',
    store: 'JSON',
    storeType: 'json',
    hqType: 'json',
    values: [
      '{"a": [1, 2.50, {"b": null}], "c": "Ação 🍕"}',
      '{"quote": "say \\"hi\\"", "bs": "a\\\\b", "uni": "\\u00e7\\ud83c\\udf55"}',
      '[]',
      '{}',
      '"just a string"',
      '123.4500',
      'null',
      '  {"spaces" :  true }  ',
      '{"dup": 1, "dup": 2}',
      '[{"nested": [[[]]]}, "{", "}", ",", "NULL"]',
      null,
    ],
  },
  // others
  { name: 'boolean', slug: 'bool', store: 'MISC', storeType: 'boolean', hqType: 'boolean', values: ['true', 'f', 'yes', 'off', null] },
  {
    name: 'uuid',
    slug: 'uuid',
    store: 'MISC',
    storeType: 'uuid',
    hqType: 'uuid',
    values: ['00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12}', null],
  },
  { name: 'domain over numeric (same domain at HQ)', slug: 'domain', store: 'MISC', storeType: 'amount', hqType: 'amount', values: ['0', '0.01', '9999999999999.99', '12.5', null] },
  // Values that = calls equal but that are not the same value: an update
  // from one to the other must still reach HQ.
  { name: 'double precision: 0 then -0', slug: 'eq_float', store: 'EQ', storeType: 'double precision', hqType: 'double precision', values: ['0', '-0', null] },
  { name: 'numeric: 1.0 then 1.00 then 1.000 (display scale)', slug: 'eq_num', store: 'EQ', storeType: 'numeric', hqType: 'numeric', values: ['1.0', '1.00', '1.000', null] },
  { name: 'interval: 1 mon then 30 days then 720:00:00', slug: 'eq_interval', store: 'EQ', storeType: 'interval', hqType: 'interval', values: ['1 mon', '30 days', '720:00:00', null] },
  { name: 'jsonb: {"n": 1.0} then {"n": 1.00}', slug: 'eq_jsonb', store: 'EQ', storeType: 'jsonb', hqType: 'jsonb', values: ['{"n": 1.0}', '{"n": 1.00}', null] },
  { name: 'citext: Abc then ABC', slug: 'eq_citext', store: 'EQ', storeType: 'citext', hqType: 'citext', values: ['Abc', 'ABC', 'abc', null] },
];

const STORES = ['NUM', 'TIME', 'TEXT', 'BIN', 'JSONB', 'JSON', 'MISC', 'EQ', 'KEYS', 'TOAST', 'ODD'];

const alterDb = (settings: Record<string, string>) =>
  `DO $$ BEGIN ${Object.entries(settings)
    .map(([k, v]) => `EXECUTE format('ALTER DATABASE %I SET ${k} TO %L', current_database(), '${v}');`)
    .join(' ')} END $$;`;

const COMMON_TYPES = `
  CREATE EXTENSION citext;
  CREATE TYPE mood AS ENUM ('ok', 'with space', 'Ação', 'so-so');
  CREATE DOMAIN amount AS numeric(15,2) CHECK (VALUE >= 0);`;

const STORE_SQL = `
  ${alterDb({ timezone: 'America/Sao_Paulo', datestyle: 'SQL, DMY', intervalstyle: 'sql_standard', bytea_output: 'escape', extra_float_digits: '0' })}
  ${COMMON_TYPES}
  ${CASES.map((c) => `CREATE TABLE t_${c.slug} (id int PRIMARY KEY, v ${c.storeType});`).join('\n  ')}
  CREATE TABLE t_ckey (code text, day date, n int, qty numeric(12,3), note text, PRIMARY KEY (code, day, n));
  CREATE TABLE t_ckey2 (u uuid, at timestamptz, s smallint, note text, PRIMARY KEY (u, at, s));
  CREATE TABLE t_toast (id int PRIMARY KEY, n int, big text, bin bytea);
  CREATE TABLE t_toast_full (id int PRIMARY KEY, n int, big text, bin bytea);
  ALTER TABLE t_toast_full REPLICA IDENTITY FULL;
  CREATE SCHEMA erp;
  CREATE TABLE erp."VendaItem" ("Id" int PRIMARY KEY, "order" int, "Preço Unitário" numeric(12,2), "select" text);
  CREATE TABLE t_gen (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, qty int, price numeric(12,2),
    total numeric GENERATED ALWAYS AS (qty * price) STORED);`;

const HQ_SQL = `
  ${alterDb({ timezone: 'UTC', datestyle: 'German, DMY' })}
  ${COMMON_TYPES}
  ${CASES.map((c) => `CREATE TABLE h_${c.slug} (store_code text NOT NULL, id int NOT NULL, v ${c.hqType}, PRIMARY KEY (store_code, id));`).join('\n  ')}
  CREATE TABLE h_ckey (store_code text, code text, day date, n int, qty numeric(12,3), note text, PRIMARY KEY (store_code, code, day, n));
  CREATE TABLE h_ckey2 (store_code text, u uuid, at timestamptz, s smallint, note text, PRIMARY KEY (store_code, u, at, s));
  CREATE TABLE h_toast (store_code text, id int, n int, big text, bin bytea, PRIMARY KEY (store_code, id));
  CREATE TABLE h_toast_full (store_code text, id int, n int, big text, bin bytea, PRIMARY KEY (store_code, id));
  CREATE SCHEMA "Hq"; CREATE TABLE "Hq"."OddTarget" (store_code text, "Id" int, "order" int, "Preço Unitário" numeric(12,2), "select" text, PRIMARY KEY (store_code, "Id"));
  CREATE TABLE h_gen (store_code text, id int, qty int, price numeric(12,2), total numeric, PRIMARY KEY (store_code, id));`;

const yml = (source: string, target: string, columns: readonly string[]) =>
  `source: ${source}\ntarget: ${target}\ncolumns:\n  store_code: store.code\n${columns.map((c) => `  ${c}\n`).join('')}`;

const MAPPINGS: Record<string, string> = {
  ...Object.fromEntries(CASES.map((c) => [`${c.slug}.yml`, yml(`t_${c.slug}`, `h_${c.slug}`, ['id: id', 'v: v'])])),
  'ckey.yml': yml('t_ckey', 'h_ckey', ['code: code', 'day: day', 'n: n', 'qty: qty', 'note: note']),
  'ckey2.yml': yml('t_ckey2', 'h_ckey2', ['u: u', 'at: at', 's: s', 'note: note']),
  'toast.yml': yml('t_toast', 'h_toast', ['id: id', 'n: n', 'big: big', 'bin: bin']),
  'toast_full.yml': yml('t_toast_full', 'h_toast_full', ['id: id', 'n: n', 'big: big', 'bin: bin']),
  'odd.yml': yml('erp.VendaItem', 'Hq.OddTarget', [`Id: '"Id"'`, `order: '"order"'`, `Preço Unitário: '"Preço Unitário"'`, `select: '"select"'`]),
  'gen.yml': yml('t_gen', 'h_gen', ['id: id', 'qty: qty', 'price: price', 'total: qty * price']),
};

/** The settings the comparisons read with, on both sides. */
const PINNED = '-c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=3 -c TimeZone=UTC -c bytea_output=hex';

describe('types and odd schemas', { timeout: 600_000 }, () => {
  let env: InProcess;
  const readers = new Map<string, pg.Client>();

  const storeOf = (code: string) => {
    const s = env.world.stores.find((x) => x.code === code);
    if (!s) throw new Error(`no store ${code}`);
    return s;
  };
  /** A write at the store, in the store's own session defaults (Sao Paulo, DMY, ...). */
  const write = (code: string, sql: string, params?: unknown[]) => storeOf(code).pool.query(sql, params);
  /** A read in pinned settings, the same at the store and at HQ. */
  const read = async (url: string, sql: string, params?: unknown[]) => {
    let c = readers.get(url);
    if (!c) {
      c = new pg.Client({ connectionString: url, options: PINNED });
      c.on('error', () => undefined);
      await c.connect();
      readers.set(url, c);
    }
    return (await c.query({ text: sql, values: params ?? [], rowMode: 'array' })).rows as unknown[][];
  };
  const readStore = (code: string, sql: string) => read(storeOf(code).server.url(storeOf(code).db), sql);
  const readHq = (code: string, sql: string) => read(env.world.hq.url, sql, [code]);

  /** Where the store's WAL is now: once its slot is acknowledged past this, HQ has committed everything before it. */
  const walNow = async (code: string) => (await write(code, 'SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0].l as string;
  const caughtUp = async (code: string, lsn: string) =>
    (await read(env.world.hq.url, `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2`, [lsn, `branchline_${code.toLowerCase()}`]))[0]?.[0] === true;

  /**
   * Waits until HQ holds what the store holds, then asserts it. Stops waiting
   * early when the pipeline has applied everything and HQ still differs, or
   * when the pipeline is stuck on an error (reported in the message).
   */
  async function converge(code: string, what: string, storeSql: string, hqSql: string): Promise<unknown[][]> {
    const lsn = await walNow(code);
    let errorSince = 0;
    let appliedPolls = 0;
    await eventually(what, async () => {
      const [s, h] = await Promise.all([readStore(code, storeSql), readHq(code, hqSql)]);
      if (isDeepStrictEqual(s, h)) return true;
      const err = env.agent.snapshot().get(code)?.lastError;
      errorSince = err ? errorSince || Date.now() : 0;
      if (errorSince && Date.now() - errorSince > 5_000) return true;
      appliedPolls = (await caughtUp(code, lsn)) ? appliedPolls + 1 : 0;
      return appliedPolls >= 3;
    }).catch(() => undefined);
    const [s, h] = await Promise.all([readStore(code, storeSql), readHq(code, hqSql)]);
    const err = env.agent.snapshot().get(code)?.lastError;
    assert.deepEqual(h, s, `${what}: HQ differs from the store${err ? ` (pipeline ${code} stopped on ${err.code}: ${err.message})` : ''}`);
    return s;
  }

  // Node warns of a possible leak past 10 listeners on one signal; eleven stores in one agent are not a leak.
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);

  before(async () => {
    env = await startInProcess({
      name: 'types',
      stores: STORES,
      hqSql: HQ_SQL,
      storeSql: STORE_SQL,
      mappings: MAPPINGS,
      // copy_min_rows 1: every insert goes to HQ by COPY (from the capture's bytes), so every type's value is checked through it; the arrays' INSERT is what hostile-values.pg.test.ts and the small batches elsewhere go through.
      extraConfig: 'batch:\n  max_delay_ms: 300\n  chunk_rows: 1000\napply:\n  copy_min_rows: 1',
    });
  });

  after(async () => {
    process.off('warning', onWarning);
    for (const c of readers.values()) await c.end().catch(() => undefined);
    await env?.dispose();
  });

  it(`one agent serving ${STORES.length} stores raises no listener warning (each store listens to the stop signal while it runs)`, async () => {
    // By the time this runs, every store's pipelines have started (the catalogue is loaded and they stream).
    await eventually('every store streaming', async () => [...env.agent.snapshot().values()].filter((p) => p.state === 'streaming').length === STORES.length);
    assert.deepEqual(warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message), []);
  });

  it('the stores and HQ really run with odd session defaults', async () => {
    const settings = async (url: string) => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        return (await c.query(`SELECT current_setting('TimeZone') AS tz, current_setting('DateStyle') AS ds, now()::text AS now`)).rows[0];
      } finally {
        await c.end();
      }
    };
    const s = await settings(storeOf('TIME').server.url(storeOf('TIME').db));
    assert.equal(s.tz, 'America/Sao_Paulo');
    assert.equal(s.ds, 'SQL, DMY');
    assert.match(s.now, /-03$/, 'the store prints timestamps in its own zone');
    const h = await settings(env.world.hq.url);
    assert.equal(h.tz, 'UTC');
    assert.equal(h.ds, 'German, DMY');
  });

  for (const c of CASES) {
    it(c.name, c.todo ? { todo: c.todo } : {}, async () => {
      const values = c.values.includes(null) ? [...c.values] : [...c.values, null];
      const n = values.length;
      const cmp = (c.cmp ?? ((x: string) => `${x}::text`))('v');
      const storeSql = `SELECT id, ${cmp} FROM t_${c.slug} ORDER BY id`;
      const hqSql = `SELECT id, ${cmp} FROM h_${c.slug} WHERE store_code = $1 ORDER BY id`;
      const table = `t_${c.slug}`;

      // Inserts: every value, one transaction.
      await write(c.store, `INSERT INTO ${table} (id, v) SELECT n, x::${c.storeType} FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS a(x, n)`, [
        JSON.stringify(values),
      ]);
      const inserted = await converge(c.store, `${c.slug} after insert`, storeSql, hqSql);
      assert.equal(inserted.length, n, 'every value is a row at the store');

      // Updates, one transaction: each row takes the next row's value.
      const rotated = values.map((_, i) => values[(i + 1) % n]!);
      await write(
        c.store,
        `UPDATE ${table} t SET v = s.x::${c.storeType} FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS s(x, n) WHERE t.id = s.n`,
        [JSON.stringify(rotated)],
      );
      const updated = await converge(c.store, `${c.slug} after one update of every row`, storeSql, hqSql);
      assert.notDeepEqual(updated, inserted, 'the update changed the store');

      // Updates, one transaction per row, back to back.
      for (let i = 0; i < n; i++) await write(c.store, `UPDATE ${table} SET v = $2::text::${c.storeType} WHERE id = $1`, [i + 1, values[(i + 2) % n]]);
      const updatedAgain = await converge(c.store, `${c.slug} after one transaction per row`, storeSql, hqSql);
      assert.notDeepEqual(updatedAgain, updated, 'the updates changed the store');

      // Deletes.
      await write(c.store, `DELETE FROM ${table} WHERE id % 2 = 1`);
      const left = await converge(c.store, `${c.slug} after delete`, storeSql, hqSql);
      assert.equal(left.length, Math.floor(n / 2));
    });
  }

  describe('composite primary keys', () => {
    it('text + date + int: inserts, updates, key changes move the row, deletes', async () => {
      const code = 'KEYS';
      const cols = `code, day::text, n::text, qty::text, note`;
      const storeSql = `SELECT ${cols} FROM t_ckey ORDER BY code COLLATE "C", day, n`;
      const hqSql = `SELECT ${cols} FROM h_ckey WHERE store_code = $1 ORDER BY code COLLATE "C", day, n`;
      await write(
        code,
        `INSERT INTO t_ckey VALUES ('A', '2024-01-31', 1, 1.5, 'first'), ('a,b {x} "q" \\ NULL', '2024-02-29', -1, NULL, NULL),
          ('NULL', 'infinity', 0, 0.001, 'Ação 🍕'), ('', '-infinity', 2147483647, -1, ''), ('Ação 🍕', '1999-12-31', -2147483648, 99, E'tab\\tnew\\nline'),
          ('swap-1', '2020-01-01', 1, 1, 'one'), ('swap-2', '2020-01-01', 1, 2, 'two')`,
      );
      const inserted = await converge(code, 'ckey after insert', storeSql, hqSql);
      assert.equal(inserted.length, 7);

      await write(code, `UPDATE t_ckey SET qty = qty * 2 + 0.001, note = coalesce(note, 'was null') || ' (edited)'`);
      await converge(code, 'ckey after non-key update', storeSql, hqSql);

      const keysBefore = await readStore(code, `SELECT code, day::text, n FROM t_ckey`);
      // One key column at a time, each in its own transaction; then a swap of two keys in one transaction.
      await write(code, `UPDATE t_ckey SET day = '2024-02-01' WHERE code = 'A'`);
      await write(code, `UPDATE t_ckey SET code = 'moved {x}', note = 'moved' WHERE code = 'a,b {x} "q" \\ NULL'`);
      await write(code, `UPDATE t_ckey SET n = 42 WHERE code = 'NULL'`);
      await write(code, `UPDATE t_ckey SET day = '2000-01-01' WHERE code = ''`);
      await write(code, `BEGIN; UPDATE t_ckey SET code = 'tmp' WHERE code = 'swap-1'; UPDATE t_ckey SET code = 'swap-1' WHERE code = 'swap-2';
        UPDATE t_ckey SET code = 'swap-2' WHERE code = 'tmp'; COMMIT;`);
      await converge(code, 'ckey after key changes', storeSql, hqSql);
      const keysAfter = await readStore(code, `SELECT code, day::text, n FROM t_ckey`);
      const k = (r: unknown[]) => JSON.stringify(r);
      const gone = keysBefore.filter((r) => !keysAfter.some((a) => k(a) === k(r)));
      assert.equal(gone.length, 4, 'four keys changed at the store');
      for (const [c, d, n] of gone) {
        assert.deepEqual(await readHq(code, `SELECT 1 FROM h_ckey WHERE store_code = $1 AND code = '${String(c).replace(/'/g, "''")}' AND day = '${d}' AND n = ${n}`), [], `old key ${c}/${d}/${n} is gone at HQ`);
      }
      const swapped = await readHq(code, `SELECT code, note FROM h_ckey WHERE store_code = $1 AND code LIKE 'swap-%' ORDER BY code`);
      assert.deepEqual(swapped, await readStore(code, `SELECT code, note FROM t_ckey WHERE code LIKE 'swap-%' ORDER BY code`));

      await write(code, `DELETE FROM t_ckey WHERE code IN ('moved {x}', 'NULL', 'swap-2')`);
      const left = await converge(code, 'ckey after delete', storeSql, hqSql);
      assert.equal(left.length, 4);
    });

    it('uuid + timestamptz + smallint (a Sao Paulo store): key changes and deletes match by instant', async () => {
      const code = 'KEYS';
      const cols = `u::text, at::text, s::text, note`;
      const storeSql = `SELECT ${cols} FROM t_ckey2 ORDER BY u, at, s`;
      const hqSql = `SELECT ${cols} FROM h_ckey2 WHERE store_code = $1 ORDER BY u, at, s`;
      await write(
        code,
        `INSERT INTO t_ckey2 VALUES ('00000000-0000-0000-0000-000000000001', '2024-06-01 12:00:00.000001', 1, 'local time'),
          ('00000000-0000-0000-0000-000000000001', '2024-06-01 12:00:00.000001+00', 1, 'same wall clock, UTC'),
          ('ffffffff-ffff-ffff-ffff-ffffffffffff', '2018-02-17 23:30:00', -32768, 'ambiguous local hour'),
          ('ffffffff-ffff-ffff-ffff-ffffffffffff', 'infinity', 32767, NULL)`,
      );
      assert.equal((await converge(code, 'ckey2 after insert', storeSql, hqSql)).length, 4);
      await write(code, `UPDATE t_ckey2 SET at = at + interval '1 microsecond', note = 'moved' WHERE s = 1 AND note = 'local time'`);
      await write(code, `UPDATE t_ckey2 SET s = 0 WHERE at = 'infinity'`);
      await converge(code, 'ckey2 after key changes', storeSql, hqSql);
      await write(code, `DELETE FROM t_ckey2 WHERE note = 'same wall clock, UTC' OR s = 0`);
      assert.equal((await converge(code, 'ckey2 after delete', storeSql, hqSql)).length, 2);
    });
  });

  describe('unchanged TOAST values', () => {
    const cols = `id, n, ${BIG('big')}, ${BIG('bin')}`;
    for (const identity of ['default', 'full'] as const) {
      const table = identity === 'full' ? 'toast_full' : 'toast';
      const storeSql = `SELECT ${cols} FROM t_${table} ORDER BY id`;
      const hqSql = `SELECT ${cols} FROM h_${table} WHERE store_code = $1 ORDER BY id`;
      const lost = async () =>
        readHq('TOAST', `SELECT h.id FROM h_${table} h WHERE h.store_code = $1 AND (h.big IS NULL OR h.bin IS NULL) AND h.id IN (1, 4, 101, 104) ORDER BY h.id`);

      it(`replica identity ${identity}: an update of another column keeps the big text and bytea at HQ`, async () => {
        await write('TOAST', `INSERT INTO t_${table} VALUES (1, 0, $1, $2::bytea), (2, 0, 'short', '\\x00'), (3, 0, NULL, NULL), (4, 0, $3, $4::bytea)`, [
          bigText(200_000),
          randomBytes(1 << 20),
          bigText(300_000),
          randomBytes(100_000),
        ]);
        assert.equal((await converge('TOAST', `${table} after insert`, storeSql, hqSql)).length, 4);
        // Each row on its own, then the big value and then another column in two transactions sent together.
        for (const id of [1, 2, 3, 4]) await write('TOAST', `UPDATE t_${table} SET n = n + 1 WHERE id = $1`, [id]);
        await write('TOAST', `BEGIN; UPDATE t_${table} SET big = big || '!' WHERE id = 4; COMMIT; BEGIN; UPDATE t_${table} SET n = n + 10 WHERE id = 4; COMMIT;`);
        await converge('TOAST', `${table} after updates of n`, storeSql, hqSql);
        assert.deepEqual(await lost(), [], 'a TOASTed value became NULL at HQ');
      });

      // With the default identity the update carries neither the unchanged
      // TOAST values nor the old row: the mapping deletes the old key and
      // upserts the new one without them, so HQ's moved row loses them.
      it(`replica identity ${identity}: a key change keeps the big text and bytea at HQ`, async () => {
        await write('TOAST', `UPDATE t_${table} SET id = id + 100 WHERE id IN (1, 4)`);
        const rows = await converge('TOAST', `${table} after key change`, storeSql, hqSql);
        assert.deepEqual(
          rows.map((r) => r[0]),
          [2, 3, 101, 104],
        );
        assert.deepEqual(await lost(), []);
        await write('TOAST', `DELETE FROM t_${table} WHERE id IN (2, 101)`);
        assert.equal((await converge('TOAST', `${table} after delete`, storeSql, hqSql)).length, 2);
      });
    }
  });

  describe('odd schemas', () => {
    it('capitals in schema and table names; quoted column names (spaces, capitals, accents, keywords)', async () => {
      const storeSql = `SELECT "Id", "order", "Preço Unitário"::text, "select" FROM erp."VendaItem" ORDER BY "Id"`;
      const hqSql = `SELECT "Id", "order", "Preço Unitário"::text, "select" FROM "Hq"."OddTarget" WHERE store_code = $1 ORDER BY "Id"`;
      await write('ODD', `INSERT INTO erp."VendaItem" VALUES (1, 10, 12.5, 'from'), (2, NULL, NULL, NULL), (3, -1, 9999999999.99, 'where "x" = 1')`);
      assert.equal((await converge('ODD', 'odd names after insert', storeSql, hqSql)).length, 3);
      await write('ODD', `UPDATE erp."VendaItem" SET "Preço Unitário" = "Preço Unitário" + 0.01, "Id" = "Id" + 10 WHERE "Id" = 1`);
      await write('ODD', `DELETE FROM erp."VendaItem" WHERE "Id" = 2`);
      assert.equal((await converge('ODD', 'odd names after update and delete', storeSql, hqSql)).length, 2);
    });

    it('a generated column at the store: computed by the mapping, HQ equals the store', async () => {
      const storeSql = `SELECT id, qty, price::text, total::text FROM t_gen ORDER BY id`;
      const hqSql = `SELECT id, qty, price::text, total::text FROM h_gen WHERE store_code = $1 ORDER BY id`;
      await write('ODD', `INSERT INTO t_gen (qty, price) VALUES (3, 1.10), (-2, 0.01), (NULL, 5), (1000000, 9999999999.99)`);
      assert.equal((await converge('ODD', 'generated after insert', storeSql, hqSql)).length, 4);
      await write('ODD', `UPDATE t_gen SET qty = qty + 1`);
      await converge('ODD', 'generated after update', storeSql, hqSql);
    });

    /** The problems `branchline validate` reports for one mapping file, against this test's HQ and ODD store. */
    const validate = async (text: string) => {
      const { file, problems } = parseMappingFile('probe.yml', text);
      assert.deepEqual(problems, []);
      const [src, tgt] = [file!.spec.source, file!.spec.target];
      const store = storeOf('ODD');
      const hq = await readCatalog(env.world.hq.url, 'HQ', [tgt]);
      const st = await readCatalog(store.server.url(store.db), 'store ODD', [src]);
      return mappingProblems({ dir: '.', files: [file!], down: [], problems: [], entities: NO_ENTITIES }, hq, st);
    };

    it(
      'mapping a generated store column (which pgoutput never sends) is refused with a clear error',
      async () => {
        const problems = await validate(yml('t_gen', 'h_gen', ['id: id', 'qty: qty', 'price: price', 'total: total']));
        assert.equal(problems.length, 1, `problems: ${JSON.stringify(problems)}`);
        assert.match(problems[0]!.message, /total/);
        assert.match(problems[0]!.message, /generated/);
        assert.equal(problems[0]!.code, 'BL-M005');
      },
    );

    it('a store domain written to a column of its base type is refused with a clear error (by design: a domain is its own type)', async () => {
      const problems = await validate(yml('t_domain', 'h_num30', ['id: id', 'v: v']));
      assert.equal(problems.length, 1, `problems: ${JSON.stringify(problems)}`);
      assert.equal(problems[0]!.code, 'BL-M008');
      assert.match(problems[0]!.message, /"v"/);
      assert.match(problems[0]!.message, /amount/);
      assert.equal(problems[0]!.location?.line, 6);
    });

    it('a table name with a space or an accent is refused with a clear error (by design: mapping files name plain identifiers)', () => {
      for (const name of ['erp.Venda Item', 'preço']) {
        const { file, problems } = parseMappingFile('probe.yml', yml(name, 'h_text', ['id: id', 'v: v']));
        assert.equal(file, null, name);
        assert.equal(problems.length, 1, `${name}: ${JSON.stringify(problems)}`);
        assert.equal(problems[0]!.code, 'BL-M002');
        assert.match(problems[0]!.message, /"source"/);
        assert.match(problems[0]!.hint ?? '', /schema\.table/);
        assert.deepEqual([problems[0]!.location?.line, problems[0]!.location?.column], [1, 9]);
      }
    });
  });
});
