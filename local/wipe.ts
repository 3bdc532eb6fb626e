import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sandboxOptionsFromEnv } from './config.ts';
import { describeHolder, sandboxHolder } from './lock.ts';
import { runningPostgresPid } from './postgres.ts';
import { removeLinkedData } from './postgres-files.ts';

/** `npm run sandbox:wipe`: deletes the sandbox's data (PostgreSQL and every service's state). */
const { dir } = await sandboxOptionsFromEnv(process.env, console.log);
const holder = await sandboxHolder(dir);
if (holder !== undefined) {
  console.error(`[sandbox] not wiping: ${describeHolder(dir, holder)}`);
  process.exit(1);
}
// A sandbox killed hard leaves its PostgreSQL running.
const pid = await runningPostgresPid(join(dir, 'postgres'));
if (pid !== undefined) {
  console.error(`[sandbox] PostgreSQL (pid ${pid}) still runs on ${dir}: stop the sandbox first`);
  process.exit(1);
}
// Under root, PostgreSQL's data may be where its user can reach it, linked from the directory.
await removeLinkedData(join(dir, 'postgres'));
await rm(dir, { recursive: true, force: true });
console.log(`[sandbox] wiped ${dir}`);
