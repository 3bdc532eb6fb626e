// S3 Lifecycle, run: the rules a bucket keeps (s3-config.ts parses and checks them), applied to its objects as S3
// would on a given date. S3 runs them by itself, about once a day and asynchronously ("Managing the lifecycle of
// objects"); the sandbox runs them when asked (`POST /_sandbox/s3/lifecycle/run`), at the date the caller names, so
// that a test can see what a year of S3 Lifecycle does without waiting a year.
import type { VersioningStatus } from './s3-config.ts';
import { elementOf, elementsOf, textOf, type XmlElement } from './s3-wire.ts';

/** One version of a key as the runner sees it: a delete marker has no size, tags or class. */
export interface LifecycleVersion {
  readonly key: string;
  readonly versionId: string;
  /** Creation time, ISO 8601. */
  readonly lastModified: string;
  readonly object?: {
    readonly size: number;
    readonly tags: readonly { readonly Key: string; readonly Value: string }[];
    /** Absent for STANDARD. */
    readonly storageClass?: string;
  };
}

/** What the runner needs of the sandbox's S3: reading a bucket's state and the writes a lifecycle action makes. */
export interface LifecycleBucket {
  rules(bucket: string): Promise<readonly XmlElement[] | undefined>;
  versioning(bucket: string): Promise<VersioningStatus | undefined>;
  /** Every key under the prefix with its versions and delete markers, newest first; one key at a time. */
  keys(bucket: string, prefix: string): AsyncGenerator<readonly LifecycleVersion[]>;
  /** DeleteObject without a version id, a delete marker it adds dated `at`. */
  expire(bucket: string, key: string, at: string): Promise<{ versionId?: string; deleteMarker: boolean }>;
  /** DeleteObject of that version id: gone for good. */
  deleteVersion(bucket: string, key: string, versionId: string): Promise<void>;
  /** Moves that version to another storage class, its bytes, tags and dates unchanged. */
  transition(bucket: string, key: string, versionId: string, storageClass: string): Promise<void>;
}

/** What a run did, each entry naming the rule that did it. */
export interface LifecycleReport {
  readonly bucket: string;
  readonly now: string;
  /** Current versions expired: deleted (unversioned bucket) or put behind a delete marker (versioned). */
  readonly expired: { key: string; versionId: string; rule: string; deleteMarkerVersionId?: string }[];
  readonly noncurrentDeleted: { key: string; versionId: string; rule: string }[];
  readonly deleteMarkersRemoved: { key: string; versionId: string; rule: string }[];
  readonly transitioned: { key: string; versionId: string; storageClass: string; rule: string }[];
  /** Always empty: the sandbox's S3 has no multipart uploads (see s3.ts), so none is ever incomplete. */
  readonly uploadsAborted: { key: string; uploadId: string; rule: string }[];
}

const DAY_MS = 86_400_000;
/**
 * "Transitioning objects using Amazon S3 Lifecycle": by default (the bucket's transition default minimum object
 * size, `all_storage_classes_128K`, which the sandbox answers) objects smaller than 128 KB are not transitioned; a
 * rule whose filter names an object size decides for itself ("custom filters always take precedence").
 */
const TRANSITION_MINIMUM_BYTES = 128 * 1024;
/**
 * The order S3 Lifecycle moves objects in ("Transitioning objects": the supported transitions form a waterfall,
 * each class only to those after it); a transition to a class at or before the object's is not made. Of two due at
 * once, the later one wins ("How Amazon S3 handles conflicts": the lower-cost class, Glacier over Standard-IA).
 */
const WATERFALL = [
  'STANDARD',
  'REDUCED_REDUNDANCY',
  'STANDARD_IA',
  'INTELLIGENT_TIERING',
  'ONEZONE_IA',
  'GLACIER_IR',
  'GLACIER',
  'DEEP_ARCHIVE',
];

/**
 * "Lifecycle configuration elements": S3 computes when an action is due by adding the rule's days to the time the
 * count starts from (the object's creation; for noncurrent versions, the creation of their successor) and rounding
 * the result up to the next midnight UTC: an object created 2014-01-15 10:30 UTC under a 3-day expiration expires
 * 2014-01-19 00:00 UTC.
 */
export function dueAt(from: string, days: number): number {
  return Math.ceil((Date.parse(from) + days * DAY_MS) / DAY_MS) * DAY_MS;
}

interface Rule {
  readonly id: string;
  readonly filter: Filter;
  readonly expiration?: { days?: number; date?: number; expiredObjectDeleteMarker: boolean };
  readonly transitions: { days?: number; date?: number; storageClass: string }[];
  readonly noncurrentExpiration?: { days: number; newer?: number };
  readonly noncurrentTransitions: { days: number; newer?: number; storageClass: string }[];
}

interface Filter {
  readonly prefix: string;
  readonly tags: readonly { Key: string; Value: string }[];
  readonly greaterThan?: number;
  readonly lessThan?: number;
}

