// The frame queue (one message per frame) and its dead-letter queue.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { FarmSettings } from "../functions/shared/farmSettings";
// The visibility timeout is defined beside the stale threshold that follows from it.
import { frameVisibilityTimeoutSeconds } from "../functions/shared/farmTiming";

export type FrameQueueArgs = Pick<FarmSettings, "rendererTimeout" | "maxReceiveCount">;

/** How long a frame that ran out of attempts waits in the DLQ for someone to look: SQS's maximum. */
const DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600;
/** Days for a large job to drain at low concurrency; shorter than the DLQ's, since a dead letter keeps its enqueue time. */
const FRAME_RETENTION_SECONDS = 4 * 24 * 3600;

export class FrameQueue extends pulumi.ComponentResource {
    public readonly queue: aws.sqs.Queue;
    public readonly deadLetterQueue: aws.sqs.Queue;

    constructor(name: string, args: FrameQueueArgs, opts?: pulumi.ComponentResourceOptions) {
        super("render-farm:index:FrameQueue", name, {}, opts);
        this.deadLetterQueue = new aws.sqs.Queue(
            `${name}-dlq`,
            {
                messageRetentionSeconds: DEAD_LETTER_RETENTION_SECONDS,
                sqsManagedSseEnabled: true,
            },
            { parent: this },
        );
        this.queue = new aws.sqs.Queue(
            `${name}-queue`,
            {
                visibilityTimeoutSeconds: frameVisibilityTimeoutSeconds(args.rendererTimeout),
                messageRetentionSeconds: FRAME_RETENTION_SECONDS,
                receiveWaitTimeSeconds: 20,
                sqsManagedSseEnabled: true,
                redrivePolicy: pulumi.jsonStringify({
                    deadLetterTargetArn: this.deadLetterQueue.arn,
                    maxReceiveCount: args.maxReceiveCount,
                }),
            },
            { parent: this },
        );
        this.registerOutputs({ queueUrl: this.queue.url, deadLetterQueueUrl: this.deadLetterQueue.url });
    }
}
