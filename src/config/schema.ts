import { Type, type Static } from '@sinclair/typebox';

/**
 * The configuration file, declared once: the TypeScript type, the JSON
 * Schema (published as schemas/config.schema.json for editors) and the
 * validation all come from here. Defaults are filled by `normalize`.
 */
const PgUrl = Type.String({
  minLength: 1,
  description: 'a PostgreSQL connection URL, e.g. postgres://user:password@host:5432/database (use ${ENV_VAR} for secrets)',
});

export const StoreSchema = Type.Object(
  {
    code: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$',
      description: 'the store code: letters, digits, "_" or "-", up to 32 characters, e.g. S001',
    }),
    name: Type.Optional(Type.String({ description: 'a display name' })),
    url: PgUrl,
    connector: Type.Optional(
      Type.Union([Type.Literal('pg-logical'), Type.Literal('pg-trigger'), Type.Literal('mssql-trigger')], {
        description:
          'how changes are captured at this store: pg-logical (default) reads a logical replication slot; pg-trigger reads a change table that triggers fill (no wal_level=logical, no REPLICATION privilege needed); mssql-trigger does the same on SQL Server (url: mssql://user:password@host:1433/database)',
      }),
    ),
    slot: Type.Optional(
      Type.String({ pattern: '^[a-z0-9_]{1,63}$', description: 'replication slot name: lower-case letters, digits and "_"' }),
    ),
    publication: Type.Optional(Type.String({ minLength: 1, maxLength: 63, description: 'publication name' })),
    enabled: Type.Optional(Type.Boolean({ description: 'false stops this store\'s pipelines without removing it' })),
    time_zone: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'IANA time zone of the store, e.g. America/Sao_Paulo: in it a down row\'s effective_at without a zone (timestamp, date) is read, and label dates are printed. Default UTC',
      }),
    ),
  },
  { additionalProperties: false },
);

export const ConfigSchema = Type.Object(
  {
    hq: Type.Object({ url: PgUrl }, { additionalProperties: false }),
    stores: Type.Array(StoreSchema, { minItems: 1, description: 'the stores this agent serves' }),
    mappings: Type.String({ minLength: 1, description: 'directory of mapping files, relative to this file' }),
    batch: Type.Optional(
      Type.Object(
        {
          max_rows: Type.Optional(Type.Integer({ minimum: 1, description: 'commit an HQ transaction after this many rows' })),
          max_delay_ms: Type.Optional(
            Type.Integer({ minimum: 0, description: 'commit an HQ transaction at the latest this long after its first row' }),
          ),
          idle_ms: Type.Optional(
            Type.Integer({ minimum: 0, description: 'commit as soon as the store has sent nothing for this long' }),
          ),
          chunk_rows: Type.Optional(
            Type.Integer({ minimum: 1, description: 'rows sent to HQ per statement round (bounds memory for huge transactions)' }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    apply: Type.Optional(
      Type.Object(
        {
          concurrency: Type.Optional(Type.Integer({ minimum: 1, description: 'HQ transactions open at once across stores' })),
          statement_timeout_ms: Type.Optional(Type.Integer({ minimum: 1000, description: 'HQ statement timeout' })),
          session_replication_role: Type.Optional(
            Type.Union([Type.Literal('origin'), Type.Literal('replica')], {
              description:
                'replica: like PostgreSQL\'s own subscriptions, HQ does not check foreign keys or fire ordinary triggers for applied rows (needs superuser or GRANT SET ON PARAMETER)',
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    retry: Type.Optional(
      Type.Object(
        {
          initial_ms: Type.Optional(Type.Integer({ minimum: 10 })),
          max_ms: Type.Optional(Type.Integer({ minimum: 100 })),
        },
        { additionalProperties: false },
      ),
    ),
    source: Type.Optional(
      Type.Object(
        {
          status_interval_ms: Type.Optional(
            Type.Integer({ minimum: 100, description: 'how often the agent reports its position to a store' }),
          ),
          silence_timeout_ms: Type.Optional(
            Type.Integer({ minimum: 1000, description: 'reconnect when a store sends nothing for this long' }),
          ),
          poll_ms: Type.Optional(
            Type.Integer({ minimum: 50, description: 'pg-trigger and mssql-trigger stores: how often the up pipeline looks at the store\'s change table (ms; their triggers send no notification); default 200' }),
          ),
          purge_interval_s: Type.Optional(
            Type.Integer({ minimum: 1, description: 'pg-trigger stores: how often the agent deletes from a store\'s change table what HQ has applied' }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    down: Type.Optional(
      Type.Object(
        {
          poll_ms: Type.Optional(
            Type.Integer({ minimum: 50, description: 'how often a store\'s down pipeline looks at HQ\'s change log without a notification (ms)' }),
          ),
          retention_hours: Type.Optional(
            Type.Number({
              exclusiveMinimum: 0,
              description: 'HQ keeps changes a store has not applied this long; a store offline longer needs a fresh initial load (branchline snapshot)',
            }),
          ),
          purge_interval_s: Type.Optional(Type.Integer({ minimum: 1, description: 'how often the agent purges what every store applied from HQ\'s change log' })),
          initial_load: Type.Optional(
            Type.Union([Type.Literal('auto'), Type.Literal('manual')], {
              description:
                'auto (default): a store that has never been loaded (no down position) gets its initial load from the agent before its down pipeline starts, and an interrupted load is resumed. manual: the down pipeline waits for `branchline snapshot --store S` (BL-S007).',
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    labels: Type.Optional(
      Type.Object(
        {
          folder: Type.String({
            minLength: 1,
            description: 'folder at the store\'s agent host where shelf-label PDFs are written (created if missing); {store} is replaced by the store code, e.g. /var/lib/branchline/labels/{store}',
          }),
          print_command: Type.Optional(
            Type.Array(Type.String({ minLength: 1 }), {
              minItems: 1,
              description: 'program and arguments run for each PDF, without a shell; {file} is the PDF\'s path (appended when absent), e.g. [lp, -d, shelf-printer, "{file}"]',
            }),
          ),
          decimal_separator: Type.Optional(Type.Union([Type.Literal(','), Type.Literal('.')], { description: 'between the whole and fractional part of prices; default ","' })),
          currency: Type.Optional(Type.String({ minLength: 1, description: 'text printed before prices (e.g. R$) when the mapping names no currency column' })),
          time_zone: Type.Optional(Type.String({ minLength: 1, description: 'IANA time zone in which label dates are printed; default: the store\'s time_zone' })),
        },
        { additionalProperties: false, description: 'shelf labels for down mappings with labels: (see docs/labels.md)' },
      ),
    ),
    log: Type.Optional(
      Type.Object(
        { level: Type.Optional(Type.Union(['error', 'warn', 'info', 'debug'].map((l) => Type.Literal(l)))) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type RawConfig = Static<typeof ConfigSchema>;
