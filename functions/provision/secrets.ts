import {
  CreateSecretCommand,
  DeleteSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  ResourceExistsException,
  ResourceNotFoundException,
  type SecretsManagerClient,
  type Tag,
} from '@aws-sdk/client-secrets-manager';
import type * as z from '../../schema/zod.ts';

export interface SecretSpec<Value> {
  readonly name: string;
  readonly description: string;
  readonly tags: readonly Tag[];
  /** What a stored value must look like. */
  readonly schema: z.ZodMiniType<Value>;
  /** A new value, made only when the secret does not exist yet. */
  readonly create: () => Value;
}

/**
 * The secret by name, created when missing. An existing secret keeps its value (the source of truth on a rerun);
 * a secret made by a concurrent attempt wins over ours. Creating first costs one call in the usual case, where
 * the secret does not exist yet; an existing one is read after CreateSecret says so.
 */
export async function ensureSecret<Value>(
  client: SecretsManagerClient,
  spec: SecretSpec<Value>,
): Promise<{ arn: string; value: Value; created: boolean }> {
  const value = spec.create();
  try {
    const made = await client.send(
      new CreateSecretCommand({
        Name: spec.name,
        Description: spec.description,
        SecretString: JSON.stringify(value),
        Tags: [...spec.tags],
      }),
    );
    if (!made.ARN) throw new Error(`CreateSecret returned no ARN for ${spec.name}`);
    return { arn: made.ARN, value, created: true };
  } catch (error) {
    if (!(error instanceof ResourceExistsException)) throw error;
    const existing = await readSecret(client, spec.name, spec.schema);
    if (!existing) throw error;
    return { ...existing, created: false };
  }
}

/** A secret's JSON value, checked against the schema; undefined when there is no such secret. */
export async function readSecret<Value>(
  client: SecretsManagerClient,
  secretId: string,
  schema: z.ZodMiniType<Value>,
): Promise<{ arn: string; value: Value } | undefined> {
  let output: { ARN?: string | undefined; SecretString?: string | undefined };
  try {
    output = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
  } catch (error) {
    if (error instanceof ResourceNotFoundException) return undefined;
    throw error;
  }
  if (!output.ARN) throw new Error(`GetSecretValue returned no ARN for ${secretId}`);
  return { arn: output.ARN, value: parseSecretJson(secretId, output.SecretString, schema) };
}

/**
 * Parses a secret's JSON without ever putting its text in an error: JSON.parse's message quotes the input,
 * and a zod error is reported by path only.
 */
function parseSecretJson<Value>(
  secretId: string,
  text: string | undefined,
  schema: z.ZodMiniType<Value>,
): Value {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text ?? '');
  } catch {
    throw new Error(`The secret ${secretId} does not hold JSON`);
  }
  const result = schema.safeParse(parsed);
  if (!result.success) {
    const paths = result.error.issues.map((issue) => issue.path.join('.') || '(root)');
    throw new Error(`The secret ${secretId} is malformed at ${paths.join(', ')}`);
  }
  return result.data;
}

export interface SecretSummary {
  readonly name: string;
  readonly arn: string;
  /** Set when the secret is scheduled for deletion. */
  readonly deletedDate?: Date | undefined;
}

/** Every secret whose name starts with the prefix, those scheduled for deletion included. */
export async function listSecretsUnder(
  client: SecretsManagerClient,
  prefix: string,
): Promise<SecretSummary[]> {
  const found: SecretSummary[] = [];
  let nextToken: string | undefined;
  do {
    const page = await client.send(
      new ListSecretsCommand({
        Filters: [{ Key: 'name', Values: [prefix] }],
        IncludePlannedDeletion: true,
        MaxResults: 100,
        NextToken: nextToken,
      }),
    );
    for (const secret of page.SecretList ?? []) {
      // The name filter is a prefix match; checking again keeps a loose filter from reaching another tenant.
      if (secret.Name?.startsWith(prefix) && secret.ARN) {
        found.push({ name: secret.Name, arn: secret.ARN, deletedDate: secret.DeletedDate });
      }
    }
    nextToken = page.NextToken;
  } while (nextToken);
  return found;
}

/**
 * Deletes every secret under the prefix at once, without a recovery window (a secret merely scheduled for
 * deletion still exists, still holds a password, and blocks its name), those already scheduled included.
 * Returns the names deleted.
 */
export async function deleteSecretsUnder(client: SecretsManagerClient, prefix: string): Promise<string[]> {
  const secrets = await listSecretsUnder(client, prefix);
  await settleAll(
    secrets.map(async (secret) => {
      try {
        await client.send(
          new DeleteSecretCommand({ SecretId: secret.arn, ForceDeleteWithoutRecovery: true }),
        );
      } catch (error) {
        if (!(error instanceof ResourceNotFoundException)) throw error;
      }
    }),
  );
  return secrets.map((secret) => secret.name);
}

/**
 * Like Promise.all, but waits for every promise before rejecting with the first failure: a step must not return
 * (and its undo begin) while some of its own calls are still creating or deleting things.
 */
export async function settleAll<T>(promises: readonly Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  return results.map((result) => {
    if (result.status === 'rejected') throw result.reason;
    return result.value;
  });
}
