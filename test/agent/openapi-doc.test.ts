// docs/openapi.json is generated from the route schemas; a stale copy fails here.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { openApiDocument } from '../../agent/server-openapi.js';

t.test('docs/openapi.json matches the route schemas', async (t) => {
  const committed = readFileSync(new URL('../../docs/openapi.json', import.meta.url), 'utf8');
  const generated = `${JSON.stringify(openApiDocument(), null, 2)}\n`;
  t.ok(committed === generated, 'docs/openapi.json is stale: run `npm run openapi` and commit the result');
});
