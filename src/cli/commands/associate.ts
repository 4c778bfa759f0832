import { readFile } from 'node:fs/promises';
import type pg from 'pg';
import {
  existingKeys,
  insertAssociations,
  listAssociations,
  listMissing,
  type Association,
  type InsertOutcome,
  type MissingAssociation,
  type NewAssociation,
} from '../../associate/association-store.js';
import { formatTable } from '../../core/change.js';
import { loadConfig, selectStores, type Config } from '../../config/load.js';
import { BranchlineError, ProblemsError, type Problem } from '../../core/errors.js';
import type { Entity, EntitySet } from '../../mapping/entities.js';
import { EXIT, formatAgo, table } from '../output.js';
import type { GlobalArgs } from './basic.js';
import { parseCsv, type CsvField } from './csv.js';
import { defaultActor, formatTime, inTransaction, loadEntities, out, plural, storeFilter, usage, withHq } from './hq-commands.js';

/**
 * `associate` and `associations`: recording which HQ key a store's code
 * stands for, and listing them with the codes parked changes wait for. Like
 * the other HQ commands (hq-commands.ts) they talk to HQ only; the running
 * agent applies the parked changes an association frees.
 */

export type AssociateArgs = GlobalArgs & {
  store?: string | string[];
  entity?: string;
  code?: string;
  'hq-key'?: string;
  import?: string;
  by?: string;
};
export type AssociationsArgs = GlobalArgs & { store?: string[]; entity?: string; missing: boolean; json: boolean };

function entitiesFileName(config: Config, entities: EntitySet): string {
  return entities.file ?? `${config.mappingsDir}/entities.yml`;
}

function unknownEntity(config: Config, entities: EntitySet, name: string): Problem {
  const declared = [...entities.byName.keys()].sort();
  return {
    code: 'BL-P001',
    message: entities.file
      ? `entity "${name}" is not declared in ${entities.file}.`
      : `entity "${name}" is not declared: ${entitiesFileName(config, entities)} does not exist.`,
    hint: declared.length ? `Declared entities: ${declared.join(', ')}.` : 'Declare it in entities.yml in the mapping directory (see docs/mapping.md).',
  };
}

/** The keys of `keys` that are not in the entity's `references` column at HQ (none when it has no references). */
async function missingKeys(db: pg.Client, entity: Entity, keys: readonly string[]): Promise<Set<string>> {
  const ref = entity.references;
  if (!ref || keys.length === 0) return new Set();
  let found: Set<string>;
  try {
    found = await existingKeys(db, ref.table, ref.column, keys);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== '42P01' && code !== '42703' && code !== '3F000') throw e;
    throw new BranchlineError(
      {
        code: 'BL-M020',
        message: `entity "${entity.name}" references ${formatTable(ref.table)}.${ref.column}, which does not exist at HQ.`,
        hint: 'Correct "references" in entities.yml: it names the HQ table.column the keys must exist in, e.g. cost_center.id.',
        location: entity.location,
      },
      { cause: e },
    );
  }
  return new Set(keys.filter((k) => !found.has(k)));
}

function describeCode(a: { storeCode: string; branchCode: string }): string {
  return `code ${a.branchCode} of store ${a.storeCode}`;
}

function describeKey(entity: string, hqKey: string): string {
  return `HQ ${entity} ${hqKey}`;
}

