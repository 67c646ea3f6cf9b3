// docs/plugin-sdk.md states the call contract: its arity table must be methodArity, and its
// example must be the one test/types/doc-example.ts keeps compiling.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { methodArity } from '../../shared/method-args.js';

const doc = readFileSync(new URL('../../docs/plugin-sdk.md', import.meta.url), 'utf8');

/** Per plugin type, each method of the doc's table and its arity there. */
function documentedArities(): { driver: Record<string, number>; device: Record<string, number> } {
  const table = doc.slice(doc.indexOf('| method |'), doc.indexOf('\n\n', doc.indexOf('| method |')));
  const found = { driver: {} as Record<string, number>, device: {} as Record<string, number> };
  for (const line of table.split('\n').slice(2)) {
    const cells = line.split('|').slice(1, -1);
    for (let i = 0; i + 2 < cells.length; i += 4) {
      const [methods, driver, device] = [cells[i]!, cells[i + 1]!.trim(), cells[i + 2]!.trim()];
      for (const [, name] of methods.matchAll(/`(\w+)\(/g)) {
        if (driver) found.driver[name!] = Number(driver);
        if (device) found.device[name!] = Number(device);
      }
    }
  }
  return found;
}

t.test('the arity table in the doc is methodArity', async (t) => {
  const documented = documentedArities();
  t.same(documented.driver, methodArity.driver);
  t.same(documented.device, methodArity.device);
});

t.test('the example in the doc is the one the type tests compile', async (t) => {
  const start = doc.indexOf('```ts\n') + '```ts\n'.length;
  const example = doc.slice(start, doc.indexOf('```\n', start)).replace("from 'taskhost/sdk'", "from '../../shared/index.js'");
  const compiled = readFileSync(new URL('../types/doc-example.ts', import.meta.url), 'utf8');
  t.equal(compiled.slice(compiled.indexOf('\n') + 1), example);
});
