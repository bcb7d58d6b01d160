// A retry of a tiled frame whose stitch failed on every delivery renders its tiles again rather than stitching the
// same images again (a corrupt tile, a tile another Blender rendered differently): their records and images are
// deleted before the retry's messages go out, so each tile message finds its tile not done and renders it. The frame's
// summary entry forgets its done tiles when the retry marks it requeued (frameSummary.applyRequeue).
import { JobManifest } from "../shared/contract/types";
import { JobSummary, stitchFailed } from "../shared/frameSummary";
import { JobApiContext } from "./settings";

/** The frames among `frames` whose tiles are rendered and whose stitch failed. */
export function failedStitchFrames(summary: JobSummary, frames: readonly number[]): number[] {
    return frames.filter((frame) => stitchFailed(summary.entries.get(frame)));
}

/** Deletes the tile records and images of `frames`, so that their tiles render again; throws if any stays. */
export async function clearFailedStitches(
    deps: JobApiContext,
    manifest: JobManifest,
    frames: readonly number[],
): Promise<void> {
    if (manifest.tiles) await deps.ledger.deleteTiles(manifest.jobId, frames, manifest.tiles, manifest.settings.format);
}
