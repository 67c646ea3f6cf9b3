// bench:devices counts missed ticks and staleness with SampleRecorder; a wrong count would make
// the benchmark's PASS on "no missed tick" meaningless, so its rules are pinned here.
import t from 'tap';
import { SampleRecorder } from '../../bench/sample-recorder.js';

const interval = 1_000;

function recorded(arrivals: Record<string, number[]>, windowMs: number) {
  const recorder = new SampleRecorder(interval);
  recorder.record('a', 0, 1); // before the window: ignored
  recorder.open(0, Object.keys(arrivals));
  for (const [plugin, times] of Object.entries(arrivals)) for (const at of times) recorder.record(plugin, at - 2, at);
  recorder.close(windowMs);
  recorder.record('a', windowMs, windowMs + 1); // after it: ignored
  return recorder.figures();
}

t.test('a plugin on time every interval misses nothing, whatever its phase', async (t) => {
  for (const phase of [1, 400, 999]) {
    const times = [0, 1, 2, 3, 4].map((k) => phase + k * interval + (k % 2 ? 30 : -0.5));
    const f = recorded({ a: times }, 5_000);
    t.equal(f.missedTicks, 0, `phase ${phase}`);
    t.equal(f.messages, 5);
    t.equal(f.expectedTicks, 5);
  }
});

t.test('a silent interval is one missed tick; a silent plugin misses every tick', async (t) => {
  const gap = recorded({ a: [500, 1_500, 3_500, 4_500] }, 5_000);
  t.equal(gap.missedTicks, 1, 'the tick at 2500 never came');
  t.equal(gap.longestGapMs, 2_000);
  const late = recorded({ a: [500, 1_500, 2_500] }, 5_000);
  t.equal(late.missedTicks, 2, 'it stopped sending: the ticks at 3500 and 4500 are missed');
  const silent = recorded({ a: [500, 1_500, 2_500, 3_500, 4_500], b: [] }, 5_000);
  t.equal(silent.missedTicks, 4, 'all but one tick of the window (its edges are not arrivals)');
  t.equal(silent.expectedTicks, 10);
});

t.test('staleness is arrival minus the plugin’s own timestamp, for each message in the window', async (t) => {
  const f = recorded({ a: [500, 1_500], b: [700] }, 2_000);
  t.same(f.staleness, [2, 2, 2]);
});
