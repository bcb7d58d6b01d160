// The renderer's settings, read once per cold start from its environment (the stack's variables, and Lambda's
// own AWS_LAMBDA_FUNCTION_MEMORY_SIZE), or given by the local farm; the clients it is given, and the ledger it works
// with.
import * as os from "os";
import * as path from "path";
import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { MAX_SAMPLES } from "../shared/contract/limits";
import { FARM_DEFAULTS, FARM_SETTINGS, LOCAL_FRAME_TIMEOUT, SettingsReadBy } from "../shared/farmSettings";
import type { JobLedger } from "../shared/ledger";
import {
    ENVIRONMENT,
    Environment,
    resourcesFromEnvironment,
    settingFromEnvironment,
    settingVariable,
    wholeNumberVariable,
} from "../shared/functionEnvironment";
import { RenderLimits } from "./blender";
import type { FrameUploadTuning } from "./frameUpload";

export interface RendererSettings {
    scenesBucket: string;
    rendersBucket: string;
    frameQueueUrl: string;
    maxReceiveCount: number;
    /** The first retry's delay; each further attempt doubles it. */
    failureBackoffSeconds: number;
    memoryMb: number;
    blenderPath: string;
    workDir: string;
    threads: number;
    /** What a frame may render, whatever the scene or the message says (the job API's limits, checked again in Blender). */
    limits: RenderLimits;
    /** Used when no Lambda context says how long is left (the local farm). */
    defaultTimeoutMs: number;
    /**
     * Soft bound: Blender is started afresh after a frame that leaves it using more memory than this; default: half of
     * memoryMb.
     */
    blenderMemoryLimitMb?: number;
    /**
     * Hard bound: Blender is killed mid-frame once it uses more memory than this, and the frame fails with
     * out_of_memory; default: memoryMb less RENDERER_OWN_MEMORY_MB (blenderHardLimitMbFor).
     */
    blenderMemoryHardLimitMb?: number;
    /**
     * Cut a started frame's visibility to what the invocation has left (frameVisibility.ts). Default on; off on the
     * local farm, whose worker pool keeps the frame it renders hidden with a heartbeat instead (local/workers.ts).
     */
    holdFrameVisibility?: boolean;
}

export interface RendererDeps {
    s3: S3Client;
    sqs: SQSClient;
    settings: RendererSettings;
    /** How frames are streamed to S3; FRAME_UPLOAD_TUNING unless given. */
    frameUpload?: FrameUploadTuning;
}

/** What the renderer works with: the clients and settings it was given, and the ledger in their renders bucket. */
export interface RendererContext extends RendererDeps {
    ledger: JobLedger;
}

/**
 * Memory the renderer keeps for itself out of its Lambda's: Node with the AWS SDK (about 150 MB), a frame's upload
 * (five 8 MiB parts) and the runtime, with room to spare. Blender may use the rest; at the Lambda's own limit the
 * whole runtime would be killed, and the frame would end without a word about why.
 */
export const RENDERER_OWN_MEMORY_MB = 512;

/** The least memory either bound on Blender's may be: less, and it could not load even an empty scene. */
export const MIN_BLENDER_MEMORY_MB = 64;

/** What Lambda itself allows a function's memory to be (AWS_LAMBDA_FUNCTION_MEMORY_SIZE). */
const LAMBDA_MEMORY_RANGE = { min: 128, max: FARM_SETTINGS.rendererMemory.max };

/** The hard bound on Blender's memory in a renderer of `memoryMb`: all of it but what the renderer keeps. */
export function blenderHardLimitMbFor(memoryMb: number): number {
    return Math.max(MIN_BLENDER_MEMORY_MB, memoryMb - RENDERER_OWN_MEMORY_MB);
}

/** A renderer's limits when its environment sets none: the stack's defaults and the contract's samples limit. */
export const DEFAULT_RENDER_LIMITS: RenderLimits = {
    allowedEngines: FARM_DEFAULTS.allowedEngines,
    maxResolution: FARM_DEFAULTS.maxResolution,
    maxSamples: MAX_SAMPLES,
};

export function rendererSettingsFromEnvironment(env: Environment): RendererSettings {
    const resources = resourcesFromEnvironment(env, "the renderer");
    const setting = <K extends SettingsReadBy<"renderer">>(key: K) => settingFromEnvironment(env, key);
    const memoryMb = wholeNumberVariable(
        env,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", // set by Lambda itself
        LAMBDA_MEMORY_RANGE,
        FARM_DEFAULTS.rendererMemory,
    );
    const blenderMemoryRange = (max: number) => ({ min: MIN_BLENDER_MEMORY_MB, max });
    return {
        ...resources,
        maxReceiveCount: setting("maxReceiveCount"),
        failureBackoffSeconds: setting("failureBackoffSeconds"),
        memoryMb,
        blenderPath: env[ENVIRONMENT.blenderPath] || "blender",
        workDir: env[ENVIRONMENT.workDir] || path.join(os.tmpdir(), "render-farm"),
        threads: wholeNumberVariable(env, ENVIRONMENT.threads, { min: 1, max: 1024 }, os.cpus().length),
        // Read only where no Lambda context says how long is left: a stack does not set it on the renderer.
        defaultTimeoutMs:
            wholeNumberVariable(
                env,
                settingVariable("rendererTimeout"),
                LOCAL_FRAME_TIMEOUT,
                LOCAL_FRAME_TIMEOUT.defaultValue,
            ) * 1000,
        blenderMemoryLimitMb: wholeNumberVariable(
            env,
            ENVIRONMENT.blenderMemoryLimitMb,
            blenderMemoryRange(LAMBDA_MEMORY_RANGE.max),
            Math.floor(memoryMb / 2),
        ),
        blenderMemoryHardLimitMb: wholeNumberVariable(
            env,
            ENVIRONMENT.blenderMemoryHardLimitMb,
            blenderMemoryRange(memoryMb),
            blenderHardLimitMbFor(memoryMb),
        ),
        limits: {
            allowedEngines: setting("allowedEngines"),
            maxResolution: setting("maxResolution"),
            maxSamples: wholeNumberVariable(env, ENVIRONMENT.maxSamples, { min: 1, max: MAX_SAMPLES }, MAX_SAMPLES),
        },
    };
}
