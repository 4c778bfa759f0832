import type { IncomingMessage } from 'node:http';
import { BranchlineError } from '../core/errors.js';
import { jsonErrorAt } from './json-error.js';

const HINT = 'Send a JSON body as the route describes (docs/http.md), with Content-Type: application/json.';

export function bodyTooLarge(maxBytes: number): BranchlineError {
  return new BranchlineError({
    code: 'BL-H004',
    message: `The request body is larger than the ${maxBytes} bytes this agent takes (http.max_body_bytes).`,
    hint: 'Send fewer records per call, or raise http.max_body_bytes in the configuration file.',
  });
}

function notWellFormed(message: string): BranchlineError {
  return new BranchlineError({ code: 'BL-H002', message, hint: HINT });
}

/**
 * Refuses a body that is not JSON by its headers (415): the media type must
 * be application/json (parameters allowed, a charset only utf-8), not
 * compressed. Returns the problem, or null when the headers are right.
 */
export function contentTypeProblem(req: IncomingMessage): BranchlineError | null {
  const type = req.headers['content-type'] ?? '';
  const [media, ...params] = type.split(';').map((p) => p.trim().toLowerCase());
  if (media !== 'application/json') return notWellFormed(`The request body must be sent as Content-Type: application/json${type ? `, not ${JSON.stringify(type.slice(0, 100))}` : ' (the header is missing)'}.`);
  const charset = params.find((p) => p.startsWith('charset='))?.slice('charset='.length).replace(/^"(.*)"$/, '$1');
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') return notWellFormed(`The request body must be UTF-8, not charset ${JSON.stringify(charset.slice(0, 40))}.`);
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity') return notWellFormed('The request body must not be compressed (Content-Encoding is not taken).');
  return null;
}

/** The declared length is more than the limit: answer before reading a byte of it. */
export function declaredTooLarge(req: IncomingMessage, maxBytes: number): boolean {
  const declared = req.headers['content-length'];
  return declared !== undefined && Number(declared) > maxBytes;
}

/** Reads at most `maxBytes` (counted as they arrive: chunked bodies have no length to trust), then parses. */
export function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onError);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        // Stop reading: the rest stays on the wire, and the server closes the connection after its answer.
        stop();
        req.pause();
        chunks.length = 0;
        reject(bodyTooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      stop();
      try {
        resolve(parseJson(Buffer.concat(chunks, size)));
      } catch (e) {
        reject(e);
      }
    };
    const onError = (): void => {
      stop();
      reject(new BranchlineError({ code: 'BL-H002', message: 'The request body did not arrive whole (the connection broke).' }));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onError);
  });
}

function parseJson(bytes: Buffer): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw notWellFormed('The request body is not UTF-8 text.');
  }
  if (text.trim() === '') throw notWellFormed('The request body is empty; this route takes a JSON body.');
  try {
    return JSON.parse(text);
  } catch {
    const at = jsonErrorAt(text);
    throw notWellFormed(
      at ? `The request body is not valid JSON: it goes wrong at line ${at.line}, column ${at.column} (character ${at.position}).` : 'The request body is not valid JSON.',
    );
  }
}
