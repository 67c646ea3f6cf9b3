// docs/error-codes.md is the one table of error codes a user reads: it must list every code the
// host can raise, with its class and its default recoverability, and no code that does not exist.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { errorCodes } from '../../shared/errors.js';

const doc = readFileSync(new URL('../../docs/error-codes.md', import.meta.url), 'utf8');
const rows = new Map(
  [...doc.matchAll(/^\| `([A-Z_]+)` \| `(\w+)` \| (yes|no) \|/gm)].map(([, code, name, recoverable]) => [code!, { name, recoverable }]),
);

t.test('every error code is documented with its class and recoverability', async (t) => {
  for (const [code, ErrorClass] of errorCodes) {
    t.same(rows.get(code), { name: ErrorClass.name, recoverable: ErrorClass.recoverable ? 'yes' : 'no' }, code);
  }
});

t.test('the table names no code that does not exist', async (t) => {
  t.same(
    [...rows.keys()].filter((code) => !errorCodes.has(code)),
    [],
  );
});
