import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';

/** Where the CLI reaches the API. */
export interface ApiConfig {
  readonly apiUrl: string;
  readonly token: string;
  /** Where the values came from, for error messages. */
  readonly source: string;
}

/** The package's root: `cli/..`. */
export const PACKAGE_ROOT = join(import.meta.dirname, '..');

const SandboxFile = z.object({ apiUrl: z.url(), token: z.string().min(1) });

/**
 * The sandbox files to look in, first found wins: `$SANDBOX_DIR/sandbox.json`, `./.local/sandbox.json`, then the
 * package's own `.local/sandbox.json` (where `npm start` writes it).
 */
export function sandboxFiles(env: NodeJS.ProcessEnv, cwd: string): string[] {
  const files: string[] = [];
  if (env.SANDBOX_DIR) {
    const dir = isAbsolute(env.SANDBOX_DIR) ? env.SANDBOX_DIR : resolve(cwd, env.SANDBOX_DIR);
    files.push(join(dir, 'sandbox.json'));
  }
  files.push(join(cwd, '.local', 'sandbox.json'), join(PACKAGE_ROOT, '.local', 'sandbox.json'));
  return [...new Set(files)];
}

/**
 * The API URL and token: from the flags, else `TENANTS_API_URL` and `TENANTS_TOKEN`, else (locally) a sandbox's
 * `sandbox.json` (`apiUrl`, `token`). Each value is taken from the first place that has it, so a token from the
 * environment may go with the sandbox's URL. Throws a {@link ConfigError} naming where it looked.
 */
export function apiConfig(
  flags: { apiUrl?: string | undefined; token?: string | undefined },
  env: NodeJS.ProcessEnv,
  cwd: string,
): ApiConfig {
  let apiUrl = flags.apiUrl ?? env.TENANTS_API_URL;
  let token = flags.token ?? env.TENANTS_TOKEN;
  let source = flags.apiUrl ? '--api-url' : env.TENANTS_API_URL ? 'TENANTS_API_URL' : '';
  const looked = sandboxFiles(env, cwd);
  if (apiUrl === undefined || token === undefined) {
    for (const file of looked) {
      if (!existsSync(file)) continue;
      let parsed: z.infer<typeof SandboxFile>;
      try {
        parsed = SandboxFile.parse(JSON.parse(readFileSync(file, 'utf8')));
      } catch (error) {
        throw new ConfigError(
          `${file} is not a sandbox file: ${error instanceof Error ? error.message : error}`,
        );
      }
      if (apiUrl === undefined) source = file;
      apiUrl ??= parsed.apiUrl;
      token ??= parsed.token;
      break;
    }
  }
  if (apiUrl === undefined || token === undefined) {
    throw new ConfigError(
      `No API ${apiUrl === undefined ? 'URL' : 'token'}: set TENANTS_API_URL and TENANTS_TOKEN (or --api-url and --token), or start the local sandbox (npm start), which writes one of: ${looked.join(', ')}`,
    );
  }
  const url = z.url().safeParse(apiUrl);
  if (!url.success) throw new ConfigError(`The API URL from ${source} is not a URL: ${apiUrl}`);
  return { apiUrl: apiUrl.replace(/\/+$/, ''), token, source };
}

/** The CLI cannot tell where the API is, or how to authenticate. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
