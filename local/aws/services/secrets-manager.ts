import { z } from 'zod';
import { AwsError, type JsonObject, jsonService, type ServiceHandler } from '../protocol.ts';
import {
  epochSeconds,
  KeyedLock,
  offsetToken,
  parseInput,
  randomAlphanumeric,
  type ServiceDeps,
} from './deps.ts';

export interface SecretsManagerService extends ServiceHandler {
  /** SecretString of the AWSCURRENT version, by ARN or name; undefined when absent or scheduled for deletion. Used by the Data API. */
  resolveSecret(secretId: string): Promise<string | undefined>;
}

const CURRENT = 'AWSCURRENT';
const PREVIOUS = 'AWSPREVIOUS';
const DAY_MS = 86_400_000;
/** AWS keeps up to 100 versions of a secret, dropping the oldest unlabeled ones first. */
const MAX_VERSIONS = 100;
/** An ARN ends in `<name>-<6 random characters>`; a partial ARN, which AWS also accepts, stops at the name. */
const ARN_SUFFIX = /-[A-Za-z0-9]{6}$/;

interface Tag {
  readonly Key: string;
  readonly Value: string;
}

interface SecretVersion {
  readonly id: string;
  readonly created: number;
  readonly string?: string;
  /** Base64, as it travels in awsJson. */
  readonly binary?: string;
  stages: string[];
}

/** One secret as the store keeps it, keyed by name; times in epoch milliseconds. */
interface Secret {
  readonly name: string;
  readonly arn: string;
  readonly created: number;
  readonly description?: string;
  readonly kmsKeyId?: string;
  tags: Tag[];
  lastChanged: number;
  /** When DeleteSecret scheduled the deletion. */
  deleted?: number;
  /** When the recovery window ends and the secret is gone for good. */
  purgeAt?: number;
  versions: SecretVersion[];
}

const VALIDATION = 'ValidationException';

const secretIdSchema = z.string().min(1).max(2048);
const tokenSchema = z.string().min(32).max(64);
/** CreateSecret's and PutSecretValue's token, whose absence and length {@link requestToken} checks as AWS does. */
const requestTokenSchema = z.string();
const tagsSchema = z.array(z.object({ Key: z.string().min(1).max(128), Value: z.string().max(256) })).max(50);
const valueSchema = {
  SecretString: z.string().max(65_536).optional(),
  SecretBinary: z.base64().optional(),
};

const createSchema = z.object({
  Name: z
    .string()
    .min(1)
    .max(512)
    .regex(/^[A-Za-z0-9/_+=.@-]+$/, 'A secret name may contain only letters, digits and /_+=.@-'),
  ClientRequestToken: requestTokenSchema.optional(),
  Description: z.string().max(2048).optional(),
  KmsKeyId: z.string().max(2048).optional(),
  Tags: tagsSchema.optional(),
  ...valueSchema,
});

const getValueSchema = z.object({
  SecretId: secretIdSchema,
  VersionId: tokenSchema.optional(),
  VersionStage: z.string().min(1).max(256).optional(),
});

const putValueSchema = z.object({
  SecretId: secretIdSchema,
  ClientRequestToken: requestTokenSchema.optional(),
  VersionStages: z.array(z.string().min(1).max(256)).min(1).max(20).optional(),
  ...valueSchema,
});

const secretOnlySchema = z.object({ SecretId: secretIdSchema });

const FILTER_KEYS = [
  'description',
  'name',
  'tag-key',
  'tag-value',
  'primary-region',
  'owning-service',
  'all',
] as const;
type FilterKey = (typeof FILTER_KEYS)[number];

const listSchema = z.object({
  IncludePlannedDeletion: z.boolean().optional(),
  MaxResults: z.number().int().min(1).max(100).optional(),
  NextToken: z.string().min(1).max(4096).optional(),
  Filters: z
    .array(
      z.object({
        Key: z.enum(FILTER_KEYS),
        Values: z
          .array(
            z
              .string()
              .max(512)
              .regex(/^!?[a-zA-Z0-9 :_@/+=.\-!]*$/),
          )
          .min(1)
          .max(10),
      }),
    )
    .max(10)
    .optional(),
  SortOrder: z.enum(['asc', 'desc']).optional(),
  SortBy: z.enum(['created-date', 'last-accessed-date', 'last-changed-date', 'name']).optional(),
});

