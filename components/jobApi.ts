// The job API: the producer as a serialized CallbackFunction behind an API Gateway HTTP API.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { FarmSettings, SettingsReadBy } from "../functions/shared/farmSettings";
import { jobApiSettingsFromEnvironment } from "../functions/jobApi/settings";
import { jobApiEnvironment } from "../functions/shared/functionEnvironment";
import { createJobApiHandler } from "../functions/jobApi/handler";
import { RENDERS_BUCKET_GRANTS } from "../functions/shared/ledger/grants";
import { lambdaRole, readScenesStatements, rendersBucketStatements, writeLogsStatement } from "./iam";
import * as packageJson from "../package.json";

/** The settings of the API in front of the function, and those its environment carries (FARM_SETTINGS says which). */
export interface JobApiArgs
    extends Pick<
        FarmSettings,
        "apiAuth" | "apiRateLimit" | "apiBurstLimit" | "logRetentionDays" | SettingsReadBy<"jobApi">
    > {
    scenesBucket: aws.s3.Bucket;
    rendersBucket: aws.s3.Bucket;
    frameQueue: aws.sqs.Queue;
    deadLetterQueue: aws.sqs.Queue;
}

export const JOB_API_ROUTES = [
    "POST /jobs",
    "GET /jobs/{jobId}",
    "POST /jobs/{jobId}/retry",
    "POST /jobs/{jobId}/cancel",
];

/** The only packages the serialized job API needs beside the AWS SDK v3, which the nodejs22.x runtime carries. */
const JOB_API_RUNTIME_PACKAGES = ["zod", "fzstd"];
/** API Gateway gives up on an integration after 30 s. */
const JOB_API_TIMEOUT_SECONDS = 29;

export class JobApi extends pulumi.ComponentResource {
    public readonly function: aws.lambda.CallbackFunction<unknown, unknown>;
    public readonly api: aws.apigatewayv2.Api;
    public readonly url: pulumi.Output<string>;

    constructor(name: string, args: JobApiArgs, opts?: pulumi.ComponentResourceOptions) {
        super("render-farm:index:JobApi", name, {}, opts);
        const logGroup = new aws.cloudwatch.LogGroup(
            `${name}-logs`,
            { retentionInDays: args.logRetentionDays },
            { parent: this },
        );
        const { role, policy } = lambdaRole(
            name,
            [
                ...readScenesStatements(args.scenesBucket),
                ...rendersBucketStatements(args.rendersBucket, RENDERS_BUCKET_GRANTS.jobApi),
                // GetQueueAttributes: a retry requeues lost frames only once the frame queue is empty.
                {
                    Sid: "QueueFrames",
                    Effect: "Allow",
                    Action: ["sqs:SendMessage", "sqs:GetQueueAttributes"],
                    Resource: args.frameQueue.arn,
                },
                // A retry deletes the job's dead letters it has queued again (a DLQ redrive would render them twice):
                // ReceiveMessage to find them, DeleteMessage to remove them; nothing else, and on the DLQ only.
                {
                    Sid: "RemoveRequeuedDeadLetters",
                    Effect: "Allow",
                    Action: ["sqs:ReceiveMessage", "sqs:DeleteMessage"],
                    Resource: args.deadLetterQueue.arn,
                },
                writeLogsStatement(logGroup),
            ],
            this,
        );

        this.function = new aws.lambda.CallbackFunction(
            `${name}-function`,
            {
                runtime: "nodejs22.x",
                role,
                memorySize: 1024,
                timeout: JOB_API_TIMEOUT_SECONDS,
                loggingConfig: { logFormat: "Text", logGroup: logGroup.name },
                environment: {
                    variables: jobApiEnvironment(
                        {
                            scenesBucket: args.scenesBucket.bucket,
                            rendersBucket: args.rendersBucket.bucket,
                            frameQueueUrl: args.frameQueue.url,
                            deadLetterQueueUrl: args.deadLetterQueue.url,
                        },
                        args,
                    ),
                },
                // Clients are made here, once per cold start: captured SDK v3 clients do not survive serialization.
                // The SQS endpoint comes from the region (or AWS_ENDPOINT_URL), not from the queue URL's host.
                callbackFactory: () =>
                    createJobApiHandler({
                        s3: new S3Client({}),
                        sqs: new SQSClient({ useQueueUrlAsEndpoint: false }),
                        settings: jobApiSettingsFromEnvironment(process.env),
                    }),
                codePathOptions: {
                    // Pulumi counts optionalDependencies as dependencies too (the bundled Node binary is one).
                    extraExcludePackages: Object.keys({
                        ...packageJson.dependencies,
                        ...packageJson.optionalDependencies,
                    }).filter((name) => !JOB_API_RUNTIME_PACKAGES.includes(name)),
                },
            },
            { parent: this, dependsOn: [policy] },
        );

        this.api = new aws.apigatewayv2.Api(`${name}-http`, { protocolType: "HTTP" }, { parent: this });
        const integration = new aws.apigatewayv2.Integration(
            `${name}-integration`,
            {
                apiId: this.api.id,
                integrationType: "AWS_PROXY",
                integrationUri: this.function.arn,
                payloadFormatVersion: "2.0",
            },
            { parent: this },
        );
        for (const routeKey of JOB_API_ROUTES) {
            new aws.apigatewayv2.Route(
                `${name}-${routeSlug(routeKey)}`,
                {
                    apiId: this.api.id,
                    routeKey,
                    target: pulumi.interpolate`integrations/${integration.id}`,
                    authorizationType: args.apiAuth === "iam" ? "AWS_IAM" : "NONE",
                },
                { parent: this },
            );
        }
        const accessLogs = new aws.cloudwatch.LogGroup(
            `${name}-access-logs`,
            { retentionInDays: args.logRetentionDays },
            { parent: this },
        );
        new aws.apigatewayv2.Stage(
            `${name}-stage`,
            {
                apiId: this.api.id,
                name: "$default",
                autoDeploy: true,
                defaultRouteSettings: {
                    throttlingRateLimit: args.apiRateLimit,
                    throttlingBurstLimit: args.apiBurstLimit,
                },
                accessLogSettings: {
                    destinationArn: accessLogs.arn,
                    // No headers or query strings: a signed request's credentials must never reach a log.
                    format: JSON.stringify({
                        requestId: "$context.requestId",
                        caller: "$context.identity.caller",
                        sourceIp: "$context.identity.sourceIp",
                        requestTime: "$context.requestTime",
                        routeKey: "$context.routeKey",
                        status: "$context.status",
                        responseLength: "$context.responseLength",
                        integrationError: "$context.integrationErrorMessage",
                    }),
                },
            },
            { parent: this },
        );
        new aws.lambda.Permission(
            `${name}-invoke`,
            {
                action: "lambda:InvokeFunction",
                function: this.function.name,
                principal: "apigateway.amazonaws.com",
                sourceArn: pulumi.interpolate`${this.api.executionArn}/*/*`,
            },
            { parent: this },
        );

        this.url = this.api.apiEndpoint;
        this.registerOutputs({ url: this.url, functionName: this.function.name });
    }
}

function routeSlug(routeKey: string): string {
    return routeKey
        .toLowerCase()
        .replace(/[{}]/g, "")
        .replace(/[^a-z0-9]+/g, "-")
        .replace(/-$/, "");
}
