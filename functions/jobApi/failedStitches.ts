// A retry of a tiled frame whose stitch failed on every delivery renders its tiles again rather than stitching the
// same images again (a corrupt tile, a tile another Blender rendered differently): their records and images are
// deleted before the retry's messages go out, so each tile message finds its tile not done and renders it. The frame's
// summary entry forgets its done tiles when the retry marks it requeued (frameSummary.applyRequeue).
import { DeleteObjectsCommand } from "@aws-sdk/client-s3";
import { JobManifest, tileImageKey, tileRecordKey } from "../shared/contract";
import { storageError } from "../shared/awsErrors";
import { farmError } from "../shared/errors";
import { JobSummary, stitchFailed } from "../shared/frameSummary";
import { JobApiDeps } from "./settings";

/** Keys per DeleteObjects request: S3's limit. */
const DELETE_BATCH_KEYS = 1000;

/** The frames among `frames` whose tiles are rendered and whose stitch failed. */
export function failedStitchFrames(summary: JobSummary, frames: readonly number[]): number[] {
    return frames.filter((frame) => stitchFailed(summary.entries.get(frame)));
}

/** Deletes the tile records and images of `frames`, so that their tiles render again; throws if any stays. */
export async function clearFailedStitches(
    deps: JobApiDeps,
    manifest: JobManifest,
    frames: readonly number[],
): Promise<void> {
    const of = manifest.tiles;
    if (!of) return;
    const bucket = deps.settings.rendersBucket;
    const keys = frames.flatMap((frame) =>
        Array.from({ length: of }, (_, tile) => [
            tileRecordKey(manifest.jobId, frame, tile),
            tileImageKey(manifest.jobId, frame, tile, manifest.settings.format),
        ]).flat(),
    );
    for (let from = 0; from < keys.length; from += DELETE_BATCH_KEYS) {
        const batch = keys.slice(from, from + DELETE_BATCH_KEYS);
        let errors: { Key?: string; Code?: string; Message?: string }[];
        try {
            const reply = await deps.s3.send(
                new DeleteObjectsCommand({
                    Bucket: bucket,
                    Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
                }),
            );
            errors = reply.Errors ?? [];
        } catch (error) {
            throw storageError("DeleteObjects", bucket, batch[0], error);
        }
        if (errors.length > 0)
            throw farmError(
                "storage_error",
                `DeleteObjects s3://${bucket}/${errors[0].Key} failed: ${errors[0].Code}: ${errors[0].Message} (${errors.length} of ${batch.length} tile objects not deleted); retry again`,
                503,
            );
    }
}
