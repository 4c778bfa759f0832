import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { assertExactlyOnce, ContractReader, ItemModel, show, type Expected, type Seen } from './source-contract-reader.js';
import type { ContractContext, ContractHarness, ContractItem, ContractOp, OpenTransaction } from './source-contract-types.js';

/**
 * The shared contract every source connector satisfies, written once against
 * the Source seam (open, messages, poll, ack, close, positions) and run for
 * each connector through its adapter (source-contract-types.ts).
 *
 * What holds for every kind of source: transactions arrive whole and in
 * commit order, nothing of an open or rolled-back transaction is delivered,
 * before-images carry the old row, a long transaction is never skipped, a
 * new source opened at a position delivers exactly what came after it, and
 * what branchline itself wrote is never delivered. pg-logical delivers each
 * source transaction as its own begin..commit; a trigger source may deliver
 * several source transactions in one window, but never splits one.
 */
export function sourceContract<P>(h: ContractHarness<P>): void {
  describe(`source contract: ${h.name}`, { skip: h.unavailable ?? false }, () => {
    after(() => h.close());

    it('ordering: many transactions on the same rows arrive in commit order; commit positions strictly increase and survive format/parse', { timeout: 120_000 }, withSession(h, async (s) => {
      const r = await s.read(null);
      const expected: Expected[] = [];
      expected.push(...(await s.commit('T0', [ins(1, 'a', 0), ins(2, 'b', 0), ins(3, "c'é", 0)])));
      for (let i = 1; i <= 24; i++) {
        const ops: ContractOp[] =
          i === 12
            ? [del(2), ins(2, `b again ${i}`, i)]
            : i % 2 === 1
              ? [upd(1, { qty: i }), upd(2, { name: `b${i}` }), upd(3, { qty: -i })]
              : [upd(3, { name: `c${i}`, qty: i }), upd(1, { name: `a${i}` }), upd(2, { qty: i * 100 })];
        expected.push(...(await s.commit(`T${i}`, ops)));
      }
      await r.until(() => r.changes().length >= expected.length, `${expected.length} changes of T0..T24`);
      // B waits for A's row lock: A commits first, so A's change comes first and B's before-image is A's row.
      const a = await s.begin('A', [upd(1, { qty: 123456 })]);
      const bOps = [upd(1, { qty: 654321 })];
      const b = s.ctx.writer.transaction(bOps);
      await r.drain(300);
      assert.ok(!r.changes().some((c) => c.after?.['qty'] === '123456'), 'nothing of A while it is open');
      expected.push(...(await a.commit()));
      await b;
      expected.push(...s.model.apply('B', bOps));
      await r.until(() => r.changes().length >= expected.length, `${expected.length} changes of 27 transactions`);
      assert.deepEqual(r.changes().map(show), expected.map(show), 'every change once, in commit order');
      // The reader checked every commit position against the one before (strictly increasing) and through format/parse.
      assert.ok(r.windows.length >= 2, 'T0..T24 were delivered before A began: at least two commits to compare');
    }));

    it('transactions: a transaction arrives whole inside one begin..commit, nothing of it while it is open; a rolled-back one never arrives', { timeout: 120_000 }, withSession(h, async (s) => {
      const r = await s.read(null);
      const expected: Expected[] = [];
      const big = await s.begin('BIG', range(100, 109).map((id) => ins(id, `big ${id}`, id)));
      expected.push(...(await s.commit('X', [ins(1, 'x', 1)])));
      await r.drain(500);
      await big.run([...range(100, 109).map((id) => upd(id, { qty: -id })), ...range(110, 129).map((id) => ins(id, `big ${id}`, id))]);
      const back = await s.begin('ROLLED BACK', [ins(900, 'never', 9), ins(901, 'never', 9)]);
      await back.run([upd(1, { name: 'never' }), del(901)]);
      await back.rollback();
      expected.push(...(await s.commit('Y', [ins(2, 'y', 2), upd(1, { qty: 11 })])));
      await big.run([del(105), ...range(130, 139).map((id) => ins(id, `big ${id}`, id))]);
      await r.drain(300);
      const early = r.changes().filter((c) => Number(c.id) >= 100);
      assert.deepEqual(early.map(show), [], 'nothing of a transaction is delivered while it is open');
      const bigChanges = await big.commit();
      assert.equal(bigChanges.length, 51);
      expected.push(...bigChanges);
      expected.push(...(await s.commit('Z', [ins(3, 'z', 3)])));
      await r.until(() => r.changes().some((c) => c.id === '3'), 'the transaction after the big one');
      assertExactlyOnce(r.windows, expected, 'a 51-change transaction around three small ones and a rolled-back one');
      assert.ok(!r.changes().some((c) => c.id === '900' || c.id === '901' || c.after?.['name'] === 'never'), 'nothing of the rolled-back transaction');
    }));

    it('updates: the before-image carries the old row, the after-image the new; a multi-row UPDATE arrives whole, one change per row', { timeout: 120_000 }, withSession(h, async (s) => {
      const r = await s.read(null);
      const expected: Expected[] = [];
      expected.push(...(await s.commit('load', range(1, 6).map((id) => ins(id, `item "${id}"`, id * 10)))));
      expected.push(...(await s.commit('name', [upd(1, { name: 'renamed, with ünïcode' })])));
      expected.push(...(await s.commit('qty', [upd(2, { qty: -3 })])));
      expected.push(...(await s.commit('twice', [upd(1, { qty: 7 }), upd(1, { name: 'second', qty: 8 })])));
      const statement = await s.commit('statement', [{ op: 'update-range', from: 3, to: 5, set: { qty: 0, name: 'bulk' } }]);
      assert.equal(statement.length, 3);
      expected.push(...statement);
      expected.push(...(await s.commit('after', [upd(6, { qty: 66 })])));
      await r.until(() => r.changes().some((c) => c.id === '6' && c.op === 'update'), 'the update after the multi-row statement');
      assertExactlyOnce(r.windows, expected, 'updates');
      const updates = r.changes().filter((c) => c.op === 'update');
      assert.equal(updates.length, 8);
      for (const u of updates) assert.ok(u.before && u.after, `an update carries both images: ${show(u)}`);
      const bulk = updates.filter((u) => u.after?.['name'] === 'bulk');
      assert.deepEqual(bulk.map((u) => u.id).sort(), ['3', '4', '5'], 'one change per row of the statement');
      assert.deepEqual(bulk.map((u) => u.before?.['qty']).sort(), ['30', '40', '50'], 'each with its own old row');
    }));

    it('deletes: the before-image carries the key (and, for the suite\'s table, the old row)', { timeout: 120_000 }, withSession(h, async (s) => {
      const r = await s.read(null);
      const expected: Expected[] = [];
      expected.push(...(await s.commit('load', range(1, 4).map((id) => ins(id, `d${id}`, -id)))));
      expected.push(...(await s.commit('one', [del(2)])));
      expected.push(...(await s.commit('two', [upd(1, { qty: 100 }), del(1), del(3)])));
      expected.push(...(await s.commit('again', [ins(2, 'back', 2), del(4)])));
      await r.until(() => r.changes().some((c) => c.id === '4' && c.op === 'delete'), 'the last delete');
      assertExactlyOnce(r.windows, expected, 'deletes');
      const deletes = r.changes().filter((c) => c.op === 'delete');
      assert.deepEqual(deletes.map((d) => d.before?.['id']), ['2', '1', '3', '4'], 'each delete names its key');
      assert.ok(deletes.every((d) => d.after === undefined));
    }));

    it('gap-freedom: a transaction that began first and commits last, with later ones committed while it is open, arrives exactly once, also after a restart at any position seen while it was open', { timeout: 180_000 }, withSession(h, async (s) => {
      const r = await s.read(null);
      const expected: Expected[] = [];
      expected.push(...(await s.commit('T0', [ins(1, 'T0', 0)])));
      await r.until(() => r.changes().length === 1, 'T0');
      const before = r.seen.at(-1)!;
      // E began before L and ends while L is open: a trigger source can then deliver E and a commit position while L runs.
      const early = await s.begin('E', [ins(5, 'E', 5)]);
      // L takes its transaction id / row version first, then T1..T4 begin and end while it is open.
      const l = await s.begin('L', [ins(10, 'L', 10)]);
      expected.push(...(await s.commit('T1', [ins(20, 'T1', 20), upd(1, { name: 'T1' })])));
      expected.push(...(await early.commit()));
      const t2 = await s.begin('T2', [ins(30, 'T2', 30)]);
      expected.push(...(await s.commit('T3', [ins(40, 'T3', 40)])));
      await t2.run([ins(31, 'T2 b', 31)]);
      expected.push(...(await t2.commit()));
      expected.push(...(await s.commit('T4', [ins(50, 'T4', 50), upd(20, { qty: -20 })])));
      await r.drain(1_000); // a reader reading while L is open
      await r.until(() => r.changes().some((c) => c.id === '5'), 'E, which ended while L is open');
      // Every position seen while L was open, and the last one before it began (each distinct one once).
      const format = (x: Seen<P>) => `${x.kind} ${s.ctx.source().positions.format(x.position)}`;
      const restartPoints = r.seen.slice(r.seen.indexOf(before)).filter((x, i, all) => all.findIndex((y) => format(y) === format(x)) === i);
      assert.deepEqual(r.changes().filter((c) => c.id === '10').map(show), [], 'nothing of L while it is open');
      assert.ok(restartPoints.some((x) => x.kind === 'commit' && x.changesBefore > 1), 'a commit position was seen while L was open (the one that delivered E)');
      await l.run([ins(11, 'L b', 11), upd(10, { name: 'L c' })]);
      expected.push(...(await l.commit()));
      expected.push(...(await s.commit('S', [ins(99, 'S', 99)])));
      await r.until(() => r.changes().some((c) => c.id === '99'), 'every change of E, L and T1..T4, then S');
      assertExactlyOnce(r.windows, expected, 'one reader through the long transaction');
      await r.close();

      // A reader restarted at any position seen while L was open still gets L, once.
      const sentinel = await s.commit('S2', [ins(98, 'S2', 98)]);
      const afterL = expected.filter((e) => e.tx === 'L');
      for (const at of restartPoints) {
        const again = await s.read(at.position);
        await again.until(() => again.changes().some((c) => c.id === '98'), `after a restart at ${describePosition(s.ctx, at)}`);
        const due = [...r.changesAfter(at).map(show), ...sentinel.map(show)];
        assert.deepEqual(again.changes().map(show).sort(), due.sort(), `restart at ${describePosition(s.ctx, at)}: exactly what came after it, once`);
        for (const c of afterL) assert.ok(due.includes(show(c)), `L's ${show(c)} comes after ${describePosition(s.ctx, at)}`);
        await again.close();
      }
    }));

    it('restart: a new source opened at the position of commit k delivers exactly the transactions after k; open(null) delivers what was written after setup', { timeout: 180_000 }, withSession(h, async (s) => {
      const txs: Expected[][] = [];
      const write = async (i: number) => txs.push(await s.commit(`T${i}`, [ins(i * 10, `T${i}`, i), ...(i > 1 ? [upd(10, { qty: i })] : [])]));
      await write(1); // before anything is opened
      const r = await s.read(null);
      const positions: Seen<P>[] = [];
      for (let i = 1; i <= 5; i++) {
        if (i > 1) await write(i);
        await r.until(() => r.changes().some((c) => c.id === String(i * 10)), `T${i}`);
        positions.push(r.seen.filter((x) => x.kind === 'commit').at(-1)!);
      }
      assert.deepEqual(r.changes().map(show), txs.flat().map(show), 'open(null) after setup: T1 (written before open) to T5, once');
      r.ack(positions[0]!.position); // T1 is applied: a consumer restarts at or after what it acknowledged
      await r.close();
      await write(6);
      for (let k = 1; k <= 5; k++) {
        const again = await s.read(positions[k - 1]!.position);
        await again.until(() => again.changes().some((c) => c.id === '60'), `T${k + 1}..T6 after commit ${k}`);
        assert.deepEqual(again.changes().map(show), txs.slice(k).flat().map(show), `from commit ${k}: exactly T${k + 1}..T6, in order, once`);
        await again.close();
      }
    }));

    it('no echo: a transaction written the way branchline applies is never delivered, the transactions around it are', { timeout: 120_000 }, withSession(h, async (s) => {
      const r = await s.read(null);
      const expected: Expected[] = [];
      expected.push(...(await s.commit('A', [ins(1, 'a', 1), ins(2, 'b', 2)])));
      const echoOps: ContractOp[] = [ins(3, 'from branchline', 3), upd(1, { name: 'by branchline' }), del(2)];
      await s.ctx.writer.transactionAsBranchline(echoOps);
      s.model.apply('branchline', echoOps); // at the database, not in the stream
      expected.push(...(await s.commit('C', [ins(4, 'c', 4), upd(1, { qty: 10 }), upd(3, { qty: 30 })])));
      await r.until(() => r.changes().some((c) => c.id === '4'), 'the transaction after branchline\'s');
      assertExactlyOnce(r.windows, expected, 'around a transaction of branchline');
      assert.ok(!r.changes().some((c) => c.op === 'insert' && c.id === '3'), 'branchline\'s insert is not delivered');
      assert.ok(!r.changes().some((c) => c.op === 'delete'), 'branchline\'s delete is not delivered');
    }));
  });
}

