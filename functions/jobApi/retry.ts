// POST /jobs/{jobId}/retry: requeue a job's failed frames, and its lost ones once the job has gone quiet.
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { apiError, FrameRecord, RetryReply } from "../shared/contract";
import { awsErrorStatus, describeAwsError } from "../shared/awsErrors";
import { farmError } from "../shared/errors";
import { mapWithConcurrency } from "../shared/concurrency";
import {
    computeJobStatus,
    deleteFrameRecord,
    frameProgress,
    latestRecordByFrame,
    writeFrameRecord,
} from "../shared/ledger";
import { frameMessageOf, notSentSummary, sendFrameMessages } from "./frameQueueing";
import { HEAD_CONCURRENCY } from "./scenePreflight";
import { ApiReply, errorReply, statusUrlOf, upstreamReply } from "./replies";
import { TUNABLES } from "../shared/farmSettings";
import { JobApiDeps } from "./settings";
import { loadJob } from "./status";

/** True when the frame queue holds nothing at all (visible, in flight or delayed): nothing of any job is still coming. */
async function frameQueueIsEmpty(deps: JobApiDeps): Promise<boolean> {
    const reply = await deps.sqs.send(
        new GetQueueAttributesCommand({
            QueueUrl: deps.settings.frameQueueUrl,
            AttributeNames: [
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        }),
    );
    const attributes = reply.Attributes ?? {};
    return [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ].every((name) => Number(attributes[name as keyof typeof attributes] ?? 0) === 0);
}

/**
 * POST /jobs/{jobId}/retry. Requeues:
 * - every failed frame: its message is in the DLQ, so nothing else will ever render it;
 * - frames with no record, or a "retrying" one, only once the job has gone quiet: the frame queue is
 *   empty, or nothing was written to the job's ledger for staleAfterSeconds. Until then those frames are
 *   most likely waiting in the queue or rendering, and requeueing them would render them twice.
 * Each requeued frame first gets a "retrying" record with 0 attempts (written before its message is
 * sent, so it can never overwrite the renderer's newer record): the job reads as pending again, and a
 * second retry right after this one finds nothing to requeue instead of queueing duplicates.
 */
export async function retryJob(deps: JobApiDeps, jobId: unknown, now: Date = new Date()): Promise<ApiReply> {
    const { settings } = deps;
    const job = await loadJob(deps, jobId);
    if (!job.ok) return errorReply(job.error);
    const { manifest, records } = job.value;
    const status = computeJobStatus(manifest, records, settings.maxReceiveCount);
    const byFrame = latestRecordByFrame(manifest, records);
    const failed: number[] = [];
    const pending: number[] = [];
    for (const frame of manifest.frames) {
        const progress = frameProgress(byFrame.get(frame), settings.maxReceiveCount);
        if (progress === "failed") failed.push(frame);
        else if (progress === "pending") pending.push(frame);
    }

    let quiet = false;
    let why = "";
    if (pending.length > 0) {
        const staleAfterMs = (settings.staleAfterSeconds ?? TUNABLES.staleAfterSeconds.defaultValue) * 1000;
        const idleMs = now.getTime() - Date.parse(status.updatedAt);
        try {
            if (idleMs >= staleAfterMs) {
                quiet = true;
                why = `nothing was written for job ${manifest.jobId} in ${Math.round(idleMs / 1000)} s`;
            } else if (await frameQueueIsEmpty(deps)) {
                quiet = true;
                why = "the frame queue is empty";
            }
        } catch (error) {
            return upstreamReply(
                "queue_error",
                farmError(
                    "queue_error",
                    `GetQueueAttributes ${settings.frameQueueUrl} failed: ${describeAwsError(error)}`,
                    awsErrorStatus(error),
                ),
            );
        }
    }
    const lost = quiet ? pending : [];
    const requeue = [...failed, ...lost].sort((a, b) => a - b);
    const inFlight = pending.length - lost.length;

    const at = now.toISOString();
    const previous = new Map<number, FrameRecord | undefined>();
    try {
        await mapWithConcurrency(requeue, HEAD_CONCURRENCY, async (frame) => {
            const old = byFrame.get(frame);
            previous.set(frame, old);
            const earlier = old
                ? `after ${old.attempts} attempt(s), last: ${old.error ? `${old.error.code}: ${old.error.message}` : old.status}`
                : "with no record";
            const record: FrameRecord = {
                ...(old ?? { startedAt: at, wallMs: 0, blenderMs: 0, memoryMb: 0, costUsd: 0 }),
                jobId: manifest.jobId,
                frame,
                status: "retrying",
                attempts: 0,
                finishedAt: at,
                error: {
                    code: "requeued",
                    message: `requeued by POST /jobs/${manifest.jobId}/retry at ${at} ${earlier}`,
                },
            };
            await writeFrameRecord(deps.s3, settings.rendersBucket, record);
        });
    } catch (error) {
        return upstreamReply("storage_error", error);
    }

    const result = await sendFrameMessages(
        deps.sqs,
        settings.frameQueueUrl,
        requeue.map((frame) => frameMessageOf(manifest, settings.rendersBucket, frame)),
    );
    if (result.notSent.length > 0) {
        // Put back what the ledger said, so those frames read as failed (or missing) and a later retry picks them up.
        await mapWithConcurrency(result.notSent, HEAD_CONCURRENCY, async ({ frame }) => {
            const old = previous.get(frame);
            try {
                if (old) await writeFrameRecord(deps.s3, settings.rendersBucket, old);
                else await deleteFrameRecord(deps.s3, settings.rendersBucket, manifest.jobId, frame);
            } catch {
                // Best effort: the frame then reads as pending until the job goes quiet again.
            }
        });
        return errorReply(
            apiError(
                503,
                "queue_error",
                `${notSentSummary(result, requeue.length)}; ${result.sent} were requeued; retry again later`,
            ),
        );
    }

    const parts = [`requeued ${failed.length} failed frame(s)`];
    if (lost.length > 0) parts.push(`requeued ${lost.length} frame(s) that never finished, since ${why}`);
    if (inFlight > 0)
        parts.push(
            `left ${inFlight} pending frame(s) alone: they are still queued or rendering (a retry requeues them once the queue is empty or the job is quiet for ${settings.staleAfterSeconds ?? TUNABLES.staleAfterSeconds.defaultValue} s)`,
        );
    const reply: RetryReply = {
        jobId: manifest.jobId,
        requeued: requeue.length,
        failed: failed.length,
        lost: lost.length,
        inFlight,
        state: requeue.length > 0 ? "rendering" : status.state,
        statusUrl: statusUrlOf(manifest.jobId),
        message: parts.join("; "),
    };
    return { status: 202, body: reply };
}
