/**
 * What JSON would change in a value: the host keeps task handles as JSON (a handle store, the
 * agent's records) and gives them back to `recoverTask` after a restart, so a `driverState`
 * that JSON changes works until the first real restart and then fails. A structured clone
 * (what crosses between threads) keeps NaN, undefined in arrays, Dates and Maps; JSON does not.
 */

/** Where JSON changes a value, what is there, and what JSON turns it into. */
export interface JsonLoss {
  /** JSON Pointer into the value; "" for the value itself. */
  path: string;
  what: string;
  becomes: string;
}

/** The first place where JSON.parse(JSON.stringify(value)) differs from `value`, or undefined. */
export function jsonLoss(value: unknown): JsonLoss | undefined {
  return visit(value, '', [], false);
}

function visit(value: unknown, path: string, ancestors: object[], inArray: boolean): JsonLoss | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : { path, what: String(value), becomes: 'null' };
    case 'undefined':
      // A missing property reads as undefined again; in an array the slot becomes null.
      return inArray ? { path, what: 'undefined', becomes: 'null' } : undefined;
    case 'bigint':
      return { path, what: 'a BigInt', becomes: 'an error (JSON.stringify throws)' };
    case 'function':
    case 'symbol':
      return { path, what: `a ${typeof value}`, becomes: inArray ? 'null' : 'nothing (the key is dropped)' };
  }
  if (value === null) return undefined;
  const object = value as object;
  if (ancestors.includes(object)) return { path, what: 'a cycle', becomes: 'an error (JSON.stringify throws)' };
  const proto: unknown = Object.getPrototypeOf(object);
  if (Array.isArray(object)) {
    ancestors.push(object);
    for (let i = 0; i < object.length; i++) {
      const loss = visit(object[i], `${path}/${i}`, ancestors, true);
      if (loss) return loss;
    }
    ancestors.pop();
    return undefined;
  }
  if (proto !== Object.prototype && proto !== null) return { path, what: article(object), becomes: becomes(object) };
  ancestors.push(object);
  for (const [key, child] of Object.entries(object)) {
    const loss = visit(child, `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, ancestors, false);
    if (loss) return loss;
  }
  ancestors.pop();
  return undefined;
}

function article(object: object): string {
  const name = (object as { constructor?: { name?: unknown } }).constructor?.name;
  if (typeof name !== 'string' || name === '') return 'an object of an unnamed class';
  return `${/^[AEIO]/.test(name) ? 'an' : 'a'} ${name}`;
}

function becomes(object: object): string {
  if (object instanceof Date) return 'a string';
  try {
    const text = JSON.stringify(object);
    return text === undefined ? 'nothing' : text.length > 40 ? `${text.slice(0, 37)}...` : text;
  } catch {
    return 'an error (JSON.stringify throws)';
  }
}
