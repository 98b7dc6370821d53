// The product API in one region: the Rust function (the router of `tandem api serve`)
// over a table, behind a REST API with the clients' API key, a usage plan, request
// validation, access and execution logs and a WAF web ACL; `GET /health` answers
// without a key (Route 53 health checks cannot send one). With a hosted zone, the
// API also answers on the clients' name (a regional custom domain).
//
// The primary region and the standby region each have one (dr-stack.ts); the
// standby's is a pilot light when its function's reserved concurrency is 0.

import * as cdk from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { ContractBinding } from './contract';
import { TandemConfig } from './config';
import { acknowledge } from './nag';
import { TandemFunction } from './rust-lambda';

/** The IAM contract's names of one region's API. */
export interface ApiContractNames {
  /** The function's principal (`product-api-function`). */
  readonly functionPrincipal: string;
  /** The account's API Gateway logging role's principal in this region. */
  readonly logsPrincipal: string;
  /** The placeholders of the function's log group, the access logs and the REST API. */
  readonly functionLogs: string;
  readonly accessLogs: string;
  readonly restApi: string;
}

export interface ProductApiProps {
  readonly config: TandemConfig;
  readonly removal: cdk.RemovalPolicy;
  readonly contract: ContractBinding;
  readonly names: ApiContractNames;
  /** The table the function serves, in this region (its name). */
  readonly table: string;
  /** The clients' key (the same value in both regions). */
  readonly apiKey: cdk.SecretValue;
  /** The function's name, when it must be known before it exists (the standby's). */
  readonly functionName?: string;
  /** The function's reserved concurrency: 0 switches it off (a pilot light). */
  readonly reservedConcurrency?: number;
  /** Names the function's calls in the IAM contract (`TANDEM_COMPONENT`). */
  readonly component?: string;
  readonly description: string;
}

/**
 * The API's request limits, one story from one number: a client (one key, from one
 * address) may send `rate` requests a second. The usage plan throttles each key
 * to it (burst twice that); the stage, which all keys share, to twice it; and the
 * web ACL blocks an address past five minutes of it (AWS WAF's rate-based rule
 * counts requests per address over its 5-minute evaluation window), so a client
 * within its plan is never blocked by the WAF first.
 */
export interface ApiLimits {
  readonly keyRate: number;
  readonly keyBurst: number;
  readonly stageRate: number;
  readonly stageBurst: number;
  /** Requests per address per five minutes. */
  readonly addressPerFiveMinutes: number;
}

export function apiLimits(rate: number): ApiLimits {
  return { keyRate: rate, keyBurst: 2 * rate, stageRate: 2 * rate, stageBurst: 4 * rate, addressPerFiveMinutes: 300 * rate };
}

/** One region's API, built by [`productApi`]. */
export interface ProductApi {
  readonly fn: TandemFunction;
  readonly api: apigw.RestApi;
  /** The regional custom domain for the clients' name, with a hosted zone. */
  readonly domain?: apigw.DomainName;
}

/**
 * Builds the API's constructs directly in `scope` (a stack), under the ids the
 * primary's have always had, so an existing deployment keeps its API and URL.
 */
