// What the job API answers: a job's status and the replies to submit, retry and cancel.
import type { JobStop, StopState } from "./types";

/**
 * queueing: the frames of a submit (or a retry) are still being sent; a resubmit (or retry) carries on.
 * probed: a job of probe frames only (JobRequest.probe) whose probe frames all ended.
 * cancelled, stopped_budget, stopped_failing: the job was stopped (see JobStop) with frames left that will not render.
 */
export type JobState = "probed" | "queueing" | "queued" | "rendering" | "complete" | "failed" | "partial" | StopState;

export interface FrameFailure {
    frame: number;
    attempts: number;
    error: string;
    logTail: string;
}

/** Where sending a job's frames stands: the latest submit or retry's frames, and how many of them are queued. */
export interface QueueProgress {
    kind: "submit" | "retry";
    /** Frames queued so far (a resubmit or retry re-sends at most the last group of a request that was killed). */
    queued: number;
    total: number;
    complete: boolean;
    /** Incomplete and no request is sending: a resubmit (submit) or a retry carries on where it stopped. */
    stalled: boolean;
}

/** What the farm runs frames with: how long a job may take follows from these (the CLI's wait deadline). */
export interface FarmTiming {
    frameTimeoutSeconds: number;
    maxReceiveCount: number;
    maxConcurrency: number;
    /** A job whose ledger was quiet this long has no frame left in flight: the retry requeues its lost frames. */
    staleAfterSeconds: number;
}

export interface JobStatus {
    jobId: string;
    state: JobState;
    frames: { total: number; done: number; failed: number; pending: number };
    /**
     * The pending frames by why: an attempt failed and SQS delivers it again, a retry requeued it, not started yet; and
     * in a tiled job, tiling: some of its tiles are done and none is failing.
     */
    pendingBy?: { retrying: number; requeued: number; notStarted: number; tiling?: number };
    /**
     * One page of the failed frames, ascending (at most FAILURES_PAGE_SIZE): frames.failed says how many there are, and
     * failuresNext, when present, is the token for `GET /jobs/{jobId}?failures=<token>`, the next page.
     */
    failures: FrameFailure[];
    failuresNext?: string;
    /** The job's queue progress: how far its submit (or retry) got queueing frames. */
    queue?: QueueProgress;
    /** Present when the job was stopped (its state says how): why and when. */
    stop?: Omit<JobStop, "v" | "jobId" | "liftedAt">;
    /** The request's budget, USD, when it has one. */
    maxCostUsd?: number;
    /** A job of probe frames only (an estimate): `frames` of its `of` frames are asked for. */
    probe?: { frames: number; of: number };
    /** A tiled job: each frame is `of` tiles; `done` of the `total` tiles are rendered (a done frame counts all its). */
    tiles?: { of: number; done: number; total: number };
    timing?: FarmTiming;
    outputPrefix: string;
    startedAt: string;
    updatedAt: string;
    renderSeconds: number;
    /** USD spent so far: every attempt of every frame. */
    costUsd: number;
}

/** Failed frames per status reply: each carries up to 4 KB of log, so a page stays far below Lambda's 6 MB reply. */
export const FAILURES_PAGE_SIZE = 50;

/** POST /jobs: 202. */
export interface SubmitReply {
    jobId: string;
    frames: number;
    /** Frames queued so far: less than frames when the request ran out of time (state "queueing"; submit it again). */
    queued: number;
    state: string;
    statusUrl: string;
    /** Files the scene references that were found in the bucket and added to the job's assets (preflight only; absent when none). */
    assetsAdded?: string[];
    /** What the preflight found worth a look but not worth refusing the job for, e.g. absolute paths (absent when none). */
    warnings?: string[];
}

/** POST /jobs/{jobId}/retry: 202. */
export interface RetryReply {
    jobId: string;
    /** Frame messages sent by this retry. */
    requeued: number;
    /** Of those, frames whose record said failed (their messages are in the DLQ). */
    failed: number;
    /** Of those, frames with no record or a stuck "retrying" one, requeued because the job had gone quiet. */
    lost: number;
    /** Pending frames left alone because the farm may still be rendering them. */
    inFlight: number;
    /** Frames of an earlier submit or retry that was cut off, queued by this request (it carries on first). */
    resumed: number;
    /** Frame messages this request sent, resumed ones included. */
    queued: number;
    /** The job's old messages removed from the dead-letter queue; complete: none are left there. */
    deadLetters: { removed: number; complete: boolean };
    state: string;
    statusUrl: string;
    message: string;
}

/** POST /jobs/{jobId}/cancel: 200. */
export interface CancelReply {
    jobId: string;
    state: "cancelled";
    /** When the job was cancelled: the first cancel's time (a cancel again changes nothing). */
    at: string;
    frames: { total: number; done: number; failed: number; pending: number };
    message: string;
    statusUrl: string;
}
