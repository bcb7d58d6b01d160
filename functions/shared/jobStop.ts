// A job's stop, jobs/<jobId>/stop.json (contract.ts: JobStop): written once by whoever stops the job first (a cancel,
// the renderer that finds the budget spent or the job failing), read by renderers before every frame and by a submit
// or retry between groups of frames. A cancel replaces an earlier budget or fail-fast stop; nothing replaces a cancel.
// A retry lifts a budget or fail-fast stop by marking it lifted (a conditional write, like every other change here).
import { S3Client } from "@aws-sdk/client-s3";
import { JobStop, jobStopKey, STOP_STATES } from "./contract";
import { farmError } from "./errors";
import { getJsonObject, putJsonObject } from "./jsonObjects";

export interface StoredStop {
    stop: JobStop;
    etag: string;
}

function asStop(value: unknown, jobId: string, where: string): JobStop {
    const stop = value as JobStop;
    if (
        typeof stop !== "object" ||
        stop === null ||
        stop.jobId !== jobId ||
        !(STOP_STATES as readonly string[]).includes(stop.state)
    )
        throw farmError("invalid_ledger_object", `${where} is not the stop of job ${jobId}`);
    return stop;
}

/** The stop document as stored, lifted or not (stopJob and liftJobStop write over it conditionally). */
async function readStoredStop(s3: S3Client, rendersBucket: string, jobId: string): Promise<StoredStop | undefined> {
    const key = jobStopKey(jobId);
    const stored = await getJsonObject(s3, rendersBucket, key, { forbiddenMeansAbsent: true });
    return stored && { stop: asStop(stored.value, jobId, `s3://${rendersBucket}/${key}`), etag: stored.etag };
}

/**
 * The job's stop, or undefined while it runs (never stopped, or its stop was lifted). A 403 reads as "not stopped":
 * the renderer may not list the renders bucket, so S3 answers 403 for a key that does not exist.
 */
export async function readJobStop(s3: S3Client, rendersBucket: string, jobId: string): Promise<StoredStop | undefined> {
    const stored = await readStoredStop(s3, rendersBucket, jobId);
    return stored?.stop.liftedAt === undefined ? stored : undefined;
}

/**
 * Stops the job with `stop` unless it is stopped already, and answers the stop that holds: `stop`, or the earlier one.
 * A cancel replaces a budget or fail-fast stop (the person's word is last); a cancel is never replaced.
 */
export async function stopJob(s3: S3Client, rendersBucket: string, stop: JobStop): Promise<JobStop> {
    const key = jobStopKey(stop.jobId);
    for (let attempt = 0; attempt < 5; attempt++) {
        const existing = await readStoredStop(s3, rendersBucket, stop.jobId);
        const holds = existing !== undefined && existing.stop.liftedAt === undefined;
        if (holds && (existing.stop.state === "cancelled" || stop.state !== "cancelled")) return existing.stop;
        const outcome = await putJsonObject(
            s3,
            rendersBucket,
            key,
            stop,
            existing ? { ifMatch: existing.etag } : { ifAbsent: true },
        );
        if (outcome.written) return stop;
    }
    throw farmError("storage_error", `PutObject s3://${rendersBucket}/${key}: other writers kept changing it`, 503);
}

/** Lifts a budget or fail-fast stop (a retry does, to render the rest); false when it changed since it was read. */
export async function liftJobStop(s3: S3Client, rendersBucket: string, stored: StoredStop, at: Date): Promise<boolean> {
    const lifted: JobStop = { ...stored.stop, liftedAt: at.toISOString() };
    const key = jobStopKey(stored.stop.jobId);
    return (await putJsonObject(s3, rendersBucket, key, lifted, { ifMatch: stored.etag })).written;
}
