import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { FunctionDefinition } from '../functions/registry.ts';
import type { LambdaRuntime } from './lambda.ts';

/** A state machine the sandbox starts on its own clock, as EventBridge Scheduler does on AWS. */
export interface ScheduledRun {
  readonly arn: string;
  /** The run's input; `<aws.scheduler.scheduled-time>` becomes the time of the start. */
  readonly input: Readonly<Record<string, string>>;
  /** Between two starts; 0: never started by the sandbox. */
  readonly intervalMs: number;
}

export interface SchedulesOptions {
  readonly functions: readonly FunctionDefinition[];
  readonly lambda: LambdaRuntime;
  /** Between two runs of a scheduled function; 0 runs each once, at startup, only. */
  readonly intervalMs: number;
  readonly stateMachines?: readonly ScheduledRun[];
  readonly log: (line: string) => void;
}

/** EventBridge Scheduler's context attribute for the time a run is for ("Using context attributes"). */
const SCHEDULED_TIME = '<aws.scheduler.scheduled-time>';

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
  // State machines are started through the SDK, as Scheduler calls StartExecution; the run is the state machine's.
  const sfn = new SFNClient({});
  const timers = (options.stateMachines ?? [])
    .filter((run) => run.intervalMs > 0)
    .map((run) =>
      setInterval(() => {
        // Scheduler's time has seconds, no fraction: 2026-12-03T12:05:00Z.
        const at = `${new Date().toISOString().slice(0, 19)}Z`;
        const input = Object.fromEntries(
          Object.entries(run.input).map(([key, value]) => [key, value.replaceAll(SCHEDULED_TIME, at)]),
        );
        sfn
          .send(new StartExecutionCommand({ stateMachineArn: run.arn, input: JSON.stringify(input) }))
          .catch((error: unknown) =>
            options.log(
              `schedule: ${run.arn} did not start: ${error instanceof Error ? error.message : error}`,
            ),
          );
      }, run.intervalMs),
    );
  return {
    runNow,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      for (const interval of timers) clearInterval(interval);
      sfn.destroy();
      await running;
    },
  };
}
