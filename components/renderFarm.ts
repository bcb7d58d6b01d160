// The whole farm: storage, the frame queue, the renderer image and function, and the job API.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { StackOutputName } from "../functions/shared/contract";
import { FarmConfig } from "../config";
import { FrameQueue } from "./frameQueue";
import { JobApi } from "./jobApi";
import { Renderer } from "./renderer";
import { RendererImage } from "./rendererImage";
import { Storage } from "./storage";

export class RenderFarm extends pulumi.ComponentResource {
    /** The stack outputs (functions/shared/contract/stackOutputs.ts names them): index.ts exports exactly these. */
    public readonly outputs: Record<StackOutputName, pulumi.Output<string>>;

    constructor(name: string, config: FarmConfig, opts?: pulumi.ComponentResourceOptions) {
        super("render-farm:index:RenderFarm", name, {}, opts);
        const storage = new Storage(
            `${name}-storage`,
            {
                forceDestroy: config.forceDestroy,
                renderRetentionDays: config.renderRetentionDays,
            },
            { parent: this },
        );
        const frames = new FrameQueue(
            `${name}-frames`,
            {
                rendererTimeoutSeconds: config.rendererTimeoutSeconds,
                maxReceiveCount: config.maxReceiveCount,
            },
            { parent: this },
        );
        const image = new RendererImage(
            `${name}-image`,
            {
                blenderVersion: config.blenderVersion,
                imagesToKeep: config.imagesToKeep,
            },
            { parent: this },
        );
        const renderer = new Renderer(
            `${name}-renderer`,
            {
                imageUri: image.imageUri,
                memoryMb: config.rendererMemoryMb,
                timeoutSeconds: config.rendererTimeoutSeconds,
                ephemeralStorageMb: config.rendererEphemeralStorageMb,
                maxConcurrency: config.maxConcurrency,
                maxReceiveCount: config.maxReceiveCount,
                failureBackoffSeconds: config.failureBackoffSeconds,
                maxResolution: config.maxResolution,
                allowedEngines: config.allowedEngines,
                logRetentionDays: config.logRetentionDays,
                scenesBucket: storage.scenesBucket,
                rendersBucket: storage.rendersBucket,
                frameQueue: frames.queue,
            },
            { parent: this },
        );
        const jobApi = new JobApi(
            `${name}-api`,
            {
                scenesBucket: storage.scenesBucket,
                rendersBucket: storage.rendersBucket,
                frameQueue: frames.queue,
                deadLetterQueue: frames.deadLetterQueue,
                maxFramesPerJob: config.maxFramesPerJob,
                maxResolution: config.maxResolution,
                allowedEngines: config.allowedEngines,
                maxReceiveCount: config.maxReceiveCount,
                rendererTimeoutSeconds: config.rendererTimeoutSeconds,
                failureBackoffSeconds: config.failureBackoffSeconds,
                maxConcurrency: config.maxConcurrency,
                preflight: config.preflight,
                rendererEphemeralStorageMb: config.rendererEphemeralStorageMb,
                apiAuth: config.apiAuth,
                apiRateLimit: config.apiRateLimit,
                apiBurstLimit: config.apiBurstLimit,
                logRetentionDays: config.logRetentionDays,
            },
            { parent: this },
        );

        this.outputs = {
            apiUrl: jobApi.url,
            scenesBucket: storage.scenesBucket.bucket,
            rendersBucket: storage.rendersBucket.bucket,
            frameQueueUrl: frames.queue.url,
            deadLetterQueueUrl: frames.deadLetterQueue.url,
            rendererFunctionName: renderer.function.name,
            jobApiFunctionName: jobApi.function.name,
            imageUri: image.imageUri,
            region: aws.getRegionOutput({}, { parent: this }).region,
        };
        this.registerOutputs(this.outputs);
    }
}