/** Parked changes (status parked) waiting for any of these codes. */
async function countWaiting(db: pg.ClientBase, rows: readonly NewAssociation[]): Promise<number> {
  if (rows.length === 0) return 0;
  const r = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM branchline.parked p
       JOIN unnest($1::text[], $2::text[], $3::text[]) AS w(store_code, entity, branch_code)
         ON p.store_code = w.store_code AND p.entity = w.entity AND p.branch_code = w.branch_code
      WHERE p.status = 'parked'`,
    [rows.map((x) => x.storeCode), rows.map((x) => x.entity), rows.map((x) => x.branchCode)],
  );
  return Number(r.rows[0]?.n ?? 0);
}

function waitingSentence(n: number, them: 'it' | 'them'): string {
  return n === 0
    ? `No parked change was waiting for ${them}.\n`
    : `${plural(n, 'parked change')} ${n === 1 ? 'was' : 'were'} waiting for ${them}; a running agent (\`branchline run\`) applies ${n === 1 ? 'it' : 'them'} within a few seconds.\n`;
}

const CONFLICT_HINT =
  'branchline never changes an association (HQ rows may already hold its key): check the code and the key; `branchline associations` lists the existing ones.';

/** A unique violation: someone else associated the code or key between our check and our insert. */
function isUniqueViolation(e: unknown): boolean {
  return (e as { code?: string })?.code === '23505';
}

const RACE = new BranchlineError({
  code: 'BL-P003',
  message: 'someone else associated one of these codes or keys at the same moment; nothing was changed.',
  hint: 'Run the command again: it then says which association is already there.',
});

/** `associate`: one association from the options, or many from a CSV file (--import). */
export async function associateCommand(args: AssociateArgs): Promise<number> {
  const stores = args.store === undefined ? [] : Array.isArray(args.store) ? args.store : [args.store];
  if (stores.length > 1) throw usage('--store is given more than once; associate acts on one store.', 'Run it once per store, or import a CSV file with a store_code column.');
  const by = args.by ?? defaultActor();
  if (by.trim() === '') throw usage('--by is empty.', 'Name who sets the association, or leave --by out to record user@host.');
  const single = ['entity', 'code', 'hq-key'] as const;
  if (args.import !== undefined) {
    const mixed = single.filter((o) => args[o] !== undefined);
    if (mixed.length)
      throw usage(
        `--import cannot go with ${mixed.map((o) => `--${o}`).join(', ')}.`,
        'Give either --import <file.csv>, or --entity, --code and --hq-key for one association.',
      );
    return importAssociations(args.config, args.import, stores[0], by);
  }
  const missing = single.filter((o) => args[o] === undefined);
  if (missing.length)
    throw usage(
      `missing ${missing.map((o) => `--${o}`).join(', ')}.`,
      'Give --store, --entity, --code and --hq-key for one association, or --import <file.csv> for many.',
    );
  if (stores.length === 0) throw usage('missing --store.', 'Name the store whose code this is, e.g. --store S001.');
  for (const o of single) if (String(args[o]).trim() === '') throw usage(`--${o} is empty.`, 'Give the value, quoted if it holds spaces.');
  return associateOne(args.config, {
    storeCode: stores[0]!,
    entity: String(args.entity),
    branchCode: String(args.code),
    hqKey: String(args['hq-key']),
  }, by);
}

async function associateOne(configFile: string, a: NewAssociation, by: string): Promise<number> {
  const config = await loadConfig(configFile);
  selectStores(config, [a.storeCode]);
  const entities = await loadEntities(config);
  const entity = entities.byName.get(a.entity);
  if (!entity) throw new BranchlineError(unknownEntity(config, entities, a.entity));
  return withHq(config, 'branchline-associate', async (db) => {
    if ((await missingKeys(db, entity, [a.hqKey])).size) throw new BranchlineError(notReferenced(entity, a.hqKey));
    let waiting = 0;
    let outcome: InsertOutcome;
    try {
      outcome = await inTransaction(db, async () => {
        const [o] = await insertAssociations(db, [a], 'manual', by);
        if (o?.kind === 'code-taken')
          throw new BranchlineError({
            code: 'BL-P003',
            message: `${describeCode(a)} is already associated with ${describeKey(a.entity, o.hqKey)}.`,
            hint: CONFLICT_HINT,
          });
        if (o?.kind === 'key-taken')
          throw new BranchlineError({
            code: 'BL-P003',
            message: `${describeKey(a.entity, a.hqKey)} is already associated with ${describeCode({ storeCode: a.storeCode, branchCode: o.branchCode })}.`,
            hint: CONFLICT_HINT,
          });
        waiting = await countWaiting(db, [a]);
        return o!;
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw RACE;
      throw e;
    }
    if (outcome.kind === 'unchanged') {
      out(`${describeCode(a)} is already associated with ${describeKey(a.entity, a.hqKey)}; nothing changed.\n`);
      if (waiting > 0)
        out(`${plural(waiting, 'parked change')} still wait${waiting === 1 ? 's' : ''} for it; an agent (\`branchline run\`) applies them once it runs.\n`);
      return EXIT.ok;
    }
    out(`associated ${describeCode(a)} with ${describeKey(a.entity, a.hqKey)}.\n`);
    out(waitingSentence(waiting, 'it'));
    return EXIT.ok;
  });
}

function notReferenced(entity: Entity, hqKey: string): Problem {
  const ref = entity.references!;
  return {
    code: 'BL-P002',
    message: `${describeKey(entity.name, hqKey)} does not exist: ${formatTable(ref.table)} has no row with ${ref.column} ${hqKey}.`,
    hint: `Check the key, or create that ${entity.name} at HQ first.`,
  };
}

// ---------------------------------------------------------------- CSV import

const COLUMNS = ['store_code', 'entity', 'branch_code', 'hq_key'] as const;
type Column = (typeof COLUMNS)[number];
const HEADER_HINT = 'The first line names the columns entity,branch_code,hq_key (and store_code, optional), in any order.';

interface ImportLine extends NewAssociation {
  readonly line: number;
  readonly at: Record<Column, CsvField | null>;
}

async function importAssociations(configFile: string, file: string, defaultStore: string | undefined, by: string): Promise<number> {
  const config = await loadConfig(configFile);
  if (defaultStore !== undefined) selectStores(config, [defaultStore]);
  const entities = await loadEntities(config);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new BranchlineError({
      code: 'BL-P004',
      message: `cannot read the association file ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'}).`,
      hint: 'Check the file name and that this user may read it.',
    });
  }
  const problems: Problem[] = [];
  const problem = (code: Problem['code'], line: number, column: number, message: string, hint?: string) =>
    problems.push({ code, message, ...(hint ? { hint } : {}), location: { file, line, column } });
  const fail = (): never => {
    problems.sort((a, b) => a.location!.line - b.location!.line || a.location!.column - b.location!.column);
    throw new ProblemsError(`${file} has problems; nothing was imported.`, problems);
  };

  const parsed = parseCsv(text);
  for (const p of parsed.problems) problem('BL-P004', p.line, p.column, p.message, p.hint);
  const [header, ...body] = parsed.records;
  if (!header) {
    if (!problems.length) problem('BL-P004', 1, 1, 'the file is empty.', `${HEADER_HINT} One association per line follows.`);
    return fail();
  }
  const index = new Map<Column, number>();
  header.fields.forEach((f, i) => {
    const name = f.value.trim().toLowerCase();
    if (!(COLUMNS as readonly string[]).includes(name)) {
      problem('BL-P004', f.line, f.column, `unknown column "${f.value}" in the header.`, HEADER_HINT);
    } else if (index.has(name as Column)) {
      problem('BL-P004', f.line, f.column, `column "${name}" appears twice in the header.`, HEADER_HINT);
    } else {
      index.set(name as Column, i);
    }
  });
  const absent = COLUMNS.filter((c) => c !== 'store_code' && !index.has(c));
  if (absent.length)
    problem('BL-P004', header.line, 1, `the header has no ${absent.map((c) => `"${c}"`).join(', ')} column${absent.length > 1 ? 's' : ''}.`, HEADER_HINT);
  if (!index.has('store_code') && defaultStore === undefined && !absent.length)
    problem('BL-P004', header.line, 1, 'the file has no store_code column and no --store was given.', 'Add --store <code>, or a store_code column.');
  if (problems.some((p) => p.location!.line === header.line)) return fail();
  if (body.length === 0 && problems.length === 0) problem('BL-P004', header.line, 1, 'the file has a header but no associations.', 'Add one line per association after the header.');

  // Each line on its own: shape, store, entity.
  const lines: ImportLine[] = [];
  for (const r of body) {
    if (r.fields.length !== header.fields.length) {
      problem(
        'BL-P004',
        r.line,
        1,
        `this line has ${plural(r.fields.length, 'value')}, the header ${header.fields.length}.`,
        'Quote a value that holds a comma: "a,b".',
      );
      continue;
    }
    const at = Object.fromEntries(COLUMNS.map((c) => [c, index.has(c) ? r.fields[index.get(c)!]! : null])) as Record<Column, CsvField | null>;
    let ok = true;
    for (const c of COLUMNS) {
      const f = at[c];
      if (!f) continue;
      if (f.value.trim() === '') {
        if (c === 'store_code' && defaultStore !== undefined) continue;
        problem(
          'BL-P004',
          f.line,
          f.column,
          c === 'store_code' ? 'the store_code is empty and no --store was given.' : `the ${c} is empty.`,
          c === 'store_code' ? 'Fill it in, or add --store <code> for the lines without one.' : undefined,
        );
        ok = false;
      } else if (!f.quoted && f.value !== f.value.trim()) {
        problem(
          'BL-P004',
          f.line,
          f.column,
          `the ${c} "${f.value}" starts or ends with a space.`,
          'Remove the spaces around the commas, or quote the value if the spaces belong to it.',
        );
        ok = false;
      }
    }
    if (!ok) continue;
    const storeField = at.store_code && at.store_code.value.trim() !== '' ? at.store_code : null;
    const storeCode = storeField ? storeField.value : defaultStore!;
    if (storeField && !config.stores.some((s) => s.code === storeCode)) {
      problem('BL-P001', storeField.line, storeField.column, `store "${storeCode}" is not in ${config.file}.`, `Configured stores: ${config.stores.map((s) => s.code).join(', ')}.`);
      ok = false;
    }
    const entityField = at.entity!;
    if (!entities.byName.has(entityField.value)) {
      const p = unknownEntity(config, entities, entityField.value);
      problem(p.code, entityField.line, entityField.column, p.message, p.hint);
      ok = false;
    }
    if (!ok) continue;
    lines.push({ line: r.line, at, storeCode, entity: entityField.value, branchCode: at.branch_code!.value, hqKey: at.hq_key!.value });
  }

  // Lines against each other: a code has one key and a key one code, per store and entity.
  const byCode = new Map<string, ImportLine>();
  const byKey = new Map<string, ImportLine>();
  const unique: ImportLine[] = [];
  for (const l of lines) {
    const codeId = JSON.stringify([l.storeCode, l.entity, l.branchCode]);
    const keyId = JSON.stringify([l.storeCode, l.entity, l.hqKey]);
    const sameCode = byCode.get(codeId);
    const sameKey = byKey.get(keyId);
    if (sameCode && sameCode.hqKey === l.hqKey) continue; // the same association twice
    const hint = 'A code has one HQ key, and an HQ key one code, per store and entity.';
    if (sameCode) {
      problem('BL-P003', l.line, l.at.hq_key!.column, `${describeCode(l)} is given ${describeKey(l.entity, l.hqKey)} here, but ${l.entity} ${sameCode.hqKey} on line ${sameCode.line}.`, hint);
      continue;
    }
    if (sameKey) {
      problem('BL-P003', l.line, l.at.hq_key!.column, `${describeKey(l.entity, l.hqKey)} is given to ${describeCode(l)} here, but to code ${sameKey.branchCode} on line ${sameKey.line}.`, hint);
      continue;
    }
    byCode.set(codeId, l);
    byKey.set(keyId, l);
    unique.push(l);
  }

  return withHq(config, 'branchline-associate', async (db) => {
    // Keys that must exist in the entity's `references` table.
    const byEntity = new Map<string, ImportLine[]>();
    for (const l of unique) byEntity.set(l.entity, [...(byEntity.get(l.entity) ?? []), l]);
    const candidates: ImportLine[] = [];
    for (const [name, ls] of byEntity) {
      const entity = entities.byName.get(name)!;
      const missing = await missingKeys(db, entity, [...new Set(ls.map((l) => l.hqKey))]);
      for (const l of ls) {
        if (!missing.has(l.hqKey)) {
          candidates.push(l);
          continue;
        }
        const p = notReferenced(entity, l.hqKey);
        problem(p.code, l.line, l.at.hq_key!.column, p.message, p.hint);
      }
    }
    candidates.sort((a, b) => a.line - b.line);
    // All or nothing: insert in one transaction, roll back on any problem.
    let counts = { created: 0, unchanged: 0, waiting: 0 };
    try {
      counts = await inTransaction(db, async () => {
        const outcomes = await insertAssociations(db, candidates, 'import', by);
        const created: ImportLine[] = [];
        outcomes.forEach((o, i) => {
          const l = candidates[i]!;
          if (o.kind === 'created') created.push(l);
          else if (o.kind === 'code-taken')
            problem('BL-P003', l.line, l.at.branch_code!.column, `${describeCode(l)} is already associated with ${describeKey(l.entity, o.hqKey)}.`, 'An association is never changed; correct the line or leave it out.');
          else if (o.kind === 'key-taken')
            problem(
              'BL-P003',
              l.line,
              l.at.hq_key!.column,
              `${describeKey(l.entity, l.hqKey)} is already associated with ${describeCode({ storeCode: l.storeCode, branchCode: o.branchCode })}.`,
              'An association is never changed; correct the line or leave it out.',
            );
        });
        if (problems.length) fail();
        return { created: created.length, unchanged: candidates.length - created.length + (lines.length - unique.length), waiting: await countWaiting(db, created) };
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw RACE;
      throw e;
    }
    out(`imported ${file}: ${plural(counts.created, 'association')} created, ${counts.unchanged} already there.\n`);
    out(waitingSentence(counts.waiting, 'them'));
    return EXIT.ok;
  });
}

// ---------------------------------------------------------------- associations

/** `associations`: the associations, and the codes parked changes wait for. */
export async function associationsCommand(args: AssociationsArgs): Promise<number> {
  const config = await loadConfig(args.config);
  const stores = storeFilter(config, args.store);
  if (args.entity !== undefined) {
    const entities = await loadEntities(config);
    if (!entities.byName.has(args.entity)) throw new BranchlineError(unknownEntity(config, entities, args.entity));
  }
  const { associations, missing } = await withHq(config, 'branchline-associations', async (db) => {
    const a: Association[] = [];
    const m: MissingAssociation[] = [];
    for (const storeCode of stores ?? [undefined]) {
      const filter = { ...(storeCode !== undefined ? { storeCode } : {}), ...(args.entity !== undefined ? { entity: args.entity } : {}) };
      if (!args.missing) a.push(...(await listAssociations(db, filter)));
      m.push(...(await listMissing(db, filter)));
    }
    return { associations: a, missing: m };
  });
  const byStore = <T extends { storeCode: string }>(xs: T[]) => xs.sort((x, y) => (x.storeCode < y.storeCode ? -1 : x.storeCode > y.storeCode ? 1 : 0));
  byStore(associations);
  byStore(missing);
  if (args.json) {
    const missingJson = missing.map((x) => ({ ...x, firstSeen: x.firstSeen.toISOString() }));
    const json = args.missing
      ? { missing: missingJson }
      : { associations: associations.map((x) => ({ ...x, createdAt: x.createdAt.toISOString() })), missing: missingJson };
    out(JSON.stringify(json, null, 2) + '\n');
    return EXIT.ok;
  }
  if (!args.missing) {
    out(
      associations.length
        ? table(
            ['STORE', 'ENTITY', 'CODE', 'HQ KEY', 'ORIGIN', 'CREATED BY', 'CREATED'],
            associations.map((x) => [x.storeCode, x.entity, x.branchCode, x.hqKey, x.origin, x.createdBy ?? '-', formatTime(x.createdAt)]),
          )
        : 'No associations.\n',
    );
    out('\n');
  }
  if (missing.length) {
    out('Waiting for an association (set it with `branchline associate`):\n');
    out(
      table(
        ['STORE', 'ENTITY', 'CODE', 'WAITING', 'FIRST SEEN'],
        missing.map((x) => [x.storeCode, x.entity, x.branchCode, String(x.waiting), formatAgo(x.firstSeen.toISOString())]),
      ),
    );
  } else {
    out('No parked change waits for an association.\n');
  }
  return EXIT.ok;
}