/** One test: a fresh context from setup(), everything it opened closed, then disposed. */
function withSession<P>(h: ContractHarness<P>, fn: (s: Session<P>) => Promise<void>): () => Promise<void> {
  return async () => {
    const ctx = await h.setup();
    const s = new Session(ctx);
    try {
      await fn(s);
    } finally {
      await s.end();
      await ctx.dispose();
    }
  };
}

interface Tx {
  run(ops: readonly ContractOp[]): Promise<void>;
  /** Commits; returns the changes the transaction must produce. */
  commit(): Promise<Expected[]>;
  rollback(): Promise<void>;
}

class Session<P> {
  readonly model = new ItemModel();
  private readonly readers: ContractReader<P>[] = [];
  private readonly open = new Set<OpenTransaction>();

  constructor(readonly ctx: ContractContext<P>) {}

  async read(after: P | null): Promise<ContractReader<P>> {
    const source = this.ctx.source();
    const reader = new ContractReader(await source.open(after), source.positions, this.ctx.table, after);
    this.readers.push(reader);
    return reader;
  }

  async commit(tx: string, ops: readonly ContractOp[]): Promise<Expected[]> {
    await this.ctx.writer.transaction(ops);
    return this.model.apply(tx, ops);
  }

  async begin(tx: string, ops: readonly ContractOp[]): Promise<Tx> {
    const t = await this.ctx.writer.begin(ops);
    this.open.add(t);
    const all = [...ops];
    return {
      run: async (more) => {
        await t.run(more);
        all.push(...more);
      },
      commit: async () => {
        await t.commit();
        this.open.delete(t);
        return this.model.apply(tx, all);
      },
      rollback: async () => {
        await t.rollback();
        this.open.delete(t);
      },
    };
  }

  async end(): Promise<void> {
    for (const t of this.open) await t.rollback().catch(() => undefined);
    for (const r of this.readers) await r.close().catch(() => undefined);
  }
}

function describePosition<P>(ctx: ContractContext<P>, s: Seen<P>): string {
  return `${s.kind} position ${ctx.source().positions.format(s.position)}`;
}

const ins = (id: number, name: string, qty: number): ContractOp => ({ op: 'insert', row: { id, name, qty } satisfies ContractItem });
const upd = (id: number, set: { name?: string; qty?: number }): ContractOp => ({ op: 'update', id, set });
const del = (id: number): ContractOp => ({ op: 'delete', id });
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
