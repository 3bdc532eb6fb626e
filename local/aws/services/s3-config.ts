// S3's tag sets and lifecycle configurations: parsed from their XML, validated as S3 does, written back.
import {
  asElement,
  elementOf,
  elementsOf,
  invalidArgument,
  leaf,
  malformedXml,
  node,
  parseXml,
  S3Error,
  textOf,
  type XmlElement,
  type XmlValue,
  xmlOf,
} from './s3-wire.ts';

export interface Tag {
  readonly Key: string;
  readonly Value: string;
}

export type TagOwner = 'object' | 'bucket';

/** A `<Tagging><TagSet><Tag>…` document. */
export function parseTagging(body: Buffer, owner: TagOwner): Tag[] {
  const tagSet = elementOf(parseXml(body, 'Tagging'), 'TagSet');
  if (!tagSet) throw malformedXml();
  const tags = elementsOf(tagSet, 'Tag').map((tag) => {
    const key = textOf(tag, 'Key');
    const value = textOf(tag, 'Value');
    if (key === undefined || value === undefined) throw malformedXml();
    return { Key: key, Value: value };
  });
  return validateTags(tags, owner);
}

/** The `x-amz-tagging` header: tags as a URL query string, `a=1&b=2`. */
export function parseTaggingHeader(value: string): Tag[] {
  return validateTags(
    [...new URLSearchParams(value)].map(([Key, Value]) => ({ Key, Value })),
    'object',
  );
}

export function taggingXml(tags: readonly Tag[]): string {
  return node('TagSet', ...tags.map((tag) => node('Tag', leaf('Key', tag.Key), leaf('Value', tag.Value))));
}

const TAG_TEXT = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

function validateTags(tags: Tag[], owner: TagOwner): Tag[] {
  if (owner === 'object' && tags.length > 10) {
    throw new S3Error('BadRequest', 'Object tags cannot be greater than 10');
  }
  if (owner === 'bucket' && tags.length > 50) {
    throw new S3Error('InvalidTag', 'Bucket tag count cannot be greater than 50');
  }
  const keys = new Set<string>();
  for (const { Key, Value } of tags) {
    if ([...Key].length > 128)
      throw new S3Error('InvalidTag', 'The TagKey you have provided is too long, max 128');
    if ([...Value].length > 256) {
      throw new S3Error('InvalidTag', 'The TagValue you have provided is too long, max 256');
    }
    if (Key === '' || !TAG_TEXT.test(Key))
      throw new S3Error('InvalidTag', 'The TagKey you have provided is invalid');
    if (!TAG_TEXT.test(Value)) throw new S3Error('InvalidTag', 'The TagValue you have provided is invalid');
    if (Key.toLowerCase().startsWith('aws:')) {
      throw new S3Error('InvalidTag', 'Your TagKey cannot be prefixed with aws:');
    }
    if (keys.has(Key)) throw new S3Error('InvalidTag', 'Cannot provide multiple Tags with the same key');
    keys.add(Key);
  }
  return tags;
}

// ---- Lifecycle

/** The elements a lifecycle rule may hold; anything else is `MalformedXML`, as on S3. */
type Leaf = 'text' | 'int' | 'bool' | 'date';
type Shape = Leaf | Struct;
interface Struct {
  readonly [child: string]: Shape | Many;
}
class Many {
  readonly shape: Shape;
  constructor(shape: Shape) {
    this.shape = shape;
  }
}

const TAG: Struct = { Key: 'text', Value: 'text' };
const SIZE_FILTERS: Struct = { Prefix: 'text', ObjectSizeGreaterThan: 'int', ObjectSizeLessThan: 'int' };
const RULE: Struct = {
  ID: 'text',
  Prefix: 'text',
  Status: 'text',
  Filter: { ...SIZE_FILTERS, Tag: TAG, And: { ...SIZE_FILTERS, Tag: new Many(TAG) } },
  Expiration: { Days: 'int', Date: 'date', ExpiredObjectDeleteMarker: 'bool' },
  Transition: new Many({ Days: 'int', Date: 'date', StorageClass: 'text' }),
  NoncurrentVersionExpiration: { NoncurrentDays: 'int', NewerNoncurrentVersions: 'int' },
  NoncurrentVersionTransition: new Many({
    NoncurrentDays: 'int',
    NewerNoncurrentVersions: 'int',
    StorageClass: 'text',
  }),
  AbortIncompleteMultipartUpload: { DaysAfterInitiation: 'int' },
};
const ACTIONS = [
  'Expiration',
  'Transition',
  'NoncurrentVersionExpiration',
  'NoncurrentVersionTransition',
  'AbortIncompleteMultipartUpload',
];
const STORAGE_CLASSES = new Set([
  'GLACIER',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'DEEP_ARCHIVE',
  'GLACIER_IR',
]);

/** The infrequent-access classes, which S3 lets a lifecycle rule move objects to only from day 30. */
const IA_CLASSES = new Set(['STANDARD_IA', 'ONEZONE_IA']);
const IA_MINIMUM_DAYS = 30;

/** A lifecycle rule as given, its numbers and dates normalised; written back element for element. */
export type LifecycleRule = XmlElement;

