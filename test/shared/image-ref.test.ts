import t from 'tap';
import { InvalidConfigError } from '../../shared/errors.js';
import { isLatest, parseImageRef, type ImageRef } from '../../shared/image-ref.js';

const hex = 'a'.repeat(64);
const digest = `sha256:${hex}`;

t.test('references normalise the way docker does', async (t) => {
  const cases: [string, { [K in keyof ImageRef]?: ImageRef[K] | undefined }][] = [
    [
      'busybox',
      {
        registry: 'docker.io',
        repository: 'library/busybox',
        tag: 'latest',
        reference: 'docker.io/library/busybox:latest',
        familiar: 'busybox:latest',
      },
    ],
    ['busybox:1.35', { reference: 'docker.io/library/busybox:1.35', familiar: 'busybox:1.35', tag: '1.35' }],
    ['library/busybox:1.35', { reference: 'docker.io/library/busybox:1.35', familiar: 'busybox:1.35' }],
    ['docker.io/busybox', { reference: 'docker.io/library/busybox:latest', familiar: 'busybox:latest' }],
    ['docker.io/library/busybox:1.35', { reference: 'docker.io/library/busybox:1.35', familiar: 'busybox:1.35' }],
    ['index.docker.io/library/busybox:1.35', { registry: 'docker.io', reference: 'docker.io/library/busybox:1.35' }],
    [
      'grafana/grafana:10.0.1',
      { repository: 'grafana/grafana', reference: 'docker.io/grafana/grafana:10.0.1', familiar: 'grafana/grafana:10.0.1' },
    ],
    ['a/b/c:x', { registry: 'docker.io', repository: 'a/b/c', familiar: 'a/b/c:x' }],
    [
      '127.0.0.1:5000/team/tools/busybox:1.35',
      {
        registry: '127.0.0.1:5000',
        repository: 'team/tools/busybox',
        name: '127.0.0.1:5000/team/tools/busybox',
        reference: '127.0.0.1:5000/team/tools/busybox:1.35',
        familiar: '127.0.0.1:5000/team/tools/busybox:1.35',
      },
    ],
    ['localhost:5000/x', { registry: 'localhost:5000', repository: 'x', reference: 'localhost:5000/x:latest' }],
    ['localhost/x:1', { registry: 'localhost', repository: 'x', reference: 'localhost/x:1' }],
    ['registry.example.com/app', { registry: 'registry.example.com', repository: 'app', reference: 'registry.example.com/app:latest' }],
    ['example.com:443/a/b_c.d__e-f--g:v1.2_rc-3', { registry: 'example.com:443', repository: 'a/b_c.d__e-f--g', tag: 'v1.2_rc-3' }],
    ['[::1]:5000/x:1', { registry: '[::1]:5000', repository: 'x' }],
    ['Registry.Example.com/app:1', { registry: 'Registry.Example.com', repository: 'app' }],
    [`busybox@${digest}`, { reference: `docker.io/library/busybox@${digest}`, familiar: `busybox@${digest}`, digest, tag: undefined }],
    // Docker pulls name:tag@digest by the digest alone; the tag is kept for display only.
    [`busybox:1.35@${digest}`, { reference: `docker.io/library/busybox@${digest}`, familiar: `busybox@${digest}`, digest, tag: '1.35' }],
    [
      `127.0.0.1:5000/library/busybox@${digest}`,
      { reference: `127.0.0.1:5000/library/busybox@${digest}`, familiar: `127.0.0.1:5000/library/busybox@${digest}` },
    ],
    [`x@sha512:${'b'.repeat(128)}`, { digest: `sha512:${'b'.repeat(128)}` }],
    [`x:${'t'.repeat(128)}`, { tag: 't'.repeat(128) }],
  ];
  for (const [text, expected] of cases) {
    const ref = parseImageRef(text);
    for (const [key, value] of Object.entries(expected)) {
      t.equal(ref[key as keyof ImageRef], value, `${text}: ${key}`);
    }
  }
});

t.test('bad references are refused with a message that says why', async (t) => {
  const cases: [string, RegExp][] = [
    ['', /is empty/],
    [' busybox', /whitespace/],
    ['busy box', /whitespace/],
    ['BusyBox', /must be lowercase/],
    ['library/BusyBox:1', /must be lowercase/],
    ['busybox:', /tag "" is not valid/],
    ['busybox:-bad', /tag "-bad" is not valid/],
    [`x:${'t'.repeat(129)}`, /at most 128/],
    [':1.35', /name is missing/],
    ['@' + digest, /name is missing/],
    ['busybox@sha256:abc', /digest "sha256:abc" is not valid/],
    [`busybox@sha256:${'A'.repeat(64)}`, /64 lowercase hex/],
    [`busybox@sha256:${'a'.repeat(63)}0a`, /64 lowercase hex/],
    [`busybox@md5:${'a'.repeat(32)}`, /algorithm "md5" is not supported/],
    ['a//b', /empty path component/],
    ['a/b/', /empty path component/],
    ['busybox$', /"busybox\$" is not a valid name component/],
    ['a/b_-c', /not a valid name component/],
    ['-a.example.com/b', /"-a.example.com" is not a valid registry host/],
    ['bad_host.com/b', /"bad_host.com" is not a valid registry host/],
    [hex, /image id, not a reference/],
    [digest, /image id, not a reference/],
    [`x/${'a'.repeat(260)}`, /longer than 255/],
  ];
  for (const [text, message] of cases) {
    t.throws(() => parseImageRef(text), message, JSON.stringify(text));
  }
});

t.test('the error is an InvalidConfigError naming the path the reference came from', async (t) => {
  const err = t.throws(() => parseImageRef('Nope', '/config/image')) as InvalidConfigError;
  t.ok(err instanceof InvalidConfigError);
  t.equal(err.code, 'INVALID_CONFIG');
  t.same(err.errors, [{ path: '/config/image', message: 'invalid image reference "Nope": the repository name must be lowercase' }]);
});

t.test('isLatest: a ":latest" tag, written or implied, and no digest', async (t) => {
  t.equal(isLatest(parseImageRef('busybox')), true);
  t.equal(isLatest(parseImageRef('busybox:latest')), true);
  t.equal(isLatest(parseImageRef('127.0.0.1:5000/x')), true);
  t.equal(isLatest(parseImageRef('busybox:1.35')), false);
  t.equal(isLatest(parseImageRef(`busybox@${digest}`)), false);
  t.equal(isLatest(parseImageRef(`busybox:latest@${digest}`)), false);
});
