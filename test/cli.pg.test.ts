import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Lsn } from '../src/core/lsn.js';
import { RETAIL_EXAMPLE_DIR } from '../src/demo/retail-example.js';
import { AgentProcess, CLI, runCli } from './support/agent-process.js';
import { assertNoStack, show, type CliResult } from './support/cli-output.js';
import { deadPort } from './support/dead-port.js';
import { startTestServer, type TestServer } from './support/pg.js';
import { createWorld, eventually, type World } from './support/world.js';

/**
 * The `branchline` command line as a user meets it: a child process, its
 * exit code, and what it prints. Every message is checked word for word,
 * with its file:line:column; no user error may print a stack trace.
 */

const ROOT = path.resolve(path.dirname(CLI), '../..');

/** Like runCli, but killed (and reported) when it does not finish within `ms`. */
async function runCliWithin(ms: number, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult & { timedOut: boolean }> {
  const entry = process.env['BRANCHLINE_AGENT_DIST'] === '1' ? [path.join(ROOT, 'dist/src/cli/main.js')] : ['--import', 'tsx', CLI];
  const child = spawn(process.execPath, [...entry, ...args], { cwd: ROOT, env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, ms);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  return { code, stdout, stderr, timedOut };
}

const temps: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `branchline-cli-${prefix}-`));
  temps.push(dir);
  return dir;
}

/**
 * A copy of the example mapping files with some lines replaced (each
 * replacement must apply), and a copy of the world's configuration that
 * points at it. The configuration sits next to the folder, not in it.
 */
async function brokenMappings(world: World, edits: Record<string, [from: string, to: string][]>): Promise<{ config: string; dir: string }> {
  const top = await tempDir('maps');
  const dir = path.join(top, 'maps');
  await cp(RETAIL_EXAMPLE_DIR, dir, { recursive: true, filter: (src) => !src.endsWith('.sql') && !src.endsWith('.md') });
  for (const [file, replacements] of Object.entries(edits)) {
    let text = await readFile(path.join(dir, file), 'utf8');
    for (const [from, to] of replacements) {
      assert.ok(text.includes(from), `${file} has the line ${JSON.stringify(from)}`);
      text = text.replace(from, to);
    }
    await writeFile(path.join(dir, file), text);
  }
  const config = path.join(top, 'branchline.yml');
  await writeFile(config, (await readFile(world.configFile, 'utf8')).replace(/^mappings: .*$/m, `mappings: ${dir}`));
  return { config, dir };
}

/** A configuration file with this text, in its own folder. */
async function configFile(text: string): Promise<string> {
  const file = path.join(await tempDir('config'), 'branchline.yml');
  await writeFile(file, text);
  return file;
}

const COMMANDS: Record<string, { describe: string; options: string[] }> = {
  init: {
    describe: 'write a starter configuration file (and the example mappings if the mapping folder does not exist)',
    options: ['--mappings', '--force'],
  },
  install: { describe: 'prepare HQ (branchline schema) and each store (slot and publication, or change table); idempotent', options: ['--store', '--store-url', '--hq-url', '--cache-dir'] },
  uninstall: {
    describe: "remove the slot and publication at each store (and, with --hq, branchline's schema at HQ)",
    options: ['--store', '--hq', '--force'],
  },
  validate: { describe: 'check every mapping file against HQ and the stores; report all problems with file:line:column', options: ['--store'] },
  run: { describe: 'run the pipelines until stopped (SIGINT/SIGTERM)', options: ['--store', '--store-url', '--hq-url', '--cache-dir'] },
  status: { describe: 'per store: position, lag in seconds and bytes, rows applied, last apply', options: ['--store', '--json'] },
  demo: {
    describe: 'start an embedded HQ and two stores, replicate live sales for a while, verify HQ equals the stores',
    options: ['--seconds', '--keep', '--dir'],
  },
};

const YAML_HINT = 'Fix the YAML syntax at this position (indentation, a missing colon, or an unclosed quote are the usual causes).';

