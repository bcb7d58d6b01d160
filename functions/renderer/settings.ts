// The renderer's settings, read once per cold start from its environment (the stack's variables, and Lambda's
// own AWS_LAMBDA_FUNCTION_MEMORY_SIZE), or given by the local farm.
import * as os from "os";
import * as path from "path";
import { ENVIRONMENT, Environment, requiredVariables, TUNABLES, wholeNumberVariable } from "../shared/farmSettings";

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
    /** Used when no Lambda context says how long is left (the local farm). */
    defaultTimeoutMs: number;
    /**
     * Cut a started frame's visibility to what the invocation has left (frameVisibility.ts). Default on; off on the
     * local farm, whose worker pool keeps the frame it renders hidden with a heartbeat instead (local/workers.ts).
     */
    holdFrameVisibility?: boolean;
}

export function rendererSettingsFromEnvironment(env: Environment): RendererSettings {
    const names = ENVIRONMENT;
    const where = requiredVariables(
        env,
        { scenesBucket: names.scenesBucket, rendersBucket: names.rendersBucket, frameQueueUrl: names.frameQueueUrl },
        "the renderer",
    );
    const anyCount = { min: 1, max: 1024 };
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
        // Set by Lambda itself.
        memoryMb: wholeNumberVariable(
            env,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            { min: 128, max: 10240 },
            TUNABLES.rendererMemory.defaultValue,
        ),
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
    };
}
