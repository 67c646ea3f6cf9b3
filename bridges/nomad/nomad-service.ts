/** What each Nomad app service module gives the go-plugin server. */
import type * as grpc from '@grpc/grpc-js';

/** A gRPC service to add to the plugin's server, and how to stop what it runs. */
export interface NomadService {
  service: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /** Ends its streams (and the Driver service's watchers); tasks keep running. */
  close(): Promise<void>;
}
