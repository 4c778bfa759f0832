import type pg from 'pg';
import copyStreams from 'pg-copy-streams';
import type { PlannedStatement } from './plan.js';

/**
 * Runs a planned statement on `db`: its SQL with its parameters, or for a
 * COPY its rows sent as one CopyData message. Resolves to the rows it
 * wrote (rowCount); rejects with the server's error as pg gives it.
 */
export function runStatement(db: pg.ClientBase, st: PlannedStatement): Promise<number> {
  if (st.copy === undefined) return db.query(st.sql, st.params).then((res) => res.rowCount ?? 0);
  const data = st.copy;
  return new Promise<number>((resolve, reject) => {
    const stream = db.query(copyStreams.from(st.sql));
    stream.on('error', reject);
    stream.on('finish', () => resolve(stream.rowCount));
    stream.end(data);
  });
}
