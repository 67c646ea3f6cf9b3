import { Writable } from 'node:stream';
import t from 'tap';
import { isPullEvent, PullProgressBar } from '../../cli/pull-progress.js';
import type { TaskEvent } from '../../shared/driver.js';

/** A terminal-like stream that keeps what is drawn. */
function terminal() {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  }) as unknown as NodeJS.WriteStream & { columns: number; isTTY: boolean };
  stream.isTTY = true;
  stream.columns = 120;
  return { stream, text: () => text };
}

const event = (message: string, a: Record<string, number>): TaskEvent => ({
  taskId: 'a/b/00000000',
  taskName: 'b',
  allocId: 'a',
  timestamp: new Date().toISOString(),
  message,
  annotations: Object.fromEntries(Object.entries({ image: 'x', ...a }).map(([k, v]) => [k, String(v)])),
});

t.test('pull events are told apart from the others', async (t) => {
  t.ok(isPullEvent(event('Pulling x', { layersTotal: 1, totalBytes: 0 })));
  t.notOk(isPullEvent({ annotations: { image: 'x' } }));
  t.notOk(isPullEvent({}));
});

t.test('the bar follows bytes, falls back to layers, and is full when the pull is done', async (t) => {
  const term = terminal();
  const bar = new PullProgressBar(term.stream);
  bar.update(
    event('Pulling x: 1 of 4 layers, 1.0 of 4.0 MiB', { currentBytes: 1 << 20, totalBytes: 4 << 20, layersDone: 1, layersTotal: 4 }),
  );
  bar.update(event('Pulled x: 4 of 4 layers', { currentBytes: 3 << 20, totalBytes: 4 << 20, layersDone: 4, layersTotal: 4 }));
  bar.stop();
  t.match(term.text(), /25% Pulling x: 1 of 4 layers/);
  t.match(term.text(), /100% Pulled x: 4 of 4 layers/);
  const layers = terminal();
  const byLayers = new PullProgressBar(layers.stream);
  byLayers.update(event('Pulling y: 1 of 2 layers', { currentBytes: 0, totalBytes: 0, layersDone: 1, layersTotal: 2 }));
  byLayers.stop();
  t.match(layers.text(), /50% Pulling y/);
  byLayers.stop();
  t.pass('stop twice is harmless');
});
