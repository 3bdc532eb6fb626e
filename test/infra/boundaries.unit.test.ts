import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../local/constants.ts';

/**
 * The import boundaries of biome.json's `noRestrictedImports` overrides: functions/ imports nothing outside itself
 * but schema/; schema/ imports nothing of the product; local/aws/ imports nothing outside itself but its runtime
 * (local/lambda.ts, local/postgres.ts). Biome matches a pattern against the import's text, not the file it
 * resolves to, so each folder has one override per depth (`../**` from `functions/*.ts`, `../../**` from
 * `functions/*\/*.ts`); a file deeper than the overrides reach would escape them, and a test below says so.
 */

const BIOME = join(PROJECT_ROOT, 'node_modules', '.bin', 'biome');
const RULE = 'lint/style/noRestrictedImports';
const GOVERNED = ['functions', 'schema', join('local', 'aws')] as const;

interface Diagnostic {
  readonly category: string;
  readonly message: string;
  readonly location: { readonly path: string; readonly start: { readonly line: number } };
}

/** Runs `biome lint` with only the import rule over the paths (relative to the repository) and returns its findings. */
function lintImports(paths: readonly string[]): Diagnostic[] {
  const run = spawnSync(BIOME, ['lint', `--only=style/noRestrictedImports`, '--reporter=json', ...paths], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
  });
  const report = JSON.parse(run.stdout) as { diagnostics: Diagnostic[] };
  return report.diagnostics;
}

interface Override {
  readonly includes: readonly string[];
  readonly linter?: {
    readonly rules?: {
      readonly style?: {
        readonly noRestrictedImports?: {
          readonly options?: { readonly patterns?: readonly { readonly group: readonly string[] }[] };
        };
      };
    };
  };
}

/** The `includes` of every override that restricts imports by pattern. */
function boundaryIncludes(): string[] {
  const config = JSON.parse(readFileSync(join(PROJECT_ROOT, 'biome.json'), 'utf8')) as {
    overrides: readonly Override[];
  };
  return config.overrides
    .filter((override) => override.linter?.rules?.style?.noRestrictedImports?.options?.patterns?.length)
    .flatMap((override) => override.includes);
}

/** Biome's `*` matches within one path segment. */
const globMatches = (glob: string, path: string): boolean =>
  new RegExp(`^${glob.replaceAll('.', '\\.').replaceAll('*', '[^/]*')}$`).test(path);