const number = (element: XmlElement | undefined, name: string): number | undefined => {
  const text = element ? textOf(element, name) : undefined;
  return text === undefined ? undefined : Number(text);
};
const date = (element: XmlElement, name: string): number | undefined => {
  const text = textOf(element, name);
  return text === undefined ? undefined : Date.parse(text);
};

function tagOf(element: XmlElement): { Key: string; Value: string } {
  return { Key: textOf(element, 'Key') ?? '', Value: textOf(element, 'Value') ?? '' };
}

/** A rule's filter: `Filter` with one of Prefix, Tag, ObjectSize… or And of them; or the older rule-level Prefix. */
function filterOf(rule: XmlElement): Filter {
  const filter = elementOf(rule, 'Filter');
  if (!filter) return { prefix: textOf(rule, 'Prefix') ?? '', tags: [] };
  const and = elementOf(filter, 'And');
  const source = and ?? filter;
  return {
    prefix: textOf(source, 'Prefix') ?? '',
    tags: elementsOf(source, 'Tag').map(tagOf),
    ...(number(source, 'ObjectSizeGreaterThan') === undefined
      ? {}
      : { greaterThan: number(source, 'ObjectSizeGreaterThan') }),
    ...(number(source, 'ObjectSizeLessThan') === undefined
      ? {}
      : { lessThan: number(source, 'ObjectSizeLessThan') }),
  };
}

function ruleOf(rule: XmlElement, index: number): Rule {
  const expiration = elementOf(rule, 'Expiration');
  const noncurrent = elementOf(rule, 'NoncurrentVersionExpiration');
  return {
    id: textOf(rule, 'ID') ?? `rule ${index + 1}`,
    filter: filterOf(rule),
    ...(expiration
      ? {
          expiration: {
            days: number(expiration, 'Days'),
            date: date(expiration, 'Date'),
            expiredObjectDeleteMarker: textOf(expiration, 'ExpiredObjectDeleteMarker') === 'true',
          },
        }
      : {}),
    transitions: elementsOf(rule, 'Transition').map((transition) => ({
      days: number(transition, 'Days'),
      date: date(transition, 'Date'),
      storageClass: textOf(transition, 'StorageClass') ?? '',
    })),
    ...(noncurrent
      ? {
          noncurrentExpiration: {
            days: number(noncurrent, 'NoncurrentDays') ?? 0,
            newer: number(noncurrent, 'NewerNoncurrentVersions'),
          },
        }
      : {}),
    noncurrentTransitions: elementsOf(rule, 'NoncurrentVersionTransition').map((transition) => ({
      days: number(transition, 'NoncurrentDays') ?? 0,
      newer: number(transition, 'NewerNoncurrentVersions'),
      storageClass: textOf(transition, 'StorageClass') ?? '',
    })),
  };
}

/**
 * Whether a rule's filter selects the version ("Lifecycle configuration elements", Filter): the key starts with
 * the prefix, every tag of the filter is on the version (tags are per version), and its size is strictly above
 * ObjectSizeGreaterThan and below ObjectSizeLessThan. A delete marker has no tags and no size: only a filter without
 * them selects it.
 */
function selects(filter: Filter, version: LifecycleVersion): boolean {
  if (!version.key.startsWith(filter.prefix)) return false;
  const object = version.object;
  if (!object)
    return filter.tags.length === 0 && filter.greaterThan === undefined && filter.lessThan === undefined;
  if (!filter.tags.every((tag) => object.tags.some((t) => t.Key === tag.Key && t.Value === tag.Value)))
    return false;
  if (filter.greaterThan !== undefined && !(object.size > filter.greaterThan)) return false;
  if (filter.lessThan !== undefined && !(object.size < filter.lessThan)) return false;
  return true;
}

const rank = (storageClass: string | undefined) => WATERFALL.indexOf(storageClass ?? 'STANDARD');

/** The transition due for the version, if any: the coldest class due that is past the one it is in. */
function dueTransition(
  candidates: { rule: Rule; storageClass: string; due: number }[],
  version: LifecycleVersion,
  now: number,
): { rule: Rule; storageClass: string } | undefined {
  const object = version.object;
  if (!object) return undefined;
  const sized = (rule: Rule) =>
    rule.filter.greaterThan !== undefined ||
    rule.filter.lessThan !== undefined ||
    object.size >= TRANSITION_MINIMUM_BYTES;
  return candidates
    .filter((c) => c.due <= now && sized(c.rule) && rank(c.storageClass) > rank(object.storageClass))
    .sort((a, b) => rank(b.storageClass) - rank(a.storageClass))[0];
}

