import * as z from '../../schema/zod.ts';
import { ConfigurationError } from './errors.ts';

/** One environment variable: what it holds, and the schema its value is read with. */
export interface EnvVariable {
  readonly description: string;
  readonly schema: z.ZodMiniType;
}

const arn = z.string().check(z.startsWith('arn:'));
const nonEmpty = z.string().check(z.minLength(1));

/**
 * Every environment variable a function may read, by name: what it holds and its type. The registry lists by
 * these names what each function reads (CDK sets each from the stack's resources, the sandbox from its own), and
 * {@link readEnv} reads them with these schemas.
 */
export const ENVIRONMENT = {
  STAGE: { schema: nonEmpty, description: 'The stage name (dev, staging, prod; local in the sandbox).' },
  CLUSTER_ARN: { schema: arn, description: 'ARN of the Aurora cluster, for the Data API.' },
  PROVISIONER_SECRET_ARN: { schema: arn, description: 'ARN of the secret of the provisioner database role.' },
  CONTROL_PLANE_DATABASE: { schema: nonEmpty, description: 'Name of the registry database (control_plane).' },
  STORAGE_BUCKET: {
    schema: z.string().check(z.minLength(3)),
    description: "Name of the stage's tenant storage bucket.",
  },
  STORAGE_KEY_ARN: {
    schema: arn,
    description:
      "ARN of the stage's KMS key: tenant objects of encryptionLevel 'enhanced' are encrypted with it (SSE-KMS).",
  },
  ALARM_TOPIC_ARN: { schema: arn, description: "ARN of the SNS topic the tenants' alarms notify." },
  EVENT_BUS_NAME: { schema: nonEmpty, description: 'Name of the EventBridge bus the product announces on.' },
  PROVISION_STATE_MACHINE_ARN: { schema: arn, description: 'ARN of the provision-tenant state machine.' },
  SCHEMA_DIR: { schema: nonEmpty, description: 'Folder holding the SQL migrations (schema/).' },
  SUSPEND_STATE_MACHINE_ARN: { schema: arn, description: 'ARN of the suspend-tenant state machine.' },
  RESUME_STATE_MACHINE_ARN: { schema: arn, description: 'ARN of the resume-tenant state machine.' },
  CHANGE_PLAN_STATE_MACHINE_ARN: { schema: arn, description: 'ARN of the change-plan state machine.' },
  DELETE_STATE_MACHINE_ARN: { schema: arn, description: 'ARN of the delete-tenant state machine.' },
  BACKUP_STATE_MACHINE_ARN: { schema: arn, description: 'ARN of the backup-tenant state machine.' },
  RESTORE_STATE_MACHINE_ARN: { schema: arn, description: 'ARN of the restore-tenant state machine.' },
  SECRET_RECOVERY_DAYS: {
    // Secrets Manager's recovery window: 7 to 30 days.
    schema: z.coerce.number().check(z.int(), z.minimum(7), z.maximum(30)),
    description:
      "Days a deleted tenant's secrets stay recoverable (Secrets Manager's recovery window, 7 to 30), from the stage config.",
  },
  BULK_ONBOARD_STATE_MACHINE_ARN: { schema: arn, description: 'ARN of the bulk-onboard state machine.' },
  MIGRATE_FLEET_STATE_MACHINE_ARN: { schema: arn, description: 'ARN of the migrate-fleet state machine.' },
} as const satisfies Record<string, EnvVariable>;
export type EnvName = keyof typeof ENVIRONMENT;

/** The values of the variables `Name`, each of its {@link ENVIRONMENT} type. */
export type Env<Name extends EnvName> = { readonly [K in Name]: z.output<(typeof ENVIRONMENT)[K]['schema']> };

/**
 * Reads the named variables once, at cold start, each with its {@link ENVIRONMENT} schema: a missing or malformed
 * variable fails the function before it does anything, with every problem named.
 */
export function readEnv<const Names extends readonly EnvName[]>(
  names: Names,
  env: NodeJS.ProcessEnv = process.env,
): Env<Names[number]> {
  const shape: z.core.$ZodShape = Object.fromEntries(names.map((name) => [name, ENVIRONMENT[name].schema]));
  const parsed = z.object(shape).safeParse(env);
  if (!parsed.success) throw new ConfigurationError(`Environment: ${z.prettifyError(parsed.error)}`);
  // The shape is built from ENVIRONMENT's schemas by name, which is what Env<Names> says of the result.
  return parsed.data as Env<Names[number]>;
}
