// The shapes the job API, the renderer, the CLI and the local farm exchange: the request, the frame message, and the
// ledger's documents (the manifest, the frame records, the stop). Nothing else re-declares them.
import type { FrameEncoding, Format } from "./formats";

export const ENGINES = ["CYCLES", "EEVEE", "WORKBENCH"] as const;
export type Engine = (typeof ENGINES)[number];

export const FRAME_MESSAGE_VERSION = 1;
/** 2: the job keeps a frame summary (functions/shared/frameSummary.ts) and its queue progress (queueProgress.ts). */
export const MANIFEST_VERSION = 2;

export interface Resolution {
    x?: number;
    y?: number;
    percentage?: number;
}

export interface RenderSettings {
    engine?: Engine;
    samples?: number;
    resolution?: Resolution;
    format: Format;
}

export interface JobRequest {
    scene: string;
    assets: string[];
    frames?: string;
    engine?: Engine;
    samples?: number;
    resolution?: Resolution;
    format: Format;
    jobId?: string;
    /**
     * The job's budget, USD: no frame starts once the spent cost plus the frame's expected cost would pass it, and the
     * job ends stopped_budget (frames already rendered are kept). Absent: no budget.
     */
    maxCostUsd?: number;
    /**
     * Stop the job (stopped_failing) once this many distinct frames have failed with the same error code and no frame
     * is done; 0 never stops early. Absent: DEFAULT_FAIL_FAST_FRAMES.
     */
    failFast?: number;
    /**
     * Render only this many probe frames (the first of the job's interleaved order: first, last, middle, …) to
     * estimate it. The same request again with a larger probe renders more; without probe, the rest of the job (the
     * probe frames are kept). Not part of the request's identity: a resubmit with another probe is no conflict.
     */
    probe?: number;
    /**
     * Split every frame into this many regions (MIN_TILES to MAX_TILES), each rendered by any renderer as its own
     * message and stitched exactly into the frame's usual key; "auto": as many as the job's probe frames (an estimate)
     * show each frame needs to fit well within the renderer's timeout. Not part of the request's identity: the pixels
     * are the same however a frame is split.
     */
    tiles?: number | "auto";
}

/** Bounds a deployment puts on requests (from the stack config, through the function's environment). */
export interface JobLimits {
    maxFrames: number;
    maxResolution: number;
    allowedEngines: Engine[];
}

export interface FrameMessage {
    v: typeof FRAME_MESSAGE_VERSION;
    jobId: string;
    frame: number;
    scene: string;
    sceneEtag: string;
    assets: string[];
    /**
     * The assets' ETags, in the order of `assets`, as one compact string (encodeEtags): the renderer downloads each
     * with IfMatch, so every frame renders the versions the job was submitted with. Absent in messages queued before
     * assets were pinned; those download whatever is there.
     */
    assetEtags?: string;
    settings: RenderSettings;
    output: { bucket: string; key: string };
    /**
     * A tile of a tiled job's frame: the 0-based region `tile` of the frame's `of` regions (a grid close to square in
     * pixels that Blender's script computes). Absent for a whole frame.
     */
    tile?: number;
    of?: number;
}

export interface JobManifest {
    /**
     * 1: a job whose ledger has no frame summary and no queue progress; the job API upgrades it where it opens the job
     * (functions/shared/ledger/manifestUpgrade.ts), so only the manifest's readers of request and frames meet it.
     */
    v: 1 | typeof MANIFEST_VERSION;
    jobId: string;
    request: JobRequest;
    /** Identifies the request body: resubmitting the same jobId with another body is a conflict. */
    requestHash: string;
    frames: number[];
    scenesBucket: string;
    sceneEtag: string;
    /** The ETags of `request.assets`, in their order, as the frame messages carry them (absent: the assets are not pinned). */
    assetEtags?: string;
    settings: RenderSettings;
    outputPrefix: string;
    createdAt: string;
    /**
     * Present while only probe frames are asked for: `frames` holds them, `jobFrames` every frame of the job, and
     * `count` how many probe frames were asked for. A resubmit without probe makes `frames` the job's.
     */
    probe?: { count: number; jobFrames: number[] };
    /** Regions each frame is split into (a tiled job), as the job's frame messages carry it; absent: whole frames. */
    tiles?: number;
}

/** done: the frame is on S3; retrying: an attempt failed and SQS will deliver it again; failed: no attempts left. */
export type FrameStatus = "done" | "retrying" | "failed";

export interface FrameRecord {
    jobId: string;
    frame: number;
    status: FrameStatus;
    attempts: number;
    startedAt: string;
    finishedAt: string;
    wallMs: number;
    blenderMs: number;
    renderSeconds?: number;
    memoryMb: number;
    costUsd: number;
    output?: { bucket: string; key: string };
    error?: { code: string; message: string };
    logTail?: string;
    /**
     * A tiled frame. In a tile's record (jobs/<jobId>/tiles/<frame>/<index>.json, and the frame's record while a tile
     * failed): which tile, and its region in the frame's pixels (origin top-left). In the frame's done record: `of`,
     * and the stitch's own seconds and cost; the record's renderSeconds and costUsd then sum every tile's too.
     */
    tile?: { index: number; of: number; region?: TileRegion; encode?: FrameEncoding };
    stitch?: { of: number; seconds: number; costUsd: number };
    /**
     * A failure written before a message's last attempt renders (renderer_killed): the attempt's own outcome replaces
     * it, so it stands only when the renderer was killed before reporting. Until this time the frame reads pending.
     */
    provisionalUntil?: string;
    /**
     * What this attempt (a frame's or a tile's) spent readying its renderer, seconds within wallMs, each 0 when the
     * renderer had it already: Blender's start (its spawn until it read the request), the scene's download
     * (`sceneBytes`) and its load into Blender. A renderer pays them once for a job's frames, except the load of a
     * scene not kept between frames (`sceneKept` false: its state depends on the frames before), paid every frame.
     */
    startup?: StartupCost;
}

export interface StartupCost {
    blenderSeconds: number;
    downloadSeconds: number;
    sceneBytes: number;
    loadSeconds: number;
    sceneKept: boolean;
}

/** A tile's pixels in its frame: x, y from the top-left corner, in final pixels (after the resolution percentage). */
export interface TileRegion {
    x: number;
    y: number;
    width: number;
    height: number;
    frameWidth: number;
    frameHeight: number;
}

/** Why a job stopped before its frames were all rendered: a person cancelled it, its budget, or its failing frames. */
export const STOP_STATES = ["cancelled", "stopped_budget", "stopped_failing"] as const;
export type StopState = (typeof STOP_STATES)[number];

/**
 * jobs/<jobId>/stop.json: the job is stopped. Renderers read it before every frame and delete a stopped job's message
 * without starting Blender; a submit or retry still sending frames stops sending. Frames rendering when it was written
 * finish, are kept and are paid for.
 */
export interface JobStop {
    v: 1;
    jobId: string;
    state: StopState;
    /** When it stopped. */
    at: string;
    message: string;
    /** stopped_failing: the error code its failing frames shared. */
    code?: string;
    /** stopped_budget: the budget, and what was spent when the stop was written. */
    budgetUsd?: number;
    spentUsd?: number;
    /** Set when a retry lifted the stop (budget or fail-fast only): the job runs again. */
    liftedAt?: string;
}
