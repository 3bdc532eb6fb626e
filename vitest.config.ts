import { defineConfig } from 'vitest/config';

// Two tiers. `*.unit.test.ts`: pure logic, files and CDK synth, no sandbox, no PostgreSQL, no network
// (`npm run test:unit`, seconds). Every other `*.test.ts` runs against the sandbox that test/global-setup.ts starts
// once for the run, or starts sandboxes of its own. `npm test` runs both. Biome forbids a unit file to import
// test/support/sandbox.ts (biome.json), so a file that needs the sandbox cannot hide in the fast tier.
const UNIT = 'test/**/*.unit.test.ts';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      // Without isolation, the unit files of a worker share modules: the CDK stacks that three infra files
      // synthesize are made once (test/infra/synth.ts caches them), which halves the tier's time.
      { extends: true, test: { name: 'unit', include: [UNIT], isolate: false } },
      {
        extends: true,
        test: {
          name: 'sandbox',
          include: ['test/**/*.test.ts'],
          exclude: [UNIT],
          globalSetup: ['test/global-setup.ts'],
        },
      },
    ],
  },
});
