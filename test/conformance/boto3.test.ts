import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT, STORAGE_KEY_ARN } from '../../local/constants.ts';
import { sandbox } from '../support/sandbox.ts';

// The conformance suite (test/conformance/test_*.py, docs/conformance.md) drives this run's sandbox through boto3, a
// client the sandbox's authors did not write. Python 3 with boto3 and pytest is on every machine of this project,
// so its absence fails the run, in one line, rather than skipping the suite.
const PYTHON = 'python3';
const INSTALL = 'apt-get install -y python3-boto3 python3-pytest, or pip install boto3 pytest';

interface Run {
  readonly code: number;
  readonly output: string;
}

function python(args: readonly string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      args,
      { cwd: PROJECT_ROOT, env, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, output: `${stdout}${stderr}`.trim() || String(error?.message ?? '') });
      },
    );
  });
}

/** This process's environment without the machine's AWS settings (profiles, endpoints, keys), and the suite's own. */
function suiteEnvironment(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('AWS_')));
  return {
    ...env,
    AWS_ENDPOINT_URL: sandbox.awsEndpoint,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    CONFORMANCE_TARGET: 'sandbox',
    CONFORMANCE_CLUSTER_ARN: sandbox.clusterArn,
    CONFORMANCE_SECRET_ARN: sandbox.provisionerSecretArn,
    CONFORMANCE_KMS_KEY_ARN: STORAGE_KEY_ARN,
    PYTHONDONTWRITEBYTECODE: '1',
  };
}

describe('the sandbox through boto3 (test/conformance)', () => {
  it('answers every operation the product calls as AWS documents, success and errors', {
    timeout: 300_000,
  }, async () => {
    // Prepare
    const env = suiteEnvironment();
    const tools = await python(['-c', 'import boto3, botocore, pytest'], env);
    if (tools.code !== 0) {
      const reason = tools.output.split('\n').at(-1) ?? '';
      throw new Error(
        `The boto3 conformance suite needs ${PYTHON} with boto3 and pytest (${reason}): ${INSTALL}`,
      );
    }

    // Act
    const run = await python(['-m', 'pytest', 'test/conformance', '-q', '-rfEX'], env);

    // Assess
    expect(run.code, run.output).toBe(0);
  });
});
