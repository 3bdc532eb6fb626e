import { describe, expect, it } from 'vitest';
import { functions } from '../../functions/registry.ts';
import { ENVIRONMENT, readEnv } from '../../functions/shared/env.ts';
import { ConfigurationError } from '../../functions/shared/errors.ts';

const ARN = 'arn:aws:states:us-east-1:000000000000:stateMachine:x';

describe('the environment table (functions/shared/env.ts)', () => {
  it('reads the variables named, each with its type, and nothing else', () => {
    // Prepare
    const env = { STAGE: 'dev', CLUSTER_ARN: ARN, SECRET_RECOVERY_DAYS: '7', HOME: '/root' };

    // Act
    const read = readEnv(['STAGE', 'CLUSTER_ARN', 'SECRET_RECOVERY_DAYS'], env);

    // Assess
    expect(read).toEqual({ STAGE: 'dev', CLUSTER_ARN: ARN, SECRET_RECOVERY_DAYS: 7 });
  });

  it('fails with a ConfigurationError naming every missing or malformed variable', () => {
    // Prepare
    const env = { CLUSTER_ARN: 'not-an-arn', STORAGE_BUCKET: 'ab', SECRET_RECOVERY_DAYS: '31' };

    // Act
    const read = () =>
      readEnv(['STAGE', 'CLUSTER_ARN', 'STORAGE_BUCKET', 'SECRET_RECOVERY_DAYS', 'SCHEMA_DIR'], env);

    // Assess
    expect(read).toThrow(ConfigurationError);
    let message = '';
    try {
      read();
    } catch (error) {
      message = error instanceof Error ? error.message : '';
    }
    for (const name of ['STAGE', 'CLUSTER_ARN', 'STORAGE_BUCKET', 'SECRET_RECOVERY_DAYS', 'SCHEMA_DIR']) {
      expect(message).toContain(name);
    }
  });

  it('describes every variable a function of the registry reads', () => {
    // Act
    const named = new Set(functions.flatMap((fn) => fn.environment ?? []));
    const undescribed = [...named].filter((name) => !(ENVIRONMENT[name]?.description.length > 0));

    // Assess
    expect(named.size).toBeGreaterThan(10);
    expect(undescribed).toEqual([]);
  });
});
