import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { connect } from '../db/connect.js';

/** The channel a lease release (or a new agent) is announced on, so the others rebalance at once. */
export const LEASE_CHANNEL = 'branchline_leases';

export interface LeaseStoreOptions {
  readonly url: string;
  readonly agentId: string;
  readonly ttlS: number;
  /** Bounds every statement and the connect (ms): a round that takes longer is a failed round. */
  readonly timeoutMs: number;
  /** Called when another agent releases leases or joins (a NOTIFY on LEASE_CHANNEL). */
  readonly onNotice?: () => void;
}

/** A lease this agent holds: which store, and the generation it took (the lease's compare-and-set token). */
export interface Lease {
  readonly store: string;
  readonly generation: string;
}

/** A lease just taken, with whom it was taken from (null: it was free). */
export interface TakenLease extends Lease {
  readonly from: string | null;
}

/**
 * The lease tables at HQ (`branchline.agents`, `branchline.store_leases`),
 * one connection. Every time is HQ's `now()`; every change of a lease is a
 * compare-and-set on its holder and generation, so two agents can never
 * both believe the database gave them the same store.
 */
export class LeaseStore {
  private client: pg.Client | null = null;
  /** Random per process: a second process with the same agent id is not this one. */
  readonly instance = randomUUID();

  constructor(private readonly options: LeaseStoreOptions) {}

  get connected(): boolean {
    return this.client !== null;
  }

  private async db(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = await connect(this.options.url, {
      role: 'HQ',
      applicationName: `branchline-lease:${this.options.agentId}`.slice(0, 63),
      connectTimeoutMs: this.options.timeoutMs,
      statementTimeoutMs: this.options.timeoutMs,
    });
    client.on('error', () => void this.drop());
    client.on('end', () => {
      if (this.client === client) this.client = null;
    });
    client.on('notification', (n) => {
      if (n.channel === LEASE_CHANNEL && n.payload !== this.instance) this.options.onNotice?.();
    });
    await client.query(`LISTEN ${LEASE_CHANNEL}`);
    this.client = client;
    return client;
  }

