// The renderer handler as one local worker runs it: its own work dir (scene cache) and its own S3/SQS
// clients, which the farm can cut off when it stops, so an abandoned frame writes nothing more.
import * as os from "os";
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { createRendererHandler } from "../functions/renderer/consumer";
import {
    blenderHardLimitMbFor,
    DEFAULT_RENDER_LIMITS,
    MIN_BLENDER_MEMORY_MB,
    RendererSettings,
} from "../functions/renderer/settings";
import { FARM_DEFAULTS } from "../functions/shared/farmSettings";
import { ENVIRONMENT, Environment, wholeNumberVariable } from "../functions/shared/functionEnvironment";
import { RENDERER_CLIENT_RETRY, RENDERER_CLIENT_TIMEOUTS } from "../functions/renderer/handler";
import { EmulatorCredentials, FarmResources } from "./emulator";
import { SqsEventHandler } from "./eventSourcePoller";
import { Consumer } from "./workers";

export interface LocalRenderer extends Consumer {
    handle: SqsEventHandler;
    workDir: string;
    /** Cuts the renderer's clients off and kills its Blender; the frame it was on is left for the caller to release. */
    abandon(): void;
    /** Ends its Blender and closes its clients. */
    close(): Promise<void>;
}

export interface LocalRendererOptions {
    endpoint: string;
    region: string;
    credentials: EmulatorCredentials;
    settings: RendererSettings;
}

export interface LocalRendererSettingsOptions {
    resources: FarmResources;
    maxReceiveCount: number;
    failureBackoffSeconds: number;
    blenderPath: string;
    workDir: string;
    /** Renderers sharing this machine's CPUs (in this process). */
    workers: number;
    /** Longest a frame may render; default the stack's. */
    frameTimeoutSeconds?: number;
}

/**
 * The renderer's settings on a local farm: the stack's. Its frames are costed as the stack's renderer Lambda would bill
 * the same seconds (its default memory), so that a budget (maxCostUsd) works here as it does on AWS.
 */
export function localRendererSettings(options: LocalRendererSettingsOptions): RendererSettings {
    const { resources } = options;
    const shareMb = Math.floor(os.totalmem() / (1024 * 1024) / Math.max(1, options.workers));
    return {
        scenesBucket: resources.scenesBucket,
        rendersBucket: resources.rendersBucket,
        frameQueueUrl: resources.frameQueueUrl,
        maxReceiveCount: options.maxReceiveCount,
        failureBackoffSeconds: options.failureBackoffSeconds,
        memoryMb: FARM_DEFAULTS.rendererMemory,
        blenderPath: options.blenderPath,
        workDir: options.workDir,
        threads: Math.max(1, Math.floor(os.cpus().length / Math.max(1, options.workers))),
        // As the stack's renderer Lambda's default, unless the farm was given its own.
        defaultTimeoutMs: (options.frameTimeoutSeconds ?? FARM_DEFAULTS.rendererTimeout) * 1000,
        // The worker pool's heartbeat owns a rendering frame's visibility (local/workers.ts).
        holdFrameVisibility: false,
        // Each worker's Blender may keep half of its share of this machine's memory between frames.
        blenderMemoryLimitMb: Math.floor(shareMb / 2),
        blenderMemoryHardLimitMb: localBlenderHardLimitMb(shareMb),
        // The local job API's limits (local/farm.ts): every engine, the default resolution limit.
        limits: DEFAULT_RENDER_LIMITS,
    };
}

/**
 * A local Blender's hard memory bound: as the stack's renderer's (its default memory less what the renderer keeps), so
 * a scene that would not fit on AWS fails here alike, or less on a machine whose share per worker is smaller.
 * BLENDER_MEMORY_HARD_LIMIT_MB in the farm's (or worker's) environment sets it, as it does the renderer Lambda's.
 */
export function localBlenderHardLimitMb(shareMb: number, env: Environment = process.env): number {
    const derived = blenderHardLimitMbFor(Math.min(shareMb, FARM_DEFAULTS.rendererMemory));
    const machineMb = Math.floor(os.totalmem() / (1024 * 1024));
    const range = { min: MIN_BLENDER_MEMORY_MB, max: machineMb };
    return wholeNumberVariable(env, ENVIRONMENT.blenderMemoryHardLimitMb, range, derived);
}

export function createLocalRenderer(options: LocalRendererOptions): LocalRenderer {
    const { endpoint, region, credentials } = options;
    // The same retry strategy and timeouts as the renderer Lambda's clients.
    const clientOptions = { endpoint, region, credentials, ...RENDERER_CLIENT_RETRY, ...RENDERER_CLIENT_TIMEOUTS };
    const s3 = new S3Client({ ...clientOptions, forcePathStyle: true });
    const sqs = new SQSClient(clientOptions);
    let abandoned = false;
    let beforeVisibilityChange: ((receiptHandle: string) => Promise<void>) | undefined;
    for (const client of [s3, sqs] as (S3Client | SQSClient)[]) {
        // Without this a frame whose Blender was killed would record a "killed" failure and back its message off.
        (client as S3Client).middlewareStack.add(
            (next) => async (args) => {
                if (abandoned)
                    throw new Error("the local farm stopped this renderer; its frame is rendered again later");
                return next(args);
            },
            { step: "initialize", name: "localFarmAbandon" },
        );
    }
    sqs.middlewareStack.add(
        (next, context) => async (args) => {
            const receiptHandle = (args.input as { ReceiptHandle?: string }).ReceiptHandle;
            if (context.commandName === "ChangeMessageVisibilityCommand" && receiptHandle && beforeVisibilityChange)
                await beforeVisibilityChange(receiptHandle);
            return next(args);
        },
        { step: "initialize", name: "localFarmBeforeVisibilityChange" },
    );
    const handle = createRendererHandler({ s3, sqs, settings: options.settings });
    return {
        handle,
        workDir: options.settings.workDir,
        abandon() {
            abandoned = true;
            handle.blender.kill();
        },
        beforeVisibilityChange(hook) {
            beforeVisibilityChange = hook;
        },
        async close() {
            await handle.close();
            s3.destroy();
            sqs.destroy();
        },
    };
}
