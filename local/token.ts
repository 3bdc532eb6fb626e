import { isAbsolute, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ALL_SCOPES } from '../schema/api/routes.ts';
import { DEFAULT_TOKEN_SECONDS, openIssuer } from './api/jwt.ts';
import { PROJECT_ROOT } from './constants.ts';

/**
 * `npm run -s token -- [--scope tenants/read] [--sub me] [--expires-in 3600]`: prints a token of the local
 * sandbox's issuer (the sandbox in SANDBOX_DIR, `.local` by default), with every scope unless some are named.
 * `--scope` repeats, or takes several scopes separated by spaces or commas.
 */
const { values } = parseArgs({
  options: {
    scope: { type: 'string', multiple: true },
    sub: { type: 'string', default: 'sandbox-dev' },
    'expires-in': { type: 'string', default: String(DEFAULT_TOKEN_SECONDS) },
  },
  strict: true,
});

const scopes = values.scope?.flatMap((scope) => scope.split(/[\s,]+/)).filter((scope) => scope !== '') ?? [
  ...ALL_SCOPES,
];
const expiresInSeconds = Number(values['expires-in']);
if (!Number.isInteger(expiresInSeconds) || expiresInSeconds <= 0) {
  console.error(`--expires-in takes a number of seconds, not ${values['expires-in']}`);
  process.exit(2);
}
const dir = process.env.SANDBOX_DIR ?? '.local';
const issuer = await openIssuer(isAbsolute(dir) ? dir : join(PROJECT_ROOT, dir));
console.log(issuer.mint({ sub: values.sub, scopes, expiresInSeconds }));
