import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { routes } from '../../schema/api/routes.ts';
import { type ApiUnderTest, apiUnderTest, CreatedBody, call, validBody } from './api.ts';

let api: ApiUnderTest;
let document: Record<string, unknown>;
beforeAll(async () => {
  api = await apiUnderTest();
  const answer = await call(api, 'GET', '/openapi.json');
  document = z.record(z.string(), z.unknown()).parse(answer.body);
});

const Schemas = z.object({
  components: z.object({ schemas: z.record(z.string(), z.record(z.string(), z.unknown())) }),
  paths: z.record(
    z.string(),
    z.record(z.string(), z.object({ operationId: z.string(), security: z.array(z.unknown()) })),
  ),
});

/** An Ajv instance knowing the document, so that `#/components/...` references resolve. */
function ajvFor(doc: Record<string, unknown>) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addFormat('email', true);
  ajv.addSchema({ ...doc, $id: 'openapi.json' }, 'openapi.json');
  return (name: string) => {
    const validate = ajv.getSchema(`openapi.json#/components/schemas/${name}`);
    if (!validate) throw new Error(`no schema ${name}`);
    return validate;
  };
}

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document listing every route of the route table with its scopes', async () => {
    // Act
    const result = await new Validator().validate(document);

    // Assess
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(document.openapi).toBe('3.1.0');
    const { paths } = Schemas.parse(document);
    for (const route of routes) {
      const operation = paths[route.path]?.[route.method.toLowerCase()];
      expect(operation?.operationId).toBe(route.operationId);
      expect(operation?.security).toEqual((route.scopes ?? []).map((scope) => ({ bearer: [scope] })));
    }
  });

  it('describes the request body as the API validates it: strict at every level, defaults shown', () => {
    // Prepare
    const request = Schemas.parse(document).components.schemas.CreateTenantRequest ?? {};
    const validate = ajvFor(document)('CreateTenantRequest');

    // Act
    const valid = validate(validBody({ securityPolicy: { passwordPolicy: { minLength: 16 } } }));
    const unknownTop = validate(validBody({ color: 'red' }));
    const unknownNested = validate(
      validBody({ securityPolicy: { passwordPolicy: { requireSpecialChars: true } } }),
    );

    // Assess
    expect(request.additionalProperties).toBe(false);
    expect(request.required).toEqual(['name', 'plan', 'adminUser']);
    expect(JSON.stringify(request)).toContain('"minLength":{"default":12');
    expect([valid, unknownTop, unknownNested]).toEqual([true, false, false]);
  });

  it("describes the API's real answers", async () => {
    // Prepare
    const schema = ajvFor(document);
    const admin = await api.token();
    const created = await call(api, 'POST', '/tenants', { token: admin, body: validBody() });
    const { tenantId } = CreatedBody.parse(created.body);

    // Act
    const tenant = await call(api, 'GET', `/tenants/${tenantId}`, { token: admin });
    const list = await call(api, 'GET', '/tenants?limit=3', { token: admin });
    const missing = await call(api, 'GET', '/tenants/t000000000000000', { token: admin });

    // Assess
    const checks = [
      ['CreateTenantResponse', created.body],
      ['Tenant', tenant.body],
      ['TenantList', list.body],
      ['Error', missing.body],
    ] as const;
    for (const [name, body] of checks) {
      const validate = schema(name);
      expect(validate(body), `${name}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
  });
});
