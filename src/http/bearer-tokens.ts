import { createHash, timingSafeEqual } from 'node:crypto';

export type BearerResult =
  | { readonly ok: true; readonly caller: string }
  | { readonly ok: false; readonly reason: 'missing' | 'scheme' | 'token' };

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * Checks `Authorization: Bearer <token>` against the configured callers.
 * Both sides are compared as SHA-256 digests, so every comparison is of 32
 * bytes whatever the lengths (a token's length does not show in the time),
 * and every configured token is compared (no early exit at the first match).
 */
export class BearerTokens {
  private readonly callers: readonly { readonly name: string; readonly digest: Buffer }[];

  constructor(options: { tokens: readonly { readonly name: string; readonly token: string }[] }) {
    this.callers = options.tokens.map((t) => ({ name: t.name, digest: digest(t.token) }));
  }

  check(authorization: string | undefined): BearerResult {
    const header = (authorization ?? '').trim();
    if (header === '') return { ok: false, reason: 'missing' };
    const space = header.indexOf(' ');
    // The scheme is case-insensitive (RFC 9110 11.1); the token is what follows the spaces.
    if (space < 0 || header.slice(0, space).toLowerCase() !== 'bearer') return { ok: false, reason: 'scheme' };
    const presented = digest(header.slice(space + 1).trim());
    let caller: string | undefined;
    for (const c of this.callers) {
      const same = timingSafeEqual(c.digest, presented);
      if (same && caller === undefined) caller = c.name;
    }
    return caller === undefined ? { ok: false, reason: 'token' } : { ok: true, caller };
  }
}
