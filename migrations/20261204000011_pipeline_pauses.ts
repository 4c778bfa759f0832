import type { Knex } from 'knex';

/**
 * Pipelines an operator paused (`branchline pause`): while a pipeline's row
 * is here, every agent leaves it stopped (a slot keeps the store's changes,
 * HQ's change log keeps the stores'); `branchline resume` deletes the row.
 * Times are HQ's clock.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').createTable('pipeline_pauses', (t) => {
    t.text('pipeline').primary().comment("'up:<store>' or 'down:<store>', as in branchline.pipelines");
    t.timestamp('paused_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('paused_by').notNullable().comment('who paused it (--by, default user@host)');
    t.text('reason').comment('why, as given with --reason');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').dropTableIfExists('pipeline_pauses');
}
