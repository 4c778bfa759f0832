import assert from 'node:assert/strict';
import type { RowChange, RowValues, SourceMessage, TableId } from '../../src/core/change.js';
import { tableKey } from '../../src/core/change.js';
import type { PositionCodec } from '../../src/core/position.js';
import type { SourceStream } from '../../src/core/source.js';
import type { ContractItem, ContractOp } from './source-contract-types.js';

/**
 * The tools of the shared source contract suite (source-contract.ts): a
 * reader that checks the shape of every stream as it reads it, and a model
 * of the suite's `item` table that says which changes a transaction must
 * produce. Connector-neutral: only the Source seam is used.
 */

/** A row as the suite compares it: every column in text form. */
export type Row = Readonly<Record<string, string | null>>;

/** One change, as delivered or as expected. */
export interface ItemChange {
  readonly op: 'insert' | 'update' | 'delete';
  readonly id: string;
  readonly before?: Row;
  readonly after?: Row;
}

/** An expected change and the transaction that wrote it. */
export interface Expected extends ItemChange {
  readonly tx: string;
  /** Written by one multi-row statement: the order among the statement's rows is not defined. */
  readonly unordered?: boolean;
}

/** What a stream said, in order: each commit (with the changes of its window) and each idle position. */
export interface Seen<P> {
  readonly kind: 'commit' | 'idle';
  readonly position: P;
  /** How many changes had been delivered (committed) when this arrived. */
  readonly changesBefore: number;
}

/** One begin..commit of a stream. */
export interface Window<P> {
  readonly changes: readonly ItemChange[];
  readonly position: P;
}

/** A change as a stable, readable string (keys sorted): what assertions compare. */
export function show(c: ItemChange): string {
  const row = (r: Row | undefined) =>
    r === undefined ? '-' : `{${Object.keys(r).sort().map((k) => `${k}:${JSON.stringify(r[k])}`).join(',')}}`;
  return `${c.op} ${c.id} ${row(c.before)} -> ${row(c.after)}`;
}

function plainRow(values: RowValues | undefined): Row | undefined {
  if (values === undefined) return undefined;
  const out: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(values)) if (v !== undefined) out[k] = v;
  return out;
}

/** A delivered change as the suite compares it; anything but a change of the suite's table fails. */
export function itemChange(change: RowChange, table: TableId): ItemChange {
  assert.notEqual(change.op, 'truncate', 'the suite never truncates, yet a truncate arrived');
  if (change.op === 'truncate') throw new Error('unreachable');
  assert.equal(tableKey(change.table), tableKey(table), `a change of another table arrived: ${tableKey(change.table)}`);
  const before = change.op === 'insert' ? undefined : plainRow(change.before);
  const after = change.op === 'delete' ? undefined : plainRow(change.after);
  const id = (after ?? before)?.['id'];
  assert.ok(typeof id === 'string', `a ${change.op} without the key: ${JSON.stringify(change)}`);
  return { op: change.op, id, ...(before ? { before } : {}), ...(after ? { after } : {}) };
}

/**
 * Reads one stream with deadlines (never a timing assertion: a deadline only
 * turns "never arrives" into a failure that says what did arrive), through
 * `messages.next()` and then `poll()` for whatever is buffered. Checks,
 * for every message: changes only inside begin..commit, no begin inside a
 * transaction, commit positions strictly increasing and above the position
 * the stream was opened after, every position surviving format/parse.
 */
export class ContractReader<P> {
  private pending: Promise<IteratorResult<SourceMessage<P>>> | null = null;
  private current: ItemChange[] | null = null;
  private lastCommit: P | null;
  private ended = false;
  readonly windows: Window<P>[] = [];
  readonly seen: Seen<P>[] = [];
  private readonly delivered: ItemChange[] = [];

  constructor(
    private readonly stream: SourceStream<P>,
    private readonly codec: PositionCodec<P>,
    private readonly table: TableId,
    private readonly openedAfter: P | null,
  ) {
    this.lastCommit = openedAfter;
  }

  /** Every change of every completed window, in delivery order. */
  changes(): readonly ItemChange[] {
    return this.delivered;
  }

  /** Changes delivered after a commit or idle message this reader saw. */
  changesAfter(s: Seen<P>): readonly ItemChange[] {
    return this.delivered.slice(s.changesBefore);
  }

  /** Whether the stream is between transactions. */
  get between(): boolean {
    return this.current === null;
  }

