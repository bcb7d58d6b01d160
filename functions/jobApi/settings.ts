// The job API's settings, read once per cold start from its Lambda environment, and the clients it is given.
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import { JobLimits } from "../shared/contract";
import {
    ENVIRONMENT,
    Environment,
    enginesVariable,
    FARM_DEFAULTS,
    requiredVariables,
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
    /**
     * A retry requeues frames with no record (or a stuck "retrying" one) only when the frame queue is
     * empty, or when the job's ledger has been quiet this long. @default TUNABLES.staleAfterSeconds.defaultValue
     */
    staleAfterSeconds?: number;
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
    return {
        ...where,
        limits: {
            maxFrames: number(names.maxFramesPerJob, TUNABLES.maxFramesPerJob),
            maxResolution: number(names.maxResolution, TUNABLES.maxResolution),
            allowedEngines: enginesVariable(env, names.allowedEngines),
        },
        maxReceiveCount: number(names.maxReceiveCount, TUNABLES.maxReceiveCount),
        staleAfterSeconds: number(names.staleAfterSeconds, TUNABLES.staleAfterSeconds),
        preflight: switchVariable(env, names.preflight, FARM_DEFAULTS.preflight),
        rendererEphemeralStorageMb: number(names.rendererEphemeralStorage, TUNABLES.rendererEphemeralStorage),
    };
}
