import type { Knex } from 'knex';

/**
 * The scheduled reports (issue 7) at HQ: one row per report, claimed by the
 * agent that writes it (so two agents with the same schedule send it once),
 * with the counters at its end, from which the next report's figures for
 * its period are the differences.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').createTable('report_runs', (t) => {
    t.bigIncrements('id').primary();
    t.timestamp('period_start', { useTz: true }).comment('null: the first report (it counts since the pipelines began)');
    t.timestamp('period_end', { useTz: true }).notNullable().unique();
    t.jsonb('counters').notNullable().comment('rows applied per pipeline at period_end, e.g. {"up:S001": 120, "down:S001": 7}');
    t.text('file').comment('where the report was written');
    t.specificType('emailed_to', 'text[]');
    t.text('error').comment('why writing or sending failed');
    t.text('agent').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.raw('clock_timestamp()'));
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').dropTableIfExists('report_runs');
}
