import pg from 'pg';
import type { Probe } from './contender.js';

/** A connected client that runs one probe query over and over (no connection set-up inside a timed loop). */
export class ProbeClient {
  private constructor(
    private readonly client: pg.Client,
    private readonly probe: Probe,
  ) {}

  static async open(probe: Probe): Promise<ProbeClient> {
    const client = new pg.Client({ connectionString: probe.url, application_name: 'bench-probe' });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (e) {
      await client.end().catch(() => undefined);
      throw e;
    }
    return new ProbeClient(client, probe);
  }

  static async openAll(probes: readonly Probe[]): Promise<ProbeClient[]> {
    const settled = await Promise.allSettled(probes.map((p) => ProbeClient.open(p)));
    const open = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await Promise.all(open.map((c) => c.close()));
      throw failed.reason;
    }
    return open;
  }

  /** Runs the probe; its column `n` as a number. */
  async read(): Promise<number> {
    const r = await this.client.query<{ n: string | number }>(this.probe.sql, this.probe.params as unknown[]);
    return Number(r.rows[0]?.n ?? 0);
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

/** Sum of all probes, read at once. */
export async function readSum(clients: readonly ProbeClient[]): Promise<number> {
  const values = await Promise.all(clients.map((c) => c.read()));
  return values.reduce((s, v) => s + v, 0);
}

/**
 * Opens the control connections a contender needs through `open` and builds
 * it; if any connection or the build fails, closes every one opened so far.
 */
export async function withControlClients<T>(build: (open: (url: string) => Promise<pg.Client>) => Promise<T>): Promise<T> {
  const clients: pg.Client[] = [];
  const open = async (url: string) => {
    const c = new pg.Client({ connectionString: url, application_name: 'bench-control' });
    c.on('error', () => undefined);
    clients.push(c);
    await c.connect();
    return c;
  };
  try {
    return await build(open);
  } catch (e) {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    throw e;
  }
}
