import { beforeAll, describe, expect, it } from 'vitest';
import { stateMachineArn } from '../../local/constants.ts';
import { superuserPool, uniqueName } from '../support/sandbox.ts';
import { type ApiUnderTest, call, ErrorBody, startLocalApi, tenantsNamed, validBody } from './api.ts';

// An API of its own whose state machine does not exist: every StartExecution fails, as when Step Functions is
// down or the function lacks permission.
let api: ApiUnderTest;
let admin: string;
let sub: string;
beforeAll(async () => {
  api = await startLocalApi({ PROVISION_STATE_MACHINE_ARN: stateMachineArn(uniqueName('missing')) });
  sub = uniqueName('caller');
  admin = await api.token({ scopes: ['tenants/admin'], sub });
});

describe('POST /tenants when provisioning cannot start', () => {
  it('answers 503 and leaves nothing: no tenant, no audit entry, no idempotency record', async () => {
    // Prepare
    const key = uniqueName('key');
    const body = validBody();

    // Act
    const first = await call(api, 'POST', '/tenants', {
      token: admin,
      body,
      headers: { 'idempotency-key': key },
    });
    const retry = await call(api, 'POST', '/tenants', {
      token: admin,
      body,
      headers: { 'idempotency-key': key },
    });

    // Assess
    expect(first.status).toBe(503);
    expect(first.headers.get('retry-after')).not.toBeNull();
    expect(ErrorBody.parse(first.body).error).toMatchObject({ code: 'service_unavailable', details: [] });
    expect(JSON.stringify(first.body)).not.toMatch(/StateMachineDoesNotExist|arn:/);
    // The retry ran afresh (not a replay) and failed the same way.
    expect(retry.status).toBe(503);
    expect(retry.headers.get('idempotent-replayed')).toBeNull();
    expect(await tenantsNamed(String(body.name))).toEqual([]);
    const pool = superuserPool('control_plane');
    const audit = await pool.query("SELECT 1 FROM audit_log WHERE details->>'slug' LIKE $1", [
      `${String(body.name).toLowerCase().replaceAll(' ', '-')}%`,
    ]);
    expect(audit.rowCount).toBe(0);
    const keys = await pool.query('SELECT 1 FROM idempotency_keys WHERE caller = $1 AND key = $2', [
      sub,
      key,
    ]);
    expect(keys.rowCount).toBe(0);
  });
});
