// A job's status (GET /jobs/{jobId}) from its summary: the state, the counts, the spending, and a page of failures.
import { FarmTiming, FrameFailure, FrameRecord, JobManifest, JobState, JobStatus, JobStop } from "./contract";
import { FrameSummaryEntry, JobSummary, shardsFromRecords, summarizeJob } from "./frameSummary";
import { isStalled, QueueDispatch } from "./queueProgress";

/** Longest log tail and error text a failure carries in a status reply: a page of them stays well under 1 MB. */
export const MAX_LOG_TAIL_CHARS = 4096;
export const MAX_ERROR_CHARS = 2000;

/** A stopped job with frames left reads as its stop (cancelled, stopped_budget, stopped_failing). */
export function jobStateOf(summary: JobSummary, dispatch?: QueueDispatch, stop?: JobStop): JobState {
    if (stop && summary.pending > 0) return stop.state;
    if (dispatch && !dispatch.complete) return "queueing";
    if (summary.pending > 0) return summary.total - summary.pendingBy.notStarted === 0 ? "queued" : "rendering";
    if (summary.failed === 0) return "complete";
    return summary.done === 0 ? "failed" : "partial";
}

/** A job of probe frames only reads "probed" once they all ended (however they ended: their records say). */
function probedStateOf(manifest: JobManifest, state: JobState): JobState {
    return manifest.probe && (state === "complete" || state === "partial" || state === "failed") ? "probed" : state;
}

function failureText(record: FrameRecord): string {
    if (!record.error) return "the frame failed without an error message";
    return record.error.code ? `${record.error.code}: ${record.error.message}` : record.error.message;
}

/** A failed frame as a status reply shows it: from its record, or from its summary entry when the record is missing. */
export function failureOf(
    frame: number,
    entry: FrameSummaryEntry | undefined,
    record: FrameRecord | undefined,
): FrameFailure {
    if (!record)
        return {
            frame,
            attempts: entry?.a ?? 0,
            error: `${entry?.e ?? "failed"}: the frame's record is missing (its last attempt ended before writing it)`,
            logTail: "",
        };
    const error = failureText(record);
    return {
        frame,
        attempts: record.attempts,
        error: error.length > MAX_ERROR_CHARS ? `${error.slice(0, MAX_ERROR_CHARS)}…` : error,
        logTail: (record.logTail ?? "").slice(-MAX_LOG_TAIL_CHARS),
    };
}

export interface StatusExtras {
    failures: FrameFailure[];
    failuresNext?: string;
    dispatch?: QueueDispatch;
    stop?: JobStop;
    timing?: FarmTiming;
    now?: Date;
}

export function jobStatusOf(manifest: JobManifest, summary: JobSummary, extras: StatusExtras): JobStatus {
    const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : undefined);
    const summaryUpdated = iso(summary.updatedAt);
    const status: JobStatus = {
        jobId: manifest.jobId,
        state: probedStateOf(manifest, jobStateOf(summary, extras.dispatch, extras.stop)),
        frames: { total: summary.total, done: summary.done, failed: summary.failed, pending: summary.pending },
        pendingBy: summary.pendingBy,
        failures: extras.failures,
        outputPrefix: manifest.outputPrefix,
        startedAt: iso(summary.startedAt) ?? manifest.createdAt,
        updatedAt: summaryUpdated && summaryUpdated > manifest.createdAt ? summaryUpdated : manifest.createdAt,
        renderSeconds: summary.renderSeconds,
        costUsd: summary.costUsd,
    };
    if (extras.failuresNext) status.failuresNext = extras.failuresNext;
    const { dispatch } = extras;
    if (dispatch)
        status.queue = {
            kind: dispatch.kind,
            queued: dispatch.sent,
            total: dispatch.count,
            complete: dispatch.complete,
            stalled: isStalled(dispatch, extras.now ?? new Date()),
        };
    if (extras.timing) status.timing = extras.timing;
    if (extras.stop) {
        const { v: _v, jobId: _jobId, liftedAt: _liftedAt, ...stop } = extras.stop;
        status.stop = stop;
    }
    if (manifest.request?.maxCostUsd !== undefined) status.maxCostUsd = manifest.request.maxCostUsd;
    if (manifest.probe) status.probe = { frames: manifest.frames.length, of: manifest.probe.jobFrames.length };
    if (manifest.tiles)
        status.tiles = { of: manifest.tiles, done: summary.tilesDone, total: summary.total * manifest.tiles };
    return status;
}

/**
 * The job's status from all its records, every failure included: O(frames) reads, unlike the summary's shards (the
 * status benchmark's baseline).
 */
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
