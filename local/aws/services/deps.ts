import { randomInt } from 'node:crypto';
import { z } from 'zod';
import { AwsError, type JsonObject } from '../protocol.ts';
import type { Store } from '../store.ts';

/** What every service factory receives: where state lives, and the account and region it plays. */
export interface ServiceDeps {
  readonly store: Store;
  readonly region: string;
  readonly accountId: string;
}

/**
 * Parses an operation's input; what does not fit becomes the service's validation error (`errorCode`).
 * Members the schema does not name are dropped, so that fields a newer SDK sends do not break a call.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: JsonObject, errorCode: string): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new AwsError(errorCode, z.prettifyError(parsed.error));
  return parsed.data;
}

/**
 * Runs read-modify-write sequences on one resource one at a time. The store has no compare-and-set, and
 * the sandbox is one process, so a per-key queue is enough to keep concurrent updates from losing each other.
 */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(work, work);
    const tail = result.catch(() => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}

/** AWS timestamps in awsJson: epoch seconds, fractions allowed. */
export const epochSeconds = (ms: number): number => ms / 1000;

const tokenSchema = z.object({ offset: z.number().int().nonnegative() });

/** An opaque pagination token carrying an offset, as services that list from a snapshot hand out. */
export const offsetToken = {
  encode: (offset: number): string => Buffer.from(JSON.stringify({ offset })).toString('base64url'),
  /** The offset, or undefined when the token is not one of ours. */
  decode(token: string): number | undefined {
    try {
      const parsed = tokenSchema.safeParse(JSON.parse(Buffer.from(token, 'base64url').toString('utf8')));
      return parsed.success ? parsed.data.offset : undefined;
    } catch {
      return undefined;
    }
  },
};

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** `length` random letters and digits, as in the suffix of a secret's ARN. */
export const randomAlphanumeric = (length: number): string =>
  Array.from({ length }, () => ALPHANUMERIC[randomInt(ALPHANUMERIC.length)]).join('');
