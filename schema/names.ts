import { randomBytes } from 'node:crypto';

/**
 * Every name of a tenant's resources derives from its generated id, never from user text:
 * the id is 16 characters of `[a-z0-9]` starting with a letter, safe as an SQL identifier, an S3 key,
 * a secret name, an alarm name and a Step Functions execution name.
 */
export const TENANT_ID_PATTERN = /^t[a-z0-9]{15}$/;

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export function newTenantId(): string {
  let id = 't';
  while (id.length < 16) {
    for (const byte of randomBytes(20)) {
      // 252 is the largest multiple of 36 below 256: skipping bytes above it keeps every character equally likely.
      if (byte < 252 && id.length < 16) id += ALPHABET[byte % 36];
    }
  }
  return id;
}

export const DATABASE_ROLES = ['admin', 'app', 'readonly', 'auditor'] as const;
export type DatabaseRole = (typeof DATABASE_ROLES)[number];

export const databaseName = (tenantId: string): string => `tenant_${tenantId}`;
export const roleName = (tenantId: string, role: DatabaseRole): string => `${databaseName(tenantId)}_${role}`;
/** Prefix of every secret of a tenant. */
export const secretPrefix = (stage: string, tenantId: string): string => `tenants/${stage}/${tenantId}/`;
export const roleSecretName = (stage: string, tenantId: string, role: DatabaseRole): string =>
  `${secretPrefix(stage, tenantId)}db/${role}`;
export const invitationSecretName = (stage: string, tenantId: string): string =>
  `${secretPrefix(stage, tenantId)}invitation/admin`;
export const storagePrefix = (tenantId: string): string => `tenants/${tenantId}/`;
/** Prefix of every alarm of a tenant. */
export const alarmPrefix = (tenantId: string): string => `tenant-${tenantId}-`;
export const alarmName = (tenantId: string, what: string): string => `${alarmPrefix(tenantId)}${what}`;

/** Quotes an SQL identifier; names are generated, but quoting keeps that a rule rather than a hope. */
export const ident = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** An SQL string literal; utility statements (COMMENT, CREATE ROLE) and DO blocks take no bind parameters. */
export const literal = (value: string): string => `'${value.replaceAll("'", "''")}'`;
