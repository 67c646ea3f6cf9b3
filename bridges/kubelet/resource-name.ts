/**
 * Kubernetes extended resource names, checked as the kubelet checks them on Register
 * (IsExtendedResourceName): `domain/name`, the domain a DNS subdomain outside kubernetes.io, the
 * name a qualified-name part. Checked up front, so a bad name is a usage error at start rather
 * than a registration the kubelet refuses, over and over, in a log nobody reads.
 */

const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const namePart = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
// The kubelet checks "requests." + name as a qualified name: the domain gets what is left of 253.
const maxDomain = 253 - 'requests.'.length;

/** Why `name` is not an extended resource name the kubelet accepts, or undefined when it is. */
export function resourceNameProblem(name: string): string | undefined {
  const parts = name.split('/');
  const example = `example.com/${parts.at(-1) || 'device'}`;
  if (parts.length === 1) return `"${name}" has no domain: an extended resource name is domain/name, as in ${example}`;
  if (parts.length > 2) return `"${name}" has more than one "/": an extended resource name is domain/name, as in ${example}`;
  const [domain = '', part = ''] = parts;
  if (name.includes('kubernetes.io/'))
    return `"${name}" is under kubernetes.io, which is Kubernetes' own: use a domain of yours, as in ${example}`;
  if (name.startsWith('requests.')) return `"${name}" starts with "requests.", which Kubernetes keeps for quotas`;
  if (domain.length > maxDomain || !dnsSubdomain.test(domain)) {
    return `the domain "${domain}" of "${name}" must be a DNS subdomain of at most ${maxDomain} characters: lower-case letters, digits, "-" and "."`;
  }
  if (part.length > 63 || !namePart.test(part)) {
    return `the name "${part}" of "${name}" must be 1-63 letters, digits, "-", "_" or ".", beginning and ending with a letter or digit`;
  }
  return undefined;
}

/** The plugin's socket file name in the kubelet's directory: `taskhost-<resource, / and the like made ->.sock`. */
export function pluginSocketName(resource: string): string {
  return `taskhost-${resource.replace(/[^A-Za-z0-9_.-]+/g, '-')}.sock`;
}
