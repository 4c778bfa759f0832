import { selectStores, loadConfig } from '../../config/load.js';
import { BranchlineError } from '../../core/errors.js';
import { connect } from '../../db/connect.js';
import { storeRole } from '../../agent/prepare.js';
import { EXIT, table } from '../output.js';
import type { StoreArgs } from './basic.js';
import { formatTime, out } from './hq-commands.js';

/**
 * `scheduled`: the down changes waiting at each store for their effective
 * time (`effective_at`), read from the store's `branchline.scheduled`. The
 * running agent applies each when it is due; a later HQ change of the row
 * replaces it.
 */

export type ScheduledArgs = StoreArgs & { json: boolean };

interface ScheduledRow {
  id: string;
  mapping: string;
  target_table: string;
  row_keys: string[];
  op: string;
  effective_at: Date;
  scheduled_at: Date;
}

export async function scheduledCommand(args: ScheduledArgs): Promise<number> {
  const config = await loadConfig(args.config);
  const stores = selectStores(config, args.store);
  const all: (ScheduledRow & { store: string })[] = [];
  for (const store of stores) {
    const db = await connect(store.url, { role: storeRole(store), applicationName: 'branchline-scheduled' });
    try {
      const installed = await db.query<{ ok: boolean }>(`SELECT to_regclass('branchline.scheduled') IS NOT NULL AS ok`);
      if (!installed.rows[0]?.ok)
        throw new BranchlineError({
          code: 'BL-D005',
          message: `store ${store.code} has no branchline schema for the down channel (no branchline.scheduled table).`,
          hint: 'Run `branchline install` with down mapping files in place: it creates the store\'s branchline schema.',
        });
      const rows = await db.query<ScheduledRow>(
        `SELECT id, mapping, target_table, row_keys, change->>'op' AS op, effective_at, scheduled_at
           FROM branchline.scheduled WHERE pipeline = $1 ORDER BY effective_at, id`,
        [`down:${store.code}`],
      );
      for (const r of rows.rows) all.push({ ...r, store: store.code });
    } finally {
      await db.end().catch(() => undefined);
    }
  }
  const key = (r: ScheduledRow) => r.row_keys.map((k) => (JSON.parse(k) as string[]).join(', ')).join(' / ');
  if (args.json) {
    out(
      JSON.stringify(
        all.map((r) => ({
          store: r.store,
          id: Number(r.id),
          mapping: r.mapping,
          target: r.target_table,
          key: JSON.parse(r.row_keys[0] ?? 'null') as string[] | null,
          op: r.op,
          effectiveAt: r.effective_at.toISOString(),
          scheduledAt: r.scheduled_at.toISOString(),
        })),
        null,
        2,
      ) + '\n',
    );
    return EXIT.ok;
  }
  if (all.length === 0) {
    out('No scheduled down changes.\n');
    return EXIT.ok;
  }
  out(table(['STORE', 'ID', 'MAPPING', 'TARGET', 'KEY', 'OP', 'EFFECTIVE AT', 'SCHEDULED'], all.map((r) => [r.store, r.id, r.mapping, r.target_table, key(r), r.op, formatTime(r.effective_at), formatTime(r.scheduled_at)])));
  out('\nThe running agent applies each change at its effective time (the store\'s clock); a later HQ change of the same row replaces it.\n');
  return EXIT.ok;
}
