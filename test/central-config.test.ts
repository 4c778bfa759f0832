import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bundleSha256, isSafeBundlePath } from '../src/config/central-bundle.js';
import { envScalars, placeholderFor, referenceEnv } from '../src/config/central-env.js';
import { parseConfig } from '../src/config/load.js';
import { YamlDoc } from '../src/config/yaml-doc.js';

/**
 * The pure parts of central configuration: how a published configuration's
 * `${VAR}` references are checked where their values are not known, and the
 * bundle's checksum and file names. The rest is in central-config.pg.test.ts.
 */

describe('central configuration: placeholders for ${VAR} references', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-central-env-'));
    await mkdir(path.join(dir, 'mappings'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const TEXT = `hq:
  url: \${HQ_URL}
stores:
  - code: S001
    url: postgres://u:\${PW}@h/db
    slot: shared
    enabled: \${ENABLED}
  - code: S002
    url: postgres://u:\${PW}@h/db
    slot: shared
mappings: mappings
batch:
  max_rows: \${ROWS}
  max_delay_ms: \${DELAY:-250}
apply:
  statement_timeout_ms: \${TIMEOUT}
  session_replication_role: \${ROLE}
log:
  level: \${LEVEL}
`;

  it('each reference gets a value its position accepts, and defaults apply', async () => {
    const file = path.join(dir, 'branchline.yml');
    const { doc } = YamlDoc.parse(file, TEXT, 'BL-C002');
    assert.ok(doc);
    const scalars = envScalars(doc);
    assert.deepEqual(
      scalars.map((s) => [s.path.join('.'), s.whole, s.refs.map((r) => `${r.name}${r.hasDefault ? ':-' : ''}`).join(',')]),
      [
        ['hq.url', true, 'HQ_URL'],
        ['stores.0.url', false, 'PW'],
        ['stores.0.enabled', true, 'ENABLED'],
        ['stores.1.url', false, 'PW'],
        ['batch.max_rows', true, 'ROWS'],
        ['batch.max_delay_ms', true, 'DELAY:-'],
        ['apply.statement_timeout_ms', true, 'TIMEOUT'],
        ['apply.session_replication_role', true, 'ROLE'],
        ['log.level', true, 'LEVEL'],
      ],
    );
    const env = referenceEnv(scalars, {}, (s, ref, n) => (ref.hasDefault ? undefined : placeholderFor(s, n)));
    // Two stores with the same URL text and slot would share a slot: each reference gets its own value, so they do not.
    const config = await parseConfig(file, TEXT, env);
    assert.equal(config.batch.maxRows, 1);
    assert.equal(config.batch.maxDelayMs, 250);
    assert.equal(config.apply.statementTimeoutMs, 1000);
    assert.equal(config.apply.sessionReplicationRole, 'origin');
    assert.equal(config.log.level, 'error');
    assert.equal(config.stores[0]!.enabled, true);
    assert.notEqual(config.stores[0]!.url, config.stores[1]!.url);
    assert.match(config.hq.url, /^postgres:\/\/placeholder\//);
  });

  it('names that are not referenced read from the base environment', () => {
    const env = referenceEnv([], { OTHER: 'x' }, () => 'never');
    assert.equal(env['OTHER'], 'x');
    assert.equal(env['NOPE'], undefined);
  });
});

describe('central configuration: bundles', () => {
  it('the sha256 does not depend on the order of the files', () => {
    const a = bundleSha256({ configText: 'hq: {}\n', files: { 'b.yml': 'B', 'a.yml': 'A', 'down/c.yml': 'C' } });
    const b = bundleSha256({ configText: 'hq: {}\n', files: { 'down/c.yml': 'C', 'a.yml': 'A', 'b.yml': 'B' } });
    assert.equal(a, b);
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.notEqual(a, bundleSha256({ configText: 'hq: {}\n', files: { 'a.yml': 'A', 'b.yml': 'B' } }));
    assert.notEqual(a, bundleSha256({ configText: 'hq: {} \n', files: { 'b.yml': 'B', 'a.yml': 'A', 'down/c.yml': 'C' } }));
  });

  it('only plain relative file names are written from a published version', () => {
    for (const ok of ['sale.yml', 'down/price.yml', 'a/b/c.csv']) assert.ok(isSafeBundlePath(ok), ok);
    for (const bad of ['', '/etc/passwd', '../x.yml', 'a/../../x', 'a//b', './a', '.hidden', 'a/.git/config', 'a\\b', 'a\u0000b'])
      assert.ok(!isSafeBundlePath(bad), JSON.stringify(bad));
  });
});
