import type { Knex } from 'knex';

/**
 * The down channel (issue 4), at each store's database:
 * - `initial_loads`: progress of `branchline snapshot`, per pipeline and
 *   source table (the last key copied commits with the rows it covers, so
 *   an interrupted load resumes where it stopped), and the change-log
 *   position the load is consistent with.
 * - `scheduled`: down changes that take effect later (`effective_at`),
 *   written in the batch transaction that moves the position past them and
 *   applied (and deleted) in one transaction when due.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').createTable('initial_loads', (t) => {
    t.text('pipeline').notNullable();
    t.text('source_table').notNullable();
    t.text('status').notNullable().comment('copying | done');
    t.text('snapshot').notNullable().comment('the HQ snapshot (pg_snapshot text) the load started from');
    t.text('position').notNullable().comment('the change-log position the down pipeline starts from once every table is done');
    t.jsonb('last_key').comment('keyset: the last source key copied (JSON array of text values)');
    t.bigInteger('rows_copied').notNullable().defaultTo(0);
    t.bigInteger('rows_total').comment('estimate when the load started');
    t.timestamp('started_at', { useTz: true }).notNullable().defaultTo(knex.raw('clock_timestamp()'));
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.raw('clock_timestamp()'));
    t.timestamp('finished_at', { useTz: true });
    t.primary(['pipeline', 'source_table']);
  });
  await knex.raw(`ALTER TABLE branchline.initial_loads ADD CONSTRAINT initial_loads_status_check CHECK (status IN ('copying', 'done'))`);
  await knex.schema.withSchema('branchline').createTable('scheduled', (t) => {
    t.bigIncrements('id').primary();
    t.text('pipeline').notNullable();
    t.text('mapping').notNullable();
    t.text('target_table').notNullable();
    t.specificType('row_keys', 'text[]').notNullable();
    t.timestamp('effective_at', { useTz: true }).notNullable();
    t.jsonb('change').notNullable().comment('the source change: op, table, before, after');
    t.timestamp('source_commit_time', { useTz: true });
    t.timestamp('scheduled_at', { useTz: true }).notNullable().defaultTo(knex.raw('clock_timestamp()'));
    t.index(['pipeline', 'effective_at', 'id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').dropTableIfExists('scheduled');
  await knex.schema.withSchema('branchline').dropTableIfExists('initial_loads');
}
