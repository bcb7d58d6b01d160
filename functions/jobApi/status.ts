// GET /jobs/{jobId}: the job's progress, computed from the ledger.
import { FrameRecord, JOB_ID_PATTERN, JobManifest } from "../shared/contract";
import { computeJobStatus, readFrameRecords, readManifest } from "../shared/ledger";
import { ApiReply, jobNotFound, upstreamReply } from "./replies";
import { JobApiDeps } from "./settings";

export async function loadJob(
    deps: JobApiDeps,
    jobId: unknown,
): Promise<{ manifest: JobManifest; records: FrameRecord[] } | ApiReply> {
    if (typeof jobId !== "string" || !JOB_ID_PATTERN.test(jobId)) return jobNotFound(jobId);
    try {
        const manifest = await readManifest(deps.s3, deps.settings.rendersBucket, jobId);
        if (!manifest) return jobNotFound(jobId);
        const records = await readFrameRecords(deps.s3, deps.settings.rendersBucket, jobId);
        return { manifest, records };
    } catch (error) {
        return upstreamReply("storage_error", error);
    }
}

/** GET /jobs/{jobId}: the job's progress from the ledger, 404 for an unknown (or impossible) id. */
export async function getJobStatus(deps: JobApiDeps, jobId: unknown): Promise<ApiReply> {
    const job = await loadJob(deps, jobId);
    if ("status" in job) return job;
    return { status: 200, body: computeJobStatus(job.manifest, job.records, deps.settings.maxReceiveCount) };
}
