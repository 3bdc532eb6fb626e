import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  IdempotencyKeyInProgressError,
  IdempotencyKeyReusedError,
  ProvisionerError,
  ValidationError,
} from '../shared/errors.ts';
import type { IdempotencyStore } from '../shared/idempotency-keys.ts';
import { errorResult, type HttpEvent, type HttpResult, jsonResult } from './http.ts';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
/** 1 to 255 printable ASCII characters, not starting or ending with a space. */
const KEY_PATTERN = /^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/;

/** The request's `Idempotency-Key`, undefined without one; a {@link ValidationError} when malformed. */
export function idempotencyKeyOf(event: HttpEvent): string | undefined {
  const key = event.headers[IDEMPOTENCY_HEADER];
  if (key === undefined) return undefined;
  if (!KEY_PATTERN.test(key)) {
    throw new ValidationError('Invalid Idempotency-Key', [
      {
        path: 'headers.Idempotency-Key',
        message: '1 to 255 printable ASCII characters, no space at either end',
      },
    ]);
  }
  return key;
}

/**
 * JSON with object keys sorted at every depth: two bodies that mean the same have the same text. Written without
 * recursion, so that a body nested 100,000 levels deep (which `JSON.parse` reads) cannot overflow the stack.
 */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  // What is left to write, last first: a value, or punctuation.
  const todo: ({ text: string } | { value: unknown })[] = [{ value }];
  for (let next = todo.pop(); next !== undefined; next = todo.pop()) {
    if ('text' in next) {
      out.push(next.text);
      continue;
    }
    const item = next.value;
    if (Array.isArray(item)) {
      todo.push({ text: ']' });
      for (let i = item.length - 1; i >= 0; i -= 1) {
        todo.push({ value: item[i] });
        if (i > 0) todo.push({ text: ',' });
      }
      todo.push({ text: '[' });
    } else if (typeof item === 'object' && item !== null) {
      const entries = Object.entries(item)
        .filter(([, member]) => member !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      todo.push({ text: '}' });
      for (let i = entries.length - 1; i >= 0; i -= 1) {
        const [key, member] = entries[i] as [string, unknown];
        todo.push({ value: member }, { text: `${i > 0 ? ',' : ''}${JSON.stringify(key)}:` });
      }
      todo.push({ text: '{' });
    } else {
      out.push(JSON.stringify(item) ?? 'null');
    }
  }
  return out.join('');
}

/** The hash a key's request is recognised by: the route and the canonical body. */
export function requestHash(routeKey: string, body: unknown): string {
  return createHash('sha256').update(routeKey).update('\n').update(canonicalJson(body)).digest('hex');
}

export interface IdempotencyOptions {
  /** How long to wait for a first request with the same key that is still being answered. */
  readonly waitMs?: number;
  readonly pollMs?: number;
  /** The api function's log (functions/api/handler.ts): an answer that could not be kept is reported there. */
  readonly log?: (message: string, details: Record<string, unknown>) => void;
}

export const REPLAYED_HEADER = 'idempotent-replayed';

/**
 * Runs `answer` at most once per caller and key: the first answer (a success or a client error) is stored
 * and every later request with the same key and body gets it again; the same key with another body is a
 * 422. A request arriving while the first is still being answered waits a little for its answer, then gets
 * a 409 `idempotency_key_in_progress`. When `answer` fails with a server error the key is released, so that a
 * retry runs it afresh (the request undid its own work).
 */
export async function idempotent(
  keys: IdempotencyStore,
  claim: { caller: string; key: string; hash: string },
  answer: () => Promise<HttpResult>,
  options: IdempotencyOptions = {},
): Promise<HttpResult> {
  const { waitMs = 2_000, pollMs = 100, log } = options;
  const deadline = Date.now() + waitMs;
  for (;;) {
    const found = await keys.claim(claim.caller, claim.key, claim.hash);
    if (found.kind === 'mismatch') {
      throw new IdempotencyKeyReusedError('This Idempotency-Key was used with another request');
    }
    if (found.kind === 'answered') {
      return jsonResult(found.statusCode, found.body, { [REPLAYED_HEADER]: 'true' });
    }
    if (found.kind === 'claimed') break;
    if (Date.now() >= deadline) {
      throw new IdempotencyKeyInProgressError('A request with this Idempotency-Key is still being answered');
    }
    await sleep(pollMs);
  }
  let result: HttpResult;
  try {
    result = await answer();
  } catch (error) {
    if (error instanceof ProvisionerError && error.statusCode < 500) {
      result = errorResult(error);
    } else {
      await keys.release(claim.caller, claim.key);
      throw error;
    }
  }
  const body: unknown = JSON.parse(result.body);
  // The work is done and the answer stands even when it cannot be kept: a retry with the key then waits as for a
  // request in progress, and runs again only after the claim goes stale. Logged with the caller and key, never the
  // body, and only the error's name: a database error's message may quote the value it refused.
  await keys
    .saveAnswer(claim.caller, claim.key, result.statusCode, body)
    .catch(() => keys.saveAnswer(claim.caller, claim.key, result.statusCode, body))
    .catch((error: unknown) => {
      log?.('The idempotent answer was not kept; a retry with its key runs again once the claim is stale', {
        caller: claim.caller,
        key: claim.key,
        statusCode: result.statusCode,
        error: error instanceof Error ? error.name : String(error),
      });
    });
  return result;
}
