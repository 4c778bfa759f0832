import type { Knex } from 'knex';

/**
 * ID association and parking (issue 3).
 * - `associations`: per store and entity, the store's code <-> HQ's key
 *   (unique both ways, so HQ keys translate back to a store's codes).
 * - `parked`: changes that could not be applied (a missing association, a
 *   row HQ rejected, an expression that failed on the row), with the source
 *   change itself so a retry maps it again; written in the batch transaction
 *   that moves the position past it, so none is lost or parked twice.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').createTable('associations', (t) => {
    t.text('store_code').notNullable();
    t.text('entity').notNullable();
    t.text('branch_code').notNullable().comment("the store's code, as text");
    t.text('hq_key').notNullable().comment("HQ's key, as text (cast to the target column's type on apply)");
    t.text('origin').notNullable().comment('allocated | manual | import');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.raw('clock_timestamp()'));
    t.text('created_by');
    t.primary(['store_code', 'entity', 'branch_code']);
    t.unique(['store_code', 'entity', 'hq_key']);
  });
  await knex.raw(`ALTER TABLE branchline.associations ADD CONSTRAINT associations_origin_check CHECK (origin IN ('allocated', 'manual', 'import'))`);
  await knex.schema.withSchema('branchline').createTable('parked', (t) => {
    t.bigIncrements('id').primary();
    t.text('pipeline').notNullable();
    t.text('store_code').notNullable();
    t.text('mapping').notNullable().comment('mapping file name');
    t.text('target_table').notNullable();
    t.specificType('row_keys', 'text[]').notNullable().comment('target keys (store side, JSON) of the row; later changes to it park behind');
    t.text('reason_code').notNullable();
    t.text('reason').notNullable();
    t.text('entity').comment('BL-M021: the entity whose association is missing');
    t.text('branch_code').comment("BL-M021: the store's code that is not associated");
    t.jsonb('change').notNullable().comment('the source change: op, table, before, after');
    t.text('source_position').comment("the source transaction's commit position (store LSN)");
    t.bigInteger('source_xid');
    t.timestamp('source_commit_time', { useTz: true });
    t.timestamp('parked_at', { useTz: true }).notNullable().defaultTo(knex.raw('clock_timestamp()'));
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('last_attempt_at', { useTz: true });
    t.timestamp('retry_requested_at', { useTz: true });
    t.text('status').notNullable().defaultTo('parked').comment('parked | discarded');
    t.timestamp('discarded_at', { useTz: true });
    t.text('discarded_by');
    t.text('discard_reason');
  });
  await knex.raw(`ALTER TABLE branchline.parked ADD CONSTRAINT parked_status_check CHECK (status IN ('parked', 'discarded'))`);
  await knex.raw(`CREATE INDEX parked_pipeline_idx ON branchline.parked (pipeline, id) WHERE status = 'parked'`);
  await knex.raw(`CREATE INDEX parked_waiting_idx ON branchline.parked (store_code, entity, branch_code) WHERE status = 'parked'`);
  await knex.schema.withSchema('branchline').alterTable('pipelines', (t) => {
    t.bigInteger('changes_parked').notNullable().defaultTo(0).comment('changes ever parked (the parked table holds those still waiting)');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').alterTable('pipelines', (t) => {
    t.dropColumn('changes_parked');
  });
  await knex.schema.withSchema('branchline').dropTableIfExists('parked');
  await knex.schema.withSchema('branchline').dropTableIfExists('associations');
}
