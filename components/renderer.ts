// The renderer: a container Lambda running Blender, fed one frame at a time by the frame queue.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { Engine } from "../functions/shared/contract";
import { rendererEnvironment } from "../functions/shared/farmSettings";
import { RENDERS_BUCKET_GRANTS } from "../functions/shared/ledger/grants";
import { lambdaRole, readScenesStatements, rendersBucketStatements, writeLogsStatement } from "./iam";

export interface RendererArgs {
    imageUri: pulumi.Input<string>;
    memoryMb: number;
    timeoutSeconds: number;
    ephemeralStorageMb: number;
    maxConcurrency: number;
    maxReceiveCount: number;
    failureBackoffSeconds: number;
    /** The job API's limits, enforced again by Blender on what each frame actually renders. */
    maxResolution: number;
    allowedEngines: Engine[];
    logRetentionDays: number;
    scenesBucket: aws.s3.Bucket;
    rendersBucket: aws.s3.Bucket;
    frameQueue: aws.sqs.Queue;
}

export class Renderer extends pulumi.ComponentResource {
    public readonly function: aws.lambda.Function;
    public readonly eventSourceMapping: aws.lambda.EventSourceMapping;

    constructor(name: string, args: RendererArgs, opts?: pulumi.ComponentResourceOptions) {
        super("render-farm:index:Renderer", name, {}, opts);
        const logGroup = new aws.cloudwatch.LogGroup(
            `${name}-logs`,
            { retentionInDays: args.logRetentionDays },
            { parent: this },
        );
        const { role, policy } = lambdaRole(
            name,
            [
                ...readScenesStatements(args.scenesBucket),
                ...rendersBucketStatements(args.rendersBucket, RENDERS_BUCKET_GRANTS.renderer),
                {
                    Sid: "ConsumeFrames",
                    Effect: "Allow",
                    Action: [
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                        "sqs:GetQueueAttributes",
                    ],
                    Resource: args.frameQueue.arn,
                },
                writeLogsStatement(logGroup),
            ],
            this,
        );

        this.function = new aws.lambda.Function(
            `${name}-function`,
            {
                packageType: "Image",
                imageUri: args.imageUri,
                architectures: ["x86_64"],
                memorySize: args.memoryMb,
                timeout: args.timeoutSeconds,
                ephemeralStorage: { size: args.ephemeralStorageMb },
                role: role.arn,
                loggingConfig: { logFormat: "Text", logGroup: logGroup.name },
                environment: {
                    variables: rendererEnvironment({
                        scenesBucket: args.scenesBucket.bucket,
                        rendersBucket: args.rendersBucket.bucket,
                        frameQueueUrl: args.frameQueue.url,
                        maxReceiveCount: args.maxReceiveCount,
                        failureBackoffSeconds: args.failureBackoffSeconds,
                        maxResolution: args.maxResolution,
                        allowedEngines: args.allowedEngines,
                    }),
                },
            },
            { parent: this, dependsOn: [policy] },
        );

        this.eventSourceMapping = new aws.lambda.EventSourceMapping(
            `${name}-frames`,
            {
                eventSourceArn: args.frameQueue.arn,
                functionName: this.function.arn,
                batchSize: 1,
                functionResponseTypes: ["ReportBatchItemFailures"],
                scalingConfig: { maximumConcurrency: args.maxConcurrency },
            },
            { parent: this },
        );

        this.registerOutputs({ functionName: this.function.name });
    }
}
