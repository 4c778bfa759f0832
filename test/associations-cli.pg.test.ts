import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { migrateLatest } from '../src/state/migrate.js';
import { runCli } from './support/agent-process.js';
import { assertNoStack, show } from './support/cli-output.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { TEST_ENTITIES } from './support/entities.js';

/**
 * The association and parked-change commands as a user meets them: a child
 * process, its exit code and what it prints, against a real HQ database.
 * Only HQ is needed: parked changes are written here as the agent would.
 */


const HQ_SQL = `
CREATE TABLE cost_center (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO cost_center VALUES (100, 'Sales'), (101, 'Back office'), (102, 'Logistics');
CREATE SEQUENCE customer_id_seq START 5000;
`;

const WAITING_HINT = 'a running agent (`branchline run`) applies them within a few seconds.';
const PARKED_FOOTER =
  '\nA running agent applies a change as soon as its association exists (`branchline associate`); ' +
  '`branchline retry --id N` tries one again after a fix, `branchline discard --id N --reason "..."` gives it up.\n';
const RETRY_ONE =
  'The running agent (`branchline run`, which must be running) tries it again within a few seconds; `branchline parked` then lists it if it parked again, with the reason.\n';
const RETRY_TAIL =
  'The running agent (`branchline run`, which must be running) tries them again within a few seconds; ' +
  '`branchline parked` then lists any that parked again, with the reason.\n';

