/**
 * The mock driver, built in for tests and demos. For now it implements the base plugin contract
 * and a fingerprint stream; the scripted task lifecycle arrives with the driver contract.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Duration, parseDuration } from '../../shared/duration.js';
import { definePlugin, type SetConfigRequest } from '../../shared/plugin.js';

const MockConfig = Type.Object({
  fingerprintInterval: Duration({ default: '30s', description: 'how often fingerprint() reports' }),
  healthy: Type.Boolean({ default: true, description: 'the health fingerprint() reports' }),
});
type MockConfig = Static<typeof MockConfig>;

let config: MockConfig = { fingerprintInterval: '30s', healthy: true };

export default definePlugin({
  info: () => ({ type: 'driver' as const, name: 'mock', pluginVersion: '0.1.0', apiVersions: ['1.0'] }),
  configSchema: () => MockConfig,
  setConfig(request: SetConfigRequest<MockConfig>) {
    config = request.config;
  },
  async *fingerprint(signal: AbortSignal) {
    const interval = parseDuration(config.fingerprintInterval);
    while (!signal.aborted) {
      yield {
        health: config.healthy ? 'healthy' : 'unhealthy',
        healthDescription: config.healthy ? 'mock driver is ready' : 'mock driver configured unhealthy',
        attributes: { 'driver.mock': true },
      };
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, interval);
        signal.addEventListener('abort', () => (clearTimeout(timer), resolve(undefined)), { once: true });
      });
    }
  },
});
