import { randomInt } from 'node:crypto';
import { type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { SLUG_MAX_LENGTH, slugProblem, truncateSlug } from '../../schema/api/slug.ts';
import type { CreateTenantRequest, CreateTenantResponse } from '../../schema/api/tenants.ts';
import { newTenantId } from '../../schema/names.ts';
import { effectiveLimits, type PlanName } from '../../schema/plans.ts';
import { ServiceUnavailableError, SlugTakenError } from '../shared/errors.ts';
import type { TenantConfig, TenantStore } from '../shared/tenants.ts';

export interface CreateTenantDeps {
  readonly tenants: TenantStore;
  readonly sfn: SFNClient;
  /** The provision-tenant state machine. */
  readonly stateMachineArn: string;
  /** Called when a started-but-undone request needs a trace; never with secrets. */
  readonly log?: (message: string, details: Record<string, unknown>) => void;
}

/** The audit log's and the registry's `created_by` for a caller. */
export const actorOf = (caller: string): string => `api:${caller}`;

/**
 * Creates a tenant: reserves its slug (a {@link SlugTakenError} with free suggestions when another tenant has
 * it), records `TENANT_CREATED`, and starts the provisioning execution named by the tenant id with input
 * `{ tenantId }`. When the execution cannot be started the reservation is undone, so that nothing is left,
 * and a {@link ServiceUnavailableError} tells the caller to retry.
 */
export async function createTenant(
  deps: CreateTenantDeps,
  request: CreateTenantRequest,
  caller: string,
): Promise<CreateTenantResponse> {
  const actor = actorOf(caller);
  const tenantId = newTenantId();
  const config: TenantConfig = {
    adminUser: request.adminUser,
    features: request.features,
    securityPolicy: request.securityPolicy,
    compliance: request.compliance,
    settings: request.settings,
  };
  const reserved = await deps.tenants.reserve(
    {
      id: tenantId,
      slug: request.slug,
      name: request.name,
      plan: request.plan,
      limits: effectiveLimits(request.plan, request.limits),
      config,
    },
    actor,
  );
  if (!reserved) {
    throw new SlugTakenError(request.slug, await suggestSlugs(deps.tenants, request.slug, request.plan));
  }
  let executionArn: string | undefined;
  try {
    const started = await deps.sfn.send(
      new StartExecutionCommand({
        stateMachineArn: deps.stateMachineArn,
        name: tenantId,
        input: JSON.stringify({ tenantId }),
      }),
    );
    executionArn = started.executionArn;
    if (!executionArn) throw new Error('StartExecution returned no executionArn');
  } catch (error) {
    deps.log?.('Provisioning did not start; the reservation is undone', {
      tenantId,
      error: error instanceof Error ? error.name : String(error),
    });
    await deps.tenants.discardReservation(tenantId);
    throw new ServiceUnavailableError('Provisioning could not be started; nothing was created, retry later', {
      cause: error,
    });
  }
  try {
    await deps.tenants.setExecutionArn(tenantId, executionArn, actor);
  } catch (error) {
    // The run has started and the tenant exists: the answer is a 202 all the same (a 5xx would make the client
    // retry into its own slug). The drift reconciler adopts the run by its name, the tenant id.
    deps.log?.('The execution ARN was not recorded; the reconciler adopts the run', {
      tenantId,
      error: error instanceof Error ? error.name : String(error),
    });
  }
  return {
    tenantId,
    slug: request.slug,
    status: 'provisioning',
    executionArn,
    links: { self: `/tenants/${tenantId}` },
  };
}

export const SUGGESTION_COUNT = 3;

const RANDOM_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const randomSuffix = (length: number): string =>
  Array.from({ length }, () => RANDOM_ALPHABET[randomInt(RANDOM_ALPHABET.length)]).join('');

/** `<slug>-<suffix>`, the slug shortened so that the whole stays within the maximum length. */
function withSuffix(slug: string, suffix: string): string {
  return `${truncateSlug(slug, SLUG_MAX_LENGTH - suffix.length - 1)}-${suffix}`;
}

/**
 * Candidate slugs for a taken one, in the order they are offered (seed 003's `suggest_subdomains`): a number,
 * the plan, then random suffixes, which are all but certainly free. Only valid, unreserved slugs.
 */
export function slugCandidates(slug: string, plan: PlanName): string[] {
  const suffixes = ['2', plan, randomSuffix(4), '3', '4', randomSuffix(4), randomSuffix(4), randomSuffix(6)];
  const candidates = suffixes.map((suffix) => withSuffix(slug, suffix)).filter((c) => !slugProblem(c));
  return [...new Set(candidates)].filter((candidate) => candidate !== slug);
}

/** Up to three free slugs like the taken one, checked free in one query. */
export async function suggestSlugs(tenants: TenantStore, slug: string, plan: PlanName): Promise<string[]> {
  const free = await tenants.freeSlugs(slugCandidates(slug, plan));
  return free.slice(0, SUGGESTION_COUNT);
}
