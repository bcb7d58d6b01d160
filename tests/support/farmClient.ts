// A farm as a client reaches it over the wire, from its outputs.json alone: the job API over HTTP, S3 and SQS
// through the emulator's endpoint (it takes any credentials).
import * as fs from "fs";
import {
    DeleteObjectCommand,
    GetObjectCommand,
    ListObjectsV2Command,
    PutObjectCommand,
    S3Client,
} from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, Message, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { FarmOutputs, FrameRecord, JobStatus } from "../../functions/shared/contract";

const CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };

export function s3Of(outputs: FarmOutputs): S3Client {
    return new S3Client({
        endpoint: outputs.awsEndpoint,
        region: outputs.region,
        forcePathStyle: true,
        credentials: CREDENTIALS,
    });
}

export function sqsOf(outputs: FarmOutputs): SQSClient {
    return new SQSClient({ endpoint: outputs.awsEndpoint, region: outputs.region, credentials: CREDENTIALS });
}

export async function api(
    outputs: FarmOutputs,
    method: string,
    route: string,
    body?: unknown,
): Promise<{ status: number; body: any }> {
    const response = await fetch(`${outputs.apiUrl}${route}`, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** Polls `probe` every `intervalMs` until it returns something other than undefined. */
export async function waitFor<T>(
    what: string,
    timeoutMs: number,
    probe: () => Promise<T | undefined> | T | undefined,
    intervalMs = 200,
): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await probe();
        if (value !== undefined) return value;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
}

/** GET /jobs/{jobId} until the job ends (complete, failed or partial); returns that status. */
export async function waitForJobEnd(
    outputs: FarmOutputs,
    jobId: string,
    timeoutMs: number,
    intervalMs = 500,
): Promise<JobStatus> {
    return waitFor(
        `job ${jobId} to end`,
        timeoutMs,
        async () => {
            const reply = await api(outputs, "GET", `/jobs/${jobId}`);
            if (reply.status !== 200)
                throw new Error(`GET /jobs/${jobId} answered ${reply.status}: ${JSON.stringify(reply.body)}`);
            return ["complete", "failed", "partial"].includes(reply.body.state) ? (reply.body as JobStatus) : undefined;
        },
        intervalMs,
    );
}

export async function uploadFile(outputs: FarmOutputs, key: string, file: string): Promise<void> {
    const s3 = s3Of(outputs);
    try {
        await s3.send(new PutObjectCommand({ Bucket: outputs.scenesBucket, Key: key, Body: fs.readFileSync(file) }));
    } finally {
        s3.destroy();
    }
}

export async function deleteObject(outputs: FarmOutputs, bucket: string, key: string): Promise<void> {
    const s3 = s3Of(outputs);
    try {
        await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } finally {
        s3.destroy();
    }
}

export async function listKeys(outputs: FarmOutputs, prefix: string): Promise<string[]> {
    const s3 = s3Of(outputs);
    const keys: string[] = [];
    try {
        let token: string | undefined;
        do {
            const page = await s3.send(
                new ListObjectsV2Command({ Bucket: outputs.rendersBucket, Prefix: prefix, ContinuationToken: token }),
            );
            keys.push(...(page.Contents ?? []).map((object) => object.Key!));
            token = page.IsTruncated ? page.NextContinuationToken : undefined;
        } while (token);
    } finally {
        s3.destroy();
    }
    return keys.sort();
}

export async function frameRecords(outputs: FarmOutputs, jobId: string): Promise<FrameRecord[]> {
    const s3 = s3Of(outputs);
    const records: FrameRecord[] = [];
    try {
        // The frame records only: the job's summary shards live beside them (frames/summary/).
        const keys = (await listKeys(outputs, `jobs/${jobId}/frames/`)).filter((key) =>
            /\/frames\/\d+\.json$/.test(key),
        );
        for (const key of keys) {
            const object = await s3.send(new GetObjectCommand({ Bucket: outputs.rendersBucket, Key: key }));
            records.push(JSON.parse(await object.Body!.transformToString()));
        }
    } finally {
        s3.destroy();
    }
    return records.sort((a, b) => a.frame - b.frame);
}

/** `renders/<jobId>/frame_0007.png` for each frame. */
export function frameKeys(jobId: string, frames: number[]): string[] {
    return frames.map((frame) => `renders/${jobId}/frame_${String(frame).padStart(4, "0")}.png`).sort();
}

export const range = (first: number, last: number) =>
    Array.from({ length: last - first + 1 }, (_, index) => first + index);

/** Messages visible plus in flight in a queue (fauxqs settles expired in-flight counts on a receive, which the workers keep doing). */
export async function queueDepth(outputs: FarmOutputs, queueUrl: string): Promise<number> {
    const sqs = sqsOf(outputs);
    try {
        const reply = await sqs.send(
            new GetQueueAttributesCommand({
                QueueUrl: queueUrl,
                AttributeNames: [
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            }),
        );
        const attributes = reply.Attributes ?? {};
        return (
            Number(attributes.ApproximateNumberOfMessages ?? 0) +
            Number(attributes.ApproximateNumberOfMessagesNotVisible ?? 0) +
            Number(attributes.ApproximateNumberOfMessagesDelayed ?? 0)
        );
    } finally {
        sqs.destroy();
    }
}

/** The dead-letter queue's messages, read with visibility 0 so they stay where they are. */
export async function peekDeadLetters(outputs: FarmOutputs): Promise<Message[]> {
    const sqs = sqsOf(outputs);
    try {
        const reply = await sqs.send(
            new ReceiveMessageCommand({
                QueueUrl: outputs.deadLetterQueueUrl,
                MaxNumberOfMessages: 10,
                VisibilityTimeout: 0,
                MessageSystemAttributeNames: ["All"],
            }),
        );
        return reply.Messages ?? [];
    } finally {
        sqs.destroy();
    }
}
