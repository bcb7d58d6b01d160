// Sending a dispatch (a submit's or a retry's frames) so that a request killed at any point can be carried on by the
// next one: the frames go out in groups, and after each group the queue progress records how far it got. A request
// holds a lease on the progress while it sends (every write is conditional), so two requests never send the same
// frames at once; a request killed between sending a group and recording it leaves that one group to be sent again
// (SQS has no way to ask whether a message went), which the renderer absorbs: a frame already done is skipped.
import * as crypto from "crypto";
import { frameMessagesOf } from "../shared/contract/frameMessage";
import { JobManifest, JobStop } from "../shared/contract/types";
import { dispatchFrames, isStalled, QueueDispatch, StoredDispatch } from "../shared/queueProgress";
import { SEND_CONCURRENCY, SendResult, sendFrameMessages } from "./frameQueueing";
import { JobApiContext } from "./settings";

/** Frames per group: one round of SendMessageBatch calls in flight; at most this many are sent twice after a kill. */
export const QUEUE_GROUP_FRAMES = SEND_CONCURRENCY * 10;
/** How long a lease outlives its request's deadline: a killed request's dispatch is free again this soon after. */
const LEASE_SLACK_MS = 5_000;

export type DispatchOutcome =
    /** Every frame of the dispatch is queued. */
    | { outcome: "complete"; stored: StoredDispatch; sentNow: number }
    /** The request's time ran out: the progress says where the next request carries on. */
    | { outcome: "paused"; stored: StoredDispatch; sentNow: number }
    /** Another request holds the lease (it is sending these frames now), or took the dispatch over. */
    | { outcome: "busy"; dispatch: QueueDispatch; sentNow: number }
    /** The job was stopped (cancelled, its budget, failing frames): the rest of its frames are not sent. */
    | { outcome: "stopped"; stored: StoredDispatch; sentNow: number; stop: JobStop }
    /** SQS refused some messages even after retries: the progress stops before the first of them. */
    | { outcome: "queue_error"; stored: StoredDispatch; sentNow: number; result: SendResult };

function crash(deps: JobApiContext, step: string): void {
    deps.crashPoint?.(step);
}

function withLease(dispatch: QueueDispatch, owner: string | undefined, deadline: number, now: Date): QueueDispatch {
    const next: QueueDispatch = { ...dispatch, updatedAt: now.toISOString() };
    if (owner) next.lease = { owner, until: new Date(deadline + LEASE_SLACK_MS).toISOString() };
    else delete next.lease;
    return next;
}

/**
 * Creates `dispatch` as the job's queue progress (over `previous`'s version, or where there is none) and sends it.
 * Answers busy, without sending, when another request changed the progress first.
 */
export async function startDispatch(
    deps: JobApiContext,
    manifest: JobManifest,
    dispatch: QueueDispatch,
    previousEtag: string | undefined,
    deadline: number,
): Promise<DispatchOutcome> {
    const owner = crypto.randomUUID();
    const stored = await deps.ledger.writeQueueProgress(withLease(dispatch, owner, deadline, new Date()), previousEtag);
    if (!stored) {
        const current = await deps.ledger.readQueueProgress(manifest.jobId);
        return { outcome: "busy", dispatch: current?.dispatch ?? dispatch, sentNow: 0 };
    }
    crash(deps, `${dispatch.kind}-dispatch-created`);
    return sendDispatch(deps, manifest, stored, owner, deadline);
}