function sourceFiles(dir: string): string[] {
  return readdirSync(join(PROJECT_ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && /\.[cm]?[jt]s$/.test(entry.name))
    .map((entry) => relative(PROJECT_ROOT, join(entry.parentPath, entry.name)).split(sep).join('/'));
}

/** One import line of a probe file, and whether the rule must refuse it. */
interface ProbeLine {
  readonly from: string;
  readonly refused: boolean;
}

const FUNCTIONS =
  'functions/ (the Lambda code and what it bundles) imports nothing outside itself but schema/';
const SCHEMA = 'schema/ is the contract that CDK, the sandbox, the OpenAPI document and the handlers share';
const LOCAL_AWS = "local/aws/ emulates AWS's APIs and imports nothing outside itself but its runtime";
const ZOD = "Lambda bundles use zod's mini build";

/** A probe per governed folder and depth; every target named exists, so a typecheck running meanwhile passes. */
const PROBES: readonly {
  readonly dir: string;
  readonly message: string;
  readonly lines: readonly ProbeLine[];
}[] = [
  {
    dir: 'functions',
    message: FUNCTIONS,
    lines: [
      { from: '../local/constants.ts', refused: true },
      { from: '../test/support/sandbox.ts', refused: true },
      { from: '../schema/names.ts', refused: false },
      { from: './shared/errors.ts', refused: false },
    ],
  },
  {
    dir: 'functions/api',
    message: FUNCTIONS,
    lines: [
      { from: '../../local/lambda.ts', refused: true },
      { from: '../../test/support/sandbox.ts', refused: true },
      { from: '../../bench/run.ts', refused: true },
      { from: '../../cli/tenants.ts', refused: true },
      { from: '../../reliability/verify.ts', refused: true },
      { from: '../../infra/stack.ts', refused: true },
      { from: '../../schema/api/routes.ts', refused: false },
      { from: '../shared/errors.ts', refused: false },
      { from: './http.ts', refused: false },
    ],
  },
  {
    dir: 'schema',
    message: SCHEMA,
    lines: [
      { from: '../functions/registry.ts', refused: true },
      { from: '../local/constants.ts', refused: true },
      { from: './zod.ts', refused: false },
      { from: 'node:crypto', refused: false },
    ],
  },
  {
    dir: 'schema/api',
    message: SCHEMA,
    lines: [
      { from: '../../functions/shared/errors.ts', refused: true },
      { from: '../../infra/stack.ts', refused: true },
      { from: '../../test/support/sandbox.ts', refused: true },
      { from: '../zod.ts', refused: false },
      { from: './routes.ts', refused: false },
    ],
  },
  {
    dir: 'local/aws',
    message: LOCAL_AWS,
    lines: [
      { from: '../constants.ts', refused: true },
      { from: '../sandbox.ts', refused: true },
      { from: '../../functions/registry.ts', refused: true },
      { from: '../../schema/names.ts', refused: true },
      { from: '../lambda.ts', refused: false },
      { from: '../postgres.ts', refused: false },
      { from: './store.ts', refused: false },
    ],
  },
  {
    dir: 'local/aws/services',
    message: LOCAL_AWS,
    lines: [
      { from: '../../api/server.ts', refused: true },
      { from: '../../../test/support/sandbox.ts', refused: true },
      { from: '../../lambda.ts', refused: false },
      { from: '../../postgres.ts', refused: false },
      { from: '../store.ts', refused: false },
    ],
  },
];

describe('import boundaries (biome.json noRestrictedImports)', () => {
  it('refuses, in each governed folder and depth, an import from outside what the folder may import', () => {
    // Prepare: a probe file in each folder, removed whatever happens (a dot file, which no glob of the tools lists)
    const probes = PROBES.map((probe) => ({
      ...probe,
      path: `${probe.dir}/.boundary-probe-${process.pid}.ts`,
    }));
    let diagnostics: Diagnostic[];
    try {
      for (const probe of probes)
        writeFileSync(
          join(PROJECT_ROOT, probe.path),
          probe.lines.map((line) => `import '${line.from}';\n`).join(''),
        );

      // Act
      diagnostics = lintImports(probes.map((probe) => probe.path));
    } finally {
      for (const probe of probes) rmSync(join(PROJECT_ROOT, probe.path), { force: true });
    }

    // Assess: exactly the refused lines are reported, each with its folder's reason
    for (const probe of probes) {
      const found = diagnostics.filter((diagnostic) => diagnostic.location.path === probe.path);
      expect(
        found.map((diagnostic) => ({ line: diagnostic.location.start.line, category: diagnostic.category })),
        probe.dir,
      ).toEqual(
        probe.lines.flatMap((line, index) => (line.refused ? [{ line: index + 1, category: RULE }] : [])),
      );
      for (const diagnostic of found) expect(diagnostic.message, probe.dir).toContain(probe.message);
    }
  });

  it("keeps refusing zod's classic build in functions/ and schema/ beside the boundaries", () => {
    // Prepare
    const paths = ['functions', 'functions/api', 'schema', 'schema/api'].map(
      (dir) => `${dir}/.boundary-probe-zod-${process.pid}.ts`,
    );
    let diagnostics: Diagnostic[];
    try {
      for (const path of paths) writeFileSync(join(PROJECT_ROOT, path), "import 'zod';\nimport 'zod/v4';\n");

      // Act
      diagnostics = lintImports(paths);
    } finally {
      for (const path of paths) rmSync(join(PROJECT_ROOT, path), { force: true });
    }

    // Assess
    for (const path of paths) {
      const found = diagnostics.filter((diagnostic) => diagnostic.location.path === path);
      expect(
        found.map((diagnostic) => diagnostic.location.start.line),
        path,
      ).toEqual([1, 2]);
      for (const diagnostic of found) expect(diagnostic.message).toContain(ZOD);
    }
  });

  it('finds no import across a boundary in the tree as it is', () => {
    // Act
    const diagnostics = lintImports(GOVERNED);

    // Assess
    expect(diagnostics.map((diagnostic) => `${diagnostic.location.path}: ${diagnostic.message}`)).toEqual([]);
  });

  it('reaches every source file of the governed folders (a deeper folder needs its own override)', () => {
    // Prepare
    const includes = boundaryIncludes();

    // Act
    const unreached = GOVERNED.flatMap(sourceFiles).filter(
      (file) => !includes.some((glob) => globMatches(glob, file)),
    );

    // Assess
    expect(includes.length).toBeGreaterThan(0);
    expect(unreached).toEqual([]);
  });
});