const tagSchema = z.object({ SecretId: secretIdSchema, Tags: tagsSchema });
const untagSchema = z.object({
  SecretId: secretIdSchema,
  TagKeys: z.array(z.string().min(1).max(128)).max(50),
});

const deleteSchema = z.object({
  SecretId: secretIdSchema,
  RecoveryWindowInDays: z.number().int().optional(),
  ForceDeleteWithoutRecovery: z.boolean().optional(),
});

const notFound = (message = "Secrets Manager can't find the specified secret.") =>
  new AwsError('ResourceNotFoundException', message);

const markedForDeletion = () =>
  new AwsError(
    'InvalidRequestException',
    "You can't perform this operation on the secret because it was marked for deletion.",
  );

/**
 * The ClientRequestToken of a call that makes a version (Secrets Manager API Reference, CreateSecret and
 * PutSecretValue, Request Parameters, ClientRequestToken): "If you generate a raw HTTP request to the Secrets
 * Manager service endpoint, then you must generate a ClientRequestToken and include it in the request" (the SDKs
 * and the CLI make one; AWS refuses a request without it with this InvalidRequestException), and its "Length
 * Constraints: Minimum length of 32. Maximum length of 64", refused as the "Common Errors" page's
 * ValidationException, in the wording of AWS's request validation.
 */
function requestToken(token: string | undefined): string {
  if (token === undefined) {
    throw new AwsError(
      'InvalidRequestException',
      'You must provide a ClientRequestToken value. We recommend a UUID-type value.',
    );
  }
  const constraint =
    token.length < 32
      ? 'Member must have length greater than or equal to 32'
      : token.length > 64
        ? 'Member must have length less than or equal to 64'
        : undefined;
  if (constraint) {
    throw new AwsError(
      VALIDATION,
      `1 validation error detected: Value at 'clientRequestToken' failed to satisfy constraint: ${constraint}`,
    );
  }
  return token;
}

/**
 * The API Reference (ClientRequestToken): "If a version with this value already exists and that version's
 * SecretString and SecretBinary values are different from those in the request, then the request fails because you
 * cannot modify an existing version." The message is the one AWS sends (moto's, checked against AWS, agrees).
 */
const tokenInUse = (token: string, secret: Secret) =>
  new AwsError(
    'ResourceExistsException',
    `You can't use ClientRequestToken ${token} because that value is already in use for a version of secret ${secret.arn}.`,
  );

/** The secret name an id designates, read from the id alone (a full ARN carries the random suffix). */
function nameOf(secretId: string): string {
  const marker = secretId.startsWith('arn:') ? secretId.indexOf(':secret:') : -1;
  return marker < 0 ? secretId : secretId.slice(marker + ':secret:'.length).replace(ARN_SUFFIX, '');
}

/**
 * Secrets Manager (awsJson1.1). Secret values live in the sandbox's store in clear: it is a local
 * stand-in, and KMS keys are accepted and reported but not used.
 */
