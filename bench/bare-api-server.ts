/**
 * The API benchmark's peer, a child process: the least a task API can do with the same parts.
 * A bare fastify server (no schemas, no validation, no namespaces, no filter language) on a
 * unix socket, over its own LMDB environment opened as the agent opens its store (JSON values,
 * no compression, `overlappingSync: false`, so an awaited write is on disk too):
 *
 *   GET  /v1/tasks?filter=labels.K==V   an LMDB range read of every task, kept when labels.K is V
 *   POST /v1/tasks                      the body stamped with an id and times, put and awaited, 201
 *
 * The records of `<records.json>` are written to its store before it listens, so the range read
 * scans what the agent's list scans.
 *
 *   node dist/bench/bare-api-server.js <socket> <store dir> <records.json>
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fastify } from 'fastify';
import { open } from 'lmdb';

const [socket, storePath, recordsFile] = process.argv.slice(2);
if (!socket || !storePath || !recordsFile) {
  process.stderr.write('usage: bare-api-server.js <socket> <store dir> <records.json>\n');
  process.exit(2);
}
const db = open({ path: storePath, encoding: 'json', compression: false, overlappingSync: false });
const prefix = 'tasks/';
const records = JSON.parse(readFileSync(recordsFile, 'utf8')) as { id: string; labels: Record<string, string> }[];
await db.transaction(() => {
  for (const r of records) void db.put(`${prefix}${r.id}`, r);
});

const app = fastify();
app.get('/v1/tasks', async (request) => {
  const filter = (request.query as { filter?: string }).filter ?? '';
  const match = /^labels\.([^=]+)==(.*)$/.exec(filter);
  const tasks: unknown[] = [];
  for (const { value } of db.getRange({ start: prefix, end: `${prefix}\uffff` })) {
    const record = value as { labels: Record<string, string> };
    if (!match || record.labels[match[1]!] === match[2]) tasks.push(record);
  }
  return { tasks };
});
app.post('/v1/tasks', async (request, reply) => {
  const now = new Date().toISOString();
  const record = { ...(request.body as object), id: randomUUID(), state: 'pending', createdAt: now, updatedAt: now };
  await db.put(`${prefix}${record.id}`, record);
  reply.code(201);
  return record;
});
await app.listen({ path: socket });
process.stdout.write('listening\n');
process.once('SIGTERM', () => {
  void app
    .close()
    .then(() => db.close())
    .finally(() => process.exit(0));
});
