import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node, type Pair, type YAMLMap } from 'yaml';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { ErrorCode, Problem, SourceLocation } from '../core/errors.js';

/** How many times aliases may repeat the values they name, in all (the yaml package's resource-exhaustion guard). */
const MAX_ALIASES = 100;

/**
 * A parsed YAML document that remembers where every value came from, so a
 * problem found in any later step can be reported as file:line:column.
 */
export class YamlDoc {
  private constructor(
    readonly file: string,
    readonly text: string,
    readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  /**
   * Parses `text`. Syntax errors come back as problems (all of them, with
   * positions) under `code`; the document is then `null`.
   */
  static parse(file: string, text: string, code: ErrorCode): { doc: YamlDoc | null; problems: Problem[] } {
    const lines = new LineCounter();
    // uniqueKeys: false, and duplicateKeys() instead: the yaml package compares every key of a map with every other (40,000 keys took a minute).
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
    const yamlDoc = new YamlDoc(file, text, doc, lines);
    const errors = [...doc.errors.map((e) => ({ message: e.message, pos: e.pos[0] })), ...duplicateKeys(doc)].sort((a, b) => a.pos - b.pos);
    // Only the first syntax error: the ones after it are mostly its echoes.
    const problems: Problem[] = errors.slice(0, 1).map((e) => ({
      code,
      message: `is not valid YAML: ${firstLine(e.message)}.`,
      hint:
        'Fix the YAML syntax at this position (indentation, a missing colon, or an unclosed quote are the usual causes)' +
        (errors.length > 1 ? '; lines after it may be misread until it is fixed.' : '.'),
      location: yamlDoc.locationOfOffset(e.pos),
    }));
    if (problems.length === 0) problems.push(...yamlDoc.aliasProblems(code));
    return { doc: problems.length > 0 ? null : yamlDoc, problems };
  }

  /** The plain JavaScript value of the document (`parse` made sure its aliases resolve within MAX_ALIASES). */
  toJS(): unknown {
    return this.doc.toJS({ maxAliasCount: MAX_ALIASES });
  }

  /**
   * An alias to an anchor that is not set before it, or aliases that expand
   * the document past MAX_ALIASES times its size (a "billion laughs"), are
   * problems, not exceptions from toJS.
   */
  private aliasProblems(code: ErrorCode): Problem[] {
    try {
      this.toJS();
      return [];
    } catch (e) {
      const unresolved = /^Unresolved alias/.test((e as Error).message);
      let at: Node | undefined;
      visit(this.doc, {
        Alias: (_key, node) => {
          if (isAlias(node) && (!unresolved || node.resolve(this.doc) === undefined)) {
            at = node;
            return visit.BREAK;
          }
          return undefined;
        },
      });
      const source = at && isAlias(at) ? at.source : '';
      return [
        {
          code,
          message: unresolved
            ? `is not valid YAML: the alias *${source} names no anchor &${source} set before it.`
            : `is not valid YAML: its aliases (*name) expand it more than ${MAX_ALIASES} times over.`,
          hint: unresolved
            ? `Write the value itself, or set &${source} on an earlier value.`
            : 'Write the values out instead of repeating them through anchors and aliases; a mapping file needs few, if any.',
          location: this.locationOfOffset(at?.range?.[0] ?? 0),
        },
      ];
    }
  }

  locationOfOffset(offset: number): SourceLocation {
    const pos = this.lines.linePos(Math.max(0, Math.min(offset, this.text.length)));
    return { file: this.file, line: pos.line, column: pos.col };
  }

  /** Start of the document (for problems about the whole file). */
  get start(): SourceLocation {
    const node = this.doc.contents as Node | null;
    return this.locationOfOffset(node?.range?.[0] ?? 0);
  }

  /** The node at a path of keys / indexes, or undefined. */
  nodeAt(path: readonly (string | number)[]): Node | undefined {
    let node: unknown = this.doc.contents;
    for (const seg of path) {
      if (isMap(node)) {
        node = this.pairOf(node, String(seg))?.value ?? undefined;
      } else if (isSeq(node)) {
        node = node.items[Number(seg)];
      } else {
        return undefined;
      }
    }
    return (node ?? undefined) as Node | undefined;
  }

  /** Each map's pairs by key, built on first use: a file of 40,000 columns is looked up 40,000 times. */
  private readonly pairs = new WeakMap<YAMLMap, Map<string, Pair>>();

  /** The first pair of `map` whose key is the scalar `key`. */
  private pairOf(map: YAMLMap, key: string): Pair | undefined {
    let byKey = this.pairs.get(map);
    if (!byKey) {
      byKey = new Map();
      for (const p of map.items) {
        if (isPair(p) && isScalar(p.key) && !byKey.has(String(p.key.value))) byKey.set(String(p.key.value), p as Pair);
      }
      this.pairs.set(map, byKey);
    }
    return byKey.get(key);
  }

  /** Where the key `key` is written inside the map at `path`. */
  keyLocation(path: readonly (string | number)[], key: string): SourceLocation | undefined {
    const map = path.length === 0 ? this.doc.contents : this.nodeAt(path);
    if (!isMap(map)) return undefined;
    const range = (this.pairOf(map, key)?.key as Node | undefined)?.range;
    return range ? this.locationOfOffset(range[0]) : undefined;
  }

  /**
   * The best position for a path: the value there, else the nearest parent
   * that exists (so "missing property" points at the map that lacks it).
   */
  location(path: readonly (string | number)[]): SourceLocation {
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? (this.doc.contents as Node | null) : this.nodeAt(path.slice(0, n));
      if (node?.range) return this.locationOfOffset(node.range[0]);
    }
    return this.start;
  }