  /** A query bounded by the timeout on our side too (a link that hangs answers nothing, not even the server's timeout). */
  private async query<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<R[]> {
    const db = await this.db();
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`HQ did not answer a lease statement within ${this.options.timeoutMs} ms`)), this.options.timeoutMs);
      });
      return (await Promise.race([db.query<R>(sql, params), timeout])).rows;
    } catch (e) {
      await this.drop();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Registers this agent (or renews its heartbeat) and makes sure every
   * store has a lease row. False: another process with the same agent id
   * is live (its heartbeat younger than its ttl), BL-A005.
   */
  async heartbeat(stores: readonly string[]): Promise<boolean> {
    const { agentId, ttlS } = this.options;
    const rows = await this.query(
      `WITH seeded AS (INSERT INTO branchline.store_leases (store_code) SELECT unnest($4::text[]) ON CONFLICT DO NOTHING)
       INSERT INTO branchline.agents AS a (id, instance, heartbeat, ttl_s, started) VALUES ($1, $2, now(), $3, now())
       ON CONFLICT (id) DO UPDATE SET instance = EXCLUDED.instance, heartbeat = now(), ttl_s = EXCLUDED.ttl_s,
              started = CASE WHEN a.instance = EXCLUDED.instance THEN a.started ELSE now() END
        WHERE a.instance = EXCLUDED.instance OR a.heartbeat < now() - make_interval(secs => a.ttl_s)
       RETURNING 1`,
      [agentId, this.instance, ttlS, stores],
    );
    return rows.length === 1;
  }

  /**
   * Frees the leases a previous process of this agent id left (it is gone:
   * its heartbeat expired, or it stopped), so this one does not mistake
   * them for its own.
   */
  async forgetPrevious(): Promise<string[]> {
    const rows = await this.query<{ store_code: string }>(
      `UPDATE branchline.store_leases SET holder = NULL, expires_at = NULL WHERE holder = $1 RETURNING store_code`,
      [this.options.agentId],
    );
    return rows.map((r) => r.store_code);
  }

  /** Agents whose heartbeat is younger than their ttl (this one included). */
  async liveAgents(): Promise<number> {
    const rows = await this.query<{ n: number }>(`SELECT count(*)::int AS n FROM branchline.agents WHERE heartbeat >= now() - make_interval(secs => ttl_s)`, []);
    return rows[0]?.n ?? 0;
  }

  /** Extends the leases this agent still holds (same holder, same generation) by the ttl. Returns those renewed. */
  async renew(leases: readonly Lease[]): Promise<Set<string>> {
    if (leases.length === 0) return new Set();
    const rows = await this.query<{ store_code: string }>(
      `UPDATE branchline.store_leases l SET expires_at = now() + make_interval(secs => $2)
         FROM unnest($3::text[], $4::bigint[]) AS mine(store_code, generation)
        WHERE l.store_code = mine.store_code AND l.generation = mine.generation AND l.holder = $1
       RETURNING l.store_code`,
      [this.options.agentId, this.options.ttlS, leases.map((l) => l.store), leases.map((l) => l.generation)],
    );
    return new Set(rows.map((r) => r.store_code));
  }

  /** Takes up to `count` of `stores` whose lease is free or expired (rows another agent is taking are skipped). */
  async take(stores: readonly string[], count: number): Promise<TakenLease[]> {
    if (count <= 0 || stores.length === 0) return [];
    const rows = await this.query<{ store_code: string; generation: string; was: string | null }>(
      `WITH free AS (
         SELECT store_code, holder AS was FROM branchline.store_leases
          WHERE store_code = ANY($3::text[]) AND (holder IS NULL OR expires_at IS NULL OR expires_at <= now())
          ORDER BY store_code LIMIT $4 FOR UPDATE SKIP LOCKED)
       UPDATE branchline.store_leases l SET holder = $1, expires_at = now() + make_interval(secs => $2), generation = l.generation + 1, taken_at = now()
         FROM free WHERE l.store_code = free.store_code
       RETURNING l.store_code, l.generation::text AS generation, free.was`,
      [this.options.agentId, this.options.ttlS, stores, count],
    );
    return rows.map((r) => ({ store: r.store_code, generation: r.generation, from: r.was }));
  }

  /** Gives leases back (free at once) and tells the other agents. */
  async release(leases: readonly Lease[]): Promise<void> {
    if (leases.length === 0) return;
    await this.query(
      `WITH freed AS (
         UPDATE branchline.store_leases l SET holder = NULL, expires_at = NULL
           FROM unnest($2::text[], $3::bigint[]) AS mine(store_code, generation)
          WHERE l.store_code = mine.store_code AND l.generation = mine.generation AND l.holder = $1
         RETURNING 1)
       SELECT pg_notify($4, $5) FROM (SELECT count(*) FROM freed) f`,
      [this.options.agentId, leases.map((l) => l.store), leases.map((l) => l.generation), LEASE_CHANNEL, this.instance],
    );
  }

  /** Tells the other agents to rebalance now (this one joined). */
  async announce(): Promise<void> {
    await this.query(`SELECT pg_notify($1, $2)`, [LEASE_CHANNEL, this.instance]);
  }

  /** Removes this agent's heartbeat (a clean stop: the others' fair share counts it out at once). */
  async leave(): Promise<void> {
    await this.query(`DELETE FROM branchline.agents WHERE id = $1 AND instance = $2`, [this.options.agentId, this.instance]);
  }

  /** Closes the connection without waiting for a link that may hang. */
  drop(): Promise<void> {
    const c = this.client;
    this.client = null;
    c?.end().catch(() => undefined);
    return Promise.resolve();
  }
}
