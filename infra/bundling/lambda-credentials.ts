/**
 * Stands in for `@aws-sdk/credential-provider-node` in the Lambda bundles (an esbuild alias in
 * infra/constructs/function.ts). Lambda puts the function role's credentials in the environment, and the
 * environment is the first link of the SDK's default chain, so in Lambda the chain always ends there. Its other
 * links (SSO, shared INI files, credential processes, web identity, container and instance metadata) and the STS
 * and SSO clients they carry are never reached, yet they were 117 KB of every bundle and a quarter of its import
 * time. The SDK clients import only `defaultProvider` from the package.
 */

export interface EnvironmentCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiration?: Date;
}

/** The SDK's `defaultProvider(init)`: a provider that reads the credentials from the environment at each call. */
export function defaultProvider(_init?: unknown): () => Promise<EnvironmentCredentials> {
  return async () => credentialsFromEnvironment(process.env);
}

export function credentialsFromEnvironment(env: NodeJS.ProcessEnv): EnvironmentCredentials {
  const { AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_CREDENTIAL_EXPIRATION } = env;
  if (!AWS_ACCESS_KEY_ID || !AWS_SECRET_ACCESS_KEY)
    throw new Error(
      'No AWS credentials: this bundle reads them from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, which Lambda sets',
    );
  return {
    accessKeyId: AWS_ACCESS_KEY_ID,
    secretAccessKey: AWS_SECRET_ACCESS_KEY,
    ...(AWS_SESSION_TOKEN ? { sessionToken: AWS_SESSION_TOKEN } : {}),
    ...(AWS_CREDENTIAL_EXPIRATION ? { expiration: new Date(AWS_CREDENTIAL_EXPIRATION) } : {}),
  };
}
