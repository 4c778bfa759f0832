import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { checkAndCompile, checkAndCompileDown, downMappingProblems, loadMappings, mappingProblems, type MappingFiles } from '../src/agent/prepare.js';
import { loadConfig } from '../src/config/load.js';
import { ERROR_CODES, formatProblem, isBranchlineError, type Problem } from '../src/core/errors.js';
import { RETAIL_EXAMPLE_DIR } from '../src/demo/retail-example.js';
import { ENTITIES_FILE, NO_ENTITIES, parseEntitiesFile } from '../src/mapping/entities.js';
import { loadMappingDir, parseMappingFile, type LoadedMappingFile } from '../src/mapping/index.js';
import { runCli } from './support/agent-process.js';
import { deadPort } from './support/dead-port.js';
import { retailCatalogs } from './support/retail-catalogs.js';

/**
 * Random and hostile mapping folders through what `branchline validate` and
 * the agent's start-up run (parse, schema, checks against HQ's and a store's
 * catalogs, compile): every case ends in problems with a stable code and a
 * file:line:column, within a time bound, or in a folder that compiles. Never
 * a TypeError, a stack overflow or a hang. Replay a run with the seed it
 * prints: BRANCHLINE_FUZZ_SEED=<n> (BRANCHLINE_FUZZ_CASES=<n> for more cases).
 */

const SEED = process.env['BRANCHLINE_FUZZ_SEED'] ? Number(process.env['BRANCHLINE_FUZZ_SEED']) : randomInt(2 ** 31);
const CASES = Number(process.env['BRANCHLINE_FUZZ_CASES'] ?? 2000);
/** One case (a folder loaded, checked twice and perhaps compiled twice): generous for 2 shared cores. */
const CASE_MS = 5_000;

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const YAML_CHARS = [':', '{', '}', '[', ']', '&', '*', '!', '|', '>', "'", '"', '#', '-', ',', '?', ' ', '\n', '\t', '%', '@', '`', '\\', '\r', '\u0000', '\uFEFF', '\u2028', '\uD800', 'é', '😀'];
const FUNCTIONS = ['trim', 'lower', 'upper', 'coalesce', 'concat', 'round', 'substr', 'left', 'length', 'nullif', 'associate', 'now', 'to_date', 'abs', 'nosuch', 'eval', 'constructor', '__proto__', 'toString'];
const OPERATORS = ['+', '-', '*', '/', '||', '=', '<>', '<', '<=', '>', '>=', 'and', 'or', 'not', 'is', 'is not', 'null', 'case', 'when', 'then', 'else', 'end', ',', '(', ')', "'", '"', '::', '%', '!', ';'];
const COLUMNS = ['id', 'total', 'customer_id', 'status', 'store.code', 'notes', 'number', 'issued_at', 'qty', 'price', 'nosuch', '"Quoted Col"', 'constructor', '__proto__'];

interface ExampleFile {
  readonly name: string;
  readonly text: string;
}

interface FuzzCase {
  readonly kind: string;
  /** The file written into (or added to) the example folder. */
  readonly name: string;
  readonly text: string;
}

function randomExpression(r: Rng, depth = 0): string {
  const roll = r.int(depth > 4 ? 4 : 10);
  switch (roll) {
    case 0:
      return r.pick(COLUMNS);
    case 1:
      return r.chance(0.5) ? String(r.int(1000)) : `${r.int(100)}.${r.int(100)}`;
    case 2:
      return `'${r.pick(['', 'x', "it''s", '\\', 'é😀', '%s'])}'`;
    case 3:
      return r.pick(OPERATORS);
    case 4:
    case 5:
      return `${r.pick(FUNCTIONS)}(${Array.from({ length: r.int(4) }, () => randomExpression(r, depth + 1)).join(r.pick([', ', ',', ' ']))}${r.chance(0.8) ? ')' : ''}`;
    case 6:
      return `${randomExpression(r, depth + 1)} ${r.pick(OPERATORS)} ${r.chance(0.8) ? randomExpression(r, depth + 1) : ''}`;
    case 7:
      return `(${randomExpression(r, depth + 1)}${r.chance(0.8) ? ')' : ''}`;
    case 8:
      return `case when ${randomExpression(r, depth + 1)} then ${randomExpression(r, depth + 1)} ${r.chance(0.5) ? `else ${randomExpression(r, depth + 1)}` : ''} ${r.chance(0.8) ? 'end' : ''}`;
    default:
      return `${r.pick(OPERATORS)} ${randomExpression(r, depth + 1)}`;
  }
}

