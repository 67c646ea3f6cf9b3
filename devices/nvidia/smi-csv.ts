/**
 * Reading `nvidia-smi --query-gpu=… --format=csv,noheader,nounits` output: one line per GPU,
 * the values in the order asked for, separated by ", ". Values are not quoted, so the one free-text
 * field (the GPU name) takes whatever surplus a stray ", " inside it produces. Lines that are not
 * rows (nvidia-smi's own error messages, e.g. about a GPU it lost) are returned as they are.
 */

export interface CsvRows {
  /** Each row has exactly as many values as fields were asked for, trimmed. */
  rows: string[][];
  /** Non-empty lines that are not rows. */
  other: string[];
}

/**
 * Splits output into rows of `fieldCount` values; `freeText` is the index of the field that may
 * itself contain ", " (undefined when none may).
 */
export function splitRows(text: string, fieldCount: number, freeText?: number): CsvRows {
  const rows: string[][] = [];
  const other: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '') continue;
    const parts = line.split(', ').map((p) => p.trim());
    const surplus = parts.length - fieldCount;
    if (surplus < 0 || (surplus > 0 && freeText === undefined)) {
      other.push(line);
      continue;
    }
    if (surplus > 0) parts.splice(freeText!, surplus + 1, parts.slice(freeText, freeText! + surplus + 1).join(', '));
    rows.push(parts);
  }
  return { rows, other };
}

/**
 * Why a value is not a reading, or undefined when it is one. nvidia-smi writes "[N/A]" (older
 * versions "[Not Supported]") for what a GPU does not support, a bracketed message such as
 * "[Unknown Error]" or "[GPU requires reset]" when reading it failed, and "ERR!" in some views.
 */
export function notAReading(value: string): string | undefined {
  if (value === '') return 'empty';
  if (value === 'ERR!') return value;
  const inner = /^\[(.*)\]$/.exec(value)?.[1];
  if (inner !== undefined) return inner === 'Not Supported' ? 'N/A' : inner;
  if (value === 'N/A') return value;
  return undefined;
}

/** A finite number, or undefined for anything else (including readings nvidia-smi could not make). */
export function toNumber(value: string): number | undefined {
  if (notAReading(value) !== undefined) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * "Unable to determine the device handle for GPU0000:0B:00.0: Unknown Error": how nvidia-smi
 * says it lost a GPU (fallen off the bus, needs a reset). Returns its PCI bus id and the line.
 */
export function lostGpu(line: string): { pciBusId: string; message: string } | undefined {
  const m = /device handle for GPU\s*([0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f]+\.[0-9A-Fa-f]+)/.exec(line);
  return m ? { pciBusId: m[1]!, message: line } : undefined;
}

/**
 * A PCI bus id in one spelling, so "00000000:0B:00.0" (pci.bus_id) and "0000:0b:00.0" (error
 * messages, sysfs) compare equal.
 */
export function normalizeBusId(busId: string): string {
  const m = /^([0-9A-Fa-f]+):([0-9A-Fa-f]+):([0-9A-Fa-f]+)\.([0-9A-Fa-f]+)$/.exec(busId.trim());
  if (!m) return busId.trim().toLowerCase();
  const hex = (s: string, width: number) => parseInt(s, 16).toString(16).padStart(width, '0');
  return `${hex(m[1]!, 4)}:${hex(m[2]!, 2)}:${hex(m[3]!, 2)}.${hex(m[4]!, 1)}`;
}
