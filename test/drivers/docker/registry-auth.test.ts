// Registry credentials for pulls: config files and credential helpers, in docker's order (no
// engine needed).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { registryAuthResolver, registryHost } from '../../../drivers/docker/registry-auth-resolver.js';
import { CancelledError } from '../../../shared/errors.js';
import { AUTH_REGISTRY, REGISTRY_PASSWORD, REGISTRY_USER } from '../../helpers/docker.js';
import { basic, credentialHelper, knowsAuthRegistry, tempDir } from '../../helpers/image-service-fakes.js';

t.test('auth: registry hosts match however a config file spells them', async (t) => {
  t.equal(registryHost('https://index.docker.io/v1/'), 'docker.io');
  t.equal(registryHost('registry-1.docker.io'), 'docker.io');
  t.equal(registryHost('docker.io'), 'docker.io');
  t.equal(registryHost('http://127.0.0.1:5001/v2/'), '127.0.0.1:5001');
  t.equal(registryHost('Registry.Example.com'), 'registry.example.com');
});

t.test('auth: a docker config file (auth, username/password, identity token, hub key)', async (t) => {
  const dir = tempDir(t);
  const config = path.join(dir, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: basic('hubuser', 'hub:pass') },
        'http://127.0.0.1:5001': { auth: basic('wrong', 'wrong') },
        '127.0.0.1:5001': { auth: basic(REGISTRY_USER, REGISTRY_PASSWORD) },
        'https://registry.example.com/v1/': { username: 'plain', password: 'text' },
        'token.example.com': { identitytoken: 'tok' },
        'empty.example.com': {},
      },
    }),
  );
  const resolve = registryAuthResolver({ config });
  t.same(await resolve('docker.io'), { username: 'hubuser', password: 'hub:pass', serveraddress: 'https://index.docker.io/v1/' });
  t.same(
    await resolve(AUTH_REGISTRY),
    { username: REGISTRY_USER, password: REGISTRY_PASSWORD, serveraddress: AUTH_REGISTRY },
    'the exact key wins',
  );
  t.same(await resolve('registry.example.com'), { username: 'plain', password: 'text', serveraddress: 'registry.example.com' });
  t.same(await resolve('token.example.com'), { identitytoken: 'tok', serveraddress: 'token.example.com' });
  t.equal(await resolve('empty.example.com'), undefined);
  t.equal(await resolve('127.0.0.1:5000'), undefined);
});

t.test('auth: bad config files fail with a message naming the file', async (t) => {
  const dir = tempDir(t);
  await t.rejects(registryAuthResolver({ config: path.join(dir, 'missing.json') })('docker.io'), {
    name: 'InvalidConfigError',
    message: /auth\.config: cannot read the docker config file .*missing\.json/,
  });
  const notJson = path.join(dir, 'bad.json');
  writeFileSync(notJson, '{ nope');
  await t.rejects(registryAuthResolver({ config: notJson })('docker.io'), { message: /auth\.config: .*bad\.json is not valid JSON/ });
  const array = path.join(dir, 'array.json');
  writeFileSync(array, '[]');
  await t.rejects(registryAuthResolver({ config: array })('docker.io'), { message: /must hold a JSON object/ });
  const badAuth = path.join(dir, 'bad-auth.json');
  writeFileSync(badAuth, JSON.stringify({ auths: { 'x.io': { auth: Buffer.from('no-colon').toString('base64') } } }));
  await t.rejects(registryAuthResolver({ config: badAuth })('x.io'), {
    message: /auths\["x\.io"\]\.auth must be base64 of "user:password"/,
  });
  const badHelper = path.join(dir, 'bad-helper.json');
  writeFileSync(badHelper, JSON.stringify({ credsStore: 'a/b' }));
  await t.rejects(registryAuthResolver({ config: badHelper })('x.io'), {
    message: /credHelpers\/credsStore: "a\/b" is not a credential helper name/,
  });
});

