import type { Knex } from 'knex';

/**
 * Central configuration (issue 4): every configuration HQ published with
 * `branchline config push`, newest = current. A version holds the
 * configuration file's text as written (its `${VAR}` references unresolved:
 * secrets stay in each host's environment) and every file of its mapping
 * folder, by path relative to that folder. Rows are never updated; a store
 * agent runs only what it pulled from here.
 *
 * `sha256` is not unique: publishing an earlier content again after another
 * one (a roll-back) is a new version. `push` stores nothing when the content
 * equals the newest version's.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE branchline.config_versions (
      version      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      published_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      published_by text,
      sha256       text NOT NULL CONSTRAINT config_versions_sha256_check CHECK (sha256 ~ '^[0-9a-f]{64}$'),
      config_text  text NOT NULL,
      files        jsonb NOT NULL CONSTRAINT config_versions_files_check CHECK (jsonb_typeof(files) = 'object'),
      note         text
    )`);
  await knex.raw(`CREATE INDEX config_versions_sha256_idx ON branchline.config_versions (sha256)`);
  await knex.raw(`COMMENT ON COLUMN branchline.config_versions.sha256 IS 'sha256 of the configuration text and the files (see src/config/central-bundle.ts)'`);
  await knex.raw(`COMMENT ON COLUMN branchline.config_versions.files IS 'mapping folder: path relative to it -> file text'`);
  await knex.raw(`
    CREATE VIEW branchline.config_current AS
      SELECT * FROM branchline.config_versions ORDER BY version DESC LIMIT 1`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`DROP VIEW IF EXISTS branchline.config_current`);
  await knex.raw(`DROP TABLE IF EXISTS branchline.config_versions`);
}
