// The job API's settings, read once per cold start from its Lambda environment, and the clients it is given.
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { Engine, ENGINES, JobLimits } from "../shared/contract";

export interface JobApiSettings {
    scenesBucket: string;
    rendersBucket: string;
    frameQueueUrl: string;
    limits: JobLimits;
    maxReceiveCount: number;
    /**
     * A retry requeues frames with no record (or a stuck "retrying" one) only when the frame queue is
     * empty, or when the job's ledger has been quiet this long. Default DEFAULT_STALE_AFTER_SECONDS.
     */
    staleAfterSeconds?: number;
    /**
     * Read every submitted scene before queueing (default on): frame range when the request has none, camera,
     * and every external file it references. Off: the request must name its frames and nothing is read.
     */
    preflight?: boolean;
}

export interface JobApiDeps {
    s3: S3Client;
    sqs: SQSClient;
    settings: JobApiSettings;
}

export const DEFAULT_MAX_FRAMES_PER_JOB = 10000;
export const DEFAULT_MAX_RESOLUTION = 16384;
export const DEFAULT_MAX_RECEIVE_COUNT = 3;
/** Longer than a frame's whole life in the queue at the default settings (3 receives of a 15-minute render). */
export const DEFAULT_STALE_AFTER_SECONDS = 3600;

function positiveInteger(env: Record<string, string | undefined>, name: string, fallback: number): number {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 1)
        throw new Error(`environment variable ${name} must be a whole number >= 1, got "${raw}"`);
    return value;
}

/** PREFLIGHT: on unless set to off/false/0/no. */
function switchValue(env: Record<string, string | undefined>, name: string, fallback: boolean): boolean {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback;
    const value = raw.trim().toLowerCase();
    if (["on", "true", "1", "yes"].includes(value)) return true;
    if (["off", "false", "0", "no"].includes(value)) return false;
    throw new Error(`environment variable ${name} must be on or off, got "${raw}"`);
}

/** The job API's settings from its Lambda environment; throws (at cold start) with the variable that is wrong. */
export function jobApiSettingsFromEnvironment(env: Record<string, string | undefined>): JobApiSettings {
    const missing = ["SCENES_BUCKET", "RENDERS_BUCKET", "FRAME_QUEUE_URL"].filter((name) => !env[name]);
    if (missing.length > 0) throw new Error(`the job API needs environment variable(s) ${missing.join(", ")}`);
    let allowedEngines: Engine[] = [...ENGINES];
    if (env.ALLOWED_ENGINES !== undefined && env.ALLOWED_ENGINES.trim() !== "") {
        const names = env.ALLOWED_ENGINES.split(",")
            .map((name) => name.trim().toUpperCase())
            .filter((name) => name !== "");
        const unknown = names.filter((name) => !(ENGINES as readonly string[]).includes(name));
        if (unknown.length > 0)
            throw new Error(
                `ALLOWED_ENGINES has unknown engine(s) ${unknown.join(", ")}; known: ${ENGINES.join(", ")}`,
            );
        allowedEngines = [...new Set(names)] as Engine[];
    }
    return {
        scenesBucket: env.SCENES_BUCKET!,
        rendersBucket: env.RENDERS_BUCKET!,
        frameQueueUrl: env.FRAME_QUEUE_URL!,
        limits: {
            maxFrames: positiveInteger(env, "MAX_FRAMES_PER_JOB", DEFAULT_MAX_FRAMES_PER_JOB),
            maxResolution: positiveInteger(env, "MAX_RESOLUTION", DEFAULT_MAX_RESOLUTION),
            allowedEngines,
        },
        maxReceiveCount: positiveInteger(env, "MAX_RECEIVE_COUNT", DEFAULT_MAX_RECEIVE_COUNT),
        staleAfterSeconds: positiveInteger(env, "STALE_AFTER_SECONDS", DEFAULT_STALE_AFTER_SECONDS),
        preflight: switchValue(env, "PREFLIGHT", true),
    };
}
