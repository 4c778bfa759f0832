import type pg from 'pg';
import { insertAssociations } from '../associate/association-store.js';
import type { RetailWorkload } from './workload.js';
import { waitFor } from './wait.js';

const say = (s: string) => process.stdout.write(s + '\n');

/**
 * The association part of the demo, at one store while the agent runs:
 * a customer registered at the store arrives at HQ under a new HQ id; a
 * receivable whose cost center the store calls by a code nobody associated
 * yet is parked, and goes through once a person associates it.
 */
export async function associationStory(options: { storeCode: string; store: pg.Pool; hq: pg.Pool; workload: RetailWorkload }): Promise<void> {
  const { storeCode, store, hq, workload } = options;
  say(`\nID association at ${storeCode}:`);

  const customerId = await workload.newCustomer();
  const hqCustomer = await waitFor('the new customer at HQ', async () => {
    const r = await hq.query<{ id: string; code: string }>(
      `SELECT c.id::text, c.code FROM customer c
         JOIN branchline.associations a ON a.hq_key = c.id::text
        WHERE a.store_code = $1 AND a.entity = 'customer' AND a.branch_code = $2`,
      [storeCode, customerId],
    );
    return r.rows[0];
  });
  say(`  customer ${customerId} registered at ${storeCode} arrived at HQ as customer ${hqCustomer.id} (${hqCustomer.code}): a new HQ id, allocated from customer_id_seq`);

  const receivable = await store.query<{ id: string; document_number: string }>(
    `INSERT INTO receivable (document_number, customer_id, due_on, amount, cost_center)
     VALUES ($1, $2, CURRENT_DATE + 30, 250.00, 'CC-09') RETURNING id::text, document_number`,
    [`DEMO-${storeCode}-1`, customerId],
  );
  const rec = receivable.rows[0]!;
  const parked = await waitFor('the receivable to be parked', async () => {
    const r = await hq.query<{ id: string; reason_code: string; reason: string }>(
      `SELECT id::text, reason_code, reason FROM branchline.parked
        WHERE store_code = $1 AND status = 'parked' AND entity = 'cost_center' AND branch_code = 'CC-09' ORDER BY id LIMIT 1`,
      [storeCode],
    );
    return r.rows[0];
  });
  say(`  receivable ${rec.document_number} uses cost center CC-09, which nobody associated: parked #${parked.id} (${parked.reason_code}), the rest of the stream goes on`);
  say(`    ${parked.reason}`);

  const c = await hq.connect();
  try {
    await insertAssociations(c, [{ storeCode, entity: 'cost_center', branchCode: 'CC-09', hqKey: '109' }], 'manual', 'demo');
  } finally {
    c.release();
  }
  say(`  $ branchline associate --store ${storeCode} --entity cost_center --code CC-09 --hq-key 109`);
  const applied = await waitFor('the parked receivable to be applied', async () => {
    const r = await hq.query<{ cost_center_id: number; waiting: string }>(
      `SELECT r.cost_center_id, (SELECT count(*) FROM branchline.parked p WHERE p.store_code = $1 AND p.status = 'parked')::text AS waiting
         FROM store_receivable r WHERE r.store_code = $1 AND r.receivable_id = $2`,
      [storeCode, rec.id],
    );
    const row = r.rows[0];
    return row && row.waiting === '0' ? row : undefined;
  });
  say(`  the agent retried it on its own: receivable ${rec.document_number} is at HQ with cost center ${applied.cost_center_id}; nothing parked`);
}
