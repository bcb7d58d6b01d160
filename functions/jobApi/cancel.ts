// POST /jobs/{jobId}/cancel: stop a job for good. Its frames not yet rendered never are: renderers delete the job's
// messages without starting Blender, and a submit or retry still sending its frames stops. Frames rendering at that
// moment finish, and are kept (and paid for). A second cancel answers the first one's time and changes nothing.
import { apiError } from "../shared/contract/apiErrors";
import { CancelReply } from "../shared/contract/replies";
import { ApiReply, errorReply, statusUrlOf, upstreamReply } from "./replies";
import { JobApiDeps, jobApiContext } from "./settings";
import { loadManifest } from "./status";

export async function cancelJob(deps: JobApiDeps, jobId: unknown, now: Date = new Date()): Promise<ApiReply> {
    const api = jobApiContext(deps);
    const { ledger, settings } = api;
    const loaded = await loadManifest(api, jobId);
    if (!loaded.ok) return errorReply(loaded.error);
    const manifest = loaded.value;
    try {
        const before = await ledger.readSummary(manifest, settings.maxReceiveCount);
        const earlier = await ledger.readJobStop(manifest.jobId);
        if (before.pending === 0 && earlier?.stop.state !== "cancelled")
            return errorReply(
                apiError(
                    409,
                    "job_finished",
                    `job ${manifest.jobId} has no frame left to render (${before.done} done, ${before.failed} failed): there is nothing to cancel`,
                    "jobId",
                ),
            );
        const stop = await ledger.stopJob({
            v: 1,
            jobId: manifest.jobId,
            state: "cancelled",
            at: now.toISOString(),
            message: `cancelled at ${now.toISOString()}: frames not yet rendered never will be; frames rendering then finished and were kept`,
        });
        // The stop that holds is this request's own unless the job was cancelled before.
        const cancelledNow = stop.at === now.toISOString();
        const reply: CancelReply = {
            jobId: manifest.jobId,
            state: "cancelled",
            at: stop.at,
            frames: { total: before.total, done: before.done, failed: before.failed, pending: before.pending },
            message: cancelledNow
                ? `job ${manifest.jobId} cancelled: ${before.pending} frame(s) not yet rendered will not be; frames rendering now finish and are kept`
                : `job ${manifest.jobId} was already cancelled at ${stop.at}`,
            statusUrl: statusUrlOf(manifest.jobId),
        };
        return { status: 200, body: reply };
    } catch (error) {
        return upstreamReply("storage_error", error);
    }
}
