/**
 * How the CLI shows long work: on a terminal, a block redrawn in place as the work moves (steps with their state
 * and durations, a progress bar); otherwise, plain lines, one per change, that a log or another program can read.
 * With `--json` nothing but the final document is written (see `Output`).
 */
export interface Display {
  /** Whether the block is redrawn in place (a terminal). */
  readonly interactive: boolean;
  /** One change: a line of its own when not interactive; on a terminal the frame shows it. */
  event(text: string): void;
  /** The current picture: redrawn in place on a terminal; not shown otherwise. */
  frame(lines: readonly string[]): void;
  /** Leaves the last frame on screen and ends the live block. */
  end(): void;
}

export interface Stream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly rows?: number;
  readonly columns?: number;
}

/** Plain lines: each event once, no frames. */
export function plainDisplay(out: Stream): Display {
  return {
    interactive: false,
    event: (text) => out.write(`${text}\n`),
    frame: () => {},
    end: () => {},
  };
}

/** A block redrawn in place with ANSI cursor movements, cut to the terminal's size. */
export function terminalDisplay(out: Stream): Display {
  let drawn = 0;
  const fitToScreen = (lines: readonly string[]) => {
    const rows = Math.max(3, (out.rows ?? 24) - 1);
    const columns = Math.max(20, out.columns ?? 100);
    const shown =
      lines.length > rows ? [...lines.slice(0, rows - 1), `  … ${lines.length - rows + 1} more`] : lines;
    return shown.map((line) => truncate(line, columns));
  };
  return {
    interactive: true,
    event: () => {},
    frame(lines) {
      const next = fitToScreen(lines);
      // Up to the block's first line, clear to the end of the screen, draw again.
      const up = drawn > 0 ? `\x1b[${drawn}F\x1b[0J` : '';
      out.write(`${up}${next.join('\n')}\n`);
      drawn = next.length;
    },
    end() {
      drawn = 0;
    },
  };
}

/** Cuts a line to the terminal's width, not counting ANSI colour codes. */
function truncate(line: string, columns: number): string {
  let visible = 0;
  let result = '';
  for (let i = 0; i < line.length; i += 1) {
    if (line[i] === '\x1b') {
      const end = line.indexOf('m', i);
      if (end !== -1) {
        result += line.slice(i, end + 1);
        i = end;
        continue;
      }
    }
    if (visible >= columns - 1) return `${result}…\x1b[0m`;
    result += line[i];
    visible += 1;
  }
  return result;
}

/** ANSI colours for a terminal, nothing otherwise (or with NO_COLOR set). */
export interface Colors {
  green(text: string): string;
  red(text: string): string;
  yellow(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
}

export function colors(enabled: boolean): Colors {
  const wrap = (code: string) => (text: string) => (enabled ? `\x1b[${code}m${text}\x1b[0m` : text);
  return { green: wrap('32'), red: wrap('31'), yellow: wrap('33'), dim: wrap('2'), bold: wrap('1') };
}

/** `[#####.....] 50%`, `width` characters of bar. */
export function bar(done: number, total: number, width = 30): string {
  const ratio = total === 0 ? 1 : Math.min(1, done / total);
  const filled = Math.round(ratio * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.floor(ratio * 100)}%`;
}

/** `45 ms`, `1.2 s`, `3 min 5 s`. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms - minutes * 60_000) / 1000)} s`;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
export const spinner = (tick: number): string => SPINNER[tick % SPINNER.length] ?? '*';
