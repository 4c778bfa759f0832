import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { defaultSlotName, loadConfig, parseConfig, selectStores, type Config } from '../src/config/load.js';
import { BranchlineError, formatProblem, ProblemsError } from '../src/core/errors.js';

let dir: string;
/** Where the configuration "lives": its mapping folder `maps` exists next to it. */
let file: string;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-config-test-'));
  await mkdir(path.join(dir, 'maps'));
  await mkdir(path.join(dir, 'etc', 'maps2'), { recursive: true });
  await writeFile(path.join(dir, 'not-a-dir.yml'), 'x: 1\n');
  file = path.join(dir, 'branchline.yml');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const MINIMAL = `hq:
  url: postgres://hq.example/hq
stores:
  - code: S001
    url: postgres://s1.example/erp
mappings: maps
`;

/** The problems `parseConfig` throws for `text`, as printed (file:line:column: code message hint). */
async function problems(text: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: string; summary: string; lines: string[] }> {
  try {
    await parseConfig(file, text, env);
  } catch (e) {
    assert.ok(e instanceof ProblemsError, `expected ProblemsError, got ${String(e)}`);
    return { code: e.code, summary: e.message.split('\n')[0]!, lines: e.problems.map(formatProblem) };
  }
  assert.fail('parseConfig accepted the configuration');
}

/** file:line:column of the configuration file. */
const at = (line: number, column: number) => `${file}:${line}:${column}`;

