// POST /jobs/{jobId}/retry: carry on an earlier submit or retry that was cut off, requeue the job's failed frames (and
// its lost ones once the job has gone quiet), then remove the job's old messages from the dead-letter queue.
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { apiError } from "../shared/contract/apiErrors";
import { RetryReply } from "../shared/contract/replies";
import { awsErrorStatus, describeAwsError } from "../shared/awsErrors";
import { farmError } from "../shared/errors";
import { jobStateOf } from "../shared/jobStatus";
import { dispatchFrames, newDispatch, StoredDispatch } from "../shared/queueProgress";
import { removeDeadLetters } from "./deadLetters";
import { clearFailedStitches, failedStitchFrames } from "./failedStitches";
import { DispatchOutcome, resumeDispatch, startDispatch } from "./frameDispatch";
import { notSentSummary } from "./frameQueueing";
import { ApiReply, errorReply, sceneChangedError, statusUrlOf, upstreamReply } from "./replies";
import { headObject } from "./scenePreflight";
import { DEFAULT_WORK_MS, farmTimingOf, isCrash, JobApiDeps, jobApiContext } from "./settings";
import { loadManifest } from "./status";

/** True when the frame queue holds nothing at all (visible, in flight or delayed): nothing of any job is still coming. */
async function frameQueueIsEmpty(deps: JobApiDeps): Promise<boolean> {
    const names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ] as const;
    let attributes: Partial<Record<string, string>>;
    try {
        const reply = await deps.sqs.send(
            new GetQueueAttributesCommand({ QueueUrl: deps.settings.frameQueueUrl, AttributeNames: [...names] }),
        );
        attributes = reply.Attributes ?? {};
    } catch (error) {
        throw farmError(
            "queue_error",
            `GetQueueAttributes ${deps.settings.frameQueueUrl} failed: ${describeAwsError(error)}`,
            awsErrorStatus(error),
        );
    }
    return names.every((name) => Number(attributes[name] ?? 0) === 0);
}

function incompleteReply(jobId: string, outcome: DispatchOutcome, partial: Partial<RetryReply>): ApiReply {
    if (outcome.outcome === "queue_error") {
        const { result, stored } = outcome;
        return errorReply(
            apiError(
                503,
                "queue_error",
                `${notSentSummary(result, result.sent + result.notSent.length)}; ${stored.dispatch.sent} of the ${stored.dispatch.count} frames of this ${stored.dispatch.kind} are queued: retry again to queue the rest`,
            ),
        );
    }
    const dispatch = outcome.outcome === "busy" ? outcome.dispatch : outcome.stored.dispatch;
    const why =
        outcome.outcome === "busy"
            ? `another request is queueing the frames of this job's ${dispatch.kind} now`
            : outcome.outcome === "stopped"
              ? `the job was stopped while its frames were being queued: ${outcome.stop.message}`
              : `this request ran out of time with ${dispatch.sent} of the ${dispatch.count} frames of the ${dispatch.kind} queued: retry again to queue the rest`;
    const reply: RetryReply = {
        jobId,
        requeued: 0,
        failed: 0,
        lost: 0,
        inFlight: 0,
        resumed: 0,
        queued: outcome.sentNow,
        deadLetters: { removed: 0, complete: false },
        ...partial,
        state: outcome.outcome === "stopped" ? outcome.stop.state : "queueing",
        statusUrl: statusUrlOf(jobId),
        message: why,
    };
    return { status: 202, body: reply };
}

/**
 * POST /jobs/{jobId}/retry. First carries on a submit or retry of this job that was cut off (its queue progress says
 * where). Then requeues:
 * - every failed frame: its message is in the DLQ, so nothing else will ever render it;
 * - frames with no result yet only once the job has gone quiet: the frame queue is empty, or nothing was written to
 *   the job's ledger for staleAfterSeconds (longer than a frame in flight can stay silent, see staleAfterSecondsFor).
 *   Until then those frames are most likely waiting in the queue or rendering, and requeueing them would render them
 *   twice.
 * The requeued frames read "requeued" in the frame summary before their messages go out (one write per shard), so a
 * second retry right after finds nothing to requeue. Last, the job's old messages are removed from the DLQ.
 * The scene must be the version the job was submitted with: a changed scene is a new job (409 scene_changed).
 */
