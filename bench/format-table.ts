/** Plain-text tables for the benchmark report: first column left-aligned, the others right. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, col) => Math.max(...all.map((row) => (row[col] ?? '').length)));
  const line = (row: readonly string[]) =>
    row
      .map((cell, col) => (col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** A number with `digits` significant figures at most, grouped by thousands. */
export function formatNumber(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return 'n/a';
  const abs = Math.abs(value);
  const decimals = abs >= 10 ** (digits - 1) ? 0 : Math.max(0, digits - 1 - Math.floor(Math.log10(abs || 1)));
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

export function formatMiB(bytes: number): string {
  return `${formatNumber(bytes / 2 ** 20)} MiB`;
}
