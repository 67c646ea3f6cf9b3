// `taskhost logs`, `events` and `images` in-process, against a fake agent on a real unix socket
// that answers as design.md section 10 says (the agent's own routes for them are built apart):
// what the commands ask for, what they print, and what a user sees when the stream breaks.
import type http from 'node:http';
import t from 'tap';
import { main } from '../../cli/main.js';
import { fakeAgent, sendError, sendJson } from '../helpers/fake-agent.js';
import { runCli } from '../helpers/run-cli.js';

const id = '6f1c2a9e-5b1d-4c3e-9a7f-0d2b4e6f8a1c/web/0123abcd';
const logsPath = `/v1/tasks/${encodeURIComponent(id)}/logs`;
const tick = () => new Promise((resolve) => setTimeout(resolve, 20));

/** Runs the CLI and keeps stdout as bytes: logs are raw. */
async function runBytes(args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  const out: Buffer[] = [];
  let stderr = '';
  const code = await main(args, {
    stdout: { write: (s: string | Uint8Array) => out.push(Buffer.from(s)) },
    stderr: { write: (s: string | Uint8Array) => (stderr += s.toString()) },
  });
  return { code, stdout: Buffer.concat(out), stderr };
}

t.test('logs prints the bytes as the agent sends them, and asks for the stream, offset and follow given', async (t) => {
  const bytes = Buffer.from([0x68, 0x69, 0x0a, 0xff, 0x00, 0xfe, 0x0a]);
  const { socket, seen } = await fakeAgent(t, async (req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    // In pieces, as a followed file grows.
    res.write(bytes.subarray(0, 3));
    await tick();
    res.end(bytes.subarray(3));
  });
  const plain = await runBytes(['logs', id, '--agent', socket]);
  t.equal(plain.code, 0);
  t.same(plain.stdout, bytes, 'every byte, none turned into text');
  t.equal(plain.stderr, '');
  t.equal(seen[0]!.path, logsPath, 'the id is URL-encoded in the path');
  t.same(Object.fromEntries(seen[0]!.query), { type: 'stdout' });

  const followed = await runBytes(['logs', id, '-f', '--stderr', '--offset', '5', '--agent', socket, '--namespace', 'team-a']);
  t.equal(followed.code, 0, 'ends when the agent ends the stream (the task completed)');
  t.same(Object.fromEntries(seen[1]!.query), { type: 'stderr', follow: 'true', offset: '5' });
  t.equal(seen[1]!.headers['taskhost-namespace'], 'team-a');

  const bad = await runCli(['logs', id, '--offset', '-1', '--agent', socket]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--offset must be a non-negative integer, got "-1"/);
});

t.test('logs of an unknown task is the agent’s error on one line', async (t) => {
  const { socket } = await fakeAgent(t, (_req, res) =>
    sendError(res, 404, 'TASK_NOT_FOUND', `namespace "default" has no task with id ${id}`),
  );
  const { code, stdout, stderr } = await runCli(['logs', id, '--agent', socket]);
  t.equal(code, 1);
  t.equal(stdout, '');
  t.equal(stderr, `error: TASK_NOT_FOUND: namespace "default" has no task with id ${id}\n`);
});

t.test('logs -f: an agent that goes away mid-stream is an error that says where to read on', async (t) => {
  const { socket } = await fakeAgent(t, async (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.write('12345');
    await tick();
    res.socket!.destroy();
  });
  const { code, stdout, stderr } = await runCli(['logs', id, '-f', '--offset', '10', '--agent', socket]);
  t.equal(code, 1);
  t.equal(stdout, '12345');
  t.match(stderr, /^error: AGENT_UNREACHABLE: the agent on .* closed the connection while it sent the logs.*; read on with --offset 15\n$/);
});

const events = [
  { index: 7, topic: 'tasks', type: 'created', key: `default/${id}`, payload: { state: 'pending' } },
  { index: 8, topic: 'tasks', type: 'updated', key: `default/${id}`, payload: { state: 'exited', exitResult: { exitCode: 3 } } },
  { index: 9, topic: 'images', type: 'deleted', key: 'default/busybox:1.35@sha256:ab', payload: null },
];

