// The S3 ledger: the job manifest, one record per frame, and the job status computed from them.
// Plain functions taking their client and bucket as arguments: the job API is serialized by Pulumi's
// closure serializer, and the renderer and the local farm pass their own clients.
import { ListObjectsV2Command, ListObjectsV2CommandOutput, S3Client } from "@aws-sdk/client-s3";
import { storageError } from "./awsErrors";
import { mapWithConcurrency } from "./concurrency";
import { farmError } from "./errors";
import {
    FrameRecord,
    frameRecordKey,
    frameRecordsPrefix,
    FrameStatus,
    JobManifest,
    JobStatus,
    manifestKey,
    tileRecordKey,
} from "./contract";
import { shardsFromRecords, summarizeJob, summarizeRecord } from "./frameSummary";
import { conflictBackoff, getJsonObject, putJsonObject, WriteCondition } from "./jsonObjects";
import { failureOf, jobStatusOf } from "./jobStatus";

/** GetObject calls in flight at once when reading a job's frame records. */
export const RECORD_READ_CONCURRENCY = 32;

/** The parsed JSON at `key`, or undefined when there is no such object. */
async function getJson(s3: S3Client, bucket: string, key: string): Promise<unknown> {
    return (await getJsonObject(s3, bucket, key))?.value;
}

// ---- the manifest ---------------------------------------------------------------------------

/** A manifest as read, with the ETag a conditional write of its next version names. */
export interface StoredManifest {
    manifest: JobManifest;
    etag: string;
}

/**
 * Writes jobs/<jobId>/job.json. With ifAbsent, answers "exists" instead of overwriting another writer's manifest; with
 * ifMatch, answers "exists" when another writer replaced the version with that ETag.
 */
export async function writeManifest(
    s3: S3Client,
    rendersBucket: string,
    manifest: JobManifest,
    options: { ifAbsent?: boolean; ifMatch?: string } = {},
): Promise<"written" | "exists"> {
    let condition: WriteCondition | undefined;
    if (options.ifMatch !== undefined) condition = { ifMatch: options.ifMatch };
    else if (options.ifAbsent) condition = { ifAbsent: true };
    const outcome = await putJsonObject(s3, rendersBucket, manifestKey(manifest.jobId), manifest, condition);
    return outcome.written ? "written" : "exists";
}

/** The job's manifest, or undefined for an unknown job (forbiddenMeansAbsent: see getJsonObject). */
export async function readManifest(
    s3: S3Client,
    rendersBucket: string,
    jobId: string,
    options: { forbiddenMeansAbsent?: boolean } = {},
): Promise<JobManifest | undefined> {
    return (await readStoredManifest(s3, rendersBucket, jobId, options))?.manifest;
}

/** The job's manifest and its ETag, or undefined for an unknown job. */
export async function readStoredManifest(
    s3: S3Client,
    rendersBucket: string,
    jobId: string,
    options: { forbiddenMeansAbsent?: boolean } = {},
): Promise<StoredManifest | undefined> {
    const stored = await getJsonObject(s3, rendersBucket, manifestKey(jobId), options);
    if (stored === undefined) return undefined;
    const manifest = stored.value as JobManifest;
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
    return { manifest, etag: stored.etag };
}

// ---- frame records --------------------------------------------------------------------------

const FRAME_STATUSES: readonly FrameStatus[] = ["done", "retrying", "failed"];

/** Conditional writes of a failure record that meet another writer before it gives up (each one a fresh read). */
const FAILURE_WRITE_ATTEMPTS = 8;

/**
 * Writes jobs/<jobId>/frames/<frame>.json; a duplicate delivery rewrites the same key. The frame's summary shard is
 * updated first: a writer killed in between leaves a record missing (its message comes back and writes it), never a
 * record the summary does not count. Done is final: a failure is written only over a record that is not done (see
 * putUnlessDone). Answers the record that stands: `record`, or the done record a failure met.
 */
export async function writeFrameRecord(s3: S3Client, rendersBucket: string, record: FrameRecord): Promise<FrameRecord> {
    await summarizeRecord(s3, rendersBucket, record);
    const key = frameRecordKey(record.jobId, record.frame);
    if (record.status === "done") {
        await putJsonObject(s3, rendersBucket, key, record);
        return record;
    }
    return (await putUnlessDone(s3, rendersBucket, key, record)) ?? record;
}

/**
 * Writes a tile's record (jobs/<jobId>/tiles/<frame>/<tile>.json) after its frame's summary entry. A failed tile's
 * record is also the frame's record until the frame is stitched: the job's failures show why its frame is not done.
 * A late failure of a duplicate delivery never undoes a done tile, nor a stitched frame: answers the done record it
 * met (the tile's or the frame's), else `record`.
 */
