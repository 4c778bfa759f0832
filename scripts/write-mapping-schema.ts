/**
 * Writes schemas/mapping.schema.json and schemas/entities.schema.json from
 * the TypeBox schemas in src/mapping/schema.ts and src/mapping/entities.ts.
 * Run after changing either:
 *
 *   node --import tsx scripts/write-mapping-schema.ts
 *
 * (test/mapping-validate.test.ts fails while a committed file is stale.)
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { mappingJsonSchemaText } from '../src/mapping/schema.js';
import { entitiesJsonSchemaText } from '../src/mapping/entities.js';

for (const [name, text] of [
  ['mapping.schema.json', mappingJsonSchemaText()],
  ['entities.schema.json', entitiesJsonSchemaText()],
] as const) {
  const out = fileURLToPath(new URL(`../schemas/${name}`, import.meta.url));
  await writeFile(out, text);
  process.stdout.write(`wrote ${out}\n`);
}
