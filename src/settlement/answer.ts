import type { RowValues } from '../core/change.js';
import { BranchlineError } from '../core/errors.js';
import { compareDecimal, formatDecimal, parseDecimal, type Decimal } from '../mapping/expr/decimal.js';
import { RowEvalError, truth } from '../mapping/expr/runtime.js';
import type { SettlementAnswer as Status } from '../metrics/metrics.js';
import type { SettlementRead } from './rules.js';

export type { Status };

/** One record a caller is about to settle. */
export interface CheckRequest {
  readonly store: string;
  /** The kind of record (a mapping's `settlement.kind`). */
  readonly kind: string;
  /** The reference: the store's code of the record, or HQ's key when the kind has `ref_entity`. */
  readonly ref: string;
  /** The amount the caller is about to settle, as decimal text. */
  readonly amount: string;
}

/** Why an answer is `unavailable`. */
export type UnavailableReason = 'unreachable' | 'unknown' | 'error';

/** The answer to one request, as the CLI and HTTP print it. */
export interface SettlementAnswer {
  /** Its id in the audit (`branchline.settlement_checks`). */
  readonly check_id: string | null;
  /** store: HQ asked the store the record came from; hq: a store asked HQ. */
  readonly asked: 'store' | 'hq';
  readonly store: string;
  readonly kind: string;
  readonly ref: string;
  /** The amount asked about, as given. */
  readonly amount: string;
  readonly status: Status;
  /** The amount the database asked holds (null when it holds no record, or was not reached). */
  readonly origin_amount: string | null;
  /** Only when `unavailable`. */
  readonly reason: UnavailableReason | null;
  /** A sentence for people: why this answer. */
  readonly detail: string;
  readonly checked_at: string;
}

/** The verdict on one record before it is stamped with ids and times. */
export interface Verdict {
  readonly status: Status;
  readonly originAmount: string | null;
  readonly reason: UnavailableReason | null;
  readonly detail: string;
}

export const MAX_REF_LENGTH = 200;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * BL-K002 for a malformed request (`at` names it in a list: "checks[3]"),
 * BL-K001 for a kind no file declares; a request without a kind gets the
 * only one declared.
 */
export function checkRequest(r: { store?: unknown; kind?: unknown; ref?: unknown; amount?: unknown }, at: string, stores: ReadonlySet<string>, kinds: readonly string[]): CheckRequest {
  const bad = (message: string, hint: string): never => {
    throw new BranchlineError({ code: 'BL-K002', message: `${at}: ${message}`, hint });
  };
  if (typeof r !== 'object' || r === null || Array.isArray(r)) bad('is not an object.', 'Send {"store": "S001", "ref": "42", "amount": "129.90"}.');
  if (typeof r.store !== 'string' || r.store === '') bad('"store" is missing or not text.', 'Name the store the record came from, e.g. "store": "S001".');
  const store = r.store as string;
  if (!stores.has(store)) bad(`store "${short(store)}" is not configured.`, `Configured stores: ${[...stores].join(', ')}.`);
  if (r.kind !== undefined && (typeof r.kind !== 'string' || r.kind === '')) bad('"kind" is not text.', 'Name the kind of record, e.g. "kind": "receivable", or leave it out when one kind is declared.');
  const ref = typeof r.ref === 'number' && Number.isSafeInteger(r.ref) ? String(r.ref) : r.ref;
  if (typeof ref !== 'string' || ref === '') bad('"ref" is missing or not text.', 'Give the record\'s reference, e.g. "ref": "42".');
  if ((ref as string).length > MAX_REF_LENGTH) bad(`"ref" is longer than ${MAX_REF_LENGTH} characters.`, 'Give the record\'s reference as the store or HQ keeps it.');
  if ((ref as string).includes('\0')) bad('"ref" contains a NUL character.', 'Give the record\'s reference as the store or HQ keeps it.');
  // A lone surrogate ("\ud800" in JSON) is no Unicode text: the database would keep U+FFFD, not what was asked.
  if (LONE_SURROGATE.test(ref as string)) bad('"ref" contains a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape without its pair), which is not text.', 'Give the record\'s reference as the store or HQ keeps it.');
  const amount = typeof r.amount === 'number' ? numberText(r.amount) : r.amount;
  if (typeof amount !== 'string' || amount.length > 64 || !/^\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*$/.test(amount) || parseDecimal(amount) === null)
    bad(`"amount" ${amount === undefined ? 'is missing' : 'is not a decimal number'}.`, 'Give the amount about to be settled, e.g. "amount": "129.90".');
  return { store, kind: resolveKind(kinds, r.kind as string | undefined), ref: ref as string, amount: (amount as string).trim() };
}

