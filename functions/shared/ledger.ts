// The S3 ledger: the job manifest, one record per frame, and the job status computed from them.
// Plain functions taking their client and bucket as arguments: the job API is serialized by Pulumi's
// closure serializer, and the renderer and the local farm pass their own clients.
import {
    DeleteObjectCommand,
    GetObjectCommand,
    ListObjectsV2Command,
    ListObjectsV2CommandOutput,
    PutObjectCommand,
    S3Client,
} from "@aws-sdk/client-s3";
import { AwsErrorLike, awsErrorStatus, isNotFound, storageError } from "./awsErrors";
import { mapWithConcurrency } from "./concurrency";
import { farmError } from "./errors";
import {
    FrameRecord,
    frameRecordKey,
    frameRecordsPrefix,
    FrameStatus,
    JobManifest,
    JobState,
    JobStatus,
    manifestKey,
} from "./contract";

/** GetObject calls in flight at once when reading a job's frame records. */
export const RECORD_READ_CONCURRENCY = 32;

// ---- JSON objects ---------------------------------------------------------------------------

async function putJson(
    s3: S3Client,
    bucket: string,
    key: string,
    value: unknown,
    ifAbsent = false,
): Promise<"written" | "exists"> {
    try {
        await s3.send(
            new PutObjectCommand({
                Bucket: bucket,
                Key: key,
                Body: JSON.stringify(value, null, 1),
                ContentType: "application/json",
                // A conditional create: two identical submits racing cannot both think they created the job.
                IfNoneMatch: ifAbsent ? "*" : undefined,
            }),
        );
        return "written";
    } catch (error) {
        const status = awsErrorStatus(error);
        if (ifAbsent && (status === 412 || status === 409)) return "exists";
        throw storageError("PutObject", bucket, key, error);
    }
}

/** The parsed JSON at `key`, or undefined when there is no such object. */
async function getJson(s3: S3Client, bucket: string, key: string): Promise<unknown> {
    let text: string;
    try {
        const reply = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        text = (await reply.Body?.transformToString("utf-8")) ?? "";
    } catch (error) {
        // A missing bucket is a deployment problem, not a missing job: only NoSuchKey means "absent".
        if (isNotFound(error) && (error as AwsErrorLike).name !== "NoSuchBucket") return undefined;
        throw storageError("GetObject", bucket, key, error);
    }
    try {
        return JSON.parse(text);
    } catch {
        throw farmError("invalid_ledger_object", `s3://${bucket}/${key} is not valid JSON`);
    }
}

// ---- the manifest ---------------------------------------------------------------------------

/** Writes jobs/<jobId>/job.json. With ifAbsent, answers "exists" instead of overwriting another writer's manifest. */
export function writeManifest(
    s3: S3Client,
    rendersBucket: string,
    manifest: JobManifest,
    options: { ifAbsent?: boolean } = {},
): Promise<"written" | "exists"> {
    return putJson(s3, rendersBucket, manifestKey(manifest.jobId), manifest, options.ifAbsent ?? false);
}

/** The job's manifest, or undefined for an unknown job. */
export async function readManifest(
    s3: S3Client,
    rendersBucket: string,
    jobId: string,
): Promise<JobManifest | undefined> {
    const value = await getJson(s3, rendersBucket, manifestKey(jobId));
    if (value === undefined) return undefined;
    const manifest = value as JobManifest;
    if (
        typeof manifest !== "object" ||
        manifest === null ||
        manifest.jobId !== jobId ||
        !Array.isArray(manifest.frames)
    ) {
        throw farmError(
            "invalid_ledger_object",
            `s3://${rendersBucket}/${manifestKey(jobId)} is not a job manifest for ${jobId}`,
        );
    }
    return manifest;
}

/** Removes a manifest whose frames could not be queued, so that resubmitting the request starts the job afresh. */
export async function deleteManifest(s3: S3Client, rendersBucket: string, jobId: string): Promise<void> {
    try {
        await s3.send(new DeleteObjectCommand({ Bucket: rendersBucket, Key: manifestKey(jobId) }));
    } catch (error) {
        throw storageError("DeleteObject", rendersBucket, manifestKey(jobId), error);
    }
}

// ---- frame records --------------------------------------------------------------------------

const FRAME_STATUSES: readonly FrameStatus[] = ["done", "retrying", "failed"];

/** Writes jobs/<jobId>/frames/<frame>.json; a duplicate delivery rewrites the same key. */
export async function writeFrameRecord(s3: S3Client, rendersBucket: string, record: FrameRecord): Promise<void> {
    await putJson(s3, rendersBucket, frameRecordKey(record.jobId, record.frame), record);
}

/** The record of one frame, or undefined when none was written (or it is not a record). */
export async function readFrameRecord(
    s3: S3Client,
    rendersBucket: string,
    jobId: string,
    frame: number,
): Promise<FrameRecord | undefined> {
    return asFrameRecord(await getJson(s3, rendersBucket, frameRecordKey(jobId, frame)), jobId, frame);
}

export async function deleteFrameRecord(
    s3: S3Client,
    rendersBucket: string,
    jobId: string,
    frame: number,
): Promise<void> {
    const key = frameRecordKey(jobId, frame);
    try {
        await s3.send(new DeleteObjectCommand({ Bucket: rendersBucket, Key: key }));
    } catch (error) {
        throw storageError("DeleteObject", rendersBucket, key, error);
    }
}

