import type { FunctionDefinition } from '../functions/registry.ts';
import type { LambdaRuntime } from './lambda.ts';

export interface SchedulesOptions {
  readonly functions: readonly FunctionDefinition[];
  readonly lambda: LambdaRuntime;
  /** Between two runs of a scheduled function; 0 runs each once, at startup, only. */
  readonly intervalMs: number;
  readonly log: (line: string) => void;
}

export interface Schedules {
  /** Runs every scheduled function now (after any run in progress) and resolves when they are done. */
  runNow(): Promise<void>;
  /** Stops the timer and waits for a run in progress. */
  stop(): Promise<void>;
}

/**
 * What EventBridge Scheduler does on AWS for the registry's functions with a `schedule`: invokes them with an
 * empty event. The sandbox runs them at startup (the drift reconciler then finds what a killed sandbox left
 * half done) and every `intervalMs` after, on a faster clock than the deployed expression; runs never overlap.
 */
export function startSchedules(options: SchedulesOptions): Schedules {
  const scheduled = options.functions.filter((fn) => fn.schedule !== undefined);
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const runAll = async () => {
    for (const fn of scheduled) {
      try {
        await options.lambda.invoke(options.lambda.arnOf(fn.id), {});
      } catch (error) {
        options.log(
          `schedule: ${fn.id} failed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
        );
      }
    }
  };
  const runNow = () => {
    running = running.then(runAll);
    return running;
  };
  const tick = () => {
    void runNow().then(() => {
      if (!stopped && options.intervalMs > 0) timer = setTimeout(tick, options.intervalMs);
    });
  };
  if (scheduled.length > 0) tick();
  return {
    runNow,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