describe('cli: associations and parked changes', { timeout: 300_000 }, () => {
  let server: TestServer;
  let hqDb: string;
  let dir: string;
  let config: string;
  let mappings: string;
  const hq = <R extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[]) => server.query<R>(hqDb, sql, params);
  const cli = (...args: string[]) => runCli([...args, '--config', config]);

  /** A parked change as the agent writes it; returns its id. */
  async function park(p: {
    store?: string;
    mapping?: string;
    target?: string;
    op?: 'insert' | 'update' | 'delete';
    reasonCode?: string;
    reason?: string;
    entity?: string | null;
    code?: string | null;
  }): Promise<string> {
    const store = p.store ?? 'S001';
    const entity = p.entity === undefined ? 'cost_center' : p.entity;
    const code = p.code === undefined ? 'CC-20' : p.code;
    const reasonCode = p.reasonCode ?? 'BL-M021';
    const mapping = p.mapping ?? 'receivable.yml';
    const reason = p.reason ?? `${mapping}: needs the HQ key of ${entity} "${code}", which is not associated for this store yet.`;
    const op = p.op ?? 'insert';
    const change = { op, table: { schema: 'public', table: 'receivable' }, ...(op === 'delete' ? { before: { id: '1' } } : { after: { id: '1', cost_center: code } }) };
    const rows = await hq<{ id: string }>(
      `INSERT INTO branchline.parked (pipeline, store_code, mapping, target_table, row_keys, reason_code, reason, entity, branch_code, change, source_xid, source_commit_time)
       VALUES ($1, $2, $3, $4, ARRAY['["S001","1"]'], $5, $6, $7, $8, $9, 1234, now()) RETURNING id::text AS id`,
      [`up:${store}`, store, mapping, p.target ?? 'public.store_receivable', reasonCode, reason, entity, code, JSON.stringify(change)],
    );
    return rows[0]!.id;
  }

  async function associations(): Promise<string[]> {
    return (
      await hq<{ a: string }>(
        `SELECT concat_ws(' ', store_code, entity, branch_code, hq_key, origin, created_by) AS a FROM branchline.associations ORDER BY store_code, entity, branch_code`,
      )
    ).map((r) => r.a);
  }

  async function reset(): Promise<void> {
    await hq(`TRUNCATE branchline.associations, branchline.parked`);
  }

  async function csv(name: string, text: string): Promise<string> {
    const file = path.join(dir, name);
    await writeFile(file, text);
    return file;
  }

  before(async () => {
    server = await startTestServer('assoc-cli');
    hqDb = await server.createDatabase('hq');
    await server.query(hqDb, HQ_SQL);
    await migrateLatest(server.url(hqDb));
    dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-assoc-'));
    mappings = path.join(dir, 'maps');
    await mkdir(mappings);
    await writeFile(path.join(mappings, 'entities.yml'), TEST_ENTITIES);
    config = path.join(dir, 'branchline.yml');
    // The stores' URLs point at HQ's database: `status` reaches them (and finds no slot); nothing else connects.
    await writeFile(
      config,
      `hq:\n  url: ${server.url(hqDb)}\nstores:\n  - code: S001\n    url: ${server.url(hqDb)}\n  - code: S002\n    url: ${server.url(hqDb)}\n    slot: other\nmappings: maps\n`,
    );
  });
  after(async () => {
    await server?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('usage', () => {
    it('--help lists the new commands', async () => {
      const r = await runCli(['--help']);
      assert.equal(r.code, 0, show(r));
      const flat = r.stdout.replace(/\s+/g, ' ');
      for (const c of ['associate', 'associations', 'parked', 'retry', 'discard']) assert.ok(flat.includes(`branchline ${c} `), `${c} is listed`);
      const a = await runCli(['associate', '--help']);
      assert.equal(a.code, 0, show(a));
      for (const opt of ['--store', '--entity', '--code', '--hq-key', '--import', '--by']) assert.match(a.stdout, new RegExp(`^\\s+${opt}\\s`, 'm'), opt);
    });

    it('associate without --hq-key, or with --import and --code: exit 2, BL-U001', async () => {
      const r = await cli('associate', '--store', 'S001', '--entity', 'cost_center', '--code', 'CC-09');
      assert.equal(r.code, 2, show(r));
      assert.equal(r.stdout, '');
      assert.equal(
        r.stderr,
        'error: BL-U001 missing --hq-key. Give --store, --entity, --code and --hq-key for one association, or --import <file.csv> for many.\n',
      );
      assertNoStack(r);
      const mixed = await cli('associate', '--store', 'S001', '--import', 'x.csv', '--code', 'CC-09');
      assert.equal(mixed.code, 2, show(mixed));
      assert.equal(
        mixed.stderr,
        'error: BL-U001 --import cannot go with --code. Give either --import <file.csv>, or --entity, --code and --hq-key for one association.\n',
      );
    });

    it('discard without --reason: exit 2, yargs names the missing option', async () => {
      const r = await cli('discard', '--id', '1');
      assert.equal(r.code, 2, show(r));
      assert.match(r.stderr, /^error: BL-U001 Missing required argument: reason\. See `branchline --help`\.\n/);
      assertNoStack(r);
      const empty = await cli('discard', '--id', '1', '--reason', ' ');
      assert.equal(empty.code, 2, show(empty));
      assert.match(empty.stderr, /^error: BL-U001 --reason is empty\. /);
    });

    it('retry --id that is not a number: exit 2, BL-U001', async () => {
      const r = await cli('retry', '--id', 'x');
      assert.equal(r.code, 2, show(r));
      assert.equal(r.stderr, 'error: BL-U001 --id takes the id of a parked change, a whole number above 0. `branchline parked` lists the ids.\n');
    });
  });

  describe('associate (one)', () => {
    beforeEach(reset);

    it('sets a manual association, says so; the same again changes nothing, exit 0 both times', async () => {
      const r = await cli('associate', '--store', 'S001', '--entity', 'cost_center', '--code', 'CC-09', '--hq-key', '100', '--by', 'alice');
      assert.equal(r.code, 0, show(r));
      assert.equal(r.stdout, 'associated code CC-09 of store S001 with HQ cost_center 100.\nNo parked change was waiting for it.\n');
      assert.equal(r.stderr, '');
      assert.deepEqual(await associations(), ['S001 cost_center CC-09 100 manual alice']);

      const again = await cli('associate', '--store', 'S001', '--entity', 'cost_center', '--code', 'CC-09', '--hq-key', '100');
      assert.equal(again.code, 0, show(again));
      assert.equal(again.stdout, 'code CC-09 of store S001 is already associated with HQ cost_center 100; nothing changed.\n');
      assert.deepEqual(await associations(), ['S001 cost_center CC-09 100 manual alice']);
    });

    it('records user@host when --by is not given', async () => {
      const r = await cli('associate', '--store', 'S002', '--entity', 'customer', '--code', '007', '--hq-key', '5001');
      assert.equal(r.code, 0, show(r));
      assert.equal(r.stdout, 'associated code 007 of store S002 with HQ customer 5001.\nNo parked change was waiting for it.\n');
      assert.deepEqual(await associations(), [`S002 customer 007 5001 manual ${os.userInfo().username}@${os.hostname()}`]);
    });

    it('says how many parked changes waited for the code (the running agent applies them)', async () => {
      await park({ code: 'CC-20' });
      await park({ code: 'CC-20', op: 'update' });
      await park({ code: 'CC-21' });
      await park({ store: 'S002', code: 'CC-20' });
      const r = await cli('associate', '--store', 'S001', '--entity', 'cost_center', '--code', 'CC-20', '--hq-key', '101');
      assert.equal(r.code, 0, show(r));
      assert.equal(r.stdout, `associated code CC-20 of store S001 with HQ cost_center 101.\n2 parked changes were waiting for it; ${WAITING_HINT}\n`);
    });

    it('a code or key already associated otherwise: exit 2, BL-P003 naming the existing association, nothing changed', async () => {
      assert.equal((await cli('associate', '--store', 'S001', '--entity', 'cost_center', '--code', 'CC-09', '--hq-key', '100')).code, 0);
      const hint =
        'branchline never changes an association (HQ rows may already hold its key): check the code and the key; `branchline associations` lists the existing ones.';
      const code = await cli('associate', '--store', 'S001', '--entity', 'cost_center', '--code', 'CC-09', '--hq-key', '101');
      assert.equal(code.code, 2, show(code));
      assert.equal(code.stdout, '');
      assert.equal(code.stderr, `error: BL-P003 code CC-09 of store S001 is already associated with HQ cost_center 100. ${hint}\n`);
      assertNoStack(code);
      const key = await cli('associate', '--store', 'S001', '--entity', 'cost_center', '--code', 'CC-10', '--hq-key', '100');
      assert.equal(key.code, 2, show(key));
      assert.equal(key.stderr, `error: BL-P003 HQ cost_center 100 is already associated with code CC-09 of store S001. ${hint}\n`);
      // Another store may use the same key for its own code.
      const other = await cli('associate', '--store', 'S002', '--entity', 'cost_center', '--code', 'X1', '--hq-key', '100');
      assert.equal(other.code, 0, show(other));
      assert.deepEqual(
        (await associations()).map((a) => a.split(' ').slice(0, 4).join(' ')),
        ['S001 cost_center CC-09 100', 'S002 cost_center X1 100'],
      );
    });

    it('an HQ key that is not in the referenced table: exit 2, BL-P002', async () => {
      const r = await cli('associate', '--store', 'S001', '--entity', 'cost_center', '--code', 'CC-09', '--hq-key', '999');
      assert.equal(r.code, 2, show(r));
      assert.equal(
        r.stderr,
        'error: BL-P002 HQ cost_center 999 does not exist: public.cost_center has no row with id 999. Check the key, or create that cost_center at HQ first.\n',
      );
      assertNoStack(r);
      assert.deepEqual(await associations(), []);
    });

    it('an unknown entity: exit 2, BL-P001 listing the declared ones; an unknown store: BL-C005', async () => {
      const r = await cli('associate', '--store', 'S001', '--entity', 'costcenter', '--code', 'CC-09', '--hq-key', '100');
      assert.equal(r.code, 2, show(r));
      assert.equal(
        r.stderr,
        `error: BL-P001 entity "costcenter" is not declared in ${path.join(mappings, 'entities.yml')}. Declared entities: cost_center, customer.\n`,
      );
      assertNoStack(r);
      const s = await cli('associate', '--store', 'S999', '--entity', 'cost_center', '--code', 'CC-09', '--hq-key', '100');
      assert.equal(s.code, 2, show(s));
      assert.equal(s.stderr, `error: BL-C005 store "S999" is not in ${config}. Configured stores: S001, S002.\n`);
    });
  });

  describe('associate --import', () => {
    beforeEach(reset);

    it('imports every line (quoted values, CRLF, columns in any order, store_code column), counts created and already there', async () => {
      await hq(
        `INSERT INTO branchline.associations (store_code, entity, branch_code, hq_key, origin, created_by) VALUES ('S001', 'cost_center', 'CC-01', '100', 'manual', 'bob')`,
      );
      await park({ code: 'CC-02' });
      const file = await csv(
        'good.csv',
        '\uFEFFhq_key,entity,branch_code,store_code\r\n' +
          '100,cost_center,CC-01,\r\n' +
          '101,cost_center,"CC-02",S001\r\n' +
          '\r\n' +
          '102,"cost_center","CC ""03"", north",S002\r\n' +
          '5005,customer,"multi\r\nline",\r\n' +
          '101,cost_center,CC-02,S001\r\n',
      );
      const r = await cli('associate', '--store', 'S001', '--import', file, '--by', 'import-job');
      assert.equal(r.code, 0, show(r));
      assert.equal(r.stderr, '');
      assert.equal(r.stdout, `imported ${file}: 3 associations created, 2 already there.\n1 parked change was waiting for them; a running agent (\`branchline run\`) applies it within a few seconds.\n`);
      assert.deepEqual(await associations(), [
        'S001 cost_center CC-01 100 manual bob',
        'S001 cost_center CC-02 101 import import-job',
        'S001 customer multi\r\nline 5005 import import-job',
        'S002 cost_center CC "03", north 102 import import-job',
      ]);
    });

    it('a file with bad lines: exit 2, every problem with file:line:column, nothing inserted', async () => {
      await hq(
        `INSERT INTO branchline.associations (store_code, entity, branch_code, hq_key, origin, created_by) VALUES ('S001', 'cost_center', 'CC-01', '100', 'manual', 'bob')`,
      );
      const file = await csv(
        'bad.csv',
        [
          'entity,branch_code,hq_key,store_code', // 1
          'cost_center,CC-05,101,', // 2: fine on its own
          'costcenter,CC-06,101,', // 3: unknown entity
          'cost_center,,101,', // 4: empty code
          'cost_center,CC-07,999,', // 5: not in cost_center
          'cost_center,CC-01,102,', // 6: code taken at HQ
          'cost_center,CC-08,100,', // 7: key taken at HQ
          'cost_center,CC-05,102,', // 8: CC-05 given another key than on line 2
          'cost_center,CC-09,101,', // 9: key 101 given to CC-05 on line 2
          'cost_center,CC-10', // 10: too few values
          'cost_center,CC-11,102,S999', // 11: unknown store
          'cost_center, CC-12,102,', // 12: space around a value
          'cost_center,CC"13,102,', // 13: a quote inside an unquoted value
          'customer,C-1,5001,', // 14: fine
          '',
        ].join('\n'),
      );
      const before = await associations();
      const r = await cli('associate', '--store', 'S001', '--import', file);
      assert.equal(r.code, 2, show(r));
      assert.equal(r.stdout, '');
      const taken = 'An association is never changed; correct the line or leave it out.';
      const inFile = 'A code has one HQ key, and an HQ key one code, per store and entity.';
      assert.equal(
        r.stderr,
        [
          `11 problems: ${file} has problems; nothing was imported.`,
          `  ${file}:3:1: BL-P001 entity "costcenter" is not declared in ${path.join(mappings, 'entities.yml')}. Declared entities: cost_center, customer.`,
          `  ${file}:4:13: BL-P004 the branch_code is empty.`,
          `  ${file}:5:19: BL-P002 HQ cost_center 999 does not exist: public.cost_center has no row with id 999. Check the key, or create that cost_center at HQ first.`,
          `  ${file}:6:13: BL-P003 code CC-01 of store S001 is already associated with HQ cost_center 100. ${taken}`,
          `  ${file}:7:19: BL-P003 HQ cost_center 100 is already associated with code CC-01 of store S001. ${taken}`,
          `  ${file}:8:19: BL-P003 code CC-05 of store S001 is given HQ cost_center 102 here, but cost_center 101 on line 2. ${inFile}`,
          `  ${file}:9:19: BL-P003 HQ cost_center 101 is given to code CC-09 of store S001 here, but to code CC-05 on line 2. ${inFile}`,
          `  ${file}:10:1: BL-P004 this line has 2 values, the header 4. Quote a value that holds a comma: "a,b".`,
          `  ${file}:11:23: BL-P001 store "S999" is not in ${config}. Configured stores: S001, S002.`,
          `  ${file}:12:13: BL-P004 the branch_code " CC-12" starts or ends with a space. Remove the spaces around the commas, or quote the value if the spaces belong to it.`,
          `  ${file}:13:15: BL-P004 a double quote inside a value that does not start with one. Quote the whole value, and write a quote inside it twice: "a ""b"" c".`,
          '',
        ].join('\n'),
      );
      assertNoStack(r);
      assert.deepEqual(await associations(), before, 'nothing was inserted');
    });

    it('a header without hq_key, an unclosed quote, an unreadable file: exit 2, BL-P004', async () => {
      const header = await csv('header.csv', 'entity,branch_code,hqkey\ncost_center,CC-01,100\n');
      const h = await cli('associate', '--store', 'S001', '--import', header);
      assert.equal(h.code, 2, show(h));
      const HINT = 'The first line names the columns entity,branch_code,hq_key (and store_code, optional), in any order.';
      assert.equal(
        h.stderr,
        [
          `2 problems: ${header} has problems; nothing was imported.`,
          `  ${header}:1:1: BL-P004 the header has no "hq_key" column. ${HINT}`,
          `  ${header}:1:20: BL-P004 unknown column "hqkey" in the header. ${HINT}`,
          '',
        ].join('\n'),
      );
      const unclosed = await csv('unclosed.csv', 'entity,branch_code,hq_key\ncost_center,"CC-01,100\ncost_center,CC-02,101\n');
      const u = await cli('associate', '--store', 'S001', '--import', unclosed);
      assert.equal(u.code, 2, show(u));
      assert.equal(
        u.stderr,
        `error: ${unclosed} has problems; nothing was imported.\n` +
          `  ${unclosed}:2:13: BL-P004 the quoted value that starts here is never closed. End it with a double quote; a quote inside a quoted value is written twice ("").\n`,
      );
      const noStore = await csv('nostore.csv', 'entity,branch_code,hq_key\ncost_center,CC-01,100\n');
      const n = await cli('associate', '--import', noStore);
      assert.equal(n.code, 2, show(n));
      assert.equal(
        n.stderr,
        `error: ${noStore} has problems; nothing was imported.\n  ${noStore}:1:1: BL-P004 the file has no store_code column and no --store was given. Add --store <code>, or a store_code column.\n`,
      );
      const missing = path.join(dir, 'nope.csv');
      const m = await cli('associate', '--store', 'S001', '--import', missing);
      assert.equal(m.code, 2, show(m));
      assert.equal(m.stderr, `error: BL-P004 cannot read the association file ${missing} (ENOENT). Check the file name and that this user may read it.\n`);
      for (const x of [h, u, n, m]) assertNoStack(x);
      assert.deepEqual(await associations(), []);
    });
  });

  describe('associations', () => {
    before(async () => {
      await reset();
      await hq(
        `INSERT INTO branchline.associations (store_code, entity, branch_code, hq_key, origin, created_by, created_at) VALUES
           ('S001', 'cost_center', 'CC-01', '100', 'manual', 'bob', '2026-11-20 10:00:00+00'),
           ('S001', 'customer', '7', '5000', 'allocated', 'branchline', '2026-11-20 10:00:01+00'),
           ('S002', 'cost_center', 'X', '101', 'import', NULL, '2026-11-21 09:30:00+00')`,
      );
      await park({ code: 'CC-30' });
      await park({ code: 'CC-30' });
      await park({ store: 'S002', code: 'Y' });
      await park({ code: null, entity: null, reasonCode: 'BL-A004', reason: 'receivable.yml: HQ rejected the row.' });
    });

    it('lists the associations, then the codes parked changes wait for', async () => {
      const r = await cli('associations');
      assert.equal(r.code, 0, show(r));
      assert.equal(r.stderr, '');
      const [assoc, waiting] = r.stdout.split('\n\n');
      assert.equal(
        assoc,
        [
          'STORE  ENTITY       CODE   HQ KEY  ORIGIN     CREATED BY  CREATED',
          'S001   cost_center  CC-01  100     manual     bob         2026-11-20T10:00:00Z',
          'S001   customer     7      5000    allocated  branchline  2026-11-20T10:00:01Z',
          'S002   cost_center  X      101     import     -           2026-11-21T09:30:00Z',
        ].join('\n'),
      );
      const lines = waiting!.trimEnd().split('\n');
      assert.equal(lines[0], 'Waiting for an association (set it with `branchline associate`):');
      assert.equal(lines[1], 'STORE  ENTITY       CODE   WAITING  FIRST SEEN');
      assert.match(lines[2]!, /^S001   cost_center  CC-30  2        \d+(\.\d)?s ago$/);
      assert.match(lines[3]!, /^S002   cost_center  Y      1        \d+(\.\d)?s ago$/);
      assert.equal(lines.length, 4);
    });

    it('--store, --entity and --missing filter; --json', async () => {
      const r = await cli('associations', '--store', 'S002', '--missing');
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, /^Waiting for an association \(set it with `branchline associate`\):\nSTORE  ENTITY       CODE  WAITING  FIRST SEEN\nS002   cost_center  Y     1        \S+ ago\n$/);
      const e = await cli('associations', '--entity', 'customer');
      assert.equal(e.code, 0, show(e));
      assert.equal(
        e.stdout,
        'STORE  ENTITY    CODE  HQ KEY  ORIGIN     CREATED BY  CREATED\nS001   customer  7     5000    allocated  branchline  2026-11-20T10:00:01Z\n\nNo parked change waits for an association.\n',
      );
      const j = await cli('associations', '--store', 'S001', '--json');
      assert.equal(j.code, 0, show(j));
      const json = JSON.parse(j.stdout) as { associations: Record<string, unknown>[]; missing: Record<string, unknown>[] };
      assert.deepEqual(json.associations[0], {
        storeCode: 'S001',
        entity: 'cost_center',
        branchCode: 'CC-01',
        hqKey: '100',
        origin: 'manual',
        createdAt: '2026-11-20T10:00:00.000Z',
        createdBy: 'bob',
      });
      assert.equal(json.associations.length, 2);
      assert.deepEqual(
        json.missing.map((m) => [m['storeCode'], m['entity'], m['branchCode'], m['waiting'], typeof m['firstSeen']]),
        [['S001', 'cost_center', 'CC-30', 2, 'string']],
      );
      const none = await cli('associations', '--store', 'S002', '--entity', 'customer');
      assert.equal(none.stdout, 'No associations.\n\nNo parked change waits for an association.\n');
    });

    it('an unknown entity: exit 2, BL-P001', async () => {
      const r = await cli('associations', '--entity', 'nope');
      assert.equal(r.code, 2, show(r));
      assert.match(r.stderr, /^error: BL-P001 entity "nope" is not declared in .*entities\.yml\. Declared entities: cost_center, customer\.\n$/);
      assertNoStack(r);
    });
  });

  describe('parked, retry, discard', () => {
    let ids: string[];
    beforeEach(async () => {
      await reset();
      ids = [
        await park({ code: 'CC-20' }),
        await park({ code: 'CC-20', op: 'update' }),
        await park({ store: 'S002', code: null, entity: null, op: 'delete', reasonCode: 'BL-A004', reason: 'receivable.yml: HQ rejected the row: value too long.' }),
      ];
    });

    it('parked: none', async () => {
      await reset();
      const r = await cli('parked');
      assert.equal(r.code, 0, show(r));
      assert.equal(r.stdout, 'No parked changes.\n');
    });

    it('parked: one line per change, then the reason of each; --store filters; --json', async () => {
      const r = await cli('parked');
      assert.equal(r.code, 0, show(r));
      assert.equal(r.stderr, '');
      const [tableText, reasons, footer] = r.stdout.split('\n\n');
      const rows = tableText!.split('\n').map((l) => l.split(/\s{2,}/));
      assert.deepEqual(rows[0], ['ID', 'STORE', 'MAPPING', 'TARGET', 'OP', 'REASON', 'PARKED', 'ATTEMPTS']);
      assert.deepEqual(
        rows.slice(1).map((c) => [c[0], c[1], c[2], c[3], c[4], c[5], c[7]]),
        [
          [ids[0], 'S001', 'receivable.yml', 'public.store_receivable', 'insert', 'BL-M021', '0'],
          [ids[1], 'S001', 'receivable.yml', 'public.store_receivable', 'update', 'BL-M021', '0'],
          [ids[2], 'S002', 'receivable.yml', 'public.store_receivable', 'delete', 'BL-A004', '0'],
        ],
      );
      for (const c of rows.slice(1)) assert.match(c[6]!, /^\d+(\.\d)?s ago$/);
      assert.equal(
        reasons,
        [
          `${ids[0]}: receivable.yml: needs the HQ key of cost_center "CC-20", which is not associated for this store yet.`,
          `${ids[1]}: receivable.yml: needs the HQ key of cost_center "CC-20", which is not associated for this store yet.`,
          `${ids[2]}: receivable.yml: HQ rejected the row: value too long.`,
        ].join('\n'),
      );
      assert.equal(`\n${footer}`, PARKED_FOOTER);

      const s = await cli('parked', '--store', 'S002');
      assert.equal(s.stdout.split('\n').filter((l) => /^\d+ /.test(l)).length, 1, s.stdout);
      const j = await cli('parked', '--json', '--store', 'S001');
      const json = JSON.parse(j.stdout) as Record<string, unknown>[];
      assert.deepEqual(
        json.map((x) => [x['id'], x['store'], x['op'], x['status'], x['reasonCode'], x['entity'], x['branchCode'], x['attempts'], x['retryRequestedAt']]),
        [
          [Number(ids[0]), 'S001', 'insert', 'parked', 'BL-M021', 'cost_center', 'CC-20', 0, null],
          [Number(ids[1]), 'S001', 'update', 'parked', 'BL-M021', 'cost_center', 'CC-20', 0, null],
        ],
      );
      assert.deepEqual((json[0]!['change'] as { after: unknown }).after, { id: '1', cost_center: 'CC-20' });
      const bad = await cli('parked', '--store', 'S9');
      assert.equal(bad.code, 2, show(bad));
      assert.equal(bad.stderr, `error: BL-C005 store "S9" is not in ${config}. Configured stores: S001, S002.\n`);
    });

    it('retry: sets retry_requested_at on the chosen parked changes and says the agent applies them', async () => {
      const one = await cli('retry', '--id', ids[0]!);
      assert.equal(one.code, 0, show(one));
      assert.equal(one.stdout, `retry requested for 1 parked change (S001: 1).\n${RETRY_ONE}`);
      const asked = async () =>
        (await hq<{ id: string; asked: boolean }>(`SELECT id::text AS id, retry_requested_at IS NOT NULL AS asked FROM branchline.parked ORDER BY id`)).map((x) => x.asked);
      assert.deepEqual(await asked(), [true, false, false]);
      const store = await cli('retry', '--store', 'S002');
      assert.equal(store.stdout, `retry requested for 1 parked change (S002: 1).\n${RETRY_ONE}`);
      assert.deepEqual(await asked(), [true, false, true]);
      const all = await cli('retry');
      assert.equal(all.stdout, `retry requested for 3 parked changes (S001: 2, S002: 1).\n${RETRY_TAIL}`);
      assert.deepEqual(await asked(), [true, true, true]);
      const p = await cli('parked', '--store', 'S001');
      assert.match(p.stdout, new RegExp(`^${ids[0]}: .* \\(retry requested \\S+ ago\\)$`, 'm'));
    });

    it('retry of an unknown or discarded id: exit 2, BL-P005, nothing asked', async () => {
      await hq(`UPDATE branchline.parked SET status = 'discarded' WHERE id = $1`, [ids[1]]);
      const r = await cli('retry', '--id', ids[0]!, '--id', '999999', '--id', ids[1]!);
      assert.equal(r.code, 2, show(r));
      assert.equal(r.stdout, '');
      assert.equal(
        r.stderr,
        `error: BL-P005 no parked change has id 999999; change ${ids[1]} was discarded; nothing was retried. ` +
          '`branchline parked` lists the changes that wait (an applied change leaves the list; `--all` also shows discarded ones).\n',
      );
      assertNoStack(r);
      assert.equal((await hq<{ n: string }>(`SELECT count(*)::text AS n FROM branchline.parked WHERE retry_requested_at IS NOT NULL`))[0]!.n, '0');
      const none = await cli('retry', '--store', 'S001', '--id', ids[2]!);
      assert.equal(none.code, 2, show(none));
      assert.match(none.stderr, new RegExp(`^error: BL-P005 change ${ids[2]} is not of store S001; nothing was retried\\. `));
    });

    it('discard: records who, when and why; the change stays, shown by parked --all only', async () => {
      const r = await cli('discard', '--id', ids[0]!, '--id', ids[2]!, '--reason', 'duplicate of sale 4711', '--by', 'carol');
      assert.equal(r.code, 0, show(r));
      assert.equal(
        r.stdout,
        `discarded 2 parked changes (${ids[0]}, ${ids[2]}) by carol.\nThey are never applied, and stay in branchline.parked for the record (\`branchline parked --all\`).\n`,
      );
      const rows = await hq<{ id: string; status: string; by: string | null; why: string | null; at: boolean }>(
        `SELECT id::text AS id, status, discarded_by AS by, discard_reason AS why, discarded_at IS NOT NULL AS at FROM branchline.parked ORDER BY id`,
      );
      assert.deepEqual(
        rows.map((x) => [x.id, x.status, x.by, x.why, x.at]),
        [
          [ids[0], 'discarded', 'carol', 'duplicate of sale 4711', true],
          [ids[1], 'parked', null, null, false],
          [ids[2], 'discarded', 'carol', 'duplicate of sale 4711', true],
        ],
      );
      const parked = await cli('parked');
      assert.deepEqual(
        parked.stdout.split('\n').filter((l) => /^\d+ /.test(l)).map((l) => l.split(/\s+/)[0]),
        [ids[1]],
      );
      const all = await cli('parked', '--all');
      const header = all.stdout.split('\n')[0]!.split(/\s{2,}/);
      assert.deepEqual(header, ['ID', 'STATUS', 'STORE', 'MAPPING', 'TARGET', 'OP', 'REASON', 'PARKED', 'ATTEMPTS']);
      assert.match(all.stdout, new RegExp(`^${ids[0]}\\s+discarded\\s+S001\\s`, 'm'));
      assert.match(all.stdout, new RegExp(`^${ids[2]}: discarded \\S+ ago by carol: duplicate of sale 4711$`, 'm'));

      const again = await cli('discard', '--id', ids[0]!, '--reason', 'again');
      assert.equal(again.code, 2, show(again));
      assert.match(again.stderr, new RegExp(`^error: BL-P005 change ${ids[0]} is already discarded \\(by carol, \\S+Z\\); nothing was discarded\\. `));
      const unknown = await cli('discard', '--id', '424242', '--id', ids[1]!, '--reason', 'x');
      assert.equal(unknown.code, 2, show(unknown));
      assert.match(unknown.stderr, /^error: BL-P005 no parked change has id 424242; nothing was discarded\. /);
      assertNoStack(unknown);
      assert.equal((await hq<{ s: string }>(`SELECT status AS s FROM branchline.parked WHERE id = $1`, [ids[1]]))[0]!.s, 'parked', 'all or nothing');
    });

    it('status: a PARKED column per store and `parked` in --json', async () => {
      await hq(`UPDATE branchline.parked SET status = 'discarded' WHERE id = $1`, [ids[1]]);
      const j = await cli('status', '--json');
      assert.equal(j.code, 0, show(j));
      assert.deepEqual(
        (JSON.parse(j.stdout) as { store: string; parked: number }[]).map((s) => [s.store, s.parked]),
        [
          ['S001', 1],
          ['S002', 1],
        ],
      );
      const t = await cli('status');
      assert.equal(t.code, 0, show(t));
      const lines = t.stdout.trimEnd().split('\n');
      const cells = lines.map((l) => l.split(/\s{2,}/));
      assert.equal(cells[0]![8], 'PARKED');
      assert.equal(cells[1]![8], '1');
      assert.equal(cells[2]![8], '1');
      assert.equal(lines[3], 'S001: 1 parked, S002: 1 parked; `branchline parked` lists them and why.');
    });
  });

  describe('HQ without branchline', () => {
    it('every command: exit 3, BL-D005 saying to run install', async () => {
      const bare = await server.createDatabase('bare');
      const file = path.join(dir, 'bare.yml');
      await writeFile(file, `hq:\n  url: ${server.url(bare)}\nstores:\n  - code: S001\n    url: ${server.url(bare)}\nmappings: maps\n`);
      const u = new URL(server.url(bare));
      const where = `${u.hostname}:${u.port || '5432'}/${bare}`;
      for (const args of [
        ['associate', '--store', 'S001', '--entity', 'cost_center', '--code', 'CC-09', '--hq-key', '100'],
        ['associations'],
        ['parked'],
        ['retry'],
        ['discard', '--id', '1', '--reason', 'x'],
      ]) {
        const r = await runCli([...args, '--config', file]);
        assert.equal(r.code, 3, `${args[0]}: ${show(r)}`);
        assert.equal(r.stdout, '');
        assert.equal(
          r.stderr,
          `error: BL-D005 branchline is not installed at the HQ database at ${where} (it has no branchline.associations table). ` +
            "Run `branchline install`: it creates branchline's schema at HQ, or brings an older one up to date.\n",
          args[0],
        );
        assertNoStack(r);
      }
    });
  });
});
