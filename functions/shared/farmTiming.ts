// What follows from the farm's settings in time: a failed frame's backoff, the frame queue's visibility timeout and
// the stale threshold after which a frame in flight counts as lost. Plain constants and functions (functions/README.md).
import { FarmSettings } from "./farmSettings";

/** A failed frame's retry delay never exceeds this (the renderer's backoff doubles per attempt up to it). */
export const MAX_FAILURE_BACKOFF_SECONDS = 300;

/** The longest backoff a frame meets: before its last attempt. */
export function maxBackoffSeconds(failureBackoffSeconds: number, maxReceiveCount: number): number {
    return Math.min(failureBackoffSeconds * 2 ** Math.max(0, maxReceiveCount - 2), MAX_FAILURE_BACKOFF_SECONDS);
}

/**
 * The stack's frame queue visibility timeout: AWS advises 6x the function timeout for a queue behind an event source
 * mapping, so a message stays hidden while Lambda retries throttled invocations. A failed frame does not wait this
 * long (the renderer shortens it to the backoff), nor does a started one (the renderer shortens it to what the
 * invocation has left): this is how long a received frame may wait for its invocation.
 */
export function frameVisibilityTimeoutSeconds(rendererTimeoutSeconds: number): number {
    return 6 * rendererTimeoutSeconds;
}

/** Slack for clocks and queue delays on top of the longest silence a frame in flight can keep. */
export const STALE_MARGIN_SECONDS = 10;
/** What STALE_AFTER_SECONDS accepts. */
export const STALE_AFTER_RANGE = { min: 1, max: 7 * 24 * 3600 } as const;

/**
 * How long a job's ledger may stay quiet while a frame of it is still coming: hidden for the queue's whole visibility
 * timeout (received, its invocation throttled or its renderer killed), then rendered for up to the frame timeout, after
 * the longest backoff. A retry requeues frames with no result only after this (or once the frame queue is empty):
 * sooner, the frame's own message could still come back and render it a second time.
 */
export function staleAfterSecondsFor(timing: {
    visibilityTimeoutSeconds: number;
    frameTimeoutSeconds: number;
    failureBackoffSeconds: number;
    maxReceiveCount: number;
}): number {
    return (
        timing.visibilityTimeoutSeconds +
        timing.frameTimeoutSeconds +
        maxBackoffSeconds(timing.failureBackoffSeconds, timing.maxReceiveCount) +
        STALE_MARGIN_SECONDS
    );
}

/** The stale threshold of a stack with these settings (its queue's visibility follows from the renderer timeout). */
export function stackStaleAfterSeconds(
    settings: Pick<FarmSettings, "rendererTimeout" | "failureBackoffSeconds" | "maxReceiveCount">,
): number {
    return staleAfterSecondsFor({
        visibilityTimeoutSeconds: frameVisibilityTimeoutSeconds(settings.rendererTimeout),
        frameTimeoutSeconds: settings.rendererTimeout,
        failureBackoffSeconds: settings.failureBackoffSeconds,
        maxReceiveCount: settings.maxReceiveCount,
    });
}
