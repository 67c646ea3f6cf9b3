/**
 * Loads our own deviceplugin.proto (no generated code, no protoc): the Registration service the
 * kubelet serves and the DevicePlugin service a plugin serves, as grpc-js client constructors
 * whose `.service` a server can add.
 */
import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

export interface DevicePluginApi {
  Registration: ServiceClientConstructor;
  DevicePlugin: ServiceClientConstructor;
}

/** Where the .proto lives: beside this file in the sources and, copied by the build, in dist/. */
export const devicePluginProtoFile = fileURLToPath(new URL('./proto/deviceplugin.proto', import.meta.url));

let loaded: DevicePluginApi | undefined;

/** The two services of the device plugin API v1beta1 (parsed once per process). */
export function loadDevicePluginApi(): DevicePluginApi {
  if (loaded) return loaded;
  // keepCase: the wire names (`devices_ids`, `ID`, `available_deviceIDs`) are the field names.
  // defaults: an absent repeated field reads as [], a string as "", so handlers need no guards.
  const definition = loadSync(devicePluginProtoFile, { keepCase: true, longs: Number, defaults: true, arrays: true, objects: true });
  const v1beta1 = loadPackageDefinition(definition)['v1beta1'] as GrpcObject;
  loaded = {
    Registration: v1beta1['Registration'] as ServiceClientConstructor,
    DevicePlugin: v1beta1['DevicePlugin'] as ServiceClientConstructor,
  };
  return loaded;
}
