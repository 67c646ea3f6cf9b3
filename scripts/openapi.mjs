// Writes docs/openapi.json from the agent's route schemas (agent/server-openapi.ts); run after
// changing a route: test/agent/openapi-doc.test.ts fails while the committed copy is stale.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openApiDocument } from '../agent/server-openapi.ts';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
writeFileSync(path.join(root, 'docs/openapi.json'), `${JSON.stringify(openApiDocument(), null, 2)}\n`);
console.log('wrote docs/openapi.json');
