import type pg from 'pg';
import { storeRole } from '../../agent/prepare.js';
import { loadConfig, type StoreConfig } from '../../config/load.js';
import { BranchlineError, describeProblem } from '../../core/errors.js';
import { connect } from '../../db/connect.js';
import { EXIT, formatAgo, table } from '../output.js';
import type { GlobalArgs } from './basic.js';
import { defaultActor, formatTime, inTransaction, out, plural, storeFilter, usage, withHq } from './hq-commands.js';

/**
 * `parked`, `retry` and `discard`: the changes parked at HQ, and what a
 * person may do with them. Like the other HQ commands (hq-commands.ts) they
 * talk to HQ (`retry` without ids also marks the changes the down channel
 * parked at each store): `retry` asks the running agent to try again,
 * `discard` marks a change given up.
 */

export type ParkedArgs = GlobalArgs & { store?: string[]; json: boolean; all: boolean };
export type RetryArgs = GlobalArgs & { store?: string[]; id?: number[] };
export type DiscardArgs = GlobalArgs & { id: number[]; reason: string; by?: string };

// ---------------------------------------------------------------- parked

interface ParkedRow {
  id: string;
  pipeline: string;
  store_code: string;
  mapping: string;
  target_table: string;
  op: string | null;
  reason_code: string;
  reason: string;
  entity: string | null;
  branch_code: string | null;
  change: unknown;
  source_position: string | null;
  source_xid: string | null;
  source_commit_time: Date | null;
  parked_at: Date;
  attempts: number;
  last_attempt_at: Date | null;
  retry_requested_at: Date | null;
  status: 'parked' | 'discarded';
  discarded_at: Date | null;
  discarded_by: string | null;
  discard_reason: string | null;
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

/** `parked`: the changes that wait (and, with --all, those given up). */
export async function parkedCommand(args: ParkedArgs): Promise<number> {
  const config = await loadConfig(args.config);
  const stores = storeFilter(config, args.store);
  const rows = await withHq(config, 'branchline-parked', async (db) =>
    (
      await db.query<ParkedRow>(
        `SELECT id, pipeline, store_code, mapping, target_table, change->>'op' AS op, reason_code, reason, entity, branch_code, change,
                source_position, source_xid, source_commit_time, parked_at, attempts, last_attempt_at, retry_requested_at,
                status, discarded_at, discarded_by, discard_reason
           FROM branchline.parked
          WHERE ($1::boolean OR status = 'parked') AND ($2::text[] IS NULL OR store_code = ANY($2::text[]))
          ORDER BY id`,
        [args.all, stores],
      )
    ).rows,
  );
  if (args.json) {
    out(
      JSON.stringify(
        rows.map((r) => ({
          id: Number(r.id),
          store: r.store_code,
          pipeline: r.pipeline,
          mapping: r.mapping,
          target: r.target_table,
          op: r.op,
          status: r.status,
          reasonCode: r.reason_code,
          reason: r.reason,
          entity: r.entity,
          branchCode: r.branch_code,
          parkedAt: iso(r.parked_at),
          attempts: r.attempts,
          lastAttemptAt: iso(r.last_attempt_at),
          retryRequestedAt: iso(r.retry_requested_at),
          sourcePosition: r.source_position,
          sourceXid: r.source_xid === null ? null : Number(r.source_xid),
          sourceCommitTime: iso(r.source_commit_time),
          discardedAt: iso(r.discarded_at),
          discardedBy: r.discarded_by,
          discardReason: r.discard_reason,
          change: r.change,
        })),
        null,
        2,
      ) + '\n',
    );
    return EXIT.ok;
  }
  if (rows.length === 0) {
    out('No parked changes.\n');
    return EXIT.ok;
  }
  const headers = ['ID', ...(args.all ? ['STATUS'] : []), 'STORE', 'MAPPING', 'TARGET', 'OP', 'REASON', 'PARKED', 'ATTEMPTS'];
  out(
    table(
      headers,
      rows.map((r) => [
        r.id,
        ...(args.all ? [r.status] : []),
        r.store_code,
        r.mapping,
        r.target_table,
        r.op ?? '-',
        r.reason_code,
        formatAgo(r.parked_at.toISOString()),
        String(r.attempts),
      ]),
    ),
  );
  out('\n');
  for (const r of rows) {
    const at = r.source_position ? ` (store transaction ${r.source_xid ?? '?'}, committed at ${r.source_position})` : '';
    out(`${r.id}: ${r.reason}${at}${r.retry_requested_at && r.status === 'parked' ? ` (retry requested ${formatAgo(r.retry_requested_at.toISOString())})` : ''}\n`);
    if (r.status === 'discarded')
      out(`${r.id}: discarded ${formatAgo(iso(r.discarded_at))} by ${r.discarded_by ?? '-'}: ${r.discard_reason ?? '-'}\n`);
  }
  if (rows.some((r) => r.status === 'parked'))
    out(
      '\nA running agent applies a change as soon as its association exists (`branchline associate`); ' +
        '`branchline retry --id N` tries one again after a fix, `branchline discard --id N --reason "..."` gives it up.\n',
    );
  return EXIT.ok;
}

// ---------------------------------------------------------------- retry and discard

function checkIds(ids: readonly number[] | undefined): string[] {
  for (const id of ids ?? []) {
    if (!Number.isSafeInteger(id) || id <= 0)
      throw usage(`--id takes the id of a parked change, a whole number above 0${Number.isNaN(id) ? '' : `, not ${String(id)}`}.`, '`branchline parked` lists the ids.');
  }
  return [...new Set(ids ?? [])].map(String);
}

function idList(ids: readonly string[]): string {
  return ids.length === 1 ? ids[0]! : `${ids.slice(0, -1).join(', ')} or ${ids[ids.length - 1]}`;
}

/** BL-P005: some of the ids named cannot be acted on (`parts` says why); nothing was done. */
function nothingDone(parts: readonly string[], done: 'retried' | 'discarded'): BranchlineError {
  return new BranchlineError({
    code: 'BL-P005',
    message: `${parts.join('; ')}; nothing was ${done}.`,
    hint: '`branchline parked` lists the changes that wait (an applied change leaves the list; `--all` also shows discarded ones).',
  });
}

/** `retry`: asks the running agent to try parked changes again now. */
export async function retryCommand(args: RetryArgs): Promise<number> {
  const ids = checkIds(args.id);
  const config = await loadConfig(args.config);
  const stores = storeFilter(config, args.store);
  const done = await withHq(config, 'branchline-retry', (db) =>
    inTransaction(db, async () => {
      if (ids.length) {
        const found = await db.query<{ id: string; store_code: string; status: string }>(
          `SELECT id, store_code, status FROM branchline.parked WHERE id = ANY($1::bigint[]) FOR UPDATE`,
          [ids],
        );
        const byId = new Map(found.rows.map((r) => [r.id, r]));
        const unknown = ids.filter((id) => !byId.has(id));
        const discarded = ids.filter((id) => byId.get(id)?.status === 'discarded');
        const elsewhere = ids.filter((id) => stores && byId.has(id) && !stores.includes(byId.get(id)!.store_code));
        const parts: string[] = [];
        if (unknown.length) parts.push(`no parked change has id ${idList(unknown)}`);
        if (discarded.length) parts.push(`change${discarded.length > 1 ? 's' : ''} ${discarded.join(', ')} ${discarded.length > 1 ? 'were' : 'was'} discarded`);
        if (elsewhere.length) parts.push(`change${elsewhere.length > 1 ? 's' : ''} ${elsewhere.join(', ')} ${elsewhere.length > 1 ? 'are' : 'is'} not of store ${stores!.join(', ')}`);
        if (parts.length) throw nothingDone(parts, 'retried');
      }
      return (
        await db.query<{ store_code: string; n: string }>(
          `WITH r AS (
             UPDATE branchline.parked SET retry_requested_at = clock_timestamp()
              WHERE status = 'parked' AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[])) AND ($2::text[] IS NULL OR store_code = ANY($2::text[]))
             RETURNING store_code)
           SELECT store_code, count(*) AS n FROM r GROUP BY store_code ORDER BY store_code`,
          [ids.length ? ids : null, stores],
        )
      ).rows;
    }),
  );
  // Down changes park at their store (its own branchline.parked): without ids, those are marked too.
  if (ids.length === 0) {
    for (const store of config.stores.filter((st) => !stores || stores.includes(st.code))) {
      const n = await markStoreParked(store);
      if (n > 0) done.push({ store_code: `${store.code} (down, at the store)`, n: String(n) });
    }
  }
  const total = done.reduce((s, r) => s + Number(r.n), 0);
  if (total === 0) {
    out('No parked changes to retry.\n');
    return EXIT.ok;
  }
  out(`retry requested for ${plural(total, 'parked change')} (${done.map((r) => `${r.store_code}: ${r.n}`).join(', ')}).\n`);
  out(
    total === 1
      ? 'The running agent (`branchline run`, which must be running) tries it again within a few seconds; `branchline parked` then lists it if it parked again, with the reason.\n'
      : 'The running agent (`branchline run`, which must be running) tries them again within a few seconds; `branchline parked` then lists any that parked again, with the reason.\n',
  );
  return EXIT.ok;
}

/**
 * Marks every parked change at a store (the down channel's) for a retry.
 * A store that is not reachable, or not installed, is said on stderr and
 * skipped: the others are marked all the same.
 */
async function markStoreParked(store: StoreConfig): Promise<number> {
  let db: pg.Client;
  try {
    db = await connect(store.url, { role: storeRole(store), applicationName: 'branchline-retry' });
  } catch (e) {
    process.stderr.write(`store ${store.code}: not reachable (${e instanceof BranchlineError ? describeProblem(e.problem) : String(e)}); its down changes were not marked.\n`);
    return 0;
  }
  try {
    if ((await db.query(`SELECT to_regclass('branchline.parked') IS NOT NULL AS ok`)).rows[0]?.ok !== true) return 0;
    const r = await db.query(`UPDATE branchline.parked SET retry_requested_at = clock_timestamp() WHERE pipeline = $1 AND status = 'parked'`, [`down:${store.code}`]);
    return r.rowCount ?? 0;
  } finally {
    await db.end().catch(() => undefined);
  }
}

/** `discard`: gives parked changes up for good; they stay in branchline.parked for the record. */
export async function discardCommand(args: DiscardArgs): Promise<number> {
  const ids = checkIds(args.id);
  if (ids.length === 0) throw usage('missing --id.', 'Name the parked changes to discard, e.g. --id 12 --id 13; `branchline parked` lists them.');
  const reason = String(args.reason ?? '').trim();
  if (reason === '') throw usage('--reason is empty.', 'Say why the change is given up, e.g. --reason "duplicate of sale 4711"; it is kept with the change.');
  const by = args.by ?? defaultActor();
  if (by.trim() === '') throw usage('--by is empty.', 'Name who discards, or leave --by out to record user@host.');
  const config = await loadConfig(args.config);
  const done = await withHq(config, 'branchline-discard', (db) =>
    inTransaction(db, async () => {
      const found = await db.query<{ id: string; status: string; discarded_by: string | null; discarded_at: Date | null }>(
        `SELECT id, status, discarded_by, discarded_at FROM branchline.parked WHERE id = ANY($1::bigint[]) FOR UPDATE`,
        [ids],
      );
      const byId = new Map(found.rows.map((r) => [r.id, r]));
      const unknown = ids.filter((id) => !byId.has(id));
      const already = ids.filter((id) => byId.get(id)?.status === 'discarded');
      const parts: string[] = [];
      if (unknown.length) parts.push(`no parked change has id ${idList(unknown)}`);
      for (const id of already) {
        const r = byId.get(id)!;
        parts.push(`change ${id} is already discarded (by ${r.discarded_by ?? '-'}, ${formatTime(r.discarded_at)})`);
      }
      if (parts.length) throw nothingDone(parts, 'discarded');
      return (
        await db.query<{ id: string; store_code: string }>(
          `UPDATE branchline.parked SET status = 'discarded', discarded_at = clock_timestamp(), discarded_by = $2, discard_reason = $3, retry_requested_at = NULL
            WHERE id = ANY($1::bigint[]) AND status = 'parked'
           RETURNING id, store_code`,
          [ids, by, reason],
        )
      ).rows;
    }),
  );
  const list = done.map((r) => r.id).sort((a, b) => Number(a) - Number(b));
  out(`discarded ${plural(done.length, 'parked change')} (${list.join(', ')}) by ${by}.\n`);
  out(`${done.length === 1 ? 'It is' : 'They are'} never applied, and stay${done.length === 1 ? 's' : ''} in branchline.parked for the record (\`branchline parked --all\`).\n`);
  return EXIT.ok;
}
