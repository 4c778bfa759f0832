import { isMap, isPair, isScalar, isSeq, type Node } from 'yaml';
import type { Problem } from '../core/errors.js';
import { ConfigSchema } from './schema.js';
import type { YamlDoc } from './yaml-doc.js';

/**
 * `${VAR}` references of a centrally published configuration, and the
 * environments it is checked with where the real one is not (or not fully)
 * known.
 *
 * The configuration HQ publishes keeps its `${VAR}` references as written:
 * secrets stay in each host's environment. HQ cannot resolve them, and a
 * store need not resolve those it never uses (HQ's URL and its own come from
 * the command line; the other stores' entries are dropped). Such a reference
 * is checked with a **placeholder** chosen from the schema at its position
 * (a URL-like text, a number at the setting's minimum, `true`, the first
 * allowed word), so everything around it (every literal setting, duplicate
 * store codes, shared slots) is still checked, and a problem that can only
 * come from the placeholder itself is left out (see `outside`).
 * A reference with a default (`${VAR:-x}`) is checked with its default, as on
 * a host where VAR is not set.
 *
 * parseConfig reads `env[NAME]` once per reference, in document order (the
 * order `yaml`'s visit walks the scalars, left to right inside one). The
 * environment built here hands out one value per reference in that order, so
 * each reference gets the placeholder that fits where it stands, and every
 * placeholder is different (two stores whose `url:` is the same `${VAR}` do
 * not look like two stores sharing one database). Should the order ever
 * differ, a misplaced placeholder only produces a problem at a reference,
 * which is left out like the others.
 */

export interface EnvReference {
  readonly name: string;
  readonly hasDefault: boolean;
}

/** A scalar whose text holds at least one `${VAR}` reference. */
export interface EnvScalar {
  /** Keys and indexes from the document's top (for a key scalar: its map's path). */
  readonly path: readonly (string | number)[];
  readonly isKey: boolean;
  /** The whole text is one reference (parseConfig then reads numbers and booleans from it). */
  readonly whole: boolean;
  /** Offsets of the scalar in the text. */
  readonly range: readonly [number, number];
  readonly refs: readonly EnvReference[];
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const WHOLE_REF = new RegExp(`^${ENV_REF.source}$`);

/** Every scalar with `${VAR}` references, in the order parseConfig substitutes them. */
export function envScalars(doc: YamlDoc): EnvScalar[] {
  const found: EnvScalar[] = [];
  const scalar = (node: Node, path: readonly (string | number)[], isKey: boolean) => {
    if (!isScalar(node) || typeof node.value !== 'string' || !node.value.includes('${')) return;
    const refs = [...node.value.matchAll(ENV_REF)].map((m) => ({ name: m[1]!, hasDefault: m[2] !== undefined }));
    if (refs.length === 0) return;
    const range = node.range ?? [0, 0, 0];
    found.push({ path, isKey, whole: WHOLE_REF.test(node.value), range: [range[0], range[1]], refs });
  };
  const walk = (node: unknown, path: readonly (string | number)[]): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        if (pair.key) scalar(pair.key as Node, path, true);
        const key = isScalar(pair.key) ? String(pair.key.value) : '?';
        walk(pair.value, [...path, key]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, i]));
    } else if (isScalar(node)) {
      scalar(node, path, false);
    }
  };
  walk(doc.doc.contents, []);
  return found;
}

interface SchemaNode {
  readonly type?: string;
  readonly properties?: Record<string, SchemaNode>;
  readonly items?: SchemaNode;
  readonly anyOf?: readonly SchemaNode[];
  readonly const?: unknown;
  readonly minimum?: number;
  readonly exclusiveMinimum?: number;
  readonly pattern?: string;
  readonly maxLength?: number;
}

function schemaAt(path: readonly (string | number)[]): SchemaNode | undefined {
  let node: SchemaNode | undefined = ConfigSchema as unknown as SchemaNode;
  for (const seg of path) {
    if (!node) return undefined;
    if (typeof seg === 'number') node = node.items;
    else node = node.properties?.[seg];
  }
  return node;
}

