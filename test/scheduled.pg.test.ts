import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../src/core/logger.js';
import { runInitialLoad } from '../src/load/initial-load.js';
import { runCli } from './support/agent-process.js';
import { show } from './support/cli-output.js';
import { startInProcess, type InProcess } from './support/in-process.js';
import { eventually, type World } from './support/world.js';

/**
 * Scheduled down rows (effective_at) and shelf labels, end to end with real
 * PostgreSQL: HQ's price list hands prices down with a valid_from time; a
 * future price waits at the store in branchline.scheduled and is applied at
 * its time (also after an agent restart, once); a later HQ change or a
 * delete supersedes it; every price change at the store gives one label in
 * a PDF (read back with poppler's pdftotext).
 */

const HQ_SQL = `
  CREATE TABLE price_list (product_id int PRIMARY KEY, name text NOT NULL, price numeric(12,2) NOT NULL, valid_from timestamptz);
  CREATE TABLE store_note (store_code text NOT NULL, id int NOT NULL, note text, PRIMARY KEY (store_code, id));
  CREATE TABLE promo_price (product_id int PRIMARY KEY, price numeric(12,2) NOT NULL, starts_on timestamptz);
  INSERT INTO price_list VALUES (101, 'Arroz branco 101', 1.01, NULL), (102, 'Feijao preto 102', 2.02, now() + interval '1 hour');`;

const STORE_SQL = `
  CREATE TABLE product (id int PRIMARY KEY, description text NOT NULL, price numeric(12,2) NOT NULL);
  CREATE TABLE note (id int PRIMARY KEY, note text);
  CREATE TABLE promo (store_code text NOT NULL, product_id int NOT NULL, price numeric(12,2) NOT NULL, PRIMARY KEY (store_code, product_id));
  -- Every write branchline makes to product, to count that a scheduled change is applied once.
  CREATE TABLE product_writes (id int, price numeric(12,2), at timestamptz DEFAULT clock_timestamp());
  CREATE FUNCTION log_product() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO product_writes (id, price) VALUES (NEW.id, NEW.price); RETURN NEW; END $$;
  CREATE TRIGGER product_writes AFTER INSERT OR UPDATE ON product FOR EACH ROW EXECUTE FUNCTION log_product();`;

const MAPPINGS = {
  'note-up.yml': `source: note
target: store_note
columns:
  store_code: store.code
  id: id
  note: note
`,
  // Keyed by store code: a TRUNCATE at HQ can be applied to it (it removes this store's rows).
  'promo-down.yml': `direction: down
source: promo_price
target: promo
effective_at: starts_on
columns:
  store_code: store.code
  product_id: product_id
  price: price
`,
  'price-down.yml': `direction: down
source: price_list
target: product
effective_at: valid_from
labels:
  code: id
  description: description
  price: price
columns:
  id: product_id
  description: name
  price: price
`,
};

const STORE = 'S1';

