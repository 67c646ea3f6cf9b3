/** The taskhost library, for an agent that embeds the host. */
export { PluginLoader, type LoaderEvents, type PluginListing, type PluginLoaderOptions } from './plugin-loader/loader.js';
export { PluginInstance, type PluginState, type PluginStatus } from './plugin-loader/plugin-instance.js';
export {
  AgentConfig,
  defaultSupervision,
  loadAgentConfig,
  parseAgentConfig,
  type FilledSupervision,
  type Supervision,
} from './plugin-loader/agent-config.js';
export { discover, negotiateApiVersion, type Discovery, type PluginCandidate, type SkippedPlugin } from './plugin-loader/discovery.js';
export { validateAgentConfigFile, type ConfigReport } from './plugin-loader/validate.js';
export * from './shared/index.js';
