// N pollers that behave like Lambda's SQS event source mapping with batch size 1: receive one message,
// invoke the consumer, delete the message on success, leave it for its retry (then the DLQ) on failure.
// Stopping abandons frames in flight and makes their messages visible again: never deleted unless finished.
import { setTimeout as sleep } from "timers/promises";
import { ChangeMessageVisibilityCommand, DeleteMessageCommand, Message, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import { describeAwsError } from "../functions/ledger";
import { SqsEventHandler, sqsRecordOf } from "./eventSourcePoller";

/**
 * Short, because a stop waits for every idle poller's receive to return: an aborted long poll would stay
 * registered in the emulator and could take a message (a frame released by another worker) that nobody reads.
 */
export const RECEIVE_WAIT_SECONDS = 2;
const RECEIVE_RETRY_MS = 1000;

export interface Consumer {
    handle: SqsEventHandler;
    /** Ends the consumer's work on its current frame at once (kills its processes, cuts its clients). */
    abandon(): void;
}

export interface FrameSettled {
    worker: number;
    record: SQSRecord;
    outcome: "succeeded" | "failed";
    ms: number;
}

export interface WorkerPoolOptions {
    /** The pool's own client: receive, delete, release. */
    sqs: SQSClient;
    queueUrl: string;
    queueArn: string;
    region: string;
    /** One per worker. */
    consumers: Consumer[];
    waitTimeSeconds?: number;
    /** How a message is named in log lines, e.g. "frame 7 of job shot-010". */
    describe(record: SQSRecord): string;
    onSettled?(event: FrameSettled): void;
    log(line: string): void;
}

export interface WorkerPool {
    /** Stops receiving, abandons frames in flight and releases their messages (visibility 0). */
    stop(): Promise<void>;
}

export function startWorkerPool(options: WorkerPoolOptions): WorkerPool {
    const { sqs, queueUrl, log } = options;
    const stopSignal = new AbortController();
    /** Per worker: abandons the frame it is on, while it is on one. */
    const abandonCurrent: ((() => void) | undefined)[] = options.consumers.map(() => undefined);
    /** Messages received but not finished when the pool stopped. */
    const toRelease: { record: SQSRecord; worker: number }[] = [];

    async function invoke(worker: number, record: SQSRecord): Promise<"succeeded" | "failed"> {
        try {
            const response = await options.consumers[worker].handle({ Records: [record] });
            return (response?.batchItemFailures ?? []).some((failure) => failure.itemIdentifier === record.messageId) ? "failed" : "succeeded";
        } catch (error) {
            // Lambda counts a crashed invocation as a failure of its whole batch.
            log(`worker ${worker + 1}: the renderer crashed on ${options.describe(record)}: ${error instanceof Error ? error.message : String(error)}`);
            return "failed";
        }
    }

    async function receive(worker: number): Promise<Message | undefined> {
        try {
            const reply = await sqs.send(
                new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 1, WaitTimeSeconds: options.waitTimeSeconds ?? RECEIVE_WAIT_SECONDS, MessageSystemAttributeNames: ["All"] }),
            );
            return reply.Messages?.[0];
        } catch (error) {
            if (stopSignal.signal.aborted) return undefined;
            log(`worker ${worker + 1}: ReceiveMessage on ${queueUrl} failed (${describeAwsError(error)}); trying again in ${RECEIVE_RETRY_MS / 1000} s`);
            await sleep(RECEIVE_RETRY_MS, undefined, { signal: stopSignal.signal }).catch(() => undefined);
            return undefined;
        }
    }

    async function work(worker: number): Promise<void> {
        while (!stopSignal.signal.aborted) {
            const message = await receive(worker);
            if (!message) continue;
            const record = sqsRecordOf(message, options.queueArn, options.region);
            if (stopSignal.signal.aborted) {
                toRelease.push({ record, worker });
                break;
            }
            const started = Date.now();
            const abandoned = new Promise<"abandoned">((resolve) => {
                abandonCurrent[worker] = () => resolve("abandoned");
            });
            const outcome = await Promise.race([invoke(worker, record), abandoned]);
            abandonCurrent[worker] = undefined;
            if (outcome === "abandoned") {
                toRelease.push({ record, worker });
                break;
            }
            if (outcome === "succeeded") {
                try {
                    await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: record.receiptHandle }));
                } catch (error) {
                    // The frame is on S3; its message comes back after the visibility timeout and rewrites the same keys.
                    log(`worker ${worker + 1}: could not delete the message of ${options.describe(record)} (${describeAwsError(error)}); it will render once more`);
                }
            }
            options.onSettled?.({ worker, record, outcome, ms: Date.now() - started });
        }
    }

    const loops = options.consumers.map((_, worker) => work(worker));
    let stopped: Promise<void> | undefined;
    return {
        stop() {
            stopped ??= (async () => {
                stopSignal.abort();
                abandonCurrent.forEach((abandon, worker) => {
                    if (!abandon) return;
                    options.consumers[worker].abandon();
                    abandon();
                });
                await Promise.all(loops);
                await Promise.all(
                    toRelease.map(async ({ record, worker }) => {
                        try {
                            await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: queueUrl, ReceiptHandle: record.receiptHandle, VisibilityTimeout: 0 }));
                            log(`worker ${worker + 1}: stopped ${options.describe(record)} and put it back in the queue`);
                        } catch (error) {
                            log(`worker ${worker + 1}: stopped ${options.describe(record)} but could not put it back (${describeAwsError(error)}); the next start releases it`);
                        }
                    }),
                );
            })();
            return stopped;
        },
    };
}