describe('config: defaults', () => {
  test('a minimal file is filled with every default', async () => {
    const config = await parseConfig(file, MINIMAL, {});
    const expected: Config = {
      file,
      hq: { url: 'postgres://hq.example/hq', readUrl: 'postgres://hq.example/hq', settlementTimeoutMs: 3_000 },
      stores: [
        {
          code: 'S001',
          name: 'S001',
          url: 'postgres://s1.example/erp',
          connector: 'pg-logical',
          slot: 'branchline_s001',
          publication: 'branchline',
          enabled: true,
          timeZone: 'UTC',
          readUrl: 'postgres://s1.example/erp',
          settlementTimeoutMs: 3_000,
        },
      ],
      mappingsDir: path.join(dir, 'maps'),
      batch: { maxRows: 20_000, maxDelayMs: 500, idleMs: 0, chunkRows: 5_000 },
      apply: { concurrency: 8, statementTimeoutMs: 300_000, sessionReplicationRole: 'origin', copyMinRows: 100 },
      retry: { initialMs: 500, maxMs: 30_000 },
      source: { statusIntervalMs: 10_000, silenceTimeoutMs: 45_000, pollMs: 200, purgeIntervalS: 60 },
      down: { pollMs: 1_000, retentionHours: 168, purgeIntervalS: 300, initialLoad: 'auto' },
      log: { level: 'info' },
      http: null,
      settlement: { timeoutMs: 3_000, maxRefs: 1_000 },
      queries: { stock: null, prices: null },
      reports: null,
      labels: null,
      lease: null,
    };
    assert.deepEqual(config, expected);
  });

  test('every setting given is used instead of its default', async () => {
    const config = await parseConfig(
      file,
      `hq:
  url: postgres://hq/hq
  read_url: postgres://reader@hq/hq
  settlement_timeout_ms: 800
stores:
  - code: S-01
    name: Centro
    url: postgres://s1/erp
    connector: pg-logical
    slot: my_slot
    publication: my_pub
    enabled: false
    time_zone: America/Sao_Paulo
    read_url: postgres://check@s1/erp
    settlement_timeout_ms: 5000
  - code: S002
    url: postgres://s2/erp
mappings: etc/maps2
batch:
  max_rows: 10
  max_delay_ms: 0
  idle_ms: 7
  chunk_rows: 3
apply:
  concurrency: 2
  statement_timeout_ms: 1000
  session_replication_role: replica
  copy_min_rows: 250
retry:
  initial_ms: 10
  max_ms: 100
source:
  status_interval_ms: 100
  silence_timeout_ms: 1000
  poll_ms: 300
  purge_interval_s: 9
down:
  poll_ms: 250
  retention_hours: 0.5
  purge_interval_s: 7
  initial_load: manual
log:
  level: debug
http:
  listen: "[::1]:9000"
  tokens:
    - name: hq-erp
      token: 0123456789abcdef0123456789abcdef
  max_body_bytes: 4096
settlement:
  timeout_ms: 700
  max_refs: 50
queries:
  stock:
    table: erp.store_stock
    product: product_id
    store: store_code
    columns: [quantity, reserved]
labels:
  folder: labels/{store}
  print_command: [lp, -d, shelf, "{file}"]
  decimal_separator: "."
  currency: US$
  time_zone: America/New_York
`,
      {},
    );
    assert.deepEqual(config.stores, [
      {
        code: 'S-01',
        name: 'Centro',
        url: 'postgres://s1/erp',
        connector: 'pg-logical',
        slot: 'my_slot',
        publication: 'my_pub',
        enabled: false,
        timeZone: 'America/Sao_Paulo',
        readUrl: 'postgres://check@s1/erp',
        settlementTimeoutMs: 5000,
      },
      // Unset: the store's own URL, and settlement.timeout_ms.
      { code: 'S002', name: 'S002', url: 'postgres://s2/erp', connector: 'pg-logical', slot: 'branchline_s002', publication: 'branchline', enabled: true, timeZone: 'UTC', readUrl: 'postgres://s2/erp', settlementTimeoutMs: 700 },
    ]);
    assert.deepEqual(config.hq, { url: 'postgres://hq/hq', readUrl: 'postgres://reader@hq/hq', settlementTimeoutMs: 800 });
    assert.deepEqual(config.http, { host: '::1', port: 9000, tokens: [{ name: 'hq-erp', token: '0123456789abcdef0123456789abcdef' }], maxBodyBytes: 4096 });
    assert.deepEqual(config.settlement, { timeoutMs: 700, maxRefs: 50 });
    assert.deepEqual(config.queries, { stock: { table: 'erp.store_stock', product: 'product_id', store: 'store_code', columns: ['quantity', 'reserved'] }, prices: null });
    assert.deepEqual(config.labels, {
      folder: path.join(dir, 'labels', '{store}'),
      printCommand: ['lp', '-d', 'shelf', '{file}'],
      decimalSeparator: '.',
      currency: 'US$',
      timeZone: 'America/New_York',
    });
    assert.equal(config.mappingsDir, path.join(dir, 'etc', 'maps2'));
    assert.deepEqual(config.batch, { maxRows: 10, maxDelayMs: 0, idleMs: 7, chunkRows: 3 });
    assert.deepEqual(config.apply, { concurrency: 2, statementTimeoutMs: 1000, sessionReplicationRole: 'replica', copyMinRows: 250 });
    assert.deepEqual(config.retry, { initialMs: 10, maxMs: 100 });
    assert.deepEqual(config.source, { statusIntervalMs: 100, silenceTimeoutMs: 1000, pollMs: 300, purgeIntervalS: 9 });
    assert.deepEqual(config.down, { pollMs: 250, retentionHours: 0.5, purgeIntervalS: 7, initialLoad: 'manual' });
    assert.deepEqual(config.log, { level: 'debug' });
    // A disabled store is not served unless named.
    assert.deepEqual(selectStores(config, undefined).map((s) => s.code), ['S002']);
    assert.deepEqual(selectStores(config, ['S-01']).map((s) => s.code), ['S-01']);
  });

  test('an unknown time zone is BL-C003 at its line', async () => {
    const r = await problems(MINIMAL.replace('mappings: maps', 'mappings: maps\nlabels:\n  folder: out\n  time_zone: Mars/Olympus'));
    assert.equal(r.code, 'BL-C003');
    assert.deepEqual(r.lines.filter((l) => l.includes('time zone')).length, 1);
    assert.match(r.lines.find((l) => l.includes('time zone'))!, /:\d+:14: BL-C003 time zone "Mars\/Olympus" is not a time zone name this system knows/);
  });

  test('lease: defaults to a 15 s ttl renewed every 5 s, the agent named <hostname>:<pid>; given values are kept', async () => {
    const dflt = await parseConfig(file, `${MINIMAL}lease: {}\n`, {});
    assert.deepEqual(dflt.lease, { agentId: `${os.hostname()}:${process.pid}`, ttlS: 15, renewS: 5 });
    const given = await parseConfig(file, `${MINIMAL}lease:\n  agent_id: hq-a\n  ttl_s: 8\n  renew_s: 4\n`, {});
    assert.deepEqual(given.lease, { agentId: 'hq-a', ttlS: 8, renewS: 4 });
  });

  test('lease: renewing less than twice per ttl is BL-C003 at renew_s; an agent id with a space is refused', async () => {
    const r = await problems(`${MINIMAL}lease:\n  ttl_s: 9\n  renew_s: 5\n`);
    assert.equal(r.lines.length, 1, r.lines.join('\n'));
    assert.match(r.lines[0]!, new RegExp(`^${file.replaceAll('/', '\\/')}:9:12: BL-C003 lease.renew_s \\(5\\) is more than half of lease.ttl_s \\(9\\)`));
    const bad = await problems(`${MINIMAL}lease:\n  agent_id: hq a\n`);
    assert.equal(bad.lines.length, 1, bad.lines.join('\n'));
    assert.match(bad.lines[0]!, /:8:13: BL-C003/);
  });

  test('the default slot name is branchline_ and the code in lower case, other characters as _', () => {
    assert.equal(defaultSlotName('S001'), 'branchline_s001');
    assert.equal(defaultSlotName('Loja-07'), 'branchline_loja_07');
  });

  test('the mapping folder is relative to the configuration file, not to the working directory', async () => {
    const nested = path.join(dir, 'etc', 'branchline.yml');
    const config = await parseConfig(nested, MINIMAL.replace('mappings: maps', 'mappings: maps2'), {});
    assert.equal(config.mappingsDir, path.join(dir, 'etc', 'maps2'));
    assert.equal(config.file, nested);
    const absolute = await parseConfig(file, MINIMAL.replace('mappings: maps', `mappings: ${path.join(dir, 'etc', 'maps2')}`), {});
    assert.equal(absolute.mappingsDir, path.join(dir, 'etc', 'maps2'));
  });

  test('selectStores names a store that is not configured with BL-C005', async () => {
    const config = await parseConfig(file, MINIMAL, {});
    assert.throws(() => selectStores(config, ['S999']), (e: unknown) => {
      assert.ok(e instanceof BranchlineError);
      assert.equal(e.code, 'BL-C005');
      assert.equal(e.message, `BL-C005 store "S999" is not in ${file}. Configured stores: S001.`);
      return true;
    });
  });
});

