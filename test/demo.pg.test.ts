import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { runCli } from './support/agent-process.js';

/**
 * The README's first command: `npm run demo`, here for a few seconds. It
 * starts its own embedded HQ and two stores, so it runs the same whether or
 * not BRANCHLINE_TEST_PG_URL is set.
 */
test('demo: two stores sell, HQ ends up holding exactly what they hold, exit 0, nothing left behind', { timeout: 240_000 }, async () => {
  const r = await runCli(['demo', '--seconds', '4']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const out = r.stdout;
  const dir = /data in (\S+)\)/.exec(out)?.[1];
  assert.ok(dir, out);
  assert.match(out, /installed:\n(\s+.+\n)+/);
  assert.match(out, /HQ: applied migration 20261123000001_pipeline_state/);
  assert.match(out, /store S001: created replication slot "branchline_s001"/);
  // A live status line per store while they sell.
  for (const code of ['S001', 'S002']) assert.match(out, new RegExp(`  ${code}  streaming  store txns +\\d+  HQ txns +\\d+  rows +\\d+  lag \\d+\\.\\d+s  behind `));
  // The final comparison: every table of both stores, nothing missing or extra.
  // HQ owns the catalogue; each store's first start loads it.
  assert.match(out, /HQ holds the product catalogue \(300 products\); the stores start with none/);
  assert.match(out, /first start of each store: the agent loaded HQ's catalogue into it \(S001: 300 products, S002: 300 products\)/);
  assert.match(out, /HQ raised 5 catalogue prices by 10% \(.+\): S001 had them in \d+ ms, S002 had them in \d+ ms/);
  assert.match(out, /HQ gave S001 its own price for product 300 \([\d.]+, .+\): at S001's tills in \d+ ms; the other stores did not get it/);
  // Up: the store tables against HQ's (the first table); down: HQ's master data against each store's copy (the second).
  const up = out.slice(0, out.indexOf('HQ TABLE -> STORE TABLE'));
  const down = out.slice(out.indexOf('HQ TABLE -> STORE TABLE'));
  const downRows = down.split('\n').filter((l) => /^S00[12] +public\./.test(l)).map((l) => l.trim().split(/\s{2,}/));
  assert.deepEqual(
    downRows.map((c) => [c[0], c[1], c[3], c[4], c[5]]),
    [
      ['S001', 'public.product -> public.product', '300', '0', '0'],
      ['S001', 'public.store_price -> public.local_price', '1', '0', '0'],
      ['S002', 'public.product -> public.product', '300', '0', '0'],
      ['S002', 'public.store_price -> public.local_price', '0', '0', '0'],
    ],
    down,
  );
  assert.match(out, /Every store holds exactly what HQ hands it: 601 rows in 2 tables\./);
  const rows = up.split('\n').filter((l) => /^S00[12] +public\./.test(l));
  assert.equal(rows.length, 20, out); // 10 up mappings x 2 stores
  for (const row of rows) {
    const cells = row.trim().split(/\s{2,}/);
    assert.equal(cells[4], '0', `missing at HQ: ${row}`);
    assert.equal(cells[5], '0', `extra at HQ: ${row}`);
    if (row.includes('-> public.daily_product_sales')) {
      // Totals: one HQ row per store, day and product, from many coupon items.
      assert.ok(Number(cells[3]) > 0 && Number(cells[3]) <= Number(cells[2]), `totals: ${row}`);
    } else {
      assert.equal(cells[2], cells[3], `store rows differ from HQ rows: ${row}`);
    }
  }
  assert.ok(rows.some((row) => row.includes('public.sale ->') && Number(row.trim().split(/\s{2,}/)[2]) > 0), 'sales were made');
  assert.match(out, /HQ holds exactly what both stores hold: \d+ rows in 10 tables per store\./);
  // The queries story: S001's stock of product 300 reaches HQ, which answers for both stores (S002: none), and S001's own price.
  assert.match(out, /\$ branchline stock 300\n +STORE +NAME +QUANTITY +UPDATED_AT +LAG\n +S001 +Loja Centro +12\.500 +\S+ \S+ +\S+\n +S002 +\S.*? +- +- +/);
  assert.match(out, /\$ branchline prices 300\n +STORE +NAME +PRICE +LAG\n +S001 +Loja Centro +\d+\.\d\d +/);
  // The settlement story: HQ asks S001 before settling; the store's own rows answer (one paid, one cancelled a moment before, one amount off).
  const settle = /\$ branchline settlement-check --store S001 (?:--ref \d+ --amount [\d.]+ ?){4}\n +store +ref +amount +answer +there\n((?: +S001 .*\n){4})/.exec(out);
  assert.ok(settle, out);
  assert.deepEqual(settle[1]!.trimEnd().split('\n').map((l) => l.trim().split(/\s{2,}/)[3]), ['released', 'settled', 'deleted', 'amount_differs']);
  // The association story: a new HQ key for a store's customer; a receivable parked for its cost center, applied after `associate`.
  assert.match(out, /customer \d+ registered at S001 arrived at HQ as customer (\d+) \(S001-C\d+\): a new HQ id, allocated from customer_id_seq/);
  assert.match(out, /receivable DEMO-S001-1 uses cost center CC-09, which nobody associated: parked #\d+ \(BL-M021\)/);
  assert.match(out, /the agent retried it on its own: receivable DEMO-S001-1 is at HQ with cost center 109; nothing parked/);
  assert.match(out, /The daily sales totals \(daily_product_sales, \d+ rows\) equal the sum of each store's fiscal coupon items/);
  assert.equal(existsSync(dir!), false, `the demo left ${dir} behind`);
});