t.test('auth: credential helpers (plugin option, credHelpers, credsStore), in docker order', async (t) => {
  credentialHelper(t, 'taskhost-test', knowsAuthRegistry);
  const byOption = registryAuthResolver({ helper: 'taskhost-test' });
  t.same(await byOption(AUTH_REGISTRY), { username: REGISTRY_USER, password: REGISTRY_PASSWORD, serveraddress: AUTH_REGISTRY });
  t.same(await byOption('index.docker.io'), { identitytoken: 'hub-token', serveraddress: 'https://index.docker.io/v1/' });
  t.equal(await byOption('127.0.0.1:5000'), undefined, '"not found" is no credentials, not an error');

  const dir = tempDir(t);
  const config = path.join(dir, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      credHelpers: { [AUTH_REGISTRY]: 'taskhost-test' },
      auths: { [AUTH_REGISTRY]: { auth: basic('inline', 'x') }, 'a.io': { auth: basic('inline', 'a') } },
    }),
  );
  const viaFile = registryAuthResolver({ config });
  t.match(await viaFile(AUTH_REGISTRY), { username: REGISTRY_USER }, 'credHelpers before auths');
  t.match(await viaFile('a.io'), { username: 'inline' });

  const storeConfig = path.join(dir, 'store.json');
  writeFileSync(storeConfig, JSON.stringify({ credsStore: 'taskhost-test', auths: { 'b.io': { auth: basic('inline', 'b') } } }));
  const viaStore = registryAuthResolver({ config: storeConfig, helper: 'taskhost-test' });
  t.match(await viaStore(AUTH_REGISTRY), { username: REGISTRY_USER });
  t.match(await viaStore('b.io'), { username: 'inline' }, 'the store has nothing: inline auths');
  t.equal(await viaStore('c.io'), undefined);
});

t.test('auth: a failing, missing, slow or confused helper gives a clear error', async (t) => {
  credentialHelper(t, 'taskhost-fails', 'echo "keychain locked" >&2; exit 3');
  credentialHelper(t, 'taskhost-silent', 'exit 4');
  credentialHelper(t, 'taskhost-babbles', 'echo "this is not json"');
  credentialHelper(t, 'taskhost-empty', `echo '{"Username":"u","Secret":""}'`);
  credentialHelper(t, 'taskhost-nouser', `echo '{"Secret":"s"}'`);
  credentialHelper(t, 'taskhost-sleeps', 'exec sleep 10');
  await t.rejects(registryAuthResolver({ helper: 'taskhost-fails' })('x.io'), {
    name: 'PluginError',
    message: 'the credential helper docker-credential-taskhost-fails failed for x.io (exit code 3): keychain locked',
  });
  await t.rejects(registryAuthResolver({ helper: 'taskhost-silent' })('x.io'), {
    message: 'the credential helper docker-credential-taskhost-silent failed for x.io (exit code 4)',
  });
  await t.rejects(registryAuthResolver({ helper: 'taskhost-babbles' })('x.io'), {
    message: /printed something that is not JSON for x\.io: this is not json/,
  });
  t.equal(await registryAuthResolver({ helper: 'taskhost-empty' })('x.io'), undefined);
  t.same(await registryAuthResolver({ helper: 'taskhost-nouser' })('x.io'), { username: '', password: 's', serveraddress: 'x.io' });
  await t.rejects(registryAuthResolver({ helper: 'taskhost-not-installed' })('x.io'), {
    message: 'the credential helper docker-credential-taskhost-not-installed was not found on PATH (asked for x.io)',
  });
  await t.rejects(registryAuthResolver({ helper: 'taskhost-sleeps' }, { helperTimeoutMs: 100 })('x.io'), {
    name: 'TimeoutError',
    message: /did not answer within 100 ms/,
  });
  const quit = new AbortController();
  const asked = registryAuthResolver({ helper: 'taskhost-sleeps' })('x.io', quit.signal);
  setTimeout(() => quit.abort(new CancelledError('gave up')), 50);
  await t.rejects(asked, { name: 'CancelledError', message: 'gave up' });
});

// ==========================================================================================
