import type pg from 'pg';
import type { Config, StoreConfig } from '../config/load.js';
import { isBranchlineError } from '../core/errors.js';
import { bounded, connect, endClient, isConnectionError } from '../db/connect.js';
import { hasPausesTable, readPauses, type Pause } from '../pause/pauses.js';
import { storeRole } from './prepare.js';
import { storeCapture } from './store-capture.js';
import { reportFreshSql, upLagSeconds, upState, type UpReport } from './up-lag.js';

/** What `branchline status` reports for one store's up pipeline. */
export interface StoreStatus {
  readonly store: string;
  /** streaming | backoff | starting | halted | stopped | paused | not running | never ran */
  readonly state: string;
  readonly position: string | null;
  /** Seconds between the store committing the oldest change HQ lacks and now (0 when caught up); null if unknown. */
  readonly lagSeconds: number | null;
  /** Store WAL not yet confirmed by HQ (bytes); null when the store is unreachable (pg-trigger: the bytes of its change table's rows HQ lacks). */
  readonly lagBytes: number | null;
  /** WAL the store keeps for the slot (bytes); pg-trigger: the size of the store's change table. */
  readonly walRetainedBytes: number | null;
  readonly txnsApplied: number;
  readonly rowsApplied: number;
  /** Changes parked at HQ (waiting for an association, or rejected by HQ), not yet applied or discarded. */
  readonly parked: number;
  /** Down changes waiting at the store for their effective time (null: store unreachable or no down channel there). */
  readonly scheduled: number | null;
  /** When the next of them is due. */
  readonly nextScheduledAt: string | null;
  readonly lastApplyAt: string | null;
  readonly lastSourceCommitAt: string | null;
  readonly storeReachable: boolean;
  readonly slotState: string | null;
  readonly lastError: { code: string; message: string; at: string } | null;
  /** With `lease:`: the agent holding the store's lease (null: free, or no agent ever took it) and HQ's seconds until it expires (negative: expired, another agent may take it). */
  readonly lease: { readonly holder: string | null; readonly expiresInS: number | null } | null;
  /** Each direction's pause (`branchline pause`), null where it is not paused. */
  readonly paused: { readonly up: PauseReport | null; readonly down: PauseReport | null };
}

export interface PauseReport {
  readonly at: string;
  readonly by: string;
  readonly reason: string | null;
}

interface PipelineRow {
  pipeline: string;
  position: string;
  source_commit_time: Date | null;
  applied_at: Date;
  txns_applied: string;
  rows_applied: string;
}

interface StatusRow {
  pipeline: string;
  state: string;
  oldest_unapplied_commit_time: Date | null;
  last_error_code: string | null;
  last_error: string | null;
  last_error_at: Date | null;
  updated_at: Date;
  fresh: boolean;
}

/** How long status (and the scheduled report, which reads it) waits for HQ's answers, and for a store's, before it gives up (plus the read deadline's grace, on a link that stalls). */
const STATUS_HQ_TIMEOUT_MS = 30_000;
const STATUS_STORE_TIMEOUT_MS = 5_000;

