/**
 * The seam between the agent's HTTP server and what it serves: a route is a
 * method, a path pattern and a handler. The server does authentication,
 * body limits, JSON parsing and error answers; a handler sees only a parsed
 * request and returns a response. A handler throws a BranchlineError for a
 * caller's mistake (BL-K002, BL-Q001, ...): the server answers it as
 * `{"error": {"code", "message", "hint"}}` with the status `statusFor`
 * gives, never with a stack trace.
 */
export interface RouteRequest {
  /** The name of the token the caller presented (`http.tokens[].name`); `anonymous` on a public route. */
  readonly caller: string;
  /** Path parameters, percent-decoded: `/stock/:product` gives `{ product }`. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The parsed JSON body (POST), or undefined. */
  readonly body: unknown;
  /** Aborted when the caller goes away or the agent stops. */
  readonly signal: AbortSignal;
}

export type RouteResponse =
  | { readonly status: number; readonly json: unknown }
  | { readonly status: number; readonly text: string; readonly contentType: string };

export interface Route {
  readonly method: 'GET' | 'POST';
  /** e.g. `/settlement-checks`, `/stock/:product` (a `:name` segment matches one non-empty path segment). */
  readonly path: string;
  /** No token needed (only `/health`). */
  readonly public?: boolean;
  handle(req: RouteRequest): Promise<RouteResponse>;
}
