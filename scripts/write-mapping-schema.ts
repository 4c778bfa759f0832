/**
 * Writes schemas/mapping.schema.json from the TypeBox schema in
 * src/mapping/schema.ts. Run after changing the schema:
 *
 *   node --import tsx scripts/write-mapping-schema.ts
 *
 * (test/mapping-validate.test.ts fails while the committed file is stale.)
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { mappingJsonSchemaText } from '../src/mapping/schema.js';

const out = fileURLToPath(new URL('../schemas/mapping.schema.json', import.meta.url));
await writeFile(out, mappingJsonSchemaText());
process.stdout.write(`wrote ${out}\n`);
