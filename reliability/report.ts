/** One figure of `npm run verify`'s table: what was measured, against its goal. */
export interface Figure {
  readonly scenario: string;
  readonly figure: string;
  readonly value: string;
  readonly goal: string;
  readonly met: boolean;
}

/** What a scenario measured, and every problem it saw (empty when every figure is at its goal). */
export interface ScenarioResult {
  readonly figures: Figure[];
  readonly problems: string[];
  /** What a reader of the figures wants named (the faults not reached), not a problem. */
  readonly notes?: string[];
}

export const figure = (
  scenario: string,
  name: string,
  value: number | string,
  goal: string,
  met: boolean,
): Figure => ({
  scenario,
  figure: name,
  value: String(value),
  goal,
  met,
});

/** Counts of each value, as `a 3, b 1`. */
export function tally(values: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return [...counts].map(([value, count]) => `${value} ${count}`).join(', ') || 'none';
}

/** The figures as a fixed-width table. */
export function formatTable(figures: readonly Figure[]): string {
  const header = { scenario: 'scenario', figure: 'figure', value: 'measured', goal: 'goal', met: 'ok' };
  const rows = [header, ...figures.map((f) => ({ ...f, met: f.met ? 'yes' : 'NO' }))];
  const width = (key: keyof typeof header) => Math.max(...rows.map((row) => row[key].length));
  const widths = {
    scenario: width('scenario'),
    figure: width('figure'),
    value: width('value'),
    goal: width('goal'),
  };
  const line = (row: (typeof rows)[number]) =>
    `| ${row.scenario.padEnd(widths.scenario)} | ${row.figure.padEnd(widths.figure)} | ${row.value.padEnd(widths.value)} | ${row.goal.padEnd(widths.goal)} | ${row.met.padEnd(3)} |`;
  const rule = `|${'-'.repeat(widths.scenario + 2)}|${'-'.repeat(widths.figure + 2)}|${'-'.repeat(widths.value + 2)}|${'-'.repeat(widths.goal + 2)}|-----|`;
  return [line(header), rule, ...rows.slice(1).map(line)].join('\n');
}
