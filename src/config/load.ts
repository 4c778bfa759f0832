import { readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { isScalar, visit } from 'yaml';
import { BranchlineError, ProblemsError, type Problem } from '../core/errors.js';
import { ConfigSchema, type RawConfig } from './schema.js';
import { CronError, parseCron } from '../reports/cron.js';
import { pointerToPath, schemaProblems, YamlDoc } from './yaml-doc.js';

/** A store, with every default filled. */
export interface StoreConfig {
  readonly code: string;
  readonly name: string;
  readonly url: string;
  /** How the store's changes are captured: a logical slot, or a trigger-fed change table. */
  readonly connector: 'pg-logical' | 'pg-trigger' | 'mssql-trigger';
  readonly slot: string;
  readonly publication: string;
  readonly enabled: boolean;
  /** IANA zone: where effective_at values without a zone are read, and label dates printed. */
  readonly timeZone: string;
  /** Settlement checks connect with this URL (a read-only role; default `url`). */
  readonly readUrl: string;
  /** A settlement check asking this store answers `unavailable` after this long. */
  readonly settlementTimeoutMs: number;
}

/** The agent's HTTP server (null: not configured). */
export interface HttpConfig {
  readonly host: string;
  readonly port: number;
  /** Who may call; `name` is recorded with every settlement check. */
  readonly tokens: readonly { readonly name: string; readonly token: string }[];
  readonly maxBodyBytes: number;
}

/** The scheduled report (null: none). */
export interface ReportsConfig {
  readonly schedule: string;
  readonly timeZone: string;
  /** Absolute. */
  readonly folder: string;
  readonly email: { readonly smtpUrl: string; readonly from: string; readonly to: readonly string[]; readonly subject: string } | null;
}

/** A cross-store query's HQ table (one row per store and product). */
export interface QueryConfig {
  readonly table: string;
  readonly product: string;
  readonly store: string;
  readonly columns: readonly string[];
}

/** The resolved configuration that travels inward. */
export interface Config {
  readonly file: string;
  readonly hq: { readonly url: string; readonly readUrl: string; readonly settlementTimeoutMs: number };
  readonly stores: readonly StoreConfig[];
  readonly mappingsDir: string;
  readonly batch: { readonly maxRows: number; readonly maxDelayMs: number; readonly idleMs: number; readonly chunkRows: number };
  readonly apply: { readonly concurrency: number; readonly statementTimeoutMs: number; readonly sessionReplicationRole: 'origin' | 'replica'; readonly copyMinRows: number };
  readonly retry: { readonly initialMs: number; readonly maxMs: number };
  readonly source: { readonly statusIntervalMs: number; readonly silenceTimeoutMs: number; readonly pollMs: number; readonly purgeIntervalS: number };
  readonly down: { readonly pollMs: number; readonly retentionHours: number; readonly purgeIntervalS: number; readonly initialLoad: 'auto' | 'manual' };
  readonly log: { readonly level: string };
  readonly http: HttpConfig | null;
  readonly settlement: { readonly timeoutMs: number; readonly maxRefs: number };
  /** Cross-store queries (null: that query is not configured). */
  readonly queries: { readonly stock: QueryConfig | null; readonly prices: QueryConfig | null };
  readonly reports: ReportsConfig | null;
  /** Shelf labels (null: not configured; down mappings with labels: then write none, with a warning). */
  readonly labels: LabelsConfig | null;
  /** Several agents at HQ splitting the stores by lease (null: this agent runs every store it is given). */
  readonly lease: LeaseConfig | null;
}

export interface LeaseConfig {
  readonly agentId: string;
  readonly ttlS: number;
  readonly renewS: number;
}

export interface LabelsConfig {
  /** May hold {store}. */
  readonly folder: string;
  readonly printCommand: readonly string[] | null;
  readonly decimalSeparator: ',' | '.';
  readonly currency: string | null;
  /** null: the store's time zone. */
  readonly timeZone: string | null;
}

export const DEFAULTS = {
  batch: { maxRows: 20_000, maxDelayMs: 500, idleMs: 0, chunkRows: 5_000 },
  apply: { concurrency: 8, statementTimeoutMs: 300_000, sessionReplicationRole: 'origin' as const, copyMinRows: 100 },
  retry: { initialMs: 500, maxMs: 30_000 },
  source: { statusIntervalMs: 10_000, silenceTimeoutMs: 45_000, pollMs: 200, purgeIntervalS: 60 },
  down: { pollMs: 1_000, retentionHours: 168, purgeIntervalS: 300, initialLoad: 'auto' as const },
  http: { host: '127.0.0.1', port: 8787, maxBodyBytes: 1_048_576 },
  settlement: { timeoutMs: 3_000, maxRefs: 1_000 },
  lease: { ttlS: 15, renewS: 5 },
} as const;

export function defaultSlotName(storeCode: string): string {
  return `branchline_${storeCode.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
}
export const DEFAULT_PUBLICATION = 'branchline';

// verbose: errors carry their schema, so hints can list the allowed settings and forms.
// validateSchema/meta off: the schema is ours and fixed; checking it against the
// JSON Schema meta-schema at every start costs ~100 ms and proves nothing new.
const ajv = new Ajv({ allErrors: true, strict: false, verbose: true, validateSchema: false, meta: false });
const validateConfig = ajv.compile(ConfigSchema);

/** Where the CLI looks for the configuration when --config is not given. */
export function defaultConfigPath(): string {
  return process.env['BRANCHLINE_CONFIG'] ?? 'branchline.yml';
}

/**
 * Reads, checks and resolves a configuration file. Every problem is
 * reported at once with its file:line:column; nothing half-valid escapes.
 */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  return parseConfig(file, await readConfigText(file), env);
}

/** A configuration file's text; BL-C001 (with `hint`) when it cannot be read. */
export async function readConfigText(
  file: string,
  hint = 'Pass --config <file>, set BRANCHLINE_CONFIG, or create one with `branchline init`.',
): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new BranchlineError({
      code: 'BL-C001',
      message: `cannot read the configuration file ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'}).`,
      hint,
    });
  }
}