export function createSecretsManager({ store, region, accountId }: ServiceDeps): SecretsManagerService {
  const stored = store.collection<Secret>('secretsmanager', 'secret');
  // The Data API resolves a secret on every statement: the values it resolved are kept until their secret is
  // written. A write bumps the generation, so that a resolution that read before the write keeps nothing.
  const resolved = new Map<string, { readonly name: string; readonly value: string }>();
  let generation = 0;
  const written = (name: string) => {
    generation += 1;
    for (const [secretId, entry] of resolved) if (entry.name === name) resolved.delete(secretId);
  };
  const secrets: Pick<typeof stored, 'get' | 'list' | 'put' | 'insert' | 'delete'> = {
    get: (name) => stored.get(name),
    list: (options) => stored.list(options),
    put: async (name, doc) => {
      written(name);
      await stored.put(name, doc);
      written(name);
    },
    insert: async (name, doc) => {
      written(name);
      const inserted = await stored.insert(name, doc);
      written(name);
      return inserted;
    },
    delete: async (name) => {
      written(name);
      const deleted = await stored.delete(name);
      written(name);
      return deleted;
    },
  };
  const lock = new KeyedLock();
  const arnPrefix = `arn:aws:secretsmanager:${region}:${accountId}:secret:`;

  /** The secret stored under the name; one whose recovery window has passed is purged on the way. */
  async function load(name: string): Promise<Secret | undefined> {
    const secret = await secrets.get(name);
    if (secret?.purgeAt !== undefined && secret.purgeAt <= Date.now()) {
      await secrets.delete(name);
      return undefined;
    }
    return secret;
  }

  /** By name, full ARN or partial ARN, as AWS accepts them. */
  async function find(secretId: string): Promise<Secret | undefined> {
    if (!secretId.startsWith('arn:')) return load(secretId);
    if (!secretId.startsWith(arnPrefix)) return undefined;
    const byFullArn = await load(nameOf(secretId));
    if (byFullArn?.arn === secretId) return byFullArn;
    const byPartialArn = await load(secretId.slice(arnPrefix.length));
    return byPartialArn?.arn.replace(ARN_SUFFIX, '') === secretId ? byPartialArn : undefined;
  }

  async function required(secretId: string): Promise<Secret> {
    const secret = await find(secretId);
    if (!secret) throw notFound();
    return secret;
  }

  /** Applies a change to a live secret and stores it; changes to one secret run one at a time. */
  async function update<T>(secretId: string, change: (secret: Secret) => T): Promise<T> {
    const { name } = await required(secretId);
    return lock.run(name, async () => {
      const secret = await required(secretId);
      if (secret.deleted !== undefined) throw markedForDeletion();
      const result = change(secret);
      await secrets.put(secret.name, secret);
      return result;
    });
  }

  function describe(secret: Secret): JsonObject {
    return {
      ARN: secret.arn,
      Name: secret.name,
      Description: secret.description,
      KmsKeyId: secret.kmsKeyId,
      RotationEnabled: false,
      LastChangedDate: epochSeconds(secret.lastChanged),
      DeletedDate: secret.deleted === undefined ? undefined : epochSeconds(secret.deleted),
      Tags: secret.tags,
      CreatedDate: epochSeconds(secret.created),
    };
  }

  async function createSecret(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(createSchema, raw, VALIDATION);
    const token = requestToken(input.ClientRequestToken);
    const value = secretValue(input);
    const now = Date.now();
    const version: SecretVersion | undefined = value && {
      id: token,
      created: now,
      ...value,
      stages: [CURRENT],
    };
    const secret: Secret = {
      name: input.Name,
      arn: `${arnPrefix}${input.Name}-${randomAlphanumeric(6)}`,
      created: now,
      description: input.Description,
      kmsKeyId: input.KmsKeyId,
      tags: input.Tags ?? [],
      lastChanged: now,
      versions: version ? [version] : [],
    };
    const created = { ARN: secret.arn, Name: secret.name, VersionId: version?.id };
    // `load` first, so that a name whose recovery window has passed is purged and free again.
    const existing = await load(input.Name);
    if (!existing && (await secrets.insert(input.Name, secret))) return created;
    const holder = existing ?? (await load(input.Name));
    if (holder?.deleted !== undefined) {
      throw new AwsError(
        'InvalidRequestException',
        "You can't create this secret because a secret with this name is already scheduled for deletion.",
      );
    }
    // A retried call (the same token and value) is answered as the first was: "the request is ignored". The same
    // token with another value is refused; another token is another secret of the same name.
    const retried = holder?.versions.find((known) => known.id === token);
    if (holder && retried) {
      if (!sameValue(retried, value)) throw tokenInUse(token, holder);
      return { ARN: holder.arn, Name: holder.name, VersionId: retried.id };
    }
    throw new AwsError(
      'ResourceExistsException',
      `The operation failed because the secret ${input.Name} already exists.`,
    );
  }

  async function getSecretValue(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(getValueSchema, raw, VALIDATION);
    const secret = await required(input.SecretId);
    if (secret.deleted !== undefined) throw markedForDeletion();
    const version = pickVersion(secret, input.VersionId, input.VersionStage);
    return {
      ARN: secret.arn,
      Name: secret.name,
      VersionId: version.id,
      SecretString: version.string,
      SecretBinary: version.binary,
      VersionStages: version.stages,
      CreatedDate: epochSeconds(version.created),
    };
  }

  async function putSecretValue(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(putValueSchema, raw, VALIDATION);
    const id = requestToken(input.ClientRequestToken);
    const value = secretValue(input);
    if (!value)
      throw new AwsError(
        'InvalidParameterException',
        'You must provide either SecretString or SecretBinary.',
      );
    return update(input.SecretId, (secret) => {
      // "This operation is idempotent": the same token and data succeed and do nothing; other data is refused.
      const known = secret.versions.find((version) => version.id === id);
      if (known && !sameValue(known, value)) throw tokenInUse(id, secret);
      const version =
        known ??
        addVersion(secret, { id, created: Date.now(), ...value, stages: input.VersionStages ?? [CURRENT] });
      if (!known) secret.lastChanged = version.created;
      return { ARN: secret.arn, Name: secret.name, VersionId: version.id, VersionStages: version.stages };
    });
  }

  async function describeSecret(raw: JsonObject): Promise<JsonObject> {
    const secret = await required(parseInput(secretOnlySchema, raw, VALIDATION).SecretId);
    return { ...describe(secret), VersionIdsToStages: stagesByVersion(secret) };
  }

  async function listSecrets(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(listSchema, raw, VALIDATION);
    const offset = input.NextToken === undefined ? 0 : offsetToken.decode(input.NextToken);
    if (offset === undefined)
      throw new AwsError('InvalidNextTokenException', 'The NextToken value is not valid.');
    const now = Date.now();
    const live: Secret[] = [];
    for (const { key, doc } of await secrets.list()) {
      if (doc.purgeAt !== undefined && doc.purgeAt <= now) await secrets.delete(key);
      else live.push(doc);
    }
    const sortKey = sortKeyOf(input.SortBy);
    const direction = input.SortOrder === 'desc' ? -1 : 1;
    const matching = live
      .filter((secret) => input.IncludePlannedDeletion || secret.deleted === undefined)
      .filter((secret) =>
        (input.Filters ?? []).every((filter) => matchesFilter(secret, filter.Key, filter.Values)),
      )
      .sort((a, b) => direction * (compare(sortKey(a), sortKey(b)) || compare(a.name, b.name)));
    const end = offset + (input.MaxResults ?? 100);
    return {
      SecretList: matching
        .slice(offset, end)
        .map((secret) => ({ ...describe(secret), SecretVersionsToStages: stagesByVersion(secret) })),
      NextToken: end < matching.length ? offsetToken.encode(end) : undefined,
    };
  }

  async function tagResource(raw: JsonObject): Promise<undefined> {
    const input = parseInput(tagSchema, raw, VALIDATION);
    await update(input.SecretId, (secret) => {
      const keys = new Set(input.Tags.map((tag) => tag.Key));
      secret.tags = [...secret.tags.filter((tag) => !keys.has(tag.Key)), ...input.Tags];
    });
    return undefined;
  }

  async function untagResource(raw: JsonObject): Promise<undefined> {
    const input = parseInput(untagSchema, raw, VALIDATION);
    await update(input.SecretId, (secret) => {
      secret.tags = secret.tags.filter((tag) => !input.TagKeys.includes(tag.Key));
    });
    return undefined;
  }

  async function deleteSecret(raw: JsonObject): Promise<JsonObject> {
    const input = parseInput(deleteSchema, raw, VALIDATION);
    const force = input.ForceDeleteWithoutRecovery === true;
    if (force && input.RecoveryWindowInDays !== undefined) {
      throw new AwsError(
        'InvalidParameterException',
        "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
      );
    }
    const days = input.RecoveryWindowInDays ?? 30;
    if (days < 7 || days > 30) {
      throw new AwsError(
        'InvalidParameterException',
        'The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).',
      );
    }
    const now = Date.now();
    const found = await find(input.SecretId);
    if (!found) {
      // AWS answers a forced deletion of a secret it does not know with success, which keeps undo steps idempotent.
      if (!force) throw notFound();
      const name = nameOf(input.SecretId);
      const arn = input.SecretId.startsWith('arn:')
        ? input.SecretId
        : `${arnPrefix}${name}-${randomAlphanumeric(6)}`;
      return { ARN: arn, Name: name, DeletionDate: epochSeconds(now) };
    }
    return lock.run(found.name, async () => {
      const secret = await required(input.SecretId);
      if (force) {
        await secrets.delete(secret.name);
        return { ARN: secret.arn, Name: secret.name, DeletionDate: epochSeconds(now) };
      }
      if (secret.deleted !== undefined) throw markedForDeletion();
      const scheduled: Secret = { ...secret, deleted: now, purgeAt: now + days * DAY_MS };
      await secrets.put(secret.name, scheduled);
      return { ARN: secret.arn, Name: secret.name, DeletionDate: epochSeconds(now + days * DAY_MS) };
    });
  }

  async function restoreSecret(raw: JsonObject): Promise<JsonObject> {
    const { SecretId } = parseInput(secretOnlySchema, raw, VALIDATION);
    const { name } = await required(SecretId);
    return lock.run(name, async () => {
      const { deleted: _deleted, purgeAt: _purgeAt, ...secret } = await required(SecretId);
      await secrets.put(secret.name, secret);
      return { ARN: secret.arn, Name: secret.name };
    });
  }

  const handler = jsonService({
    service: 'secrets-manager',
    signingName: 'secretsmanager',
    targetPrefix: 'secretsmanager',
    contentType: 'application/x-amz-json-1.1',
    operations: {
      CreateSecret: createSecret,
      GetSecretValue: getSecretValue,
      PutSecretValue: putSecretValue,
      DescribeSecret: describeSecret,
      ListSecrets: listSecrets,
      TagResource: tagResource,
      UntagResource: untagResource,
      DeleteSecret: deleteSecret,
      RestoreSecret: restoreSecret,
    },
    subject: (_operation, input) => {
      if (typeof input.Name === 'string') return input.Name;
      return typeof input.SecretId === 'string' ? nameOf(input.SecretId) : undefined;
    },
  });

  return {
    ...handler,
    async resolveSecret(secretId) {
      const hit = resolved.get(secretId);
      if (hit) return hit.value;
      const before = generation;
      const secret = await find(secretId);
      if (!secret || secret.deleted !== undefined) return undefined;
      const value = secret.versions.find((version) => version.stages.includes(CURRENT))?.string;
      if (value !== undefined && generation === before) resolved.set(secretId, { name: secret.name, value });
      return value;
    },
  };
}

