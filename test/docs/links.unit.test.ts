import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../local/constants.ts';

/** The README is the front door: what it is, the two commands, one tenant, how a step is wired, where to read on. */
const README_MAX_LINES = 150;

/**
 * Names in backticks that look like paths but name no file of the repository, by prefix. Each is something else
 * the docs talk about; keep the list short, so that a renamed file cannot hide behind it.
 */
const NOT_REPOSITORY_PATHS: readonly string[] = [
  'tenants/', // OAuth scopes (`tenants/admin`, `tenants/read`), the S3 prefix and secret names of tenants
  'backups/', // S3 keys of backups
  'tenant-provisioner-', // names of deployed resources, e.g. the provisioner's secret
  'text/', // media types (`text/csv`)
  'TenantProvisioner/', // CloudWatch namespaces (`TenantProvisioner/Tenants`)
];

/** Paths that exist only once something has run; both are in .gitignore (a test below holds that). */
const GENERATED_PATHS: readonly string[] = [
  '.local/', // the sandbox's directory, `.local/sandbox.json` among it
  'cdk.out/', // `npm run synth`
];

/** A relative path as the docs write one: segments of names, `*` and `<placeholder>`, an optional trailing `/`. */
const PATH_SHAPE = /^\.?[\w<*][\w.*<>-]*(?:\/[\w.*<>-]+)*\/?$/;
/** A name without a directory that is still a file name, e.g. `package.json`: checked at the repository's root. */
const FILE_NAME = /\.(?:ts|mts|mjs|json|md|sql|csv)$/;

interface Doc {
  /** Relative to the repository root. */
  readonly path: string;
  /** The text outside fenced code blocks (fenced lines are blanked, so line numbers stay). */
  readonly prose: string;
}

function readDoc(path: string): Doc {
  let fenced = false;
  const lines = readFileSync(join(PROJECT_ROOT, path), 'utf8')
    .split('\n')
    .map((line) => {
      if (/^\s*(?:```|~~~)/.test(line)) {
        fenced = !fenced;
        return '';
      }
      return fenced ? '' : line;
    });
  return { path, prose: lines.join('\n') };
}

/** README.md and every docs/*.md. */
function docs(): Doc[] {
  const names = readdirSync(join(PROJECT_ROOT, 'docs')).filter((name) => name.endsWith('.md'));
  return ['README.md', ...names.sort().map((name) => `docs/${name}`)].map(readDoc);
}

/** Inline code spans, whitespace collapsed (a span may wrap onto the next line). */
function codeSpans(doc: Doc): string[] {
  return [...doc.prose.matchAll(/`([^`]+)`/g)].map((match) =>
    (match[1] ?? '').replaceAll(/\s+/g, ' ').trim(),
  );
}

/** Targets of inline links and images, outside code. */
function linkTargets(doc: Doc): string[] {
  const text = doc.prose.replaceAll(/`[^`]+`/g, '');
  return [...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((match) => match[1] ?? '');
}

/** GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces as `-`, repeats numbered. */
function anchors(doc: Doc): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const match of doc.prose.matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const text = (match[1] ?? '').replaceAll(/\[([^\]]*)\]\([^)]*\)/g, '$1').replaceAll(/<[^>]+>/g, '');
    const base = text
      .trim()
      .toLowerCase()
      .replaceAll(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replaceAll(' ', '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

const TOP_LEVEL_DIRECTORIES = new Set(
  readdirSync(PROJECT_ROOT, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && entry.name !== '.git')
    .map((entry) => entry.name),
);

/**
 * The repository paths a code span names. A span of one word is a path when it has the shape of one and contains a
 * `/` or is a file name; in a longer span (a command line) only words under a top-level directory count.
 */
function namedPaths(span: string): string[] {
  const words = span.split(' ');
  if (words.length === 1) {
    const [word = ''] = words;
    if (!PATH_SHAPE.test(word) || !(word.includes('/') || FILE_NAME.test(word))) return [];
    if (NOT_REPOSITORY_PATHS.some((prefix) => word.startsWith(prefix))) return [];
    return [word];
  }
  return words.filter(
    (word) =>
      PATH_SHAPE.test(word) && TOP_LEVEL_DIRECTORIES.has(word.split('/')[0] ?? '') && word.includes('/'),
  );
}

/** A segment pattern: `*` is any name, `<placeholder>` any non-empty name. */
function segmentPattern(segment: string): RegExp {
  const source = segment
    .split(/(\*|<[^>]*>)/)
    .map((part) => {
      if (part === '*') return '[^/]*';
      if (part.startsWith('<') && part.endsWith('>')) return '[^/]+';
      return part.replaceAll(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${source}$`);
}

/** Whether a repository path exists; with `*` or `<…>` in it, whether at least one file or directory matches. */
function exists(path: string): boolean {
  const directory = path.endsWith('/');
  const segments = path.replace(/\/$/, '').split('/');
  let candidates = [PROJECT_ROOT];
  for (const segment of segments) {
    const wild = /\*|<[^>]*>/.test(segment);
    const next: string[] = [];
    for (const base of candidates) {
      if (!wild) {
        if (existsSync(join(base, segment))) next.push(join(base, segment));
        continue;
      }
      const pattern = segmentPattern(segment);
      if (!existsSync(base) || !statSync(base).isDirectory()) continue;
      for (const name of readdirSync(base)) if (pattern.test(name)) next.push(join(base, name));
    }
    candidates = next;
  }
  return candidates.some((candidate) => !directory || statSync(candidate).isDirectory());
}

/** Problems with one link target of `doc`, none when it resolves. */
function linkProblem(doc: Doc, target: string, byPath: ReadonlyMap<string, Doc>): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return undefined; // https:, mailto:
  const hash = target.indexOf('#');
  const file = hash === -1 ? target : target.slice(0, hash);
  const anchor = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1));
  const absolute =
    file === '' ? join(PROJECT_ROOT, doc.path) : resolve(PROJECT_ROOT, dirname(doc.path), file);
  const path = relative(PROJECT_ROOT, absolute).split(sep).join('/');
  if (path.startsWith('..')) return `${doc.path}: link ${target} leaves the repository`;
  if (!existsSync(absolute)) return `${doc.path}: link ${target}: no ${path}`;
  if (anchor === undefined) return undefined;
  if (!path.endsWith('.md')) return `${doc.path}: link ${target}: an anchor into a file that is not Markdown`;
  const linked = byPath.get(path) ?? readDoc(path);
  if (!anchors(linked).has(anchor)) return `${doc.path}: link ${target}: ${path} has no heading #${anchor}`;
  return undefined;
}

