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

/** Receives at most one message, with its system attributes (ApproximateReceiveCount), as the mapping does. */
export async function receiveOne(
    sqs: SQSClient,
    queueUrl: string,
    waitTimeSeconds: number,
): Promise<Message | undefined> {
    const reply = await sqs.send(
        new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: 1,
            WaitTimeSeconds: waitTimeSeconds,
            MessageSystemAttributeNames: ["All"],
        }),
    );
    return reply.Messages?.[0];
}

/**
 * Runs one record through the consumer: "failed" when the consumer reports it in batchItemFailures or throws
 * (Lambda counts a crashed invocation as a failure of its whole batch; `onCrash` hears why).
 */
export async function invokeConsumer(
    handler: SqsEventHandler,
    record: SQSRecord,
    onCrash: (error: unknown) => void,
): Promise<"succeeded" | "failed"> {
    try {
        const response = await handler({ Records: [record] });
        const failed = (response?.batchItemFailures ?? []).some(
            (failure) => failure.itemIdentifier === record.messageId,
        );
        return failed ? "failed" : "succeeded";
    } catch (error) {
        onCrash(error);
        return "failed";
    }
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
 * One delivery as the worker pool (local/workers.ts) makes it, without its visibility heartbeat: receive at most
 * one message, run it through the handler, delete it on success. Returns what happened, or "empty".
 */
export async function pollOnce(target: PollTarget): Promise<"empty" | "succeeded" | "failed"> {
    const message = await receiveOne(target.sqs, target.queueUrl, target.waitTimeSeconds ?? 0);
    if (!message) return "empty";
    const record = sqsRecordOf(message, target.queueArn, target.region);
    const outcome = await invokeConsumer(target.handler, record, (error) =>
        console.error(
            `poller: the handler failed on message ${record.messageId}: ${(error as Error)?.message ?? error}`,
        ),
    );
    if (outcome === "succeeded") {
        await target.sqs.send(
            new DeleteMessageCommand({ QueueUrl: target.queueUrl, ReceiptHandle: record.receiptHandle }),
        );
    }
    return outcome;
}