describe('cli: usage', { timeout: 120_000 }, () => {
  it('--help lists every command with what it does, exit 0', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stderr, '');
    assert.ok(r.stdout.startsWith("branchline <command> [options]\n\nKeeps a retail chain's store databases and HQ in step."), r.stdout);
    assert.match(r.stdout, /\nCommands:\n/);
    const flat = r.stdout.replace(/\s+/g, ' ');
    for (const [name, c] of Object.entries(COMMANDS)) assert.ok(flat.includes(`branchline ${name} ${c.describe}`), `${name} is listed with its description`);
    for (const opt of ['--config', '--log-level', '--help', '--version']) assert.ok(r.stdout.includes(opt), opt);
  });

  for (const [name, c] of Object.entries(COMMANDS)) {
    it(`${name} --help describes the command and its options, exit 0`, async () => {
      const r = await runCli([name, '--help']);
      assert.equal(r.code, 0, show(r));
      assert.equal(r.stderr, '');
      assert.ok(r.stdout.startsWith(`branchline ${name}\n\n${c.describe}\n\nOptions:\n`), r.stdout);
      for (const opt of ['--config', ...c.options]) assert.match(r.stdout, new RegExp(`^\\s+(-\\w, )?${opt}\\s`, 'm'), `${name} --help shows ${opt}`);
    });
  }

  it('--version prints the version, exit 0', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, '0.1.0\n');
  });

  const usageErrors: [string, string[], RegExp][] = [
    ['an unknown command', ['frobnicate'], /^error: BL-U001 Unknown argument: frobnicate\.? See `branchline --help`\.\n/],
    ['an unknown option', ['validate', '--frobnicate'], /^error: BL-U001 Unknown argument: frobnicate\.? See `branchline --help`\.\n/],
    ['no command', [], /^error: BL-U001 Name a command; `branchline --help` lists them\. See `branchline --help`\.\n/],
  ];
  for (const [what, args, first] of usageErrors) {
    it(`${what}: exit 2, a BL-U001 sentence, no stack trace`, async () => {
      const r = await runCli(args);
      assert.equal(r.code, 2, show(r));
      assert.equal(r.stdout, '');
      assert.match(r.stderr, first);
      assertNoStack(r);
    });
  }

  it('a usage error is followed by the usage text, not by JavaScript source', async () => {
    // src/cli/main.ts, .fail(): process.stderr.write('\n' + y.help.toString())
    // prints the source code of yargs' internal help() function (240 lines
    // starting "function help() {") instead of the help text.
    const r = await runCli(['frobnicate']);
    assert.equal(r.code, 2, show(r));
    const afterFirstLine = r.stderr.slice(r.stderr.indexOf('\n') + 1);
    assert.doesNotMatch(afterFirstLine, /function help\(\)|cachedHelpMessage|=>/, 'stderr holds JavaScript source');
    assert.match(afterFirstLine, /branchline <command> \[options\]/);
    assert.match(afterFirstLine, /\nCommands:\n/);
  });
});

