// The farm's tunables, each stated once: its range and default (what `render-farm:<key>` accepts in a stack's
// config, what the functions fall back to, what the local farm uses), and the environment variables through
// which a stack hands them to its functions. Plain constants and functions: the job API ships through Pulumi's
// closure serializer (functions/README.md).
import { ENGINES, Engine } from "./contract";
import { farmError } from "./errors";

/**
 * A whole-number setting: the range a stack's config accepts, and the value when none is set. (Not `default`: Pulumi's
 * closure serializer takes an object with a `default` property for an `import *` result and fails on a number there.)
 */
export interface Tunable {
    min: number;
    max: number;
    defaultValue: number;
}

/** Keyed by the stack config key (`render-farm:<key>`), except where a comment says otherwise. */
export const TUNABLES = {
    /**
     * Renderer memory, MB. 10240 is Lambda's maximum and gives 6 vCPU; below 2048 Blender runs out of memory on
     * ordinary scenes. @default 10240 (2048–10240)
     */
    rendererMemory: { min: 2048, max: 10240, defaultValue: 10240 },
    /** Longest a frame may render, seconds; 900 is Lambda's maximum. @default 900 (60–900) */
    rendererTimeout: { min: 60, max: 900, defaultValue: 900 },
    /** The renderer's /tmp for scenes, assets and the frame, MB. @default 10240 (512–10240) */
    rendererEphemeralStorage: { min: 512, max: 10240, defaultValue: 10240 },
    /** Most frames rendering at once; the event source mapping's maximumConcurrency accepts 2–1000. @default 100 */
    maxConcurrency: { min: 2, max: 1000, defaultValue: 100 },
    /** Attempts per frame before SQS moves it to the dead-letter queue. @default 3 (1–10) */
    maxReceiveCount: { min: 1, max: 10, defaultValue: 3 },
    /** Delay before a failed frame's first retry, seconds; doubled per attempt, at most 300 s. @default 10 (0–900) */
    failureBackoffSeconds: { min: 0, max: 900, defaultValue: 10 },
    /** Larger jobs are refused with 413. @default 10000 (1–100000) */
    maxFramesPerJob: { min: 1, max: 100000, defaultValue: 10000 },
    /** Largest rendered width or height in pixels, after the percentage. @default 8192 (16–16384) */
    maxResolution: { min: 16, max: 16384, defaultValue: 8192 },
    /** Frames and job records expire after this many days. @default 30 (1–3650) */
    renderRetentionDays: { min: 1, max: 3650, defaultValue: 30 },
    /** API Gateway's steady request rate per second. @default 20 (1–10000) */
    apiRateLimit: { min: 1, max: 10000, defaultValue: 20 },
    /** API Gateway's burst of requests. @default 50 (1–5000) */
    apiBurstLimit: { min: 1, max: 5000, defaultValue: 50 },
    /** Retention of function and access logs, days; also one of CloudWatch's values (config.ts). @default 14 */
    logRetentionDays: { min: 1, max: 3653, defaultValue: 14 },
    /** Renderer images kept in ECR. @default 5 (1–100) */
    imagesToKeep: { min: 1, max: 100, defaultValue: 5 },
} as const satisfies Record<string, Tunable>;

// ---- what follows from the tunables -------------------------------------------------------------

/** A failed frame's retry delay never exceeds this (the renderer's backoff doubles per attempt up to it). */
export const MAX_FAILURE_BACKOFF_SECONDS = 300;

/** The longest backoff a frame meets: before its last attempt. */
export function maxBackoffSeconds(failureBackoffSeconds: number, maxReceiveCount: number): number {
    return Math.min(failureBackoffSeconds * 2 ** Math.max(0, maxReceiveCount - 2), MAX_FAILURE_BACKOFF_SECONDS);
}

/**
 * The stack's frame queue visibility timeout: AWS advises 6x the function timeout for a queue behind an event source
 * mapping, so a message stays hidden while Lambda retries throttled invocations. A failed frame does not wait this
 * long (the renderer shortens it to the backoff), nor does a started one (the renderer shortens it to what the
 * invocation has left): this is how long a received frame may wait for its invocation.
 */
export function frameVisibilityTimeoutSeconds(rendererTimeoutSeconds: number): number {
    return 6 * rendererTimeoutSeconds;
}

/** Slack for clocks and queue delays on top of the longest silence a frame in flight can keep. */
export const STALE_MARGIN_SECONDS = 10;
/** What STALE_AFTER_SECONDS accepts. */
export const STALE_AFTER_RANGE = { min: 1, max: 7 * 24 * 3600 } as const;