export function productApi(scope: Construct, props: ProductApiProps): ProductApi {
  const stack = cdk.Stack.of(scope);
  const { config, removal } = props;
  const fn = new TandemFunction(scope, 'ProductApi', {
    binary: 'product_api',
    description: props.description,
    environment: {
      TABLE_NAME: props.table,
      ...(props.component ? { TANDEM_COMPONENT: props.component } : {}),
    },
    timeout: cdk.Duration.seconds(10),
    memorySize: 256,
    removalPolicy: removal,
    architecture: config.lambdaArchitecture,
    functionName: props.functionName,
    reservedConcurrentExecutions: props.reservedConcurrency,
  });
  fn.role.addToPolicy(
    new iam.PolicyStatement({
      actions: [
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:DeleteItem',
        'dynamodb:Scan',
        'dynamodb:CreateBackup',
      ],
      resources: [stack.formatArn({ service: 'dynamodb', resource: 'table', resourceName: props.table })],
    }),
  );
  props.contract
    .principal(props.names.functionPrincipal, fn.role)
    .bind({ [props.names.functionLogs]: fn.logGroup.logGroupName });
  const api = restApi(scope, fn, props);
  props.contract.bind({ [props.names.restApi]: api.restApiId });
  let domain: apigw.DomainName | undefined;
  if (config.apiDomain) {
    const zone = route53.HostedZone.fromHostedZoneAttributes(scope, 'ApiZone', {
      hostedZoneId: config.apiDomain.hostedZoneId,
      zoneName: config.apiDomain.hostedZoneName,
    });
    const certificate = new acm.Certificate(scope, 'ApiCertificate', {
      domainName: config.apiDomain.domainName,
      validation: acm.CertificateValidation.fromDns(zone),
    });
    domain = new apigw.DomainName(scope, 'ApiDomain', {
      domainName: config.apiDomain.domainName,
      certificate,
      endpointType: apigw.EndpointType.REGIONAL,
      securityPolicy: apigw.SecurityPolicy.TLS_1_2,
      mapping: api,
    });
  }
  return { fn, api, domain };
}

