import { ConfigurationError } from './errors.ts';
import * as z from './zod.ts';

/**
 * Reads the environment once, at cold start, against a schema: a missing or malformed variable
 * fails the function before it does anything, with every problem named.
 */
export function readEnv<Shape extends z.core.$ZodShape>(
  shape: Shape,
  env: NodeJS.ProcessEnv = process.env,
): z.infer<z.ZodMiniObject<Shape>> {
  const parsed = z.object(shape).safeParse(env);
  if (!parsed.success) throw new ConfigurationError(`Environment: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
