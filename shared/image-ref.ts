/**
 * Image references, parsed and normalised the way Docker does (distribution/reference):
 * `busybox` is `docker.io/library/busybox:latest`, a first component with a `.` or a `:` (or
 * `localhost`) is a registry host, and `name:tag@sha256:…` is pulled by its digest alone.
 */
import { InvalidConfigError } from './errors.js';

/** A parsed image reference. */
export interface ImageRef {
  /** The registry host, with its port: "docker.io", "127.0.0.1:5000", "localhost:5000". */
  registry: string;
  /** The path inside the registry: "library/busybox", "team/tools/busybox". */
  repository: string;
  /** `registry/repository`: "docker.io/library/busybox". */
  name: string;
  /** The tag as written, "latest" when neither a tag nor a digest was; absent for a bare digest. */
  tag?: string;
  /** "sha256:<hex>" when the reference pins a digest. */
  digest?: string;
  /** The normalised reference to pull and run: `name@digest` when pinned (any tag dropped, as Docker does), else `name:tag`. */
  reference: string;
  /** The short form Docker shows (`docker ps`): "busybox:1.35", "127.0.0.1:5000/team/busybox:1.35". */
  familiar: string;
}

export const DOCKER_HUB = 'docker.io';

// The grammar of distribution/reference (regexp.go), piece by piece.
const pathComponent = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainAndPort = new RegExp(`^(?:${domainComponent}(?:\\.${domainComponent})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const tagPattern = /^\w[\w.-]{0,127}$/;
const digestPattern = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const digestHexLength: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
const imageIdPattern = /^(?:sha256:)?[a-f0-9]{64}$/;
const maxNameLength = 255;

/**
 * Parses an image reference and normalises it. Throws InvalidConfigError that quotes the text
 * and says what is wrong; `path` is the JSON path the reference came from (e.g. "/config/image").
 */
export function parseImageRef(text: string, path = ''): ImageRef {
  const fail: (why: string) => never = (why) => {
    const message = `invalid image reference "${text}": ${why}`;
    throw new InvalidConfigError(message, { details: { errors: [{ path, message }] } });
  };
  if (text === '') fail('it is empty');
  if (/\s/.test(text)) fail('it contains whitespace');
  if (imageIdPattern.test(text))
    fail('that is an image id, not a reference: write a name, e.g. "busybox:1.35", or pin a digest with "busybox@sha256:<hex>"');

  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    checkDigest(digest, fail);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) {
      fail(`the tag "${tag}" is not valid: use letters, digits, "_", "." and "-" (not first), at most 128 characters`);
    }
  }
  if (rest === '') fail('the name is missing');

  const [registry, repository] = splitRegistry(rest);
  if (registry !== undefined && !domainAndPort.test(registry)) fail(`"${registry}" is not a valid registry host`);
  const components = repository.split('/');
  for (const component of components) {
    if (component === '') fail('the name has an empty path component ("//", or "/" at an end)');
    if (component !== component.toLowerCase()) fail('the repository name must be lowercase');
    if (!pathComponent.test(component)) {
      fail(`"${component}" is not a valid name component: use lowercase letters and digits, separated by ".", "_", "__" or "-"`);
    }
  }

  const host = registry === undefined || registry === 'index.docker.io' ? DOCKER_HUB : registry;
  const repo = host === DOCKER_HUB && components.length === 1 ? `library/${repository}` : repository;
  const name = `${host}/${repo}`;
  if (name.length > maxNameLength) fail(`the name is longer than ${maxNameLength} characters`);

  const ref: ImageRef = { registry: host, repository: repo, name, reference: '', familiar: '' };
  if (digest === undefined) ref.tag = tag ?? 'latest';
  else if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  const suffix = digest !== undefined ? `@${digest}` : `:${ref.tag}`;
  ref.reference = name + suffix;
  ref.familiar = familiarName(host, repo) + suffix;
  return ref;
}

/** Whether Docker would always re-pull this reference: a ":latest" tag (written or implied) and no digest. */
export function isLatest(ref: ImageRef): boolean {
  return ref.digest === undefined && ref.tag === 'latest';
}

/** The registry host part, when the first component is one (Docker's splitDockerDomain). */
function splitRegistry(name: string): [string | undefined, string] {
  const slash = name.indexOf('/');
  if (slash === -1) return [undefined, name];
  const first = name.slice(0, slash);
  // A path component can hold neither "." nor ":" nor uppercase, so any of those means a host.
  const isHost = /[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase();
  return isHost ? [first, name.slice(slash + 1)] : [undefined, name];
}

function checkDigest(digest: string, fail: (why: string) => never): void {
  if (!digestPattern.test(digest)) fail(`the digest "${digest}" is not valid: write it as sha256:<64 hex digits>`);
  const [algorithm, hex] = digest.split(':') as [string, string];
  const length = digestHexLength[algorithm];
  if (length === undefined) fail(`the digest algorithm "${algorithm}" is not supported: use sha256`);
  if (hex.length !== length || hex !== hex.toLowerCase()) {
    fail(`the ${algorithm} digest must be ${length} lowercase hex digits`);
  }
}

function familiarName(registry: string, repository: string): string {
  if (registry !== DOCKER_HUB) return `${registry}/${repository}`;
  return repository.startsWith('library/') ? repository.slice('library/'.length) : repository;
}
