/**
 * Nomad's BasePlugin service for a taskhost plugin: who it is (PluginInfo), the HCL it takes
 * (ConfigSchema, generated from its JSON Schema) and its config (SetConfig, msgpack).
 */
import semver from 'semver';
import type { Logger } from 'pino';
import type { GoPluginService } from './go-plugin-server.js';
import { unary } from './grpc-handlers.js';
import { hclSpec } from './hclspec.js';
import { configFromMsgpack } from './msgpack-config.js';
import type { NomadConfig, NomadPluginHost } from './nomad-plugin-host.js';
import { serviceAt } from './nomad-protos.js';

/** The one version of Nomad's plugin API there is; Nomad refuses a plugin that does not list it. */
export const nomadPluginApiVersion = 'v0.1.0';

interface SetConfigRequest {
  msgpack_config: Uint8Array;
  nomad_config: NomadConfig | null;
  plugin_api_version: string;
}

export function baseService(host: NomadPluginHost, logger: Logger): GoPluginService {
  const { candidate } = host;
  // Nomad parses the version as semver: "1.2" or "v1.2.0-rc1" from a manifest still have to pass.
  const version = semver.valid(candidate.version) ?? semver.coerce(candidate.version)?.version ?? '0.0.0';
  const info = {
    type: candidate.type === 'driver' ? 'DRIVER' : 'DEVICE',
    plugin_api_versions: [nomadPluginApiVersion],
    plugin_version: version,
    name: candidate.name,
  };
  // The base service is never closed on its own: it goes with the process.
  const open = new AbortController().signal;
  return {
    service: serviceAt('hashicorp.nomad.plugins.base.proto.BasePlugin'),
    implementation: {
      PluginInfo: unary(open, async () => info),
      ConfigSchema: unary(open, async () => ({ spec: hclSpec(await host.configSchema()) })),
      SetConfig: unary(open, async (request: SetConfigRequest) => {
        const schema = await host.configSchema();
        const config = configFromMsgpack(request.msgpack_config, schema, `config of plugin "${candidate.name}"`);
        logger.debug({ plugin: candidate.name, apiVersion: request.plugin_api_version }, 'config from Nomad');
        await host.setConfig(config, request.nomad_config ?? {});
        return {};
      }),
    },
  };
}
