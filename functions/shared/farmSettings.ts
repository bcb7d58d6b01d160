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
    /**
     * Not a stack config key (the job API's environment only): a retry requeues frames with no record, or a stuck
     * "retrying" one, once the job's ledger has been quiet this long (or the frame queue is empty). Longer than a
     * frame's whole life in the queue at the defaults (3 receives of a 15-minute render). @default 3600
     */
    staleAfterSeconds: { min: 1, max: 7 * 24 * 3600, defaultValue: 3600 },
} as const satisfies Record<string, Tunable>;

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
    /** The job API's. */
    maxFramesPerJob: "MAX_FRAMES_PER_JOB",
    maxResolution: "MAX_RESOLUTION",
    allowedEngines: "ALLOWED_ENGINES",
    preflight: "PREFLIGHT",
    staleAfterSeconds: "STALE_AFTER_SECONDS",
    /** The renderer's ephemeral storage, told to the job API, which refuses jobs whose files cannot fit in it. */
    rendererEphemeralStorage: "RENDERER_EPHEMERAL_STORAGE_MB",
    /** The renderer's. */
    failureBackoffSeconds: "FAILURE_BACKOFF_SECONDS",
    blenderPath: "BLENDER_PATH",
    workDir: "RENDER_WORK_DIR",
    threads: "RENDER_THREADS",
    /** How long a frame may take when no Lambda context says how long is left (the local farm). */
    frameTimeoutSeconds: "RENDER_TIMEOUT_SECONDS",
} as const;

/** What the job API's environment carries; T is a string, or a Pulumi Output of one in components/. */
export interface JobApiEnvironmentValues<T> {
    scenesBucket: T;
    rendersBucket: T;
    frameQueueUrl: T;
    maxFramesPerJob: number;
    maxResolution: number;
    allowedEngines: Engine[];
    maxReceiveCount: number;
    preflight: boolean;
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
}

export function rendererEnvironment<T>(values: RendererEnvironmentValues<T>): Record<string, T | string> {
    return {
        [ENVIRONMENT.scenesBucket]: values.scenesBucket,
        [ENVIRONMENT.rendersBucket]: values.rendersBucket,
        [ENVIRONMENT.frameQueueUrl]: values.frameQueueUrl,
        [ENVIRONMENT.maxReceiveCount]: String(values.maxReceiveCount),
        [ENVIRONMENT.failureBackoffSeconds]: String(values.failureBackoffSeconds),
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
