import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { BranchlineError, isBranchlineError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { HttpConfig } from '../config/load.js';
import type { Route, RouteResponse } from './route.js';
import { BearerTokens } from './bearer-tokens.js';
import { RouteTable, parseTarget, type RouteMatch } from './route-table.js';
import { contentTypeProblem, declaredTooLarge, readJsonBody, bodyTooLarge } from './json-body.js';
import { bugBody, errorBody, statusFor } from './status.js';

/** Limits against slow or idle clients (milliseconds). */
export interface HttpTimeouts {
  /** The request's headers must arrive within this (slowloris). */
  readonly headersMs: number;
  /** The whole request, body included, must arrive within this. */
  readonly requestMs: number;
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveMs: number;
  /** How often node checks the two above (its default, 30 s, would let a slow client stay 30 s longer). */
  readonly checkEveryMs: number;
  /** `close()` waits this long for answers under way (their signals aborted) before cutting every connection. */
  readonly closeGraceMs: number;
}

export const DEFAULT_TIMEOUTS: HttpTimeouts = { headersMs: 10_000, requestMs: 30_000, keepAliveMs: 5_000, checkEveryMs: 1_000, closeGraceMs: 2_000 };

export interface HttpServerOptions {
  readonly config: HttpConfig;
  readonly routes: readonly Route[];
  readonly logger: Logger;
  readonly timeouts?: Partial<HttpTimeouts>;
}

/** One request's answer, before it is written. */
interface Answer {
  readonly status: number;
  readonly body: string;
  readonly contentType: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** The error code answered, for the log line. */
  readonly code?: string;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const MAX_HEADER_BYTES = 16 * 1024;

function json(status: number, value: unknown, more: Partial<Answer> = {}): Answer {
  return { status, body: JSON.stringify(value), contentType: JSON_TYPE, ...more };
}

function problemAnswer(e: BranchlineError, status = statusFor(e.code), more: Partial<Answer> = {}): Answer {
  return json(status, errorBody(e.problem), { code: e.code, ...more });
}

const UNAUTHORIZED: Record<'missing' | 'scheme' | 'token', string> = {
  missing: 'The request has no Authorization header; this route needs a token.',
  scheme: 'The Authorization header is not of the form "Bearer <token>".',
  token: 'The token sent is not one this agent knows.',
};

const STOPPING = new BranchlineError({
  code: 'BL-H006',
  message: 'The agent is stopping; the request was not answered.',
  hint: 'Send it again once the agent is back.',
});

/**
 * The agent's HTTP server: plain node:http, routes plugged in through the
 * `Route` seam. It authenticates (bearer tokens), reads and parses JSON
 * bodies within `maxBodyBytes`, decodes path parameters, answers errors as
 * `{"error": {"code", "message", "hint"}}`, and logs one line per request.
 * What it answers to whom is in docs/http.md.
 */
export class HttpServer {
  private readonly config: HttpConfig;
  private readonly table: RouteTable;
  private readonly tokens: BearerTokens;
  private readonly logger: Logger;
  private readonly timeouts: HttpTimeouts;
  private readonly inFlight = new Set<AbortController>();
  private server: http.Server | null = null;
  private closing: Promise<void> | null = null;

  constructor(options: HttpServerOptions) {
    this.config = options.config;
    this.table = new RouteTable({ routes: options.routes });
    this.tokens = new BearerTokens({ tokens: options.config.tokens });
    this.logger = options.logger;
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
  }

  async start(): Promise<{ host: string; port: number }> {
    if (this.server) throw new Error('HttpServer.start called twice');
    const t = this.timeouts;
    // Header size: node's default cap, 16 KiB, written out so that --max-http-header-size does not change it (431 beyond it).
    const server = http.createServer({ headersTimeout: t.headersMs, requestTimeout: t.requestMs, connectionsCheckingInterval: t.checkEveryMs, maxHeaderSize: MAX_HEADER_BYTES });
    server.keepAliveTimeout = t.keepAliveMs;
    server.on('request', (req, res) => void this.serve(req, res, false));
    // Expect: 100-continue: the refusals (401, 404, 413 by Content-Length, 415) come before the client sends its body.
    server.on('checkContinue', (req, res) => void this.serve(req, res, true));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.refuseMalformed(err, socket));
    const { host, port } = this.config;
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => reject(listenError(e, host, port));
      server.once('error', onError);
      server.listen({ host, port }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (e) => this.logger.error('http server error', { error: e.message }));
    this.server = server;
    const address = server.address() as AddressInfo;
    this.logger.info('http server listening', { host: address.address, port: address.port });
    return { host: address.address, port: address.port };
  }

  /**
   * Stops accepting, aborts the signals of the handlers under way, closes
   * idle connections at once and every connection after `closeGraceMs`.
   */
  close(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    this.closing ??= new Promise<void>((resolve) => {
      const cut = setTimeout(() => server.closeAllConnections(), this.timeouts.closeGraceMs);
      server.close(() => {
        clearTimeout(cut);
        resolve();
      });
      for (const c of this.inFlight) c.abort(STOPPING);
      server.closeIdleConnections();
    });
    return this.closing;
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse, expectsContinue: boolean): Promise<void> {
    const started = process.hrtime.bigint();
    const requestId = randomUUID();
    const controller = new AbortController();
    this.inFlight.add(controller);
    res.on('close', () => {
      this.inFlight.delete(controller);
      if (!res.writableFinished) controller.abort(new Error('the caller closed the connection'));
    });
    let match: RouteMatch | null = null;
    let caller = 'anonymous';
    let bodyRead = !hasBody(req);
    let answer: Answer;
    try {
      if (this.closing) throw STOPPING;
      const target = parseTarget(req.url ?? '/');
      const matches = this.table.match(target.segments);
      const method = req.method ?? '';
      const publicMatch = matches.find((m) => m.route.public && m.route.method === method);
      if (publicMatch) match = publicMatch;
      else {
        // Authentication comes before routing: without a valid token every path that is not public answers 401, so routes are not revealed.
        const auth = this.tokens.check(req.headers.authorization);
        if (!auth.ok) throw new BranchlineError({ code: 'BL-H001', message: UNAUTHORIZED[auth.reason], hint: 'Send Authorization: Bearer <token> with one of the tokens in http.tokens; only /health needs none.' });
        caller = auth.caller;
        match = matches.find((m) => m.route.method === method) ?? null;
        if (!match) {
          const allow = [...new Set(matches.map((m) => m.route.method))].sort();
          if (!allow.length) throw new BranchlineError({ code: 'BL-H003', message: 'There is no such route.', hint: 'See the routes in docs/http.md.' });
          throw new MethodNotAllowed(method, allow);
        }
      }
      let body: unknown;
      if (match.route.method === 'POST') {
        body = await this.readBody(req, res, expectsContinue);
        bodyRead = true;
      }
      const routeCaller = match.route.public ? 'anonymous' : caller;
      const response = await match.route.handle({ caller: routeCaller, params: match.params, query: target.query, body, signal: controller.signal });
      answer = toAnswer(response);
    } catch (e) {
      answer = this.failure(e, controller.signal, requestId, match);
    }
    // A body left unread (refused, too large) is not read to its end to keep the connection: it is closed.
    try {
      this.write(res, answer, requestId, !bodyRead);
    } catch (e) {
      // An answer node refuses to write (a route's content type with a line break) is a bug too.
      this.logger.error('http handler failed', { requestId, route: match?.route.path ?? null, stack: e instanceof Error ? (e.stack ?? e.message) : String(e) });
      answer = json(500, bugBody(requestId), { code: 'bug' });
      this.write(res, answer, requestId, true);
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    this.logger.info('http request', {
      requestId,
      method: req.method,
      route: match?.route.path ?? null,
      status: res.headersSent ? answer.status : 499,
      ms: Math.round(ms * 10) / 10,
      caller,
      ...(answer.code ? { code: answer.code } : {}),
    });
  }

  private async readBody(req: http.IncomingMessage, res: http.ServerResponse, expectsContinue: boolean): Promise<unknown> {
    const type = contentTypeProblem(req);
    if (type) throw new StatusError(type, 415);
    if (declaredTooLarge(req, this.config.maxBodyBytes)) throw bodyTooLarge(this.config.maxBodyBytes);
    if (expectsContinue) res.writeContinue();
    return readJsonBody(req, this.config.maxBodyBytes);
  }

  private failure(e: unknown, signal: AbortSignal, requestId: string, match: RouteMatch | null): Answer {
    if (e instanceof MethodNotAllowed)
      return json(405, errorBody({ code: 'BL-H003', message: `This route does not take ${e.method}.`, hint: `It takes ${e.allow.join(', ')} (the Allow header).` }), {
        code: 'BL-H003',
        headers: { Allow: e.allow.join(', ') },
      });
    if (e instanceof StatusError) return problemAnswer(e.error, e.status);
    if (isBranchlineError(e)) return problemAnswer(e);
    // A handler that gave up because the agent is stopping answers 503; one whose caller left answers nobody (no bug either).
    if (signal.aborted && this.closing) return problemAnswer(STOPPING);
    if (signal.aborted) return json(499, { error: { code: null, message: 'The caller closed the connection.', hint: null } });
    this.logger.error('http handler failed', { requestId, route: match?.route.path ?? null, stack: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    return json(500, bugBody(requestId), { code: 'bug' });
  }

  private write(res: http.ServerResponse, a: Answer, requestId: string, close: boolean): void {
    if (res.headersSent || res.destroyed) return;
    const headers: Record<string, string | number> = {
      'Content-Type': a.contentType,
      'Content-Length': Buffer.byteLength(a.body),
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'X-Request-Id': requestId,
      ...a.headers,
    };
    if (a.status === 401) headers['WWW-Authenticate'] = 'Bearer realm="branchline"';
    if (close || this.closing) headers['Connection'] = 'close';
    res.writeHead(a.status, headers);
    res.end(a.body);
  }

  /** What node's parser refused (bad framing, headers too large, too slow): answered in the same JSON form, then the connection is closed. */
  private refuseMalformed(err: NodeJS.ErrnoException, socket: Socket): void {
    const busy = (socket as Socket & { _httpMessage?: http.ServerResponse })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || busy?.headersSent) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'HPE_HEADERS_TIMEOUT' ? 408 : 400;
    const message =
      status === 431 ? 'The request headers are larger than this agent takes (16 KiB).' : status === 408 ? 'The request did not arrive whole in time.' : 'The request is not well-formed HTTP/1.1.';
    const requestId = randomUUID();
    const body = JSON.stringify(errorBody({ code: 'BL-H002', message, hint: 'Send a well-formed request, whole and without delay (docs/http.md).' }));
    // Never the raw packet (err.rawPacket holds the headers, the token among them): only the parser's code.
    this.logger.info('http request refused', { requestId, status, reason: err.code ?? 'unknown', code: 'BL-H002' });
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: ${JSON_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
    );
    setTimeout(() => socket.destroy(), 1_000).unref();
  }
}

class MethodNotAllowed extends Error {
  constructor(
    readonly method: string,
    readonly allow: readonly string[],
  ) {
    super(`method ${method} not allowed`);
  }
}

/** A BranchlineError answered with another status than `statusFor` gives (415 for BL-H002). */
class StatusError extends Error {
  constructor(
    readonly error: BranchlineError,
    readonly status: number,
  ) {
    super(error.message);
  }
}

function toAnswer(r: RouteResponse): Answer {
  if (!Number.isInteger(r.status) || r.status < 200 || r.status > 599) throw new Error(`route answered status ${r.status}`);
  if ('json' in r) {
    const body = JSON.stringify(r.json);
    if (body === undefined) throw new Error('route answered json: undefined');
    return { status: r.status, body, contentType: JSON_TYPE };
  }
  return { status: r.status, body: r.text, contentType: r.contentType };
}

function listenError(e: NodeJS.ErrnoException, host: string, port: number): BranchlineError {
  const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const why: Record<string, string> = {
    EADDRINUSE: 'the port is in use by another program',
    EACCES: 'this user may not open that port (ports below 1024 need privileges)',
    EADDRNOTAVAIL: 'that address is not one of this machine\'s',
    ENOTFOUND: 'that host name does not resolve',
  };
  return new BranchlineError(
    {
      code: 'BL-H005',
      message: `The agent cannot serve HTTP on ${where}: ${why[e.code ?? ''] ?? e.message}.`,
      hint: 'Choose another http.listen in the configuration file, or stop what holds that port.',
    },
    { cause: e },
  );
}

function hasBody(req: http.IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}