export async function parseConfig(file: string, text: string, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const { doc, problems } = YamlDoc.parse(file, text, 'BL-C002');
  if (!doc) throw new ProblemsError(`The configuration file ${file} is not valid YAML.`, problems);

  const envProblems = substituteEnv(doc, env);
  let raw = doc.toJS();
  let valid = validateConfig(raw);
  if (!valid && coerceEnvScalars(doc, validateConfig.errors ?? [])) {
    raw = doc.toJS();
    valid = validateConfig(raw);
  }
  if (!valid || envProblems.length) {
    // A missing variable also fails the schema where it stood: say it once.
    const taken = new Set(envProblems.map((p) => `${p.location?.line}:${p.location?.column}`));
    const schema = validateConfig.errors ? schemaProblems(doc, validateConfig, 'BL-C003', 'configuration file') : [];
    const rest = schema.filter((p) => !taken.has(`${p.location?.line}:${p.location?.column}`));
    const problems = [...envProblems, ...rest];
    problems.sort((a, b) => (a.location?.line ?? 0) - (b.location?.line ?? 0) || (a.location?.column ?? 0) - (b.location?.column ?? 0));
    const summary = rest.length ? 'has problems' : 'needs environment variables';
    throw new ProblemsError(`The configuration file ${file} ${summary}.`, problems);
  }
  const config = raw as RawConfig;
  const more: Problem[] = [];
  const seen = new Map<string, number>();
  config.stores.forEach((s, i) => {
    const prev = seen.get(s.code);
    if (prev !== undefined)
      more.push({
        code: 'BL-C003',
        message: `store code "${s.code}" appears twice (stores ${prev + 1} and ${i + 1}).`,
        hint: 'Each store needs its own code.',
        location: doc.location(['stores', i, 'code']),
      });
    seen.set(s.code, i);
  });
  const slots = new Map<string, string>();
  const logs = new Map<string, string>();
  config.stores.forEach((s, i) => {
    if ((s.connector ?? 'pg-logical') !== 'pg-logical') {
      for (const key of ['slot', 'publication'] as const)
        if (s[key] !== undefined)
          more.push({
            code: 'BL-C003',
            message: `store "${s.code}" sets \`${key}:\` but captures with ${s.connector}, which uses no ${key === 'slot' ? 'replication slot' : 'publication'}.`,
            hint: `Remove \`${key}:\`, or set \`connector: pg-logical\`.`,
            location: doc.location(['stores', i, key]),
          });
      const other = logs.get(s.url);
      if (other)
        more.push({
          code: 'BL-C003',
          message: `stores "${other}" and "${s.code}" are the same database with connector ${s.connector}: they would read one change table, each the other's changes too.`,
          hint: 'Give each store its own database URL.',
          location: doc.location(['stores', i, 'url']),
        });
      logs.set(s.url, s.code);
      return;
    }
    const slot = s.slot ?? defaultSlotName(s.code);
    const other = slots.get(`${s.url}|${slot}`);
    if (other)
      more.push({
        code: 'BL-C003',
        message: `stores "${other}" and "${s.code}" would share the replication slot "${slot}" on the same database.`,
        hint: 'Give one of them its own `slot:`.',
        location: doc.location(['stores', i]),
      });
    slots.set(`${s.url}|${slot}`, s.code);
  });
  const mappingsDir = path.resolve(path.dirname(path.resolve(file)), config.mappings);
  try {
    if (!(await stat(mappingsDir)).isDirectory()) throw new Error('not a directory');
  } catch {
    more.push({
      code: 'BL-C006',
      message: `the mapping directory "${config.mappings}" (${mappingsDir}) does not exist.`,
      hint: 'Point `mappings:` at the folder that holds your *.yml mapping files (relative to this configuration file).',
      location: doc.location(['mappings']),
    });
  }
  const zoneProblem = (zone: string | undefined, at: (string | number)[]) => {
    if (zone === undefined || knownZone(zone)) return;
    more.push({
      code: 'BL-C003',
      message: `time zone "${zone}" is not a time zone name this system knows.`,
      hint: 'Write an IANA name such as America/Sao_Paulo, Europe/Lisbon or UTC.',
      location: doc.location(at),
    });
  };
  config.stores.forEach((s, i) => zoneProblem(s.time_zone, ['stores', i, 'time_zone']));
  zoneProblem(config.labels?.time_zone, ['labels', 'time_zone']);
  zoneProblem(config.reports?.time_zone, ['reports', 'time_zone']);
  const smtp = config.reports?.email?.smtp_url;
  if (smtp !== undefined && !/^smtps?:\/\/[^/]/.test(smtp))
    more.push({
      code: 'BL-C003',
      message: 'reports.email.smtp_url is not an smtp:// or smtps:// URL.',
      hint: 'Write smtp://user:password@host:587 (STARTTLS when the server offers it) or smtps://user:password@host:465.',
      location: doc.location(['reports', 'email', 'smtp_url']),
    });
  if (config.reports) {
    try {
      parseCron(config.reports.schedule, 'UTC').next(new Date());
    } catch (e) {
      if (!(e instanceof CronError)) throw e;
      more.push({
        code: 'BL-C003',
        message: `reports.schedule: ${e.message}.`,
        hint: 'Write five fields: minute hour day-of-month month day-of-week, e.g. "0 7 * * *" for every day at 07:00, or "30 6 * * mon-sat".',
        location: doc.location(['reports', 'schedule']),
      });
    }
  }
  const listen = config.http?.listen ?? `${DEFAULTS.http.host}:${DEFAULTS.http.port}`;
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(listen.slice(colon + 1));
  if (config.http && (port < 1 || port > 65535))
    more.push({
      code: 'BL-C003',
      message: `http.listen port ${port} is not a TCP port.`,
      hint: 'Write host:port with a port from 1 to 65535, e.g. 127.0.0.1:8787.',
      location: doc.location(['http', 'listen']),
    });
  const names = new Set<string>();
  const tokens = new Set<string>();
  config.http?.tokens.forEach((t, i) => {
    if (names.has(t.name))
      more.push({
        code: 'BL-C003',
        message: `http token name "${t.name}" appears twice.`,
        hint: 'Give each caller its own name: it is what the audit of settlement checks records.',
        location: doc.location(['http', 'tokens', i, 'name']),
      });
    if (tokens.has(t.token))
      more.push({
        code: 'BL-C003',
        message: `http token "${t.name}" has the same token as another caller.`,
        hint: 'Give each caller its own token, so the audit can tell them apart (e.g. `openssl rand -hex 24`).',
        location: doc.location(['http', 'tokens', i, 'token']),
      });
    names.add(t.name);
    tokens.add(t.token);
  });
  const leaseTtl = config.lease?.ttl_s ?? DEFAULTS.lease.ttlS;
  const leaseRenew = config.lease?.renew_s ?? DEFAULTS.lease.renewS;
  if (config.lease && leaseRenew * 2 > leaseTtl)
    more.push({
      code: 'BL-C003',
      message: `lease.renew_s (${leaseRenew}) is more than half of lease.ttl_s (${leaseTtl}): a lease would expire before the agent could notice it failed to renew and stop that store's pipelines.`,
      hint: 'Renew at least twice per ttl, e.g. ttl_s: 15 with renew_s: 5.',
      location: doc.location(['lease', config.lease.renew_s !== undefined ? 'renew_s' : 'ttl_s']),
    });
  if (more.length) throw new ProblemsError(`The configuration file ${file} has problems.`, more);
  const settlementTimeoutMs = config.settlement?.timeout_ms ?? DEFAULTS.settlement.timeoutMs;
  const query = (q: NonNullable<RawConfig['queries']>['stock']): QueryConfig | null =>
    q ? { table: q.table, product: q.product, store: q.store, columns: q.columns } : null;

  return {
    file: path.resolve(file),
    hq: {
      url: config.hq.url,
      readUrl: config.hq.read_url ?? config.hq.url,
      settlementTimeoutMs: config.hq.settlement_timeout_ms ?? settlementTimeoutMs,
    },
    stores: config.stores.map((s) => ({
      code: s.code,
      name: s.name ?? s.code,
      url: s.url,
      connector: s.connector ?? 'pg-logical',
      slot: s.slot ?? defaultSlotName(s.code),
      publication: s.publication ?? DEFAULT_PUBLICATION,
      enabled: s.enabled ?? true,
      timeZone: s.time_zone ?? 'UTC',
      readUrl: s.read_url ?? s.url,
      settlementTimeoutMs: s.settlement_timeout_ms ?? settlementTimeoutMs,
    })),
    mappingsDir,
    batch: {
      maxRows: config.batch?.max_rows ?? DEFAULTS.batch.maxRows,
      maxDelayMs: config.batch?.max_delay_ms ?? DEFAULTS.batch.maxDelayMs,
      idleMs: config.batch?.idle_ms ?? DEFAULTS.batch.idleMs,
      chunkRows: config.batch?.chunk_rows ?? DEFAULTS.batch.chunkRows,
    },
    apply: {
      concurrency: config.apply?.concurrency ?? DEFAULTS.apply.concurrency,
      statementTimeoutMs: config.apply?.statement_timeout_ms ?? DEFAULTS.apply.statementTimeoutMs,
      sessionReplicationRole: config.apply?.session_replication_role ?? DEFAULTS.apply.sessionReplicationRole,
      copyMinRows: config.apply?.copy_min_rows ?? DEFAULTS.apply.copyMinRows,
    },
    retry: {
      initialMs: config.retry?.initial_ms ?? DEFAULTS.retry.initialMs,
      maxMs: config.retry?.max_ms ?? DEFAULTS.retry.maxMs,
    },
    source: {
      statusIntervalMs: config.source?.status_interval_ms ?? DEFAULTS.source.statusIntervalMs,
      silenceTimeoutMs: config.source?.silence_timeout_ms ?? DEFAULTS.source.silenceTimeoutMs,
      pollMs: config.source?.poll_ms ?? DEFAULTS.source.pollMs,
      purgeIntervalS: config.source?.purge_interval_s ?? DEFAULTS.source.purgeIntervalS,
    },
    down: {
      pollMs: config.down?.poll_ms ?? DEFAULTS.down.pollMs,
      retentionHours: config.down?.retention_hours ?? DEFAULTS.down.retentionHours,
      purgeIntervalS: config.down?.purge_interval_s ?? DEFAULTS.down.purgeIntervalS,
      initialLoad: config.down?.initial_load ?? DEFAULTS.down.initialLoad,
    },
    log: { level: config.log?.level ?? 'info' },
    http: config.http
      ? { host, port, tokens: config.http.tokens.map((t) => ({ name: t.name, token: t.token })), maxBodyBytes: config.http.max_body_bytes ?? DEFAULTS.http.maxBodyBytes }
      : null,
    settlement: { timeoutMs: settlementTimeoutMs, maxRefs: config.settlement?.max_refs ?? DEFAULTS.settlement.maxRefs },
    queries: { stock: query(config.queries?.stock), prices: query(config.queries?.prices) },
    reports: config.reports
      ? {
          schedule: config.reports.schedule,
          timeZone: config.reports.time_zone ?? 'UTC',
          folder: path.resolve(path.dirname(path.resolve(file)), config.reports.folder),
          email: config.reports.email
            ? {
                smtpUrl: config.reports.email.smtp_url,
                from: config.reports.email.from,
                to: config.reports.email.to,
                subject: config.reports.email.subject ?? 'branchline report {period}',
              }
            : null,
        }
      : null,
    labels: config.labels
      ? {
          folder: path.resolve(path.dirname(path.resolve(file)), config.labels.folder),
          printCommand: config.labels.print_command ?? null,
          decimalSeparator: config.labels.decimal_separator ?? ',',
          currency: config.labels.currency ?? null,
          timeZone: config.labels.time_zone ?? null,
        }
      : null,
    lease: config.lease ? { agentId: config.lease.agent_id ?? `${os.hostname()}:${process.pid}`, ttlS: leaseTtl, renewS: leaseRenew } : null,
  };
}

function knownZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Scalars whose whole text was one ${VAR} (see coerceEnvScalars). */
const wholeValues = new WeakSet<object>();

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces ${VAR} and ${VAR:-default} in every string scalar, in place. */
function substituteEnv(doc: YamlDoc, env: NodeJS.ProcessEnv): Problem[] {
  const problems: Problem[] = [];
  visit(doc.doc, {
    Scalar(_key, node) {
      if (!isScalar(node) || typeof node.value !== 'string' || !node.value.includes('${')) return;
      const whole = new RegExp(`^${ENV_REF.source}$`).test(node.value);
      node.value = node.value.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
        const v = env[name];
        if (v !== undefined && v !== '') return v;
        if (fallback !== undefined) return fallback;
        problems.push({
          code: 'BL-C004',
          message: `the environment variable ${name} is not set.`,
          hint: `Set ${name} before starting branchline, or write \${${name}:-default} to give a default.`,
          location: doc.locationOfOffset(node.range?.[0] ?? 0),
        });
        return '';
      });
      if (whole) wholeValues.add(node);
    },
  });
  return problems;
}

/**
 * `max_rows: ${ROWS}` with ROWS=500 is the number 500, as if written in the
 * file: where the schema wants a number or boolean and the value came whole
 * from one variable, read it as YAML would. (Only there: a store code
 * `${CODE}` = 001 stays the text "001".)
 */
