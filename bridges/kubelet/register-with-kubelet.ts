/** One Register call on the kubelet's registration socket. */
import { credentials, type ServiceError } from '@grpc/grpc-js';
import { loadDevicePluginApi } from './device-plugin-api.js';
import type { Empty, RegisterRequest } from './device-plugin-messages.js';

type RegisterCall = (
  request: RegisterRequest,
  options: { deadline: number },
  callback: (err: ServiceError | null, reply?: Empty) => void,
) => void;

/**
 * Registers with the kubelet listening on `socketPath`; resolves once it accepted. The kubelet
 * dials the plugin back and asks for its options before it answers, so the plugin must serve
 * already, and the deadline must leave room for that (the kubelet gives its dial 10 s).
 */
export async function registerWithKubelet(socketPath: string, request: RegisterRequest, timeoutMs = 30_000): Promise<void> {
  const { Registration } = loadDevicePluginApi();
  const client = new Registration(`unix:${socketPath}`, credentials.createInsecure());
  try {
    await new Promise<void>((resolve, reject) => {
      const register = (client as unknown as { Register: RegisterCall }).Register.bind(client);
      register(request, { deadline: Date.now() + timeoutMs }, (err) => (err ? reject(err) : resolve()));
    });
  } finally {
    client.close();
  }
}