/** Sends the events as NDJSON in chunks that split lines, then ends, or breaks the connection. */
function eventStream(end: 'end' | 'break') {
  return async (_req: unknown, res: http.ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const text = events.map((e) => JSON.stringify(e) + '\n').join('');
    for (const piece of [text.slice(0, 10), text.slice(10, 100), text.slice(100)]) {
      res.write(piece);
      await tick();
    }
    if (end === 'end') res.end();
    else res.socket!.destroy();
  };
}

t.test('events prints one line per event; --json passes the NDJSON lines through', async (t) => {
  const { socket, seen } = await fakeAgent(t, eventStream('end'));
  const human = await runCli(['events', '--agent', socket]);
  t.equal(human.code, 0);
  const lines = human.stdout.trimEnd().split('\n');
  t.equal(lines.length, 3);
  t.match(lines[0], /^\s+7 {2}tasks\s+created\s+default\/6f1c.*\/web\/0123abcd {2}state=pending$/);
  t.match(lines[1], /^\s+8 {2}tasks\s+updated .* state=exited exitCode=3$/);
  t.match(lines[2], /^\s+9 {2}images\s+deleted\s+default\/busybox:1\.35@sha256:ab$/);
  t.equal(seen[0]!.path, '/v1/events');
  t.same([...seen[0]!.query.keys()], [], 'no index unless asked for');

  const json = await runCli(['events', '--index', '6', '--json', '--agent', socket]);
  t.equal(json.code, 0);
  t.same(
    json.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown),
    events,
    'each line one event, whole',
  );
  t.equal(seen[1]!.query.get('index'), '6');
});

t.test('events: a broken stream says which index to resume from; an index the agent no longer has is its error', async (t) => {
  const broken = await fakeAgent(t, eventStream('break'));
  const { code, stdout, stderr } = await runCli(['events', '--agent', broken.socket]);
  t.equal(code, 1);
  t.equal(stdout.trimEnd().split('\n').length, 3, 'the events before the break were printed');
  t.match(stderr, /^error: AGENT_UNREACHABLE: .*closed the connection while it sent the events.*; resume with --index 9\n$/);

  const expired = await fakeAgent(t, (_req, res) =>
    sendError(res, 410, 'EVENT_INDEX_UNAVAILABLE', 'events after 2 were dropped from the history: list the records again', {
      reason: 'expired',
      oldestIndex: 40,
    }),
  );
  const gone = await runCli(['events', '--index', '2', '--agent', expired.socket]);
  t.equal(gone.code, 1);
  t.equal(gone.stderr, 'error: EVENT_INDEX_UNAVAILABLE: events after 2 were dropped from the history: list the records again\n');
});

t.test('images: a table of name, short id and digest, size, users and last use; --json is the document', async (t) => {
  const now = Date.now();
  const images = [
    {
      name: 'busybox:1.35',
      id: 'sha256:0123456789abcdef0123456789abcdef',
      digest: 'sha256:fedcba9876543210fedcba9876543210',
      sizeBytes: 4_261_000,
      users: [id, 'a2/db/00000001'],
      lastUsedAt: new Date(now - 5 * 60_000).toISOString(),
    },
    { name: 'busybox:1.36', id: 'sha256:aaaaaaaaaaaabbbbbbbb', sizeBytes: 512, users: [] },
  ];
  let answer: unknown = { images };
  const { socket, seen } = await fakeAgent(t, (_req, res) => sendJson(res, 200, answer));
  const human = await runCli(['images', '--agent', socket]);
  t.equal(human.code, 0);
  const [header, first, second] = human.stdout.trimEnd().split('\n');
  t.match(header, /^NAME\s+ID\s+DIGEST\s+SIZE\s+USERS\s+LAST USED$/);
  t.match(first, /^busybox:1\.35\s+0123456789ab\s+fedcba987654\s+4\.3MB\s+2\s+5m ago$/);
  t.match(second, /^busybox:1\.36\s+aaaaaaaaaaaa\s+-\s+512B\s+0\s+-$/);
  t.equal(seen[0]!.path, '/v1/images');

  const json = await runCli(['images', '--json', '--agent', socket]);
  t.same(JSON.parse(json.stdout), { images });

  answer = { images: [] };
  t.equal((await runCli(['images', '--agent', socket])).stdout, 'no images recorded\n');
});
