/**
 * Calendar arithmetic for SQL Server's date and time text, exact for every
 * year (proleptic Gregorian, as both SQL Server and PostgreSQL count), in
 * integers only: no JavaScript Date, whose years 0..99 and millisecond
 * resolution would get in the way.
 */

const floorDiv = (a: bigint, b: bigint): bigint => {
  const q = a / b;
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q;
};

/** Days from 1970-01-01 to the given date (negative before it). */
export function toDays(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** The date of a day count from 1970-01-01: [year, month, day]; year 0 is 1 BC. */
export function fromDays(days: number): [number, number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp + (mp < 10 ? 3 : -9);
  return [yoe + era * 400 + (month <= 2 ? 1 : 0), month, day];
}

/** Up to 7 fraction digits (100 ns) as microseconds, the seventh rounded half up. */
export function parseFraction(digits: string | undefined): bigint {
  if (!digits) return 0n;
  const hundredNs = BigInt(digits.padEnd(7, '0'));
  return hundredNs / 10n + (hundredNs % 10n >= 5n ? 1n : 0n);
}

/** Microseconds of a second as PostgreSQL prints them: none when zero, trailing zeros dropped. */
export function formatFraction(micros: bigint): string {
  return micros === 0n ? '' : `.${micros.toString().padStart(6, '0').replace(/0+$/, '')}`;
}

const pad2 = (n: bigint | number) => n.toString().padStart(2, '0');

/**
 * Microseconds from 1970-01-01 00:00 as PostgreSQL prints a timestamp
 * (`YYYY-MM-DD HH:MM:SS[.ffffff]`), followed by `zone` (`+00` for a
 * timestamptz); a year before 1 AD is printed the way PostgreSQL does,
 * with ` BC` at the end.
 */
export function formatDays(micros: bigint, zone: string): string {
  const perDay = 86_400_000_000n;
  const days = floorDiv(micros, perDay);
  const rest = micros - days * perDay;
  const secs = rest / 1_000_000n;
  const [y, m, d] = fromDays(Number(days));
  const bc = y <= 0;
  const year = String(bc ? 1 - y : y).padStart(4, '0');
  return `${year}-${pad2(m)}-${pad2(d)} ${pad2(secs / 3600n)}:${pad2((secs / 60n) % 60n)}:${pad2(secs % 60n)}${formatFraction(rest % 1_000_000n)}${zone}${bc ? ' BC' : ''}`;
}
