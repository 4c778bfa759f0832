import winston from 'winston';

export type Logger = winston.Logger;

const URL_PASSWORD = /((?:postgres(?:ql)?|mssql|sqlserver|smtp):\/\/[^:/@\s]*:)[^@\s]*@/gi;
const KV_PASSWORD = /\b(password|passwd|pwd)\s*=\s*('[^']*'|"[^"]*"|\S+)/gi;
/** Field names whose values are never logged (PGPASSWORD, apiToken, client_secret, ...). */
const SECRET_KEYS = /(pass(word|wd)?|pwd|secret|token|authorization|credential)/i;

/** Removes passwords from connection strings and key=value text. */
export function redact(text: string): string {
  return text.replace(URL_PASSWORD, '$1***@').replace(KV_PASSWORD, '$1=***');
}

function redactValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redact(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 12) return '[nested too deep to log]';
  if (value instanceof Error) return redact(value.message);
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.test(k) ? '***' : redactValue(v, depth + 1);
  return out;
}

/** A winston format that scrubs secrets from the message and every field. */
const scrub = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (SECRET_KEYS.test(key)) (info as Record<string, unknown>)[key] = '***';
    else (info as Record<string, unknown>)[key] = redactValue((info as Record<string, unknown>)[key], 0);
  }
  return info;
});

export interface LoggerOptions {
  level?: string;
  /** Where JSON lines go; default stderr so stdout stays for command output. */
  stream?: NodeJS.WritableStream;
}

/** JSON lines, one per event, with context fields from child loggers (store, table, pipeline). */
export function createLogger(options: LoggerOptions = {}): Logger {
  return winston.createLogger({
    level: options.level ?? process.env['BRANCHLINE_LOG_LEVEL'] ?? 'info',
    format: winston.format.combine(scrub(), winston.format.timestamp(), winston.format.json()),
    transports: [
      new winston.transports.Stream({ stream: options.stream ?? process.stderr }),
    ],
  });
}

/** A logger that drops everything (tests that do not look at logs). */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
