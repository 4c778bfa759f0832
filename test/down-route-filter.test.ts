import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { downRowFilter } from '../src/agent/down-route-filter.js';
import type { LoadedMappingFile } from '../src/mapping/load.js';
import type { Route } from '../src/mapping/load.js';

const file = (table: string, route: Route, extra: { enabled?: boolean; direction?: 'up' | 'down' } = {}) =>
  ({ file: `${table}.yml`, spec: { enabled: extra.enabled ?? true, direction: extra.direction ?? 'down', route, source: { schema: 'public', table } } }) as unknown as LoadedMappingFile;

describe('which change-log rows a store\'s down reader need not read', () => {
  it('a table every mapping routes by a column is filtered by those columns', () => {
    const f = downRowFilter([file('store_price', { kind: 'column', column: 'store_code' }), file('product', { kind: 'all' })], 'S1');
    assert.deepEqual(f, { store: 'S1', routed: [{ schema: 'public', table: 'store_price' }], columns: [{ table: { schema: 'public', table: 'store_price' }, column: 'store_code' }] });
  });

  it('one mapping of a table for every store, or listing this store, keeps the whole table', () => {
    assert.equal(downRowFilter([file('t', { kind: 'column', column: 'store_code' }), file('t', { kind: 'all' })], 'S1'), null);
    assert.equal(downRowFilter([file('t', { kind: 'column', column: 'store_code' }), file('t', { kind: 'stores', stores: ['S0', 'S1'] })], 'S1'), null);
  });

  it('two column routes of one table: a row is read when either names the store; a list without the store reads none of it', () => {
    const f = downRowFilter([file('t', { kind: 'column', column: 'a' }), file('t', { kind: 'column', column: 'b' }), file('u', { kind: 'stores', stores: ['S2'] })], 'S1');
    assert.deepEqual(f?.routed.map((t) => t.table), ['t', 'u']);
    assert.deepEqual(f?.columns.map((c) => `${c.table.table}.${c.column}`), ['t.a', 't.b']);
  });

  it('disabled and up files do not count; nothing routed is no filter', () => {
    assert.equal(downRowFilter([file('t', { kind: 'column', column: 'a' }, { enabled: false })], 'S1'), null);
    assert.equal(downRowFilter([file('t', { kind: 'column', column: 'a' }, { direction: 'up' })], 'S1'), null);
    assert.equal(downRowFilter([], 'S1'), null);
  });
});
