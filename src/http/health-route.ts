import type { Route } from './route.js';

/** More to say about health than "ok" (e.g. each pipeline's state): cheap, and without secrets or URLs. */
export type HealthCheck = () => Promise<Readonly<Record<string, unknown>>> | Readonly<Record<string, unknown>>;

/**
 * `GET /health`, the one public route: 200 `{"status": "ok"}` while the
 * server answers, with what `check` adds. A `check` that throws is the
 * server's 500 (logged with its stack, not shown).
 */
export function healthRoute(options: { check?: HealthCheck } = {}): Route {
  return {
    method: 'GET',
    path: '/health',
    public: true,
    async handle() {
      const more = options.check ? await options.check() : {};
      return { status: 200, json: { ...more, status: 'ok' } };
    },
  };
}
