import { DATABASE_ROLES } from '../names.ts';
import * as z from '../zod.ts';
import type { OpenApiHelpers } from './lifecycle.ts';
import { TenantId } from './tenants.ts';

/**
 * `POST /tenants/{tenantId}/credentials`: a database role's credentials, issued when first needed. A role standing on
 * the tenant's plan (`standingRoles` in schema/plans.ts) has them from provisioning on and they do not expire; any
 * other role's expire after `ttlHours`, when the drift reconciler takes them back (NOLOGIN, no password, its
 * sessions ended, the secret deleted). Secrets Manager bills a secret by the hour it exists, so a day's credentials
 * cost about a cent, where a standing secret costs $0.40 a month.
 */

/** Hours issued credentials last when the request does not say. */
export const DEFAULT_CREDENTIAL_TTL_HOURS = 24;
/** At most a week: past that a role is better made standing by a plan that includes it. */
export const MAX_CREDENTIAL_TTL_HOURS = 168;

export const DatabaseRoleName = z.enum(DATABASE_ROLES).check(
  z.meta({
    description:
      'admin (owns the tenant schema), app (read-write), readonly, auditor (the activity log and who may do what).',
  }),
);

export const IssueCredentialsRequest = z.strictObject({
  role: DatabaseRoleName,
  ttlHours: z.optional(
    z
      .int()
      .check(z.minimum(1), z.maximum(MAX_CREDENTIAL_TTL_HOURS))
      .check(
        z.meta({
          description: `For a role not standing on the tenant's plan: hours until the credentials are revoked (default ${DEFAULT_CREDENTIAL_TTL_HOURS}, at most ${MAX_CREDENTIAL_TTL_HOURS}). A standing role's credentials do not expire, so it is ignored for one.`,
        }),
      ),
  ),
});
export type IssueCredentialsRequest = z.output<typeof IssueCredentialsRequest>;

export const IssueCredentialsResponse = z.strictObject({
  tenantId: TenantId,
  role: DatabaseRoleName,
  secretArn: z.string().check(
    z.meta({
      description:
        'The secret holding the role’s credentials (RDS secret JSON); read it with GetSecretValue, or pass it to the Data API. Never the password itself.',
    }),
  ),
  expiresAt: z.optional(z.string()).check(
    z.meta({
      description:
        'When the credentials are revoked (ISO 8601); absent for a role standing on the plan, whose credentials stay.',
    }),
  ),
});
export type IssueCredentialsResponse = z.output<typeof IssueCredentialsResponse>;

/** The credential routes' operation ids (routes.ts routes them). */
export type CredentialOperationId = 'issueCredentials';

/** The credential operation and its component schemas for the OpenAPI document. */
export function credentialsOpenApi(h: Omit<OpenApiHelpers, 'queryParameters'>): {
  operations: Record<CredentialOperationId, Record<string, unknown>>;
  schemas: Record<string, Record<string, unknown>>;
} {
  const issued = (description: string) => ({ description, ...h.json(h.ref('IssuedCredentials')) });
  return {
    operations: {
      issueCredentials: {
        parameters: [
          { name: 'tenantId', in: 'path', required: true, schema: h.jsonSchema(TenantId, 'output') },
        ],
        requestBody: { required: true, ...h.json(h.ref('IssueCredentialsRequest')) },
        responses: {
          '200': issued(
            'The role’s credentials already stood (or were issued and have not expired): their secret.',
          ),
          '201': issued('Credentials issued: a new secret with a fresh password; the role logs in with it.'),
          '400': h.error('Invalid body: an unknown role, or ttlHours outside 1 to the maximum.'),
          ...h.authErrors,
          '404': h.error('No tenant has this id.'),
          '409': h.error(
            'The tenant is not active (`invalid_state`: a suspended tenant’s roles log in to nothing), or an operation runs (`operation_in_progress`).',
          ),
        },
      },
    },
    schemas: {
      IssueCredentialsRequest: h.jsonSchema(IssueCredentialsRequest, 'input'),
      IssuedCredentials: h.jsonSchema(IssueCredentialsResponse, 'output'),
    },
  };
}