/**
 * Runs the bucket's enabled rules on the objects under `prefix` (all of them by default) as S3 would at `now`.
 * A key at a time:
 *
 * - noncurrent versions: NoncurrentVersionExpiration deletes those noncurrent for NoncurrentDays (counted from
 *   their successor's creation), keeping the NewerNoncurrentVersions newest noncurrent ones; the survivors may
 *   transition by NoncurrentVersionTransition.
 * - the current version ("Expiring objects"): Expiration Days (from creation) or Date, once due, deletes it on a
 *   bucket never versioned, and on a versioned one adds a delete marker (dated `now`, when S3 would act), leaving it
 *   noncurrent; with versioning suspended the marker is the null version, replacing a null one. A current delete
 *   marker is not expired again. "How Amazon S3 handles conflicts": permanent deletion takes precedence over
 *   transition, and transition over the creation of a delete marker, so on a versioned bucket a version due for
 *   both is transitioned and expired at a later run (a daily S3 would have transitioned it long before).
 * - ExpiredObjectDeleteMarker: a current delete marker with no version left behind it is removed. S3 acts on it in
 *   a later run once its versions are gone; the sandbox in the same run, after the noncurrent deletions.
 *
 * Disabled rules do nothing. AbortIncompleteMultipartUpload has nothing to abort in the sandbox.
 */
export async function runLifecycle(
  target: LifecycleBucket,
  bucket: string,
  at: string,
  prefix = '',
): Promise<LifecycleReport> {
  const now = Date.parse(at);
  const nowIso = new Date(now).toISOString();
  const report: LifecycleReport = {
    bucket,
    now: nowIso,
    expired: [],
    noncurrentDeleted: [],
    deleteMarkersRemoved: [],
    transitioned: [],
    uploadsAborted: [],
  };
  const rules = ((await target.rules(bucket)) ?? [])
    .map((rule, index) => ({ rule, parsed: ruleOf(rule, index) }))
    .filter(({ rule }) => textOf(rule, 'Status') === 'Enabled')
    .map(({ parsed }) => parsed);
  if (rules.length === 0) return report;
  const versioning = await target.versioning(bucket);
  for await (const versions of target.keys(bucket, prefix)) {
    const [current, ...older] = versions;
    if (!current) continue;
    const key = current.key;
    // Noncurrent versions, newest first: the one before each in the list is its successor.
    const survivors: LifecycleVersion[] = [];
    for (const [index, version] of older.entries()) {
      const since = (versions[index] ?? current).lastModified;
      const expiring = rules.find(
        (rule) =>
          rule.noncurrentExpiration !== undefined &&
          selects(rule.filter, version) &&
          dueAt(since, rule.noncurrentExpiration.days) <= now &&
          index >= (rule.noncurrentExpiration.newer ?? 0),
      );
      if (expiring) {
        await target.deleteVersion(bucket, key, version.versionId);
        report.noncurrentDeleted.push({ key, versionId: version.versionId, rule: expiring.id });
        continue;
      }
      survivors.push(version);
      const transition = dueTransition(
        rules.flatMap((rule) =>
          selects(rule.filter, version)
            ? rule.noncurrentTransitions
                .filter((t) => index >= (t.newer ?? 0))
                .map((t) => ({ rule, storageClass: t.storageClass, due: dueAt(since, t.days) }))
            : [],
        ),
        version,
        now,
      );
      if (transition) {
        await target.transition(bucket, key, version.versionId, transition.storageClass);
        report.transitioned.push({
          key,
          versionId: version.versionId,
          storageClass: transition.storageClass,
          rule: transition.rule.id,
        });
      }
    }
    if (!current.object) {
      const remover = rules.find(
        (rule) => rule.expiration?.expiredObjectDeleteMarker === true && selects(rule.filter, current),
      );
      if (survivors.length === 0 && remover) {
        await target.deleteVersion(bucket, key, current.versionId);
        report.deleteMarkersRemoved.push({ key, versionId: current.versionId, rule: remover.id });
      }
      continue;
    }
    const expiring = rules.find((rule) => {
      const expiration = rule.expiration;
      if (!expiration || !selects(rule.filter, current)) return false;
      if (expiration.days !== undefined) return dueAt(current.lastModified, expiration.days) <= now;
      return expiration.date !== undefined && expiration.date <= now;
    });
    const transition = dueTransition(
      rules.flatMap((rule) =>
        selects(rule.filter, current)
          ? rule.transitions.flatMap((t) => {
              const due = t.days !== undefined ? dueAt(current.lastModified, t.days) : t.date;
              return due === undefined ? [] : [{ rule, storageClass: t.storageClass, due }];
            })
          : [],
      ),
      current,
      now,
    );
    const permanent = versioning === undefined;
    if (expiring && (permanent || !transition)) {
      const outcome = await target.expire(bucket, key, nowIso);
      report.expired.push({
        key,
        versionId: current.versionId,
        rule: expiring.id,
        ...(outcome.deleteMarker && outcome.versionId ? { deleteMarkerVersionId: outcome.versionId } : {}),
      });
    } else if (transition) {
      await target.transition(bucket, key, current.versionId, transition.storageClass);
      report.transitioned.push({
        key,
        versionId: current.versionId,
        storageClass: transition.storageClass,
        rule: transition.rule.id,
      });
    }
  }
  return report;
}
