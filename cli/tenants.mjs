#!/usr/bin/env node
// The `tenants` command as installed by npm (package.json "bin"). The CLI is TypeScript run natively, which needs
// Node.js 24: with an older `node` first on the PATH (the system's), this launcher runs it with the project's
// pinned Node.js (the `node` package in node_modules) instead, passing arguments, signals and the exit code through.
// Plain JavaScript on purpose: it must run on whatever `node` the shebang finds.
import { spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(realpathSync(fileURLToPath(import.meta.url)));
const entry = join(here, 'tenants.ts');
const major = Number(process.versions.node.split('.')[0]);

/** The pinned Node.js: in this package's node_modules, or in a node_modules above it (an install). */
function pinnedNode() {
  for (let dir = join(here, '..'); ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', 'node', 'bin', 'node');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

if (major >= 24) {
  const { main } = await import(pathToFileURL(entry).href);
  const controller = new AbortController();
  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    controller.abort();
  });
  process.exitCode = await main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    signal: controller.signal,
  });
} else {
  const node = pinnedNode();
  if (!node) {
    process.stderr.write(
      `tenants needs Node.js 24 (this is ${process.version}); install the project's dependencies (npm ci) or run it with Node.js 24\n`,
    );
    process.exit(2);
  }
  const child = spawn(node, [entry, ...process.argv.slice(2)], { stdio: 'inherit' });
  // The terminal sends Ctrl-C to the whole process group; other signals are passed on.
  for (const signal of ['SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  process.on('SIGINT', () => {});
  child.on('exit', (code, signal) => {
    process.exit(signal ? 128 + (constants.signals[signal] ?? 1) : (code ?? 1));
  });
}
