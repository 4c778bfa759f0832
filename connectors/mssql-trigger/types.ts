import type { TypeCategory } from '../../src/catalog/pg-catalog.js';
import { BranchlineError } from '../../src/core/errors.js';
import { formatDays, formatFraction, parseFraction, toDays } from './civil-time.js';

/**
 * The type mapping of the `mssql-trigger` connector: for each SQL Server
 * type, (1) the T-SQL expression that turns a column into text inside the
 * capture trigger, (2) the PostgreSQL type it maps to (what the mapping
 * validator checks expressions against), and (3) a normalizer from that
 * text to PostgreSQL's text form, the form every source delivers (what a
 * `::type` cast at HQ reads back exactly).
 *
 * Times: PostgreSQL keeps microseconds, SQL Server's datetime2, time and
 * datetimeoffset keep 100 ns. The seventh fraction digit is rounded half up
 * (23:59:59.9999995 becomes the next day's 00:00:00), as PostgreSQL's own
 * input rounds. datetimeoffset values are converted to UTC (`+00`), the
 * offset itself is not kept (timestamptz does not keep one either).
 */

/** A column's type as SQL Server's catalog describes it (sys.columns, base type of sys.types). */
export interface MssqlColumnType {
  /** The system type's name (`TYPE_NAME(system_type_id)`): alias types resolve to their base. */
  readonly name: string;
  /** sys.columns.max_length: bytes, -1 for (max). */
  readonly maxLength: number;
  readonly precision: number;
  readonly scale: number;
}

export interface TypeMapping {
  /** The T-SQL expression of the column's text (nvarchar), `column` being an already quoted reference such as `i.[price]`. */
  textExpr(column: string): string;
  /** The PostgreSQL type as `format_type` prints it, e.g. `numeric(12,2)`. */
  readonly pgType: string;
  /** PostgreSQL's base type name, e.g. `numeric`, `int4`. */
  readonly pgTypeName: string;
  readonly category: TypeCategory;
  /** SQL Server's text (as `textExpr` writes it) to PostgreSQL's text form; throws on text it cannot read. */
  normalize(text: string): string;
  /**
   * The T-SQL expression that reads text `textExpr` wrote (e.g. a bound
   * `@k0`) back into a value of the column's own type, exactly: the same
   * CONVERT style where a style shapes the input (dates, times, binary).
   * Reconcile's keyset reads compare key columns with it.
   */
  readExpr(text: string): string;
}

class UnreadableValue extends Error {}

function check(ok: boolean, what: string, text: string): void {
  if (!ok) throw new UnreadableValue(`not SQL Server ${what} text: ${JSON.stringify(text.slice(0, 80))}`);
}

const INTEGER = /^-?\d+$/;
const DECIMAL = /^-?\d*\.?\d+$/;

function integer(text: string): string {
  check(INTEGER.test(text), 'integer', text);
  return text;
}

/** Exact digits as SQL Server prints them (`-12.3400`, `0.50`); a bare `.5` gets its zero. */
function decimal(text: string): string {
  check(DECIMAL.test(text) && !text.endsWith('.'), 'decimal', text);
  return text.replace(/^(-?)\./, '$10.');
}

function bit(text: string): string {
  check(text === '1' || text === '0', 'bit', text);
  return text === '1' ? 't' : 'f';
}

const FLOAT = /^-?(\d+\.?\d*|\.\d+)(E[+-]?\d+)?$/i;

/**
 * PostgreSQL's float output (12 and later, `extra_float_digits` > 0): the
 * shortest digits that read back as the same value, fixed notation for
 * decimal exponents from -4 up to `fixedBelow` (15 for double precision, 6
 * for real), scientific with at least two exponent digits otherwise.
 */
