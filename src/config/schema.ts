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
    read_url: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'the URL of a read-only database role at the store, used for settlement checks (default: url). Checks always run in a READ ONLY transaction; a role that can only SELECT the checked tables makes sure of it (docs/settlement.md)',
      }),
    ),
    settlement_timeout_ms: Type.Optional(
      Type.Integer({ minimum: 100, description: 'a settlement check asking this store answers `unavailable` after this long (connecting included); default settlement.timeout_ms' }),
    ),
    time_zone: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'IANA time zone of the store, e.g. America/Sao_Paulo: in it a down row\'s effective_at without a zone (timestamp, date) is read, and label dates are printed. Default UTC',
      }),
    ),
  },
  { additionalProperties: false },
);

/** Where a cross-store query reads at HQ: one row per store and product. */
function QuerySchema(what: 'stock' | 'prices') {
  return Type.Object(
    {
      table: Type.String({
        pattern: '^[A-Za-z_][A-Za-z0-9_$]*(\\.[A-Za-z_][A-Za-z0-9_$]*)?$',
        description: `the HQ table holding ${what} per store and product: "table" or "schema.table", e.g. ${what === 'stock' ? 'store_stock' : 'store_price'}`,
      }),
      product: Type.String({ minLength: 1, description: 'its column naming the product, e.g. product_id' }),
      store: Type.String({ minLength: 1, description: 'its column holding the store code, e.g. store_code' }),
      columns: Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        uniqueItems: true,
        description: `the columns answered for each store, e.g. [${what === 'stock' ? 'quantity' : 'price'}]`,
      }),
    },
    { additionalProperties: false },
  );
}

export const ConfigSchema = Type.Object(
  {
    hq: Type.Object(
      {
        url: PgUrl,
        read_url: Type.Optional(
          Type.String({
            minLength: 1,
            description: 'the URL of a read-only role at HQ, for the questions a store asks HQ (settlement checks) and the cross-store queries (default: url)',
          }),
        ),
        settlement_timeout_ms: Type.Optional(
          Type.Integer({ minimum: 100, description: 'a settlement check asking HQ answers `unavailable` after this long; default settlement.timeout_ms' }),
        ),
      },
      { additionalProperties: false },
    ),
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
          copy_min_rows: Type.Optional(
            Type.Integer({ minimum: 0, description: 'rows a store inserted are written with COPY when one statement holds at least this many (default 100; 0: never COPY)' }),
          ),
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
    http: Type.Optional(
      Type.Object(
        {
          listen: Type.Optional(
            Type.String({
              pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$',
              description: 'host:port the agent serves HTTP on (/health, /metrics, settlement checks, stock and price queries); default 127.0.0.1:8787. Use 0.0.0.0:8787 to serve other hosts',
            }),
          ),
          tokens: Type.Array(
            Type.Object(
              {
                name: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$', description: 'who calls with this token (recorded with every settlement check), e.g. hq-erp' }),
                token: Type.String({ minLength: 24, description: 'the bearer token, at least 24 characters (use ${ENV_VAR}); e.g. from `openssl rand -hex 24`' }),
              },
              { additionalProperties: false },
            ),
            { minItems: 1, description: 'who may call: every request but /health needs `Authorization: Bearer <token>`' },
          ),
          max_body_bytes: Type.Optional(Type.Integer({ minimum: 1024, description: 'larger request bodies are refused (413); default 1048576' })),
        },
        { additionalProperties: false, description: 'the agent\'s HTTP server (docs/http.md); absent: none' },
      ),
    ),
    settlement: Type.Optional(
      Type.Object(
        {
          timeout_ms: Type.Optional(
            Type.Integer({ minimum: 100, description: 'a settlement check answers `unavailable` when the database it asks has not answered in this long (connecting included); default 3000' }),
          ),
          max_refs: Type.Optional(Type.Integer({ minimum: 1, description: 'most records one call may check; default 1000' })),
        },
        { additionalProperties: false, description: 'pre-settlement checks (docs/settlement.md)' },
      ),
    ),
    queries: Type.Optional(
      Type.Object(
        {
          stock: Type.Optional(QuerySchema('stock')),
          prices: Type.Optional(QuerySchema('prices')),
        },
        { additionalProperties: false, description: 'cross-store queries answered from HQ\'s replicated data (docs/queries.md)' },
      ),
    ),
    reports: Type.Optional(
      Type.Object(
        {
          schedule: Type.String({ minLength: 1, description: 'when to report, a cron expression in time_zone: minute hour day-of-month month day-of-week, e.g. "0 7 * * *" (every day at 07:00)' }),
          time_zone: Type.Optional(Type.String({ minLength: 1, description: 'IANA time zone of the schedule and of the times in the report; default UTC' })),
          folder: Type.String({ minLength: 1, description: 'folder where each report is written (created if missing), relative to this file' }),
          email: Type.Optional(
            Type.Object(
              {
                smtp_url: Type.String({ minLength: 1, description: 'the SMTP server: smtp://user:password@host:587 (STARTTLS when offered) or smtps://...:465; use ${ENV_VAR} for the password' }),
                from: Type.String({ minLength: 3, description: 'the sender, e.g. branchline@chain.example' }),
                to: Type.Array(Type.String({ minLength: 3 }), { minItems: 1, description: 'who gets the report' }),
                subject: Type.Optional(Type.String({ minLength: 1, description: 'the subject; {period} is replaced by the period covered. Default: "branchline report {period}"' })),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false, description: 'the scheduled synchronization report (docs/reports.md); run by an agent configured with a file (not by centrally configured store agents)' },
      ),
    ),
    lease: Type.Optional(
      Type.Object(
        {
          agent_id: Type.Optional(
            Type.String({
              pattern: '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$',
              description: 'this agent\'s name in HQ\'s lease tables and logs; unique among the agents sharing HQ. Default <hostname>:<pid>',
            }),
          ),
          ttl_s: Type.Optional(Type.Integer({ minimum: 2, description: 'a lease (and an agent\'s heartbeat) not renewed for this long expires, and another agent takes its stores; default 15' })),
          renew_s: Type.Optional(Type.Integer({ minimum: 1, description: 'how often the agent renews its leases and rebalances; at most half of ttl_s; default 5' })),
        },
        {
          additionalProperties: false,
          description: 'several agents at HQ split the stores between them by lease held in HQ\'s database (docs/deployment.md); absent: this agent runs every configured store',
        },
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
