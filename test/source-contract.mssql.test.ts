import { randomBytes } from 'node:crypto';
import sql from 'mssql';
import { MssqlTriggerInstaller, MssqlTriggerSource, type RowversionPosition } from '../connectors/mssql-trigger/index.js';
import { mssqlConnect } from '../connectors/mssql-trigger/connect.js';
import { bind, originParams, quoteName, SET_ORIGIN_SQL } from '../connectors/mssql-trigger/sql.js';
import { silentLogger } from '../src/core/logger.js';
import { sourceContract } from './support/source-contract.js';
import type { ContractContext, ContractHarness, ContractOp, ContractWriter, OpenTransaction } from './support/source-contract-types.js';

/**
 * The shared source contract suite for `mssql-trigger`, against the SQL
 * Server in BRANCHLINE_TEST_MSSQL_URL (a login that may create databases).
 * Each setup creates a database of its own with the suite's `item` table
 * and installs the connector; dispose drops it. Without the variable the
 * suite is skipped with the reason printed.
 */
const SERVER_URL = process.env['BRANCHLINE_TEST_MSSQL_URL'];

function databaseUrl(serverUrl: string, database: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/** One operation on `item`: every value bound. */
function run(request: () => sql.Request, op: ContractOp): Promise<unknown> {
  switch (op.op) {
    case 'insert':
      return request()
        .input('id', sql.Int, op.row.id)
        .input('name', sql.NVarChar(200), op.row.name)
        .input('qty', sql.Int, op.row.qty)
        .query('INSERT INTO [dbo].[item] ([id], [name], [qty]) VALUES (@id, @name, @qty)');
    case 'update':
    case 'update-range': {
      // update-range: one statement over many rows (one trigger call, many rows).
      const r = op.op === 'update' ? request().input('id', sql.Int, op.id) : request().input('from', sql.Int, op.from).input('to', sql.Int, op.to);
      const sets: string[] = [];
      if (op.set.name !== undefined) {
        r.input('name', sql.NVarChar(200), op.set.name);
        sets.push('[name] = @name');
      }
      if (op.set.qty !== undefined) {
        r.input('qty', sql.Int, op.set.qty);
        sets.push('[qty] = @qty');
      }
      if (sets.length === 0) throw new Error('an update sets something');
      return r.query(`UPDATE [dbo].[item] SET ${sets.join(', ')} WHERE ${op.op === 'update' ? '[id] = @id' : '[id] BETWEEN @from AND @to'}`);
    }
    case 'delete':
      return request().input('id', sql.Int, op.id).query('DELETE FROM [dbo].[item] WHERE [id] = @id');
  }
}

async function inTransaction(pool: sql.ConnectionPool, fn: (tx: sql.Transaction) => Promise<void>): Promise<void> {
  const tx = new sql.Transaction(pool);
  await tx.begin();
  try {
    await fn(tx);
    await tx.commit();
  } catch (e) {
    await tx.rollback().catch(() => undefined);
    throw e;
  }
}

const harness: ContractHarness<RowversionPosition> = {
  name: 'mssql-trigger',
  unavailable: SERVER_URL ? null : 'BRANCHLINE_TEST_MSSQL_URL is not set: no SQL Server here, the mssql-trigger contract suite did not run',

  async setup(): Promise<ContractContext<RowversionPosition>> {
    const serverUrl = SERVER_URL!;
    const database = `bl_contract_${randomBytes(4).toString('hex')}`;
    const admin = await mssqlConnect(serverUrl, 'contract SQL Server');
    await admin.request().batch(`CREATE DATABASE ${quoteName(database)}`);
    const url = databaseUrl(serverUrl, database);
    const pool = await mssqlConnect(url, 'contract store');
    // branchline's own writes: a pool of its own, every session marked as HQ's.
    const branchline = await mssqlConnect(url, 'contract store (as branchline)');
    await pool.request().batch(`CREATE TABLE [dbo].[item] ([id] int NOT NULL PRIMARY KEY, [name] nvarchar(200) NULL, [qty] int NULL);
CREATE TABLE [dbo].[contract_scratch] ([id] int IDENTITY(1,1) NOT NULL PRIMARY KEY, [rv] rowversion NOT NULL);`);
    await new MssqlTriggerInstaller({ url, role: 'contract store', logger: silentLogger() }).install([{ schema: 'dbo', table: 'item' }]);

    const writer: ContractWriter = {
      transaction: (ops) =>
        inTransaction(pool, async (tx) => {
          for (const op of ops) await run(() => new sql.Request(tx), op);
        }),
      async begin(ops): Promise<OpenTransaction> {
        const tx = new sql.Transaction(pool);
        await tx.begin();
        // Takes a rowversion now, whatever ops holds.
        await new sql.Request(tx).query('INSERT INTO [dbo].[contract_scratch] DEFAULT VALUES');
        for (const op of ops) await run(() => new sql.Request(tx), op);
        return {
          run: async (more) => {
            for (const op of more) await run(() => new sql.Request(tx), op);
          },
          commit: () => tx.commit(),
          rollback: () => tx.rollback(),
        };
      },
      transactionAsBranchline: (ops) =>
        inTransaction(branchline, async (tx) => {
          await bind(new sql.Request(tx), originParams('HQ')).batch(SET_ORIGIN_SQL);
          for (const op of ops) await run(() => new sql.Request(tx), op);
        }),
    };

    return {
      table: { schema: 'dbo', table: 'item' },
      writer,
      source: () =>
        new MssqlTriggerSource({ url, role: 'contract store', logger: silentLogger(), pollMs: 50, pageRows: 100, reader: 'contract', skipOrigin: 'HQ' }),
      async dispose() {
        await pool.close().catch(() => undefined);
        await branchline.close().catch(() => undefined);
        await admin.request().batch(`ALTER DATABASE ${quoteName(database)} SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE ${quoteName(database)};`);
        await admin.close();
      },
    };
  },

  async close() {
    // Nothing started here: the server is the one in BRANCHLINE_TEST_MSSQL_URL.
  },
};

sourceContract(harness);
