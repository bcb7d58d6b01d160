// How a job's outcome is told: the failed frames with their reasons, the summary line, the exit code.
import type { JobStatus } from "../functions/shared/contract";
import { EXIT_FRAMES_FAILED, EXIT_OK } from "./errors";
import { formatDuration, tilesText } from "./progress";

/** Text on one line: the farm's error messages may carry newlines. */
export function flatten(text: string): string {
    return text.replace(/\s*\n\s*/g, " ").trim();
}

/** The last line of Blender's log that says something (not the farm's own result line, not "Blender quit"). */
function lastLogLine(logTail: string): string {
    const said = logTail
        .split("\n")
        .map((line) => line.trim())
        .filter((line) => line !== "" && !/^RENDER_FRAME_RESULT\b/.test(line) && !/^Blender quit$/.test(line));
    return said.pop() ?? "";
}

/** "frame 7 failed after 3 attempt(s): no_camera: …" for each failed frame, one line each. */
export function failureLines(status: JobStatus): string[] {
    return status.failures.map((failure) => {
        const tail = lastLogLine(failure.logTail);
        const detail = tail && !flatten(failure.error).includes(tail) ? ` (Blender: ${tail.slice(0, 200)})` : "";
        return `frame ${failure.frame} failed after ${failure.attempts} attempt(s): ${flatten(failure.error)}${detail}`;
    });
}

/** How many failed frames the lines above left out (the farm sends them a page at a time), or undefined for none. */
export function moreFailuresLine(status: JobStatus): string | undefined {
    const left = status.frames.failed - status.failures.length;
    if (left <= 0) return undefined;
    return `… and ${left} more failed frame(s): \`render-farm status ${status.jobId} --all-failures\` lists them all`;
}

/**
 * Why the job stopped, when it did, then the failure lines and, when the farm sent only a page of them, how many more
 * there are.
 */
export function allFailureLines(status: JobStatus): string[] {
    const more = moreFailuresLine(status);
    const stop = status.stop ? [`job ${status.jobId} ${status.stop.state}: ${flatten(status.stop.message)}`] : [];
    return [...stop, ...failureLines(status), ...(more ? [more] : [])];
}

export function summaryLine(status: JobStatus): string {
    const { total, done, failed, pending } = status.frames;
    const parts = [`${done}/${total} done${tilesText(status)}`];
    if (failed > 0) parts.push(`${failed} failed`);
    if (pending > 0) parts.push(`${pending} pending`);
    const cost = status.costUsd > 0 ? `, about $${status.costUsd.toFixed(4)}` : "";
    const renderTime =
        status.renderSeconds < 60 ? `${status.renderSeconds.toFixed(1)} s` : formatDuration(status.renderSeconds);
    const render = status.renderSeconds > 0 ? `; ${renderTime} of render time${cost}` : "";
    return `job ${status.jobId} ${status.state}: ${parts.join(", ")}${render}`;
}

export function exitCodeOf(status: JobStatus): number {
    return status.state === "complete" ? EXIT_OK : EXIT_FRAMES_FAILED;
}

/** The part of --json output every job command shares. */
export function jobDocument(status: JobStatus): Record<string, unknown> {
    return {
        jobId: status.jobId,
        state: status.state,
        frames: status.frames,
        ...(status.tiles ? { tiles: status.tiles } : {}),
        failures: status.failures,
        ...(status.failuresNext ? { failuresNext: status.failuresNext } : {}),
        renderSeconds: status.renderSeconds,
        costUsd: status.costUsd,
    };
}