describe('config: environment variables', () => {
  test('${VAR} is replaced, also inside a longer value and several times in one value', async () => {
    const config = await parseConfig(
      file,
      `hq:
  url: \${HQ_URL}
stores:
  - code: \${CODE}
    url: postgres://\${USER_NAME}:\${PW}@s1:5432/erp
mappings: \${MAPS}
`,
      { HQ_URL: 'postgres://hq/hq', CODE: 'S777', USER_NAME: 'app', PW: 'p@ss', MAPS: 'maps' },
    );
    assert.equal(config.hq.url, 'postgres://hq/hq');
    assert.equal(config.stores[0]!.code, 'S777');
    assert.equal(config.stores[0]!.slot, 'branchline_s777');
    assert.equal(config.stores[0]!.url, 'postgres://app:p@ss@s1:5432/erp');
    assert.equal(config.mappingsDir, path.join(dir, 'maps'));
  });

  test('${VAR:-default} takes the default when VAR is unset or empty, and VAR when it is set', async () => {
    const text = `hq:
  url: \${HQ_URL:-postgres://localhost:5432/hq}
stores:
  - code: S001
    url: \${S1_URL:-postgres://localhost/erp}
mappings: \${MAPS:-maps}
`;
    const unset = await parseConfig(file, text, {});
    assert.equal(unset.hq.url, 'postgres://localhost:5432/hq');
    assert.equal(unset.stores[0]!.url, 'postgres://localhost/erp');
    assert.equal(unset.mappingsDir, path.join(dir, 'maps'));
    const empty = await parseConfig(file, text, { HQ_URL: '', S1_URL: '' });
    assert.equal(empty.hq.url, 'postgres://localhost:5432/hq');
    const set = await parseConfig(file, text, { HQ_URL: 'postgres://real/hq', S1_URL: 'postgres://real/erp' });
    assert.equal(set.hq.url, 'postgres://real/hq');
    assert.equal(set.stores[0]!.url, 'postgres://real/erp');
  });

  test('a $ that is not a ${...} reference is left alone', async () => {
    const config = await parseConfig(file, MINIMAL.replace('postgres://s1.example/erp', 'postgres://u:pa$word@s1/erp'), {});
    assert.equal(config.stores[0]!.url, 'postgres://u:pa$word@s1/erp');
  });

  test('every variable that is not set is reported at once with BL-C004 and the position of its value', async () => {
    const r = await problems(
      `hq:
  url: \${NOPE}
stores:
  - code: S001
    url: postgres://app:\${STORE_PW}@s1/erp
mappings: maps
log:
  level: \${EMPTY}
`,
      { EMPTY: '' },
    );
    assert.equal(r.code, 'BL-C004');
    assert.equal(r.summary, `The configuration file ${file} needs environment variables.`);
    assert.deepEqual(r.lines, [
      `${at(2, 8)}: BL-C004 the environment variable NOPE is not set. Set NOPE before starting branchline, or write \${NOPE:-default} to give a default.`,
      `${at(5, 10)}: BL-C004 the environment variable STORE_PW is not set. Set STORE_PW before starting branchline, or write \${STORE_PW:-default} to give a default.`,
      `${at(8, 10)}: BL-C004 the environment variable EMPTY is not set. Set EMPTY before starting branchline, or write \${EMPTY:-default} to give a default.`,
    ]);
  });

  test('a ${VAR} in a numeric setting is read as that number', async () => {
    // The documented way to keep settings out of the file is ${VAR}; after
    // substitution "500" is still a YAML string, and the schema wants an
    // integer. Expected: max_rows 500 (or, at the least, a message that
    // does not tell the user to write a whole number where they did).
    const text = `${MINIMAL}batch:\n  max_rows: \${ROWS}\n  max_delay_ms: \${DELAY:-50}\n`;
    let config: Config | undefined;
    let failure = '';
    try {
      config = await parseConfig(file, text, { ROWS: '500' });
    } catch (e) {
      failure = e instanceof ProblemsError ? e.problems.map(formatProblem).join('\n') : String(e);
    }
    assert.equal(failure, '', 'the configuration was rejected');
    assert.deepEqual(config?.batch, { maxRows: 500, maxDelayMs: 50, idleMs: 0, chunkRows: 5_000 });
  });
});

