// GET /jobs/{jobId}: the job's progress, computed from the ledger.
import { Checked, FrameRecord, JOB_ID_PATTERN, JobManifest, refused } from "../shared/contract";
import { computeJobStatus, readFrameRecords, readManifest } from "../shared/ledger";
import { ApiReply, errorReply, jobNotFound, upstreamError } from "./replies";
import { JobApiDeps } from "./settings";

/** The job's manifest and frame records; 404 for an unknown (or impossible) id, 502/503 when S3 fails. */
export async function loadJob(
    deps: JobApiDeps,
    jobId: unknown,
): Promise<Checked<{ manifest: JobManifest; records: FrameRecord[] }>> {
    if (typeof jobId !== "string" || !JOB_ID_PATTERN.test(jobId)) return refused(jobNotFound(jobId));
    try {
        const manifest = await readManifest(deps.s3, deps.settings.rendersBucket, jobId);
        if (!manifest) return refused(jobNotFound(jobId));
        const records = await readFrameRecords(deps.s3, deps.settings.rendersBucket, jobId);
        return { ok: true, value: { manifest, records } };
    } catch (error) {
        return refused(upstreamError("storage_error", error));
    }
}

/** GET /jobs/{jobId}: the job's progress from the ledger. */
export async function getJobStatus(deps: JobApiDeps, jobId: unknown): Promise<ApiReply> {
    const job = await loadJob(deps, jobId);
    if (!job.ok) return errorReply(job.error);
    return {
        status: 200,
        body: computeJobStatus(job.value.manifest, job.value.records, deps.settings.maxReceiveCount),
    };
}
