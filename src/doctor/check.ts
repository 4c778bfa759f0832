import type { ErrorCode } from '../core/errors.js';

/** ok: nothing to do; warn: works, but a risk to fix; fail: branchline cannot run (or runs wrong) until fixed; skip: not checked, and why. */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

/** One line of `branchline doctor`. */
export interface CheckResult {
  /** "HQ" or "store S001". */
  readonly database: string;
  /** What is checked: reachable, tls, branchline schema, wal_level, replication, replication origin, publication, slot, max_slot_wal_keep_size, change table, clock, replica identity, mappings (checks: stopped midway). */
  readonly check: string;
  readonly status: CheckStatus;
  /** Stable code of a warning or failure (docs/errors.md); null when ok or skipped. */
  readonly code: ErrorCode | null;
  /** What was found, as a sentence. */
  readonly message: string;
  /** What to do (the SQL or setting to change); null when ok. */
  readonly fix: string | null;
  /** The problems a check is about, one line each (the mapping problems with their file:line:column). */
  readonly details?: readonly string[];
}

export function ok(database: string, check: string, message: string): CheckResult {
  return { database, check, status: 'ok', code: null, message, fix: null };
}

export function skip(database: string, check: string, message: string): CheckResult {
  return { database, check, status: 'skip', code: null, message, fix: null };
}

export function problem(database: string, check: string, status: 'warn' | 'fail', code: ErrorCode, message: string, fix: string | null): CheckResult {
  return { database, check, status, code, message, fix };
}
