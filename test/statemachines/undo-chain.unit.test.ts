import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadMachines, type Machine, reachableFrom, type State } from './asl.ts';

/**
 * rollback-tenant runs provision-tenant's undo chain for a run that died before its compensation: the states
 * reachable in provision-tenant from rollback-tenant's start, as provision-tenant writes them (provision-tenant is
 * the one definition), except for these fields, each with its reason.
 */
const ROLLBACK_DIFFERS: Readonly<Record<string, Partial<State>>> = {
  // Once a provisioning run has undone its changes it fails (ProvisioningFailed); a rollback run that did the
  // same has done what it was started for, and succeeds.
  MarkFailed: { Next: 'RolledBack' },
};

/** States whose Comment may differ: rollback-tenant's speaks of the run that died rather than of its own. */
const COMMENT_DIFFERS: ReadonlySet<string> = new Set(['MarkFailed']);

/** rollback-tenant's own end states, where provision-tenant's chain goes on to its own ones. */
const ROLLBACK_OWN = new Set(['RolledBack']);

/**
 * Where rollback-tenant's states differ from provision-tenant's undo chain, one line each; none when they agree.
 * What is expected of each state is provision-tenant's, with {@link ROLLBACK_DIFFERS} applied.
 */
function undoChainDrift(provision: Machine, rollback: Machine): string[] {
  const problems: string[] = [];
  const expected: Machine['States'] = {};
  for (const name of reachableFrom(provision, rollback.StartAt)) {
    const state = provision.States[name];
    if (state) expected[name] = { ...state, ...ROLLBACK_DIFFERS[name] };
  }
  // The chain as rollback-tenant runs it: ProvisioningFailed is provision-tenant's own and is no longer reached.
  const chain = reachableFrom(
    { ...provision, States: { ...provision.States, ...expected } },
    rollback.StartAt,
  );
  for (const name of chain) {
    const want = expected[name];
    const have = rollback.States[name];
    if (!want) continue;
    if (!have) {
      problems.push(`${name}: in provision-tenant's undo chain, not in rollback-tenant`);
      continue;
    }
    const fields = new Set([...Object.keys(want), ...Object.keys(have)]);
    for (const field of fields) {
      if (field === 'Comment' && COMMENT_DIFFERS.has(name)) continue;
      if (!isDeepStrictEqual(have[field], want[field])) {
        problems.push(
          `${name}.${field}: rollback-tenant has ${JSON.stringify(have[field])}, expected ${JSON.stringify(want[field])}`,
        );
      }
    }
  }
  for (const name of Object.keys(rollback.States)) {
    if (!chain.has(name) && !ROLLBACK_OWN.has(name)) {
      problems.push(
        `${name}: in rollback-tenant, not in provision-tenant's undo chain from ${rollback.StartAt}`,
      );
    }
  }
  const unreached = Object.keys(rollback.States).filter(
    (name) => !reachableFrom(rollback, rollback.StartAt).has(name),
  );
  if (unreached.length > 0) problems.push(`rollback-tenant never reaches ${unreached.join(', ')}`);
  return problems;
}

const machines = loadMachines();

/** Both machines, each test with its own copies to change. */
function copies(): { provision: Machine; rollback: Machine } {
  const provision = machines.get('provision-tenant');
  const rollback = machines.get('rollback-tenant');
  if (!provision || !rollback) throw new Error('statemachines/ lacks provision-tenant or rollback-tenant');
  return structuredClone({ provision, rollback });
}

describe("rollback-tenant's states", () => {
  it("are provision-tenant's undo chain, state by state, but for the differences named", () => {
    // Prepare
    const { provision, rollback } = copies();

    // Act
    const problems = undoChainDrift(provision, rollback);

    // Assess
    expect(problems).toEqual([]);
    // The chain: four undo steps, the four states naming the one that failed, the two outcomes and their ends.
    expect(Object.keys(rollback.States).sort()).toEqual(
      [
        'RemoveAlarms',
        'RemoveStorage',
        'RemoveRoles',
        'DropDatabase',
        'RemoveAlarmsFailed',
        'RemoveStorageFailed',
        'RemoveRolesFailed',
        'DropDatabaseFailed',
        'MarkFailed',
        'MarkRollbackFailed',
        'RollbackFailed',
        'RolledBack',
      ].sort(),
    );
    expect(rollback.States.RolledBack?.Type).toBe('Succeed');
  });

  describe('drifting is caught', () => {
    it.each<[string, (machines: { provision: Machine; rollback: Machine }) => void, string[]]>([
      [
        'a comment changed in one of them',
        ({ rollback }) => {
          if (rollback.States.RemoveStorage) rollback.States.RemoveStorage.Comment = 'Empties the prefix.';
        },
        [
          'RemoveStorage.Comment: rollback-tenant has "Empties the prefix.", expected "Deletes every object under tenants/<id>/."',
        ],
      ],
      [
        "a parameter added to provision-tenant's undo step only",
        ({ provision }) => {
          if (provision.States.RemoveRoles) {
            provision.States.RemoveRoles.Parameters = { 'tenantId.$': '$.tenantId', 'stage.$': '$.stage' };
          }
        },
        [
          'RemoveRoles.Parameters: rollback-tenant has {"tenantId.$":"$.tenantId"}, expected {"tenantId.$":"$.tenantId","stage.$":"$.stage"}',
        ],
      ],
      [
        "a retry changed in rollback-tenant's only",
        ({ rollback }) => {
          const retry = rollback.States.DropDatabase?.Retry;
          if (rollback.States.DropDatabase && Array.isArray(retry)) {
            rollback.States.DropDatabase.Retry = [{ ...retry[0], MaxAttempts: 5 }];
          }
        },
        [
          'DropDatabase.Retry: rollback-tenant has [{"ErrorEquals":["States.ALL"],"IntervalSeconds":1,"BackoffRate":2,"MaxAttempts":5,"JitterStrategy":"FULL"}], expected [{"ErrorEquals":["States.ALL"],"IntervalSeconds":1,"BackoffRate":2,"MaxAttempts":3,"JitterStrategy":"FULL"}]',
        ],
      ],
      [
        'MarkFailed ending a rollback run in failure',
        ({ rollback }) => {
          if (rollback.States.MarkFailed) rollback.States.MarkFailed.Next = 'RollbackFailed';
        },
        [
          'MarkFailed.Next: rollback-tenant has "RollbackFailed", expected "RolledBack"',
          'rollback-tenant never reaches RolledBack',
        ],
      ],
      [
        'an undo step added to provision-tenant only',
        ({ provision }) => {
          const dropDatabase = provision.States.DropDatabase;
          if (!dropDatabase) return;
          provision.States.RemoveBackups = { ...dropDatabase, Next: 'MarkFailed' };
          dropDatabase.Next = 'RemoveBackups';
        },
        [
          'DropDatabase.Next: rollback-tenant has "MarkFailed", expected "RemoveBackups"',
          "RemoveBackups: in provision-tenant's undo chain, not in rollback-tenant",
        ],
      ],
    ])('%s', (_, change, expected) => {
      // Prepare
      const both = copies();
      change(both);

      // Act
      const problems = undoChainDrift(both.provision, both.rollback);

      // Assess
      expect(problems).toEqual(expected);
    });
  });
});