export function pgFloatText(x: number, single: boolean): string {
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  let shortest = x;
  if (single) {
    for (let p = 1; p <= 9; p++) {
      const candidate = Number(x.toPrecision(p));
      if (Math.fround(candidate) === x) {
        shortest = candidate;
        break;
      }
    }
  }
  const [mantissa, expText] = shortest.toExponential().split('e') as [string, string];
  const exp = Number(expText);
  const sign = mantissa.startsWith('-') ? '-' : '';
  const digits = mantissa.replace('-', '').replace('.', '');
  const fixedBelow = single ? 6 : 15;
  if (exp >= -4 && exp < fixedBelow) {
    if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
    const whole = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
    const rest = digits.slice(exp + 1);
    return `${sign}${whole}${rest ? `.${rest}` : ''}`;
  }
  const rest = digits.slice(1);
  return `${sign}${digits[0]}${rest ? `.${rest}` : ''}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}

function float(single: boolean) {
  return (text: string): string => {
    check(FLOAT.test(text), single ? 'real' : 'float', text);
    const x = single ? Math.fround(Number(text)) : Number(text);
    check(Number.isFinite(x), single ? 'real' : 'float', text);
    return pgFloatText(x, single);
  };
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

function date(text: string): string {
  check(DATE.test(text), 'date', text);
  return text;
}

const TIME = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$/;

/** `hh:mm:ss[.fffffff]` (style 121) to `hh:mm:ss[.ffffff]`; 23:59:59.9999995 and later round to `24:00:00`, which PostgreSQL's time accepts. */
function time(text: string): string {
  const m = TIME.exec(text);
  check(m !== null, 'time', text);
  const [, h, mi, s, f] = m!;
  const micros = (BigInt(Number(h) * 3600 + Number(mi) * 60 + Number(s)) * 1_000_000n) + parseFraction(f);
  const secs = micros / 1_000_000n;
  const pad = (n: bigint) => n.toString().padStart(2, '0');
  return `${pad(secs / 3600n)}:${pad((secs / 60n) % 60n)}:${pad(secs % 60n)}${formatFraction(micros % 1_000_000n)}`;
}

const STAMP = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$/;
const STAMP_TZ = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))? ?(Z|[+-]\d{2}:\d{2})$/;

function micros(y: string, mo: string, d: string, h: string, mi: string, s: string, f: string | undefined): bigint {
  const day = BigInt(toDays(Number(y), Number(mo), Number(d)));
  return (day * 86_400n + BigInt(Number(h) * 3600 + Number(mi) * 60 + Number(s))) * 1_000_000n + parseFraction(f);
}

function stamp(text: string): string {
  const m = STAMP.exec(text);
  check(m !== null, 'datetime', text);
  const [, y, mo, d, h, mi, s, f] = m!;
  return formatDays(micros(y!, mo!, d!, h!, mi!, s!, f), '');
}

/** datetimeoffset, style 127 (`...T...Z` or with `+hh:mm`; a space before the offset, style 121's form, is read too): UTC, `+00`. */
function stampTz(text: string): string {
  const m = STAMP_TZ.exec(text);
  check(m !== null, 'datetimeoffset', text);
  const [, y, mo, d, h, mi, s, f, zone] = m!;
  let offsetMinutes = 0n;
  if (zone !== 'Z') {
    const sign = zone!.startsWith('-') ? -1n : 1n;
    offsetMinutes = sign * BigInt(Number(zone!.slice(1, 3)) * 60 + Number(zone!.slice(4, 6)));
  }
  return formatDays(micros(y!, mo!, d!, h!, mi!, s!, f) - offsetMinutes * 60_000_000n, '+00');
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function uuid(text: string): string {
  const lower = text.toLowerCase();
  check(UUID.test(lower), 'uniqueidentifier', text);
  return lower;
}

function bytes(text: string): string {
  check(/^([0-9a-fA-F]{2})*$/.test(text), 'binary (style 2 hex)', text);
  return `\\x${text.toLowerCase()}`;
}

const asIs = (text: string): string => text;

/** A column's text expression, with the CONVERT style it uses (read back by `readExpr`). */
type TextExpr = ((c: string) => string) & { readonly style: number | undefined };

const convert = (target: string, style?: number): TextExpr => Object.assign((c: string) => `CONVERT(${target}, ${c}${style === undefined ? '' : `, ${style}`})`, { style });

type BaseMapping = Omit<TypeMapping, 'readExpr'> & { readonly textExpr: TextExpr };

function mapping(textExpr: TextExpr, pgType: string, pgTypeName: string, category: TypeCategory, normalize: (text: string) => string): BaseMapping {
  return { textExpr, pgType, pgTypeName, category, normalize };
}

/** Categories whose CONVERT style also governs reading text back (float's and money's styles only shape output). */
const STYLED_INPUT: ReadonlySet<TypeCategory> = new Set<TypeCategory>(['date', 'time', 'timestamp', 'timestamptz', 'bytea']);

/** A column's T-SQL type as written in a CONVERT, e.g. `nvarchar(20)`, `decimal(14,2)`, `varchar(max)`. */
export function mssqlTypeSql(t: MssqlColumnType): string {
  const len = (perChar: number) => (t.maxLength === -1 ? 'max' : String(t.maxLength / perChar));
  switch (t.name) {
    case 'char':
    case 'varchar':
    case 'binary':
    case 'varbinary':
      return `${t.name}(${len(1)})`;
    case 'nchar':
    case 'nvarchar':
      return `${t.name}(${len(2)})`;
    case 'decimal':
    case 'numeric':
      return `${t.name}(${t.precision},${t.scale})`;
    case 'datetime2':
    case 'time':
    case 'datetimeoffset':
      return `${t.name}(${t.scale})`;
    default:
      return t.name;
  }
}

/** Fraction digits PostgreSQL keeps of a SQL Server scale (0..7). */
const pgScale = (scale: number) => Math.min(scale, 6);

/** Why a type is refused, for the error. */
const REFUSED: Record<string, string> = {
  text: 'an AFTER trigger cannot read text, ntext or image columns from inserted/deleted; change the column to varchar(max)',
  ntext: 'an AFTER trigger cannot read text, ntext or image columns from inserted/deleted; change the column to nvarchar(max)',
  image: 'an AFTER trigger cannot read text, ntext or image columns from inserted/deleted; change the column to varbinary(max)',
};

/** The mapping of a SQL Server type, or null when branchline cannot capture it. */
export function mssqlTypeMapping(t: MssqlColumnType): TypeMapping | null {
  const base = baseMapping(t);
  if (!base) return null;
  // rowversion (timestamp) values are read back as the binary(8) they are.
  const own = t.name === 'timestamp' ? 'binary(8)' : mssqlTypeSql(t);
  const style = STYLED_INPUT.has(base.category) ? base.textExpr.style : undefined;
  return { ...base, readExpr: (text) => `CONVERT(${own}, ${text}${style === undefined ? '' : `, ${style}`})` };
}

function baseMapping(t: MssqlColumnType): BaseMapping | null {
  const chars = (bytesPerChar: number) => (t.maxLength === -1 ? null : t.maxLength / bytesPerChar);
  switch (t.name) {
    case 'tinyint':
      return mapping(convert('nvarchar(20)'), 'smallint', 'int2', 'integer', integer);
    case 'smallint':
      return mapping(convert('nvarchar(20)'), 'smallint', 'int2', 'integer', integer);
    case 'int':
      return mapping(convert('nvarchar(20)'), 'integer', 'int4', 'integer', integer);
    case 'bigint':
      return mapping(convert('nvarchar(20)'), 'bigint', 'int8', 'integer', integer);
    case 'decimal':
    case 'numeric':
      return mapping(convert('nvarchar(60)'), `numeric(${t.precision},${t.scale})`, 'numeric', 'numeric', decimal);
    case 'money':
      return mapping(convert('nvarchar(30)', 2), 'numeric(19,4)', 'numeric', 'numeric', decimal);
    case 'smallmoney':
      return mapping(convert('nvarchar(30)', 2), 'numeric(10,4)', 'numeric', 'numeric', decimal);
    case 'bit':
      return mapping(convert('nchar(1)'), 'boolean', 'bool', 'boolean', bit);
    case 'float':
      // float(1..24) is stored as real: sys.columns says precision 24.
      return t.precision <= 24
        ? mapping(convert('nvarchar(30)', 3), 'real', 'float4', 'float', float(true))
        : mapping(convert('nvarchar(30)', 3), 'double precision', 'float8', 'float', float(false));
    case 'real':
      return mapping(convert('nvarchar(30)', 3), 'real', 'float4', 'float', float(true));
    case 'date':
      return mapping(convert('nvarchar(10)', 23), 'date', 'date', 'date', date);
    case 'time':
      return mapping(convert('nvarchar(16)', 121), `time(${pgScale(t.scale)}) without time zone`, 'time', 'time', time);
    case 'datetime':
      return mapping(convert('nvarchar(23)', 121), 'timestamp(3) without time zone', 'timestamp', 'timestamp', stamp);
    case 'smalldatetime':
      return mapping(convert('nvarchar(23)', 121), 'timestamp(0) without time zone', 'timestamp', 'timestamp', stamp);
    case 'datetime2':
      return mapping(convert('nvarchar(27)', 121), `timestamp(${pgScale(t.scale)}) without time zone`, 'timestamp', 'timestamp', stamp);
    case 'datetimeoffset':
      return mapping(convert('nvarchar(34)', 127), `timestamp(${pgScale(t.scale)}) with time zone`, 'timestamptz', 'timestamptz', stampTz);
    case 'uniqueidentifier':
      return mapping(convert('nchar(36)'), 'uuid', 'uuid', 'uuid', uuid);
    case 'char':
      return mapping(convert('nvarchar(max)'), `character(${chars(1)})`, 'bpchar', 'text', asIs);
    case 'nchar':
      return mapping(convert('nvarchar(max)'), `character(${chars(2)})`, 'bpchar', 'text', asIs);
    case 'varchar':
    case 'nvarchar': {
      const n = chars(t.name === 'varchar' ? 1 : 2);
      return n === null
        ? mapping(convert('nvarchar(max)'), 'text', 'text', 'text', asIs)
        : mapping(convert('nvarchar(max)'), `character varying(${n})`, 'varchar', 'text', asIs);
    }
    case 'binary':
    case 'varbinary':
    case 'timestamp': // rowversion: binary(8)
      return mapping(convert('nvarchar(max)', 2), 'bytea', 'bytea', 'bytea', bytes);
    default:
      return null;
  }
}

/** The mapping of a column's type; a type branchline cannot capture is BL-D007, naming the column. */
export function requireTypeMapping(table: string, column: string, t: MssqlColumnType): TypeMapping {
  const m = mssqlTypeMapping(t);
  if (m) return m;
  const why = REFUSED[t.name] ?? 'the mssql-trigger connector has no text form for it';
  throw new BranchlineError({
    code: 'BL-D007',
    message: `column ${column} of ${table} at the SQL Server store has type ${t.name}, which branchline cannot capture: ${why}.`,
    hint: 'Leave the table out of the mappings, or change the column to a supported type (docs/connectors.md#mssql-trigger-sql-server-stores lists them).',
  });
}

/** Normalizes one captured value; text the type cannot be read from names the table and column. */
export function normalizeValue(m: TypeMapping, table: string, column: string, text: string | null): string | null {
  if (text === null) return null;
  try {
    return m.normalize(text);
  } catch (e) {
    if (e instanceof UnreadableValue) throw new Error(`${table}.${column}: ${e.message}`, { cause: e });
    throw e;
  }
}
