import { Aws, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import {
  HttpApi,
  HttpMethod,
  HttpNoneAuthorizer,
  HttpStage,
  LogGroupLogDestination,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import {
  AccountRecovery,
  FeaturePlan,
  Mfa,
  OAuthScope,
  ResourceServerScope,
  UserPool,
  type UserPoolClient,
  UserPoolResourceServer,
} from 'aws-cdk-lib/aws-cognito';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { JwtConfig } from '../config.ts';

/** One route of the route table (`schema/api/routes.ts`). */
export interface ApiRoute {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string;
  readonly operationId: string;
  /** The token needs any of these scopes; `null`: the route is public (no authorizer). */
  readonly scopes: readonly string[] | null;
}

export interface ApiProps {
  /** The API's name, and the prefix of its log group and user pool names. */
  readonly prefix: string;
  /** The function behind every route (it dispatches on the route key). */
  readonly handler: IFunction;
  readonly routes: readonly ApiRoute[];
  /** The scopes of the API, `<resource server>/<scope>`, e.g. `tenants/admin`. */
  readonly scopes: readonly string[];
  /**
   * The token issuer and audience. Absent: a Cognito user pool with a resource server for `scopes` and one
   * machine-to-machine app client (client credentials) that may ask for all of them.
   */
  readonly jwt?: JwtConfig;
  /** @default 50 requests per second, bursts of 100 */
  readonly throttling?: { readonly rateLimit: number; readonly burstLimit: number };
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
  /** Of the access log group and the user pool. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The HTTPS API: an HTTP API whose routes are the route table's, each behind a JWT authorizer that demands the
 * route's scopes, a `$default` stage with JSON access logs and stage-wide throttling.
 */
export class Api extends Construct {
  readonly httpApi: HttpApi;
  readonly stage: HttpStage;
  readonly issuer: string;
  readonly audience: readonly string[];
  /** Present when the stack made the user pool. */
  readonly userPool?: UserPool;
  readonly client?: UserPoolClient;
  /** Cognito's OAuth token endpoint, when the stack made the user pool. */
  readonly tokenUrl?: string;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    if (props.jwt) {
      this.issuer = props.jwt.issuer;
      this.audience = props.jwt.audience;
    } else {
      const pool = this.#userPool(props.prefix, props.scopes, removalPolicy);
      this.userPool = pool.userPool;
      this.client = pool.client;
      this.tokenUrl = pool.tokenUrl;
      // The token's `iss`; the pool's ProviderURL attribute lacks the scheme the authorizer compares too.
      this.issuer = `https://cognito-idp.${Stack.of(this).region}.${Aws.URL_SUFFIX}/${pool.userPool.userPoolId}`;
      // Cognito access tokens carry no `aud`; API Gateway then matches `client_id` against the audience.
      this.audience = [pool.client.userPoolClientId];
    }

    this.httpApi = new HttpApi(this, 'HttpApi', {
      apiName: props.prefix,
      description: 'Tenant Provisioner: create, list and read tenants',
      createDefaultStage: false,
    });
    const accessLogs = new LogGroup(this, 'AccessLogs', {
      logGroupName: `/aws/vendedlogs/apigateway/${props.prefix}`,
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy,
    });
    const throttling = props.throttling ?? { rateLimit: 50, burstLimit: 100 };
    this.stage = new HttpStage(this, 'DefaultStage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: throttling.rateLimit, burstLimit: throttling.burstLimit },
      accessLogSettings: {
        destination: new LogGroupLogDestination(accessLogs),
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            requestTime: '$context.requestTime',
            ip: '$context.identity.sourceIp',
            routeKey: '$context.routeKey',
            status: '$context.status',
            latencyMs: '$context.responseLatency',
            responseLength: '$context.responseLength',
            clientId: '$context.authorizer.claims.client_id',
            subject: '$context.authorizer.claims.sub',
            authorizerError: '$context.authorizer.error',
            integrationError: '$context.integrationErrorMessage',
          }),
        ),
      },
    });

    const authorizer = new HttpJwtAuthorizer('Jwt', this.issuer, {
      authorizerName: 'jwt',
      jwtAudience: [...this.audience],
    });
    const integration = new HttpLambdaIntegration('Handler', props.handler);
    for (const route of props.routes) {
      const [created] = this.httpApi.addRoutes({
        path: route.path,
        methods: [HttpMethod[route.method]],
        integration,
        ...(route.scopes
          ? { authorizer, authorizationScopes: [...route.scopes] }
          : { authorizer: new HttpNoneAuthorizer() }),
      });
      if (!route.scopes && created) {
        Validations.of(created).acknowledge({
          id: 'AwsSolutions-APIG4',
          reason: `${route.method} ${route.path} (${route.operationId}) is public by design in the route table (schema/api/routes.ts): it serves no tenant data.`,
        });
      }
    }
  }

  #userPool(prefix: string, scopes: readonly string[], removalPolicy: RemovalPolicy) {
    const userPool = new UserPool(this, 'UserPool', {
      userPoolName: prefix,
      selfSignUpEnabled: false,
      signInAliases: { email: true },
      accountRecovery: AccountRecovery.EMAIL_ONLY,
      mfa: Mfa.REQUIRED,
      mfaSecondFactor: { otp: true, sms: false },
      passwordPolicy: {
        minLength: 14,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(1),
      },
      featurePlan: FeaturePlan.ESSENTIALS,
      removalPolicy,
      deletionProtection: removalPolicy === RemovalPolicy.RETAIN,
    });
    Validations.of(userPool).acknowledge({
      id: 'AwsSolutions-COG8',
      reason:
        'Threat protection needs the Plus feature plan, billed per monthly active user; the pool serves machine clients through the client credentials flow, and no person signs in to it.',
    });
    const serverIds = [...new Set(scopes.map((scope) => scope.split('/')[0] ?? ''))];
    if (serverIds.length !== 1 || !serverIds[0]) {
      throw new Error(`API scopes must share one resource server: ${scopes.join(', ')}`);
    }
    const serverScopes = scopes.map(
      (scope) =>
        new ResourceServerScope({
          scopeName: scope.slice(scope.indexOf('/') + 1),
          scopeDescription: `API scope ${scope}`,
        }),
    );
    const resourceServer = new UserPoolResourceServer(this, 'ResourceServer', {
      userPool,
      identifier: serverIds[0],
      userPoolResourceServerName: 'Tenant Provisioner API',
      scopes: serverScopes,
    });
    const client = userPool.addClient('AdminClient', {
      userPoolClientName: `${prefix}-admin`,
      generateSecret: true,
      authFlows: {},
      oAuth: {
        flows: { clientCredentials: true },
        scopes: serverScopes.map((scope) => OAuthScope.resourceServer(resourceServer, scope)),
      },
      accessTokenValidity: Duration.hours(1),
      enableTokenRevocation: true,
      preventUserExistenceErrors: true,
    });
    // The domain's prefix is global per region: the account id keeps stages of different accounts apart.
    const domain = userPool.addDomain('Domain', {
      cognitoDomain: { domainPrefix: `${prefix}-${Aws.ACCOUNT_ID}` },
    });
    return { userPool, client, tokenUrl: `${domain.baseUrl()}/oauth2/token` };
  }
}