describe('cli: against PostgreSQL', { timeout: 600_000 }, () => {
  let hqServer: TestServer;
  let storeServer: TestServer;
  /** HQ and stores S001, S002, installed: for validate and the error cases. */
  let world: World;

  before(async () => {
    [hqServer, storeServer] = await Promise.all([startTestServer('cli-hq'), startTestServer('cli-stores')]);
    world = await createWorld({ hqServer, storeServer, stores: ['S001', 'S002'] });
  });
  after(async () => {
    await world?.dispose();
    await Promise.all([hqServer?.dispose(), storeServer?.dispose()]);
    await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
  });

  describe('validate', () => {
    it('the example ERP: exit 0, how many files, valid against HQ and which stores', async () => {
      const r = await runCli(['validate', '--config', world.configFile]);
      assert.equal(r.code, 0, show(r));
      assert.equal(r.stdout, '10 mapping files are valid against HQ and stores S001, S002.\n');
      assert.equal(r.stderr, '');
      const one = await runCli(['validate', '--config', world.configFile, '--store', 'S002']);
      assert.equal(one.code, 0, show(one));
      assert.equal(one.stdout, '10 mapping files are valid against HQ and store S002.\n');
    });

    it('--store naming a store that is not configured: exit 2, BL-C005', async () => {
      const r = await runCli(['validate', '--config', world.configFile, '--store', 'S999']);
      assert.equal(r.code, 2, show(r));
      assert.equal(r.stderr, `error: BL-C005 store "S999" is not in ${world.configFile}. Configured stores: S001, S002.\n`);
      assertNoStack(r);
    });

    it('(a) a line without its colon: BL-M001 at that line', async () => {
      const { config, dir } = await brokenMappings(world, { 'customer.yml': [['  tax_id: tax_id', '  tax_id tax_id']] });
      const r = await runCli(['validate', '--config', config]);
      assert.equal(r.code, 2, show(r));
      assert.equal(r.stdout, '');
      assert.equal(
        r.stderr,
        `error: The mapping files in ${dir} have problems.\n` +
          `  ${dir}/customer.yml:11:3: BL-M001 is not valid YAML: Implicit keys need to be on a single line. ${YAML_HINT}\n`,
      );
      assertNoStack(r);
    });

    it('(a) bad indentation: one BL-M001 at the line that lost its indentation, not its echoes', async () => {
      const { config, dir } = await brokenMappings(world, { 'customer.yml': [['  code: code', ' code: code']] });
      const r = await runCli(['validate', '--config', config]);
      assert.equal(r.code, 2, show(r));
      assert.equal(r.stdout, '');
      // The YAML parser also complains about the lines after it; only the first, true one is shown.
      assert.equal(
        r.stderr,
        `error: The mapping files in ${dir} have problems.\n` +
          `  ${dir}/customer.yml:9:1: BL-M001 is not valid YAML: All mapping items must start at the same column. ${YAML_HINT.replace(/\.$/, '')}; lines after it may be misread until it is fixed.\n`,
      );
      assertNoStack(r);
    });

    it('(b) an unknown source column: BL-M005 at the expression, with a did-you-mean', async () => {
      const { config, dir } = await brokenMappings(world, { 'sale.yml': [['  seller: seller', '  seller: sellr']] });
      const r = await runCli(['validate', '--config', config]);
      assert.equal(r.code, 2, show(r));
      assert.equal(
        r.stderr,
        `error: The mapping files in ${dir} have problems.\n` +
          `  ${dir}/sale.yml:12:11: BL-M005 unknown source column "sellr": table public.sale has no such column. Did you mean "seller"?\n`,
      );
      assert.equal(r.stdout, '');
      assertNoStack(r);
    });

    it('(c) an unknown target column: BL-M006 at the column name', async () => {
      const { config, dir } = await brokenMappings(world, { 'sale.yml': [['  notes: notes', '  note: notes']] });
      const r = await runCli(['validate', '--config', config]);
      assert.equal(r.code, 2, show(r));
      assert.equal(
        r.stderr,
        `error: The mapping files in ${dir} have problems.\n` +
          `  ${dir}/sale.yml:15:3: BL-M006 unknown target column "note": table public.store_sale has no such column. Did you mean "notes"?\n`,
      );
      assertNoStack(r);
    });

    it('(d) text into an integer column: BL-M008 at the expression', async () => {
      const { config, dir } = await brokenMappings(world, { 'sale.yml': [['  number: number', '  number: seller']] });
      const r = await runCli(['validate', '--config', config]);
      assert.equal(r.code, 2, show(r));
      assert.equal(
        r.stderr,
        `error: The mapping files in ${dir} have problems.\n` +
          `  ${dir}/sale.yml:9:11: BL-M008 the expression for "number" gives text, but column "number" of public.store_sale is integer. Wrap it in integer(...) if the text always holds a whole number.\n`,
      );
      assertNoStack(r);
    });

    it('(e) several broken files: every problem in one run, sorted by file, line and column', async () => {
      const { config, dir } = await brokenMappings(world, {
        'sale.yml': [
          ['  seller: seller', '  seller: sellr'],
          ['  number: number', '  number: seller'],
        ],
        'sale-line.yml': [['  discount: discount', '  discont: discount']],
        'customer.yml': [['  email: lower(email)', '  email: lower(emial)']],
      });
      const r = await runCli(['validate', '--config', config]);
      assert.equal(r.code, 2, show(r));
      assert.equal(
        r.stderr,
        [
          `5 problems: The mapping files in ${dir} have problems.`,
          `  ${dir}/customer.yml:12:16: BL-M005 unknown source column "emial": table public.customer has no such column. Did you mean "email"?`,
          `  ${dir}/sale-line.yml:6:1: BL-M014 target column "discount" of public.store_sale_line is NOT NULL and has no default, but this file does not map it. Add "discount: <expression>" under columns (a constant such as "'X'" will do).`,
          `  ${dir}/sale-line.yml:14:3: BL-M006 unknown target column "discont": table public.store_sale_line has no such column. Did you mean "discount"?`,
          `  ${dir}/sale.yml:9:11: BL-M008 the expression for "number" gives text, but column "number" of public.store_sale is integer. Wrap it in integer(...) if the text always holds a whole number.`,
          `  ${dir}/sale.yml:12:11: BL-M005 unknown source column "sellr": table public.sale has no such column. Did you mean "seller"?`,
          '',
        ].join('\n'),
      );
      assertNoStack(r);
    });

    it('(e) a YAML error in one file does not hide the column errors of the others', async () => {
      // validateCommand (src/cli/commands/basic.ts) calls loadMappings
      // (src/agent/prepare.ts), which throws as soon as any file has a
      // syntax or schema problem; the files that did parse are never checked
      // against HQ and the stores, so this run reports customer.yml only and
      // the user learns about sale.yml on the next run.
      const { config, dir } = await brokenMappings(world, {
        'customer.yml': [['  tax_id: tax_id', '  tax_id tax_id']],
        'sale.yml': [['  seller: seller', '  seller: sellr']],
      });
      const r = await runCli(['validate', '--config', config]);
      assert.equal(r.code, 2, show(r));
      assert.equal(
        r.stderr,
        [
          `2 problems: The mapping files in ${dir} have problems.`,
          `  ${dir}/customer.yml:11:3: BL-M001 is not valid YAML: Implicit keys need to be on a single line. ${YAML_HINT}`,
          `  ${dir}/sale.yml:12:11: BL-M005 unknown source column "sellr": table public.sale has no such column. Did you mean "seller"?`,
          '',
        ].join('\n'),
      );
    });
  });

  describe('run with a broken mapping file', () => {
    it('stops at start-up with the same problem, once for every store that lacks the column, exit 2', async () => {
      const { config, dir } = await brokenMappings(world, { 'sale.yml': [['  seller: seller', '  seller: sellr']] });
      const r = await runCliWithin(60_000, ['run', '--config', config]);
      assert.equal(r.timedOut, false, `run did not stop within 60 s:\n${show(r)}`);
      assert.equal(r.code, 2, show(r));
      assert.equal(r.stdout, '');
      assert.equal(
        r.stderr,
        `error: The mapping files in ${dir} do not fit HQ and stores S001, S002.\n` +
          `  ${dir}/sale.yml:12:11: BL-M005 unknown source column "sellr": table public.sale has no such column. Did you mean "seller"?\n`,
      );
      assertNoStack(r);
      // Nothing was started: no connection reads the slots.
      const active = await storeServer.query<{ n: string }>(world.stores[0]!.db, `SELECT count(*)::text AS n FROM pg_replication_slots WHERE active`);
      assert.equal(active[0]!.n, '0');
    });

    it('stops at start-up with exactly what validate prints, exit 2 (broken YAML)', async () => {
      const { config } = await brokenMappings(world, { 'customer.yml': [['  tax_id: tax_id', '  tax_id tax_id']] });
      const validate = await runCli(['validate', '--config', config]);
      const r = await runCliWithin(60_000, ['run', '--config', config]);
      assert.equal(r.timedOut, false, `run did not stop within 60 s:\n${show(r)}`);
      assert.equal(r.code, 2, show(r));
      assert.equal(validate.code, 2);
      assert.equal(r.stderr, validate.stderr);
      assertNoStack(r);
    });
  });

  describe('configuration errors', () => {
    const goodStores = () => `stores:\n  - code: S001\n    url: ${world.stores[0]!.url}\nmappings: ${RETAIL_EXAMPLE_DIR}\n`;

    it('an unknown setting: exit 2, BL-C003 at the setting', async () => {
      const file = await configFile(`hq:\n  url: ${world.hq.url}\n${goodStores()}colour: blue\n`);
      const r = await runCli(['validate', '--config', file]);
      assert.equal(r.code, 2, show(r));
      assert.equal(r.stdout, '');
      const lines = r.stderr.split('\n');
      assert.equal(lines[0], `error: The configuration file ${file} has problems.`);
      assert.ok(lines[1]!.startsWith(`  ${file}:7:1: BL-C003 unknown setting "colour" at the top level in this configuration file. Remove it`), lines[1]);
      assert.equal(lines.length, 3);
      assertNoStack(r);
    });

    it('hq missing: exit 2, BL-C003 at the top of the file', async () => {
      const file = await configFile(goodStores());
      const r = await runCli(['status', '--config', file]);
      assert.equal(r.code, 2, show(r));
      assert.equal(
        r.stderr,
        `error: The configuration file ${file} has problems.\n  ${file}:1:1: BL-C003 "hq" is missing at the top level in this configuration file. Add "hq:" here.\n`,
      );
      assertNoStack(r);
    });

    it('an environment variable that is not set: exit 2, BL-C004 at its value', async () => {
      const file = await configFile(`hq:\n  url: \${BRANCHLINE_TEST_NOPE}\n${goodStores()}`);
      const r = await runCli(['validate', '--config', file], { BRANCHLINE_TEST_NOPE: undefined });
      assert.equal(r.code, 2, show(r));
      assert.equal(
        r.stderr,
        `error: The configuration file ${file} needs environment variables.\n` +
          `  ${file}:2:8: BL-C004 the environment variable BRANCHLINE_TEST_NOPE is not set. Set BRANCHLINE_TEST_NOPE before starting branchline, or write \${BRANCHLINE_TEST_NOPE:-default} to give a default.\n`,
      );
      assertNoStack(r);
      // Set, it works.
      const ok = await runCli(['validate', '--config', file], { BRANCHLINE_TEST_NOPE: world.hq.url });
      assert.equal(ok.code, 0, show(ok));
    });

    it('a configuration file that does not exist: exit 2, BL-C001', async () => {
      const file = path.join(await tempDir('none'), 'missing.yml');
      const r = await runCli(['status', '--config', file]);
      assert.equal(r.code, 2, show(r));
      assert.equal(
        r.stderr,
        `error: BL-C001 cannot read the configuration file ${file} (ENOENT). Pass --config <file>, set BRANCHLINE_CONFIG, or create one with \`branchline init\`.\n`,
      );
      assertNoStack(r);
    });
  });

  describe('an unreachable database', () => {
    const PASSWORD = 'Pw-9f3kQz7';

    for (const command of ['validate', 'status']) {
      it(`${command} with HQ unreachable: exit 3, BL-D001 naming host:port/database, never the password`, async () => {
        const port = await deadPort();
        const file = await configFile(
          `hq:\n  url: postgres://branchline:${PASSWORD}@127.0.0.1:${port}/hq_nowhere\nstores:\n  - code: S001\n    url: ${world.stores[0]!.url}\nmappings: ${RETAIL_EXAMPLE_DIR}\n`,
        );
        const r = await runCliWithin(60_000, [command, '--config', file]);
        assert.equal(r.timedOut, false, show(r));
        assert.equal(r.code, 3, show(r));
        assert.equal(r.stdout, '');
        assert.equal(
          r.stderr,
          `error: BL-D001 cannot reach the HQ database at 127.0.0.1:${port}/hq_nowhere: connect ECONNREFUSED 127.0.0.1:${port}. ` +
            'Check that the server is running, the host and port are right, and a firewall lets this machine in; branchline retries on its own while running.\n',
        );
        assert.ok(!r.stdout.includes(PASSWORD) && !r.stderr.includes(PASSWORD), 'the password is printed');
        assertNoStack(r);
      });
    }

    it('validate with one store unreachable: checks the rest, warns about that store without its password, exit 0', async () => {
      const port = await deadPort();
      const file = await configFile(
        `hq:\n  url: ${world.hq.url}\nstores:\n  - code: S001\n    url: ${world.stores[0]!.url}\n  - code: S009\n    url: postgres://erp:${PASSWORD}@127.0.0.1:${port}/erp\nmappings: ${RETAIL_EXAMPLE_DIR}\n`,
      );
      const r = await runCliWithin(60_000, ['validate', '--config', file]);
      assert.equal(r.code, 0, show(r));
      assert.equal(r.stdout, '10 mapping files are valid against HQ and store S001.\n');
      assert.equal(
        r.stderr,
        `warning: store S009 (BL-D001 cannot reach the store S009 database at 127.0.0.1:${port}/erp: connect ECONNREFUSED 127.0.0.1:${port}. ` +
          'Check that the server is running, the host and port are right, and a firewall lets this machine in; branchline retries on its own while running.); ' +
          'its side of the mappings was not checked.\n',
      );
      assert.ok(!r.stderr.includes(PASSWORD));
      // Only that store: nothing could be checked at a store, exit 3.
      const only = await runCliWithin(60_000, ['validate', '--config', file, '--store', 'S009']);
      assert.equal(only.code, 3, show(only));
      assert.equal(only.stdout, '10 mapping files are valid against HQ.\n');
      assert.ok(!only.stderr.includes(PASSWORD));
    });
  });

  describe('install and uninstall', () => {
    it('install twice is idempotent, uninstall removes slot and publication, install again works', async () => {
      const w = await createWorld({ hqServer, storeServer, stores: ['S201', 'S202'], install: false });
      const slots = async (s: World['stores'][number]) =>
        (await storeServer.query<{ slot_name: string; plugin: string }>(s.db, `SELECT slot_name, plugin FROM pg_replication_slots WHERE database = current_database()`)).map(
          (x) => `${x.slot_name} ${x.plugin}`,
        );
      const pubTables = async (s: World['stores'][number]) =>
        (await storeServer.query<{ t: string }>(s.db, `SELECT pubname || ' ' || schemaname || '.' || tablename AS t FROM pg_publication_tables ORDER BY 1`)).map((x) => x.t);
      const hqSchema = async () => (await w.hqQuery<{ n: string }>(`SELECT count(*)::text AS n FROM pg_namespace WHERE nspname = 'branchline'`))[0]!.n;
      const TABLES = 'public.customer, public.fiscal_coupon, public.fiscal_coupon_item, public.receivable, public.sale, public.sale_line, public.stock, public.z_closing';
      // The first install also gives the aggregate's source its before-images; that stays.
      const IDENTITY = '  - set REPLICA IDENTITY FULL on public.fiscal_coupon_item: it feeds an aggregate, whose totals need the old row of every update and delete\n';
      // The example's down files (product, store_price): the stores keep the down channel's state in their own branchline schema, made once.
      const migrations = (await readdir(path.join(RETAIL_EXAMPLE_DIR, '../../migrations'))).filter((f) => /^\d{14}_\w+\.ts$/.test(f)).length;
      const created = (code: string, first = false) =>
        `store ${code}:\n` +
        (first ? IDENTITY : '') +
        `  - created publication "branchline" for 8 tables (${TABLES})\n` +
        `  - created replication slot "branchline_${code.toLowerCase()}" (pgoutput); changes from now on are kept until HQ applied them\n` +
        (first ? `  - applied ${migrations} branchline migrations (down channel state)\n` : '');
      const TRIGGERS = (verb: string) => `  - ${verb} the capture triggers on public.product (7 columns)\n  - ${verb} the capture triggers on public.store_price (4 columns)\n`;
      try {
        const first = await runCli(['install', '--config', w.configFile]);
        assert.equal(first.code, 0, show(first));
        assert.match(first.stdout, /^HQ:\n(  - applied migration \d{14}_\w+\n)+  - created the change log branchline.change_log\n/);
        assert.ok(first.stdout.endsWith(TRIGGERS('created') + created('S201', true) + created('S202', true)), first.stdout);
        for (const s of w.stores)
          assert.equal((await storeServer.query<{ r: string }>(s.db, `SELECT relreplident::text AS r FROM pg_class WHERE oid = 'public.fiscal_coupon_item'::regclass`))[0]!.r, 'f');
        assert.equal(first.stderr, '');
        for (const s of w.stores) {
          assert.deepEqual(await slots(s), [`branchline_${s.code.toLowerCase()} pgoutput`]);
          assert.equal((await pubTables(s)).length, 8);
        }
        assert.equal(await hqSchema(), '1');

        const second = await runCli(['install', '--config', w.configFile]);
        assert.equal(second.code, 0, show(second));
        assert.equal(
          second.stdout,
          'HQ:\n  - branchline schema is up to date\n' +
            TRIGGERS('refreshed') +
            ['S201', 'S202']
              .map(
                (c) =>
                  `store ${c}:\n  - publication "branchline" already holds the 8 mapped tables\n  - replication slot "branchline_${c.toLowerCase()}" already exists\n`,
              )
              .join(''),
        );
        for (const s of w.stores) assert.deepEqual(await slots(s), [`branchline_${s.code.toLowerCase()} pgoutput`]);

        const removed = await runCli(['uninstall', '--config', w.configFile]);
        assert.equal(removed.code, 0, show(removed));
        assert.equal(
          removed.stdout,
          ['S201', 'S202'].map((c) => `store ${c}:\n  - dropped replication slot "branchline_${c.toLowerCase()}"\n  - dropped publication "branchline"\n`).join(''),
        );
        for (const s of w.stores) {
          assert.deepEqual(await slots(s), []);
          assert.deepEqual(await pubTables(s), []);
          assert.equal((await storeServer.query<{ n: string }>(s.db, `SELECT count(*)::text AS n FROM pg_publication`))[0]!.n, '0');
        }
        assert.equal(await hqSchema(), '1', 'without --hq the branchline schema at HQ stays');

        const again = await runCli(['uninstall', '--config', w.configFile, '--store', 'S201']);
        assert.equal(again.code, 0, show(again));
        assert.equal(again.stdout, 'store S201:\n  - replication slot "branchline_s201" was not there\n  - publication "branchline" was not there\n');

        const reinstall = await runCli(['install', '--config', w.configFile]);
        assert.equal(reinstall.code, 0, show(reinstall));
        assert.equal(reinstall.stdout, 'HQ:\n  - branchline schema is up to date\n' + TRIGGERS('refreshed') + created('S201') + created('S202'));
        for (const s of w.stores) assert.deepEqual(await slots(s), [`branchline_${s.code.toLowerCase()} pgoutput`]);

        const all = await runCli(['uninstall', '--config', w.configFile, '--hq']);
        assert.equal(all.code, 0, show(all));
        assert.ok(all.stdout.endsWith('HQ:\n  - dropped schema branchline (positions and status of every pipeline)\n'), all.stdout);
        assert.equal(await hqSchema(), '0');
        const fresh = await runCli(['install', '--config', w.configFile]);
        assert.equal(fresh.code, 0, show(fresh));
        assert.match(fresh.stdout, /^HQ:\n(  - applied migration \d{14}_\w+\n)+/);
        assert.ok(fresh.stdout.endsWith(TRIGGERS('created') + created('S201') + created('S202')), fresh.stdout);
      } finally {
        await w.dispose();
      }
    });
  });

  describe('status', () => {
    const FIELDS = [
      'lagBytes',
      'lagSeconds',
      'lastApplyAt',
      'lastError',
      'lastSourceCommitAt',
      'lease',
      'nextScheduledAt',
      'parked',
      'paused',
      'position',
      'rowsApplied',
      'scheduled',
      'slotState',
      'state',
      'store',
      'storeReachable',
      'txnsApplied',
      'walRetainedBytes',
    ];
    let w: World;
    let agent: AgentProcess;

    before(async () => {
      w = await createWorld({ hqServer, storeServer, stores: ['S101', 'S102'] });
      agent = new AgentProcess(w.configFile, path.join(w.dir, 'agent.log'));
    });
    after(async () => {
      await agent?.dispose();
      await w?.dispose();
    });

    type Status = Record<string, unknown> & { store: string };
    async function statusJson(): Promise<Status[]> {
      const r = await runCli(['status', '--config', w.configFile, '--json']);
      assert.equal(r.code, 0, show(r));
      assert.equal(r.stderr, '');
      return JSON.parse(r.stdout) as Status[];
    }

    it('before the agent ever ran: never ran, nothing applied', async () => {
      const rows = await statusJson();
      assert.deepEqual(
        rows.map((r) => [r.store, r['state'], r['position'], r['txnsApplied'], r['rowsApplied'], r['lastApplyAt'], r['storeReachable'], r['lastError']]),
        [
          ['S101', 'never ran', null, 0, 0, null, true, null],
          ['S102', 'never ran', null, 0, 0, null, true, null],
        ],
      );
    });

    it('after the agent ran a little: per store position, transactions and rows applied, lag (text and --json)', async () => {
      agent.start();
      // Setup wrote one transaction of 5 customers at each store (products are not mapped);
      // S101 then sells 4 times, 3 lines each: 4 transactions of 4 rows.
      const written = await w.stores[0]!.workload.sales(4, { lines: 3 });
      assert.equal(written, 16);
      const applied = async (store: string) =>
        (await w.hqQuery<{ txns: string; rows: string; position: string; applied_at: Date; source_commit_time: Date }>(
          `SELECT txns_applied::text AS txns, rows_applied::text AS rows, position, applied_at, source_commit_time FROM branchline.pipelines WHERE pipeline = $1`,
          [`up:${store}`],
        ))[0];
      await eventually('S101: 5 transactions at HQ and S102: 1', async () => (await applied('S101'))?.txns === '5' && (await applied('S102'))?.txns === '1', 60_000);

      const rows = await statusJson();
      assert.deepEqual(rows.map((r) => r.store), ['S101', 'S102']);
      for (const r of rows) {
        assert.deepEqual(Object.keys(r).sort(), FIELDS, `${r.store}: the documented fields`);
        assert.equal(r['lease'], null, 'no agent with lease: ran: no lease');
        const hq = (await applied(r.store))!;
        assert.equal(r['state'], 'streaming');
        assert.equal(r['position'], hq.position);
        assert.equal(Lsn.parse(r['position'] as string).toString(), r['position'], 'position is an LSN in PostgreSQL form');
        assert.equal(r['lastApplyAt'], hq.applied_at.toISOString());
        assert.equal(r['lastSourceCommitAt'], hq.source_commit_time.toISOString());
        assert.equal(r['storeReachable'], true);
        assert.match(String(r['slotState']), /^(reserved|extended), active$/);
        assert.equal(r['lastError'], null);
        for (const f of ['lagSeconds', 'lagBytes', 'walRetainedBytes']) {
          assert.equal(typeof r[f], 'number', `${r.store}.${f} is a number`);
          assert.ok((r[f] as number) >= 0, `${r.store}.${f} >= 0`);
        }
        assert.ok((r['lagSeconds'] as number) < 60, `${r.store}: caught up, lag ${String(r['lagSeconds'])} s`);
      }
      assert.deepEqual(
        rows.map((r) => [r.store, r['txnsApplied'], r['rowsApplied']]),
        [
          ['S101', 5, 21],
          ['S102', 1, 5],
        ],
      );

      const text = await runCli(['status', '--config', w.configFile]);
      assert.equal(text.code, 0, show(text));
      const lines = text.stdout.trimEnd().split('\n');
      assert.equal(lines.length, 3, text.stdout);
      const cells = lines.map((l) => l.split(/\s{2,}/));
      assert.deepEqual(cells[0], ['STORE', 'STATE', 'POSITION', 'LAG', 'BEHIND', 'WAL KEPT', 'TXNS', 'ROWS', 'PARKED', 'SCHEDULED', 'LAST APPLY', 'LAST ERROR']);
      for (const [i, store, txns, rowsApplied] of [
        [1, 'S101', '5', '21'],
        [2, 'S102', '1', '5'],
      ] as const) {
        const c = cells[i]!;
        assert.equal(c.length, 12, lines[i]);
        // SCHEDULED is '0': the example's down channel (products, store prices) has nothing waiting at the stores.
        assert.deepEqual([c[0], c[1], c[2], c[6], c[7], c[8], c[9], c[11]], [store, 'streaming', (await applied(store))!.position, txns, rowsApplied, '0', '0', '-']);
        assert.match(c[3]!, /^\d+\.\ds$/);
        assert.match(c[4]!, /^\d+(\.\d)? (B|kB|MB)$/);
        assert.match(c[5]!, /^\d+(\.\d)? (B|kB|MB)$/);
        assert.match(c[10]!, /^\d+(\.\d)?s ago$/);
      }
    });

    it('after a clean stop (SIGTERM): stopped, counts kept, no error recorded', async () => {
      // A clean stop closes the replication stream; the pipeline loop
      // (src/pipeline/pipeline.ts, `if (result.done) throw ... BL-D001 'the
      // source stream ended.'`) does not check the abort signal first, so the
      // catch block reports that as the pipeline's last error at HQ, and
      // `status` shows BL-D001 "the source stream ended" after every stop.
      assert.ok(agent.running, 'the agent from the previous test is running');
      const code = await agent.stop();
      assert.equal(code, 0, 'the agent exits 0 on SIGTERM');
      const rows = await statusJson();
      assert.deepEqual(
        rows.map((r) => [r.store, r['state'], r['txnsApplied'], r['rowsApplied'], r['lastError']]),
        [
          ['S101', 'stopped', 5, 21, null],
          ['S102', 'stopped', 1, 5, null],
        ],
      );
    });
  });

  describe('init', () => {
    it('writes a configuration and the example mappings into an empty folder; again without --force is exit 2', async () => {
      const dir = await tempDir('init');
      const file = path.join(dir, 'branchline.yml');
      const r = await runCli(['init', '--config', file]);
      assert.equal(r.code, 0, show(r));
      assert.equal(
        r.stdout,
        `wrote ${file} and example mappings in mappings/\n` +
          'next: set BRANCHLINE_HQ_URL and BRANCHLINE_S001_URL, then run `branchline validate` and `branchline install`.\n',
      );
      assert.equal(r.stderr, '');
      assert.deepEqual((await readdir(dir)).sort(), ['branchline.yml', 'mappings']);
      const examples = (await readdir(RETAIL_EXAMPLE_DIR)).filter((f) => f.endsWith('.yml') || f.endsWith('.csv')).sort();
      assert.equal(examples.length, 14, 'ten up and two down mapping files, entities.yml and associations.csv');
      assert.deepEqual((await readdir(path.join(dir, 'mappings'))).sort(), examples, 'the mapping files, entities and associations only (no .sql, no README)');
      for (const f of examples) assert.equal(await readFile(path.join(dir, 'mappings', f), 'utf8'), await readFile(path.join(RETAIL_EXAMPLE_DIR, f), 'utf8'), f);
      const text = await readFile(file, 'utf8');
      assert.match(text, /^hq:\n {2}url: \$\{BRANCHLINE_HQ_URL\}$/m);
      assert.match(text, /^ {4}url: \$\{BRANCHLINE_S001_URL\}$/m);
      assert.match(text, /^mappings: mappings$/m);

      // The written configuration works as it is, once the two variables are set.
      const valid = await runCli(['validate', '--config', file], { BRANCHLINE_HQ_URL: world.hq.url, BRANCHLINE_S001_URL: world.stores[0]!.url });
      assert.equal(valid.code, 0, show(valid));
      assert.equal(valid.stdout, '10 mapping files are valid against HQ and store S001.\n');

      // A second init does not overwrite it.
      await writeFile(file, text + '# edited by hand\n');
      const second = await runCli(['init', '--config', file]);
      assert.equal(second.code, 2, show(second));
      assert.equal(second.stdout, '');
      assert.equal(second.stderr, `error: BL-U001 ${file} already exists. Pass --force to overwrite it, or --config to write another file.\n`);
      assertNoStack(second);
      assert.equal(await readFile(file, 'utf8'), text + '# edited by hand\n');

      // --force does, and leaves the existing mapping folder alone.
      await writeFile(path.join(dir, 'mappings', 'sale.yml'), '# mine\n');
      const forced = await runCli(['init', '--config', file, '--force']);
      assert.equal(forced.code, 0, show(forced));
      assert.equal(forced.stdout, `wrote ${file}\nnext: set BRANCHLINE_HQ_URL and BRANCHLINE_S001_URL, then run \`branchline validate\` and \`branchline install\`.\n`);
      assert.equal(await readFile(file, 'utf8'), text);
      assert.equal(await readFile(path.join(dir, 'mappings', 'sale.yml'), 'utf8'), '# mine\n');
    });
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
