import type { Knex } from 'knex';

/**
 * Several agents at HQ (issue 8): each agent's heartbeat, and one lease per
 * store saying which agent runs that store's pipelines until when. Every
 * time in these tables is HQ's clock (`now()`), never an agent's.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').createTable('agents', (t) => {
    t.text('id').primary().comment('lease.agent_id (default <hostname>:<pid>)');
    t.text('instance').notNullable().comment('random per process: two live agents with the same id are told apart (BL-A005)');
    t.timestamp('heartbeat', { useTz: true }).notNullable().comment('HQ time of its last lease round; older than its ttl: not counted as live');
    t.integer('ttl_s').notNullable();
    t.timestamp('started', { useTz: true }).notNullable();
  });
  await knex.schema.withSchema('branchline').createTable('store_leases', (t) => {
    t.text('store_code').primary();
    t.text('holder').comment('the agent id running this store\'s pipelines; null: free');
    t.timestamp('expires_at', { useTz: true }).comment('HQ time after which any agent may take it');
    t.bigInteger('generation').notNullable().defaultTo(0).comment('+1 each time the lease is taken');
    t.timestamp('taken_at', { useTz: true });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.withSchema('branchline').dropTableIfExists('store_leases');
  await knex.schema.withSchema('branchline').dropTableIfExists('agents');
}
