import { BranchlineError } from '../core/errors.js';
import type { Route } from './route.js';

type Segment = { readonly literal: string } | { readonly param: string };

interface CompiledRoute {
  readonly route: Route;
  readonly segments: readonly Segment[];
}

export interface RouteMatch {
  readonly route: Route;
  readonly params: Readonly<Record<string, string>>;
}

/** What a request target names: its path segments (percent-decoded) and its query. */
export interface RequestTarget {
  readonly segments: readonly string[];
  readonly query: URLSearchParams;
}

function malformed(message: string): BranchlineError {
  return new BranchlineError({
    code: 'BL-H002',
    message,
    hint: 'Percent-encode path and query values as UTF-8 (e.g. encodeURIComponent); see docs/http.md.',
  });
}

function decode(part: string, what: string): string {
  let text: string;
  try {
    text = decodeURIComponent(part);
  } catch {
    throw malformed(`The request's ${what} has a malformed percent escape (a % not followed by two hex digits, or bytes that are not UTF-8).`);
  }
  // No value a route binds may hold NUL (PostgreSQL text cannot) or other control characters.
  if (/[\u0000-\u001f\u007f]/.test(text)) throw malformed(`The request's ${what} holds a control character (such as %00).`);
  return text;
}

/**
 * Splits an origin-form request target (`/stock/123?stores=S001`) into
 * decoded path segments and a query. The path is split at `/` before
 * decoding, so `%2F` is a slash inside one segment, not a separator; dot
 * segments are not resolved (nothing here is a file); a trailing slash makes
 * an empty last segment, which no route matches.
 */
export function parseTarget(url: string): RequestTarget {
  if (!url.startsWith('/')) throw malformed('The request target is not a path (only origin-form targets such as /health are served).');
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? '' : url.slice(q + 1);
  const segments = path.slice(1).split('/').map((s) => decode(s, 'path'));
  // URLSearchParams alone passes a malformed escape through as text: check each name and value first.
  for (const pair of rawQuery.split('&')) for (const part of pair.split('=')) decode(part.replace(/\+/g, ' '), 'query string');
  return { segments, query: new URLSearchParams(rawQuery) };
}

function compile(route: Route): CompiledRoute {
  if (!route.path.startsWith('/')) throw new Error(`route path ${route.path} does not start with /`);
  const names = new Set<string>();
  const segments = route.path.slice(1).split('/').map((s): Segment => {
    if (s === '') throw new Error(`route path ${route.path} has an empty segment`);
    if (!s.startsWith(':')) return { literal: s };
    const param = s.slice(1);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(param) || names.has(param)) throw new Error(`route path ${route.path} has a bad or repeated parameter ${s}`);
    names.add(param);
    return { param };
  });
  return { route, segments };
}

function matchOne(c: CompiledRoute, segments: readonly string[]): Record<string, string> | null {
  if (c.segments.length !== segments.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const want = c.segments[i]!;
    const got = segments[i]!;
    if ('literal' in want) {
      if (want.literal !== got) return null;
    } else {
      if (got === '') return null;
      params[want.param] = got;
    }
  }
  return params;
}

/** Literal segments win over parameters, left to right (`/stock/summary` before `/stock/:product`). */
function moreSpecific(a: CompiledRoute, b: CompiledRoute): number {
  for (let i = 0; i < a.segments.length; i++) {
    const la = 'literal' in a.segments[i]!;
    const lb = 'literal' in b.segments[i]!;
    if (la !== lb) return la ? -1 : 1;
  }
  return 0;
}

/** The routes of one server, matched by path and method. */
export class RouteTable {
  private readonly routes: readonly CompiledRoute[];

  constructor(options: { routes: readonly Route[] }) {
    const seen = new Set<string>();
    for (const r of options.routes) {
      const shape = `${r.method} ${r.path.replace(/:[^/]+/g, ':')}`;
      if (seen.has(shape)) throw new Error(`two routes answer ${r.method} ${r.path}`);
      seen.add(shape);
    }
    this.routes = options.routes.map(compile);
  }

  /** The routes whose path matches, most specific first, each with its parameters. */
  match(segments: readonly string[]): RouteMatch[] {
    const found: { c: CompiledRoute; params: Record<string, string> }[] = [];
    for (const c of this.routes) {
      const params = matchOne(c, segments);
      if (params) found.push({ c, params });
    }
    return found.sort((x, y) => moreSpecific(x.c, y.c)).map((f) => ({ route: f.c.route, params: f.params }));
  }
}
