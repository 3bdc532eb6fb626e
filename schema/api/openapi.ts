import * as z from '../zod.ts';
import { bulkOpenApi } from './batches.ts';
import { credentialsOpenApi } from './credentials.ts';
import { lifecycleOpenApi } from './lifecycle.ts';
import { type OperationId, type Route, routes } from './routes.ts';
import {
  CreateTenantRequest,
  CreateTenantResponse,
  ErrorResponse,
  ListTenantsQuery,
  TenantId,
  TenantListResponse,
  TenantResponse,
} from './tenants.ts';
import { UsageResponse } from './usage.ts';

/**
 * The OpenAPI 3.1 document of the API, generated from the route table and the zod schemas the API validates
 * with, so that the two cannot disagree. Schema Objects in 3.1 are JSON Schema 2020-12, which is what
 * `z.toJSONSchema` writes: request schemas as they are accepted (`io: 'input'`: a field with a default is
 * optional and shows the default), response schemas as they are answered.
 */
type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: z.ZodMiniType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
  });
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: JsonSchema) => ({ content: { 'application/json': { schema } } });

const GATEWAY_ERROR = {
  type: 'object',
  properties: { message: { type: 'string' } },
  required: ['message'],
  description: "API Gateway's own answer (before the function runs): Unauthorized, Forbidden, Not Found.",
} as const;

const error = (description: string, schema = 'Error') => ({ description, ...json(ref(schema)) });

const AUTH_ERRORS = {
  '401': error('No token, or an invalid or expired one.', 'GatewayError'),
  '403': error('The token lacks every scope the route accepts.', 'GatewayError'),
};

/** Query parameters from the (flat) query schema: one parameter per property. */
function queryParameters(schema: z.ZodMiniObject): unknown[] {
  const document = jsonSchema(schema, 'input');
  const properties = z.record(z.string(), z.record(z.string(), z.unknown())).parse(document.properties ?? {});
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: 'query',
      required: false,
      schema: rest,
      ...(typeof description === 'string' ? { description } : {}),
    };
  });
}

const lifecycle = lifecycleOpenApi({
  jsonSchema,
  ref,
  json,
  error,
  authErrors: AUTH_ERRORS,
  queryParameters,
});
const bulk = bulkOpenApi({ jsonSchema, ref, json, error, authErrors: AUTH_ERRORS });
const credentials = credentialsOpenApi({ jsonSchema, ref, json, error, authErrors: AUTH_ERRORS });

const operations: Record<OperationId, Record<string, unknown>> = {
  ...lifecycle.operations,
  ...bulk.operations,
  ...credentials.operations,
  createTenant: {
    parameters: [
      {
        name: 'Idempotency-Key',
        in: 'header',
        required: false,
        description:
          'Makes a retry safe: the first answer to this key (per caller) is stored for 24 hours and answered ' +
          'again to the same body; another body with the same key is a 422; while the first request is still ' +
          'being answered, a 409 `idempotency_key_in_progress`.',
        schema: {
          type: 'string',
          minLength: 1,
          maxLength: 255,
          pattern: '^[\\x21-\\x7e](?:[\\x20-\\x7e]*[\\x21-\\x7e])?$',
        },
      },
    ],
    requestBody: { required: true, ...json(ref('CreateTenantRequest')) },
    responses: {
      '202': {
        description: 'Accepted: the tenant is reserved and its provisioning started.',
        ...json(ref('CreateTenantResponse')),
      },
      '400': error('Invalid body or header; `details` name each problem. Nothing was created.'),
      ...AUTH_ERRORS,
      '409': error(
        'The slug is taken (`slug_taken`, with `suggestions`), or the Idempotency-Key is in progress.',
      ),
      '422': error('The Idempotency-Key was used with another body.'),
      '500': error('An unexpected error; nothing about it is told.'),
      '503': error('Provisioning could not be started; nothing was created; retry.'),
    },
  },
  listTenants: {
    parameters: queryParameters(ListTenantsQuery),
    responses: {
      '200': { description: 'A page of tenants, in id order.', ...json(ref('TenantList')) },
      '400': error('An invalid filter, limit or cursor, or an unknown parameter.'),
      ...AUTH_ERRORS,
    },
  },
  getTenant: {
    parameters: [{ name: 'tenantId', in: 'path', required: true, schema: jsonSchema(TenantId, 'output') }],
    responses: {
      '200': { description: 'The tenant.', ...json(ref('Tenant')) },
      ...AUTH_ERRORS,
      '404': error('No tenant has this id (a malformed id included).'),
    },
  },
  getUsage: {
    parameters: [{ name: 'tenantId', in: 'path', required: true, schema: jsonSchema(TenantId, 'output') }],
    responses: {
      '200': { description: 'The latest reading (measuredAt null before the first).', ...json(ref('Usage')) },
      ...AUTH_ERRORS,
      '404': error('No tenant has this id (a malformed id included).'),
    },
  },
  getOpenApi: {
    security: [],
    responses: {
      '200': {
        description: 'This document.',
        content: { 'application/json': { schema: { type: 'object' } } },
      },
    },
  },
};

function operation(route: Route) {
  const security = route.scopes === null ? [] : route.scopes.map((scope) => ({ bearer: [scope] }));
  return {
    operationId: route.operationId,
    summary: route.summary,
    tags: ['tenants'],
    security,
    ...operations[route.operationId],
  };
}

export interface OpenApiOptions {
  /** The API's base URL for `servers`; a relative `/` without one. */
  readonly serverUrl?: string;
}

/** The OpenAPI 3.1 document of the API. */
export function openApiDocument(options: OpenApiOptions = {}): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    paths[route.path] ??= {};
    const item = paths[route.path];
    if (item) item[route.method.toLowerCase()] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Tenant Provisioner',
      version: '1.0.0',
      description:
        'Creates tenants of a SaaS on AWS and reports their provisioning. Authorization: a JWT bearer token ' +
        "(Cognito access token) whose `scope` holds one of the operation's scopes; `tenants/admin` is accepted " +
        'wherever `tenants/read` is.',
    },
    servers: [{ url: options.serverUrl ?? '/' }],
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
      },
      schemas: {
        CreateTenantRequest: jsonSchema(CreateTenantRequest, 'input'),
        CreateTenantResponse: jsonSchema(CreateTenantResponse, 'output'),
        Tenant: jsonSchema(TenantResponse, 'output'),
        TenantList: jsonSchema(TenantListResponse, 'output'),
        Usage: jsonSchema(UsageResponse, 'output'),
        Error: jsonSchema(ErrorResponse, 'output'),
        GatewayError: GATEWAY_ERROR,
        ...lifecycle.schemas,
        ...bulk.schemas,
        ...credentials.schemas,
      },
    },
  };
}
