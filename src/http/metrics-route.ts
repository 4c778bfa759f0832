import type { Registry } from 'prom-client';
import type { Route } from './route.js';

/** `GET /metrics`: the registry in Prometheus' text format (token needed, like every route but /health). */
export function metricsRoute(registry: Registry): Route {
  return {
    method: 'GET',
    path: '/metrics',
    async handle() {
      return { status: 200, text: await registry.metrics(), contentType: registry.contentType };
    },
  };
}
