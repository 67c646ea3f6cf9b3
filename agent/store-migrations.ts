/**
 * The store's schema versions. A store at version n is brought to the latest by running the
 * migrations from n, n+1, ... in order, all in one write transaction: a crash part way leaves the
 * store at version n, and the next start runs them again. Append a migration here (never edit
 * one that has shipped) whenever the layout of keys or the shape of a record changes.
 */

/** What a migration sees: the raw keys and values of the store, inside the migration's transaction. */
export interface MigrationTransaction {
  get(key: string): unknown;
  put(key: string, value: unknown): void;
  remove(key: string): void;
  /** The keys that start with `prefix`, in order. */
  keys(prefix: string): string[];
}

/** Moves a store from version `from` to `from + 1`. */
export interface StoreMigration {
  from: number;
  description: string;
  migrate(tx: MigrationTransaction): void;
}

/** Keys of the store's own bookkeeping, outside every namespace. */
export const metaKeys = {
  marker: 'meta/marker',
  schemaVersion: 'meta/schemaVersion',
  lastEventIndex: 'meta/lastEventIndex',
} as const;

/** The migrations of this taskhost; the latest schema version is their count. */
export const storeMigrations: readonly StoreMigration[] = [
  {
    from: 0,
    description: 'a new store: records under v1/<namespace>/<kind>/, events under events/, the event counter at 0',
    migrate(tx) {
      tx.put(metaKeys.lastEventIndex, 0);
    },
  },
];
