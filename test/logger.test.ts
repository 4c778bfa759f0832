import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createLogger, redact, type Logger } from '../src/core/logger.js';

/** A logger writing into memory, and its output as parsed JSON lines. */
function capture(level = 'debug'): { logger: Logger; text: () => string; lines: (n: number) => Promise<Record<string, unknown>[]> } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString('utf8')));
  const logger = createLogger({ stream, level });
  return {
    logger,
    text: () => text,
    /** Waits (briefly) until `n` lines arrived, then parses every line. */
    async lines(n: number) {
      const deadline = Date.now() + 2_000;
      while (text.split('\n').filter(Boolean).length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      // One more turn: a line too many must show up as a failure, not be missed.
      await new Promise((r) => setTimeout(r, 20));
      assert.ok(text.endsWith('\n'), `output ends with a newline: ${JSON.stringify(text)}`);
      return text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
  };
}

/** Drops the timestamp after checking it is an ISO time of now. */
function withoutTimestamp(line: Record<string, unknown>): Record<string, unknown> {
  const { timestamp, ...rest } = line;
  assert.equal(typeof timestamp, 'string');
  const t = Date.parse(timestamp as string);
  assert.ok(Math.abs(Date.now() - t) < 60_000, `timestamp ${String(timestamp)} is now`);
  assert.match(timestamp as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  return rest;
}

describe('logger: JSON lines', () => {
  test('one JSON object per event, with level, message, timestamp and fields', async () => {
    const c = capture();
    c.logger.info('batch applied', { rows: 12, table: 'public.store_sale' });
    c.logger.warn('slow', { ms: 1500 });
    const lines = await c.lines(2);
    assert.equal(lines.length, 2);
    assert.deepEqual(withoutTimestamp(lines[0]!), { level: 'info', message: 'batch applied', rows: 12, table: 'public.store_sale' });
    assert.deepEqual(withoutTimestamp(lines[1]!), { level: 'warn', message: 'slow', ms: 1500 });
  });

  test('events below the level are dropped', async () => {
    const c = capture('warn');
    c.logger.debug('d');
    c.logger.info('i');
    c.logger.warn('w');
    c.logger.error('e');
    const lines = await c.lines(2);
    assert.deepEqual(
      lines.map((l) => [l['level'], l['message']]),
      [
        ['warn', 'w'],
        ['error', 'e'],
      ],
    );
  });
});

describe('logger: secrets are replaced by ***', () => {
  test('a password in a connection URL inside the message', async () => {
    const c = capture();
    c.logger.info('connecting to postgres://app:s3cret@db.example:5432/hq and postgresql://:only-pw@10.0.0.2/store');
    const [line] = await c.lines(1);
    assert.equal(line!['message'], 'connecting to postgres://app:***@db.example:5432/hq and postgresql://:***@10.0.0.2/store');
    assert.ok(!c.text().includes('s3cret'));
    assert.ok(!c.text().includes('only-pw'));
  });

  test('a password in a URL in a field, in nested fields and in arrays; other text untouched', async () => {
    const c = capture();
    c.logger.info('config', {
      url: 'postgres://u:p%40ss@h:6432/d?sslmode=require',
      stores: [{ code: 'S001', url: 'postgresql://store:St0re!@s1/erp' }, 'mssql://sa:Sql$erver1@mssql/erp'],
      plain: 'postgres://reader@h/d has no password',
    });
    const [line] = await c.lines(1);
    assert.deepEqual(withoutTimestamp(line!), {
      level: 'info',
      message: 'config',
      url: 'postgres://u:***@h:6432/d?sslmode=require',
      stores: [{ code: 'S001', url: 'postgresql://store:***@s1/erp' }, 'mssql://sa:***@mssql/erp'],
      plain: 'postgres://reader@h/d has no password',
    });
    for (const secret of ['p%40ss', 'St0re!', 'Sql$erver1']) assert.ok(!c.text().includes(secret), secret);
  });

  test('password=... text (libpq key=value, any case, quoted or not)', async () => {
    const c = capture();
    c.logger.info("dsn host=h port=5432 user=u password=pa$$ sslmode=require; PASSWORD = 'two words' pwd=\"x y\" passwd=z");
    c.logger.info('field', { dsn: 'host=h password=abc dbname=d' });
    const lines = await c.lines(2);
    assert.equal(lines[0]!['message'], 'dsn host=h port=5432 user=u password=*** sslmode=require; PASSWORD=*** pwd=*** passwd=***');
    assert.equal(lines[1]!['dsn'], 'host=h password=*** dbname=d');
    for (const secret of ['pa$$', 'two words', 'x y', 'passwd=z', 'abc']) assert.ok(!c.text().includes(secret), secret);
  });

  test('fields named password (and other secret names) at any of the first levels', async () => {
    const c = capture();
    c.logger.info('login', {
      user: 'app',
      password: 'hunter2',
      Password: 42,
      db: { host: 'h', password: 'inner', PWD: 'x1' },
      list: [{ passwd: 'x2' }],
      token: 't0k',
      secret: 's3',
      Authorization: 'Bearer abc',
      a: { b: { c: { d: { password: 'four-deep' } } } },
    });
    const [line] = await c.lines(1);
    assert.deepEqual(withoutTimestamp(line!), {
      level: 'info',
      message: 'login',
      user: 'app',
      password: '***',
      Password: '***',
      db: { host: 'h', password: '***', PWD: '***' },
      list: [{ passwd: '***' }],
      token: '***',
      secret: '***',
      Authorization: '***',
      a: { b: { c: { d: { password: '***' } } } },
    });
    for (const secret of ['hunter2', 'inner', 'x1', 'x2', 't0k', 's3', 'Bearer', 'four-deep']) assert.ok(!c.text().includes(secret), secret);
  });

  test('an Error in a field becomes its redacted message; an Error as meta keeps a redacted message and stack', async () => {
    const c = capture();
    c.logger.warn('retrying', { error: new Error('cannot reach postgres://u:pw1@h/d') });
    c.logger.warn('failed:', new Error('lost postgres://u:pw2@h/d'));
    const lines = await c.lines(2);
    assert.equal(lines[0]!['error'], 'cannot reach postgres://u:***@h/d');
    assert.equal(lines[1]!['message'], 'failed: lost postgres://u:***@h/d');
    assert.match(String(lines[1]!['stack']), /^Error: lost postgres:\/\/u:\*\*\*@h\/d\n/);
    assert.ok(!c.text().includes('pw1'));
    assert.ok(!c.text().includes('pw2'));
  });

  test('redact() on its own', () => {
    assert.equal(redact('postgres://a:b@c/d'), 'postgres://a:***@c/d');
    assert.equal(redact('POSTGRES://A:B@C/D'), 'POSTGRES://A:***@C/D');
    assert.equal(redact('sqlserver://sa:x@h'), 'sqlserver://sa:***@h');
    assert.equal(redact('password=abc'), 'password=***');
    assert.equal(redact('nothing secret here: user=app host=h'), 'nothing secret here: user=app host=h');
    assert.equal(redact('postgres://app@h:5432/d'), 'postgres://app@h:5432/d');
  });
});

describe('logger: child loggers carry context', () => {
  test('fields of every ancestor are on each line, the event\'s own fields too', async () => {
    const c = capture();
    const store = c.logger.child({ store: 'S001', pipeline: 'up:S001' });
    const table = store.child({ table: 'public.sale' });
    table.info('applied', { rows: 3 });
    store.warn('reconnecting');
    c.logger.info('root');
    const lines = (await c.lines(3)).map(withoutTimestamp);
    assert.deepEqual(lines, [
      { level: 'info', message: 'applied', store: 'S001', pipeline: 'up:S001', table: 'public.sale', rows: 3 },
      { level: 'warn', message: 'reconnecting', store: 'S001', pipeline: 'up:S001' },
      { level: 'info', message: 'root' },
    ]);
  });

  test('context fields are scrubbed like any other field', async () => {
    const c = capture();
    c.logger.child({ url: 'postgres://u:childpw@h/d', password: 'childpw2' }).info('x');
    const [line] = await c.lines(1);
    assert.deepEqual(withoutTimestamp(line!), { level: 'info', message: 'x', url: 'postgres://u:***@h/d', password: '***' });
    assert.ok(!c.text().includes('childpw'));
  });
});
