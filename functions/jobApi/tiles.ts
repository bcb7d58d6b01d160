// A tiled job (JobRequest.tiles): how many regions each frame is split into, and what refuses it. A frame's tiles are
// messages of their own, so they count against the farm's messages per job; "auto" takes its count from the job's
// probe frames (an estimate), which say how long one whole frame renders.
import { ApiError, apiError } from "../shared/contract/apiErrors";
import { MAX_TILES, MIN_TILES } from "../shared/contract/limits";
import { Engine, JobManifest } from "../shared/contract/types";
import { JobLedger } from "../shared/ledger";

/** A tile should take at most this share of the renderer's timeout: room for a slow renderer, the scene's download, the stitch. */
export const AUTO_TILE_TIMEOUT_SHARE = 1 / 3;

/** The 413 when the job's frames times its tiles are more messages than the farm takes in one job. */
export function tooManyTiles(frames: number, tiles: number, maxFrames: number): ApiError | undefined {
    if (frames * tiles <= maxFrames) return undefined;
    return apiError(
        413,
        "too_many_frames",
        `${frames} frames of ${tiles} tiles each are ${frames * tiles} frame messages, over this farm's limit of ${maxFrames} per job; ask for fewer frames or tiles`,
        "tiles",
    );
}

/** The 422 for "auto" where no estimate says how long a frame takes. */
export function autoTilesNeedEstimate(jobId: string): ApiError {
    return apiError(
        422,
        "tiles_auto_needs_estimate",
        `tiles "auto" needs an estimate of job ${jobId} first (its probe frames say how long a frame renders): run \`render-farm estimate\` (or submit with "probe"), then submit with the same jobId; or give tiles as a number`,
        "tiles",
    );
}

/**
 * Tiles per frame so that one tile of the slowest frame measured takes at most AUTO_TILE_TIMEOUT_SHARE of the
 * renderer's timeout: 1 (no tiles) when whole frames already fit, at most MAX_TILES.
 */
export function autoTileCount(slowestFrameSeconds: number, frameTimeoutSeconds: number): number {
    const tiles = Math.ceil(slowestFrameSeconds / (frameTimeoutSeconds * AUTO_TILE_TIMEOUT_SHARE));
    if (tiles <= 1) return 1;
    return Math.min(MAX_TILES, Math.max(MIN_TILES, tiles));
}

/** The render seconds of the job's slowest done frame (its probes'), or undefined when none is done. */
export async function slowestDoneFrameSeconds(ledger: JobLedger, manifest: JobManifest): Promise<number | undefined> {
    const summary = await ledger.readSummary(manifest);
    let slowest: number | undefined;
    for (const entry of summary.entries.values()) {
        // Its render seconds over every attempt: a frame that failed once before it rendered reads slower, never faster.
        if (entry.s === "done" && (slowest === undefined || entry.r > slowest)) slowest = entry.r;
    }
    return slowest;
}

/** The 422 for a tiled job whose engine cannot render a region exactly as it renders it in the whole frame. */
export function tilesEngineProblem(engine: Engine): ApiError | undefined {
    if (engine === "CYCLES") return undefined;
    return tilesNotExact(
        `engine ${engine} cannot be split into tiles exactly: its anti-aliasing and screen-space effects (bloom, reflections, ambient occlusion, depth of field) read the whole frame, so tiles would show seams; render it without tiles, or with Cycles`,
    );
}

/** 422 tiles_not_exact: what in the job keeps a tiled frame from equalling the whole one, and what to change. */
export function tilesNotExact(reason: string): ApiError {
    return apiError(422, "tiles_not_exact", reason, "tiles");
}
