// N pollers that behave like Lambda's SQS event source mapping with batch size 1: receive one message,
// invoke the consumer, delete the message on success, leave it for its retry (then the DLQ) on failure.
// Stopping abandons frames in flight and makes their messages visible again: never deleted unless finished.
// Unlike the mapping, a poller keeps the frame it holds invisible with a heartbeat (see FRAME_VISIBILITY_SECONDS).
import { setTimeout as sleep } from "timers/promises";
import type { S3Client } from "@aws-sdk/client-s3";
import { ChangeMessageVisibilityCommand, DeleteMessageCommand, Message, SQSClient } from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import { parseFrameMessage } from "../functions/shared/contract/frameMessage";
import { describeAwsError } from "../functions/shared/awsErrors";
import { jobLedger } from "../functions/shared/ledger";
import { invokeConsumer, receiveOne, SqsEventHandler, sqsRecordOf } from "./eventSourcePoller";

/**
 * Short, because a stop waits for every idle poller's receive to return: an aborted long poll would stay
 * registered in the emulator and could take a message (a frame released by another worker) that nobody reads.
 */
export const RECEIVE_WAIT_SECONDS = 2;
const RECEIVE_RETRY_MS = 1000;

/**
 * The local frame queue's visibility timeout. A worker extends the frame it holds every VISIBILITY_HEARTBEAT_MS
 * for as long as the frame runs, so a slow frame is never handed to a second worker, while a worker that dies
 * (SIGKILL, a lost machine) gives its frame back within this time rather than after the 15-minute frame timeout.
 * On AWS there is no heartbeat: a Lambda cannot outlive its timeout, and the renderer cuts a started frame's visibility
 * to its invocation's remaining time (functions/renderer/frameVisibility.ts), which the local renderer leaves to this.
 */
export const FRAME_VISIBILITY_SECONDS = 30;
/** A third of the visibility: two beats may fail (a busy emulator) before the frame can be handed out again. */
export const VISIBILITY_HEARTBEAT_MS = 10_000;

export interface Consumer {
    handle: SqsEventHandler;
    /** Ends the consumer's work on its current frame at once (kills its processes, cuts its clients). */
    abandon(): void;
    /**
     * Registers a hook the consumer awaits before it changes a message's visibility itself (the renderer's failure
     * backoff): the pool stops that message's heartbeat there, so a late beat cannot undo the backoff.
     */
    beforeVisibilityChange?(hook: (receiptHandle: string) => Promise<void>): void;
}

export interface FrameSettled {
    worker: number;
    record: SQSRecord;
    outcome: "succeeded" | "failed";
    ms: number;
}

export interface WorkerPoolOptions {
    /** The pool's own client: receive, heartbeat, delete, release. */
    sqs: SQSClient;
    queueUrl: string;
    queueArn: string;
    region: string;
    /** One per worker. */
    consumers: Consumer[];
    waitTimeSeconds?: number;
    /** Default FRAME_VISIBILITY_SECONDS: what each heartbeat sets the held message's visibility to. */
    visibilitySeconds?: number;
    /** Default VISIBILITY_HEARTBEAT_MS. */
    heartbeatMs?: number;
    /** How a message is named in log lines, e.g. "frame 7 of job shot-010". */
    describe(record: SQSRecord): string;
    onSettled?(event: FrameSettled): void;
    log(line: string): void;
}

export interface WorkerPool {
    /** Stops receiving, abandons frames in flight and releases their messages (visibility 0). */
    stop(): Promise<void>;
}

interface Heartbeat {
    /** No beat after this; resolves once a beat already sent has been answered. Safe to call twice. */
    stop(): Promise<void>;
}