/** Expressions meant to hurt: depth, size, odd numbers and characters. */
function hostileExpression(r: Rng): string {
  const n = r.pick([5, 50, 500, 2_000]);
  const options = [
    () => `${'trim('.repeat(n)}notes${')'.repeat(n)}`,
    () => `${'('.repeat(n)}id${')'.repeat(n)}`,
    () => `${'('.repeat(n)}id`,
    () => `id${')'.repeat(n)}`,
    () => Array.from({ length: n }, () => 'id').join(' + '),
    () => Array.from({ length: n }, () => "'a'").join(' || '),
    () => `${'-'.repeat(n)}id`,
    () => `${'not '.repeat(n)}true`,
    () => `${'case when true then '.repeat(Math.min(n, 5000))}1${' end'.repeat(Math.min(n, 5000))}`,
    () => `coalesce(${Array.from({ length: n }, () => 'notes').join(', ')})`,
    () => '9'.repeat(n),
    () => `0.${'0'.repeat(n)}1`,
    () => `1e${'9'.repeat(Math.min(n, 400))}`,
    () => `'${'x'.repeat(n * 20)}'`,
    () => `"${'c'.repeat(n)}"`,
    () => `${r.pick(FUNCTIONS)}(`,
    () => '+',
    () => 'id +',
    () => '* id',
    () => 'id = = id',
    () => 'id < 1 < 2',
    () => "'unclosed",
    () => '"unclosed',
    () => 'nosuch_function(id)',
    () => '__proto__(id)',
    () => 'constructor',
    () => 'id\u0000',
    () => '\u202Eid\u202C',
    () => 'id :: text',
    () => 'round(total, 99999999999999999999)',
    () => 'substr(notes, -9223372036854775809, 1e400)',
    () => 'total / 0',
    () => "associate(customer, associate(customer, associate(cost_center, 'x')))",
    () => "associate('nosuch', id)",
    () => 'associate()',
  ];
  return r.pick(options)();
}

/** A YAML scalar for an expression: double-quoted, JSON escapes. */
function quoted(s: string): string {
  return JSON.stringify(s);
}

function randomValue(r: Rng, depth = 0): unknown {
  switch (r.int(depth > 3 ? 6 : 9)) {
    case 0:
      return null;
    case 1:
      return r.chance(0.5);
    case 2:
      return r.pick([0, -1, 1.5, 1e308, -1e-308, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER]);
    case 3:
      return r.pick(['', ' ', 'x'.repeat(r.pick([1, 100, 100_000])), 'sale', 'public.sale', 'a.b.c.d', '__proto__', 'constructor', 'toString', '💥', '\u0000']);
    case 4:
      return randomExpression(r);
    case 5:
      return r.pick(['up', 'down', 'upsert', 'insert_only', 'delete', 'ignore', 'all', 'allocate', 'manual']);
    case 6:
      return Array.from({ length: r.int(4) }, () => randomValue(r, depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: r.int(4) }, () => [r.pick(['soft', 'column', 'stores', 'kind', 'ref', 'amount', 'settled', '__proto__', 'constructor', 'x'.repeat(r.pick([1, 10_000]))]), randomValue(r, depth + 1)]));
  }
}

/** Every path of keys/indexes in a value (to put a wrong type at any of them). */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...prefix, i])));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  return out;
}

function setAt(root: unknown, at: readonly (string | number)[], v: unknown): unknown {
  if (at.length === 0) return v;
  const [head, ...rest] = at;
  const copy = (Array.isArray(root) ? [...(root as unknown[])] : { ...(root as Record<string, unknown>) }) as Record<string | number, unknown>;
  copy[head!] = setAt(copy[head!], rest, v);
  return copy;
}

function mutateText(r: Rng, text: string): string {
  let t = text;
  const edits = 1 + r.int(6);
  for (let i = 0; i < edits; i++) {
    const at = r.int(t.length + 1);
    switch (r.int(5)) {
      case 0:
        t = t.slice(0, at) + r.pick(YAML_CHARS) + t.slice(at);
        break;
      case 1:
        t = t.slice(0, at) + t.slice(at + 1 + r.int(8));
        break;
      case 2:
        t = t.slice(0, at) + r.pick(YAML_CHARS) + t.slice(at + 1);
        break;
      case 3: {
        const lines = t.split('\n');
        const l = r.int(lines.length);
        lines.splice(r.int(lines.length), 0, lines[l]!);
        t = lines.join('\n');
        break;
      }
      default: {
        const lines = t.split('\n');
        const l = r.int(lines.length);
        lines[l] = (r.chance(0.5) ? '  ' : '') + lines[l]!.trimStart();
        t = lines.join('\n');
      }
    }
  }
  return t;
}