function restApi(scope: Construct, fn: TandemFunction, props: ProductApiProps): apigw.RestApi {
  const limits = apiLimits(props.config.apiRatePerSecond);
  const { config, removal } = props;
  // Execution and access logging need the account's API Gateway CloudWatch role, as
  // AWS documents it: a role API Gateway assumes with the managed
  // AmazonAPIGatewayPushToCloudWatchLogs policy. The setting is one per account and
  // region, shared by every REST API there (docs/deploy.md).
  const logsRole = new iam.Role(scope, 'ApiGatewayLogsRole', {
    assumedBy: new iam.ServicePrincipal('apigateway.amazonaws.com'),
    description: 'API Gateway execution and access logs (the account-wide API Gateway CloudWatch role of this region)',
    managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonAPIGatewayPushToCloudWatchLogs')],
  });
  acknowledge(
    logsRole,
    'AwsSolutions-IAM4',
    'AWS documents this managed policy for the account\'s API Gateway CloudWatch role (set-up-logging); API Gateway names and creates its execution log groups itself.',
    ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs'],
  );
  props.contract.principal(props.names.logsPrincipal, logsRole);
  const account = new apigw.CfnAccount(scope, 'ApiGatewayAccount', { cloudWatchRoleArn: logsRole.roleArn });
  const accessLogs = new logs.LogGroup(scope, 'ApiAccessLogs', {
    retention: logs.RetentionDays.THREE_MONTHS,
    removalPolicy: removal,
  });
  const api = new apigw.RestApi(scope, 'Api', {
    restApiName: 'tandem-products',
    description: 'tandem product API (the seed\'s routes)',
    endpointTypes: [apigw.EndpointType.REGIONAL],
    cloudWatchRole: false,
    apiKeySourceType: apigw.ApiKeySourceType.HEADER,
    deployOptions: {
      stageName: config.apiStage,
      accessLogDestination: new apigw.LogGroupLogDestination(accessLogs),
      accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields(),
      loggingLevel: apigw.MethodLoggingLevel.INFO,
      dataTraceEnabled: false,
      metricsEnabled: true,
      tracingEnabled: true,
      throttlingRateLimit: limits.stageRate,
      throttlingBurstLimit: limits.stageBurst,
    },
    defaultMethodOptions: { apiKeyRequired: true },
  });
  api.node.addDependency(account);
  props.contract.bind({ [props.names.accessLogs]: accessLogs.logGroupName });
  const validator = new apigw.RequestValidator(scope, 'Validator', {
    restApi: api,
    validateRequestBody: true,
    validateRequestParameters: true,
  });
  const text = (max: number): apigw.JsonSchema => ({ type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: max });
  const model = (name: string, properties: Record<string, apigw.JsonSchema>) =>
    api.addModel(name, {
      contentType: 'application/json',
      schema: {
        schema: apigw.JsonSchemaVersion.DRAFT4,
        type: apigw.JsonSchemaType.OBJECT,
        properties,
        required: Object.keys(properties),
        additionalProperties: false,
      },
    });
  const addModel = model('AddProduct', { product_category: text(100), product_title: text(500) });
  const updateModel = model('UpdateProduct', { product_id: text(64), product_category: text(100), product_title: text(500) });
  const integration = new apigw.LambdaIntegration(fn.fn);
  const route = (path: string, method: string, options: apigw.MethodOptions = {}) =>
    api.root.addResource(path).addMethod(method, integration, { requestValidator: validator, ...options });
  const id = { 'method.request.querystring.product_id': true };
  route('addProduct', 'POST', { requestModels: { 'application/json': addModel } });
  route('getProduct', 'GET', { requestParameters: id });
  route('getProducts', 'GET', {
    requestParameters: { 'method.request.querystring.limit': false, 'method.request.querystring.cursor': false },
  });
  route('updateProduct', 'PUT', { requestModels: { 'application/json': updateModel } });
  route('deleteProduct', 'DELETE', { requestParameters: id });
  route('createBackup', 'POST');
  // Route 53's health checkers send no key; the route reads one item and says
  // whether this region's table answers.
  route('health', 'GET', { apiKeyRequired: false });

  const key = api.addApiKey('ApiKey', {
    description: 'tandem product API client key (the same value in both regions: secret ApiKeySecretName)',
    value: props.apiKey.unsafeUnwrap(),
  });
  const usage = api.addUsagePlan('UsagePlan', {
    description: 'Per-key throttling of the product API',
    throttle: { rateLimit: limits.keyRate, burstLimit: limits.keyBurst },
    quota: { limit: 1_000_000, period: apigw.Period.DAY },
    apiStages: [{ api, stage: api.deploymentStage }],
  });
  usage.addApiKey(key);
  new cdk.CfnOutput(scope, 'ApiKeyId', {
    value: key.keyId,
    description: 'aws apigateway get-api-key --include-value --api-key <id> (or the secret ApiKeySecretName)',
  });

  // A web ACL in front of the stage: AWS's common and known-bad-input rules and a
  // per-address rate limit.
  const managed = (name: string, priority: number): wafv2.CfnWebACL.RuleProperty => ({
    name,
    priority,
    overrideAction: { none: {} },
    statement: { managedRuleGroupStatement: { vendorName: 'AWS', name } },
    visibilityConfig: { sampledRequestsEnabled: true, cloudWatchMetricsEnabled: true, metricName: name },
  });
  const acl = new wafv2.CfnWebACL(scope, 'WebAcl', {
    scope: 'REGIONAL',
    defaultAction: { allow: {} },
    visibilityConfig: { sampledRequestsEnabled: true, cloudWatchMetricsEnabled: true, metricName: 'tandem-products' },
    rules: [
      managed('AWSManagedRulesCommonRuleSet', 1),
      managed('AWSManagedRulesKnownBadInputsRuleSet', 2),
      {
        name: 'RatePerAddress',
        priority: 3,
        action: { block: {} },
        statement: { rateBasedStatement: { limit: limits.addressPerFiveMinutes, aggregateKeyType: 'IP', evaluationWindowSec: 300 } },
        visibilityConfig: { sampledRequestsEnabled: true, cloudWatchMetricsEnabled: true, metricName: 'RatePerAddress' },
      },
    ],
  });
  new wafv2.CfnWebACLAssociation(scope, 'WebAclAssociation', {
    resourceArn: api.deploymentStage.stageArn,
    webAclArn: acl.attrArn,
  });
  acknowledge(api, 'AwsSolutions-APIG4', 'The seed\'s contract: callers are services holding an API key (required on every method but the health check, throttled per key by the usage plan); there are no end users to authorize.');
  acknowledge(api, 'AwsSolutions-COG4', 'No Cognito user pool: callers are services authenticated by API key (see APIG4).');
  return api;
  }