/**
 * How long a job's ledger may stay quiet while a frame of it is still coming: hidden for the queue's whole visibility
 * timeout (received, its invocation throttled or its renderer killed), then rendered for up to the frame timeout, after
 * the longest backoff. A retry requeues frames with no result only after this (or once the frame queue is empty):
 * sooner, the frame's own message could still come back and render it a second time.
 */
export function staleAfterSecondsFor(timing: {
    visibilityTimeoutSeconds: number;
    frameTimeoutSeconds: number;
    failureBackoffSeconds: number;
    maxReceiveCount: number;
}): number {
    return (
        timing.visibilityTimeoutSeconds +
        timing.frameTimeoutSeconds +
        maxBackoffSeconds(timing.failureBackoffSeconds, timing.maxReceiveCount) +
        STALE_MARGIN_SECONDS
    );
}

/** The stale threshold of a stack with these settings (its queue's visibility follows from the renderer timeout). */
export function stackStaleAfterSeconds(settings: {
    rendererTimeoutSeconds: number;
    failureBackoffSeconds: number;
    maxReceiveCount: number;
}): number {
    return staleAfterSecondsFor({
        visibilityTimeoutSeconds: frameVisibilityTimeoutSeconds(settings.rendererTimeoutSeconds),
        frameTimeoutSeconds: settings.rendererTimeoutSeconds,
        failureBackoffSeconds: settings.failureBackoffSeconds,
        maxReceiveCount: settings.maxReceiveCount,
    });
}

/** The settings that are not numbers. */
export const FARM_DEFAULTS = {
    /** The official Blender build baked into the renderer image. */
    blenderVersion: "4.5.0",
    /** The job API reads every scene before queueing it. */
    preflight: true,
    /** Every API request must be SigV4-signed. */
    apiAuth: "iam" as "iam" | "none",
    /** Engines a job may ask for. */
    allowedEngines: [...ENGINES] as Engine[],
} as const;

/** The environment variables a stack sets on its functions (components/) and the functions read. */
export const ENVIRONMENT = {
    scenesBucket: "SCENES_BUCKET",
    rendersBucket: "RENDERS_BUCKET",
    frameQueueUrl: "FRAME_QUEUE_URL",
    maxReceiveCount: "MAX_RECEIVE_COUNT",
    failureBackoffSeconds: "FAILURE_BACKOFF_SECONDS",
    /** Both functions': the job API refuses requests past them, the renderer checks them again in Blender. */
    maxResolution: "MAX_RESOLUTION",
    allowedEngines: "ALLOWED_ENGINES",
    /** The job API's. */
    maxFramesPerJob: "MAX_FRAMES_PER_JOB",
    preflight: "PREFLIGHT",
    /** Derived from the queue's visibility timeout (stackStaleAfterSeconds). */
    staleAfterSeconds: "STALE_AFTER_SECONDS",
    /** A retry removes the job's old messages from it. */
    deadLetterQueueUrl: "DEAD_LETTER_QUEUE_URL",
    maxConcurrency: "MAX_CONCURRENCY",
    /** The renderer's ephemeral storage, told to the job API, which refuses jobs whose files cannot fit in it. */
    rendererEphemeralStorage: "RENDERER_EPHEMERAL_STORAGE_MB",
    /** The renderer's. */
    blenderPath: "BLENDER_PATH",
    workDir: "RENDER_WORK_DIR",
    threads: "RENDER_THREADS",
    /**
     * How long a frame may take: the renderer uses it when no Lambda context says how long is left (the local farm);
     * the job API reports it, for a client to tell how long a job may take.
     */
    frameTimeoutSeconds: "RENDER_TIMEOUT_SECONDS",
    /** Most samples a frame may use (default: the contract's MAX_SAMPLES; no stack setting). */
    maxSamples: "MAX_SAMPLES",
    /** Blender is started afresh after a frame that leaves it using more memory than this (default: half the memory). */
    blenderMemoryLimitMb: "BLENDER_MEMORY_LIMIT_MB",
    /** Blender is killed mid-frame, the frame failing with out_of_memory, past this (default: the memory less 512 MB). */
    blenderMemoryHardLimitMb: "BLENDER_MEMORY_HARD_LIMIT_MB",
} as const;

/** What the job API's environment carries; T is a string, or a Pulumi Output of one in components/. */
export interface JobApiEnvironmentValues<T> {
    scenesBucket: T;
    rendersBucket: T;
    frameQueueUrl: T;
    deadLetterQueueUrl: T;
    maxFramesPerJob: number;
    maxResolution: number;
    allowedEngines: Engine[];
    maxReceiveCount: number;
    preflight: boolean;
    rendererTimeoutSeconds: number;
    failureBackoffSeconds: number;
    maxConcurrency: number;
    rendererEphemeralStorageMb: number;
}

