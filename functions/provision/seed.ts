import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { invitationSecretName } from '../../schema/names.ts';
import { FEATURE_FLAGS, type PlanLimits } from '../../schema/plans.ts';
import * as z from '../../schema/zod.ts';
import { json, type Sql } from '../shared/data-api.ts';
import type { TenantConfig } from '../shared/tenants.ts';
import { generateToken, sha256Hex } from './credentials.ts';
import { tenantTags } from './roles.ts';
import { ensureSecret } from './secrets.ts';

/** Seed 000's application roles. */
export const DEFAULT_APP_ROLES = [
  { name: 'Admin', description: 'Full access to all features', scopes: ['read', 'write', 'delete', 'admin'] },
  { name: 'Member', description: 'Standard user access', scopes: ['read', 'write'] },
  { name: 'Viewer', description: 'Read-only access', scopes: ['read'] },
] as const;

/** Seed 000's four transactional emails; `{{…}}` are filled in by the application when it sends one. */
export function defaultEmailTemplates(tenantName: string) {
  return [
    {
      key: 'welcome',
      subject: `Welcome to ${tenantName}`,
      body: `Hello {{firstName}},\n\nYou have been invited to ${tenantName}. Accept the invitation: {{invitationUrl}}\nThe link expires on {{expiresAt}}.`,
    },
    {
      key: 'password_reset',
      subject: `Reset your ${tenantName} password`,
      body: 'Hello {{firstName}},\n\nReset your password here: {{resetUrl}}\nIf you did not ask for this, ignore this message.',
    },
    {
      key: 'verification',
      subject: `Verify your email address for ${tenantName}`,
      body: 'Hello {{firstName}},\n\nYour verification code is {{code}}. It expires in {{expiresInMinutes}} minutes.',
    },
    {
      key: 'security_alert',
      subject: `Security alert for your ${tenantName} account`,
      body: 'Hello {{firstName}},\n\n{{event}} on {{occurredAt}} from {{ipAddress}}.\nIf this was not you, reset your password and contact your administrator.',
    },
  ];
}

/** How long the admin's invitation stays valid. */
export const INVITATION_TTL_DAYS = 7;

/** The invitation secret's JSON: for whatever sends the welcome email. */
export const InvitationSecret = z.object({
  tenantId: z.string(),
  email: z.string(),
  token: z.string().check(z.minLength(32)),
  expiresAt: z.iso.datetime(),
});
type InvitationSecret = z.infer<typeof InvitationSecret>;

export interface SeedDeps {
  /** The provisioner on the tenant database, through its door (`functions/shared/tenant-db.ts`). */
  readonly db: Sql;
  readonly secrets: SecretsManagerClient;
  readonly stage: string;
  readonly actor: string;
}

export interface SeedRequest {
  readonly tenantId: string;
  readonly name: string;
  readonly limits: PlanLimits;
  readonly config: TenantConfig;
}

/**
 * The tenant's default data, in one statement (so atomically): the application roles, the security policy and
 * feature flags of the request, the four email templates, and the admin as an invited user. The invitation's one-time token lives
 * only in Secrets Manager (`tenants/<stage>/<id>/invitation/admin`), for whatever sends the welcome email; the
 * database keeps its SHA-256. Idempotent: existing rows are left as they are, and an existing invitation secret
 * is reused. Returns the invitation secret's ARN.
 */
