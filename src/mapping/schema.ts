import { Type, type Static } from '@sinclair/typebox';

/**
 * The mapping file schema, declared once: TypeBox gives the TypeScript type,
 * Ajv checks files against it, and `scripts/write-mapping-schema.ts` writes
 * it to `schemas/mapping.schema.json` for editors (yaml-language-server).
 */
const TABLE_NAME = '^[A-Za-z_][A-Za-z0-9_$]*(\\.[A-Za-z_][A-Za-z0-9_$]*)?$';

const TableName = (what: string, example: string) =>
  Type.String({
    pattern: TABLE_NAME,
    description: `${what}: "table" (schema public) or "schema.table", e.g. ${example}.`,
  });

/**
 * One column expression. YAML numbers, booleans and null (`qty: 1`,
 * `active: true`, `note: null`) are read as the expression they spell; an
 * empty value is reported as an empty expression.
 */
const Expression = Type.Unsafe<string | number | boolean | null>({
  type: ['string', 'number', 'boolean', 'null'],
  description:
    "An expression over the source row, e.g. id, upper(trim(name)), store.code, 'constant text' (quote the whole value in YAML: \"'text'\").",
});

export const MappingFileSchema = Type.Object(
  {
    direction: Type.Optional(
      Type.Union([Type.Literal('up'), Type.Literal('down')], {
        description:
          'up (default): source is a store table, target an HQ table. down: source is an HQ table (master data), target the same data at every store it is routed to.',
      }),
    ),
    source: TableName('Source table (at the store; at HQ for direction: down)', 'sale or erp.sale'),
    target: TableName('Target table (at HQ; at the store for direction: down)', 'store_sale or hq.store_sale'),
    route: Type.Optional(
      Type.Union(
        [
          Type.Literal('all'),
          Type.Object(
            { column: Type.String({ minLength: 1, description: 'the HQ column holding the store code a row belongs to' }) },
            { additionalProperties: false },
          ),
          Type.Object(
            { stores: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, uniqueItems: true, description: 'store codes' }) },
            { additionalProperties: false },
          ),
        ],
        {
          description:
            'direction: down only. Which stores get a row: all (default); {column: store_code} (the store named in that HQ column, e.g. a store\'s own price list; a row moving to another store is removed at the first); {stores: [S001, S002]}.',
        },
      ),
    ),
    effective_at: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'direction: down only. The HQ source column (timestamptz, timestamp or date) that says when a row takes effect, e.g. valid_from. A row whose time is still in the future (the store\'s clock) waits at the store in branchline.scheduled and is applied when due; NULL or past: applied at once.',
      }),
    ),
    labels: Type.Optional(
      Type.Object(
        {
          code: Type.String({ minLength: 1, description: 'target column holding the product code printed on the label' }),
          description: Type.String({ minLength: 1, description: 'target column holding the product description' }),
          price: Type.String({ minLength: 1, description: 'target column holding the price; a label is printed when it changes at the store' }),
          currency: Type.Optional(
            Type.String({ minLength: 1, description: 'target column holding the currency text (e.g. R$); default: labels.currency of the configuration file' }),
          ),
        },
        {
          additionalProperties: false,
          description:
            'direction: down only. Shelf labels: when a row\'s price changes at a store, a label (code, description, new and previous price) goes into a PDF in the configured labels folder. Names target columns this file writes. See docs/labels.md.',
        },
      ),
    ),
    key: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        uniqueItems: true,
        description: 'Target key columns (a unique key at HQ). Default: the target primary key.',
      }),
    ),
    enabled: Type.Optional(Type.Boolean({ default: true, description: 'false skips this file. Default: true.' })),
    description: Type.Optional(Type.String({ description: 'Free text for people reading the file.' })),
    columns: Type.Record(Type.String({ minLength: 1 }), Expression, {
      minProperties: 1,
      description:
        'Target column -> expression over the source row. associate(entity, code) writes HQ\'s key for a store\'s code (entities are declared in entities.yml). In an aggregate mapping, every column that is not a key column is sum(expression) or count().',
    }),
    filter: Type.Optional(
      Type.Unsafe<string | boolean>({
        type: ['string', 'boolean'],
        description:
          "Only rows for which this true/false expression holds go to HQ, e.g. status = 'confirmed'. A row that starts to match is written at HQ; one that stops matching is removed there (by on_delete).",
      }),
    ),
    on_conflict: Type.Optional(
      Type.Union([Type.Literal('upsert'), Type.Literal('insert_only')], {
        description:
          'upsert (default): the store\'s row replaces HQ\'s. insert_only: the store may create a row at HQ but never alter or delete one that exists; such changes are ignored and counted.',
      }),
    ),
    on_delete: Type.Optional(
      Type.Union(
        [
          Type.Literal('delete'),
          Type.Literal('ignore'),
          Type.Object(
            {
              soft: Type.Record(Type.String({ minLength: 1 }), Expression, {
                minProperties: 1,
                description: "Target column -> value written instead of deleting, e.g. deleted: true, deleted_at: commit_time().",
              }),
            },
            { additionalProperties: false },
          ),
        ],
        {
          description:
            'What a delete at the store (or a row leaving the filter) does at HQ: delete (default), ignore (counted), or soft: {column: value, ...} to mark the row instead.',
        },
      ),
    ),
    settlement: Type.Optional(
      Type.Object(
        {
          kind: Type.Optional(
            Type.String({ pattern: '^[a-z][a-z0-9_]{0,62}$', description: 'what callers name this kind of record (settlement-check --kind), e.g. receivable; default: the source table\'s name' }),
          ),
          ref: Type.Optional(
            Type.String({ minLength: 1, description: 'the store column a caller\'s reference names, e.g. id or document_number; default: the source table\'s primary key (one column)' }),
          ),
          ref_entity: Type.Optional(
            Type.String({ minLength: 1, description: 'callers give HQ\'s key of this entity (entities.yml) as the reference; the store\'s code is found by association' }),
          ),
          amount: Expression,
          settled: Expression,
          deleted: Type.Optional(Expression),
          at_hq: Type.Optional(
            Type.Object(
              { amount: Expression, settled: Expression, deleted: Type.Optional(Expression) },
              {
                additionalProperties: false,
                description: 'the same read of HQ\'s copy (expressions over the target row), so a store can ask HQ before settling a record of its own',
              },
            ),
          ),
        },
        {
          additionalProperties: false,
          description:
            'up mappings of receivables and payables: how HQ reads the record\'s state at the store it came from before settling it (docs/settlement.md). amount, settled and deleted are expressions over the store\'s row; a row the store no longer has is deleted.',
        },
      ),
    ),
  },
  {
    additionalProperties: false,
    title: 'branchline mapping file',
    description: 'Maps one source table at the store to one target table at HQ. See docs/mapping.md.',
  },
);

/** A mapping file as decoded by the schema (before defaults and name resolution). */
export type MappingFileDoc = Static<typeof MappingFileSchema>;

/** The JSON Schema (draft-07) of a mapping file, as plain JSON. */
export function mappingJsonSchema(): Record<string, unknown> {
  const plain = JSON.parse(JSON.stringify(MappingFileSchema)) as Record<string, unknown>;
  return { $schema: 'http://json-schema.org/draft-07/schema#', ...plain };
}

/** The committed file's text: the schema, 2-space indented, newline-terminated. */
export function mappingJsonSchemaText(): string {
  return `${JSON.stringify(mappingJsonSchema(), null, 2)}\n`;
}
