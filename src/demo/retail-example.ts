/**
 * The example retail ERP shipped in `mappings/retail-example/`: where it is,
 * its two schemas, and which store tables go up to HQ.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findExampleDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // src/demo/ when run from source; dist/src/demo/ when run from a build.
  const candidates = [
    path.resolve(here, '../../mappings/retail-example'),
    path.resolve(here, '../../../mappings/retail-example'),
  ];
  return candidates.find((dir) => existsSync(path.join(dir, 'store.sql'))) ?? candidates[0]!;
}

/** Absolute path of `mappings/retail-example` (mapping files, store.sql, hq.sql). */
export const RETAIL_EXAMPLE_DIR: string = findExampleDir();

/** DDL of one store's database (schema public): run once on an empty database. */
export function storeSchemaSql(): Promise<string> {
  return readFile(path.join(RETAIL_EXAMPLE_DIR, 'store.sql'), 'utf8');
}

/** DDL of the HQ database (schema public): run once on an empty database. */
export function hqSchemaSql(): Promise<string> {
  return readFile(path.join(RETAIL_EXAMPLE_DIR, 'hq.sql'), 'utf8');
}

/**
 * Store tables (schema public) that have a mapping file and go up to HQ,
 * parents first: a referenced table comes before the tables that refer to it.
 */
export const UP_TABLES = [
  'customer',
  'sale',
  'sale_line',
  'fiscal_coupon',
  'fiscal_coupon_item',
  'receivable',
  'z_closing',
  'stock',
] as const;

export type UpTable = (typeof UP_TABLES)[number];

/**
 * The example's manual associations (`associations.csv`: the stores' cost
 * center codes and HQ's ids), set for each of `storeCodes` at HQ, as
 * `branchline associate --import` would. Needs `install` first.
 */
export async function importExampleAssociations(hqUrl: string, storeCodes: readonly string[]): Promise<void> {
  const { connect } = await import('../db/connect.js');
  const { insertAssociations } = await import('../associate/association-store.js');
  const lines = (await readFile(path.join(RETAIL_EXAMPLE_DIR, 'associations.csv'), 'utf8')).split(/\r?\n/).filter((l) => l.trim() !== '');
  const rows = lines.slice(1).map((l) => l.split(','));
  const db = await connect(hqUrl, { role: 'HQ', applicationName: 'branchline-example' });
  try {
    for (const storeCode of storeCodes) {
      await insertAssociations(
        db,
        rows.map(([entity, branchCode, hqKey]) => ({ storeCode, entity: entity!, branchCode: branchCode!, hqKey: hqKey! })),
        'import',
        'retail example',
      );
    }
  } finally {
    await db.end();
  }
}
