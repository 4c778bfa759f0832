import { Type, type Static } from '@sinclair/typebox';
import { Ajv, type ValidateFunction } from 'ajv';
import type { TableId } from '../core/change.js';
import type { Problem, SourceLocation } from '../core/errors.js';
import { schemaProblems, YamlDoc } from '../config/yaml-doc.js';
import { sortProblems, tooLarge } from './problems.js';

/**
 * The kinds of record whose codes differ between a store and HQ (customer,
 * cost center, product, ...), declared once per mapping directory in
 * `entities.yml`. A mapping column names one with `associate(entity, code)`.
 */
export const ENTITIES_FILE = 'entities.yml';

const QUALIFIED = '^[A-Za-z_][A-Za-z0-9_$]*(\\.[A-Za-z_][A-Za-z0-9_$]*)?$';

const EntitySchema = Type.Object(
  {
    kind: Type.Union([Type.Literal('allocate'), Type.Literal('manual')], {
      description:
        'allocate: a code HQ has not seen gets a new HQ key from `sequence` the first time it arrives (e.g. a customer created at a store). manual: a person states the HQ key (`branchline associate`); rows that need a missing one are parked until then.',
    }),
    sequence: Type.Optional(
      Type.String({
        pattern: QUALIFIED,
        description: 'allocate only: the HQ sequence new keys come from, e.g. customer_id_seq (for an identity column: pg_get_serial_sequence(\'customer\', \'id\')).',
      }),
    ),
    store_sequence: Type.Optional(
      Type.String({
        pattern: QUALIFIED,
        description:
          'allocate only, for down mappings: the STORE sequence a store takes its own code from when HQ hands down a record the store has never seen (e.g. a customer registered at another store), e.g. customer_id_seq.',
      }),
    ),
    references: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z_][A-Za-z0-9_$]*(\\.[A-Za-z_][A-Za-z0-9_$]*){1,2}$',
        description: 'manual only, optional: the HQ table.column the keys must exist in, e.g. cost_center.id; `branchline associate` refuses keys that are not there.',
      }),
    ),
    description: Type.Optional(Type.String({ description: 'Free text for people reading the file.' })),
  },
  { additionalProperties: false },
);

export const EntitiesFileSchema = Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_]{0,62}$' }), EntitySchema, {
  // Without it a name outside the pattern (`Customer`, `__proto__`, the empty key YAML's `null:` gives) passed unchecked.
  additionalProperties: false,
  title: 'branchline entities file',
  description: 'The kinds of record associated between store codes and HQ keys: name -> {kind, sequence | references}. See docs/mapping.md.',
});

type EntitiesDoc = Static<typeof EntitiesFileSchema>;

/** One declared entity, resolved. */
export interface Entity {
  readonly name: string;
  readonly kind: 'allocate' | 'manual';
  /** allocate: the HQ sequence. */
  readonly sequence: TableId | null;
  /** allocate: the store sequence a store's code comes from for an HQ record handed down (down mappings). */
  readonly storeSequence: TableId | null;
  /** manual: the HQ column keys must exist in, when declared. */
  readonly references: { readonly table: TableId; readonly column: string } | null;
  readonly location: SourceLocation;
}

/** The entities of a mapping directory (empty when it has no entities.yml). */
export interface EntitySet {
  readonly file: string | null;
  readonly byName: ReadonlyMap<string, Entity>;
}

export const NO_ENTITIES: EntitySet = { file: null, byName: new Map() };

let validator: ValidateFunction | undefined;

/** Parses entities.yml: size (BL-M026), YAML (BL-M001), schema (BL-M002), kind-specific settings (BL-M020). */
export function parseEntitiesFile(file: string, text: string): { entities: EntitySet; problems: Problem[] } {
  const large = tooLarge(file, text);
  if (large) return { entities: { file, byName: new Map() }, problems: [large] };
  const parsed = YamlDoc.parse(file, text, 'BL-M001');
  const doc = parsed.doc;
  if (!doc) return { entities: { file, byName: new Map() }, problems: sortProblems(parsed.problems) };
  const value = doc.toJS() ?? {};
  validator ??= new Ajv({ allErrors: true, strict: true, verbose: true, validateSchema: false, meta: false }).compile(EntitiesFileSchema);
  if (!validator(value)) return { entities: { file, byName: new Map() }, problems: sortProblems(schemaProblems(doc, validator, 'BL-M002', 'entities file')) };
  const problems: Problem[] = [];
  const byName = new Map<string, Entity>();
  for (const [name, e] of Object.entries(value as EntitiesDoc)) {
    const location = doc.keyLocation([], name) ?? doc.location([name]);
    if (e.kind === 'allocate' && e.sequence === undefined) {
      problems.push({
        code: 'BL-M020',
        message: `entity "${name}" allocates HQ keys but names no sequence to take them from.`,
        hint: `Add "sequence: <HQ sequence>" under ${name}, e.g. sequence: ${name}_id_seq (for an identity column, SELECT pg_get_serial_sequence('${name}', 'id') at HQ names it).`,
        location: doc.location([name]),
      });
    }
    if (e.kind === 'manual' && e.sequence !== undefined) {
      problems.push({
        code: 'BL-M020',
        message: `entity "${name}" is manual: a person states its HQ keys, so "sequence" has no use here.`,
        hint: 'Remove "sequence", or write "kind: allocate" to have HQ hand out new keys.',
        location: doc.location([name, 'sequence']),
      });
    }
    if (e.kind === 'manual' && e.store_sequence !== undefined) {
      problems.push({
        code: 'BL-M020',
        message: `entity "${name}" is manual: a person states its codes, so "store_sequence" has no use here.`,
        hint: 'Remove "store_sequence", or write "kind: allocate".',
        location: doc.location([name, 'store_sequence']),
      });
    }
    if (e.kind === 'allocate' && e.references !== undefined) {
      problems.push({
        code: 'BL-M020',
        message: `entity "${name}" allocates its HQ keys itself, so "references" has no use here.`,
        hint: 'Remove "references", or write "kind: manual".',
        location: doc.location([name, 'references']),
      });
    }
    byName.set(name, {
      name,
      kind: e.kind,
      sequence: e.kind === 'allocate' && e.sequence ? qualified(e.sequence) : null,
      storeSequence: e.kind === 'allocate' && e.store_sequence ? qualified(e.store_sequence) : null,
      references: e.kind === 'manual' && e.references ? reference(e.references) : null,
      location,
    });
  }
  return { entities: { file, byName }, problems: sortProblems(problems) };
}

function qualified(name: string): TableId {
  const dot = name.indexOf('.');
  return dot < 0 ? { schema: 'public', table: name } : { schema: name.slice(0, dot), table: name.slice(dot + 1) };
}

/** `cost_center.id` -> public.cost_center(id); `hq.cost_center.id` -> hq.cost_center(id). */
function reference(text: string): { table: TableId; column: string } {
  const parts = text.split('.');
  const column = parts.pop()!;
  return { table: qualified(parts.join('.')), column };
}

/** The JSON Schema (draft-07) of entities.yml. */
export function entitiesJsonSchemaText(): string {
  const plain = JSON.parse(JSON.stringify(EntitiesFileSchema)) as Record<string, unknown>;
  return `${JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', ...plain }, null, 2)}\n`;
}