/** A placeholder that the schema accepts at `scalar`'s position; `n` keeps placeholders apart. */
export function placeholderFor(scalar: EnvScalar, n: number): string {
  const texts = [`postgres://placeholder/p${n}`, `placeholder_${n}`, `P${n}`];
  const schema = scalar.whole && !scalar.isKey ? schemaAt(scalar.path) : undefined;
  if (schema?.anyOf?.length && schema.anyOf.every((s) => s.const !== undefined)) return String(schema.anyOf[0]!.const);
  if (schema?.type === 'integer' || schema?.type === 'number')
    return String(Math.max(schema.minimum ?? 1, schema.exclusiveMinimum === undefined ? 1 : Math.floor(schema.exclusiveMinimum) + 1));
  if (schema?.type === 'boolean') return 'true';
  const pattern = schema?.pattern ? new RegExp(schema.pattern) : null;
  const fits = texts.find((t) => (!pattern || pattern.test(t)) && (schema?.maxLength === undefined || t.length <= schema.maxLength));
  return fits ?? texts[0]!;
}

/**
 * An environment for parseConfig that gives each reference, in document
 * order, the value `pick` chooses (undefined: not set, so its default or a
 * BL-C004 problem). Names never referenced read from `base`.
 */
export function referenceEnv(
  scalars: readonly EnvScalar[],
  base: NodeJS.ProcessEnv,
  pick: (scalar: EnvScalar, ref: EnvReference, n: number) => string | undefined,
): NodeJS.ProcessEnv {
  const queues = new Map<string, (string | undefined)[]>();
  let n = 0;
  for (const s of scalars)
    for (const ref of s.refs) {
      const q = queues.get(ref.name) ?? [];
      q.push(pick(s, ref, ++n));
      queues.set(ref.name, q);
    }
  const last = new Map<string, string | undefined>();
  return new Proxy({} as NodeJS.ProcessEnv, {
    get(_t, name) {
      if (typeof name !== 'string') return undefined;
      const q = queues.get(name);
      if (!q) return base[name];
      if (q.length === 0) return last.get(name);
      const v = q.shift();
      last.set(name, v);
      return v;
    },
  });
}

/** Offsets <-> file:line:column of one text. */
export class TextPositions {
  private readonly starts: number[] = [0];

  constructor(text: string) {
    for (let i = 0; i < text.length; i++) if (text[i] === '\n') this.starts.push(i + 1);
  }

  offsetOf(p: Problem): number | null {
    const loc = p.location;
    if (!loc) return null;
    const start = this.starts[loc.line - 1];
    return start === undefined ? null : start + loc.column - 1;
  }
}

/** The problems that are not positioned inside any of `ranges` (offsets, end exclusive). */
export function outside(problems: readonly Problem[], ranges: readonly (readonly [number, number])[], positions: TextPositions): Problem[] {
  return problems.filter((p) => {
    const at = positions.offsetOf(p);
    return at === null || !ranges.some(([from, to]) => at >= from && at < to);
  });
}

/**
 * The text of one setting with its `${VAR}` references resolved from `env`
 * (`${VAR:-x}` falls back to x), e.g. HQ's URL for a command that needs only
 * that. BL-C004 when a variable it needs is not set; undefined when the
 * setting is not there or not text.
 */
export function resolveSetting(doc: YamlDoc, path: readonly (string | number)[], env: NodeJS.ProcessEnv): { value?: string; problems: Problem[] } {
  const node = doc.nodeAt(path);
  if (!isScalar(node) || typeof node.value !== 'string') return { problems: [] };
  const problems: Problem[] = [];
  const value = node.value.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (fallback !== undefined) return fallback;
    problems.push({
      code: 'BL-C004',
      message: `the environment variable ${name} is not set.`,
      hint: `Set ${name} before running this command, or write \${${name}:-default} to give a default.`,
      location: doc.location(path),
    });
    return '';
  });
  return problems.length ? { problems } : { value, problems };
}
