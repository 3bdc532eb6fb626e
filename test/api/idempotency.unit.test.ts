import { describe, expect, it } from 'vitest';
import { jsonResult } from '../../functions/api/http.ts';
import { idempotent } from '../../functions/api/idempotency.ts';
import type { Sql } from '../../functions/shared/data-api.ts';
import { IdempotencyStore } from '../../functions/shared/idempotency-keys.ts';

/** A database where every claim succeeds and every write fails, as a registry that went away mid-request. */
function keptNothing(): { db: Sql; writes: string[] } {
  const writes: string[] = [];
  const db: Sql = {
    execute: async (sql) => {
      writes.push(sql);
      const error = new Error('invalid input syntax for type json: "SECRET-BODY-TEXT"');
      error.name = 'DatabaseErrorException';
      throw error;
    },
    query: async (_sql, _params, row) => [row.parse({ claimed: 1 })],
    transaction: async (work) => work(db),
  };
  return { db, writes };
}

describe('an idempotent answer that cannot be kept', () => {
  it('is answered all the same and logged once with its caller and key, never its body', async () => {
    // Prepare
    const { db, writes } = keptNothing();
    const lines: { message: string; details: Record<string, unknown> }[] = [];
    const log = (message: string, details: Record<string, unknown>) => lines.push({ message, details });

    // Act
    const result = await idempotent(
      new IdempotencyStore(db),
      { caller: 'caller-1', key: 'key-1', hash: 'hash' },
      async () => jsonResult(202, { tenantId: 't1', note: 'SECRET-BODY-TEXT' }),
      { log },
    );

    // Assess: the answer stands, the save was tried twice, and one line says so without the body or the message.
    expect(result.statusCode).toBe(202);
    expect(writes.filter((sql) => sql.includes('UPDATE idempotency_keys'))).toHaveLength(2);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.details).toEqual({
      caller: 'caller-1',
      key: 'key-1',
      statusCode: 202,
      error: 'DatabaseErrorException',
    });
    expect(JSON.stringify(lines)).not.toContain('SECRET-BODY-TEXT');
  });
});