  /**
   * Position of character `index` of a scalar's *value*; quoted scalars
   * start one character after their quote. Used to point inside expressions.
   */
  locationInScalar(path: readonly (string | number)[], index: number): SourceLocation {
    const node = this.nodeAt(path);
    if (!node || !isScalar(node) || !node.range) return this.location(path);
    const quoted = node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE';
    const plainOneLine = node.type === 'PLAIN' || quoted;
    if (!plainOneLine) return this.locationOfOffset(node.range[0]);
    return this.locationOfOffset(node.range[0] + (quoted ? 1 : 0) + index);
  }
}

/**
 * Keys written twice in one map, in one pass per map. Keys are compared as
 * the text they become (`1` and `"1"` are the same key to every reader of
 * the value); the yaml package's message is kept.
 */
function duplicateKeys(doc: Document.Parsed): { message: string; pos: number }[] {
  const found: { message: string; pos: number }[] = [];
  visit(doc, {
    Map: (_key, map) => {
      const seen = new Set<string>();
      for (const p of map.items) {
        const k = isScalar(p.key) ? `s:${String(p.key.value)}` : p.key === null ? 's:' : `n:${String(p.key)}`;
        if (seen.has(k)) found.push({ message: 'Map keys must be unique', pos: (p.key as Node | null)?.range?.[0] ?? map.range?.[0] ?? 0 });
        seen.add(k);
      }
    },
  });
  return found;
}

function firstLine(s: string): string {
  return (s.split('\n')[0] ?? s).replace(/\s+at line \d+, column \d+:?$/, '').replace(/\.$/, '');
}