/** Carries on an incomplete dispatch unless another request is sending it now. */
export async function resumeDispatch(
    deps: JobApiContext,
    manifest: JobManifest,
    stored: StoredDispatch,
    deadline: number,
): Promise<DispatchOutcome> {
    if (stored.dispatch.complete) return { outcome: "complete", stored, sentNow: 0 };
    if (!isStalled(stored.dispatch, new Date())) return { outcome: "busy", dispatch: stored.dispatch, sentNow: 0 };
    const owner = crypto.randomUUID();
    const claimed = await deps.ledger.writeQueueProgress(
        withLease(stored.dispatch, owner, deadline, new Date()),
        stored.etag,
    );
    if (!claimed) {
        const current = await deps.ledger.readQueueProgress(manifest.jobId);
        return { outcome: "busy", dispatch: current?.dispatch ?? stored.dispatch, sentNow: 0 };
    }
    crash(deps, `${stored.dispatch.kind}-dispatch-claimed`);
    return sendDispatch(deps, manifest, claimed, owner, deadline);
}

/** Sends the frames the progress has not recorded yet, group by group, while the lease and the time last. */
async function sendDispatch(
    deps: JobApiContext,
    manifest: JobManifest,
    initial: StoredDispatch,
    owner: string,
    deadline: number,
): Promise<DispatchOutcome> {
    const { ledger, settings } = deps;
    let stored = initial;
    let sentNow = 0;
    const save = async (change: Partial<QueueDispatch>, keepLease: boolean): Promise<boolean> => {
        const next = withLease({ ...stored.dispatch, ...change }, keepLease ? owner : undefined, deadline, new Date());
        const written = await ledger.writeQueueProgress(next, stored.etag);
        if (written) stored = written;
        return written !== undefined;
    };
    const busy = async (): Promise<DispatchOutcome> => {
        const current = await ledger.readQueueProgress(manifest.jobId);
        return { outcome: "busy", dispatch: current?.dispatch ?? stored.dispatch, sentNow };
    };

    const frames = dispatchFrames(stored.dispatch);
    if (!stored.dispatch.marked) {
        // Before any message goes out: the frames read pending (not failed) again, and a second retry leaves them be.
        await ledger.summarizeRequeue(manifest.jobId, frames, Date.parse(stored.dispatch.createdAt));
        crash(deps, "retry-frames-marked");
        if (!(await save({ marked: true }, true))) return busy();
        crash(deps, "retry-marks-recorded");
    }

    // A tiled job's frame is `tiles` messages: a group stays about the same number of messages.
    const groupSize = Math.max(
        1,
        Math.floor((settings.queueGroupFrames ?? QUEUE_GROUP_FRAMES) / (manifest.tiles ?? 1)),
    );
    while (stored.dispatch.sent < frames.length) {
        if (Date.now() >= deadline) {
            if (!(await save({}, false))) return busy();
            return { outcome: "paused", stored, sentNow };
        }
        const stopped = await ledger.readJobStop(manifest.jobId);
        if (stopped) {
            if (!(await save({}, false))) return busy();
            return { outcome: "stopped", stored, sentNow, stop: stopped.stop };
        }
        const from = stored.dispatch.sent;
        const group = frames.slice(from, from + groupSize);
        const result = await sendFrameMessages(
            deps.sqs,
            settings.frameQueueUrl,
            group.flatMap((frame) => frameMessagesOf(manifest, settings.rendersBucket, frame)),
        );
        crash(deps, `${stored.dispatch.kind}-group-sent`);
        // The progress counts into the sending order: it stops at the earliest frame of the group that did not go.
        const notSent = new Set(result.notSent.map((entry) => entry.frame));
        const firstNotSent = notSent.size > 0 ? group.findIndex((frame) => notSent.has(frame)) : group.length;
        sentNow += result.sent;
        const recorded = await save(
            { sent: from + firstNotSent, messagesSent: stored.dispatch.messagesSent + result.sent },
            result.notSent.length === 0,
        );
        if (!recorded) return busy();
        crash(deps, `${stored.dispatch.kind}-group-recorded`);
        if (result.notSent.length > 0) return { outcome: "queue_error", stored, sentNow, result };
    }
    if (!(await save({ complete: true }, false))) return busy();
    crash(deps, `${stored.dispatch.kind}-dispatch-complete`);
    return { outcome: "complete", stored, sentNow };
}
