// Waits for a job to end, polling GET /jobs/{jobId} and feeding the progress display.
import type { JobStatus } from "../functions/shared/contract";
import type { ApiClient } from "./apiClient";
import { createProgressReporter, FINAL_STATES, ProgressReporter } from "./progress";

export interface WatchOptions {
    pollIntervalMs: number;
    stream: NodeJS.WritableStream & { isTTY?: boolean };
    /** Called with the reporter so an interrupt can tidy the terminal. */
    onReporter?: (reporter: ProgressReporter | undefined) => void;
}

export async function watchJob(api: ApiClient, jobId: string, options: WatchOptions): Promise<JobStatus> {
    const reporter = createProgressReporter({ stream: options.stream });
    options.onReporter?.(reporter);
    try {
        for (;;) {
            const status = await api.status(jobId);
            reporter.update(status);
            if (FINAL_STATES.includes(status.state)) return status;
            // Each GET reads every frame record of the job: a big job is polled less often (at most every 15 s).
            const interval = Math.max(options.pollIntervalMs, Math.min(15_000, status.frames.total * 2));
            await new Promise((resolve) => setTimeout(resolve, interval));
        }
    } finally {
        reporter.stop();
        options.onReporter?.(undefined);
    }
}
