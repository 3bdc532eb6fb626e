/** A goal a figure is held to, and whether this run met it. */
export interface Goal {
  readonly text: string;
  readonly met: boolean;
}

/** One line of the summary table: a measured figure, what it is compared with, and its goal. */
export interface Figure {
  readonly label: string;
  readonly value: string;
  /** The floor or reference measured in the same run, e.g. `floor p50 92 ms (4.1×)`. */
  readonly beside?: string;
  readonly goal?: Goal;
}

/** A section's outcome: its figures for the table, and its details for the results file. */
export interface SectionResult {
  readonly figures: readonly Figure[];
  readonly details: unknown;
  /** Set when the section could not measure (a gap, e.g. a missing script), said in the table. */
  readonly gap?: string;
  /** What broke while measuring (the run then exits non-zero), with the figures that could still be taken. */
  readonly broken?: readonly string[];
}

const status = (figure: Figure): string => (figure.goal ? (figure.goal.met ? 'met' : 'MISSED') : '');

const COLUMNS = ['figure', 'measured', 'beside it (same run)', 'goal', ''] as const;

function rows(figures: readonly Figure[]): string[][] {
  return figures.map((figure) => [
    figure.label,
    figure.value,
    figure.beside ?? '',
    figure.goal?.text ?? '',
    status(figure),
  ]);
}

/** The summary as a plain-text table for the terminal. */
export function textTable(figures: readonly Figure[]): string {
  const body = rows(figures);
  const widths = COLUMNS.map((column, i) =>
    Math.max(column.length, ...body.map((row) => (row[i] ?? '').length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(COLUMNS), line(widths.map((width) => '-'.repeat(width))), ...body.map(line)].join('\n');
}

/** The summary as a Markdown table, for the README. */
export function markdownTable(figures: readonly Figure[]): string {
  const escapeCell = (cell: string) => cell.replaceAll('|', '\\|');
  return [
    `| ${COLUMNS.join(' | ')} |`,
    `| ${COLUMNS.map(() => '---').join(' | ')} |`,
    ...rows(figures).map((row) => `| ${row.map(escapeCell).join(' | ')} |`),
  ].join('\n');
}

export const ms = (value: number): string => `${Math.round(value)} ms`;
export const ratio = (value: number, floor: number): string =>
  floor > 0 ? `${(value / floor).toFixed(1)}×` : 'n/a';
