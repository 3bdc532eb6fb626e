import { describe, expect, it } from 'vitest';
import { errorResult } from '../../functions/api/http.ts';
import { ServiceUnavailableError } from '../../functions/shared/errors.ts';
import {
  API_TRANSIENT_ERRORS,
  RETRY,
  TRANSIENT_ERRORS,
  transientErrorsFrom,
} from '../../functions/shared/transient.ts';
import { loadMachines, Machine, retryDrift, type State } from './asl.ts';

/** The machines as the files have them, each test with its own copy to change. */
const machines = loadMachines();
const copy = (): Map<string, Machine> => structuredClone(machines);

/** Changes a state of a copy (`Map/State` inside a Map's iteration); throws if it is not there. */
function change(copied: Map<string, Machine>, machine: string, path: string, edit: (state: State) => void) {
  const within = (states: Machine['States'], [name = '', ...rest]: string[]): void => {
    const state = states[name];
    if (!state) throw new Error(`no state ${machine} ${path}`);
    if (rest.length === 0) {
      edit(state);
      return;
    }
    const iteration = Machine.parse(state.ItemProcessor);
    within(iteration.States, rest);
    state.ItemProcessor = iteration;
  };
  within(copied.get(machine)?.States ?? {}, path.split('/'));
}

const [transient] = RETRY.transient;

describe('the Retry of every Task of statemachines/', () => {
  it('is what functions/shared/transient.ts says: RETRY.everyError where RETRIES_EVERY_ERROR names it, else RETRY.transient', () => {
    // Act
    const problems = retryDrift(machines);

    // Assess
    expect(problems).toEqual([]);
    expect(machines.size).toBeGreaterThan(0);
  });

  describe('drifting is caught', () => {
    it.each<[string, string, string, (state: State) => void, RegExp]>([
      [
        'a transient error missing from one Task',
        'provision-tenant',
        'CreateDatabase',
        (state) => {
          state.Retry = [
            { ...transient, ErrorEquals: transient.ErrorEquals.filter((name) => name !== 'SlowDown') },
          ];
        },
        /^provision-tenant CreateDatabase: Retry is not RETRY\.transient: lacks SlowDown$/,
      ],
      [
        'a business error added to a forward step',
        'change-plan',
        'CheckUsage',
        (state) => {
          state.Retry = [{ ...transient, ErrorEquals: [...transient.ErrorEquals, 'PlanChangeRefusedError'] }];
        },
        /^change-plan CheckUsage: Retry is not RETRY\.transient: also names PlanChangeRefusedError$/,
      ],
      [
        'another number of attempts',
        'suspend-tenant',
        'DisableTenantAccess',
        (state) => {
          state.Retry = [{ ...transient, MaxAttempts: 2 }];
        },
        /^suspend-tenant DisableTenantAccess: Retry is not RETRY\.transient: MaxAttempts 2, not 3$/,
      ],
      [
        'no jitter',
        'migrate-fleet',
        'Finish',
        (state) => {
          const { JitterStrategy: _, ...withoutJitter } = transient;
          state.Retry = [withoutJitter];
        },
        /^migrate-fleet Finish: Retry is not RETRY\.transient: JitterStrategy undefined, not "FULL"$/,
      ],
      [
        'an undo step that retries only transient errors',
        'provision-tenant',
        'RemoveAlarms',
        (state) => {
          state.Retry = structuredClone(RETRY.transient);
        },
        /^provision-tenant RemoveAlarms: Retry is not RETRY\.everyError: lacks States\.ALL; also names /,
      ],
      [
        'a forward step that retries every error',
        'restore-tenant',
        'LoadBackup',
        (state) => {
          state.Retry = structuredClone(RETRY.everyError);
        },
        /^restore-tenant LoadBackup: Retry is not RETRY\.transient: lacks DatabaseResumingException, /,
      ],
      [
        'a Task in a Map iteration without a Retry',
        'bulk-onboard',
        'ProvisionRows/StartRow',
        (state) => {
          delete state.Retry;
        },
        /^bulk-onboard ProvisionRows\/StartRow: Retry is not RETRY\.transient: has no Retry$/,
      ],
      [
        'a Retry on a Map',
        'migrate-fleet',
        'MigrateChunks',
        (state) => {
          state.Retry = structuredClone(RETRY.transient);
        },
        /^migrate-fleet MigrateChunks: a Map with a Retry$/,
      ],
    ])('%s', (_, machine, path, edit, problem) => {
      // Prepare
      const copied = copy();
      change(copied, machine, path, edit);

      // Act
      const problems = retryDrift(copied);

      // Assess
      expect(problems).toEqual([expect.stringMatching(problem)]);
    });

    it('a named exception that is no Task, and a machine without an entry', () => {
      // Prepare: DiscardBackup renamed, and a machine nobody classified
      const copied = copy();
      const backup = copied.get('backup-tenant');
      const discard = backup?.States.DiscardBackup;
      if (!backup || !discard) throw new Error('backup-tenant has no DiscardBackup');
      backup.States.DeleteBackup = discard;
      delete backup.States.DiscardBackup;
      const provision = copied.get('provision-tenant');
      if (!provision) throw new Error('no provision-tenant');
      copied.set('provision-tenant-v2', provision);

      // Act
      const problems = retryDrift(copied);

      // Assess
      expect(problems).toEqual([
        'backup-tenant DeleteBackup: Retry is not RETRY.transient: lacks DatabaseResumingException, DatabaseUnavailableException, ServiceUnavailableError, InternalServerErrorException, ThrottlingException, Throttling, TooManyRequestsException, RequestLimitExceeded, SlowDown, ServiceUnavailableException, ServiceUnavailable, InternalFailure, InternalError, InternalServiceError, InternalServiceFault, InternalException, Lambda.ServiceException, Lambda.AWSLambdaException, Lambda.SdkClientException, Lambda.TooManyRequestsException; also names States.ALL',
        'backup-tenant: RETRIES_EVERY_ERROR names DiscardBackup (undo), which is no Task of it',
        'provision-tenant-v2: no entry in RETRIES_EVERY_ERROR (functions/shared/transient.ts)',
        ...[
          'RemoveAlarms',
          'RemoveStorage',
          'RemoveRoles',
          'DropDatabase',
          'MarkFailed',
          'MarkRollbackFailed',
        ].map((name) =>
          expect.stringMatching(`^provision-tenant-v2 ${name}: Retry is not RETRY\\.transient: `),
        ),
      ]);
    });
  });
});

describe('the transient error list', () => {
  it('names each error once, the product one as errors.ts names it', () => {
    expect(new Set(TRANSIENT_ERRORS).size).toBe(TRANSIENT_ERRORS.length);
    expect(transientErrorsFrom('product')).toEqual([new ServiceUnavailableError('').name]);
  });

  it.each([...API_TRANSIENT_ERRORS])(
    '%s, raised by an SDK call in the api function, is a 503 to retry',
    (name) => {
      // Prepare: as the SDK raises it, a client fault (DatabaseResumingException is a 400)
      const error = Object.assign(new Error('later'), { name, $fault: 'client' });

      // Act
      const result = errorResult(error);

      // Assess
      expect(result.statusCode).toBe(503);
      expect(result.headers['retry-after']).toBe('5');
    },
  );

  it("the api's subset is the Data API's and throttling, taken from the list", () => {
    expect([...API_TRANSIENT_ERRORS]).toEqual(transientErrorsFrom('database', 'throttling'));
    expect(TRANSIENT_ERRORS).toEqual(expect.arrayContaining([...API_TRANSIENT_ERRORS]));
  });
});
