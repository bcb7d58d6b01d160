// GET /jobs/{jobId}[?failures=<token>]: the job's progress from its frame summary and queue progress (a few hundred
// small reads at most, whatever the job's size), with its failed frames a page at a time.
import { Checked, refused } from "../shared/contract/apiErrors";
import { JOB_ID_PATTERN } from "../shared/contract/limits";
import { FAILURES_PAGE_SIZE, JobStatus } from "../shared/contract/replies";
import { JobManifest } from "../shared/contract/types";
import { mapWithConcurrency } from "../shared/concurrency";
import { summarizeJob } from "../shared/frameSummary";
import { failureOf, jobStatusOf } from "../shared/jobStatus";
import { ApiReply, errorReply, jobNotFound, upstreamError } from "./replies";
import { farmTimingOf, JobApiContext, JobApiDeps, jobApiContext } from "./settings";

/** GetObject calls in flight when reading the records of a page of failures. */
const FAILURE_READ_CONCURRENCY = 16;
const TOKEN_PREFIX = "after:";

/** The opaque token for the failures page after `frame`. */
export function failuresTokenAfter(frame: number): string {
    return Buffer.from(`${TOKEN_PREFIX}${frame}`, "utf8").toString("base64url");
}

/** The frame a failures token continues after; undefined without a token; a 400 for one this API did not give. */
export function parseFailuresToken(token: string | undefined): Checked<number | undefined> {
    if (token === undefined || token === "") return { ok: true, value: undefined };
    const text = /^[A-Za-z0-9_-]{1,40}$/.test(token) ? Buffer.from(token, "base64url").toString("utf8") : "";
    const match = /^after:(\d{1,7})$/.exec(text);
    if (!match)
        return refused(
            400,
            "invalid_failures_token",
            "failures must be the failuresNext token of an earlier reply for this job",
            "failures",
        );
    return { ok: true, value: Number(match[1]) };
}

/** The job's manifest, opened (see JobLedger.openJob); 404 for an unknown (or impossible) id, 502/503 when S3 fails. */
export async function loadManifest(deps: JobApiContext, jobId: unknown): Promise<Checked<JobManifest>> {
    if (typeof jobId !== "string" || !JOB_ID_PATTERN.test(jobId)) return refused(jobNotFound(jobId));
    try {
        const opened = await deps.ledger.openJob(jobId);
        if (!opened) return refused(jobNotFound(jobId));
        return { ok: true, value: opened.manifest };
    } catch (error) {
        return refused(upstreamError("storage_error", error));
    }
}

/** The job's status with the page of failures after frame `after` (from the first failure without it). */
export async function readJobStatus(
    deps: JobApiContext,
    manifest: JobManifest,
    after: number | undefined,
    now: Date = new Date(),
): Promise<JobStatus> {
    const { ledger } = deps;
    const [shards, progress, stop] = await Promise.all([
        ledger.readSummaryShards(manifest),
        ledger.readQueueProgress(manifest.jobId),
        ledger.readJobStop(manifest.jobId),
    ]);
    const summary = summarizeJob(manifest, shards, deps.settings.maxReceiveCount, now.getTime());
    const remaining =
        after === undefined ? summary.failedFrames : summary.failedFrames.filter((frame) => frame > after);
    const page = remaining.slice(0, FAILURES_PAGE_SIZE);
    const failures = await mapWithConcurrency(page, FAILURE_READ_CONCURRENCY, async (frame) =>
        failureOf(frame, summary.entries.get(frame), await ledger.readFrameRecord(manifest.jobId, frame)),
    );
    return jobStatusOf(manifest, summary, {
        failures,
        failuresNext: remaining.length > page.length ? failuresTokenAfter(page[page.length - 1]) : undefined,
        dispatch: progress?.dispatch,
        stop: stop?.stop,
        timing: farmTimingOf(deps.settings),
        now,
    });
}

/** GET /jobs/{jobId}: the job's progress; `failures` is the failuresNext token of the page before, if any. */
export async function getJobStatus(deps: JobApiDeps, jobId: unknown, failures?: string): Promise<ApiReply> {
    const token = parseFailuresToken(failures);
    if (!token.ok) return errorReply(token.error);
    const api = jobApiContext(deps);
    const manifest = await loadManifest(api, jobId);
    if (!manifest.ok) return errorReply(manifest.error);
    try {
        return { status: 200, body: await readJobStatus(api, manifest.value, token.value) };
    } catch (error) {
        return errorReply(upstreamError("storage_error", error));
    }
}