  /** Reads until `done()` holds between transactions; fails after `ms` saying what arrived. */
  async until(done: () => boolean, what: string, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(this.between && done())) {
      const left = deadline - Date.now();
      if (left <= 0 || !(await this.step(left)))
        assert.fail(`${what}: not delivered within ${ms} ms${this.ended ? ' (the stream ended)' : ''}; delivered so far:\n  ${this.delivered.map(show).join('\n  ') || '(nothing)'}`);
    }
  }

  /** Reads for `ms` (what arrives is recorded; nothing is asserted about how fast). */
  async drain(ms: number): Promise<void> {
    const until = Date.now() + ms;
    for (;;) {
      const left = until - Date.now();
      if (left <= 0 || !(await this.step(left))) return;
    }
  }

  async close(): Promise<void> {
    await this.stream.close();
  }

  /** One message within `ms`; false when none came (the pending read is kept for the next call). */
  private async step(ms: number): Promise<boolean> {
    if (this.ended) return false;
    this.pending ??= this.stream.messages.next();
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.pending, new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), ms)))]);
    clearTimeout(timer);
    if (r === 'timeout') return false;
    this.pending = null;
    if (r.done) {
      this.ended = true;
      return false;
    }
    this.accept(r.value);
    // What is buffered already is taken without waiting, as a consumer filling a batch does: the stream is the same.
    for (let m = this.stream.poll(); m !== undefined; m = this.stream.poll()) this.accept(m);
    return true;
  }

  /** Tells the source everything up to `position` is applied (it may release it). */
  ack(position: P): void {
    this.stream.ack(position);
  }

  private accept(m: SourceMessage<P>): void {
    switch (m.kind) {
      case 'begin':
        assert.equal(this.current, null, 'a begin arrived inside an open transaction');
        this.current = [];
        return;
      case 'change':
        assert.ok(this.current !== null, `a change arrived outside begin..commit: ${JSON.stringify(m.change)}`);
        this.current.push(itemChange(m.change, this.table));
        return;
      case 'commit': {
        assert.ok(this.current !== null, 'a commit arrived without its begin');
        this.checkPosition(m.position);
        if (this.lastCommit !== null)
          assert.ok(
            this.codec.compare(m.position, this.lastCommit) > 0,
            `commit positions must strictly increase: ${this.codec.format(m.position)} after ${this.codec.format(this.lastCommit)}${this.lastCommit === this.openedAfter ? ' (the position the stream was opened after)' : ''}`,
          );
        this.lastCommit = m.position;
        this.windows.push({ changes: this.current, position: m.position });
        this.delivered.push(...this.current);
        this.current = null;
        this.seen.push({ kind: 'commit', position: m.position, changesBefore: this.delivered.length });
        return;
      }
      case 'idle':
        assert.equal(this.current, null, 'an idle message arrived inside a transaction');
        this.checkPosition(m.position);
        this.seen.push({ kind: 'idle', position: m.position, changesBefore: this.delivered.length });
        return;
    }
  }

  private checkPosition(p: P): void {
    const text = this.codec.format(p);
    const back = this.codec.parse(text);
    assert.equal(this.codec.compare(back, p), 0, `position ${text} does not compare equal to itself after format/parse`);
    assert.equal(this.codec.format(back), text, `position ${text} formats differently after parse`);
  }
}

/**
 * The suite's `item` table as the test wrote it: applying a committed
 * transaction's operations returns the changes a source must deliver for it.
 */
export class ItemModel {
  private readonly rows = new Map<number, ContractItem>();

  apply(tx: string, ops: readonly ContractOp[]): Expected[] {
    const out: Expected[] = [];
    for (const op of ops) {
      switch (op.op) {
        case 'insert':
          assert.ok(!this.rows.has(op.row.id), `test bug: row ${op.row.id} exists`);
          this.rows.set(op.row.id, op.row);
          out.push({ tx, op: 'insert', id: String(op.row.id), after: textRow(op.row) });
          break;
        case 'update':
          out.push(this.update(tx, op.id, op.set, false));
          break;
        case 'update-range':
          for (const id of [...this.rows.keys()].filter((k) => k >= op.from && k <= op.to).sort((a, b) => a - b))
            out.push(this.update(tx, id, op.set, true));
          break;
        case 'delete': {
          const old = this.rows.get(op.id);
          assert.ok(old, `test bug: row ${op.id} is missing`);
          this.rows.delete(op.id);
          out.push({ tx, op: 'delete', id: String(op.id), before: textRow(old) });
          break;
        }
      }
    }
    return out;
  }

  private update(tx: string, id: number, set: { name?: string; qty?: number }, unordered: boolean): Expected {
    const old = this.rows.get(id);
    assert.ok(old, `test bug: row ${id} is missing`);
    const now = { ...old, ...set };
    this.rows.set(id, now);
    return { tx, op: 'update', id: String(id), before: textRow(old), after: textRow(now), ...(unordered ? { unordered } : {}) };
  }
}

export function textRow(r: ContractItem): Row {
  return { id: String(r.id), name: r.name, qty: String(r.qty) };
}

/**
 * Every expected change arrived exactly once and nothing else did; each
 * transaction's changes arrived inside ONE window (never split), in the
 * order they were written.
 */
export function assertExactlyOnce<P>(windows: readonly Window<P>[], expected: readonly Expected[], what: string): void {
  const delivered = windows.flatMap((w) => w.changes.map(show));
  assert.deepEqual([...delivered].sort(), expected.map(show).sort(), `${what}: every change exactly once, nothing else`);
  const txOf = new Map(expected.map((e) => [show(e), e.tx]));
  for (const tx of new Set(expected.map((e) => e.tx))) {
    const mine = expected.filter((e) => e.tx === tx);
    const holding = windows.filter((w) => w.changes.some((c) => txOf.get(show(c)) === tx));
    assert.equal(holding.length, 1, `${what}: transaction ${tx} (${mine.length} changes) must arrive inside one begin..commit, it arrived in ${holding.length}`);
    const got = holding[0]!.changes.filter((c) => txOf.get(show(c)) === tx);
    assert.deepEqual(ordered(got, mine), ordered(mine, mine), `${what}: transaction ${tx} in the order it was written`);
  }
}

/** Shown changes, with the rows of a multi-row statement sorted among themselves (their order is not defined). */
function ordered(changes: readonly ItemChange[], expected: readonly Expected[]): string[] {
  const unordered = new Set(expected.filter((e) => e.unordered).map(show));
  const out = changes.map(show);
  const free = out.filter((s) => unordered.has(s)).sort();
  return out.map((s) => (unordered.has(s) ? free.shift()! : s));
}