export async function writeTileRecord(s3: S3Client, rendersBucket: string, record: FrameRecord): Promise<FrameRecord> {
    const tile = record.tile;
    if (!tile) throw new Error(`frame ${record.frame}'s record is not a tile's`);
    await summarizeRecord(s3, rendersBucket, record);
    const tileKey = tileRecordKey(record.jobId, record.frame, tile.index);
    if (record.status === "done") {
        await putJsonObject(s3, rendersBucket, tileKey, record);
        return record;
    }
    const doneTile = await putUnlessDone(s3, rendersBucket, tileKey, record);
    if (doneTile) return doneTile;
    const frameKey = frameRecordKey(record.jobId, record.frame);
    return (await putUnlessDone(s3, rendersBucket, frameKey, record)) ?? record;
}

/**
 * Writes a failure record at `key` unless a done record is there, or answers that done record. The write replaces
 * only the version just read (If-Match), or creates the key only if it is still absent (If-None-Match), so a done
 * record written in between makes it fail, and the next read finds the done one. A 403 on the read counts as absent
 * (the renderer may not list the ledger): the create then fails if the key does exist.
 */
async function putUnlessDone(
    s3: S3Client,
    rendersBucket: string,
    key: string,
    record: FrameRecord,
): Promise<FrameRecord | undefined> {
    for (let attempt = 0; attempt < FAILURE_WRITE_ATTEMPTS; attempt++) {
        if (attempt > 0) await conflictBackoff(attempt);
        const stored = await getJsonObject(s3, rendersBucket, key, { forbiddenMeansAbsent: true });
        const before = stored && asFrameRecord(stored.value, record.jobId, record.frame);
        if (before?.status === "done") return before;
        const condition: WriteCondition = stored ? { ifMatch: stored.etag } : { ifAbsent: true };
        if ((await putJsonObject(s3, rendersBucket, key, record, condition)).written) return undefined;
    }
    throw farmError(
        "storage_error",
        `PutObject s3://${rendersBucket}/${key} failed: ${FAILURE_WRITE_ATTEMPTS} conditional writes in a row met another writer (or GetObject is refused on the record)`,
        503,
    );
}

/** The record of one tile, or undefined when none was written (or it is not that tile's). */
export async function readTileRecord(
    s3: S3Client,
    rendersBucket: string,
    jobId: string,
    frame: number,
    tile: number,
): Promise<FrameRecord | undefined> {
    const record = asFrameRecord(await getJson(s3, rendersBucket, tileRecordKey(jobId, frame, tile)), jobId, frame);
    return record?.tile?.index === tile ? record : undefined;
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

function asFrameRecord(value: unknown, jobId: string, frame: number): FrameRecord | undefined {
    if (typeof value !== "object" || value === null) return undefined;
    const record = value as FrameRecord;
    if (record.frame !== frame || !FRAME_STATUSES.includes(record.status)) return undefined;
    // Records are written by our own renderer; the job id in the key is the one that counts.
    return record.jobId === jobId ? record : { ...record, jobId };
}

/** Every key under `prefix` in the renders bucket, from a paginated ListObjectsV2. */
export async function listLedgerKeys(s3: S3Client, rendersBucket: string, prefix: string): Promise<string[]> {
    const keys: string[] = [];
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
        for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys;
}

/** Frame numbers that have a record, from a listing of jobs/<jobId>/frames/. */
export async function listFrameRecordFrames(s3: S3Client, rendersBucket: string, jobId: string): Promise<number[]> {
    const prefix = frameRecordsPrefix(jobId);
    const frames: number[] = [];
    for (const key of await listLedgerKeys(s3, rendersBucket, prefix)) {
        const match = /^(\d+)\.json$/.exec(key.slice(prefix.length));
        if (match) frames.push(Number(match[1]));
    }
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

// ---- the job status from every record (jobs from before the frame summary; the status benchmark's baseline) ----

/** The job's status from all its records, every failure included: O(frames) reads, unlike the summary's shards. */
export function computeJobStatus(
    manifest: JobManifest,
    records: readonly FrameRecord[],
    maxReceiveCount?: number,
): JobStatus {
    const summary = summarizeJob(manifest, shardsFromRecords(manifest.jobId, records), maxReceiveCount);
    const latest = new Map<number, FrameRecord>();
    for (const record of records) {
        const previous = latest.get(record.frame);
        if (!previous || (record.finishedAt ?? "") >= (previous.finishedAt ?? "")) latest.set(record.frame, record);
    }
    const failures = summary.failedFrames.map((frame) =>
        failureOf(frame, summary.entries.get(frame), latest.get(frame)),
    );
    return jobStatusOf(manifest, summary, { failures });
}
