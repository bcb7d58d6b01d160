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
        // Each component takes the settings its args name (FARM_SETTINGS declares them): the whole config carries them.
        const storage = new Storage(`${name}-storage`, config, { parent: this });
        const frames = new FrameQueue(`${name}-frames`, config, { parent: this });
        const image = new RendererImage(`${name}-image`, config, { parent: this });
        const renderer = new Renderer(
            `${name}-renderer`,
            {
                ...config,
                imageUri: image.imageUri,
                scenesBucket: storage.scenesBucket,
                rendersBucket: storage.rendersBucket,
                frameQueue: frames.queue,
            },
            { parent: this },
        );
        const jobApi = new JobApi(
            `${name}-api`,
            {
                ...config,
                scenesBucket: storage.scenesBucket,
                rendersBucket: storage.rendersBucket,
                frameQueue: frames.queue,
                deadLetterQueue: frames.deadLetterQueue,
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
