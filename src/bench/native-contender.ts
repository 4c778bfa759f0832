import pg from 'pg';
import { quoteIdent } from '../db/connect.js';
import type { Contender, Probe } from './contender.js';
import { withControlClients } from './probe-client.js';
import type { ProcessRef } from './cpu-tracker.js';
import { waitFor } from './wait.js';
import type { BenchTopology } from './topology.js';

/**
 * PostgreSQL's own logical replication: one subscription per store, each in
 * its own HQ database holding the store schema. Started and stopped with
 * ALTER SUBSCRIPTION ... ENABLE / DISABLE, all stores at once.
 */
export class NativeContender implements Contender {
  readonly name = 'native' as const;

  private constructor(
    private readonly topology: BenchTopology,
    /** One per store, connected to its native HQ database. */
    private readonly control: pg.Client[],
    private readonly storesAdmin: pg.Client,
    private readonly hqAdmin: pg.Client,
  ) {}

  static async create(topology: BenchTopology): Promise<NativeContender> {
    return withControlClients(async (open) => {
      const control = await Promise.all(topology.stores.map((s) => open(topology.hqServer.url(s.nativeDb))));
      return new NativeContender(topology, control, await open(topology.storesServer.url('postgres')), await open(topology.hqServer.url('postgres')));
    });
  }

  async start(): Promise<void> {
    await Promise.all(this.topology.stores.map((s, i) => this.control[i]!.query(`ALTER SUBSCRIPTION ${quoteIdent(s.nativeSubscription)} ENABLE`)));
  }

  async waitStreaming(timeoutMs: number): Promise<void> {
    const subs = this.subscriptions();
    await waitFor('the native subscriptions to stream', timeoutMs, async () => {
      const workers = await this.hqAdmin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_subscription WHERE subname = ANY($1) AND pid IS NOT NULL AND relid IS NULL`,
        [subs],
      );
      const slots = await this.storesAdmin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = ANY($1) AND active_pid IS NOT NULL`,
        [subs],
      );
      return workers.rows[0]?.n === subs.length && slots.rows[0]?.n === subs.length;
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.topology.stores.map((s, i) => this.control[i]!.query(`ALTER SUBSCRIPTION ${quoteIdent(s.nativeSubscription)} DISABLE`)));
    const subs = this.subscriptions();
    await waitFor('the native subscriptions to stop', 60_000, async () => {
      const workers = await this.hqAdmin.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_subscription WHERE subname = ANY($1) AND pid IS NOT NULL`, [subs]);
      const slots = await this.storesAdmin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = ANY($1) AND active_pid IS NOT NULL`,
        [subs],
      );
      return workers.rows[0]?.n === 0 && slots.rows[0]?.n === 0;
    });
  }

  rowsProbes(): Probe[] {
    return this.topology.stores.map((s) => ({
      url: this.topology.hqServer.url(s.nativeDb),
      sql: `SELECT ((SELECT count(*) FROM sale) + (SELECT count(*) FROM sale_line))::text AS n`,
      params: [],
    }));
  }

  maxSaleProbe(storeIndex: number): Probe {
    const s = this.topology.stores[storeIndex]!;
    return { url: this.topology.hqServer.url(s.nativeDb), sql: `SELECT coalesce(max(id), 0)::text AS n FROM sale`, params: [] };
  }

  async processes(): Promise<ProcessRef[]> {
    const subs = this.subscriptions();
    const [senders, workers] = await Promise.all([
      this.storesAdmin.query<{ pid: number }>(`SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = ANY($1) AND active_pid IS NOT NULL`, [subs]),
      this.hqAdmin.query<{ pid: number }>(`SELECT pid FROM pg_stat_subscription WHERE subname = ANY($1) AND pid IS NOT NULL`, [subs]),
    ]);
    return [
      ...senders.rows.map((r) => ({ role: 'decode', pid: r.pid })),
      ...workers.rows.map((r) => ({ role: 'apply', pid: r.pid })),
    ];
  }

  agentPid(): null {
    return null;
  }

  async milestones(): Promise<Record<string, number>> {
    return {};
  }

  /** PostgreSQL restarts a failed apply worker on its own; a stuck one shows as a timeout. */
  async assertRunning(): Promise<void> {}

  async logTail(): Promise<string> {
    return '';
  }

  async dispose(): Promise<void> {
    await Promise.all([...this.control, this.storesAdmin, this.hqAdmin].map((c) => c.end().catch(() => undefined)));
  }

  private subscriptions(): string[] {
    return this.topology.stores.map((s) => s.nativeSubscription);
  }
}
