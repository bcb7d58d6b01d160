// Queueing a job's frames: one message per frame, SendMessageBatch 10 at a time, batches in parallel,
// entries SQS reports as failed sent again with backoff.
import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import { formatFrameSpec } from "../shared/contract/frameSpec";
import { FrameMessage } from "../shared/contract/types";
import { awsErrorStatus, describeAwsError } from "../shared/awsErrors";
import { mapWithConcurrency } from "../shared/concurrency";

/** SendMessageBatch calls in flight when queueing a job's frames. */
export const SEND_CONCURRENCY = 24;
/** Attempts per batch entry (the SDK retries each call too) before a frame is reported as not queued. */
export const SEND_ATTEMPTS = 6;
/** SQS's limit on a message and on a whole batch at the queue's default MaximumMessageSize. */
export const MAX_MESSAGE_BYTES = 262144;

export interface SendResult {
    /** Messages sent. */
    sent: number;
    /** Frames that never went (a tiled frame when any of its tiles did not), with SQS's last word on each. */
    notSent: { frame: number; reason: string }[];
}

function delay(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Groups messages into SendMessageBatch calls: at most 10 entries and MAX_MESSAGE_BYTES each. */
function packBatches(bodies: { frame: number; body: string }[]): { frame: number; body: string }[][] {
    const batches: { frame: number; body: string }[][] = [];
    let current: { frame: number; body: string }[] = [];
    let bytes = 0;
    for (const entry of bodies) {
        const size = Buffer.byteLength(entry.body, "utf8");
        if (current.length === 10 || (current.length > 0 && bytes + size > MAX_MESSAGE_BYTES)) {
            batches.push(current);
            current = [];
            bytes = 0;
        }
        current.push(entry);
        bytes += size;
    }
    if (current.length > 0) batches.push(current);
    return batches;
}

/** Sends one batch, resending the entries SQS reports as Failed (unless they are the sender's fault) with backoff. */
async function sendBatch(
    sqs: SQSClient,
    queueUrl: string,
    batch: { frame: number; body: string }[],
): Promise<SendResult> {
    let pending = batch;
    let lastReason = new Map<number, string>();
    const notSent: SendResult["notSent"] = [];
    let unsent = 0;
    for (let attempt = 1; attempt <= SEND_ATTEMPTS && pending.length > 0; attempt++) {
        if (attempt > 1) await delay(Math.min(2000, 50 * 2 ** (attempt - 2)) * (0.5 + Math.random()));
        // By position: a tiled frame's messages share its frame number.
        const byId = new Map(pending.map((entry, index) => [`m${index}`, entry]));
        let failed: { Id?: string; SenderFault?: boolean; Code?: string; Message?: string }[];
        try {
            const reply = await sqs.send(
                new SendMessageBatchCommand({
                    QueueUrl: queueUrl,
                    Entries: pending.map((entry, index) => ({ Id: `m${index}`, MessageBody: entry.body })),
                }),
            );
            failed = reply.Failed ?? [];
        } catch (error) {
            const status = awsErrorStatus(error);
            const reason = `SendMessageBatch to ${queueUrl} failed: ${describeAwsError(error)}`;
            lastReason = new Map(pending.map((entry) => [entry.frame, reason]));
            // A 4xx other than throttling will not get better by asking again.
            if (
                status !== undefined &&
                status >= 400 &&
                status < 500 &&
                status !== 429 &&
                !/Throttl|RequestThrottled|OverLimit/i.test(describeAwsError(error))
            )
                break;
            continue;
        }
        const retry: { frame: number; body: string }[] = [];
        lastReason = new Map();
        for (const entry of failed) {
            const original = entry.Id ? byId.get(entry.Id) : undefined;
            if (!original) continue;
            const reason = `${entry.Code ?? "Failed"}: ${entry.Message ?? "no message"}`;
            if (entry.SenderFault) {
                notSent.push({ frame: original.frame, reason });
                unsent++;
            } else {
                retry.push(original);
                lastReason.set(original.frame, reason);
            }
        }
        pending = retry;
    }
    for (const entry of pending)
        notSent.push({ frame: entry.frame, reason: lastReason.get(entry.frame) ?? "not sent" });
    return { sent: batch.length - unsent - pending.length, notSent };
}

/** Queues the frames' messages with SendMessageBatch: 10 per call, SEND_CONCURRENCY calls in flight. */
export async function sendFrameMessages(
    sqs: SQSClient,
    queueUrl: string,
    messages: FrameMessage[],
    concurrency = SEND_CONCURRENCY,
): Promise<SendResult> {
    const batches = packBatches(messages.map((message) => ({ frame: message.frame, body: JSON.stringify(message) })));
    const results = await mapWithConcurrency(batches, concurrency, (batch) => sendBatch(sqs, queueUrl, batch));
    return {
        sent: results.reduce((sum, result) => sum + result.sent, 0),
        // One entry per frame: a tiled frame's messages may fail apart.
        notSent: [
            ...new Map(results.flatMap((result) => result.notSent).map((entry) => [entry.frame, entry])).values(),
        ].sort((a, b) => a.frame - b.frame),
    };
}

export function notSentSummary(result: SendResult, total: number): string {
    const frames = formatFrameSpec(result.notSent.map((entry) => entry.frame));
    return `${result.notSent.length} of ${total} frame messages could not be queued (frames ${frames}): ${result.notSent[0].reason}`;
}
