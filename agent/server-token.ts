/**
 * The bearer token of the agent's loopback TCP listener: `<dataDir>/agent.token`, mode 0600,
 * made on first start and read on every later one. Compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidConfigError } from '../shared/errors.js';

/** The token file's name inside the data directory. */
export const tokenFileName = 'agent.token';
const minTokenLength = 16;

/** The path of the token file of a data directory. */
export function tokenFile(dataDir: string): string {
  return path.join(dataDir, tokenFileName);
}

/**
 * The token in `<dataDir>/agent.token`, made (32 random bytes, base64url, mode 0600) when the file
 * does not exist. Refuses a file others may read, or one too short to be a token.
 */
export async function loadOrCreateToken(dataDir: string): Promise<string> {
  const file = tokenFile(dataDir);
  const token = randomBytes(32).toString('base64url');
  try {
    const handle = await open(file, 'wx', 0o600);
    try {
      await handle.writeFile(`${token}\n`);
      await handle.chmod(0o600);
    } finally {
      await handle.close();
    }
    return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw tokenError(file, `cannot write ${file}: ${(err as Error).message}`);
  }
  const mode = (await stat(file)).mode & 0o777;
  if (mode & 0o077) {
    throw tokenError(
      file,
      `${file} may be read by others (mode 0${mode.toString(8)}): run chmod 600 ${file}, or delete it for a new token`,
    );
  }
  const text = (await readFile(file, 'utf8')).trim();
  if (text.length < minTokenLength) {
    throw tokenError(file, `${file} holds no token (fewer than ${minTokenLength} characters): delete it and the agent makes a new one`);
  }
  return text;
}

/** Whether an Authorization header carries the token (`Bearer <token>`), compared in constant time. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer +(\S+) *$/i.exec(header ?? '');
  // Digests have one length, so timingSafeEqual never throws and the length is not leaked.
  const given = createHash('sha256')
    .update(match?.[1] ?? '')
    .digest();
  const expected = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, expected) && match !== null;
}

function tokenError(file: string, message: string): InvalidConfigError {
  return new InvalidConfigError(message, { details: { errors: [{ path: '', message }], file } });
}
