/**
 * The zod the product's code and API schemas use: zod's mini build, with its functional API
 * (`z.optional(s)`, `s.check(z.maxLength(n))`). The classic build attaches every method to every schema
 * it creates and carries JSON Schema conversion and all its helpers: about 97 KB of each function bundle
 * and 30 ms of its cold start against about 20 KB and a few ms for this one (`npm run bench`, cold start).
 * The mini build loads no locale; the English messages are configured here, once, so a validation error
 * reads the same as with the classic build. Tooling outside the bundles (local/, test/, cli/) keeps `zod`.
 */

import { en } from 'zod/locales';
import { config } from 'zod/mini';

config(en());

export * from 'zod/mini';
