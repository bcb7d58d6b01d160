// The renderer's settings, read once per cold start from its environment (the stack's variables, and Lambda's
// own AWS_LAMBDA_FUNCTION_MEMORY_SIZE), or given by the local farm; the clients it is given, and the ledger it works
// with.
import * as os from "os";
import * as path from "path";
import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { MAX_SAMPLES } from "../shared/contract/limits";
import type { JobLedger } from "../shared/ledger";
import {
    enginesVariable,
    ENVIRONMENT,
    Environment,
    FARM_DEFAULTS,
    requiredVariables,
    TUNABLES,
    wholeNumberVariable,
} from "../shared/farmSettings";
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

/** The hard bound on Blender's memory in a renderer of `memoryMb`: all of it but what the renderer keeps. */
export function blenderHardLimitMbFor(memoryMb: number): number {
    return Math.max(64, memoryMb - RENDERER_OWN_MEMORY_MB);
}

/** A renderer's limits when its environment sets none: the stack's defaults and the contract's samples limit. */
export const DEFAULT_RENDER_LIMITS: RenderLimits = {
    allowedEngines: FARM_DEFAULTS.allowedEngines,
    maxResolution: TUNABLES.maxResolution.defaultValue,
    maxSamples: MAX_SAMPLES,
};

export function rendererSettingsFromEnvironment(env: Environment): RendererSettings {
    const names = ENVIRONMENT;
    const where = requiredVariables(
        env,
        { scenesBucket: names.scenesBucket, rendersBucket: names.rendersBucket, frameQueueUrl: names.frameQueueUrl },
        "the renderer",
    );
    const anyCount = { min: 1, max: 1024 };
    const memoryMb = wholeNumberVariable(
        env,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", // set by Lambda itself
        { min: 128, max: 10240 },
        TUNABLES.rendererMemory.defaultValue,
    );
    return {
        ...where,
        maxReceiveCount: wholeNumberVariable(
            env,
            names.maxReceiveCount,
            TUNABLES.maxReceiveCount,
            TUNABLES.maxReceiveCount.defaultValue,
        ),
        failureBackoffSeconds: wholeNumberVariable(
            env,
            names.failureBackoffSeconds,
            TUNABLES.failureBackoffSeconds,
            TUNABLES.failureBackoffSeconds.defaultValue,
        ),
        memoryMb,
        blenderPath: env[names.blenderPath] || "blender",
        workDir: env[names.workDir] || path.join(os.tmpdir(), "render-farm"),
        threads: wholeNumberVariable(env, names.threads, anyCount, os.cpus().length),
        defaultTimeoutMs:
            wholeNumberVariable(
                env,
                names.frameTimeoutSeconds,
                { min: 1, max: 24 * 3600 },
                TUNABLES.rendererTimeout.defaultValue,
            ) * 1000,
        blenderMemoryLimitMb: wholeNumberVariable(
            env,
            names.blenderMemoryLimitMb,
            { min: 64, max: 10240 },
            Math.floor(memoryMb / 2),
        ),
        blenderMemoryHardLimitMb: wholeNumberVariable(
            env,
            names.blenderMemoryHardLimitMb,
            { min: 64, max: memoryMb },
            blenderHardLimitMbFor(memoryMb),
        ),
        limits: {
            allowedEngines: enginesVariable(env, names.allowedEngines),
            maxResolution: wholeNumberVariable(
                env,
                names.maxResolution,
                TUNABLES.maxResolution,
                DEFAULT_RENDER_LIMITS.maxResolution,
            ),
            maxSamples: wholeNumberVariable(env, names.maxSamples, { min: 1, max: MAX_SAMPLES }, MAX_SAMPLES),
        },
    };
}
