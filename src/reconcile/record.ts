import { connect } from '../db/connect.js';
import { differencesOf, type ReconcileResult } from './reconcile.js';

/** Records a reconciliation at HQ (`branchline.reconcile_runs`), for the scheduled report. */
export async function recordReconcile(hqUrl: string, r: ReconcileResult): Promise<void> {
  const db = await connect(hqUrl, { role: 'HQ', applicationName: 'branchline-reconcile', connectTimeoutMs: 10_000 });
  try {
    const tables = r.tables.map((t) => ({
      direction: t.direction,
      mapping: t.mapping,
      missing: t.missing.length,
      different: t.different.length,
      extra: t.extra.length,
      unassociated: t.unassociated,
      resent: t.resent,
      removed: t.removed,
      differences: differencesOf(t),
      skipped: t.skipped,
    }));
    await db.query(`INSERT INTO branchline.reconcile_runs (store_code, differences, fixed, tables) VALUES ($1, $2, $3, $4)`, [r.store, r.differences, r.fixed, JSON.stringify(tables)]);
  } finally {
    await db.end().catch(() => undefined);
  }
}
