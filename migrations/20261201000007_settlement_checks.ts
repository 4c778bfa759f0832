import type { Knex } from 'knex';

/**
 * The audit of settlement checks (issue 6): one row per record asked about,
 * written by the side that asked before it answers its caller. At HQ: HQ
 * asking the stores; at a PostgreSQL store: the store asking HQ.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').createTable('settlement_checks', (t) => {
    t.bigIncrements('id').primary();
    t.timestamp('checked_at', { useTz: true }).notNullable().defaultTo(knex.raw('clock_timestamp()'));
    t.text('caller').notNullable().comment('who asked: the HTTP token name, or cli:<user>');
    t.text('asked').notNullable().comment('store: HQ asked the store the record came from; hq: a store asked HQ');
    t.text('store_code').notNullable();
    t.text('kind').notNullable();
    t.text('ref').notNullable();
    t.decimal('amount', null).notNullable().comment('the amount about to be settled');
    t.text('status').notNullable();
    t.decimal('origin_amount', null).comment('the amount the side asked holds');
    t.text('reason').comment('unavailable: unreachable | unknown | error');
    t.text('detail').notNullable();
    t.integer('duration_ms').notNullable();
    t.index(['store_code', 'kind', 'ref', 'checked_at']);
  });
  await knex.raw(`ALTER TABLE branchline.settlement_checks
    ADD CONSTRAINT settlement_checks_asked_check CHECK (asked IN ('store', 'hq')),
    ADD CONSTRAINT settlement_checks_status_check CHECK (status IN ('released', 'deleted', 'settled', 'amount_differs', 'unavailable')),
    ADD CONSTRAINT settlement_checks_reason_check CHECK ((status = 'unavailable') = (reason IS NOT NULL) AND reason IN ('unreachable', 'unknown', 'error'))`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').dropTableIfExists('settlement_checks');
}