type SecretValue = Pick<SecretVersion, 'string' | 'binary'>;

/** The value a request carries: one of SecretString and SecretBinary, or none (a secret may start empty). */
function secretValue(input: { SecretString?: string; SecretBinary?: string }): SecretValue | undefined {
  if (input.SecretString !== undefined && input.SecretBinary !== undefined) {
    throw new AwsError(
      'InvalidParameterException',
      "You can't specify both a binary secret value and a string secret value in the same secret.",
    );
  }
  if (input.SecretString !== undefined) return { string: input.SecretString };
  if (input.SecretBinary !== undefined) return { binary: input.SecretBinary };
  return undefined;
}

function sameValue(version: SecretVersion, value: SecretValue | undefined): boolean {
  return version.string === value?.string && version.binary === value?.binary;
}

/**
 * Adds a version with its staging labels, taking each label from the version that had it; the version that
 * loses AWSCURRENT gets AWSPREVIOUS, as Secrets Manager does.
 */
function addVersion(secret: Secret, version: SecretVersion): SecretVersion {
  const previous = version.stages.includes(CURRENT)
    ? secret.versions.find((known) => known.stages.includes(CURRENT))
    : undefined;
  for (const known of secret.versions) {
    known.stages = known.stages.filter(
      (stage) => !version.stages.includes(stage) && !(previous && stage === PREVIOUS),
    );
  }
  previous?.stages.push(PREVIOUS);
  secret.versions.push(version);
  while (secret.versions.length > MAX_VERSIONS) {
    const oldestUnlabeled = secret.versions.findIndex((known) => known.stages.length === 0);
    if (oldestUnlabeled < 0) break;
    secret.versions.splice(oldestUnlabeled, 1);
  }
  return version;
}

