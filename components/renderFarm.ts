// The whole farm: storage, the frame queue, the renderer image and function, and the job API.
import * as pulumi from "@pulumi/pulumi";
import { FarmConfig } from "../config";
import { FrameQueue } from "./frameQueue";
import { JobApi } from "./jobApi";
import { Renderer } from "./renderer";
import { RendererImage } from "./rendererImage";
import { Storage } from "./storage";

export class RenderFarm extends pulumi.ComponentResource {
    public readonly apiUrl: pulumi.Output<string>;
    public readonly scenesBucket: pulumi.Output<string>;
    public readonly rendersBucket: pulumi.Output<string>;
    public readonly frameQueueUrl: pulumi.Output<string>;
    public readonly deadLetterQueueUrl: pulumi.Output<string>;
    public readonly rendererFunctionName: pulumi.Output<string>;
    public readonly jobApiFunctionName: pulumi.Output<string>;
    public readonly imageUri: pulumi.Output<string>;

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
                maxFramesPerJob: config.maxFramesPerJob,
                maxResolution: config.maxResolution,
                allowedEngines: config.allowedEngines,
                maxReceiveCount: config.maxReceiveCount,
                preflight: config.preflight,
                apiAuth: config.apiAuth,
                apiRateLimit: config.apiRateLimit,
                apiBurstLimit: config.apiBurstLimit,
                logRetentionDays: config.logRetentionDays,
            },
            { parent: this },
        );

        this.apiUrl = jobApi.url;
        this.scenesBucket = storage.scenesBucket.bucket;
        this.rendersBucket = storage.rendersBucket.bucket;
        this.frameQueueUrl = frames.queue.url;
        this.deadLetterQueueUrl = frames.deadLetterQueue.url;
        this.rendererFunctionName = renderer.function.name;
        this.jobApiFunctionName = jobApi.function.name;
        this.imageUri = image.imageUri;
        this.registerOutputs({
            apiUrl: this.apiUrl,
            scenesBucket: this.scenesBucket,
            rendersBucket: this.rendersBucket,
            frameQueueUrl: this.frameQueueUrl,
            deadLetterQueueUrl: this.deadLetterQueueUrl,
            rendererFunctionName: this.rendererFunctionName,
            jobApiFunctionName: this.jobApiFunctionName,
            imageUri: this.imageUri,
        });
    }
}
