// A started frame's message stays hidden only as long as its invocation can last. Lambda's event source mapping
// leaves a received message hidden for the queue's whole visibility timeout (6 x the renderer's timeout, so that
// throttled invocations are retried): a renderer that crashes or is killed mid-frame would hold its frame that long.
// At frame start the renderer cuts it to what the invocation has left plus a margin, so such a frame comes back
// minutes after its invocation ended instead of over an hour later.
import { ChangeMessageVisibilityCommand } from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import type { RendererDeps } from "./settings";

/** Past the invocation's end: Lambda has reported it by then, whether it returned, timed out or crashed. */
export const FRAME_HOLD_MARGIN_SECONDS = 30;

/** The visibility a frame starting with `remainingMs` left is given. */
export function frameHoldSeconds(remainingMs: number): number {
    return Math.max(0, Math.ceil(remainingMs / 1000)) + FRAME_HOLD_MARGIN_SECONDS;
}

/** Sets the message's visibility to the invocation's remaining time plus the margin; a failure only costs the shortcut. */
export async function holdFrameForInvocation(
    deps: RendererDeps,
    sqsRecord: SQSRecord,
    remainingMs: number,
): Promise<void> {
    try {
        await deps.sqs.send(
            new ChangeMessageVisibilityCommand({
                QueueUrl: deps.settings.frameQueueUrl,
                ReceiptHandle: sqsRecord.receiptHandle,
                VisibilityTimeout: frameHoldSeconds(remainingMs),
            }),
        );
    } catch (error) {
        console.error(
            `renderer: could not limit the visibility of ${sqsRecord.messageId} to the invocation: ${(error as Error)?.message ?? error}`,
        );
    }
}
