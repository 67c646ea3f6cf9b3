#!/usr/bin/env node
// The taskhost command. Runs the compiled CLI in dist/ (built by `npm ci` / `npm run build`).
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(compiled)) {
  process.stderr.write('taskhost: dist/ is missing; run "npm run build" (npm ci runs it for you)\n');
  process.exit(2);
}
const { main } = await import(compiled.href);
process.exitCode = await main(process.argv.slice(2));
