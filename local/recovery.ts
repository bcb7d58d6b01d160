// What a local farm does on start, before any worker runs, so a crash (SIGKILL, power cut) loses no frame:
// 1. Every frame message in flight belongs to the previous run: this data dir is locked to us and nothing has
//    received from the new emulator yet. Make them visible now rather than after the visibility timeout.
// 2. Requeue the frames of every job that are neither rendered (the ledger) nor queued (the emulator can peek,
//    unlike SQS): a crash between writing a job's manifest and queueing all of its frames leaves such frames. The
//    job's queue progress is then complete: nothing is left for a resubmit or a retry to carry on.
import { ChangeMessageVisibilityCommand, SQSClient } from "@aws-sdk/client-sqs";
import { S3Client } from "@aws-sdk/client-s3";
import { frameMessagesOf, parseFrameMessage } from "../functions/shared/contract/frameMessage";
import { sendFrameMessages } from "../functions/jobApi/frameQueueing";
import { describeAwsError } from "../functions/shared/awsErrors";
import { jobLedger } from "../functions/shared/ledger";
import { Emulator, FarmResources } from "./emulator";

export interface RecoveryReport {
    /** Messages the previous run had received and not finished. */
    released: number;
    /** Frames requeued, by job. */
    requeued: { jobId: string; frames: number[] }[];
}

export interface RecoveryDeps {
    emulator: Pick<Emulator, "inspectQueue">;
    s3: S3Client;
    sqs: SQSClient;
    resources: FarmResources;
    maxReceiveCount: number;
}

export async function recoverInterruptedFrames(deps: RecoveryDeps): Promise<RecoveryReport> {
    const { resources } = deps;
    const ledger = jobLedger(deps.s3, resources.rendersBucket);
    const contents = deps.emulator.inspectQueue(resources.frameQueueUrl);
    if (!contents) throw new Error(`the frame queue ${resources.frameQueueUrl} is missing from the emulator`);

    let released = 0;
    for (const { receiptHandle } of contents.inFlight) {
        try {
            await deps.sqs.send(
                new ChangeMessageVisibilityCommand({
                    QueueUrl: resources.frameQueueUrl,
                    ReceiptHandle: receiptHandle,
                    VisibilityTimeout: 0,
                }),
            );
            released++;
        } catch (error) {
            // Expired or deleted meanwhile: visible or gone either way.
            if (!/ReceiptHandleIsInvalid|MessageNotInflight/.test(describeAwsError(error))) throw error;
        }
    }

    const queued = new Set<string>();
    for (const body of [...contents.waiting, ...contents.inFlight.map((message) => message.body)]) {
        const parsed = parseFrameMessage(body, resources.rendersBucket);
        if (parsed.ok) queued.add(`${parsed.value.jobId}/${parsed.value.frame}`);
    }

    const requeued: RecoveryReport["requeued"] = [];
    for (const jobId of await ledger.listJobIds()) {
        const manifest = (await ledger.openJob(jobId))?.manifest;
        // A stopped job's frames were left unrendered on purpose (cancel, budget, fail-fast).
        if (!manifest || (await ledger.readJobStop(jobId))) continue;
        const summary = await ledger.readSummary(manifest, deps.maxReceiveCount);
        const lost = summary.pendingFrames.filter((frame) => !queued.has(`${jobId}/${frame}`));
        if (lost.length > 0) {
            const result = await sendFrameMessages(
                deps.sqs,
                resources.frameQueueUrl,
                // A tiled frame's every tile: the renderer skips the tiles already done.
                lost.flatMap((frame) => frameMessagesOf(manifest, resources.rendersBucket, frame)),
            );
            if (result.notSent.length > 0) {
                throw new Error(
                    `could not requeue ${result.notSent.length} lost frame(s) of job ${jobId}: ${result.notSent[0].reason}`,
                );
            }
            requeued.push({ jobId, frames: lost });
        }
        // Every frame of the job that is not rendered is queued now. Not a retry that was stopped before marking its
        // frames requeued: those still read failed, and are the next retry's to send.
        const progress = await ledger.readQueueProgress(jobId);
        if (progress && !progress.dispatch.complete && progress.dispatch.marked) {
            const { lease: _lease, ...rest } = progress.dispatch;
            await ledger.writeQueueProgress(
                {
                    ...rest,
                    sent: rest.count,
                    complete: true,
                    messagesSent: rest.messagesSent + lost.length,
                    updatedAt: new Date().toISOString(),
                },
                progress.etag,
            );
        }
    }
    return { released, requeued };
}
