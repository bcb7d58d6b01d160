// What Lambda's SQS event source mapping does, for one machine: receive one message, hand it to the
// consumer as an SQS event, delete it on success, leave it (for retry, then the DLQ) on failure.
import { DeleteMessageCommand, Message, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";

export type SqsEventHandler = (event: SQSEvent) => Promise<SQSBatchResponse | undefined>;

/** The SQS record Lambda builds from a received message. */
export function sqsRecordOf(message: Message, queueArn: string, region: string): SQSRecord {
    const attributes = message.Attributes ?? {};
    return {
        messageId: message.MessageId!,
        receiptHandle: message.ReceiptHandle!,
        body: message.Body ?? "",
        attributes: {
            ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? "1",
            SentTimestamp: attributes.SentTimestamp ?? String(Date.now()),
            SenderId: attributes.SenderId ?? "local",
            ApproximateFirstReceiveTimestamp: attributes.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
        },
        messageAttributes: {},
        md5OfBody: message.MD5OfBody ?? "",
        eventSource: "aws:sqs",
        eventSourceARN: queueArn,
        awsRegion: region,
    };
}

export interface PollTarget {
    sqs: SQSClient;
    queueUrl: string;
    queueArn: string;
    region: string;
    handler: SqsEventHandler;
    /** Long-poll wait; 0 returns at once when the queue is empty. */
    waitTimeSeconds?: number;
}

/**
 * Receives at most one message and runs it through the handler. Returns what happened, or "empty".
 * A thrown handler error counts as a failure, as Lambda counts a crashed invocation.
 */
export async function pollOnce(target: PollTarget): Promise<"empty" | "succeeded" | "failed"> {
    const received = await target.sqs.send(
        new ReceiveMessageCommand({
            QueueUrl: target.queueUrl,
            MaxNumberOfMessages: 1,
            WaitTimeSeconds: target.waitTimeSeconds ?? 0,
            MessageSystemAttributeNames: ["All"],
        }),
    );
    const message = received.Messages?.[0];
    if (!message) return "empty";
    const record = sqsRecordOf(message, target.queueArn, target.region);
    let failed: boolean;
    try {
        const response = await target.handler({ Records: [record] });
        failed = (response?.batchItemFailures ?? []).some((failure) => failure.itemIdentifier === record.messageId);
    } catch (error) {
        console.error(
            `poller: the handler failed on message ${record.messageId}: ${(error as Error)?.message ?? error}`,
        );
        failed = true;
    }
    if (failed) return "failed";
    await target.sqs.send(new DeleteMessageCommand({ QueueUrl: target.queueUrl, ReceiptHandle: record.receiptHandle }));
    return "succeeded";
}
