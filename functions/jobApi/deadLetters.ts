// A retry's last step: the job's messages in the dead-letter queue are obsolete once their frames are queued again,
// and would render those frames a second time if someone redrove the DLQ. Receives what the DLQ holds (other jobs'
// messages are left alone: they come back when the receive's visibility ends) and deletes this job's messages that
// were queued before the retry.
import { DeleteMessageBatchCommand, Message, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { parseFrameMessage } from "../shared/contract";
import { describeAwsError } from "../shared/awsErrors";
import { farmError } from "../shared/errors";
import { mapWithConcurrency } from "../shared/concurrency";
import { JobApiDeps } from "./settings";

/** ReceiveMessage loops run at once: a DLQ with 10,000 of a job's messages takes 1,000 receives. */
const RECEIVERS = 8;
/** Long polling asks every SQS server, so an empty answer means nothing visible is left. */
const RECEIVE_WAIT_SECONDS = 1;
/** How long other jobs' messages stay hidden once a scan received them, at most. */
const MAX_HIDE_SECONDS = 60;

export interface DeadLetterCleanup {
    removed: number;
    /** Every receive came back empty before the deadline: none of the job's old messages is left. */
    complete: boolean;
}

/** Deletes the dead letters of `jobId` sent before `sentBefore` (ms), until the DLQ answers empty or time runs out. */
export async function removeDeadLetters(
    deps: JobApiDeps,
    jobId: string,
    sentBefore: number,
    deadline: number,
): Promise<DeadLetterCleanup> {
    const queueUrl = deps.settings.deadLetterQueueUrl;
    if (!queueUrl) return { removed: 0, complete: true };
    let removed = 0;
    let emptied = 0;
    const receiveLoop = async (): Promise<void> => {
        while (Date.now() + RECEIVE_WAIT_SECONDS * 1000 < deadline) {
            let messages: Message[];
            try {
                const reply = await deps.sqs.send(
                    new ReceiveMessageCommand({
                        QueueUrl: queueUrl,
                        MaxNumberOfMessages: 10,
                        WaitTimeSeconds: RECEIVE_WAIT_SECONDS,
                        // Long enough that the scan does not meet the same message twice.
                        VisibilityTimeout: Math.min(MAX_HIDE_SECONDS, Math.ceil((deadline - Date.now()) / 1000) + 5),
                        MessageSystemAttributeNames: ["SentTimestamp"],
                    }),
                );
                messages = reply.Messages ?? [];
            } catch (error) {
                throw farmError("queue_error", `ReceiveMessage ${queueUrl} failed: ${describeAwsError(error)}`);
            }
            if (messages.length === 0) {
                emptied++;
                return;
            }
            const obsolete = messages.filter((message) => {
                const parsed = parseFrameMessage(message.Body ?? "", deps.settings.rendersBucket);
                const sent = Number(message.Attributes?.SentTimestamp ?? Number.NaN);
                return parsed.ok && parsed.value.jobId === jobId && sent < sentBefore;
            });
            if (obsolete.length === 0) continue;
            try {
                const reply = await deps.sqs.send(
                    new DeleteMessageBatchCommand({
                        QueueUrl: queueUrl,
                        Entries: obsolete.map((message, index) => ({
                            Id: String(index),
                            ReceiptHandle: message.ReceiptHandle!,
                        })),
                    }),
                );
                removed += reply.Successful?.length ?? 0;
            } catch (error) {
                throw farmError("queue_error", `DeleteMessageBatch ${queueUrl} failed: ${describeAwsError(error)}`);
            }
        }
    };
    await mapWithConcurrency(
        Array.from({ length: RECEIVERS }, (_, index) => index),
        RECEIVERS,
        receiveLoop,
    );
    return { removed, complete: emptied === RECEIVERS };
}