function deepNesting(r: Rng, n = r.pick([10, 100, 1_000]), variant = r.int(4)): string {
  switch (variant) {
    case 0:
      return `source: sale\ntarget: store_sale\ncolumns: ${'['.repeat(n)}${']'.repeat(n)}\n`;
    case 1:
      return `source: sale\ntarget: store_sale\ncolumns: ${'{a: '.repeat(n)}1${'}'.repeat(n)}\n`;
    case 2:
      return `source: sale\ntarget: store_sale\ncolumns:\n${Array.from({ length: Math.min(n, 300) }, (_, i) => `${' '.repeat(2 * (i + 1))}k${i}:`).join('\n')} 1\n`;
    default:
      return `${'- '.repeat(Math.min(n, 10_000))}x\n`;
  }
}

function aliasBomb(r: Rng, levels = r.pick([5, 9, 12]), where = r.int(3)): string {
  const lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'];
  for (let i = 1; i <= levels; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
  if (where === 0) return `source: sale\ntarget: store_sale\n${lines.join('\n')}\ncolumns:\n  id: *a${levels}\n`;
  if (where === 1) return `source: sale\ntarget: store_sale\ncolumns: &c\n  id: id\n  x: *c\n`;
  return `source: &s sale\ntarget: *s\nkey: *undefined_anchor\ncolumns:\n  id: id\n`;
}

function tagged(r: Rng, example: string): string {
  const tag = r.pick(['!!binary', '!!js/function', '!!js/undefined', '!custom', '!!set', '!!omap', '!!pairs', '!!timestamp', '!!float', '!!int', '!!str', '!!map', '!!seq', '!<tag:yaml.org,2002:python/object>', '!!merge']);
  const lines = example.split('\n');
  const l = r.int(lines.length);
  lines[l] = lines[l]!.replace(/: /, `: ${tag} `);
  if (r.chance(0.3)) lines.splice(r.int(lines.length), 0, `<<: {id: "1"}`);
  if (r.chance(0.2)) lines.unshift(r.pick(['%YAML 1.1', '%TAG ! tag:x,2000:', '%YAML 9.9', '---', '...']));
  return lines.join('\n');
}

function duplicateKeys(r: Rng, example: string): string {
  const lines = example.split('\n').filter((l) => /^\s*[a-z_]+:/.test(l));
  const line = r.pick(lines);
  return `${example}\n${line}\n`;
}

function hugeText(r: Rng, size = r.pick([2_000, 20_000, 1_100_000]), variant = r.int(4)): string {
  switch (variant) {
    case 0:
      return `source: ${'s'.repeat(size)}\ntarget: store_sale\ncolumns:\n  id: id\n`;
    case 1:
      return `source: sale\ntarget: store_sale\ncolumns:\n  ${'k'.repeat(size)}: id\n`;
    case 2:
      return `source: sale\ntarget: store_sale\ncolumns:\n${Array.from({ length: size / 200 }, (_, i) => `  c${i}: id`).join('\n')}\n`;
    default:
      return `source: sale\ntarget: store_sale\ndescription: ${quoted('d'.repeat(size))}\ncolumns:\n  id: id\n`;
  }
}

function withExpression(r: Rng, example: string, expression: string): string {
  const lines = example.split('\n');
  const candidates = lines.map((l, i) => ({ l, i })).filter(({ l }) => /^ {2,}[A-Za-z_"][^:]*: /.test(l) || /^filter: /.test(l));
  if (candidates.length === 0) return `${example}\nfilter: ${quoted(expression)}\n`;
  const { l, i } = r.pick(candidates);
  lines[i] = `${l.slice(0, l.indexOf(': ') + 2)}${quoted(expression)}`;
  return lines.join('\n');
}

function makeCase(r: Rng, examples: readonly ExampleFile[]): FuzzCase {
  const ex = r.pick(examples);
  const kind = r.pick(['bytes', 'truncated', 'mutated', 'wrong-type', 'deep', 'alias', 'tag', 'duplicate-key', 'huge', 'expression', 'hostile-expression', 'entities']);
  switch (kind) {
    case 'bytes': {
      const b = Buffer.alloc(r.int(2_000));
      for (let i = 0; i < b.length; i++) b[i] = r.int(256);
      return { kind, name: r.pick([ex.name, 'zz-random.yml', ENTITIES_FILE]), text: b.toString('utf8') };
    }
    case 'truncated':
      return { kind, name: ex.name, text: ex.text.slice(0, r.int(ex.text.length)) };
    case 'mutated':
      return { kind, name: ex.name, text: mutateText(r, ex.text) };
    case 'wrong-type': {
      const doc = parseYaml(ex.text) as unknown;
      const at = r.pick(paths(doc));
      return { kind: `${kind} at ${at.join('.') || '(root)'}`, name: ex.name, text: stringifyYaml(setAt(doc, at, randomValue(r)), { aliasDuplicateObjects: false }) };
    }
    case 'deep':
      return { kind, name: ex.name, text: deepNesting(r) };
    case 'alias':
      return { kind, name: ex.name, text: aliasBomb(r) };
    case 'tag':
      return { kind, name: ex.name, text: tagged(r, ex.text) };
    case 'duplicate-key':
      return { kind, name: ex.name, text: duplicateKeys(r, ex.text) };
    case 'huge':
      return { kind, name: ex.name, text: hugeText(r) };
    case 'expression':
      return { kind, name: ex.name, text: withExpression(r, ex.text, randomExpression(r)) };
    case 'hostile-expression':
      return { kind, name: ex.name, text: withExpression(r, ex.text, hostileExpression(r)) };
    default: {
      const entities = examples.find((e) => e.name === ENTITIES_FILE)!;
      return { kind, name: ENTITIES_FILE, text: r.chance(0.5) ? mutateText(r, entities.text) : `${entities.text}\n${stringifyYaml({ [String(randomValue(r))]: randomValue(r) })}` };
    }
  }
}

/** What loadMappingDir would give for the example folder with `c` written into it (without the disk). */
function filesWith(examples: readonly ExampleFile[], parsed: ReadonlyMap<string, LoadedMappingFile>, c: FuzzCase): MappingFiles {
  const files: LoadedMappingFile[] = [];
  const problems: Problem[] = [];
  let entities = NO_ENTITIES;
  const names = [...new Set([...examples.map((e) => e.name), c.name])].sort();
  for (const name of names) {
    const file = path.join('mappings', name);
    if (name === ENTITIES_FILE) {
      const text = name === c.name ? c.text : examples.find((e) => e.name === name)!.text;
      const r = parseEntitiesFile(file, text);
      entities = r.entities;
      problems.push(...r.problems);
    } else if (name === c.name) {
      const r = parseMappingFile(file, c.text);
      if (r.file) files.push(r.file);
      problems.push(...r.problems);
    } else {
      files.push(parsed.get(name)!);
    }
  }
  return { dir: 'mappings', files: files.filter((f) => f.spec.direction === 'up'), down: files.filter((f) => f.spec.direction === 'down'), problems, entities };
}

function checkProblems(what: string, problems: readonly Problem[]): void {
  for (const p of problems) {
    assert.ok(p.code in ERROR_CODES, `${what}: unknown code in ${formatProblem(p)}`);
    assert.ok(p.location, `${what}: a problem without file:line:column: ${formatProblem(p).slice(0, 300)}`);
    assert.ok(p.location.file.startsWith('mappings/') && p.location.line >= 1 && p.location.column >= 1, `${what}: bad position in ${formatProblem(p).slice(0, 300)}`);
    assert.ok(p.message.length > 0 && p.message.length < 2_000, `${what}: the message is empty or as long as the input (${p.message.length} characters)`);
  }
}

/** Runs `fn`; a BranchlineError is what it may throw, anything else is a bug. */
function compiles(what: string, fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.fail(`${what}: validation found no problem but compiling threw ${isBranchlineError(e) ? e.message : (e as Error).stack}`);
  }
}

async function readExamples(): Promise<ExampleFile[]> {
  const names = (await readdir(RETAIL_EXAMPLE_DIR)).filter((n) => n.endsWith('.yml')).sort();
  return Promise.all(names.map(async (name) => ({ name, text: await readFile(path.join(RETAIL_EXAMPLE_DIR, name), 'utf8') })));
}

interface Setup {
  readonly catalogs: ReturnType<typeof retailCatalogs>;
  readonly examples: readonly ExampleFile[];
  readonly parsed: ReadonlyMap<string, LoadedMappingFile>;
}

async function setUp(): Promise<Setup> {
  const catalogs = retailCatalogs();
  const examples = await readExamples();
  const parsed = new Map<string, LoadedMappingFile>();
  for (const e of examples.filter((x) => x.name !== ENTITIES_FILE)) {
    const r = parseMappingFile(path.join('mappings', e.name), e.text);
    assert.ok(r.file, `the example ${e.name} parses`);
    parsed.set(e.name, r.file);
  }
  return { catalogs, examples, parsed };
}

/**
 * One case as `validate` and the agent's start-up see it: the folder's
 * problems up (against HQ and the store) and down; where there are none,
 * compiling must succeed. Fails on anything thrown, on a problem without a
 * code or position, and past CASE_MS.
 */
function runCase({ catalogs, examples, parsed }: Setup, c: FuzzCase, what: string): { accepted: boolean; ms: number } {
  const started = performance.now();
  let accepted = false;
  try {
    const m = filesWith(examples, parsed, c);
    const up = mappingProblems(m, catalogs.hq, catalogs.store);
    checkProblems(what, up);
    if (up.length === 0) compiles(what, () => checkAndCompile(m, catalogs.hq, catalogs.store, 'the test catalogs'));
    const down = m.problems.length ? [] : downMappingProblems(m, catalogs.hq, catalogs.store);
    checkProblems(what, down);
    if (m.problems.length === 0 && down.length === 0) compiles(what, () => checkAndCompileDown(m, catalogs.hq, catalogs.store, 'the test catalogs'));
    accepted = up.length === 0 && down.length === 0;
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    assert.fail(`${what}: threw ${(e as Error).stack ?? String(e)}`);
  }
  const ms = performance.now() - started;
  assert.ok(ms < CASE_MS, `${what}: took ${ms.toFixed(0)} ms (bound ${CASE_MS} ms)`);
  return { accepted, ms };
}

describe('fuzzed mapping folders', { timeout: 180_000 }, () => {
  test(`${CASES} random and hostile folders: problems with a code and a position, or a folder that compiles`, async (t) => {
    t.diagnostic(`BRANCHLINE_FUZZ_SEED=${SEED} (set it to replay this run)`);
    const setup = await setUp();
    const { catalogs, examples, parsed } = setup;
    // The folder as shipped is valid both ways: the fuzz starts from a folder that compiles.
    const clean = filesWith(examples, parsed, { kind: 'none', name: examples[0]!.name, text: examples[0]!.text });
    assert.deepEqual(mappingProblems(clean, catalogs.hq, catalogs.store).map(formatProblem), []);
    assert.deepEqual(downMappingProblems(clean, catalogs.hq, catalogs.store).map(formatProblem), []);

    const rng = new Rng(SEED);
    const kinds = new Map<string, { cases: number; accepted: number; ms: number }>();
    let slowest = { ms: 0, kind: '' };
    for (let i = 0; i < CASES; i++) {
      const c = makeCase(rng, examples);
      const what = `case ${i} (${c.kind}, ${c.name}; BRANCHLINE_FUZZ_SEED=${SEED}): ${JSON.stringify(c.text.slice(0, 160))}`;
      const { accepted, ms } = runCase(setup, c, what);
      if (ms > slowest.ms) slowest = { ms, kind: c.kind };
      const k = kinds.get(c.kind.split(' ')[0]!) ?? { cases: 0, accepted: 0, ms: 0 };
      k.cases++;
      k.ms += ms;
      if (accepted) k.accepted++;
      kinds.set(c.kind.split(' ')[0]!, k);
    }
    t.diagnostic(`cases by kind (accepted): ${[...kinds].map(([k, v]) => `${k} ${v.cases} (${v.accepted}) ${(v.ms / 1000).toFixed(1)} s`).join(', ')}; slowest ${slowest.ms.toFixed(0)} ms (${slowest.kind})`);
    // Every kind ran, and hostile kinds were refused: a generator that only produced valid files would prove nothing.
    assert.equal(kinds.size >= 10, true, `only ${kinds.size} kinds of case ran`);
    for (const k of ['bytes', 'deep', 'alias', 'huge', 'hostile-expression']) assert.ok((kinds.get(k)?.accepted ?? 0) < (kinds.get(k)?.cases ?? 1), `every ${k} case was accepted`);
  });

  test('the extremes, once each: 100,000 levels of YAML nesting, 4 MB files, 10 levels of alias bombs, 20,000 columns, 100,000-level expressions', async (t) => {
    const setup = await setUp();
    const r = new Rng(SEED);
    const cases: FuzzCase[] = [
      ...[0, 1, 2, 3].map((v) => ({ kind: `deep 100000 variant ${v}`, name: 'sale.yml', text: deepNesting(r, 100_000, v) })),
      ...[0, 1, 2, 3].map((v) => ({ kind: `huge 4 MB variant ${v}`, name: 'sale.yml', text: hugeText(r, 4_000_000, v) })),
      { kind: 'huge just under 1 MB', name: 'sale.yml', text: hugeText(r, 1_000_000, 3) },
      { kind: 'huge 20,000 columns', name: 'sale.yml', text: hugeText(r, 4_000_000, 2) },
      ...[0, 1, 2].map((w) => ({ kind: `alias 10 levels, variant ${w}`, name: 'sale.yml', text: aliasBomb(r, 10, w) })),
      { kind: 'alias bomb in entities.yml', name: ENTITIES_FILE, text: aliasBomb(r, 10, 0).replace(/^source.*\ntarget.*\n/, '') },
      ...['(', 'trim(', '-', 'not ', "'a' || "].map((open) => ({
        kind: `expression 100,000 × ${open}`,
        name: 'customer.yml',
        text: withExpression(r, setup.examples.find((e) => e.name === 'customer.yml')!.text, `${open.repeat(100_000)}name${open.endsWith('(') ? ')'.repeat(100_000) : ''}`),
      })),
    ];
    for (const [i, c] of cases.entries()) {
      const { accepted, ms } = runCase(setup, c, `extreme ${i} (${c.kind})`);
      assert.equal(accepted, false, `${c.kind} was accepted`);
      t.diagnostic(`${c.kind}: ${ms.toFixed(0)} ms`);
    }
  });

  test('the folder on disk: loadMappingDir reads hostile files with the same answers', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'branchline-fuzz-'));
    try {
      const rng = new Rng(SEED ^ 0x5bd1e995);
      const examples = await readExamples();
      for (const e of examples) await writeFile(path.join(dir, e.name), e.text);
      for (let i = 0; i < 20; i++) {
        const c = makeCase(rng, examples);
        await writeFile(path.join(dir, c.name), c.text);
        const { problems } = await loadMappingDir(dir);
        for (const p of problems) assert.ok(p.code in ERROR_CODES && p.location && p.location.line >= 1, `case ${i} (${c.kind}; seed ${SEED}): ${formatProblem(p)}`);
        const original = examples.find((e) => e.name === c.name);
        if (original) await writeFile(path.join(dir, c.name), original.text);
        else await rm(path.join(dir, c.name));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('branchline validate with hostile files: exit 2, every problem with its position, no stack trace', { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'branchline-fuzz-cli-'));
    try {
      const mappings = path.join(dir, 'mappings');
      await import('node:fs/promises').then((fs) => fs.mkdir(mappings));
      const examples = await readExamples();
      for (const e of examples) await writeFile(path.join(mappings, e.name), e.text);
      const rng = new Rng(SEED);
      await writeFile(path.join(mappings, 'sale.yml'), aliasBomb(rng, 12, 0));
      await writeFile(path.join(mappings, 'customer.yml'), `source: customer\ntarget: customer\ncolumns: ${'['.repeat(100_000)}\n`);
      await writeFile(path.join(mappings, 'stock.yml'), Buffer.from(Array.from({ length: 500 }, () => rng.int(256))));
      await writeFile(path.join(mappings, ENTITIES_FILE), `customer: !!js/function "function () { return 1 }"\n`);
      const port = await deadPort();
      const config = path.join(dir, 'branchline.yml');
      await writeFile(config, `hq:\n  url: postgres://u@127.0.0.1:${port}/hq\nstores:\n  - code: S001\n    url: postgres://u@127.0.0.1:${port}/s1\nmappings: mappings\n`);
      // The configuration as the CLI reads it (the mapping folder resolved next to it).
      assert.equal((await loadConfig(config)).mappingsDir, mappings);
      const m = await loadMappings(await loadConfig(config));
      assert.ok(m.problems.length >= 4, `the four hostile files each have a problem: ${m.problems.map(formatProblem).join('\n')}`);
      const r = await runCli(['validate', '--config', config]);
      assert.equal(r.code, 2, `exit code 2, got ${r.code}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /\n\s+at |TypeError|RangeError|ReferenceError/, r.stderr);
      for (const name of ['sale.yml', 'customer.yml', 'stock.yml', ENTITIES_FILE]) assert.match(r.stderr, new RegExp(`mappings/${name.replace('.', '\\.')}:\\d+:\\d+: BL-M00[12] `), `${name} named with its position in:\n${r.stderr.slice(0, 3000)}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