describe('the docs (README.md and docs/*.md)', () => {
  it('link only to files and headings that exist', () => {
    // Prepare
    const all = docs();
    const byPath = new Map(all.map((doc) => [doc.path, doc]));

    // Act
    const targets = all.flatMap((doc) => linkTargets(doc).map((target) => ({ doc, target })));
    const problems = targets.flatMap(({ doc, target }) => linkProblem(doc, target, byPath) ?? []);

    // Assess
    expect(targets.map(({ target }) => target)).toContain('docs/security.md');
    expect(problems).toEqual([]);
  });

  it('name in backticks only repository paths that exist', () => {
    // Prepare
    const all = docs();

    // Act
    const named = all.flatMap((doc) =>
      codeSpans(doc).flatMap((span) => namedPaths(span).map((path) => ({ doc: doc.path, path }))),
    );
    const missing = named
      .filter(({ path }) => !GENERATED_PATHS.some((prefix) => path.startsWith(prefix)))
      .filter(({ path }) => !exists(path))
      .map(({ doc, path }) => `${doc}: \`${path}\` does not exist`);

    // Assess
    expect(named.map(({ path }) => path)).toEqual(
      expect.arrayContaining([
        'functions/registry.ts',
        'local/spawn.ts',
        'schema/tenant/',
        'test/reliability/',
      ]),
    );
    expect(missing).toEqual([]);
  });

  it('allow generated paths only where git ignores them', () => {
    // Prepare
    const ignored = readFileSync(join(PROJECT_ROOT, '.gitignore'), 'utf8').split('\n');

    // Assess
    expect(ignored).toEqual(expect.arrayContaining([...GENERATED_PATHS]));
  });

  it('keep README.md a front door', () => {
    // Act
    const lines = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8').trimEnd().split('\n').length;

    // Assess
    expect(lines).toBeLessThanOrEqual(README_MAX_LINES);
  });
});
