import type { Config } from '../config/load.js';
import type { Logger } from '../core/logger.js';
import { healthRoute } from '../http/health-route.js';
import { metricsRoute } from '../http/metrics-route.js';
import type { Route } from '../http/route.js';
import { HttpServer } from '../http/server.js';
import type { Metrics } from '../metrics/metrics.js';
import { poolHqReader } from '../queries/hq-reader.js';
import { pricesRoute, productQueries, stockRoute } from '../queries/query-routes.js';
import { settlementRoute } from '../settlement/route.js';
import { SettlementService } from '../settlement/service.js';

export interface HttpSurfaceOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The pipelines' states, for /health. */
  readonly pipelines: () => Record<string, string>;
}

/** What the agent serves over HTTP (docs/http.md), when `http:` is configured. */
export interface HttpSurface {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Starts the agent's HTTP server with every route: /health, /metrics,
 * settlement checks, and the cross-store queries (GET /stock/:product,
 * GET /prices/:product). Started before the
 * pipelines, so health and a store's checks of HQ answer while HQ is away.
 * BL-H005 when the port cannot be opened.
 */
export async function startHttpSurface(options: HttpSurfaceOptions): Promise<HttpSurface | null> {
  const { config } = options;
  if (!config.http) return null;
  const logger = options.logger.child({ task: 'http' });
  const settlement = new SettlementService({ config, logger: logger.child({ task: 'settlement' }), metrics: options.metrics.settlement });
  const hq = poolHqReader(config.hq.readUrl, { applicationName: 'branchline-queries' });
  const queries = productQueries({ config, hq });
  const routes: Route[] = [
    healthRoute({ check: async () => ({ pipelines: options.pipelines() }) }),
    metricsRoute(options.metrics.registry),
    settlementRoute(settlement),
    stockRoute(queries),
    pricesRoute(queries),
  ];
  const release = async () => {
    await settlement.close();
    await hq.close();
  };
  const server = new HttpServer({ config: config.http, routes, logger });
  let address: { host: string; port: number };
  try {
    address = await server.start();
  } catch (e) {
    await release();
    throw e;
  }
  logger.info('serving HTTP', { host: address.host, port: address.port });
  return {
    ...address,
    async close() {
      await server.close();
      await release();
    },
  };
}
