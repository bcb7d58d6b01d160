// A message's last delivery: before Blender starts, the frame's record says it failed with renderer_killed, and the
// attempt's own outcome replaces that. A renderer killed mid-frame (Lambda's memory or timeout exceeded, a local
// worker killed) writes nothing; its message goes to the dead-letter queue, and without this record the frame would
// read pending forever. The record is provisional until the invocation's end plus the message's hold margin: the
// frame reads pending until then (its attempt may still report), failed after. One write per last delivery only.
import type { FrameMessage, FrameRecord } from "../shared/contract/types";
import { FRAME_HOLD_MARGIN_SECONDS } from "./frameVisibility";
import type { RendererContext } from "./settings";

export const RENDERER_KILLED = "renderer_killed";

export interface LastAttempt {
    /** This delivery's receive count (the last one: maxReceiveCount or more). */
    attempts: number;
    startedAt: Date;
    /** What the invocation had left when the attempt started. */
    remainingMs: number;
    /** The attempt of the frame's latest record before this delivery; null: none was written; undefined: not known. */
    earlierAttempts?: number | null;
}

/** "2", "1 and 2", "1 to 3": the attempts between the latest record and this one, which left no record. */
function unrecordedAttempts(attempt: LastAttempt): string | undefined {
    if (attempt.earlierAttempts === undefined) return undefined;
    const first = (attempt.earlierAttempts ?? 0) + 1;
    const last = attempt.attempts - 1;
    if (first > last) return undefined;
    if (first === last) return `attempt ${first}`;
    return `attempts ${first} ${last === first + 1 ? "and" : "to"} ${last}`;
}

/** The provisional failed record of a last attempt, which that attempt's outcome replaces. */
export function lastAttemptRecord(
    message: FrameMessage,
    tile: { index: number; of: number } | undefined,
    attempt: LastAttempt,
    settings: Pick<RendererContext["settings"], "maxReceiveCount" | "memoryMb">,
): FrameRecord {
    const seconds = Math.round(attempt.remainingMs / 1000);
    const earlier = unrecordedAttempts(attempt);
    const text = `the renderer ended without reporting on the frame's last attempt (${attempt.attempts} of ${settings.maxReceiveCount}), so its message went to the dead-letter queue: it was killed mid-frame, as Lambda ends a renderer that passes its memory (${settings.memoryMb} MB) or its time (the invocation had ${seconds} s left)${earlier ? `; ${earlier} left no record either` : ""}; render at a lower resolution or with fewer samples, or give the renderer more memory or time, then retry the job`;
    const until = attempt.startedAt.getTime() + attempt.remainingMs + FRAME_HOLD_MARGIN_SECONDS * 1000;
    const now = new Date();
    return {
        jobId: message.jobId,
        frame: message.frame,
        status: "failed",
        attempts: attempt.attempts,
        startedAt: attempt.startedAt.toISOString(),
        finishedAt: now.toISOString(),
        wallMs: 0,
        blenderMs: 0,
        memoryMb: settings.memoryMb,
        costUsd: 0,
        error: { code: RENDERER_KILLED, message: tile ? `tile ${tile.index} of ${tile.of}: ${text}` : text },
        logTail: "",
        provisionalUntil: new Date(until).toISOString(),
        ...(tile ? { tile } : {}),
    };
}

/** Writes the last attempt's provisional record; S3 trouble only costs the reason should the renderer be killed. */
export async function recordLastAttempt(
    deps: Pick<RendererContext, "ledger" | "settings">,
    message: FrameMessage,
    tile: { index: number; of: number } | undefined,
    attempt: LastAttempt,
): Promise<void> {
    const record = lastAttemptRecord(message, tile, attempt, deps.settings);
    try {
        if (tile) await deps.ledger.writeTileRecord(record);
        else await deps.ledger.writeFrameRecord(record);
    } catch (error) {
        console.error(
            `renderer: frame ${message.frame} of job ${message.jobId}: could not record its last attempt ahead: ${(error as Error)?.message ?? error}`,
        );
    }
}