function pickVersion(secret: Secret, versionId?: string, stage?: string): SecretVersion {
  if (versionId !== undefined) {
    const version = secret.versions.find((known) => known.id === versionId);
    if (!version)
      throw notFound(`Secrets Manager can't find the specified secret value for VersionId: ${versionId}`);
    if (stage !== undefined && !version.stages.includes(stage)) {
      throw new AwsError(
        'InvalidRequestException',
        'You provided a VersionStage that is not associated to the provided VersionId.',
      );
    }
    return version;
  }
  const label = stage ?? CURRENT;
  const version = secret.versions.find((known) => known.stages.includes(label));
  if (!version)
    throw notFound(`Secrets Manager can't find the specified secret value for staging label: ${label}`);
  return version;
}

/** Versions without labels are deprecated, and AWS leaves them out of these maps. */
function stagesByVersion(secret: Secret): Record<string, string[]> {
  return Object.fromEntries(
    secret.versions
      .filter((version) => version.stages.length > 0)
      .map((version) => [version.id, version.stages]),
  );
}

function sortKeyOf(sortBy: z.infer<typeof listSchema>['SortBy']): (secret: Secret) => string | number {
  switch (sortBy) {
    case 'name':
      return (secret) => secret.name;
    case 'last-changed-date':
      return (secret) => secret.lastChanged;
    default:
      // Access dates are not tracked (it would cost a write per read), so they sort as creation dates.
      return (secret) => secret.created;
  }
}

