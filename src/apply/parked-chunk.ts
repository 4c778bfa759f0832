import type { TargetOp } from '../core/target-op.js';
import type { Resolution } from '../associate/resolver.js';
import { behindReason, changeJson, missingReason, ParkedRows, parkRecord, rowKeyText, type ChangeOrigin, type ParkRecord } from '../pipeline/parking.js';

/** Writing parked changes at HQ, and taking a chunk's unresolved changes out of it. */

export const PARK_SQL = `INSERT INTO branchline.parked (pipeline, store_code, mapping, target_table, row_keys, reason_code, reason, entity, branch_code, change,
                                 source_position, source_xid, source_commit_time)
  SELECT $1, $2, e.v->>'mapping', e.v->>'target_table', ARRAY(SELECT jsonb_array_elements_text(e.v->'row_keys')), e.v->>'reason_code', e.v->>'reason',
         e.v->>'entity', e.v->>'branch_code', e.v->'change', e.v->>'source_position', (e.v->>'source_xid')::bigint, (e.v->>'source_commit_time')::timestamptz
    FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS e(v, n)
   ORDER BY e.n`;

/** Park records as one JSON array (one parameter, however many). */
export function parksJson(parks: readonly ParkRecord[]): string {
  return `[${parks
    .map(
      (r) =>
        `{"mapping":${JSON.stringify(r.mapping)},"target_table":${JSON.stringify(`${r.target.schema}.${r.target.table}`)},"row_keys":${JSON.stringify(r.rowKeys)},` +
        `"reason_code":${JSON.stringify(r.reasonCode)},"reason":${JSON.stringify(r.reason)},"entity":${JSON.stringify(r.entity)},"branch_code":${JSON.stringify(r.branchCode)},` +
        `"change":${changeJson(r.change)},"source_position":${JSON.stringify(r.position)},"source_xid":${r.xid ?? 'null'},"source_commit_time":${r.commitTime ? JSON.stringify(r.commitTime.toISOString()) : 'null'}}`,
    )
    .join(',')}]`;
}

/** The store-side row keys an operation touches (its key, and a move's old key). */
export function opRowKeys(op: TargetOp): string[] {
  if (op.kind === 'ignore' || op.kind === 'delete-where') return [];
  return op.kind === 'move' ? [rowKeyText(op.key), rowKeyText(op.from)] : [rowKeyText(op.key)];
}

/**
 * The chunk without the changes that cannot go now: a change (all its
 * operations) with a missing association is parked, and so is every later
 * change in the chunk to a row it touches, behind it.
 */
export function parkUnresolved(
  original: readonly TargetOp[],
  resolution: Resolution,
  origins: readonly (ChangeOrigin | undefined)[],
): { ops: TargetOp[]; parks: ParkRecord[] } {
  if (resolution.unresolved.length === 0) return { ops: resolution.ops as TargetOp[], parks: [] };
  const why = new Map<ChangeOrigin, { entity: string; code: string }>();
  for (const u of resolution.unresolved) {
    const o = origins[u.index];
    if (!o) throw new Error(`internal: operation ${u.index} has an association but no origin`);
    if (!why.has(o)) why.set(o, { entity: u.entity, code: u.code });
  }
  // Row keys of each origin, from the operations as the mapping made them (store codes).
  const keysOf = new Map<ChangeOrigin, string[]>();
  original.forEach((op, i) => {
    const o = origins[i];
    if (!o) return;
    const list = keysOf.get(o) ?? [];
    for (const k of opRowKeys(op)) if (!list.includes(k)) list.push(k);
    keysOf.set(o, list);
  });
  const blocked = new ParkedRows(); // rows parked in this chunk
  const parked = new Set<ChangeOrigin>();
  const parks: ParkRecord[] = [];
  const ops: TargetOp[] = [];
  for (let i = 0; i < original.length; i++) {
    const o = origins[i];
    if (o && !parked.has(o)) {
      const keys = keysOf.get(o) ?? [];
      // Behind an earlier parked change of its row first (it waits for that one), whatever else it lacks.
      const behind = keys.some((k) => blocked.has(o.mapping.name, k));
      const missing = behind ? undefined : why.get(o);
      if (missing || behind) {
        parked.add(o);
        blocked.add(o.mapping.name, keys);
        parks.push(
          missing
            ? parkRecord(o, keys, missingReason(o.mapping.name, o.mapping.target.table, missing.entity, missing.code), i)
            : parkRecord(o, keys, behindReason(o.mapping.name), i),
        );
      }
    }
    if (o && parked.has(o)) continue;
    const op = resolution.ops[i];
    if (op) ops.push(op);
  }
  return { ops, parks };
}
