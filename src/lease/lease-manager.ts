import { performance } from 'node:perf_hooks';
import type { LeaseConfig } from '../config/load.js';
import type { Logger } from '../core/logger.js';
import { wakeableSleep } from '../core/wakeable-sleep.js';
import type { LeaseMetrics } from '../metrics/lease-metrics.js';
import { balance, fairShare, storesToHandBack } from './balance.js';
import { LeaseStore, type Lease } from './lease-store.js';

export interface LeaseManagerOptions {
  readonly lease: LeaseConfig;
  readonly hqUrl: string;
  /** The codes of the stores this agent may serve. */
  readonly stores: readonly string[];
  readonly logger: Logger;
  readonly metrics?: LeaseMetrics;
  /** Runs one store's work (its pipelines, purges, capture metrics) until `signal` aborts; resolves once it has stopped. */
  readonly work: (store: string, signal: AbortSignal) => Promise<void>;
  /** How often held leases are checked against their fencing deadline (ms; default 200). */
  readonly fenceCheckMs?: number;
}

interface Held {
  readonly lease: Lease;
  readonly controller: AbortController;
  readonly done: Promise<void>;
  /** performance.now() after which the lease may be near expiry at HQ: its work is stopped then. */
  fenceAt: number;
}

/**
 * Holds this agent's share of the store leases at HQ and runs each held
 * store's work only while its lease is held. Every `lease.renew_s` it
 * heartbeats, renews what it holds, and balances: it takes free or expired
 * leases up to its fair share, and hands back what it holds over it (work
 * stopped first, then the lease freed). A lease it cannot renew in time is
 * fenced: its work stops `renew_s` before the lease could expire at HQ,
 * measured from when the last successful renewal was sent (HQ stamps the
 * expiry later than that, never earlier). PgSink's advisory lock and the
 * position committed with the rows remain what makes it exactly once.
 */
export class LeaseManager {
  private readonly held = new Map<string, Held>();
  /** Stores whose work is stopping (not taken again until it has). */
  private readonly stopping = new Map<string, Promise<void>>();
  private registered = false;
  private duplicateSince: number | null = null;
  private wake: (() => void) | null = null;
  /** Another agent asked for a rebalance while this one was not sleeping: the next round starts at once. */
  private noticed = false;
  private readonly log: Logger;

  constructor(private readonly options: LeaseManagerOptions) {
    this.log = options.logger.child({ task: 'leases', agent: options.lease.agentId });
  }

  /** The stores whose lease this agent holds now. */
  holding(): string[] {
    return [...this.held.keys()].sort();
  }

