// The job API's settings, read once per cold start from its Lambda environment, the clients it is given, and the
// ledger a request works with.
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { FarmTiming } from "../shared/contract/replies";
import { JobLimits } from "../shared/contract/types";
import { FARM_DEFAULTS, SettingsReadBy } from "../shared/farmSettings";
import { STALE_AFTER_RANGE, stackStaleAfterSeconds } from "../shared/farmTiming";
import { JobLedger, jobLedger } from "../shared/ledger";
import {
    ENVIRONMENT,
    Environment,
    resourcesFromEnvironment,
    settingFromEnvironment,
    wholeNumberVariable,
} from "../shared/functionEnvironment";

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
    /** The renderer's timeout, reported in a job's status. @default FARM_DEFAULTS.rendererTimeout */
    frameTimeoutSeconds?: number;
    /** Frames rendering at once at most, reported in a job's status. @default FARM_DEFAULTS.maxConcurrency */
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
     * temp files) is refused with 413. @default FARM_DEFAULTS.rendererEphemeralStorage
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
    const frameTimeoutSeconds = settings.frameTimeoutSeconds ?? FARM_DEFAULTS.rendererTimeout;
    return {
        frameTimeoutSeconds,
        maxReceiveCount: settings.maxReceiveCount,
        maxConcurrency: settings.maxConcurrency ?? FARM_DEFAULTS.maxConcurrency,
        staleAfterSeconds:
            settings.staleAfterSeconds ??
            stackStaleAfterSeconds({
                rendererTimeout: frameTimeoutSeconds,
                failureBackoffSeconds: FARM_DEFAULTS.failureBackoffSeconds,
                maxReceiveCount: settings.maxReceiveCount,
            }),
    };
}

/** The job API's settings from its Lambda environment; throws (at cold start) naming the variable that is wrong. */
export function jobApiSettingsFromEnvironment(env: Environment): JobApiSettings {
    const resources = resourcesFromEnvironment(env, "the job API");
    const setting = <K extends SettingsReadBy<"jobApi">>(key: K) => settingFromEnvironment(env, key);
    const stack = {
        rendererTimeout: setting("rendererTimeout"),
        failureBackoffSeconds: setting("failureBackoffSeconds"),
        maxReceiveCount: setting("maxReceiveCount"),
    };
    const deadLetterQueueUrl = env[ENVIRONMENT.deadLetterQueueUrl];
    return {
        ...resources,
        ...(deadLetterQueueUrl ? { deadLetterQueueUrl } : {}),
        limits: {
            maxFrames: setting("maxFramesPerJob"),
            maxResolution: setting("maxResolution"),
            allowedEngines: setting("allowedEngines"),
        },
        maxReceiveCount: stack.maxReceiveCount,
        staleAfterSeconds: wholeNumberVariable(
            env,
            ENVIRONMENT.staleAfterSeconds,
            STALE_AFTER_RANGE,
            stackStaleAfterSeconds(stack),
        ),
        frameTimeoutSeconds: stack.rendererTimeout,
        maxConcurrency: setting("maxConcurrency"),
        preflight: setting("preflight"),
        rendererEphemeralStorageMb: setting("rendererEphemeralStorage"),
    };
}
