import type pg from 'pg';
import type { StoreConfig } from '../config/load.js';
import { formatTable, type TableId } from '../core/change.js';
import { qualified, quoteIdent, quoteLiteral } from '../db/connect.js';
import { LOG_TABLE } from '../../connectors/pg-trigger/index.js';
import { storeRole } from '../agent/prepare.js';
import { ok, problem, type CheckResult } from './check.js';

interface ServerRow {
  wal_level: string;
  slots: string;
  senders: string;
  keep: string | null;
  user: string;
  can_replicate: boolean;
}

/**
 * What a store's connector needs of its PostgreSQL server: wal_level,
 * replication, publication and slot (pg-logical), or the change table
 * (pg-trigger); with `down`, the replication origin functions the down
 * channel marks its rows with.
 */
export async function captureChecks(store: StoreConfig, db: pg.Client, sources: readonly TableId[], down: boolean): Promise<CheckResult[]> {
  const out = store.connector === 'pg-logical' ? await logicalChecks(store, db, sources) : await triggerChecks(store, db, sources);
  if (down) out.splice(store.connector === 'pg-logical' ? 2 : out.length, 0, await originCheck(store, db));
  return out;
}

async function logicalChecks(store: StoreConfig, db: pg.Client, sources: readonly TableId[]): Promise<CheckResult[]> {
  const where = storeRole(store);
  const out: CheckResult[] = [];
  const r = (
    await db.query<ServerRow>(
      `SELECT current_setting('wal_level') AS wal_level, current_setting('max_replication_slots') AS slots,
              current_setting('max_wal_senders') AS senders, current_setting('max_slot_wal_keep_size', true) AS keep,
              current_user AS user,
              (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_replicate`,
    )
  ).rows[0]!;
  if (r.wal_level !== 'logical')
    out.push(problem(where, 'wal_level', 'fail', 'BL-D003', `wal_level is ${r.wal_level}; the pg-logical connector needs logical.`,
      "Run ALTER SYSTEM SET wal_level = 'logical'; and restart PostgreSQL (or set connector: pg-trigger for this store, which needs no wal_level)."));
  else if (Number(r.slots) < 1 || Number(r.senders) < 1)
    out.push(problem(where, 'wal_level', 'fail', 'BL-D003', `wal_level is logical but max_replication_slots = ${r.slots} and max_wal_senders = ${r.senders}.`,
      'Raise both to at least the number of slots this server serves plus one (ALTER SYSTEM SET max_replication_slots = 10; ALTER SYSTEM SET max_wal_senders = 10;) and restart PostgreSQL.'));
  else out.push(ok(where, 'wal_level', `wal_level is logical (max_replication_slots ${r.slots}, max_wal_senders ${r.senders}).`));

  if (r.can_replicate) out.push(ok(where, 'replication', `user ${r.user} may use replication.`));
  else
    out.push(problem(where, 'replication', 'fail', 'BL-D004', `user ${r.user} lacks the REPLICATION attribute, so it cannot read the slot.`,
      `As a superuser, run ALTER ROLE ${quoteIdent(r.user)} REPLICATION;`));

  out.push(await publicationCheck(store, db, sources));
  out.push(await slotCheck(store, db));

  const keep = r.keep;
  if (keep === null) out.push(ok(where, 'max_slot_wal_keep_size', 'this PostgreSQL (before 13) has no max_slot_wal_keep_size: watch the disk the slot keeps WAL on.'));
  else if (keep === '-1')
    out.push(problem(where, 'max_slot_wal_keep_size', 'warn', 'BL-D009',
      'max_slot_wal_keep_size is -1: while HQ is away the slot keeps every WAL file, until the disk fills and the store database stops.',
      "Bound it, e.g. ALTER SYSTEM SET max_slot_wal_keep_size = '20GB'; SELECT pg_reload_conf(); (pick what the disk holds for the longest outage you ride out; a slot past it is invalidated and the store needs a fresh initial load into HQ)."));
  else out.push(ok(where, 'max_slot_wal_keep_size', `max_slot_wal_keep_size is ${keep}: the slot keeps at most that much WAL (beyond it the slot is invalidated, BL-S003).`));
  return out;
}

/**
 * The down channel marks what it applies with a replication origin (superuser,
 * or granted functions): at a pg-logical store always (so the slot does not
 * send it back up), at a pg-trigger store during its initial load.
 */
async function originCheck(store: StoreConfig, db: pg.Client): Promise<CheckResult> {
  const where = storeRole(store);
  const r = (
    await db.query<{ user: string; ok: boolean }>(
      `SELECT current_user AS user,
              (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
              OR (has_function_privilege('pg_replication_origin_create(text)', 'EXECUTE')
                  AND has_function_privilege('pg_replication_origin_session_setup(text)', 'EXECUTE')) AS ok`,
    )
  ).rows[0]!;
  if (r.ok) return ok(where, 'replication origin', `user ${r.user} may mark the down channel's rows with a replication origin (so they do not go back up).`);
  const what = store.connector === 'pg-logical' ? 'the down channel cannot apply here' : "the down channel's initial load cannot run here";
  return problem(where, 'replication origin', 'fail', 'BL-D004',
    `user ${r.user} may not use replication origins, so ${what} (it marks HQ's rows with one so they do not go back up).`,
    `As a superuser, run GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text) TO ${quoteIdent(r.user)};`);
}

