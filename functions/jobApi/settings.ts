// The job API's settings, read once per cold start from its Lambda environment, the clients it is given, and the
// ledger a request works with.
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { FarmTiming } from "../shared/contract/replies";
import { JobLimits } from "../shared/contract/types";
import { JobLedger, jobLedger } from "../shared/ledger";
import {
    ENVIRONMENT,
    Environment,
    enginesVariable,
    FARM_DEFAULTS,
    requiredVariables,
    STALE_AFTER_RANGE,
    stackStaleAfterSeconds,
    switchVariable,
    Tunable,
    TUNABLES,
    wholeNumberVariable,
} from "../shared/farmSettings";

export interface JobApiSettings {
    scenesBucket: string;
    rendersBucket: string;
    frameQueueUrl: string;
    limits: JobLimits;
    maxReceiveCount: number;
    /** A retry removes the job's old messages from this queue, so a later redrive cannot render them again. */
    deadLetterQueueUrl?: string;
    /**
     * A retry requeues frames with no record (or a stuck "retrying" one) only when the frame queue is empty, or when
     * the job's ledger has been quiet this long. @default the stack's at the default settings (stackStaleAfterSeconds)
     */
    staleAfterSeconds?: number;
    /** The renderer's timeout, reported in a job's status. @default TUNABLES.rendererTimeout.defaultValue */
    frameTimeoutSeconds?: number;
    /** Frames rendering at once at most, reported in a job's status. @default TUNABLES.maxConcurrency.defaultValue */
    maxConcurrency?: number;
    /** Frames sent between two writes of the queue progress. @default QUEUE_GROUP_FRAMES */
    queueGroupFrames?: number;
    /**
     * Read every submitted scene before queueing (default on): frame range when the request has none, camera,
     * and every external file it references. Off: the request must name its frames and nothing is read.
     */
    preflight?: boolean;
    /**
     * The renderer's /tmp, MB: a job whose scene and assets cannot fit in it (less room for the frame and Blender's
     * temp files) is refused with 413. @default TUNABLES.rendererEphemeralStorage.defaultValue
     */
    rendererEphemeralStorageMb?: number;
}

export interface JobApiDeps {
    s3: S3Client;
    sqs: SQSClient;
    settings: JobApiSettings;
    /**
     * Called between every two steps that change the ledger or the queues, with the step's name. Tests throw from it
     * to stand for the job API being killed there (see tests/resumableQueueing.test.ts).
     */
    crashPoint?: (step: string) => void;
}

/**
 * What a request works with: the clients and settings the job API was given, and the ledger in their renders bucket.
 * Each route's function (submitJob, getJobStatus, retryJob, cancelJob) builds it once from the deps it is called with.
 */
export interface JobApiContext extends JobApiDeps {
    ledger: JobLedger;
}

/** The context of one request: `deps` and the ledger built from their S3 client and renders bucket. */
export function jobApiContext(deps: JobApiDeps): JobApiContext {
    return { ...deps, ledger: jobLedger(deps.s3, deps.settings.rendersBucket) };
}

/** How long a request may spend queueing when nobody says how long it has (the local farm: no Lambda deadline). */
export const DEFAULT_WORK_MS = 20_000;

/** A test's crash point firing: it stands for the process dying, so nothing may turn it into a reply. */
export function isCrash(error: unknown): boolean {
    return (error as { crashPoint?: unknown } | undefined)?.crashPoint === true;
}

/** The farm timing a job's status reports, with the defaults for what the settings leave out. */
export function farmTimingOf(settings: JobApiSettings): FarmTiming {
    const frameTimeoutSeconds = settings.frameTimeoutSeconds ?? TUNABLES.rendererTimeout.defaultValue;
    return {
        frameTimeoutSeconds,
        maxReceiveCount: settings.maxReceiveCount,
        maxConcurrency: settings.maxConcurrency ?? TUNABLES.maxConcurrency.defaultValue,
        staleAfterSeconds:
            settings.staleAfterSeconds ??
            stackStaleAfterSeconds({
                rendererTimeoutSeconds: frameTimeoutSeconds,
                failureBackoffSeconds: TUNABLES.failureBackoffSeconds.defaultValue,
                maxReceiveCount: settings.maxReceiveCount,
            }),
    };
}

/** The job API's settings from its Lambda environment; throws (at cold start) naming the variable that is wrong. */
export function jobApiSettingsFromEnvironment(env: Environment): JobApiSettings {
    const names = ENVIRONMENT;
    const where = requiredVariables(
        env,
        { scenesBucket: names.scenesBucket, rendersBucket: names.rendersBucket, frameQueueUrl: names.frameQueueUrl },
        "the job API",
    );
    const number = (name: string, tunable: Tunable) => wholeNumberVariable(env, name, tunable, tunable.defaultValue);
    const maxReceiveCount = number(names.maxReceiveCount, TUNABLES.maxReceiveCount);
    const frameTimeoutSeconds = number(names.frameTimeoutSeconds, TUNABLES.rendererTimeout);
    const failureBackoffSeconds = number(names.failureBackoffSeconds, TUNABLES.failureBackoffSeconds);
    const derivedStaleAfter = stackStaleAfterSeconds({
        rendererTimeoutSeconds: frameTimeoutSeconds,
        failureBackoffSeconds,
        maxReceiveCount,
    });
    return {
        ...where,
        ...(env[names.deadLetterQueueUrl] ? { deadLetterQueueUrl: env[names.deadLetterQueueUrl] } : {}),
        limits: {
            maxFrames: number(names.maxFramesPerJob, TUNABLES.maxFramesPerJob),
            maxResolution: number(names.maxResolution, TUNABLES.maxResolution),
            allowedEngines: enginesVariable(env, names.allowedEngines),
        },
        maxReceiveCount,
        staleAfterSeconds: wholeNumberVariable(env, names.staleAfterSeconds, STALE_AFTER_RANGE, derivedStaleAfter),
        frameTimeoutSeconds,
        maxConcurrency: number(names.maxConcurrency, TUNABLES.maxConcurrency),
        preflight: switchVariable(env, names.preflight, FARM_DEFAULTS.preflight),
        rendererEphemeralStorageMb: number(names.rendererEphemeralStorage, TUNABLES.rendererEphemeralStorage),
    };
}