/** A `<LifecycleConfiguration><Rule>…` document. */
export function parseLifecycle(body: Buffer): LifecycleRule[] {
  const rules = elementsOf(parseXml(body, 'LifecycleConfiguration'), 'Rule').map((rule) =>
    conform(rule, RULE),
  );
  if (rules.length === 0 || rules.length > 1000) throw malformedXml();
  const ids = new Set<string>();
  for (const rule of rules) {
    checkRule(rule);
    const id = textOf(rule, 'ID');
    if (id === undefined) continue;
    if (ids.has(id))
      throw invalidArgument('Rule ID must be unique. Found same ID for more than one rule', 'ID', id);
    ids.add(id);
  }
  return rules;
}

export function lifecycleXml(rules: readonly LifecycleRule[]): string {
  return rules.map((rule) => xmlOf('Rule', rule)).join('');
}

function checkRule(rule: XmlElement): void {
  const status = textOf(rule, 'Status');
  if (status !== 'Enabled' && status !== 'Disabled') throw malformedXml();
  if ((textOf(rule, 'ID') ?? '').length > 255) {
    throw invalidArgument('ID length should not exceed allowed limit of 255', 'ID', textOf(rule, 'ID'));
  }
  const filter = elementOf(rule, 'Filter');
  if (filter && (Object.keys(filter).length > 1 || rule.Prefix !== undefined)) throw malformedXml();
  if (!ACTIONS.some((action) => rule[action] !== undefined)) {
    throw new S3Error('InvalidRequest', 'At least one action needs to be specified in a rule');
  }
  const expiration = elementOf(rule, 'Expiration');
  if (expiration) {
    if (Object.keys(expiration).length !== 1) throw malformedXml();
    positive(expiration, 'Days', "'Days' for Expiration action must be a positive integer");
    const date = textOf(expiration, 'Date');
    if (date !== undefined && !date.endsWith('T00:00:00.000Z')) {
      throw invalidArgument("'Date' must be at midnight GMT", 'Date', date);
    }
  }
  for (const [action, days] of [
    ['Transition', 'Days'],
    ['NoncurrentVersionTransition', 'NoncurrentDays'],
  ] as const) {
    for (const transition of elementsOf(rule, action)) {
      const storageClass = textOf(transition, 'StorageClass') ?? '';
      if (!STORAGE_CLASSES.has(storageClass)) throw malformedXml();
      // "Transitioning objects using Amazon S3 Lifecycle", constraints: objects must be stored at least 30 days
      // before they move to S3 Standard-IA or S3 One Zone-IA, and S3 refuses a rule that asks for less.
      const value = textOf(transition, days);
      if (value !== undefined && Number(value) < IA_MINIMUM_DAYS && IA_CLASSES.has(storageClass)) {
        throw invalidArgument(
          `'${days}' in ${action} action must be greater than or equal to ${IA_MINIMUM_DAYS} for storageClass '${storageClass}'`,
          days,
          value,
        );
      }
    }
  }
  const noncurrent = elementOf(rule, 'NoncurrentVersionExpiration');
  if (noncurrent)
    positive(
      noncurrent,
      'NoncurrentDays',
      "'NoncurrentDays' in NoncurrentVersionExpiration action must be a positive integer",
    );
  const abort = elementOf(rule, 'AbortIncompleteMultipartUpload');
  if (abort) {
    if (textOf(abort, 'DaysAfterInitiation') === undefined) throw malformedXml();
    positive(
      abort,
      'DaysAfterInitiation',
      "'DaysAfterInitiation' in AbortIncompleteMultipartUpload action must be a positive integer",
    );
  }
}

function positive(element: XmlElement, name: string, message: string): void {
  const value = textOf(element, name);
  if (value !== undefined && Number(value) <= 0) throw invalidArgument(message, name, value);
}

function conform(element: XmlElement, shape: Struct): XmlElement {
  const out: Record<string, XmlValue> = {};
  for (const [name, value] of Object.entries(element)) {
    if (value === undefined) continue;
    if (name === '#text') {
      if (typeof value !== 'string' || value.trim() !== '') throw malformedXml();
      continue;
    }
    const field = shape[name];
    if (field === undefined) throw malformedXml();
    if (field instanceof Many) {
      out[name] = (Array.isArray(value) ? value : [value]).map((item) => conformValue(item, field.shape));
    } else {
      if (Array.isArray(value)) throw malformedXml();
      out[name] = conformValue(value, field);
    }
  }
  return out;
}

function conformValue(value: XmlValue, shape: Shape): XmlValue {
  if (typeof shape !== 'string') return conform(asElement(value), shape);
  if (typeof value !== 'string') throw malformedXml();
  const text = value.trim();
  switch (shape) {
    case 'text':
      return value;
    case 'int':
      if (!/^-?\d+$/.test(text)) throw malformedXml();
      return String(Number(text));
    case 'bool':
      if (text !== 'true' && text !== 'false') throw malformedXml();
      return text;
    case 'date': {
      const time = Date.parse(text);
      if (Number.isNaN(time)) throw invalidArgument('Invalid date', 'Date', text);
      return new Date(time).toISOString();
    }
  }
}

// ---- Versioning

export type VersioningStatus = 'Enabled' | 'Suspended';

/** A `<VersioningConfiguration><Status>…` document; only the status is kept. */
export function parseVersioning(body: Buffer): VersioningStatus {
  const status = textOf(parseXml(body, 'VersioningConfiguration'), 'Status');
  if (status !== 'Enabled' && status !== 'Suspended') throw malformedXml();
  return status;
}