export async function seedTenantDefaults(
  deps: SeedDeps,
  request: SeedRequest,
): Promise<{ invitationSecretArn: string }> {
  const { config } = request;
  const admin = config.adminUser;
  // The secret before the rows: a crash between the two leaves a secret that a rerun reuses (or the undo deletes),
  // never a stored hash whose token nobody has.
  const invitation = await ensureSecret(deps.secrets, {
    name: invitationSecretName(deps.stage, request.tenantId),
    description: `Tenant ${request.tenantId}: the first administrator's one-time invitation token`,
    tags: tenantTags(deps.stage, request.tenantId, [{ Key: 'Purpose', Value: 'invitation' }]),
    schema: InvitationSecret,
    create: (): InvitationSecret => ({
      tenantId: request.tenantId,
      email: admin.email,
      token: generateToken(),
      expiresAt: new Date(Date.now() + INVITATION_TTL_DAYS * 86_400_000).toISOString(),
    }),
  });
  const policy = config.securityPolicy;
  const flags = [
    ...FEATURE_FLAGS.map((key) => ({
      key,
      enabled: config.features[key],
      config:
        key === 'apiAccess'
          ? { maxApiKeys: request.limits.maxApiKeys, requestsPerMinute: request.limits.apiRequestsPerMinute }
          : {},
    })),
    { key: 'storage', enabled: config.features.storage, config: {} },
    { key: 'email', enabled: config.features.email, config: {} },
  ];
  // One statement, so one round trip and atomic like the transaction it replaces: each insert a data-modifying
  // WITH query, the admin's role and user taken from what this statement inserts (RETURNING) or, on a rerun,
  // from what exists. ON CONFLICT DO NOTHING and NOT EXISTS keep a rerun from adding anything.
  await deps.db.execute(
    `WITH roles AS (
       INSERT INTO public.app_roles (name, description, scopes, is_system)
       SELECT r.name, r.description, ARRAY(SELECT jsonb_array_elements_text(r.scopes)), true
       FROM jsonb_to_recordset(CAST(:roles AS jsonb)) AS r(name text, description text, scopes jsonb)
       ON CONFLICT (name) DO NOTHING
       RETURNING id, name),
     policy AS (
       INSERT INTO public.security_policy (password_policy, session, mfa_required, auth_methods, allowed_ip_ranges, updated_by)
       VALUES (CAST(:passwordPolicy AS jsonb), CAST(:session AS jsonb), :mfaRequired,
         ARRAY(SELECT jsonb_array_elements_text(CAST(:authMethods AS jsonb))),
         ARRAY(SELECT CAST(jsonb_array_elements_text(CAST(:allowedIpRanges AS jsonb)) AS cidr)), :actor)
       ON CONFLICT (singleton) DO NOTHING
       RETURNING 1),
     templates AS (
       INSERT INTO public.email_templates (key, subject, body_text)
       SELECT t.key, t.subject, t.body FROM jsonb_to_recordset(CAST(:templates AS jsonb)) AS t(key text, subject text, body text)
       ON CONFLICT (key, locale) DO NOTHING
       RETURNING 1),
     flags AS (
       INSERT INTO public.feature_flags (key, enabled, config)
       SELECT f.key, f.enabled, f.config FROM jsonb_to_recordset(CAST(:flags AS jsonb)) AS f(key text, enabled boolean, config jsonb)
       ON CONFLICT (key) DO NOTHING
       RETURNING 1),
     admin_role AS (
       SELECT id FROM roles WHERE name = 'Admin'
       UNION ALL
       SELECT id FROM public.app_roles WHERE name = 'Admin'
       LIMIT 1),
     new_user AS (
       INSERT INTO public.users (email, status, role_id, first_name, last_name)
       SELECT :email, 'invited', admin_role.id, :firstName, :lastName FROM admin_role
       ON CONFLICT ((lower(email))) DO NOTHING
       RETURNING id),
     admin AS (
       SELECT id FROM new_user
       UNION ALL
       SELECT id FROM public.users WHERE lower(email) = lower(:email)
       LIMIT 1),
     invitation AS (
       INSERT INTO public.invitations (user_id, token_hash, expires_at, created_by)
       SELECT admin.id, :tokenHash, CAST(:expiresAt AS timestamptz), :actor FROM admin
       ON CONFLICT (token_hash) DO NOTHING
       RETURNING 1)
     INSERT INTO public.activity_log (actor, action, resource_type, resource_id, details)
     SELECT :actor, 'user.invited', 'user', admin.id::text, CAST(:details AS jsonb) FROM admin
     WHERE NOT EXISTS (SELECT 1 FROM public.activity_log a WHERE a.action = 'user.invited' AND a.resource_id = admin.id::text)`,
    {
      roles: json(DEFAULT_APP_ROLES),
      passwordPolicy: json(policy.passwordPolicy),
      session: json(policy.session),
      mfaRequired: policy.mfaRequired,
      authMethods: json(config.features.auth),
      allowedIpRanges: json(policy.allowedIpRanges),
      templates: json(defaultEmailTemplates(request.name)),
      flags: json(flags),
      email: admin.email,
      firstName: admin.firstName ?? null,
      lastName: admin.lastName ?? null,
      tokenHash: sha256Hex(invitation.value.token),
      expiresAt: invitation.value.expiresAt,
      actor: deps.actor,
      details: json({ role: 'Admin', reason: 'tenant provisioned' }),
    },
  );
  return { invitationSecretArn: invitation.arn };
}
