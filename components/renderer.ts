// The renderer: a container Lambda running Blender, fed one frame at a time by the frame queue.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { FarmSettings, SettingsReadBy } from "../functions/shared/farmSettings";
import { rendererEnvironment } from "../functions/shared/functionEnvironment";
import { RENDERS_BUCKET_GRANTS } from "../functions/shared/ledger/grants";
import { lambdaRole, readScenesStatements, rendersBucketStatements, writeLogsStatement } from "./iam";

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