function coerceEnvScalars(doc: YamlDoc, errors: readonly { keyword: string; instancePath: string; params: unknown }[]): boolean {
  let changed = false;
  for (const e of errors) {
    const type = (e.params as { type?: string }).type;
    if (e.keyword !== 'type' || !type || !['integer', 'number', 'boolean'].includes(type)) continue;
    const node = doc.nodeAt(pointerToPath(e.instancePath));
    if (!node || !isScalar(node) || !wholeValues.has(node) || typeof node.value !== 'string') continue;
    if (type === 'boolean' && (node.value === 'true' || node.value === 'false')) node.value = node.value === 'true';
    else if (type !== 'boolean' && /^-?\d+(\.\d+)?$/.test(node.value)) node.value = Number(node.value);
    else continue;
    changed = true;
  }
  return changed;
}

/** The stores a command should act on: all enabled ones, or those named with --store. */
export function selectStores(config: Config, codes: readonly string[] | undefined): StoreConfig[] {
  if (!codes || codes.length === 0) return config.stores.filter((s) => s.enabled);
  return codes.map((code) => {
    const store = config.stores.find((s) => s.code === code);
    if (!store)
      throw new BranchlineError({
        code: 'BL-C005',
        message: `store "${code}" is not in ${config.file}.`,
        hint: `Configured stores: ${config.stores.map((s) => s.code).join(', ')}.`,
      });
    return store;
  });
}
