import { readdir, readFile } from 'node:fs/promises';

/** Clock ticks per second of /proc's times (USER_HZ: 100 on Linux). */
const TICKS_PER_SECOND = 100;

interface ProcessTimes {
  readonly pid: number;
  readonly ppid: number;
  readonly command: string;
  /** utime + stime, and the same of its reaped children (cutime + cstime), in milliseconds. */
  readonly ownMs: number;
  readonly childrenMs: number;
}

async function processTimes(pid: number): Promise<ProcessTimes | undefined> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone, or not Linux
  }
  // `pid (command) state ppid ...`: the command may hold spaces and parentheses, so split after its last ')'.
  const close = stat.lastIndexOf(')');
  const command = stat.slice(stat.indexOf('(') + 1, close);
  const fields = stat.slice(close + 2).split(' ');
  const tick = (index: number) => (Number(fields[index]) * 1000) / TICKS_PER_SECOND;
  // After the command: [0] state, [1] ppid, ..., [11] utime, [12] stime, [13] cutime, [14] cstime.
  return {
    pid,
    ppid: Number(fields[1]),
    command,
    ownMs: tick(11) + tick(12),
    childrenMs: tick(13) + tick(14),
  };
}

/**
 * CPU time used so far by a process and all its descendants (those alive, and those that exited and were
 * waited for), in milliseconds, by command: for the sandbox, `node` (the AWS endpoint, the API and the
 * functions, all in-process) and `postgres` (the server and its backends). `exclude`: processes left out (a
 * backend serving the benchmark itself). Linux only: elsewhere, empty.
 */
export async function treeCpu(
  rootPid: number,
  exclude: ReadonlySet<number> = new Set(),
): Promise<Map<string, number>> {
  const all: ProcessTimes[] = [];
  let entries: string[] = [];
  try {
    entries = await readdir('/proc');
  } catch {
    return new Map();
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const times = await processTimes(Number(entry));
    if (times) all.push(times);
  }
  const children = new Map<number, ProcessTimes[]>();
  for (const times of all) children.set(times.ppid, [...(children.get(times.ppid) ?? []), times]);
  const byCommand = new Map<string, number>();
  const root = all.find((times) => times.pid === rootPid);
  const queue = root ? [root] : [];
  for (let next = queue.shift(); next; next = queue.shift()) {
    queue.push(...(children.get(next.pid) ?? []));
    if (exclude.has(next.pid)) continue;
    // A reaped child's time shows in its parent's children time, under the parent's command. Node names its
    // main thread, which /proc reports as the process's command.
    const command = next.command === 'MainThread' ? 'node' : next.command;
    byCommand.set(command, (byCommand.get(command) ?? 0) + next.ownMs + next.childrenMs);
  }
  return byCommand;
}

/** What `after` adds to `before`, by command. */
export function cpuSpent(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const spent = new Map<string, number>();
  for (const [command, ms] of after) spent.set(command, ms - (before.get(command) ?? 0));
  return spent;
}