export async function retryJob(
    deps: JobApiDeps,
    jobId: unknown,
    now: Date = new Date(),
    deadline: number = Date.now() + DEFAULT_WORK_MS,
): Promise<ApiReply> {
    const api = jobApiContext(deps);
    const { ledger, settings } = api;
    const loaded = await loadManifest(api, jobId);
    if (!loaded.ok) return errorReply(loaded.error);
    try {
        const manifest = loaded.value;
        const scene = await headObject(api.s3, manifest.scenesBucket, manifest.request.scene);
        if (scene.missing || scene.etag !== manifest.sceneEtag)
            return errorReply(
                sceneChangedError(
                    manifest,
                    scene.missing ? undefined : scene.etag,
                    scene.missing
                        ? "upload that version again under the same key, then retry"
                        : "the job's frames render the version it was submitted with, so retrying cannot render the new one: submit it as a new job (another jobId, or none)",
                ),
            );

        // A cancelled job stays cancelled, a spent budget stays spent; a job stopped for failing frames runs again.
        const stopped = await ledger.readJobStop(manifest.jobId);
        if (stopped?.stop.state === "cancelled")
            return errorReply(
                apiError(
                    409,
                    "job_cancelled",
                    `job ${manifest.jobId} was cancelled at ${stopped.stop.at}; submit it again as a new job (another jobId, or none) to render its frames`,
                    "jobId",
                ),
            );
        if (stopped?.stop.state === "stopped_budget")
            return errorReply(
                apiError(
                    409,
                    "budget_spent",
                    `${stopped.stop.message}; submit the frames still to render as a new job with a larger maxCostUsd`,
                    "jobId",
                ),
            );
        if (stopped && !(await ledger.liftJobStop(stopped, now)))
            return errorReply(
                apiError(409, "job_stopping", `job ${manifest.jobId} is being stopped right now; retry again`, "jobId"),
            );

        let progress: StoredDispatch | undefined = await ledger.readQueueProgress(manifest.jobId);
        let queued = 0;
        let resumed = 0;
        /** Frames this request queued by carrying on a cut-off submit or retry: not to be requeued below. */
        const justQueued = new Set<number>();
        if (progress && !progress.dispatch.complete) {
            const before = progress.dispatch.sent;
            const outcome = await resumeDispatch(api, manifest, progress, deadline);
            queued += outcome.sentNow;
            if (outcome.outcome !== "complete") return incompleteReply(manifest.jobId, outcome, { queued });
            resumed = outcome.stored.dispatch.count - before;
            for (const frame of dispatchFrames(outcome.stored.dispatch).slice(before)) justQueued.add(frame);
            progress = outcome.stored;
        }

        const summary = await ledger.readSummary(manifest, settings.maxReceiveCount);
        const failed = summary.failedFrames;
        const pending = summary.pendingFrames;
        const { staleAfterSeconds } = farmTimingOf(settings);
        let quiet = false;
        let why = "";
        if (pending.length > 0) {
            const lastWrite = Math.max(
                summary.updatedAt,
                Date.parse(manifest.createdAt) || 0,
                progress ? Date.parse(progress.dispatch.updatedAt) || 0 : 0,
            );
            const idleMs = now.getTime() - lastWrite;
            if (idleMs >= staleAfterSeconds * 1000) {
                quiet = true;
                why = `nothing was written for job ${manifest.jobId} in ${Math.round(idleMs / 1000)} s`;
            } else if (await frameQueueIsEmpty(api)) {
                quiet = true;
                why = "the frame queue is empty";
            }
        }
        // The frames a stop kept from rendering: their messages were deleted, so nothing else will render them.
        if (stopped && pending.length > 0) {
            quiet = true;
            why = `the job was ${stopped.stop.state} (${stopped.stop.code ?? "its frames failed alike"}) and is running again`;
        }
        const lost = quiet ? pending.filter((frame) => !justQueued.has(frame)) : [];
        const requeue = [...failed, ...lost].sort((a, b) => a - b);
        const inFlight = pending.length - lost.length;
        const counts = { requeued: requeue.length, failed: failed.length, lost: lost.length, inFlight, resumed };

        let retrySince: number | undefined;
        const rerendered = failedStitchFrames(summary, requeue);
        if (requeue.length > 0) {
            // Before any message goes out: a failed stitch's tiles are rendered again, not stitched again as they are.
            await clearFailedStitches(api, manifest, rerendered);
            const dispatch = newDispatch(manifest.jobId, "retry", requeue, progress?.dispatch, now);
            retrySince = Date.parse(dispatch.createdAt);
            const outcome = await startDispatch(api, manifest, dispatch, progress?.etag, deadline);
            queued += outcome.sentNow;
            if (outcome.outcome !== "complete") return incompleteReply(manifest.jobId, outcome, { ...counts, queued });
        } else if (progress?.dispatch.kind === "retry") {
            retrySince = Date.parse(progress.dispatch.createdAt);
        }
        // Dead letters queued before the latest retry are obsolete: their frames were queued again since.
        const deadLetters =
            retrySince === undefined
                ? { removed: 0, complete: true }
                : await removeDeadLetters(api, manifest.jobId, retrySince, deadline);
        api.crashPoint?.("dead-letters-removed");

        const parts = [];
        if (resumed > 0) parts.push(`queued ${resumed} frame(s) an earlier request had not queued`);
        parts.push(`requeued ${failed.length} failed frame(s)`);
        if (rerendered.length > 0)
            parts.push(
                `${rerendered.length} requeued frame(s) could not be stitched, so their tiles are rendered again`,
            );
        if (lost.length > 0) parts.push(`requeued ${lost.length} frame(s) that never finished, since ${why}`);
        if (inFlight > 0)
            parts.push(
                `left ${inFlight} pending frame(s) alone: they are still queued or rendering (a retry requeues them once the queue is empty or the job is quiet for ${staleAfterSeconds} s)`,
            );
        if (deadLetters.removed > 0)
            parts.push(`removed ${deadLetters.removed} obsolete message(s) of this job from the dead-letter queue`);
        if (!deadLetters.complete)
            parts.push("the dead-letter queue was not scanned to its end in time: retry again to finish");
        const reply: RetryReply = {
            jobId: manifest.jobId,
            ...counts,
            queued,
            deadLetters,
            state: requeue.length > 0 || resumed > 0 ? "rendering" : jobStateOf(summary, progress?.dispatch),
            statusUrl: statusUrlOf(manifest.jobId),
            message: parts.join("; "),
        };
        return { status: 202, body: reply };
    } catch (error) {
        if (isCrash(error)) throw error;
        return upstreamReply(
            (error as { code?: string }).code === "queue_error" ? "queue_error" : "storage_error",
            error,
        );
    }
}
