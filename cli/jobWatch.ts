// Waits for a job to end, polling GET /jobs/{jobId} and feeding the progress display. The wait has a deadline and a
// stall limit from the job's size and the farm's timing (jobDeadline.ts), and carries on queueing a job whose submit
// (or retry) was cut off, through `resume`.
import type { JobStatus } from "../functions/shared/contract";
import type { ApiClient } from "./apiClient";
import { deadlineError, progressMark, stalledError, waitLimitsOf, WaitLimits } from "./jobDeadline";
import { createProgressReporter, FINAL_STATES, ProgressReporter } from "./progress";

export interface WatchOptions {
    pollIntervalMs: number;
    stream: NodeJS.WritableStream & { isTTY?: boolean };
    /** Called with the reporter so an interrupt can tidy the terminal. */
    onReporter?: (reporter: ProgressReporter | undefined) => void;
    /**
     * Carries on queueing when the job's queue progress is stalled (the request that was sending its frames was killed,
     * or ran out of time) and is of a kind in `resumes`: `render` submits the same request again (which carries on a
     * submit), `retry` retries again (which carries on either).
     */
    resume?: () => Promise<unknown>;
    resumes?: readonly ("submit" | "retry")[];
    now?: () => number;
}

export async function watchJob(api: ApiClient, jobId: string, options: WatchOptions): Promise<JobStatus> {
    const now = options.now ?? Date.now;
    const reporter = createProgressReporter({ stream: options.stream });
    options.onReporter?.(reporter);
    const started = now();
    let limits: WaitLimits | undefined;
    let lastMark = "";
    let lastProgress = started;
    try {
        for (;;) {
            const status = await api.status(jobId);
            reporter.update(status);
            if (FINAL_STATES.includes(status.state)) return status;
            limits ??= waitLimitsOf(status, started);
            const mark = progressMark(status);
            if (mark !== lastMark) {
                lastMark = mark;
                lastProgress = now();
            }
            const { queue } = status;
            if (queue?.stalled && options.resume && options.resumes?.includes(queue.kind)) await options.resume();
            if (now() - lastProgress > limits.stallMs) throw stalledError(status, limits.stallMs);
            if (now() > limits.deadlineMs) throw deadlineError(status, limits, started, now());
            // A big job is polled less often (at most every 15 s).
            const interval = Math.max(options.pollIntervalMs, Math.min(15_000, status.frames.total * 2));
            await new Promise((resolve) => setTimeout(resolve, interval));
        }
    } finally {
        reporter.stop();
        options.onReporter?.(undefined);
    }
}
