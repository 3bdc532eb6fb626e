import { describe, expect, it } from 'vitest';
import type { Sql } from '../../functions/shared/data-api.ts';
import { IdempotencyStore } from '../../functions/shared/idempotency-keys.ts';

/**
 * A database whose key is taken by another request and released again before it can be read, every time: the race
 * `claim` meets between its INSERT … ON CONFLICT and its SELECT, forced on each attempt.
 */
function alwaysReleased(): { db: Sql; statements: () => number } {
  let statements = 0;
  const db: Sql = {
    execute: async () => 0,
    query: async () => {
      statements += 1;
      return [];
    },
    transaction: async (work) => work(db),
  };
  return { db, statements: () => statements };
}

describe('claiming an Idempotency-Key', () => {
  it('tries a few times when the key is released between its two statements, then says it is in progress', async () => {
    // Prepare
    const { db, statements } = alwaysReleased();
    const keys = new IdempotencyStore(db);

    // Act
    const claim = await keys.claim('caller', 'key', 'hash');

    // Assess: bounded (it called itself without end before), and answered as a busy key, which the API gives 409.
    expect(claim).toEqual({ kind: 'in_progress' });
    expect(statements()).toBe(6);
  });
});