  /** Until `signal` aborts; then stops every held store's work and releases the leases at once. */
  async run(signal: AbortSignal): Promise<void> {
    const { lease, hqUrl } = this.options;
    const store = new LeaseStore({ url: hqUrl, agentId: lease.agentId, ttlS: lease.ttlS, timeoutMs: lease.renewS * 1000, onNotice: () => this.notice() });
    const fence = setInterval(() => this.fenceExpired(), this.options.fenceCheckMs ?? 200);
    const onAbort = () => this.wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    this.log.info('sharing stores by lease at HQ', { stores: this.options.stores.length, ttl_s: lease.ttlS, renew_s: lease.renewS });
    try {
      while (!signal.aborted) {
        try {
          await this.round(store);
        } catch (e) {
          this.log.warn('lease round failed; held leases stay until their fencing deadline', { error: e instanceof Error ? e.message : String(e), holding: this.holding() });
        }
        if (signal.aborted) break;
        if (this.noticed) {
          this.noticed = false;
          continue;
        }
        await wakeableSleep(lease.renewS * 1000, (w) => (this.wake = w));
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      clearInterval(fence);
      const codes = this.holding();
      const leases = await Promise.all(codes.map((c) => this.stop(c)));
      await Promise.all(this.stopping.values());
      try {
        await store.release(leases.filter((l): l is Lease => l !== null));
        await store.leave();
        if (codes.length) this.log.info('leases released: the other agents take these stores now', { stores: codes });
      } catch (e) {
        this.log.warn('leases not released (HQ did not answer); the other agents take these stores once they expire', { stores: codes, error: e instanceof Error ? e.message : String(e) });
      }
      await store.drop();
    }
  }

  private notice(): void {
    if (this.wake) this.wake();
    else this.noticed = true;
  }

  private async round(store: LeaseStore): Promise<void> {
    const { lease, stores } = this.options;
    const margin = (lease.ttlS - lease.renewS) * 1000;
    if (!(await store.heartbeat(stores))) {
      for (const code of this.holding()) this.lose(code, 'another live agent now holds this agent id at HQ');
      this.registered = false;
      if (this.duplicateSince === null || Date.now() - this.duplicateSince > 60_000) {
        this.duplicateSince = Date.now();
        this.log.error('another agent with the same id is live at HQ; this one takes no store until it stops', {
          code: 'BL-A005',
          hint: 'Give each agent its own lease.agent_id (or leave it out: <hostname>:<pid> is unique).',
        });
      }
      return;
    }
    this.duplicateSince = null;
    if (!this.registered) {
      const left = await store.forgetPrevious();
      if (left.length) this.log.info('freed the leases an earlier process of this agent id left', { stores: left });
      this.registered = true;
      await store.announce();
    }
    const sentAt = performance.now();
    const renewed = await store.renew([...this.held.values()].map((h) => h.lease));
    for (const [code, h] of this.held) {
      if (renewed.has(code)) h.fenceAt = sentAt + margin;
      else this.lose(code, 'its lease at HQ is no longer this agent\'s (it expired and another agent took it)');
    }
    const liveAgents = await store.liveAgents();
    const plan = balance({ stores: stores.length, liveAgents, held: this.held.size });
    const share = fairShare(stores.length, liveAgents);
    if (plan.handBack > 0) {
      const codes = storesToHandBack(this.holding(), plan.handBack);
      const leases = await Promise.all(codes.map((c) => this.stop(c)));
      await store.release(leases.filter((l): l is Lease => l !== null));
      for (const code of codes) this.log.info('lease handed back: this agent held more than its share', { store: code, share, liveAgents });
    }
    if (plan.take > 0) {
      const free = stores.filter((c) => !this.held.has(c) && !this.stopping.has(c));
      const takenAt = performance.now();
      for (const t of await store.take(free, plan.take)) {
        const controller = new AbortController();
        const done = this.options.work(t.store, controller.signal).catch((e: unknown) => {
          this.log.error('store work ended with an error', { store: t.store, error: e instanceof Error ? e.message : String(e) });
        });
        this.held.set(t.store, { lease: t, controller, done, fenceAt: takenAt + margin });
        this.options.metrics?.held(t.store, true);
        this.log.info('lease taken', { store: t.store, generation: t.generation, ...(t.from ? { from: t.from } : {}), share, liveAgents });
      }
    }
  }

  /** Stops a held store's work (awaited), then forgets the lease; returns it for release. */
  private async stop(code: string): Promise<Lease | null> {
    const h = this.held.get(code);
    if (!h) return null;
    this.held.delete(code);
    h.controller.abort();
    this.stopping.set(code, h.done);
    await h.done;
    this.stopping.delete(code);
    this.options.metrics?.held(code, false);
    return h.lease;
  }

  /** Self-fencing: the store's work stops now, and the lease is not renewed again (another agent takes it once it expires). */
  private lose(code: string, why: string): void {
    if (!this.held.has(code)) return;
    this.log.error(`lease lost: ${why}; this store's pipelines are stopped`, {
      code: 'BL-A006',
      store: code,
      hint: 'Another agent takes the store once the lease expires; nothing is lost or applied twice. If it repeats, check the link to HQ.',
    });
    void this.stop(code);
  }

  private fenceExpired(): void {
    const now = performance.now();
    for (const [code, h] of this.held)
      if (now >= h.fenceAt) this.lose(code, `not renewed for ${Math.round((this.options.lease.ttlS - this.options.lease.renewS))} s (HQ unreachable or too slow), ${this.options.lease.renewS} s before it could expire`);
  }
}
