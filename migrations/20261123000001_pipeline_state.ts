import type { Knex } from 'knex';

/**
 * Branchline's own state at a target database (HQ for the up channel):
 * the position of every pipeline, written in the same transaction as the
 * rows it covers, and the runtime status agents report.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').createTable('pipelines', (t) => {
    t.text('pipeline').primary().comment('e.g. up:S001');
    t.text('store_code').notNullable();
    t.text('direction').notNullable().comment('up (store -> HQ) or down (HQ -> store)');
    t.text('connector').notNullable();
    t.text('position_kind').notNullable().comment('how `position` is written, e.g. pg-lsn');
    t.text('position').notNullable().comment('last source position applied here, inclusive');
    t.timestamp('source_commit_time', { useTz: true }).comment('commit time of the last applied source transaction');
    t.timestamp('applied_at', { useTz: true }).notNullable();
    t.bigInteger('txns_applied').notNullable().defaultTo(0);
    t.bigInteger('rows_applied').notNullable().defaultTo(0);
    t.bigInteger('batches_applied').notNullable().defaultTo(0);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.schema.withSchema('branchline').createTable('pipeline_status', (t) => {
    t.text('pipeline').primary();
    t.text('agent').notNullable().comment('host:pid of the agent that reported');
    t.text('state').notNullable().comment('starting | streaming | backoff | stopped | failed');
    t.text('received_position');
    t.timestamp('oldest_unapplied_commit_time', { useTz: true });
    t.text('last_error_code');
    t.text('last_error');
    t.timestamp('last_error_at', { useTz: true });
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').dropTableIfExists('pipeline_status');
  await knex.schema.withSchema('branchline').dropTableIfExists('pipelines');
}
