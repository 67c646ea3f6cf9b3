/**
 * The Docker driver's two schemas: its plugin config (from the agent config) and a task's
 * `config`. Both are closed objects, so a misspelt key is an error that names its path.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Duration } from '../../shared/duration.js';
import { StringEnum } from '../../shared/schema.js';

/** Docker's own default capability set: what a task may add back after dropping it. */
export const dockerDefaultCaps: readonly string[] = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FSETID',
  'FOWNER',
  'MKNOD',
  'NET_RAW',
  'SETGID',
  'SETUID',
  'SETFCAP',
  'SETPCAP',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
  'KILL',
  'AUDIT_WRITE',
];

/** The endpoint used when the config and DOCKER_HOST name none. */
export const defaultEndpoint = 'unix:///var/run/docker.sock';

/** Labels the driver puts on every container; tasks and extraLabels may not set these. */
export const labelPrefix = 'com.taskhost.';

export const DockerConfig = Type.Object({
  endpoint: Type.Optional(
    Type.String({
      pattern: '^(unix://|tcp://).+',
      description:
        'the Docker Engine: unix:///path/to/docker.sock or tcp://host:port; default: DOCKER_HOST, else unix:///var/run/docker.sock',
    }),
  ),
  auth: Type.Object(
    {
      config: Type.Optional(Type.String({ minLength: 1, description: 'a Docker config.json with registry credentials' })),
      helper: Type.Optional(Type.String({ minLength: 1, description: 'credential helper suffix: "pass" runs docker-credential-pass' })),
    },
    { default: {}, description: 'registry credentials for pulls' },
  ),
  gc: Type.Object(
    {
      image: Type.Boolean({ default: true, description: 'remove an image once no task has used it for imageDelay' }),
      imageDelay: Duration({ default: '3m' }),
      container: Type.Boolean({
        default: true,
        description: "remove a task's container when the task is destroyed, and reap dangling ones",
      }),
      danglingGrace: Duration({
        default: '5m',
        description: 'a labelled container nobody tracks is removed once it, and the driver, are this old',
      }),
      dryRun: Type.Boolean({ default: false, description: 'only report the dangling containers that would be removed' }),
      reconcileInterval: Duration({ default: '5m', description: 'how often to look for dangling containers' }),
    },
    { default: {} },
  ),
  volumes: Type.Object(
    { enabled: Type.Boolean({ default: false, description: 'allow tasks to mount host paths (volumes, mounts)' }) },
    { default: {} },
  ),
  allowPrivileged: Type.Boolean({ default: false, description: 'allow tasks to run privileged containers' }),
  allowCaps: Type.Array(Type.String({ pattern: '^[A-Za-z_]+$' }), {
    default: [...dockerDefaultCaps],
    description: 'capabilities a task may add with capAdd',
  }),
  pullActivityTimeout: Duration({ default: '2m', description: 'abort a pull that reports no progress for this long' }),
  pullTimeout: Duration({ default: '10m', description: 'abort a pull that takes longer than this' }),
  extraLabels: Type.Record(Type.String({ minLength: 1 }), Type.String(), {
    default: {},
    description: 'labels added to every container',
  }),
  fingerprintInterval: Duration({ default: '30s', description: 'how often the Docker Engine is pinged' }),
});
export type DockerConfig = Static<typeof DockerConfig>;

export const DockerTaskConfig = Type.Object({
  image: Type.String({ minLength: 1, description: 'image reference, e.g. busybox:1.35 or 127.0.0.1:5000/team/app:2' }),
  command: Type.Optional(Type.String({ minLength: 1, description: "replaces the image's command; args follow it" })),
  args: Type.Optional(Type.Array(Type.String())),
  entrypoint: Type.Optional(Type.Array(Type.String())),
  env: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.String(), { description: 'more environment, over the task env' })),
  labels: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.String())),
  workDir: Type.Optional(Type.String({ minLength: 1 })),
  user: Type.Optional(
    Type.String({ minLength: 1, description: "user[:group] inside the container; default: the task's user, else the image's" }),
  ),
  networkMode: StringEnum(['none', 'host'], { default: 'none' }),
  volumes: Type.Optional(
    Type.Array(Type.String({ pattern: '^[^:]+:/[^:]*(:(ro|rw))?$', description: '"host:container[:ro]"; needs volumes.enabled' })),
  ),
  mounts: Type.Optional(
    Type.Array(
      Type.Object({
        source: Type.String({ minLength: 1 }),
        target: Type.String({ pattern: '^/' }),
        readOnly: Type.Boolean({ default: false }),
      }),
      { description: 'host bind mounts; need volumes.enabled' },
    ),
  ),
  privileged: Type.Optional(Type.Boolean({ description: 'needs allowPrivileged' })),
  capAdd: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  capDrop: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  stopSignal: Type.Optional(Type.String({ pattern: '^SIG[A-Z0-9]+$' })),
  pullPolicy: StringEnum(['always', 'missing', 'never'], { default: 'missing' }),
});
export type DockerTaskConfig = Static<typeof DockerTaskConfig>;