/** Reads positions and agent reports at HQ and the slots at each store (briefly; an unreachable store is reported, not waited for). */
export async function readStatus(config: Config, stores: readonly StoreConfig[]): Promise<StoreStatus[]> {
  const hq = await connect(config.hq.url, { role: 'HQ', applicationName: 'branchline-status', ...bounded(STATUS_HQ_TIMEOUT_MS) });
  let pipelines: PipelineRow[];
  let statuses: StatusRow[];
  let parked = new Map<string, number>();
  let leases = new Map<string, { holder: string | null; expiresInS: number | null }>();
  let pauses = new Map<string, Pause>();
  // Agents write the times of these reports in HQ's clock (docs/operations.md, "Lag and clocks"): lag is measured against it, not this machine's.
  let hqNow = new Date();
  const sinceHqNow = Date.now();
  try {
    hqNow = (await hq.query<{ now: Date }>(`SELECT clock_timestamp() AS now`)).rows[0]!.now;
    const installed = await hq.query<{ ok: boolean; parked: boolean }>(
      `SELECT to_regclass('branchline.pipelines') IS NOT NULL AS ok, to_regclass('branchline.parked') IS NOT NULL AS parked`,
    );
    if (!installed.rows[0]?.ok) {
      pipelines = [];
      statuses = [];
    } else {
      pipelines = (await hq.query<PipelineRow>(`SELECT * FROM branchline.pipelines`)).rows;
      statuses = (
        await hq.query<StatusRow>(
          `SELECT *, ${reportFreshSql('updated_at')} AS fresh FROM branchline.pipeline_status`,
        )
      ).rows;
      // (A branchline schema older than the parked table has nothing parked.)
      const p = installed.rows[0].parked
        ? await hq.query<{ pipeline: string; n: string }>(`SELECT pipeline, count(*) AS n FROM branchline.parked WHERE status = 'parked' GROUP BY pipeline`)
        : { rows: [] };
      parked = new Map(p.rows.map((r) => [r.pipeline, Number(r.n)]));
      leases = await readLeases(hq);
      if (await hasPausesTable(hq)) pauses = await readPauses(hq);
    }
  } finally {
    await endClient(hq);
  }

  return Promise.all(
    stores.map(async (store): Promise<StoreStatus> => {
      const name = `up:${store.code}`;
      const p = pipelines.find((r) => r.pipeline === name);
      const s = statuses.find((r) => r.pipeline === name);
      let storeReachable = false;
      let lagBytes: number | null = null;
      let walRetained: number | null = null;
      let slotState: string | null = null;
      let scheduled: number | null = null;
      let nextScheduledAt: string | null = null;
      const capture = storeCapture(store);
      try {
        // A SQL Server store is only asked whether it answers; the rest (the down channel's scheduled rows) is PostgreSQL's.
        const db = capture.postgres ? await connect(store.url, { role: storeRole(store), applicationName: 'branchline-status', connectTimeoutMs: 3_000, ...bounded(STATUS_STORE_TIMEOUT_MS) }) : null;
        try {
          const seen = await capture.inspect(p?.position ?? null, db);
          storeReachable = true;
          ({ lagBytes, retainedBytes: walRetained, state: slotState } = seen);
          if (db) {
            // The down channel keeps its scheduled changes in the store's branchline schema (when it has one).
            const has = await db.query<{ ok: boolean }>(`SELECT to_regclass('branchline.scheduled') IS NOT NULL AS ok`);
            if (has.rows[0]?.ok) {
              const sched = await db.query<{ n: string; next: Date | null }>(
                `SELECT count(*) AS n, min(effective_at) AS next FROM branchline.scheduled WHERE pipeline = $1`,
                [`down:${store.code}`],
              );
              scheduled = Number(sched.rows[0]!.n);
              nextScheduledAt = sched.rows[0]!.next?.toISOString() ?? null;
            }
          }
        } finally {
          if (db) await endClient(db);
        }
      } catch (e) {
        // Unreachable, or lost (or stalled) mid-reading: reported as not reachable.
        if (!isBranchlineError(e) && !isConnectionError(e)) throw e;
      }
      const report: UpReport | null = s ? { state: s.state, fresh: s.fresh, oldestUnapplied: s.oldest_unapplied_commit_time } : null;
      const pausedUp = pauseReport(pauses.get(name));
      // A paused pipeline runs nowhere: its last report is of before the pause (a halt still shows: it needs a person either way).
      const reported = upState(report, p !== undefined);
      const agentState = pausedUp && reported !== 'halted' ? 'paused' : reported;
      const now = new Date(hqNow.getTime() + (Date.now() - sinceHqNow));
      let lagSeconds = upLagSeconds(report, now);
      // (A halted pipeline is never in step, whatever its lost slot still says.)
      if (lagSeconds === null && lagBytes === 0 && agentState !== 'halted') lagSeconds = 0;
      if (lagSeconds === null && p?.source_commit_time && lagBytes !== null && lagBytes > 0)
        lagSeconds = Math.max(0, (now.getTime() - p.source_commit_time.getTime()) / 1000);
      return {
        store: store.code,
        state: agentState,
        position: p?.position ?? null,
        lagSeconds,
        lagBytes,
        walRetainedBytes: walRetained,
        txnsApplied: Number(p?.txns_applied ?? 0),
        rowsApplied: Number(p?.rows_applied ?? 0),
        parked: parked.get(name) ?? 0,
        scheduled,
        nextScheduledAt,
        lastApplyAt: p?.applied_at.toISOString() ?? null,
        lastSourceCommitAt: p?.source_commit_time?.toISOString() ?? null,
        storeReachable,
        slotState,
        lastError: s?.last_error_code
          ? { code: s.last_error_code, message: s.last_error ?? '', at: s.last_error_at?.toISOString() ?? '' }
          : null,
        lease: leases.get(store.code) ?? null,
        paused: { up: pausedUp, down: pauseReport(pauses.get(`down:${store.code}`)) },
      };
    }),
  );
}

function pauseReport(p: Pause | undefined): PauseReport | null {
  return p ? { at: p.pausedAt.toISOString(), by: p.pausedBy, reason: p.reason } : null;
}

/** Each store's lease at HQ (none before the lease tables exist, or when no agent runs with `lease:`). */
async function readLeases(hq: pg.Client): Promise<Map<string, { holder: string | null; expiresInS: number | null }>> {
  const has = await hq.query<{ ok: boolean }>(`SELECT to_regclass('branchline.store_leases') IS NOT NULL AS ok`);
  if (!has.rows[0]?.ok) return new Map();
  const rows = await hq.query<{ store_code: string; holder: string | null; left: number | null }>(
    `SELECT store_code, holder, extract(epoch FROM expires_at - now())::float8 AS left FROM branchline.store_leases`,
  );
  return new Map(rows.rows.map((r) => [r.store_code, { holder: r.holder, expiresInS: r.left }]));
}
