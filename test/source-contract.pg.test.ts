import { after } from 'node:test';
import { pgContractHarnesses } from './support/pg-contract-harness.js';
import { sourceContract } from './support/source-contract.js';

/**
 * The shared source contract (test/support/source-contract.ts) on real
 * PostgreSQL, for both of its sources: `pg-logical` (a slot, pgoutput) and
 * `pg-trigger` (the trigger-fed change log), on one embedded server.
 */
const pg = pgContractHarnesses();
after(() => pg.close());

sourceContract(pg.logical);
sourceContract(pg.trigger);
