import type { Knex } from 'knex';

/**
 * Scheduled down rows and shelf labels, at each store's database:
 * - `scheduled` gets an index by pipeline and mapping (a later change of a
 *   row, or a TRUNCATE, deletes that row's scheduled changes).
 * - `pending_labels`: shelf labels of price changes, written in the store
 *   transaction that applies the rows; a writer turns them into one PDF
 *   after the commit, runs the print command, and only then deletes them, so
 *   a crash in between writes them again (never loses them).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').alterTable('scheduled', (t) => {
    t.index(['pipeline', 'mapping'], 'scheduled_pipeline_mapping_idx');
  });
  await knex.schema.withSchema('branchline').createTable('pending_labels', (t) => {
    t.bigIncrements('id').primary();
    t.text('pipeline').notNullable();
    t.text('mapping').notNullable();
    t.text('code').notNullable();
    t.text('description');
    t.text('price').notNullable().comment('as the store holds it (text form)');
    t.text('previous_price').comment('the store\'s price before the change; null for a new row');
    t.text('currency');
    t.timestamp('effective_at', { useTz: true }).comment('when the price took effect (scheduled rows)');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.raw('clock_timestamp()'));
    t.index(['pipeline', 'id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').dropTableIfExists('pending_labels');
  await knex.schema.withSchema('branchline').alterTable('scheduled', (t) => {
    t.dropIndex(['pipeline', 'mapping'], 'scheduled_pipeline_mapping_idx');
  });
}