const compare = (a: string | number, b: string | number): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * ListSecrets' filters, as the Secrets Manager guide describes them: `name`, `tag-key` and `tag-value` match
 * a prefix, case-sensitively; `description` and `all` match words, case-insensitively; a value starting with
 * `!` excludes what it matches. Values of one filter are alternatives; filters must all hold.
 */
function matchesFilter(secret: Secret, key: FilterKey, values: readonly string[]): boolean {
  const candidates = filterCandidates(secret, key);
  const byWords = key === 'description' || key === 'all';
  const hit = (pattern: string) =>
    candidates.some((candidate) =>
      byWords ? wordsMatch(pattern, candidate) : candidate.startsWith(pattern),
    );
  const wanted = values.filter((value) => !value.startsWith('!'));
  const unwanted = values.filter((value) => value.startsWith('!')).map((value) => value.slice(1));
  return (wanted.length === 0 || wanted.some(hit)) && !unwanted.some(hit);
}

function filterCandidates(secret: Secret, key: FilterKey): string[] {
  const tagKeys = secret.tags.map((tag) => tag.Key);
  const tagValues = secret.tags.map((tag) => tag.Value);
  switch (key) {
    case 'name':
      return [secret.name];
    case 'description':
      return secret.description === undefined ? [] : [secret.description];
    case 'tag-key':
      return tagKeys;
    case 'tag-value':
      return tagValues;
    case 'all':
      return [
        secret.name,
        ...(secret.description === undefined ? [] : [secret.description]),
        ...tagKeys,
        ...tagValues,
      ];
    default:
      // Sandbox secrets are neither replicated nor owned by another service.
      return [];
  }
}

/** Words break at punctuation, at a lower-to-upper case change and between letters and digits. */
const words = (text: string): string[] =>
  text
    .split(/[^A-Za-z0-9]+|(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])/)
    .filter((word) => word.length > 0)
    .map((word) => word.toLowerCase());

/** True when a word of the pattern starts a word of the text ("My_Secret" finds "my" or "secret"). */
function wordsMatch(pattern: string, text: string): boolean {
  const targets = words(text);
  return words(pattern).some((word) => targets.some((target) => target.startsWith(word)));
}
