import knexFactory, { type Knex } from 'knex';
import * as pipelineState from '../../migrations/20261123000001_pipeline_state.js';
import * as mappingPolicies from '../../migrations/20261123000002_mapping_policies.js';
import * as associationsParking from '../../migrations/20261123000003_associations_parking.js';
import * as downChannel from '../../migrations/20261123000004_down_channel.js';
import * as centralConfig from '../../migrations/20261123000005_central_config.js';
import * as scheduledLabels from '../../migrations/20261201000006_scheduled_labels.js';
import * as settlementChecks from '../../migrations/20261201000007_settlement_checks.js';
import * as reportRuns from '../../migrations/20261202000008_report_runs.js';
import * as reconcileRuns from '../../migrations/20261202000009_reconcile_runs.js';
import * as storeLeases from '../../migrations/20261202000010_store_leases.js';
import * as pipelinePauses from '../../migrations/20261204000011_pipeline_pauses.js';
import { MIGRATION_NAMES } from './schema-version.js';
import { connectionError, clientConfig, isConnectionError } from '../db/connect.js';

export const STATE_SCHEMA = 'branchline';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/** Every migration in `migrations/`, in order. Listed here so compiled and tsx runs see the same set. */
const MODULES: readonly Migration[] = [pipelineState, mappingPolicies, associationsParking, downChannel, centralConfig, scheduledLabels, settlementChecks, reportRuns, reconcileRuns, storeLeases, pipelinePauses];
const MIGRATIONS: ReadonlyArray<readonly [string, Migration]> = MIGRATION_NAMES.map((name, i) => [name, MODULES[i]!] as const);

class StaticMigrationSource implements Knex.MigrationSource<Migration> {
  getMigrations(): Promise<Migration[]> {
    return Promise.resolve(MIGRATIONS.map(([, m]) => m));
  }
  getMigrationName(migration: Migration): string {
    const found = MIGRATIONS.find(([, m]) => m === migration);
    if (!found) throw new Error('unknown migration');
    return found[0];
  }
  getMigration(migration: Migration): Promise<Migration> {
    return Promise.resolve(migration);
  }
}

function knexFor(url: string): Knex {
  return knexFactory({
    client: 'pg',
    connection: clientConfig(url, { role: 'HQ', applicationName: 'branchline-migrate' }) as Knex.PgConnectionConfig,
    pool: { min: 0, max: 1 },
  });
}

/**
 * Brings branchline's schema at a database up to date (idempotent; knex's
 * lock makes concurrent runs safe). Returns the migrations it applied.
 */
export async function migrateLatest(url: string, role = 'HQ'): Promise<string[]> {
  const knex = knexFor(url);
  try {
    await knex.raw(`CREATE SCHEMA IF NOT EXISTS ${STATE_SCHEMA}`);
    const [, applied] = (await knex.migrate.latest({
      migrationSource: new StaticMigrationSource(),
      schemaName: STATE_SCHEMA,
      tableName: 'knex_migrations',
    })) as [number, string[]];
    return applied;
  } catch (e) {
    if (isConnectionError(e)) throw connectionError(e, url, role);
    throw e;
  } finally {
    await knex.destroy();
  }
}

/** Removes branchline's schema and everything in it. */
export async function dropState(url: string, role = 'HQ'): Promise<void> {
  const knex = knexFor(url);
  try {
    await knex.raw(`DROP SCHEMA IF EXISTS ${STATE_SCHEMA} CASCADE`);
  } catch (e) {
    if (isConnectionError(e)) throw connectionError(e, url, role);
    throw e;
  } finally {
    await knex.destroy();
  }
}
