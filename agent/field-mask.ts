/**
 * PATCH of a task record with containerd's field-mask semantics. Only labels are mutable: a mask
 * path `labels` replaces them all, `labels.<key>` sets or deletes one (the rest of the path is
 * the key, dots and slashes included), no mask (or an empty one) replaces every updatable field,
 * which is the labels. An empty value, or a masked key absent from the body, deletes the label.
 */
import { Type, type Static } from '@sinclair/typebox';
import { InvalidConfigError, type SchemaIssue } from '../shared/errors.js';
import { closest, formatIssues } from '../shared/schema.js';
import { checkLabels, Labels } from './names.js';

/** The body of `PATCH /v1/tasks/{id}`. */
export const LabelsUpdate = Type.Object(
  {
    labels: Labels({ description: 'The labels to set; an empty value deletes a label.' }),
    updateMask: Type.Optional(
      Type.Array(Type.String(), { maxItems: 1024, description: 'Paths to update: "labels" (all of them) or "labels.<key>".' }),
    ),
  },
  { description: 'An update of a task record: only its labels are mutable.' },
);
export type LabelsUpdate = Static<typeof LabelsUpdate>;

/** Record fields a mask may name but never change, for a message that says so. */
const immutableFields = [
  'id',
  'namespace',
  'name',
  'driver',
  'state',
  'spec',
  'exitResult',
  'error',
  'createdAt',
  'updatedAt',
  'startedAt',
  'completedAt',
];

/**
 * The labels after applying `update` to `current` (neither is changed). Throws InvalidConfigError
 * naming each bad mask path at `/updateMask/<i>` and each oversized label at `/labels/<key>`.
 */
export function applyLabelsUpdate(current: Readonly<Record<string, string>>, update: LabelsUpdate): Record<string, string> {
  const issues: SchemaIssue[] = checkLabels(update.labels);
  const mask = update.updateMask ?? [];
  let replaceAll = mask.length === 0;
  const keys: string[] = [];
  mask.forEach((path, i) => {
    if (path === 'labels') replaceAll = true;
    else if (path.startsWith('labels.') && path.length > 'labels.'.length) keys.push(path.slice('labels.'.length));
    else issues.push({ path: `/updateMask/${i}`, message: maskPathProblem(path) });
  });
  if (issues.length)
    throw new InvalidConfigError(`the update is invalid: ${formatIssues(issues).join('; ')}`, { details: { errors: issues } });
  const next: Record<string, string> = replaceAll ? {} : { ...current };
  if (replaceAll) for (const [key, value] of Object.entries(update.labels)) if (value !== '') next[key] = value;
  for (const key of keys) {
    const value = Object.hasOwn(update.labels, key) ? update.labels[key]! : '';
    if (value === '') delete next[key];
    else next[key] = value;
  }
  return next;
}

function maskPathProblem(path: string): string {
  const allowed = 'only labels are mutable: use "labels" or "labels.<key>"';
  if (path === 'labels.') return `"labels." names no label key; ${allowed}`;
  const field = path.split('.')[0]!;
  if (immutableFields.includes(field)) return `${JSON.stringify(path)} cannot be updated: ${allowed}`;
  const guess = closest(field, ['labels']);
  const hint = guess ? ` (did you mean ${JSON.stringify(`labels${path.slice(field.length)}`)}?)` : '';
  return `unknown field path ${JSON.stringify(path)}${hint}; ${allowed}`;
}
