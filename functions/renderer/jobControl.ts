// What the renderer asks of a frame's job before and after the frame: is the job stopped (cancelled, its budget spent,
// its frames failing alike), would this frame pass the job's budget, and has the job failed fast. The budget and
// fail-fast checks read the job's frame summary (functions/shared/frameSummary.ts), whose shards the renderer finds
// from the job's manifest; a warm renderer keeps the manifests of its last few jobs.
import { DEFAULT_FAIL_FAST_FRAMES } from "../shared/contract/limits";
import { FrameMessage, FrameRecord, JobManifest, JobStop } from "../shared/contract/types";
import { JobSummary } from "../shared/frameSummary";
import { JobLedger } from "../shared/ledger";

/** Manifests a warm renderer keeps: a renderer serves one or two jobs at a time. */
const MANIFESTS_KEPT = 8;
/** How long a kept manifest is trusted: a probe job's frames grow when the rest of the job is asked for. */
const MANIFEST_KEPT_MS = 15_000;
/**
 * Error codes that say nothing about the scene (S3 or the renderer itself failed): they never stop a job early. A
 * frame past its deadline does count: every frame of a scene that slow would be. So do a Blender stopped at its memory
 * bound (out_of_memory) and one SIGKILLed from outside (killed: the kernel's OOM killer, at the Lambda's memory).
 */
const NOT_THE_SCENES_FAULT = new Set(["storage_error", "renderer_error", "invalid_ledger_object"]);

export interface JobControl {
    /** The stop that keeps this frame from starting (written now if the frame would pass the budget), or undefined. */
    beforeFrame(message: FrameMessage): Promise<JobStop | undefined>;
    /** After a failed attempt was recorded: stops the job if its frames fail fast; answers the stop if it did. */
    afterFailure(record: FrameRecord): Promise<JobStop | undefined>;
}

type JobRules = Pick<JobManifest, "jobId" | "frames"> & { maxCostUsd?: number; failFast: number };

/** USD an attempt has cost on average so far (0 before the first): what the next frame is expected to cost. */
export function expectedFrameCostUsd(summary: JobSummary): number {
    let attempts = 0;
    let cost = 0;
    for (const entry of summary.entries.values()) {
        attempts += entry.k.length;
        cost += entry.c;
    }
    return attempts === 0 ? 0 : cost / attempts;
}

/**
 * How many frames failed with `code` when at least `failFast` did and none is done (the job fails fast), else 0. A
 * tiled frame counts each of its failing tiles (distinct regions, each its own render), and any tile done counts as
 * something done: a one-frame tiled job whose scene fails in Blender stops too, instead of spending every tile's
 * attempts.
 */
export function framesFailingAlike(summary: JobSummary, failFast: number, code: string | undefined): number {
    if (failFast <= 0 || code === undefined || NOT_THE_SCENES_FAULT.has(code) || summary.tilesDone > 0) return 0;
    let renders = 0;
    for (const entry of summary.entries.values())
        if (entry.s !== "done" && entry.e === code)
            renders += Math.max(1, (entry.w?.length ?? 0) + (entry.x?.length ?? 0));
    return renders >= failFast ? renders : 0;
}

function usd(value: number): string {
    return `$${value.toFixed(value < 1 ? 4 : 2)}`;
}

export function createJobControl(ledger: JobLedger, maxReceiveCount: number): JobControl {
    const rules = new Map<string, { job: JobRules | null; at: number }>();

    /** The job's budget and fail-fast rules from its manifest (null for a job without one: the unversioned frame message). */
    async function rulesOf(jobId: string): Promise<JobRules | null> {
        const known = rules.get(jobId);
        if (known !== undefined && Date.now() - known.at < MANIFEST_KEPT_MS) return known.job;
        rules.delete(jobId);
        const manifest = await ledger.readManifest(jobId, { forbiddenMeansAbsent: true });
        const found = manifest
            ? {
                  jobId,
                  frames: manifest.frames,
                  maxCostUsd: manifest.request.maxCostUsd,
                  failFast: manifest.request.failFast ?? DEFAULT_FAIL_FAST_FRAMES,
              }
            : null;
        if (rules.size >= MANIFESTS_KEPT) rules.delete(rules.keys().next().value as string);
        rules.set(jobId, { job: found, at: Date.now() });
        return found;
    }

    function summaryOf(job: JobRules): Promise<JobSummary> {
        return ledger.readSummary(job, maxReceiveCount);
    }

    return {
        async beforeFrame(message) {
            const stopped = await ledger.readJobStop(message.jobId);
            if (stopped) return stopped.stop;
            const job = await rulesOf(message.jobId);
            if (job?.maxCostUsd === undefined) return undefined;
            const summary = await summaryOf(job);
            const expected = expectedFrameCostUsd(summary);
            if (summary.costUsd + expected <= job.maxCostUsd) return undefined;
            return ledger.stopJob({
                v: 1,
                jobId: job.jobId,
                state: "stopped_budget",
                at: new Date().toISOString(),
                message: `job ${job.jobId} spent ${usd(summary.costUsd)} of its ${usd(job.maxCostUsd)} budget; a frame costs about ${usd(expected)}, so no new frame starts (${summary.done} of ${summary.total} frames done and kept)`,
                budgetUsd: job.maxCostUsd,
                spentUsd: summary.costUsd,
            });
        },

        async afterFailure(record) {
            const job = await rulesOf(record.jobId);
            if (!job || job.failFast <= 0 || !record.error) return undefined;
            const summary = await summaryOf(job);
            const frames = framesFailingAlike(summary, job.failFast, record.error.code);
            if (frames === 0) return undefined;
            return ledger.stopJob({
                v: 1,
                jobId: job.jobId,
                state: "stopped_failing",
                at: new Date().toISOString(),
                code: record.error.code,
                message: `job ${job.jobId} stopped: ${frames} ${record.tile ? "tiles" : "frames"} failed with ${record.error.code} and none is done, so the rest would too (frame ${record.frame}: ${record.error.message}); fix it, then retry the job`,
            });
        },
    };
}
