import {
  DeleteSecretCommand,
  ResourceNotFoundException,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import * as z from '../../schema/zod.ts';
import { sha256Hex } from '../provision/credentials.ts';
import { readSecret } from '../provision/secrets.ts';
import { InvitationSecret } from '../provision/seed.ts';
import { type DataApi, json } from '../shared/data-api.ts';
import { TenantDatabase } from '../shared/tenant-db.ts';
import type { TenantStore } from '../shared/tenants.ts';

/** How many tenants' invitations one pass asks about. */
export interface InvitationPolicy {
  /** At most this many tenants a pass (one query each in its database), the longest unasked first. */
  readonly invitationChecksPerPass: number;
}

export interface InvitationDeps {
  /** The provisioner on the registry database. */
  readonly cluster: DataApi;
  readonly secrets: SecretsManagerClient;
  readonly tenants: TenantStore;
}

/**
 * Why an invitation's secret was deleted: `expired` by the secret's own expiry; `closed` by the tenant's database
 * (accepted, expired there, or the row gone); `gone`: the secret no longer existed.
 */
export type InvitationOutcome = 'expired' | 'closed' | 'gone';

/**
 * The active or suspended tenants that still record an invitation secret, longest unasked first, at most the
 * policy's number: one query.
 */
async function tenantsWithInvitations(cluster: DataApi, policy: InvitationPolicy): Promise<string[]> {
  if (policy.invitationChecksPerPass <= 0) return [];
  const rows = await cluster.query(
    `SELECT id FROM tenants
     WHERE status IN ('active', 'suspended') AND resources->>'invitationSecretArn' IS NOT NULL
     ORDER BY invitation_checked_at NULLS FIRST, created_at, id LIMIT :limit`,
    { limit: policy.invitationChecksPerPass },
    z.object({ id: z.string() }),
  );
  return rows.map((row) => row.id);
}

/**
 * Whether the invitation is still open, by the tenant's database: one query, by the rules of the one door
 * (functions/shared/tenant-db.ts). It reads only `public.invitations`, a table the control plane owns, by the token's
 * hash, with every name qualified and the search path pinned. The tenant's admin may write that table (it is the
 * application's), so it can only make its own invitation look closed (its secret then goes, which harms nobody else)
 * or open: which is why the expiry that counts is the one in the secret, written by the control plane, not the row's.
 */
async function stillOpen(cluster: DataApi, tenantId: string, token: string): Promise<boolean> {
  const [row] = await TenantDatabase.of(cluster, tenantId).query(
    `SELECT count(*)::int AS open FROM public.invitations
     WHERE token_hash = :hash AND accepted_at IS NULL AND expires_at > pg_catalog.now()`,
    { hash: sha256Hex(token) },
    z.object({ open: z.number() }),
  );
  return (row?.open ?? 0) > 0;
}

/**
 * Deletes the invitation secrets no longer needed, a bounded number of tenants a pass: once the admin's invitation
 * was accepted, has expired (by the secret's own expiry, or the row's), or its row is gone, nobody will ever need the
 * token, and its secret costs $0.40 a month. The secret is deleted without a recovery window and
 * `invitationSecretArn` dropped from the tenant's resources. Every tenant asked is recorded asked, so the next pass
 * takes the next ones. Returns the tenants whose secret was deleted, with why.
 */
export async function settleInvitations(
  deps: InvitationDeps,
  policy: InvitationPolicy,
  actor: string,
  now: number,
  log: (message: string, details: Record<string, unknown>) => void,
): Promise<{ tenantId: string; outcome: InvitationOutcome }[]> {
  const settled: { tenantId: string; outcome: InvitationOutcome }[] = [];
  const asked: string[] = [];
  for (const tenantId of await tenantsWithInvitations(deps.cluster, policy)) {
    try {
      const tenant = await deps.tenants.get(tenantId);
      const arn = tenant?.resources.invitationSecretArn;
      if (!arn) continue;
      const secret = await readSecret(deps.secrets, arn, InvitationSecret);
      const outcome: InvitationOutcome | undefined = !secret
        ? 'gone'
        : Date.parse(secret.value.expiresAt) <= now
          ? 'expired'
          : (await stillOpen(deps.cluster, tenantId, secret.value.token))
            ? undefined
            : 'closed';
      asked.push(tenantId);
      if (outcome === undefined) continue;
      try {
        await deps.secrets.send(new DeleteSecretCommand({ SecretId: arn, ForceDeleteWithoutRecovery: true }));
      } catch (error) {
        if (!(error instanceof ResourceNotFoundException)) throw error;
      }
      await deps.tenants.removeResources(tenantId, ['invitationSecretArn'], actor);
      settled.push({ tenantId, outcome });
    } catch (error) {
      log('Could not settle an invitation secret', {
        tenantId,
        error: error instanceof Error ? error.name : String(error),
      });
    }
  }
  if (asked.length > 0) {
    await deps.cluster.execute(
      `UPDATE tenants SET invitation_checked_at = now()
       WHERE id IN (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)))`,
      { ids: json(asked) },
    );
  }
  return settled;
}
