import type { Knex } from 'knex';

/**
 * Mapping policies (issue 3): how many changes a policy left out at the
 * target (insert_only, on_delete: ignore), counted in the same transaction
 * as the rows and the position.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').alterTable('pipelines', (t) => {
    t.bigInteger('changes_ignored').notNullable().defaultTo(0).comment('changes a mapping policy left out (insert_only, on_delete: ignore)');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').alterTable('pipelines', (t) => {
    t.dropColumn('changes_ignored');
  });
}
