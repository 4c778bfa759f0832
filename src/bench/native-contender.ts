import pg from 'pg';
import { quoteIdent } from '../db/connect.js';
import type { Contender, Probe } from './contender.js';
import { withControlClients } from './probe-client.js';
import type { ProcessRef } from './cpu-tracker.js';
import { waitFor } from './wait.js';
import type { BenchTopology } from './topology.js';

/** Where a set of native subscriptions runs: the up channel (stores publish, HQ subscribes) or the down channel (the reverse). */
export interface NativeSpec {
  /** URL of the publishing server's `postgres` database (where the slots are). */
  readonly publisherUrl: string;
  /** URL of the subscribing server's `postgres` database (where the apply workers are). */
  readonly subscriberUrl: string;
  /** Per store: the subscriber database holding its subscription, and the subscription's name (and its slot's). */
  readonly subscriptions: readonly { readonly url: string; readonly name: string }[];
  readonly rowsProbes: readonly Probe[];
  readonly maxSaleProbe: (storeIndex: number) => Probe;
}

/** The up channel of the replication scenario: per store an HQ database holding the store schema and its subscription. */
export function upNativeSpec(topology: BenchTopology): NativeSpec {
  const count = `SELECT ((SELECT count(*) FROM sale) + (SELECT count(*) FROM sale_line))::text AS n`;
  return {
    publisherUrl: topology.storesServer.url('postgres'),
    subscriberUrl: topology.hqServer.url('postgres'),
    subscriptions: topology.stores.map((s) => ({ url: topology.hqServer.url(s.nativeDb), name: s.nativeSubscription })),
    rowsProbes: topology.stores.map((s) => ({ url: topology.hqServer.url(s.nativeDb), sql: count, params: [] })),
    maxSaleProbe: (i) => ({ url: topology.hqServer.url(topology.stores[i]!.nativeDb), sql: `SELECT coalesce(max(id), 0)::text AS n FROM sale`, params: [] }),
  };
}

/**
 * PostgreSQL's own logical replication: one subscription per store, each in
 * its own subscriber database. Started and stopped with
 * ALTER SUBSCRIPTION ... ENABLE / DISABLE, all stores at once.
 */
export class NativeContender implements Contender {
  readonly name = 'native' as const;

  private constructor(
    private readonly spec: NativeSpec,
    /** One per subscription, connected to its database. */
    private readonly control: pg.Client[],
    private readonly publisherAdmin: pg.Client,
    private readonly subscriberAdmin: pg.Client,
  ) {}

  static async create(spec: NativeSpec): Promise<NativeContender> {
    return withControlClients(async (open) => {
      const control = await Promise.all(spec.subscriptions.map((s) => open(s.url)));
      return new NativeContender(spec, control, await open(spec.publisherUrl), await open(spec.subscriberUrl));
    });
  }

  async start(): Promise<void> {
    await Promise.all(this.spec.subscriptions.map((s, i) => this.control[i]!.query(`ALTER SUBSCRIPTION ${quoteIdent(s.name)} ENABLE`)));
  }

  async waitStreaming(timeoutMs: number): Promise<void> {
    const subs = this.subscriptions();
    await waitFor('the native subscriptions to stream', timeoutMs, async () => {
      const workers = await this.subscriberAdmin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_subscription WHERE subname = ANY($1) AND pid IS NOT NULL AND relid IS NULL`,
        [subs],
      );
      const slots = await this.publisherAdmin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = ANY($1) AND active_pid IS NOT NULL`,
        [subs],
      );
      return workers.rows[0]?.n === subs.length && slots.rows[0]?.n === subs.length;
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.spec.subscriptions.map((s, i) => this.control[i]!.query(`ALTER SUBSCRIPTION ${quoteIdent(s.name)} DISABLE`)));
    const subs = this.subscriptions();
    await waitFor('the native subscriptions to stop', 60_000, async () => {
      const workers = await this.subscriberAdmin.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_subscription WHERE subname = ANY($1) AND pid IS NOT NULL`, [subs]);
      const slots = await this.publisherAdmin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = ANY($1) AND active_pid IS NOT NULL`,
        [subs],
      );
      return workers.rows[0]?.n === 0 && slots.rows[0]?.n === 0;
    });
  }

  rowsProbes(): readonly Probe[] {
    return this.spec.rowsProbes;
  }

  maxSaleProbe(storeIndex: number): Probe {
    return this.spec.maxSaleProbe(storeIndex);
  }

  async processes(): Promise<ProcessRef[]> {
    const subs = this.subscriptions();
    const [senders, workers] = await Promise.all([
      this.publisherAdmin.query<{ pid: number }>(`SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = ANY($1) AND active_pid IS NOT NULL`, [subs]),
      this.subscriberAdmin.query<{ pid: number }>(`SELECT pid FROM pg_stat_subscription WHERE subname = ANY($1) AND pid IS NOT NULL`, [subs]),
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
    await Promise.all([...this.control, this.publisherAdmin, this.subscriberAdmin].map((c) => c.end().catch(() => undefined)));
  }

  private subscriptions(): string[] {
    return this.spec.subscriptions.map((s) => s.name);
  }
}
