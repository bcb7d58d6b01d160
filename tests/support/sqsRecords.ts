// A frame message as the SQS event a renderer is invoked with (first delivery), for tests that call the handler itself.
import * as crypto from "crypto";
import type { SQSRecord } from "aws-lambda";
import type { FrameMessage } from "../../functions/shared/contract";

export function sqsRecordOf(message: FrameMessage, queueName: string): SQSRecord {
    return {
        messageId: crypto.randomUUID(),
        receiptHandle: crypto.randomUUID(),
        body: JSON.stringify(message),
        attributes: { ApproximateReceiveCount: "1" },
        messageAttributes: {},
        md5OfBody: "",
        eventSource: "aws:sqs",
        eventSourceARN: `arn:aws:sqs:us-east-1:000000000000:${queueName}`,
        awsRegion: "us-east-1",
    } as unknown as SQSRecord;
}
