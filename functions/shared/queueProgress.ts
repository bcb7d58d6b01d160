// The job's queue progress, jobs/<jobId>/queue.json: the frames the latest submit or retry sends, how many of them
// are queued (a count into the ascending list, advanced after each group of messages: one write per group, not per
// frame), and which request is sending them now (a lease). Written only conditionally (If-Match), so two requests
// can never both send the same frames, and a request killed half-way leaves exactly where to carry on.
import { formatFrameSpec, parseFrameSpec } from "./contract/frameSpec";
import { queueProgressKey } from "./contract/ledgerKeys";
import { farmError } from "./errors";
import { interleavedOrder } from "./frameOrder";

export const QUEUE_PROGRESS_VERSION = 1;

export interface QueueLease {
    /** A random id per request. */
    owner: string;
    /** After this the lease is void: the owner was killed, or ran out of time without letting go. */
    until: string;
}

export interface QueueDispatch {
    v: typeof QUEUE_PROGRESS_VERSION;
    jobId: string;
    /** 1 for the submit's, one more for each retry that requeued frames. */
    seq: number;
    kind: "submit" | "retry";
    /** The frames to send, as a frame spec (ascending). */
    frames: string;
    /**
     * interleaved: sent first, last, middle, then by bisection (frameOrder.ts); absent (progress written before that
     * order existed): ascending. `sent` counts into this order.
     */
    order?: "interleaved";
    count: number;
    /** The first `sent` frames of the list are queued. */
    sent: number;
    complete: boolean;
    /** A retry's frames read "requeued" in the frame summary (done before its first message goes out). */
    marked: boolean;
    lease?: QueueLease;
    /** Frame messages sent for the job over all its dispatches, a re-sent group counted twice. */
    messagesSent: number;
    createdAt: string;
    updatedAt: string;
}

export interface StoredDispatch {
    dispatch: QueueDispatch;
    etag: string;
}

/** The dispatch's frames in sending order. */
export function dispatchFrames(dispatch: QueueDispatch): number[] {
    const parsed = parseFrameSpec(dispatch.frames, Number.MAX_SAFE_INTEGER);
    if (!parsed.ok)
        throw farmError("invalid_ledger_object", `${queueProgressKey(dispatch.jobId)}: ${parsed.error.message}`);
    return dispatch.order === "interleaved" ? interleavedOrder(parsed.value) : parsed.value;
}

export function newDispatch(
    jobId: string,
    kind: QueueDispatch["kind"],
    frames: number[],
    previous: QueueDispatch | undefined,
    now: Date,
): QueueDispatch {
    const sorted = [...new Set(frames)].sort((a, b) => a - b);
    return {
        v: QUEUE_PROGRESS_VERSION,
        jobId,
        seq: (previous?.seq ?? 0) + 1,
        kind,
        frames: formatFrameSpec(sorted),
        order: "interleaved",
        count: sorted.length,
        sent: 0,
        complete: sorted.length === 0,
        marked: kind === "submit",
        messagesSent: previous?.messagesSent ?? 0,
        createdAt: now.toISOString(),
        updatedAt: now.toISOString(),
    };
}

/** A submit whose every frame was queued at `at`, in one go: its progress once it is over. */
export function completedSubmit(jobId: string, frames: number[], at: Date): QueueDispatch {
    const dispatch = newDispatch(jobId, "submit", frames, undefined, at);
    return { ...dispatch, sent: dispatch.count, complete: true, messagesSent: dispatch.count };
}

/** Incomplete, and no request holds a live lease on it: someone must carry on. */
export function isStalled(dispatch: QueueDispatch, now: Date): boolean {
    return !dispatch.complete && (!dispatch.lease || Date.parse(dispatch.lease.until) <= now.getTime());
}