export function jobApiEnvironment<T>(values: JobApiEnvironmentValues<T>): Record<string, T | string> {
    return {
        [ENVIRONMENT.scenesBucket]: values.scenesBucket,
        [ENVIRONMENT.rendersBucket]: values.rendersBucket,
        [ENVIRONMENT.frameQueueUrl]: values.frameQueueUrl,
        [ENVIRONMENT.maxFramesPerJob]: String(values.maxFramesPerJob),
        [ENVIRONMENT.maxResolution]: String(values.maxResolution),
        [ENVIRONMENT.allowedEngines]: values.allowedEngines.join(","),
        [ENVIRONMENT.maxReceiveCount]: String(values.maxReceiveCount),
        [ENVIRONMENT.preflight]: values.preflight ? "on" : "off",
        [ENVIRONMENT.deadLetterQueueUrl]: values.deadLetterQueueUrl,
        [ENVIRONMENT.frameTimeoutSeconds]: String(values.rendererTimeoutSeconds),
        [ENVIRONMENT.failureBackoffSeconds]: String(values.failureBackoffSeconds),
        [ENVIRONMENT.maxConcurrency]: String(values.maxConcurrency),
        [ENVIRONMENT.staleAfterSeconds]: String(stackStaleAfterSeconds(values)),
        [ENVIRONMENT.rendererEphemeralStorage]: String(values.rendererEphemeralStorageMb),
    };
}

/** What the renderer's environment carries from the stack. */
export interface RendererEnvironmentValues<T> {
    scenesBucket: T;
    rendersBucket: T;
    frameQueueUrl: T;
    maxReceiveCount: number;
    failureBackoffSeconds: number;
    maxResolution: number;
    allowedEngines: Engine[];
}

export function rendererEnvironment<T>(values: RendererEnvironmentValues<T>): Record<string, T | string> {
    return {
        [ENVIRONMENT.scenesBucket]: values.scenesBucket,
        [ENVIRONMENT.rendersBucket]: values.rendersBucket,
        [ENVIRONMENT.frameQueueUrl]: values.frameQueueUrl,
        [ENVIRONMENT.maxReceiveCount]: String(values.maxReceiveCount),
        [ENVIRONMENT.failureBackoffSeconds]: String(values.failureBackoffSeconds),
        [ENVIRONMENT.maxResolution]: String(values.maxResolution),
        [ENVIRONMENT.allowedEngines]: values.allowedEngines.join(","),
    };
}

// ---- reading an environment (at a function's cold start) --------------------------------------

export type Environment = Record<string, string | undefined>;

/** The variables' values; throws naming every one that is missing or empty. */
export function requiredVariables<K extends string>(
    env: Environment,
    names: Record<K, string>,
    who: string,
): Record<K, string> {
    const missing = Object.values<string>(names).filter((name) => !env[name]);
    if (missing.length > 0)
        throw farmError("invalid_environment", `${who} needs the environment variable(s) ${missing.join(", ")}`);
    const values = {} as Record<K, string>;
    for (const [key, name] of Object.entries<string>(names)) values[key as K] = env[name] as string;
    return values;
}

/** A whole number within `range` (a tunable's), or `fallback` (its default) when unset. */
export function wholeNumberVariable(
    env: Environment,
    name: string,
    range: { min: number; max: number },
    fallback: number,
): number {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < range.min || value > range.max) {
        throw farmError(
            "invalid_environment",
            `environment variable ${name} must be a whole number from ${range.min} to ${range.max}, got "${raw}"`,
        );
    }
    return value;
}

/** on/true/1/yes or off/false/0/no; `fallback` when unset. */
export function switchVariable(env: Environment, name: string, fallback: boolean): boolean {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback;
    const value = raw.trim().toLowerCase();
    if (["on", "true", "1", "yes"].includes(value)) return true;
    if (["off", "false", "0", "no"].includes(value)) return false;
    throw farmError("invalid_environment", `environment variable ${name} must be on or off, got "${raw}"`);
}

/** A comma-separated list of engines; every engine when unset. */
export function enginesVariable(env: Environment, name: string): Engine[] {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return [...FARM_DEFAULTS.allowedEngines];
    const names = raw
        .split(",")
        .map((engine) => engine.trim().toUpperCase())
        .filter((engine) => engine !== "");
    const unknown = names.filter((engine) => !(ENGINES as readonly string[]).includes(engine));
    if (unknown.length > 0)
        throw farmError(
            "invalid_environment",
            `${name} has unknown engine(s) ${unknown.join(", ")}; known: ${ENGINES.join(", ")}`,
        );
    return [...new Set(names)] as Engine[];
}