/** The kind a check names, or the only one declared (BL-K001 otherwise). */
export function resolveKind(kinds: readonly string[], kind: string | undefined): string {
  if (kind !== undefined ? kinds.includes(kind) : kinds.length === 1) return kind ?? kinds[0]!;
  throw new BranchlineError({
    code: 'BL-K001',
    message: kind !== undefined
      ? `no mapping file declares settlement checks for "${short(kind)}".`
      : kinds.length === 0
        ? 'no mapping file declares settlement checks.'
        : 'the check names no kind of record, and several are declared.',
    hint: kinds.length ? `Declared kinds: ${kinds.join(', ')}.` : 'Add a settlement: section to the up mapping of the receivables (docs/settlement.md).',
  });
}

function numberText(n: number): string | undefined {
  if (!Number.isFinite(n)) return undefined;
  const t = String(n);
  return /e/i.test(t) ? undefined : t;
}

function short(v: string): string {
  return v.length > 40 ? `${v.slice(0, 37)}...` : v;
}

/**
 * The verdict on a record from the row the database holds (undefined: none).
 * Deleted before settled before the amount: a cancelled record is never
 * settled, whatever its amount.
 */
export function judge(read: SettlementRead, rows: readonly RowValues[] | undefined, asked: string, where: string, storeCode: string): Verdict | null {
  if (!rows || rows.length === 0) return null;
  if (rows.length > 1)
    return { status: 'unavailable', originAmount: null, reason: 'error', detail: `${where} holds ${rows.length} records with this reference; it names none of them alone.` };
  const row = rows[0]!;
  const ctx = { storeCode };
  try {
    if (read.deleted && isTrue(read.deleted(row, ctx))) return { status: 'deleted', originAmount: read.amount(row, ctx), reason: null, detail: `${where} holds the record as deleted (cancelled).` };
    if (isTrue(read.settled(row, ctx))) return { status: 'settled', originAmount: read.amount(row, ctx), reason: null, detail: `${where} has already settled the record.` };
    const held = read.amount(row, ctx);
    const heldDecimal: Decimal | null = held === null ? null : parseDecimal(held);
    if (heldDecimal === null)
      return { status: 'unavailable', originAmount: held, reason: 'error', detail: `${where} holds an amount that is not a number (${held === null ? 'null' : short(held)}).` };
    const want = parseDecimal(asked)!;
    if (compareDecimal(heldDecimal, want) !== 0)
      return { status: 'amount_differs', originAmount: formatDecimal(heldDecimal), reason: null, detail: `${where} holds the record open with ${formatDecimal(heldDecimal)}, not ${asked}.` };
    return { status: 'released', originAmount: formatDecimal(heldDecimal), reason: null, detail: `${where} holds the record open with the same amount: it may be settled.` };
  } catch (e) {
    if (!(e instanceof RowEvalError)) throw e;
    return { status: 'unavailable', originAmount: null, reason: 'error', detail: `the settlement expressions failed on the record ${where} holds: ${e.message}` };
  }
}

function isTrue(v: string | null): boolean {
  return v !== null && truth(v, 'the condition');
}