async function publicationCheck(store: StoreConfig, db: pg.Client, sources: readonly TableId[]): Promise<CheckResult> {
  const where = storeRole(store);
  const fix = `Run \`branchline install --store ${store.code}\` (it creates the publication "${store.publication}" for the mapped tables).`;
  const pub = await db.query<{ alltables: boolean }>(`SELECT puballtables AS alltables FROM pg_publication WHERE pubname = $1`, [store.publication]);
  if (pub.rowCount === 0) return problem(where, 'publication', 'fail', 'BL-S004', `the publication "${store.publication}" does not exist.`, fix);
  if (pub.rows[0]!.alltables) return ok(where, 'publication', `the publication "${store.publication}" publishes every table.`);
  const have = new Set(
    (await db.query<{ t: string }>(`SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = $1`, [store.publication])).rows.map((x) => x.t),
  );
  const missing = sources.map(formatTable).filter((t) => !have.has(t));
  if (missing.length)
    return problem(where, 'publication', 'fail', 'BL-S004', `the publication "${store.publication}" lacks mapped table${missing.length === 1 ? '' : 's'} ${missing.join(', ')}: ${missing.length === 1 ? 'its' : 'their'} changes never reach HQ.`, fix);
  return ok(where, 'publication', `the publication "${store.publication}" holds the ${sources.length} mapped tables.`);
}

async function slotCheck(store: StoreConfig, db: pg.Client): Promise<CheckResult> {
  const where = storeRole(store);
  const s = await db.query<{ plugin: string; database: string | null; here: string; wal_status: string | null; active: boolean }>(
    `SELECT plugin, database, current_database() AS here, wal_status, active FROM pg_replication_slots WHERE slot_name = $1`,
    [store.slot],
  );
  const row = s.rows[0];
  if (!row)
    return problem(where, 'slot', 'fail', 'BL-S001', `the replication slot "${store.slot}" does not exist.`,
      `Run \`branchline install --store ${store.code}\`; changes made before the new slot exists do not reach HQ by themselves: then run \`branchline snapshot --store ${store.code} --direction up\`.`);
  if (row.plugin !== 'pgoutput' || row.database !== row.here)
    return problem(where, 'slot', 'fail', 'BL-S001', `the replication slot "${store.slot}" belongs to ${row.database === row.here ? `plugin ${row.plugin}` : `database ${row.database ?? '(physical)'}`}, not to pgoutput in this database.`,
      'Set another `slot:` for this store in the configuration, or drop that slot if nothing uses it, then run `branchline install`.');
  if (row.wal_status === 'lost')
    return problem(where, 'slot', 'fail', 'BL-S003', `the replication slot "${store.slot}" was invalidated (it needed more WAL than max_slot_wal_keep_size keeps).`,
      `Run \`branchline uninstall --store ${store.code}\`, \`branchline install --store ${store.code}\`, then \`branchline snapshot --store ${store.code} --direction up\`.`);
  return ok(where, 'slot', `the replication slot "${store.slot}" exists (pgoutput${row.wal_status ? `, WAL ${row.wal_status}` : ''}${row.active ? ', being read' : ''}).`);
}

async function triggerChecks(store: StoreConfig, db: pg.Client, sources: readonly TableId[]): Promise<CheckResult[]> {
  const where = storeRole(store);
  const out: CheckResult[] = [
    ok(where, 'wal_level', 'not needed: connector pg-trigger reads a change table that triggers fill (any wal_level, no slot, no publication).'),
    ok(where, 'replication', 'not needed: connector pg-trigger reads the change table with ordinary queries (no REPLICATION attribute).'),
  ];
  out.push(await changeTableCheck(where, db, sources, `Run \`branchline install --store ${store.code}\` (it creates the change table and the capture triggers).`));
  return out;
}

/** A change table and the capture triggers on `tables` (a pg-trigger store's, or HQ's for the down channel). */
export async function changeTableCheck(where: string, db: pg.Client, tables: readonly TableId[], fix: string): Promise<CheckResult> {
  const log = await db.query<{ ok: boolean }>(`SELECT to_regclass(${quoteLiteral(LOG_TABLE)}) IS NOT NULL AS ok`);
  if (!log.rows[0]?.ok) return problem(where, 'change table', 'fail', 'BL-D005', `the change table ${LOG_TABLE} does not exist.`, fix);
  const missing: string[] = [];
  for (const t of tables) {
    const r = await db.query(`SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = 'branchline_capture'`, [qualified(t.schema, t.table)]);
    if (r.rowCount === 0) missing.push(formatTable(t));
  }
  if (missing.length)
    return problem(where, 'change table', 'fail', 'BL-D005', `mapped table${missing.length === 1 ? '' : 's'} ${missing.join(', ')} ${missing.length === 1 ? 'has no capture trigger: its' : 'have no capture trigger: their'} changes never reach ${where === 'HQ' ? 'the stores' : 'HQ'}.`, fix);
  return ok(where, 'change table', `${LOG_TABLE} exists and the ${tables.length} mapped tables have their capture triggers.`);
}
