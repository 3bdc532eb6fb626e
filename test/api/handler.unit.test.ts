import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ErrorBody, NO_AWS, setApiEnvironment } from './contract.ts';

// The api function called directly with API Gateway events, for what API Gateway never lets through: a route
// wired without its authorizer or scopes, an unknown route key, a malformed event. None of them reaches AWS
// (NO_AWS refuses any connection), so the file runs in the unit tier.
let handler: typeof import('../../functions/api/handler.ts').handler;
const saved = { ...process.env };
beforeAll(async () => {
  setApiEnvironment(NO_AWS);
  ({ handler } = await import('../../functions/api/handler.ts'));
});
// The unit tier's files share a process: leave its environment as it was.
afterAll(() => {
  process.env = saved;
});

const Result = z.object({
  statusCode: z.number(),
  headers: z.record(z.string(), z.string()),
  body: z.string(),
});

const context = {
  functionName: 'tenant-provisioner-local-Api',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:tenant-provisioner-local-Api',
  memoryLimitInMB: '128',
  awsRequestId: 'test',
  logGroupName: '/aws/lambda/tenant-provisioner-local-Api',
  logStreamName: 'test',
  getRemainingTimeInMillis: () => 30_000,
  callbackWaitsForEmptyEventLoop: true,
};

function event(routeKey: string, authorizer?: { claims: Record<string, string>; scopes: string[] | null }) {
  const [method = 'GET', path = '/'] = routeKey.split(' ');
  return {
    version: '2.0',
    routeKey,
    rawPath: path,
    rawQueryString: '',
    headers: { 'content-type': 'application/json' },
    requestContext: {
      requestId: 'req',
      http: { method, path },
      ...(authorizer ? { authorizer: { jwt: authorizer } } : {}),
    },
    body: '{}',
    isBase64Encoded: false,
  };
}

async function invoke(input: unknown) {
  const result = Result.parse(await handler(input, context));
  return { status: result.statusCode, body: JSON.parse(result.body) };
}

describe('the api function behind API Gateway', () => {
  it('fails closed when a route arrives without its authorizer or scopes', async () => {
    // Act
    const noAuthorizer = await invoke(event('POST /tenants'));
    const readScope = await invoke(
      event('POST /tenants', { claims: { sub: 'x', scope: 'tenants/read' }, scopes: null }),
    );
    const adminByList = await invoke(
      event('GET /tenants/{tenantId}', { claims: { sub: 'x' }, scopes: ['tenants/admin'] }),
    );

    // Assess
    expect(noAuthorizer.status).toBe(401);
    expect(ErrorBody.parse(noAuthorizer.body).error.code).toBe('unauthorized');
    expect(readScope.status).toBe(403);
    expect(ErrorBody.parse(readScope.body).error.code).toBe('forbidden');
    // Past the scope check: no tenantId path parameter, so no tenant.
    expect(adminByList.status).toBe(404);
  });

  it('answers 400 to a path whose percent-encoding does not decode, as API Gateway passes it', async () => {
    // Prepare
    const authorizer = { claims: { sub: 'x' }, scopes: ['tenants/admin'] };
    const malformed = { ...event('GET /tenants/{tenantId}', authorizer), rawPath: '/tenants/%E0%A4%A' };

    // Act
    const answer = await invoke({ ...malformed, pathParameters: { tenantId: '%E0%A4%A' } });

    // Assess
    expect(answer.status).toBe(400);
    expect(ErrorBody.parse(answer.body).error).toMatchObject({
      code: 'invalid_request',
      details: [{ path: 'path' }],
    });
  });

  it('answers an unknown route 404 and a malformed event a plain 500', async () => {
    // Act
    const unknown = await invoke(
      event('DELETE /tenants/{tenantId}', { claims: { sub: 'x' }, scopes: ['tenants/admin'] }),
    );
    const malformed = await invoke({ version: '1.0', resource: '/tenants' });

    // Assess
    expect(unknown.status).toBe(404);
    expect(malformed).toEqual({
      status: 500,
      body: { error: { code: 'internal_error', message: 'Internal server error', details: [] } },
    });
  });
});