function asFrameRecord(value: unknown, jobId: string, frame: number): FrameRecord | undefined {
    if (typeof value !== "object" || value === null) return undefined;
    const record = value as FrameRecord;
    if (record.frame !== frame || !FRAME_STATUSES.includes(record.status)) return undefined;
    // Records are written by our own renderer; the job id in the key is the one that counts.
    return record.jobId === jobId ? record : { ...record, jobId };
}

/** Frame numbers that have a record, from a paginated ListObjectsV2 of jobs/<jobId>/frames/. */
export async function listFrameRecordFrames(s3: S3Client, rendersBucket: string, jobId: string): Promise<number[]> {
    const prefix = frameRecordsPrefix(jobId);
    const frames: number[] = [];
    let token: string | undefined;
    do {
        let page: ListObjectsV2CommandOutput;
        try {
            page = await s3.send(
                new ListObjectsV2Command({ Bucket: rendersBucket, Prefix: prefix, ContinuationToken: token }),
            );
        } catch (error) {
            throw storageError("ListObjectsV2", rendersBucket, prefix, error);
        }
        for (const object of page.Contents ?? []) {
            const match = /^(\d+)\.json$/.exec(object.Key?.slice(prefix.length) ?? "");
            if (match) frames.push(Number(match[1]));
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return frames.sort((a, b) => a - b);
}

/** Every frame record of a job: one listing, then GetObject with at most `concurrency` in flight. */
export async function readFrameRecords(
    s3: S3Client,
    rendersBucket: string,
    jobId: string,
    concurrency = RECORD_READ_CONCURRENCY,
): Promise<FrameRecord[]> {
    const frames = await listFrameRecordFrames(s3, rendersBucket, jobId);
    const records = await mapWithConcurrency(frames, concurrency, (frame) =>
        readFrameRecord(s3, rendersBucket, jobId, frame),
    );
    return records.filter((record): record is FrameRecord => record !== undefined);
}

// ---- the job status -------------------------------------------------------------------------

/** How a frame counts in a job's status. */
export type FrameProgress = "done" | "failed" | "pending";

/**
 * done: the frame is on S3. failed: no attempts left; a "retrying" record whose attempts reached
 * maxReceiveCount counts too, since SQS moves that message to the DLQ on its next receive.
 * Everything else (no record yet, or retrying) is pending.
 */
export function frameProgress(record: FrameRecord | undefined, maxReceiveCount?: number): FrameProgress {
    if (!record) return "pending";
    if (record.status === "done") return "done";
    if (record.status === "failed") return "failed";
    if (maxReceiveCount !== undefined && record.attempts >= maxReceiveCount) return "failed";
    return "pending";
}

/** One record per frame of the manifest: a frame rewritten many times counts once, a "done" record wins. */
export function latestRecordByFrame(manifest: JobManifest, records: readonly FrameRecord[]): Map<number, FrameRecord> {
    const frames = new Set(manifest.frames);
    const byFrame = new Map<number, FrameRecord>();
    for (const record of records) {
        if (!frames.has(record.frame) || (record.jobId !== undefined && record.jobId !== manifest.jobId)) continue;
        const previous = byFrame.get(record.frame);
        const newer =
            !previous ||
            (previous.status !== "done" &&
                (record.status === "done" || (record.finishedAt ?? "") >= (previous.finishedAt ?? "")));
        if (newer) byFrame.set(record.frame, record);
    }
    return byFrame;
}

function failureText(record: FrameRecord): string {
    if (!record.error) return "the frame failed without an error message";
    return record.error.code ? `${record.error.code}: ${record.error.message}` : record.error.message;
}

export function computeJobStatus(
    manifest: JobManifest,
    records: readonly FrameRecord[],
    maxReceiveCount?: number,
): JobStatus {
    const byFrame = latestRecordByFrame(manifest, records);
    let done = 0;
    let failed = 0;
    let renderSeconds = 0;
    let costUsd = 0;
    let startedAt: string | undefined;
    let updatedAt = manifest.createdAt;
    const failures: JobStatus["failures"] = [];
    for (const record of byFrame.values()) {
        const progress = frameProgress(record, maxReceiveCount);
        if (progress === "done") done++;
        if (progress === "failed") {
            failed++;
            failures.push({
                frame: record.frame,
                attempts: record.attempts,
                error: failureText(record),
                logTail: record.logTail ?? "",
            });
        }
        renderSeconds += record.renderSeconds ?? (Number.isFinite(record.blenderMs) ? record.blenderMs / 1000 : 0);
        costUsd += Number.isFinite(record.costUsd) ? record.costUsd : 0;
        // A record with no attempts was written by a retry request, not by a render.
        if (record.attempts > 0 && record.startedAt && (!startedAt || record.startedAt < startedAt))
            startedAt = record.startedAt;
        const touched = record.finishedAt || record.startedAt;
        if (touched && touched > updatedAt) updatedAt = touched;
    }
    const total = manifest.frames.length;
    const pending = total - done - failed;
    let state: JobState;
    if (pending > 0) state = byFrame.size === 0 ? "queued" : "rendering";
    else if (failed === 0) state = "complete";
    else state = done === 0 ? "failed" : "partial";
    failures.sort((a, b) => a.frame - b.frame);
    return {
        jobId: manifest.jobId,
        state,
        frames: { total, done, failed, pending },
        failures,
        outputPrefix: manifest.outputPrefix,
        startedAt: startedAt ?? manifest.createdAt,
        updatedAt,
        renderSeconds: Math.round(renderSeconds * 1000) / 1000,
        costUsd: Math.round(costUsd * 1e6) / 1e6,
    };
}
