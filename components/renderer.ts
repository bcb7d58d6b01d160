// The renderer: a container Lambda running Blender, fed one frame at a time by the frame queue.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { FarmSettings, SettingsReadBy } from "../functions/shared/farmSettings";
import { rendererEnvironment } from "../functions/shared/functionEnvironment";
import { lambdaRole, readScenesStatements, writeLogsStatement } from "./iam";

/** The settings that size the function and its mapping, and those its environment carries (FARM_SETTINGS says which). */
export interface RendererArgs
    extends Pick<
        FarmSettings,
        | "rendererMemory"
        | "rendererTimeout"
        | "rendererEphemeralStorage"
        | "maxConcurrency"
        | "logRetentionDays"
        | SettingsReadBy<"renderer">
    > {
    imageUri: pulumi.Input<string>;
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
                // Frames go up in parts (functions/renderer/frameUpload.ts): a failed upload is aborted.
                {
                    Sid: "WriteFrames",
                    Effect: "Allow",
                    Action: ["s3:PutObject", "s3:AbortMultipartUpload"],
                    Resource: pulumi.interpolate`${args.rendersBucket.arn}/renders/*`,
                },
                // Its frame records only: the manifests and anything else under jobs/ are the job API's.
                {
                    Sid: "WriteFrameRecords",
                    Effect: "Allow",
                    Action: ["s3:PutObject"],
                    Resource: pulumi.interpolate`${args.rendersBucket.arn}/jobs/*/frames/*`,
                },
                // Reading its own frame records lets a duplicate delivery see that the frame is already done.
                {
                    Sid: "ReadFrameRecords",
                    Effect: "Allow",
                    Action: ["s3:GetObject"],
                    Resource: pulumi.interpolate`${args.rendersBucket.arn}/jobs/*/frames/*`,
                },
                // A tiled frame's tiles: each tile's record and image, the stitch marker; the stitcher deletes the
                // images (and gives up a marker whose stitch failed) and lists what is done.
                {
                    Sid: "WorkTiles",
                    Effect: "Allow",
                    Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                    Resource: pulumi.interpolate`${args.rendersBucket.arn}/jobs/*/tiles/*`,
                },
                {
                    Sid: "ListTiles",
                    Effect: "Allow",
                    Action: ["s3:ListBucket"],
                    Resource: args.rendersBucket.arn,
                    Condition: { StringLike: { "s3:prefix": "jobs/*/tiles/*" } },
                },
                // Before each frame: the job's stop, and its manifest (budget, fail-fast, the frames its summary covers).
                {
                    Sid: "ReadJobRules",
                    Effect: "Allow",
                    Action: ["s3:GetObject"],
                    Resource: [
                        pulumi.interpolate`${args.rendersBucket.arn}/jobs/*/job.json`,
                        pulumi.interpolate`${args.rendersBucket.arn}/jobs/*/stop.json`,
                    ],
                },
                // It stops a job whose budget is spent or whose frames fail alike.
                {
                    Sid: "StopJobs",
                    Effect: "Allow",
                    Action: ["s3:PutObject"],
                    Resource: pulumi.interpolate`${args.rendersBucket.arn}/jobs/*/stop.json`,
                },
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
                memorySize: args.rendererMemory,
                timeout: args.rendererTimeout,
                ephemeralStorage: { size: args.rendererEphemeralStorage },
                role: role.arn,
                loggingConfig: { logFormat: "Text", logGroup: logGroup.name },
                environment: {
                    variables: rendererEnvironment(
                        {
                            scenesBucket: args.scenesBucket.bucket,
                            rendersBucket: args.rendersBucket.bucket,
                            frameQueueUrl: args.frameQueue.url,
                        },
                        args,
                    ),
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