describe('config: schema problems', () => {
  const BROKEN = `hqq:
  url: x
stores:
  - code: "S 1"
    url: postgres://h/db
    slot: Bad-Slot
    extra: 1
  - url: postgres://h/db2
mappings: maps
batch:
  max_rows: 0
  chunk_rows: many
apply: 3
`;

  test('every problem at once, each with its position, code BL-C003 and a sentence', async () => {
    const r = await problems(BROKEN);
    assert.equal(r.code, 'BL-C003');
    assert.equal(r.summary, `The configuration file ${file} has problems.`);
    // Compared without hints (see the next test) and in position order.
    const withoutHint = (l: string) => l.replace(/( in this configuration file\.| \(must match pattern "[^"]*"\)\.).*$/, '$1');
    const sorted = (ls: string[]) => [...ls].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    assert.deepEqual(sorted(r.lines.map(withoutHint)), [
      `${at(1, 1)}: BL-C003 "hq" is missing at the top level in this configuration file.`,
      `${at(1, 1)}: BL-C003 unknown setting "hqq" at the top level in this configuration file.`,
      `${at(4, 11)}: BL-C003 at "stores.0.code" is not in the expected form (must match pattern "^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$").`,
      `${at(6, 11)}: BL-C003 at "stores.0.slot" is not in the expected form (must match pattern "^[a-z0-9_]{1,63}$").`,
      `${at(7, 5)}: BL-C003 unknown setting "extra" at "stores.0" in this configuration file.`,
      `${at(8, 5)}: BL-C003 "code" is missing at "stores.1" in this configuration file.`,
      `${at(11, 13)}: BL-C003 at "batch.max_rows" must be >= 1 in this configuration file.`,
      `${at(12, 15)}: BL-C003 at "batch.chunk_rows" must be a whole number in this configuration file.`,
      `${at(13, 8)}: BL-C003 at "apply" must be a map of settings (key: value lines) in this configuration file.`,
    ]);
    assert.equal(r.lines.length, 9);
  });

  test('the hints say what to write: the allowed settings, the expected form', async () => {
    // schemaProblems() lists allowed settings and quotes the schema's
    // descriptions from Ajv's parentSchema, which Ajv only fills in with
    // `verbose: true` (as the mapping loader does). The configuration's Ajv
    // is created without it, so these hints fall back to "Remove it." and a
    // reference to docs/configuration.md (which does not exist).
    const r = await problems(BROKEN);
    const find = (prefix: string) => r.lines.find((l) => l.startsWith(prefix)) ?? `(no problem at ${prefix})`;
    assert.equal(
      find(`${at(7, 5)}:`),
      `${at(7, 5)}: BL-C003 unknown setting "extra" at "stores.0" in this configuration file. Remove it or use one of: code, name, url, connector, slot, publication, enabled, read_url, settlement_timeout_ms, time_zone.`,
    );
    assert.equal(
      find(`${at(4, 11)}:`),
      `${at(4, 11)}: BL-C003 at "stores.0.code" is not in the expected form (must match pattern "^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"). Expected: the store code: letters, digits, "_" or "-", up to 32 characters, e.g. S001`,
    );
  });

  test('a value outside a fixed set names the values it accepts', async () => {
    // log.level and connector are unions of literals (anyOf/const in the
    // JSON Schema). keepError() drops the anyOf summary and toProblem() has
    // no case for `const`, so the user reads "must be equal to constant"
    // with no hint at all.
    const r = await problems(`${MINIMAL}log:\n  level: verbose\n`);
    assert.deepEqual(r.lines, [
      `${at(8, 10)}: BL-C003 at "log.level" has a value this configuration file does not accept. Write one of: "error", "warn", "info", "debug".`,
    ]);
  });

  test('YAML that does not parse is BL-C002 with its position', async () => {
    const r = await problems(`hq:\n  url: postgres://h/hq\n url: x\nstores: []\n`);
    assert.equal(r.code, 'BL-C002');
    assert.equal(r.summary, `The configuration file ${file} is not valid YAML.`);
    assert.deepEqual(r.lines, [
      `${at(3, 1)}: BL-C002 is not valid YAML: All mapping items must start at the same column. Fix the YAML syntax at this position (indentation, a missing colon, or an unclosed quote are the usual causes).`,
    ]);
  });

  test('a key written twice is BL-C002 at the second one', async () => {
    const r = await problems(`hq:\n  url: postgres://a/hq\n  url: postgres://b/hq\nstores: []\nmappings: maps\n`);
    assert.deepEqual(r.lines, [
      `${at(3, 3)}: BL-C002 is not valid YAML: Map keys must be unique. Fix the YAML syntax at this position (indentation, a missing colon, or an unclosed quote are the usual causes).`,
    ]);
  });

  test('a missing file is BL-C001 and says how to get one', async () => {
    const missing = path.join(dir, 'nope.yml');
    await assert.rejects(loadConfig(missing, {}), (e: unknown) => {
      assert.ok(e instanceof BranchlineError);
      assert.equal(e.code, 'BL-C001');
      assert.equal(
        e.message,
        `BL-C001 cannot read the configuration file ${missing} (ENOENT). Pass --config <file>, set BRANCHLINE_CONFIG, or create one with \`branchline init\`.`,
      );
      return true;
    });
  });
});

describe('config: rules across settings', () => {
  test('a store code used twice is reported at the second one', async () => {
    const r = await problems(`hq:
  url: postgres://h/hq
stores:
  - code: S001
    url: postgres://h/erp1
  - code: S002
    url: postgres://h/erp2
  - code: S001
    url: postgres://h/erp3
mappings: maps
`);
    assert.equal(r.code, 'BL-C003');
    assert.deepEqual(r.lines, [`${at(8, 11)}: BL-C003 store code "S001" appears twice (stores 1 and 3). Each store needs its own code.`]);
  });

  test('two stores with the same slot on one database are reported at the second store', async () => {
    const r = await problems(`hq:
  url: postgres://h/hq
stores:
  - code: S001
    url: postgres://h/erp
    slot: shared
  - code: S002
    url: postgres://h/erp
    slot: shared
mappings: maps
`);
    assert.deepEqual(r.lines, [
      `${at(7, 5)}: BL-C003 stores "S001" and "S002" would share the replication slot "shared" on the same database. Give one of them its own \`slot:\`.`,
    ]);
  });

  test('a trigger-fed store with slot or publication, or two on one database, are reported where they stand', async () => {
    const r = await problems(`hq:
  url: postgres://h/hq
stores:
  - code: S001
    url: postgres://h/erp
    connector: pg-trigger
    slot: s1
  - code: S002
    url: postgres://h/erp
    connector: pg-trigger
  - code: S003
    url: mssql://sa:secret@h:1433/erp
    connector: mssql-trigger
    publication: p
mappings: maps
`);
    assert.deepEqual(r.lines, [
      `${at(7, 11)}: BL-C003 store "S001" sets \`slot:\` but captures with pg-trigger, which uses no replication slot. Remove \`slot:\`, or set \`connector: pg-logical\`.`,
      `${at(9, 10)}: BL-C003 stores "S001" and "S002" are the same database with connector pg-trigger: they would read one change table, each the other's changes too. Give each store its own database URL.`,
      `${at(14, 18)}: BL-C003 store "S003" sets \`publication:\` but captures with mssql-trigger, which uses no publication. Remove \`publication:\`, or set \`connector: pg-logical\`.`,
    ]);
  });

  test('the three connectors are accepted and kept', async () => {
    const config = await parseConfig(
      file,
      `hq:
  url: postgres://h/hq
stores:
  - code: A
    url: postgres://h/a
  - code: B
    url: postgres://h/b
    connector: pg-trigger
  - code: C
    url: mssql://u:p@h:1433/c
    connector: mssql-trigger
mappings: maps
`,
      {},
    );
    assert.deepEqual(config.stores.map((s) => s.connector), ['pg-logical', 'pg-trigger', 'mssql-trigger']);
  });

  test('codes that differ only in case share their default slot', async () => {
    const r = await problems(`hq:
  url: postgres://h/hq
stores:
  - code: Loja-1
    url: postgres://h/erp
  - code: loja_1
    url: postgres://h/erp
mappings: maps
`);
    assert.deepEqual(r.lines, [
      `${at(6, 5)}: BL-C003 stores "Loja-1" and "loja_1" would share the replication slot "branchline_loja_1" on the same database. Give one of them its own \`slot:\`.`,
    ]);
  });

  test('the same slot name on two databases is fine', async () => {
    const config = await parseConfig(
      file,
      `hq:
  url: postgres://h/hq
stores:
  - code: S001
    url: postgres://h/erp1
    slot: same
  - code: S002
    url: postgres://h/erp2
    slot: same
mappings: maps
`,
      {},
    );
    assert.deepEqual(config.stores.map((s) => s.slot), ['same', 'same']);
  });

  test('a mapping folder that does not exist is BL-C006 at the mappings value', async () => {
    const r = await problems(MINIMAL.replace('mappings: maps', 'mappings: no-such-folder'));
    assert.equal(r.code, 'BL-C006');
    assert.deepEqual(r.lines, [
      `${at(6, 11)}: BL-C006 the mapping directory "no-such-folder" (${path.join(dir, 'no-such-folder')}) does not exist. Point \`mappings:\` at the folder that holds your *.yml mapping files (relative to this configuration file).`,
    ]);
  });

  test('a mapping path that is a file, not a folder, is BL-C006 too', async () => {
    const r = await problems(MINIMAL.replace('mappings: maps', 'mappings: not-a-dir.yml'));
    assert.equal(r.lines.length, 1);
    assert.ok(r.lines[0]!.startsWith(`${at(6, 11)}: BL-C006 the mapping directory "not-a-dir.yml" (${path.join(dir, 'not-a-dir.yml')})`), r.lines[0]);
  });

  test('duplicate codes, a shared slot and a missing folder come in one report', async () => {
    const r = await problems(`hq:
  url: postgres://h/hq
stores:
  - code: S001
    url: postgres://h/erp
  - code: S001
    url: postgres://h/erp
mappings: gone
`);
    assert.deepEqual(
      r.lines.map((l) => l.split(' ').slice(0, 2).join(' ')),
      [`${at(6, 11)}: BL-C003`, `${at(6, 5)}: BL-C003`, `${at(8, 11)}: BL-C006`],
    );
  });
});
