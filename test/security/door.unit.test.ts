import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectedObjects } from '../../functions/provision/database.ts';
import { loadMigrations } from '../../functions/shared/migrations.ts';
import { PROJECT_ROOT } from '../../local/constants.ts';

async function sources(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(PROJECT_ROOT, path), await readFile(path, 'utf8'));
  }
  return files;
}

/**
 * The rules of functions/shared/tenant-db.ts, held where a reader can check them in the source: one module opens a
 * tenant database, and the control plane names the tables of one only with their schema.
 */
describe('the one door to tenant databases', () => {
  it('is the only module that opens another database than the registry', async () => {
    // Prepare
    const files = await sources(join(PROJECT_ROOT, 'functions'));

    // Act
    const openers = [...files].filter(([, text]) => /\.on\(/.test(text)).map(([path]) => path);

    // Assess: the setup opens the registry (control_plane), which no tenant reaches; nothing else opens a database.
    expect(openers.sort()).toEqual(['functions/setup/control-plane.ts', 'functions/shared/tenant-db.ts']);
  });

  it('names every table of the tenant template with its schema, in every statement of the functions', async () => {
    // Prepare
    const files = await sources(join(PROJECT_ROOT, 'functions'));
    const { tables } = expectedObjects(await loadMigrations(join(PROJECT_ROOT, 'schema', 'tenant')));
    const unqualified = new RegExp(
      `\\b(?:FROM|JOIN|INTO|UPDATE|TABLE|ON)\\s+(?!public\\.)(${tables.join('|')})\\b`,
      'g',
    );

    // Act
    const found = [...files].flatMap(([path, text]) =>
      [...text.matchAll(unqualified)].map((match) => `${path}: ${match[0]}`),
    );

    // Assess
    expect(tables.length).toBeGreaterThan(5);
    expect(found).toEqual([]);
  });

  it('has migrations that name every object with its schema', async () => {
    // Prepare
    const migrations = await loadMigrations(join(PROJECT_ROOT, 'schema', 'tenant'));

    // Act: a statement that creates or references a table by a bare name would fail under the pinned search path.
    const bare = migrations
      .flatMap((migration) => migration.statements)
      .filter((statement) =>
        /\b(?:CREATE\s+TABLE|REFERENCES|ON|ALTER\s+TABLE|INTO|UPDATE|FROM)\s+(?!public\.)[a-z_]+\s*\(?/i.test(
          statement.replaceAll(/ON DELETE|ON UPDATE|ON CONFLICT/gi, ''),
        ),
      );

    // Assess
    expect(migrations.length).toBeGreaterThan(0);
    expect(bare).toEqual([]);
  });
});
