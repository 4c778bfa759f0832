import type pg from 'pg';
import type { TcpProxy } from './tcp-proxy.js';

/**
 * Once a session of `application` (in `database`, when given) shows at the
 * server (`sessions` of them), makes `proxy` swallow whatever clients send from then on: the
 * connection opened, and its next statements never arrive, with no reset
 * (a link that stalls). Returns when it did (0: the session never showed).
 * The client should be slowed (`proxy.slow({ latencyMs: 150 })`) so its
 * first statement is still to come when the session shows.
 */
export async function swallowOnceConnected(proxy: TcpProxy, admin: pg.ClientBase, application: string, database?: string, sessions = 1): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const r = await admin.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND ($2::text IS NULL OR datname = $2) AND state IS NOT NULL`, [
      application,
      database ?? null,
    ]);
    if ((r.rowCount ?? 0) >= sessions) {
      proxy.swallowClientBytes(true);
      return Date.now();
    }
    await new Promise((res) => setTimeout(res, 20));
  }
  return 0;
}

/** Whether `p` settles (either way) within `ms`. */
export function within<T>(p: Promise<T>, ms: number): Promise<'settled' | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.then(
      () => 'settled' as const,
      () => 'settled' as const,
    ),
    new Promise<'hung'>((res) => (timer = setTimeout(() => res('hung'), ms))),
  ]).finally(() => clearTimeout(timer));
}