export function startWorkerPool(options: WorkerPoolOptions): WorkerPool {
    const { sqs, queueUrl, log } = options;
    const visibilitySeconds = options.visibilitySeconds ?? FRAME_VISIBILITY_SECONDS;
    const heartbeatMs = options.heartbeatMs ?? VISIBILITY_HEARTBEAT_MS;
    const stopSignal = new AbortController();
    /** Per worker: abandons the frame it is on, while it is on one. */
    const abandonCurrent: ((() => void) | undefined)[] = options.consumers.map(() => undefined);
    /** Messages received but not finished when the pool stopped. */
    const toRelease: { record: SQSRecord; worker: number }[] = [];
    /** Heartbeats of the messages being worked on, by receipt handle. */
    const heartbeats = new Map<string, Heartbeat>();

    for (const consumer of options.consumers) {
        consumer.beforeVisibilityChange?.(
            (receiptHandle) => heartbeats.get(receiptHandle)?.stop() ?? Promise.resolve(),
        );
    }

    function startHeartbeat(worker: number, record: SQSRecord): Heartbeat {
        let stopped = false;
        let last: Promise<void> = Promise.resolve();
        const beat = async () => {
            if (stopped) return;
            try {
                await sqs.send(
                    new ChangeMessageVisibilityCommand({
                        QueueUrl: queueUrl,
                        ReceiptHandle: record.receiptHandle,
                        VisibilityTimeout: visibilitySeconds,
                    }),
                    // A beat that hangs must not hold up the stop that awaits it.
                    { abortSignal: AbortSignal.timeout(heartbeatMs) },
                );
            } catch (error) {
                if (!stopped)
                    log(
                        `worker ${worker + 1}: could not extend the visibility of ${options.describe(record)} (${describeAwsError(error)}); another worker may render it too`,
                    );
            }
        };
        const timer = setInterval(() => {
            last = last.then(beat);
        }, heartbeatMs);
        return {
            stop() {
                stopped = true;
                clearInterval(timer);
                return last;
            },
        };
    }

    function invoke(worker: number, record: SQSRecord): Promise<"succeeded" | "failed"> {
        return invokeConsumer(options.consumers[worker].handle, record, (error) =>
            log(
                `worker ${worker + 1}: the renderer crashed on ${options.describe(record)}: ${error instanceof Error ? error.message : String(error)}`,
            ),
        );
    }

    async function receive(worker: number): Promise<Message | undefined> {
        try {
            return await receiveOne(sqs, queueUrl, options.waitTimeSeconds ?? RECEIVE_WAIT_SECONDS);
        } catch (error) {
            if (stopSignal.signal.aborted) return undefined;
            log(
                `worker ${worker + 1}: ReceiveMessage on ${queueUrl} failed (${describeAwsError(error)}); trying again in ${RECEIVE_RETRY_MS / 1000} s`,
            );
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
            const heartbeat = startHeartbeat(worker, record);
            heartbeats.set(record.receiptHandle, heartbeat);
            const abandoned = new Promise<"abandoned">((resolve) => {
                abandonCurrent[worker] = () => resolve("abandoned");
            });
            const outcome = await Promise.race([invoke(worker, record), abandoned]);
            abandonCurrent[worker] = undefined;
            // Before the message is deleted or released: a beat arriving after either would hide it again.
            await heartbeat.stop();
            heartbeats.delete(record.receiptHandle);
            if (outcome === "abandoned") {
                toRelease.push({ record, worker });
                break;
            }
            if (outcome === "succeeded") {
                try {
                    await sqs.send(
                        new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: record.receiptHandle }),
                    );
                } catch (error) {
                    // The frame is on S3; its message comes back after the visibility timeout and rewrites the same keys.
                    log(
                        `worker ${worker + 1}: could not delete the message of ${options.describe(record)} (${describeAwsError(error)}); it will render once more`,
                    );
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
                            await sqs.send(
                                new ChangeMessageVisibilityCommand({
                                    QueueUrl: queueUrl,
                                    ReceiptHandle: record.receiptHandle,
                                    VisibilityTimeout: 0,
                                }),
                            );
                            log(
                                `worker ${worker + 1}: stopped ${options.describe(record)} and put it back in the queue`,
                            );
                        } catch (error) {
                            log(
                                `worker ${worker + 1}: stopped ${options.describe(record)} but could not put it back (${describeAwsError(error)}); the next start releases it`,
                            );
                        }
                    }),
                );
            })();
            return stopped;
        },
    };
}

export interface FrameLogOptions {
    /** Reads a failed frame's record, for the reason in its log line. */
    s3: S3Client;
    rendersBucket: string;
    maxReceiveCount: number;
    /** The renderer's delay before attempt `attempts + 1`. */
    backoffSeconds(attempts: number): number;
    log(line: string): void;
}

/** The pool's describe and onSettled for frame messages: one line per frame done or failed, with the reason. */
export function frameLog(options: FrameLogOptions): Pick<WorkerPoolOptions, "describe" | "onSettled"> {
    const { log, maxReceiveCount } = options;
    const ledger = jobLedger(options.s3, options.rendersBucket);
    const frameOf = (record: SQSRecord) => {
        const parsed = parseFrameMessage(record.body, options.rendersBucket);
        return parsed.ok ? parsed.value : undefined;
    };
    const describe = (record: SQSRecord) => {
        const frame = frameOf(record);
        if (!frame) return `message ${record.messageId}`;
        return frame.tile === undefined
            ? `frame ${frame.frame} of job ${frame.jobId}`
            : `frame ${frame.frame} of job ${frame.jobId} tile ${frame.tile}/${frame.of}`;
    };
    const logSettled = async ({ worker, record, outcome, ms }: FrameSettled) => {
        const what = `${describe(record)} (worker ${worker + 1}, ${(ms / 1000).toFixed(1)} s)`;
        if (outcome === "succeeded") {
            log(`${what}: done`);
            return;
        }
        const frame = frameOf(record);
        const frameRecord = frame
            ? await ledger.readFrameRecord(frame.jobId, frame.frame).catch(() => undefined)
            : undefined;
        const attempts = Number(record.attributes.ApproximateReceiveCount);
        const next =
            attempts >= maxReceiveCount ? "no attempts left" : `retry in ${options.backoffSeconds(attempts)} s`;
        const reason = frameRecord?.error
            ? `${frameRecord.error.code}: ${frameRecord.error.message}`
            : "see the renderer's log above";
        log(`${what}: failed, attempt ${attempts} of ${maxReceiveCount}, ${next}: ${reason}`);
    };
    return { describe, onSettled: (event) => void logSettled(event) };
}
