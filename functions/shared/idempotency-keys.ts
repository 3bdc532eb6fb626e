import * as z from '../../schema/zod.ts';
import { json, jsonText, type Sql } from './data-api.ts';

/** What a claim of an `Idempotency-Key` found. */
export type IdempotencyClaim =
  | { readonly kind: 'claimed' }
  | { readonly kind: 'answered'; readonly statusCode: number; readonly body: unknown }
  | { readonly kind: 'in_progress' }
  | { readonly kind: 'mismatch' };

/** How long a key's first answer is replayed. */
export const IDEMPOTENCY_TTL_HOURS = 24;
/**
 * A claim without an answer this old is taken over: its request died (a Lambda runs at most 30 s behind an
 * API Gateway that waits 30 s), and the key would otherwise be stuck until it expires.
 */
export const IDEMPOTENCY_STALE_SECONDS = 120;
/** How often a claim is tried when its key is released between its two statements each time. */
const CLAIM_ATTEMPTS = 3;

/**
 * The first answers to requests with an `Idempotency-Key` (`control_plane.idempotency_keys`), by caller and key,
 * which functions/api/idempotency.ts replays.
 */
export class IdempotencyStore {
  readonly #db: Sql;

  /** `db` targets the control_plane database. */
  constructor(db: Sql) {
    this.#db = db;
  }

  /**
   * Claims an `Idempotency-Key` for a caller and a request hash. `claimed`: the caller answers and then
   * {@link saveAnswer}s or {@link release}s. Otherwise what the key already holds:
   * the first answer, a request still being answered, or another request (`mismatch`).
   */
  async claim(caller: string, key: string, requestHash: string): Promise<IdempotencyClaim> {
    // A key released between the two statements is as good as free, so it is claimed again; a few times at most: a
    // key released as often as it is read is busy, and the client is told so.
    for (let attempt = 1; attempt <= CLAIM_ATTEMPTS; attempt += 1) {
      const claimed = await this.#db.query(
        `INSERT INTO idempotency_keys (caller, key, request_hash) VALUES (:caller, :key, :requestHash)
         ON CONFLICT (caller, key) DO UPDATE SET
           request_hash = EXCLUDED.request_hash, status_code = NULL, response = NULL, created_at = now()
         WHERE idempotency_keys.created_at < now() - interval '1 hour' * :ttlHours
            OR (idempotency_keys.status_code IS NULL
                AND idempotency_keys.created_at < now() - interval '1 second' * :staleSeconds)
         RETURNING 1 AS claimed`,
        {
          caller,
          key,
          requestHash,
          ttlHours: IDEMPOTENCY_TTL_HOURS,
          staleSeconds: IDEMPOTENCY_STALE_SECONDS,
        },
        z.object({ claimed: z.number() }),
      );
      if (claimed.length > 0) return { kind: 'claimed' };
      const [row] = await this.#db.query(
        `SELECT request_hash, status_code, response::text AS response FROM idempotency_keys
         WHERE caller = :caller AND key = :key`,
        { caller, key },
        z.object({
          request_hash: z.string(),
          status_code: z.nullable(z.number()),
          response: z.nullable(jsonText(z.unknown())),
        }),
      );
      if (!row) continue;
      if (row.request_hash !== requestHash) return { kind: 'mismatch' };
      if (row.status_code === null) return { kind: 'in_progress' };
      return { kind: 'answered', statusCode: row.status_code, body: row.response };
    }
    return { kind: 'in_progress' };
  }

  async saveAnswer(caller: string, key: string, statusCode: number, body: unknown): Promise<void> {
    await this.#db.execute(
      `UPDATE idempotency_keys SET status_code = :statusCode, response = CAST(:body AS jsonb)
       WHERE caller = :caller AND key = :key`,
      { caller, key, statusCode, body: json(body) },
    );
  }

  /** Frees a claimed key whose request could not be answered, so that a retry runs it again. */
  async release(caller: string, key: string): Promise<void> {
    await this.#db.execute(
      'DELETE FROM idempotency_keys WHERE caller = :caller AND key = :key AND status_code IS NULL',
      { caller, key },
    );
  }
}
