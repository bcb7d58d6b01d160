// How long the CLI waits for a job, from the job's size and the farm's timing (its status says both): a deadline no
// job can outlive, and a stall limit (no progress for as long as the farm lets a frame in flight stay silent).
import type { FarmTiming, JobStatus } from "../functions/shared/contract";
import { FARM_DEFAULTS } from "../functions/shared/farmSettings";
import { stackStaleAfterSeconds } from "../functions/shared/farmTiming";
import { CliError, EXIT_WAIT_EXPIRED } from "./errors";
import { formatDuration } from "./progress";

/** For a farm too old to report its timing: the stack's defaults. */
const DEFAULT_TIMING: FarmTiming = {
    frameTimeoutSeconds: FARM_DEFAULTS.rendererTimeout,
    maxReceiveCount: FARM_DEFAULTS.maxReceiveCount,
    maxConcurrency: FARM_DEFAULTS.maxConcurrency,
    staleAfterSeconds: stackStaleAfterSeconds(FARM_DEFAULTS),
};

export interface WaitLimits {
    /** Epoch ms after which no job of this size can still be running as the farm is set up. */
    deadlineMs: number;
    /** How long the job may show no progress at all. */
    stallMs: number;
    /** How the deadline was made, for the message that reports it. */
    reason: string;
}

/**
 * The pending frames render in waves of at most maxConcurrency, each frame taking at most maxReceiveCount attempts of
 * frameTimeoutSeconds; on top, the longest a frame in flight can stay silent (staleAfterSeconds).
 */
export function waitLimitsOf(status: JobStatus, startedMs: number): WaitLimits {
    const timing = status.timing ?? DEFAULT_TIMING;
    const waves = Math.max(1, Math.ceil(status.frames.pending / Math.max(1, timing.maxConcurrency)));
    const seconds = waves * timing.maxReceiveCount * timing.frameTimeoutSeconds + timing.staleAfterSeconds;
    return {
        deadlineMs: startedMs + seconds * 1000,
        stallMs: timing.staleAfterSeconds * 1000,
        reason: `${waves} wave(s) of at most ${timing.maxConcurrency} frames × ${timing.maxReceiveCount} attempt(s) × ${timing.frameTimeoutSeconds} s, plus ${timing.staleAfterSeconds} s`,
    };
}

/** What counts as progress: any count moving, any ledger write, any frame queued. */
export function progressMark(status: JobStatus): string {
    const { done, failed, pending } = status.frames;
    return [done, failed, pending, status.updatedAt, status.state, status.queue?.queued ?? ""].join("/");
}

function counts(status: JobStatus): string {
    const { total, done, failed, pending } = status.frames;
    return `${done}/${total} done, ${failed} failed, ${pending} pending`;
}

export function stalledError(status: JobStatus, stallMs: number): CliError {
    const seconds = Math.round(stallMs / 1000);
    return new CliError(
        `job ${status.jobId} made no progress for ${formatDuration(seconds)} (${counts(status)}), longer than a frame in flight can stay silent on this farm (${seconds} s): its remaining frames are lost or stuck; \`render-farm retry ${status.jobId}\` requeues them, \`render-farm status ${status.jobId}\` shows where it stands`,
        EXIT_WAIT_EXPIRED,
        "job_stalled",
    );
}

export function deadlineError(status: JobStatus, limits: WaitLimits, startedMs: number, nowMs: number): CliError {
    return new CliError(
        `job ${status.jobId} is still ${status.state} after ${formatDuration((nowMs - startedMs) / 1000)} (${counts(status)}), past the longest it can take on this farm (${limits.reason}); \`render-farm status ${status.jobId}\` shows where it stands`,
        EXIT_WAIT_EXPIRED,
        "job_deadline",
    );
}