/** Splits an Ajv instancePath (`/columns/total`) into path segments. */
export function pointerToPath(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/**
 * Turns Ajv errors into problems with positions and sentences an integrator
 * understands. `describe` names the kind of file ("mapping file", ...).
 */
export function schemaProblems(
  doc: YamlDoc,
  validate: ValidateFunction,
  code: ErrorCode,
  describe: string,
): Problem[] {
  const all = validate.errors ?? [];
  // A choice among fixed values (a union of constants) fails once per
  // constant: report it once, listing them.
  const constsAt = new Map<string, unknown[]>();
  for (const e of all) {
    if (e.keyword !== 'const') continue;
    const list = constsAt.get(e.instancePath) ?? [];
    list.push((e.params as { allowedValue?: unknown }).allowedValue);
    constsAt.set(e.instancePath, list);
  }
  const errors = all.filter(keepError);
  const seen = new Set<string>();
  const problems: Problem[] = [];
  for (const [pointer, values] of constsAt) {
    const path = pointerToPath(pointer);
    problems.push({
      code,
      message: `${where(path)} has a value this ${describe} does not accept.`,
      hint: `Write one of: ${values.map((v) => JSON.stringify(v)).join(', ')}.`,
      location: doc.location(path),
    });
  }
  for (const e of errors) {
    if (e.keyword === 'const') continue;
    const path = pointerToPath(e.instancePath);
    const p = toProblem(doc, e, path, code, describe);
    const key = `${p.location?.line}:${p.location?.column}:${p.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    problems.push(p);
  }
  return problems.sort(
    (a, b) => (a.location?.line ?? 0) - (b.location?.line ?? 0) || (a.location?.column ?? 0) - (b.location?.column ?? 0),
  );
}

/** Drops Ajv's noise: the "must match a schema in anyOf" summary when a branch error explains more. */
function keepError(e: ErrorObject): boolean {
  return e.keyword !== 'anyOf' && e.keyword !== 'oneOf' && e.keyword !== 'if';
}

function where(path: readonly string[]): string {
  return path.length === 0 ? 'at the top level' : `at "${path.join('.')}"`;
}

function toProblem(doc: YamlDoc, e: ErrorObject, path: string[], code: ErrorCode, describe: string): Problem {
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const prop = String(params['additionalProperty']);
      const allowed = allowedProperties(e);
      return {
        code,
        message: `unknown setting "${prop}" ${where(path)} in this ${describe}.`,
        hint: allowed.length
          ? `Remove it or use one of: ${allowed.join(', ')}.`
          : 'Remove it.',
        location: doc.keyLocation(path, prop) ?? doc.location(path),
      };
    }
    case 'required': {
      const prop = String(params['missingProperty']);
      return {
        code,
        message: `"${prop}" is missing ${where(path)} in this ${describe}.`,
        hint: `Add "${prop}:" here.`,
        location: doc.location(path),
      };
    }
    case 'type':
      return {
        code,
        message: `${where(path)} must be ${article(String(params['type']))} in this ${describe}.`,
        hint: `Write ${article(String(params['type']))} here.`,
        location: doc.location(path),
      };
    case 'enum':
      return {
        code,
        message: `${where(path)} has a value this ${describe} does not accept.`,
        hint: `Write one of: ${(params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}.`,
        location: doc.location(path),
      };
    case 'pattern':
      return {
        code,
        message: `${where(path)} is not in the expected form (${e.message ?? 'pattern'}).`,
        hint: schemaDescription(e) ?? 'See docs/configuration.md for the form.',
        location: doc.location(path),
      };
    default:
      return {
        code,
        message: `${where(path)} ${e.message ?? 'is not valid'} in this ${describe}.`,
        hint: schemaDescription(e) ?? undefined,
        location: doc.location(path),
      };
  }
}

function article(type: string): string {
  const map: Record<string, string> = {
    object: 'a map of settings (key: value lines)',
    array: 'a list',
    string: 'a text value',
    integer: 'a whole number',
    number: 'a number',
    boolean: 'true or false',
  };
  return map[type] ?? type;
}

function allowedProperties(e: ErrorObject): string[] {
  const schema = e.parentSchema as { properties?: Record<string, unknown> } | undefined;
  return schema?.properties ? Object.keys(schema.properties) : [];
}

function schemaDescription(e: ErrorObject): string | undefined {
  const d = (e.parentSchema as { description?: string } | undefined)?.description;
  return d ? `Expected: ${d}` : undefined;
}
