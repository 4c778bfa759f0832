import net from 'node:net';
import { PassThrough } from 'node:stream';
import { createLogger, type Logger } from '../../src/core/logger.js';

/** What came back on a raw TCP connection: every byte until the server closed it (or `waitMs` passed). */
export interface RawExchange {
  readonly text: string;
  /** The server closed the connection (FIN or reset) before `waitMs`. */
  readonly closed: boolean;
  /** Status codes of every response in `text`, in order. */
  readonly statuses: number[];
  /** The JSON bodies of the responses in `text` that are JSON. */
  readonly bodies: unknown[];
}

function parseResponses(text: string): { statuses: number[]; bodies: unknown[] } {
  const statuses: number[] = [];
  const bodies: unknown[] = [];
  let rest = text;
  for (;;) {
    const m = /^HTTP\/1\.1 (\d{3})[^\r\n]*\r\n([\s\S]*?)\r\n\r\n/.exec(rest);
    if (!m) break;
    const status = Number(m[1]);
    statuses.push(status);
    rest = rest.slice(m[0].length);
    if (status === 100) continue;
    const length = /content-length: *(\d+)/i.exec(m[2]!);
    const n = length ? Number(length[1]) : 0;
    const body = rest.slice(0, n);
    rest = rest.slice(n);
    if (/content-type: *application\/json/i.test(m[2]!)) bodies.push(JSON.parse(body));
  }
  return { statuses, bodies };
}

/**
 * Speaks HTTP by hand, for what fetch will not send (lying lengths, chunks
 * beyond a limit, half-sent headers). `steps` are written in order, a number
 * being a pause in milliseconds; writes after the server closed are dropped.
 */
export async function raw(port: number, steps: readonly (string | Buffer | number)[], waitMs = 3_000): Promise<RawExchange> {
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  let closed = false;
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('error', () => undefined);
  const ended = new Promise<void>((resolve) => socket.on('close', () => ((closed = true), resolve())));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  for (const step of steps) {
    if (closed) break;
    if (typeof step === 'number') await new Promise((r) => setTimeout(r, step));
    else await new Promise<void>((resolve) => socket.write(step, () => resolve()));
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([ended, new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
  clearTimeout(timer);
  socket.destroy();
  return { text, closed, ...parseResponses(text) };
}

/** A JSON-lines logger writing into memory. */
export function logCapture(): { logger: Logger; text: () => string; lines: () => Record<string, unknown>[] } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString('utf8')));
  return {
    logger: createLogger({ stream, level: 'debug' }),
    text: () => text,
    lines: () =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}
