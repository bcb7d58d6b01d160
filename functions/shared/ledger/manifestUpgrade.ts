// A version 1 manifest is a job without a frame summary: no summary shards and no queue progress in its
// ledger, its status computed from every frame record. Where the job API (or the local farm) opens a job, such a job
// is upgraded once, so that nothing past openJob meets the older shape: its summary is built from its records, its
// queue progress recorded complete (a submit then queued every frame in one go), its manifest rewritten current.
import { MANIFEST_VERSION } from "../contract/types";
import { shardsFromRecords } from "../frameSummary";
import { completedSubmit } from "../queueProgress";
import { Dispatches } from "./dispatches";
import { FrameRecords } from "./frameRecords";
import { Manifests, StoredManifest } from "./manifests";
import { SummaryShards } from "./summaryShards";

export interface JobOpening {
    /**
     * The job's manifest and its ETag in the current version (a version 1 manifest upgraded first), or
     * undefined for an unknown job. For the job API and the local farm, which list and write the ledger; a reader of
     * the manifest's request and frames only (the renderer, the CLI) reads it as stored with readManifest.
     */
    openJob(jobId: string): Promise<StoredManifest | undefined>;
}

export function jobOpeningIn(
    manifests: Manifests,
    records: Pick<FrameRecords, "readFrameRecords">,
    summary: Pick<SummaryShards, "writeShard">,
    dispatches: Pick<Dispatches, "writeQueueProgress">,
): JobOpening {
    return {
        async openJob(jobId) {
            const stored = await manifests.readStoredManifest(jobId);
            if (!stored || stored.manifest.v === MANIFEST_VERSION) return stored;
            const { manifest } = stored;
            for (const shard of shardsFromRecords(jobId, await records.readFrameRecords(jobId)))
                await summary.writeShard(shard);
            // Created only if absent: whichever request upgrades first writes it, the others leave it.
            await dispatches.writeQueueProgress(
                completedSubmit(jobId, manifest.frames, new Date(manifest.createdAt)),
                undefined,
            );
            // Over the version read only; another request that upgraded it meanwhile wrote the same.
            await manifests.writeManifest({ ...manifest, v: MANIFEST_VERSION }, { ifMatch: stored.etag });
            return manifests.readStoredManifest(jobId);
        },
    };
}