describe('scheduled down rows and shelf labels', { timeout: 240_000 }, () => {
  let env: InProcess;
  let world: World;
  let labels: string;
  const q = async <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => (await world.stores[0]!.pool.query<R>(sql, params)).rows;
  const price = async (id: number) => (await q<{ p: string }>(`SELECT price::text AS p FROM product WHERE id = $1`, [id]))[0]?.p ?? null;
  const scheduled = async () =>
    (await q<{ mapping: string; row_keys: string[]; price: string }>(`SELECT mapping, row_keys, change->'after'->>'price' AS price FROM branchline.scheduled ORDER BY id`));
  /** The text of every labels PDF written so far, one entry per file. */
  const pdfs = async (): Promise<string[]> => {
    const files = (await readdir(path.join(labels, STORE)).catch(() => [] as string[])).filter((f) => f.endsWith('.pdf')).sort();
    return files.map((f) => {
      const r = spawnSync('pdftotext', ['-enc', 'UTF-8', path.join(labels, STORE, f), '-'], { encoding: 'utf8' });
      if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') assert.fail('pdftotext is not installed (Debian package poppler-utils): the labels are read back with it.');
      assert.equal(r.status, 0, `pdftotext ${f}: ${r.stderr}`);
      return r.stdout;
    });
  };
  const count = (texts: readonly string[], needle: string) => texts.reduce((n, t) => n + t.split(needle).length - 1, 0);

  before(async () => {
    labels = await mkdtemp(path.join(os.tmpdir(), 'branchline-shelf-'));
    env = await startInProcess({
      name: 'scheduled',
      stores: [STORE],
      hqSql: HQ_SQL,
      storeSql: STORE_SQL,
      mappings: MAPPINGS,
      extraConfig: `down:\n  poll_ms: 200\nlabels:\n  folder: ${labels}/{store}\n  currency: R$\n`,
      beforeAgent: async (w) => {
        const config = await w.config();
        await runInitialLoad({ config, store: config.stores[0]!, logger: silentLogger() });
      },
    });
    world = env.world;
  });
  after(async () => {
    await env?.dispose();
    if (labels) await rm(labels, { recursive: true, force: true });
  });

  it('the initial load applies rows in effect and schedules the ones that are not yet, without labels', async () => {
    assert.deepEqual(await q(`SELECT id, price::text FROM product ORDER BY id`), [{ id: 101, price: '1.01' }]);
    assert.deepEqual(await scheduled(), [{ mapping: 'price-down.yml', row_keys: ['["102"]'], price: '2.02' }]);
    assert.deepEqual(await pdfs(), [], 'an initial load prints no labels');
  });

  it('a price effective in 3 s is not at the store before then, is there within 1.5 s after, with its label', async () => {
    const [{ eff }] = (await world.hqQuery<{ eff: Date }>(`UPDATE price_list SET price = 5.55, valid_from = now() + interval '3 s' WHERE product_id = 101 RETURNING valid_from AS eff`)) as [{ eff: Date }];
    const due = eff.getTime();
    await eventually('the change scheduled at the store', async () => (await scheduled()).some((r) => r.price === '5.55'), 2_500, 50);
    // Listed while pending: the status command's count and the next due time come from this table.
    const [next] = await q<{ n: number; next: Date }>(`SELECT count(*)::int AS n, min(effective_at) AS next FROM branchline.scheduled`);
    assert.equal(next!.n, 2);
    assert.equal(next!.next.getTime(), due);
    while (Date.now() < due - 150) {
      assert.equal(await price(101), '1.01', 'not applied before its time');
      assert.equal(count(await pdfs(), 'R$ 5,55'), 0, 'no label before the price applies');
      await new Promise((r) => setTimeout(r, 100));
    }
    await eventually('the scheduled price applied', async () => (await price(101)) === '5.55', 5_000, 25);
    const late = Date.now() - due;
    process.stderr.write(`# scheduled: a price due at a set time was applied ${late} ms after it\n`);
    assert.ok(late < 1_500, `applied ${late} ms after its time`);
    const [w] = await q<{ at: Date }>(`SELECT at FROM product_writes WHERE id = 101 AND price = 5.55`);
    assert.ok(w!.at.getTime() >= due, 'the store wrote it at or after its effective time');
    assert.deepEqual(await scheduled(), [{ mapping: 'price-down.yml', row_keys: ['["102"]'], price: '2.02' }]);
    await eventually('its label written', async () => count(await pdfs(), 'Arroz branco 101') === 1, 5_000, 50);
    const text = (await pdfs()).join('\n');
    assert.equal(count([text], 'R$ 5,55'), 1, 'the new price');
    assert.equal(count([text], 'R$ 1,01'), 1, 'the previous price');
    assert.match(text, /\b101\b/);
    // The date the price took effect (the store's zone, UTC here) is on its label.
    assert.equal(count([text], eff.toISOString().slice(0, 10)), 1, 'the effective date on the label');
  });

  it('an agent restart in between still applies a scheduled change, once', async () => {
    const [{ eff }] = (await world.hqQuery<{ eff: Date }>(`INSERT INTO price_list VALUES (103, 'Cafe torrado 103', 3.03, now() + interval '3 s') RETURNING valid_from AS eff`)) as [{ eff: Date }];
    await eventually('scheduled', async () => (await scheduled()).some((r) => r.price === '3.03'), 5_000, 50);
    await env.stopAgent();
    await new Promise((r) => setTimeout(r, Math.max(0, eff.getTime() - Date.now() + 500)));
    assert.equal(await price(103), null, 'nothing applies it while the agent is stopped');
    await env.startAgent();
    await eventually('applied after the restart', async () => (await price(103)) === '3.03', 10_000, 50);
    await env.stopAgent();
    await env.startAgent();
    await new Promise((r) => setTimeout(r, 1_000));
    assert.deepEqual(await q(`SELECT price::text FROM product_writes WHERE id = 103`), [{ price: '3.03' }], 'written once');
    assert.ok(!(await scheduled()).some((r) => r.price === '3.03'));
  });

  it('a scheduled insert of a row the store created meanwhile writes HQ\'s row over it', async () => {
    const [{ eff }] = (await world.hqQuery<{ eff: Date }>(`INSERT INTO price_list VALUES (109, 'Sal refinado 109', 9.09, now() + interval '2 s') RETURNING valid_from AS eff`)) as [{ eff: Date }];
    await eventually('scheduled', async () => (await scheduled()).some((r) => r.price === '9.09'), 5_000, 50);
    await q(`INSERT INTO product VALUES (109, 'sal (local)', 0.50)`);
    await eventually('HQ\'s row applied at its time', async () => (await q(`SELECT 1 FROM product WHERE id = 109 AND description = 'Sal refinado 109' AND price = 9.09`)).length === 1, 10_000, 50);
    assert.ok(Date.now() >= eff.getTime());
    assert.deepEqual(await q(`SELECT count(*)::int AS n FROM branchline.parked`), [{ n: 0 }], 'nothing parked');
  });

  it('a later HQ change supersedes a scheduled one; a delete removes it', async () => {
    await world.hqQuery(`INSERT INTO price_list VALUES (104, 'Oleo de soja 104', 4.04, NULL), (105, 'Acucar cristal 105', 5.05, NULL)`);
    await eventually('104 and 105 at the store', async () => (await price(104)) === '4.04' && (await price(105)) === '5.05', 10_000, 50);
    await world.hqQuery(`UPDATE price_list SET price = 7.77, valid_from = now() + interval '1 hour' WHERE product_id IN (104, 105)`);
    await eventually('both scheduled', async () => (await scheduled()).filter((r) => r.price === '7.77').length === 2, 10_000, 50);
    // `branchline scheduled` lists them (mapping, key, effective time); `status` counts them and says when the next is due.
    const [{ next }] = (await q<{ next: Date }>(`SELECT min(effective_at) AS next FROM branchline.scheduled`)) as [{ next: Date }];
    const listed = await runCli(['scheduled', '--config', world.configFile, '--json']);
    assert.equal(listed.code, 0, show(listed));
    const items = JSON.parse(listed.stdout) as { store: string; mapping: string; key: string[]; op: string; effectiveAt: string }[];
    assert.deepEqual(items.map((i) => [i.store, i.mapping, i.key, i.op]), [
      [STORE, 'price-down.yml', ['102'], 'insert'],
      [STORE, 'price-down.yml', ['104'], 'update'],
      [STORE, 'price-down.yml', ['105'], 'update'],
    ]);
    assert.equal(items[0]!.effectiveAt, next.toISOString());
    const text = await runCli(['scheduled', '--config', world.configFile]);
    assert.equal(text.code, 0, show(text));
    assert.match(text.stdout, /^STORE +ID +MAPPING +TARGET +KEY +OP +EFFECTIVE AT +SCHEDULED\n/);
    assert.match(text.stdout, /\nS1 +\d+ +price-down\.yml +public\.product +104 +update +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
    const status = await runCli(['status', '--config', world.configFile, '--json']);
    assert.equal(status.code, 0, show(status));
    const [st] = JSON.parse(status.stdout) as { scheduled: number; nextScheduledAt: string }[];
    assert.deepEqual([st!.scheduled, st!.nextScheduledAt], [3, next.toISOString()]);
    // A new future price replaces the scheduled one; a price in effect now replaces it and applies.
    await world.hqQuery(`UPDATE price_list SET price = 8.88, valid_from = now() + interval '2 hours' WHERE product_id = 104`);
    await eventually('104 rescheduled at its new price', async () => {
      const s = (await scheduled()).filter((r) => r.row_keys[0] === '["104"]');
      return s.length === 1 && s[0]!.price === '8.88';
    }, 10_000, 50);
    await world.hqQuery(`UPDATE price_list SET price = 9.99, valid_from = NULL WHERE product_id = 104`);
    await eventually('104 applied now, nothing scheduled for it', async () => (await price(104)) === '9.99' && !(await scheduled()).some((r) => r.row_keys[0] === '["104"]'), 10_000, 50);
    await world.hqQuery(`DELETE FROM price_list WHERE product_id = 105`);
    await eventually('105 deleted at the store and unscheduled', async () => (await price(105)) === null && !(await scheduled()).some((r) => r.row_keys[0] === '["105"]'), 10_000, 50);
    assert.deepEqual(await scheduled(), [{ mapping: 'price-down.yml', row_keys: ['["102"]'], price: '2.02' }], 'only the load\'s row is left');
  });

  it('labels: one per changed price, none for a row whose price did not change', async () => {
    await world.hqQuery(`INSERT INTO price_list VALUES (106, 'Leite integral 106', 6.06, NULL), (107, 'Macarrao 107', 7.07, NULL)`);
    await eventually('106 and 107 at the store', async () => (await price(106)) === '6.06' && (await price(107)) === '7.07', 10_000, 50);
    await world.hqQuery(`UPDATE price_list SET price = 6.66 WHERE product_id = 106`);
    await world.hqQuery(`UPDATE price_list SET name = 'Macarrao espaguete 107' WHERE product_id = 107`);
    await eventually('the new name of 107 at the store', async () => (await q(`SELECT 1 FROM product WHERE description = 'Macarrao espaguete 107'`)).length === 1, 10_000, 50);
    await eventually('the label of 106', async () => count(await pdfs(), 'R$ 6,66') === 1, 10_000, 50);
    const texts = await pdfs();
    assert.equal(count(texts, 'Leite integral 106'), 2, 'a label when it was new, one when its price changed');
    assert.equal(count(texts, 'Macarrao 107'), 1, 'a label when it was new');
    assert.equal(count(texts, 'Macarrao espaguete 107'), 0, 'no label: its price did not change');
    assert.equal(count(texts, 'Oleo de soja 104'), 2, 'new, then 9.99 (the superseded prices never applied)');
    assert.equal(count(texts, 'R$ 7,77') + count(texts, 'R$ 8,88'), 0, 'no label for a price that never applied');
    assert.deepEqual(await q(`SELECT count(*)::int AS n FROM branchline.pending_labels`), [{ n: 0 }], 'written labels are deleted');
  });

  it('labels recorded but not yet written when the agent stopped are written at the next start', async () => {
    await env.stopAgent();
    const before = (await pdfs()).length;
    // What a crash between the commit and the PDF leaves: pending labels in the store's table.
    await q(`INSERT INTO branchline.pending_labels (pipeline, mapping, code, description, price, previous_price) VALUES ('down:S1', 'price-down.yml', '108', 'Farinha de trigo 108', '8.08', '8.00')`);
    await env.startAgent();
    await eventually('the pending label written', async () => count(await pdfs(), 'Farinha de trigo 108') === 1, 10_000, 50);
    assert.equal((await pdfs()).length, before + 1, 'one more PDF');
    assert.deepEqual(await q(`SELECT count(*)::int AS n FROM branchline.pending_labels`), [{ n: 0 }]);
  });

  it('a TRUNCATE at HQ removes the scheduled changes of its table', async () => {
    await world.hqQuery(`INSERT INTO promo_price VALUES (1, 0.99, NULL), (2, 1.99, now() + interval '1 hour'), (3, 2.99, now() + interval '1 hour')`);
    await eventually('promo 1 applied, 2 and 3 scheduled', async () => (await q(`SELECT 1 FROM promo`)).length === 1 && (await scheduled()).filter((r) => r.mapping === 'promo-down.yml').length === 2, 10_000, 50);
    await world.hqQuery(`TRUNCATE promo_price`);
    await eventually('the promos gone and unscheduled', async () => (await q(`SELECT 1 FROM promo`)).length === 0 && !(await scheduled()).some((r) => r.mapping === 'promo-down.yml'), 10_000, 50);
    assert.deepEqual(await scheduled(), [{ mapping: 'price-down.yml', row_keys: ['["102"]'], price: '2.02' }], 'the other table\'s scheduled change stays');
  });
});
