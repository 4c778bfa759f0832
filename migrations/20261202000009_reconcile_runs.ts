import type { Knex } from 'knex';

/**
 * Reconciliations at HQ (issue 7): one row per `branchline reconcile` run,
 * what it found and fixed per table, so the scheduled report can say what
 * the period's comparisons found.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').createTable('reconcile_runs', (t) => {
    t.bigIncrements('id').primary();
    t.text('store_code').notNullable();
    t.timestamp('run_at', { useTz: true }).notNullable().defaultTo(knex.raw('clock_timestamp()'));
    t.integer('differences').notNullable().comment('rows not equal when compared');
    t.boolean('fixed').notNullable().comment('--fix repaired them');
    t.jsonb('tables').notNullable().comment('per mapping: direction, missing, different, extra, resent, removed, skipped');
    t.index(['store_code', 'run_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').dropTableIfExists('reconcile_runs');
}
