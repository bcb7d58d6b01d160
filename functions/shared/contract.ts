// The job contract: the request, the frame message, the ledger keys and the error shape.
// Imported by the job API, the renderer, the CLI and the local farm; nothing re-declares these shapes.
// Everything here is a plain function or constant: the job API is serialized by Pulumi's closure
// serializer (see functions/README.md).
import * as crypto from "crypto";
import { z } from "zod";

export const ENGINES = ["CYCLES", "EEVEE", "WORKBENCH"] as const;
export type Engine = (typeof ENGINES)[number];

export const FORMATS = ["PNG", "JPEG", "OPEN_EXR", "TIFF"] as const;
export type Format = (typeof FORMATS)[number];

export const FORMAT_EXTENSIONS: Record<Format, string> = {
    PNG: "png",
    JPEG: "jpg",
    OPEN_EXR: "exr",
    TIFF: "tif",
};

export const FRAME_MESSAGE_VERSION = 1;
/** 2: the job keeps a frame summary (functions/shared/frameSummary.ts) and its queue progress (queueProgress.ts). */
export const MANIFEST_VERSION = 2;
export const JOB_ID_PATTERN = /^[a-z0-9-]{1,64}$/;
/** Largest request body the job API reads; a real request is a few hundred bytes. */
export const MAX_REQUEST_BYTES = 256 * 1024;
/** Blender's own frame limit (MAXFRAME). */
export const MAX_FRAME_NUMBER = 1048574;
export const MAX_ASSETS = 1000;
export const MAX_SAMPLES = 1 << 20;
/** Fail fast by default: the job stops once its first 3 distinct frames fail with the same error and none is done. */
export const DEFAULT_FAIL_FAST_FRAMES = 3;
export const MAX_FAIL_FAST_FRAMES = 1000;
/** Most probe frames an estimate may ask for. */
export const MAX_PROBE_FRAMES = 64;
/** Fewest and most regions a tiled job splits each frame into (JobRequest.tiles). */
export const MIN_TILES = 2;
export const MAX_TILES = 64;
/** S3's own limit on key length, in bytes. */
const MAX_KEY_BYTES = 1024;

/** AWS Lambda x86 price per GB-second, us-east-1, first tier: https://aws.amazon.com/lambda/pricing/ */
export const LAMBDA_X86_USD_PER_GB_SECOND = 0.0000166667;

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
    /** 1: a job from before the frame summary; its status is computed from every frame record. */
    v: 1 | typeof MANIFEST_VERSION;
    jobId: string;
    request: JobRequest;
    /** Identifies the request body: resubmitting the same jobId with another body is a conflict. */
    requestHash: string;
    frames: number[];
    scenesBucket: string;
    sceneEtag: string;
    /** The ETags of `request.assets`, in their order, as the frame messages carry them (absent in older manifests). */
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

/**
 * queueing: the frames of a submit (or a retry) are still being sent; a resubmit (or retry) carries on.
 * probed: a job of probe frames only (JobRequest.probe) whose probe frames all ended.
 * cancelled, stopped_budget, stopped_failing: the job was stopped (see JobStop) with frames left that will not render.
 */
export type JobState = "probed" | "queueing" | "queued" | "rendering" | "complete" | "failed" | "partial" | StopState;

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

export function jobStopKey(jobId: string): string {
    return `jobs/${jobId}/stop.json`;
}

export interface FrameFailure {
    frame: number;
    attempts: number;
    error: string;
    logTail: string;
}

/** Where sending a job's frames stands: the latest submit or retry's frames, and how many of them are queued. */
export interface QueueProgress {
    kind: "submit" | "retry";
    /** Frames queued so far (a resubmit or retry re-sends at most the last group of a request that was killed). */
    queued: number;
    total: number;
    complete: boolean;
    /** Incomplete and no request is sending: a resubmit (submit) or a retry carries on where it stopped. */
    stalled: boolean;
}

/** What the farm runs frames with: how long a job may take follows from these (the CLI's wait deadline). */
export interface FarmTiming {
    frameTimeoutSeconds: number;
    maxReceiveCount: number;
    maxConcurrency: number;
    /** A job whose ledger was quiet this long has no frame left in flight: the retry requeues its lost frames. */
    staleAfterSeconds: number;
}

export interface JobStatus {
    jobId: string;
    state: JobState;
    frames: { total: number; done: number; failed: number; pending: number };
    /**
     * The pending frames by why: an attempt failed and SQS delivers it again, a retry requeued it, not started yet; and
     * in a tiled job, tiling: some of its tiles are done and none is failing.
     */
    pendingBy?: { retrying: number; requeued: number; notStarted: number; tiling?: number };
    /**
     * One page of the failed frames, ascending (at most FAILURES_PAGE_SIZE): frames.failed says how many there are, and
     * failuresNext, when present, is the token for `GET /jobs/{jobId}?failures=<token>`, the next page.
     */
    failures: FrameFailure[];
    failuresNext?: string;
    /** Present once the job keeps its queue progress (jobs submitted since it exists). */
    queue?: QueueProgress;
    /** Present when the job was stopped (its state says how): why and when. */
    stop?: Omit<JobStop, "v" | "jobId" | "liftedAt">;
    /** The request's budget, USD, when it has one. */
    maxCostUsd?: number;
    /** A job of probe frames only (an estimate): `frames` of its `of` frames are asked for. */
    probe?: { frames: number; of: number };
    /** A tiled job: each frame is `of` tiles; `done` of the `total` tiles are rendered (a done frame counts all its). */
    tiles?: { of: number; done: number; total: number };
    timing?: FarmTiming;
    outputPrefix: string;
    startedAt: string;
    updatedAt: string;
    renderSeconds: number;
    /** USD spent so far: every attempt of every frame. */
    costUsd: number;
}

/** Failed frames per status reply: each carries up to 4 KB of log, so a page stays far below Lambda's 6 MB reply. */
export const FAILURES_PAGE_SIZE = 50;

/** POST /jobs: 202. */
export interface SubmitReply {
    jobId: string;
    frames: number;
    /** Frames queued so far: less than frames when the request ran out of time (state "queueing"; submit it again). */
    queued: number;
    state: string;
    statusUrl: string;
    /** Files the scene references that were found in the bucket and added to the job's assets (preflight only; absent when none). */
    assetsAdded?: string[];
    /** What the preflight found worth a look but not worth refusing the job for, e.g. absolute paths (absent when none). */
    warnings?: string[];
}

/** POST /jobs/{jobId}/retry: 202. */
export interface RetryReply {
    jobId: string;
    /** Frame messages sent by this retry. */
    requeued: number;
    /** Of those, frames whose record said failed (their messages are in the DLQ). */
    failed: number;
    /** Of those, frames with no record or a stuck "retrying" one, requeued because the job had gone quiet. */
    lost: number;
    /** Pending frames left alone because the farm may still be rendering them. */
    inFlight: number;
    /** Frames of an earlier submit or retry that was cut off, queued by this request (it carries on first). */
    resumed: number;
    /** Frame messages this request sent, resumed ones included. */
    queued: number;
    /** The job's old messages removed from the dead-letter queue; complete: none are left there. */
    deadLetters: { removed: number; complete: boolean };
    state: string;
    statusUrl: string;
    message: string;
}

/** A range: the low and high ends and the value expected between them. */
export interface Estimate {
    low: number;
    expected: number;
    high: number;
}

/**
 * What a job will cost and take, measured before it runs: probe frames rendered at the job's settings on the farm
 * itself (`render-farm estimate`). Written as quote.json beside the frames it downloads.
 */
export interface Quote {
    jobId: string;
    /**
     * The probe frames rendered, and each one's render seconds, billed seconds (a tiled frame's: its tiles' and its
     * stitch's), cost, and the seconds of its billing that were a renderer's cold start.
     */
    probes: { frame: number; renderSeconds: number; billedSeconds: number; costUsd: number; coldSeconds?: number }[];
    frames: number;
    /** A tiled job: each frame is this many invocations. */
    tiles?: number;
    memoryMb: number;
    /** USD per GB-second used, its region, and where the price comes from. */
    price: { usdPerGbSecond: number; region: string; source: string };
    renderSecondsPerFrame: Estimate;
    /** Render seconds for the whole job (every frame). */
    renderSeconds: Estimate;
    /**
     * Seconds billed per frame besides Blender's render and a renderer's cold start: the assets' downloads, the
     * upload, the records, a tiled frame's stitch.
     */
    overheadSecondsPerFrame?: Estimate;
    /** A renderer's cold start (Blender's start, the scene's download and load), paid once by each of `renderers`. */
    coldStart?: { seconds: Estimate; renderers: number };
    /** Billed GB-seconds for the whole job. */
    gbSeconds: Estimate;
    /** USD for the whole job: Lambda duration plus requests, SQS and API Gateway. */
    costUsd: Estimate;
    /** Of costUsd: the requests, SQS and API Gateway (the rest is Lambda's duration, what a job's ledger counts). */
    requestsUsd?: number;
    /** Wall seconds at the farm's concurrency. */
    wallSeconds: Estimate;
    concurrency: number;
    createdAt: string;
}

/** POST /jobs/{jobId}/cancel: 200. */
export interface CancelReply {
    jobId: string;
    state: "cancelled";
    /** When the job was cancelled: the first cancel's time (a cancel again changes nothing). */
    at: string;
    frames: { total: number; done: number; failed: number; pending: number };
    message: string;
    statusUrl: string;
}

/**
 * The stack outputs other stacks and the CLI consume (`pulumi stack output --json`): apiUrl, the two bucket names,
 * the frame queue's and the dead-letter queue's URLs, the two function names, imageUri (by digest) and region.
 */
export const STACK_OUTPUT_NAMES = [
    "apiUrl",
    "scenesBucket",
    "rendersBucket",
    "frameQueueUrl",
    "deadLetterQueueUrl",
    "rendererFunctionName",
    "jobApiFunctionName",
    "imageUri",
    "region",
] as const;
export type StackOutputName = (typeof STACK_OUTPUT_NAMES)[number];

/** The stack outputs' values; the local farm writes the same shape plus `awsEndpoint` (where its emulator listens). */
export type FarmOutputs = Record<StackOutputName, string> & { awsEndpoint?: string };

/** The error body of every 4xx reply: `{error:{code,message,field}}` (plus `missing` for 422). */
export interface ApiError {
    status: number;
    code: string;
    message: string;
    field?: string;
    missing?: string[];
}

/** What a check answers: the value, or the error a caller replies with (see functions/shared/errors.ts). */
export type Checked<T> = { ok: true; value: T } | { ok: false; error: ApiError };

/** The failed side of a Checked. */
export function refused(error: ApiError): { ok: false; error: ApiError } {
    return { ok: false, error };
}

export function apiError(status: number, code: string, message: string, field?: string): ApiError {
    return field === undefined ? { status, code, message } : { status, code, message, field };
}

export function errorBody(error: ApiError): { error: Omit<ApiError, "status"> } {
    const { status: _status, ...rest } = error;
    return { error: rest };
}

// ---- ledger keys ----------------------------------------------------------------------------

export function manifestKey(jobId: string): string {
    return `jobs/${jobId}/job.json`;
}

export function frameRecordsPrefix(jobId: string): string {
    return `jobs/${jobId}/frames/`;
}

export function frameRecordKey(jobId: string, frame: number): string {
    return `${frameRecordsPrefix(jobId)}${frame}.json`;
}

/** A tiled frame's working objects: each tile's record and image, and the stitch's election marker. */
export function frameTilesPrefix(jobId: string, frame: number): string {
    return `jobs/${jobId}/tiles/${frame}/`;
}

export function tileRecordKey(jobId: string, frame: number, tile: number): string {
    return `${frameTilesPrefix(jobId, frame)}${tile}.json`;
}

/** A tile's rendered image (the whole frame's size, only its region rendered), deleted once the frame is stitched. */
export function tileImageKey(jobId: string, frame: number, tile: number, format: Format): string {
    return `${frameTilesPrefix(jobId, frame)}${tile}.${FORMAT_EXTENSIONS[tileFormatOf(format)]}`;
}

/** Written if absent by the renderer that stitches the frame: one renderer wins, however many find the tiles all done. */
export function stitchMarkerKey(jobId: string, frame: number): string {
    return `${frameTilesPrefix(jobId, frame)}stitch.json`;
}

/** OpenEXR codecs that change the pixels (PXR24 rounds 32-bit floats): a tile is stored losslessly instead. */
export const LOSSY_EXR_CODECS = ["DWAA", "DWAB", "B44", "B44A", "PXR24"] as const;
export type LossyExrCodec = (typeof LOSSY_EXR_CODECS)[number];

/**
 * How a tiled frame whose tiles are stored losslessly is encoded once stitched: with Blender's own encoder and the
 * scene's settings, so that it is the file Blender writes for the whole frame (a JPEG, or an OpenEXR with a lossy
 * codec: Blender 5 takes the DWA level from `quality`).
 */
export interface FrameEncoding {
    format: "JPEG" | "OPEN_EXR";
    /** The scene's image quality (0 to 100). */
    quality: number;
    /** JPEG only: grayscale or color. */
    colorMode?: "BW" | "RGB";
    /** OPEN_EXR only. */
    exrCodec?: LossyExrCodec;
    /** OPEN_EXR only: half ("16") or full ("32") floats. */
    colorDepth?: "16" | "32";
}

/** What a tile renders to: the frame's format, except JPEG, whose tiles are lossless PNG (the frame is encoded once). */
export function tileFormatOf(format: Format): Format {
    return format === "JPEG" ? "PNG" : format;
}

export function outputPrefix(jobId: string): string {
    return `renders/${jobId}/`;
}

/** `renders/<jobId>/frame_0007.png`: at least four digits, more when the frame needs them. */
export function frameOutputKey(jobId: string, frame: number, format: Format): string {
    return `${outputPrefix(jobId)}frame_${String(frame).padStart(4, "0")}.${FORMAT_EXTENSIONS[format]}`;
}

// ---- object keys ----------------------------------------------------------------------------

/** Why `key` is not a safe S3 key to mirror into a work dir, or undefined when it is. */
export function objectKeyProblem(key: string): string | undefined {
    if (key.length === 0) return "is empty";
    if (Buffer.byteLength(key, "utf8") > MAX_KEY_BYTES) return `is longer than ${MAX_KEY_BYTES} bytes`;
    if (key.startsWith("/")) return "starts with '/'";
    if (key.includes("\\")) return "contains '\\'";
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what this refuses
    if (/[\u0000-\u001f\u007f]/.test(key)) return "contains a control character";
    const segments = key.split("/");
    if (segments.some((segment) => segment === "..")) return "contains a '..' segment";
    if (segments.some((segment) => segment === "." || segment === "")) return "contains an empty or '.' segment";
    return undefined;
}

// ---- frame specs ----------------------------------------------------------------------------

/**
 * Parses `"1-250"`, `"1-250x2"`, `"1,5,10-20"` into sorted, distinct frame numbers.
 * The count is computed before anything is expanded, so a huge range costs nothing.
 */
export function parseFrameSpec(spec: string, maxFrames: number): Checked<number[]> {
    const invalid = (message: string) => ({
        ok: false as const,
        error: apiError(400, "invalid_frames", message, "frames"),
    });
    if (spec.trim() === "") return invalid('frames is empty; use e.g. "1-250", "1-250x2" or "1,5,10-20"');
    const ranges: { start: number; end: number; step: number }[] = [];
    let upperBound = 0;
    for (const rawPart of spec.split(",")) {
        const part = rawPart.trim();
        const match = /^(\d{1,7})(?:-(\d{1,7})(?:x(\d{1,7}))?)?$/.exec(part);
        if (!match) return invalid(`frames part "${part}" is not N, A-B or A-BxS with whole numbers >= 0`);
        const start = Number(match[1]);
        const end = match[2] === undefined ? start : Number(match[2]);
        const step = match[3] === undefined ? 1 : Number(match[3]);
        if (start > MAX_FRAME_NUMBER || end > MAX_FRAME_NUMBER)
            return invalid(`frames part "${part}" is past Blender's last frame ${MAX_FRAME_NUMBER}`);
        if (end < start) return invalid(`frames part "${part}" is reversed: ${start} is after ${end}`);
        if (step < 1) return invalid(`frames part "${part}" has step 0; the step must be at least 1`);
        ranges.push({ start, end, step });
        upperBound += Math.floor((end - start) / step) + 1;
        if (upperBound > maxFrames) break;
    }
    if (upperBound > maxFrames) {
        return {
            ok: false,
            error: apiError(
                413,
                "too_many_frames",
                `frames "${spec}" asks for more than this farm's limit of ${maxFrames} frames per job`,
                "frames",
            ),
        };
    }
    const frames = new Set<number>();
    for (const { start, end, step } of ranges) {
        for (let frame = start; frame <= end; frame += step) frames.add(frame);
    }
    return { ok: true, value: [...frames].sort((a, b) => a - b) };
}

/** The canonical spec of a frame list, e.g. [1,2,3,7] -> "1-3,7". */
export function formatFrameSpec(frames: number[]): string {
    const parts: string[] = [];
    let index = 0;
    while (index < frames.length) {
        let last = index;
        while (last + 1 < frames.length && frames[last + 1] === frames[last] + 1) last++;
        parts.push(last === index ? `${frames[index]}` : `${frames[index]}-${frames[last]}`);
        index = last + 1;
    }
    return parts.join(",");
}

// ---- the job request ------------------------------------------------------------------------

function jobRequestSchema(limits: JobLimits) {
    const dimension = z.number().int().min(1).max(limits.maxResolution);
    return z
        .object({
            scene: z.string(),
            assets: z.array(z.string()).max(MAX_ASSETS).default([]),
            frames: z.string().max(1000).optional(),
            engine: z.enum(ENGINES).optional(),
            samples: z.number().int().min(1).max(MAX_SAMPLES).optional(),
            resolution: z
                .object({
                    x: dimension.optional(),
                    y: dimension.optional(),
                    percentage: z.number().int().min(1).max(100).optional(),
                })
                .strict()
                .refine(
                    (resolution) => Object.keys(resolution).length > 0,
                    "resolution needs at least one of x, y, percentage",
                )
                .optional(),
            format: z.enum(FORMATS).default("PNG"),
            jobId: z.string().regex(JOB_ID_PATTERN, "jobId must be 1-64 characters of a-z, 0-9 and '-'").optional(),
            maxCostUsd: z.number().finite().positive().max(1_000_000).optional(),
            failFast: z.number().int().min(0).max(MAX_FAIL_FAST_FRAMES).optional(),
            probe: z.number().int().min(1).max(MAX_PROBE_FRAMES).optional(),
            tiles: z
                .union([z.number().int().min(MIN_TILES).max(MAX_TILES), z.literal("auto")], {
                    errorMap: () => ({
                        message: `tiles must be a whole number from ${MIN_TILES} to ${MAX_TILES}, or "auto"`,
                    }),
                })
                .optional(),
        })
        .strict();
}

/** Validates a parsed request body: types, unknown fields, bounds, keys. Frames are checked by parseFrameSpec. */
export function parseJobRequest(body: unknown, limits: JobLimits): Checked<JobRequest> {
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
        return { ok: false, error: apiError(400, "invalid_request", "the request body must be a JSON object") };
    }
    const parsed = jobRequestSchema(limits).safeParse(body);
    if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const field =
            issue.code === "unrecognized_keys" ? [...issue.path, ...issue.keys].join(".") : issue.path.join(".");
        const message =
            issue.code === "unrecognized_keys"
                ? `unknown field ${issue.keys.map((key) => `"${key}"`).join(", ")}`
                : `${field || "body"}: ${issue.message}`;
        return { ok: false, error: apiError(400, "invalid_request", message, field || undefined) };
    }
    const request = parsed.data as JobRequest;
    const sceneProblem =
        objectKeyProblem(request.scene) ?? (/\.blend$/i.test(request.scene) ? undefined : "is not a .blend file");
    if (sceneProblem)
        return { ok: false, error: apiError(400, "invalid_key", `scene "${request.scene}" ${sceneProblem}`, "scene") };
    for (const [index, asset] of request.assets.entries()) {
        const problem = objectKeyProblem(asset);
        if (problem)
            return { ok: false, error: apiError(400, "invalid_key", `asset "${asset}" ${problem}`, `assets.${index}`) };
    }
    if (request.engine && !limits.allowedEngines.includes(request.engine)) {
        return {
            ok: false,
            error: apiError(
                400,
                "engine_not_allowed",
                `engine ${request.engine} is not allowed on this farm (allowed: ${limits.allowedEngines.join(", ")})`,
                "engine",
            ),
        };
    }
    return { ok: true, value: request };
}

/** The settings every frame message of a request carries. */
export function renderSettingsOf(request: JobRequest): RenderSettings {
    const settings: RenderSettings = { format: request.format };
    if (request.engine) settings.engine = request.engine;
    if (request.samples) settings.samples = request.samples;
    if (request.resolution) settings.resolution = request.resolution;
    return settings;
}

// ---- the frame message ----------------------------------------------------------------------

/** S3's ETag of a single-part object ("<md5 hex>") or a multipart one ("<md5 hex>-<parts>"), quotes included. */
const S3_ETAG = /^"([0-9a-f]{32})(-[1-9][0-9]{0,4})?"$/;
/** One entry of encodeEtags: 22 base64url characters of an MD5 and an optional part count, or "~" and raw text. */
const ENCODED_ETAG = /^(?:([A-Za-z0-9_-]{22})(-[1-9][0-9]{0,4})?|~([A-Za-z0-9_-]*))$/;

/**
 * ETags as one short string, comma-separated in order: S3's quoted MD5 ETag as its 16 bytes in base64url (22
 * characters, "-<parts>" after it for a multipart one), any other ETag as "~" and base64url of its text, an unknown
 * one as nothing. 23 to 29 bytes an asset instead of 39 as a JSON array of strings: 1,000 pinned assets fit in an SQS
 * message with the keys they had room for before.
 */
export function encodeEtags(etags: string[]): string {
    return etags
        .map((etag) => {
            if (etag === "") return "";
            const match = S3_ETAG.exec(etag);
            if (match) return Buffer.from(match[1], "hex").toString("base64url") + (match[2] ?? "");
            return `~${Buffer.from(etag, "utf8").toString("base64url")}`;
        })
        .join(",");
}

/** The `count` ETags encodeEtags wrote ("" where unknown), or undefined when `encoded` is not that. */
export function decodeEtags(encoded: string, count: number): string[] | undefined {
    const entries = count === 0 && encoded === "" ? [] : encoded.split(",");
    if (entries.length !== count) return undefined;
    const etags: string[] = [];
    for (const entry of entries) {
        if (entry === "") {
            etags.push("");
            continue;
        }
        const match = ENCODED_ETAG.exec(entry);
        if (!match) return undefined;
        if (match[3] !== undefined) etags.push(Buffer.from(match[3], "base64url").toString("utf8"));
        else etags.push(`"${Buffer.from(match[1], "base64url").toString("hex")}${match[2] ?? ""}"`);
    }
    return etags;
}

/** The message's assets, each with the ETag to download it with ("" when the message pins none). */
export function pinnedAssets(message: FrameMessage): { key: string; etag: string }[] {
    const etags = message.assetEtags === undefined ? undefined : decodeEtags(message.assetEtags, message.assets.length);
    return message.assets.map((key, index) => ({ key, etag: etags?.[index] ?? "" }));
}

function frameMessageSchema() {
    const key = z.string().refine((value) => objectKeyProblem(value) === undefined, "is not a safe object key");
    return z
        .object({
            v: z.literal(FRAME_MESSAGE_VERSION),
            jobId: z.string().regex(JOB_ID_PATTERN),
            frame: z.number().int().min(0).max(MAX_FRAME_NUMBER),
            scene: key,
            sceneEtag: z.string(),
            assets: z.array(key).max(MAX_ASSETS),
            assetEtags: z.string().optional(),
            settings: z.object({
                engine: z.enum(ENGINES).optional(),
                samples: z.number().int().min(1).max(MAX_SAMPLES).optional(),
                resolution: z
                    .object({
                        x: z.number().int().min(1).optional(),
                        y: z.number().int().min(1).optional(),
                        percentage: z.number().int().min(1).max(100).optional(),
                    })
                    .optional(),
                format: z.enum(FORMATS),
            }),
            output: z.object({ bucket: z.string().min(1), key }),
            tile: z
                .number()
                .int()
                .min(0)
                .max(MAX_TILES - 1)
                .optional(),
            of: z.number().int().min(MIN_TILES).max(MAX_TILES).optional(),
        })
        .passthrough()
        .refine((message) => (message.tile === undefined) === (message.of === undefined), {
            message: "tile and of come together",
            path: ["tile"],
        })
        .refine((message) => message.tile === undefined || message.tile < (message.of ?? 0), {
            message: "tile must be below of",
            path: ["tile"],
        });
}

function legacyFrameMessageSchema() {
    const key = z.string().refine((value) => objectKeyProblem(value) === undefined, "is not a safe object key");
    return z.object({
        file_name: key,
        frame: z.coerce.number().int().min(0).max(MAX_FRAME_NUMBER),
        support_files: z.array(key).max(MAX_ASSETS).default([]),
    });
}

/** A job id for seed-era messages, which carried none: derived from the scene key so retries share it. */
export function legacyJobId(sceneKey: string): string {
    const slug = sceneKey
        .toLowerCase()
        .replace(/\.blend$/, "")
        .replace(/[^a-z0-9]+/g, "-")
        .replace(/^-+|-+$/g, "");
    // The slug alone would merge keys that differ in case, punctuation or past 64 characters: the hash keeps them apart.
    const hash = crypto.createHash("sha256").update(sceneKey).digest("hex").slice(0, 8);
    return `${`legacy-${slug}`.slice(0, 55).replace(/-+$/, "")}-${hash}`;
}

/** Parses an SQS body: the versioned message, or the seed-era `{file_name, frame, support_files}`. */
export function parseFrameMessage(body: string, rendersBucket: string): Checked<FrameMessage> {
    let json: unknown;
    try {
        json = JSON.parse(body);
    } catch {
        return { ok: false, error: apiError(400, "invalid_message", "the frame message is not JSON") };
    }
    const isLegacy = typeof json === "object" && json !== null && "file_name" in json && !("v" in json);
    if (isLegacy) {
        const legacy = legacyFrameMessageSchema().safeParse(json);
        if (!legacy.success) return { ok: false, error: messageError(legacy.error.issues[0]) };
        const jobId = legacyJobId(legacy.data.file_name);
        return {
            ok: true,
            value: {
                v: FRAME_MESSAGE_VERSION,
                jobId,
                frame: legacy.data.frame,
                scene: legacy.data.file_name,
                sceneEtag: "",
                assets: legacy.data.support_files,
                settings: { format: "PNG" },
                output: { bucket: rendersBucket, key: frameOutputKey(jobId, legacy.data.frame, "PNG") },
            },
        };
    }
    const parsed = frameMessageSchema().safeParse(json);
    if (!parsed.success) return { ok: false, error: messageError(parsed.error.issues[0]) };
    const message = parsed.data as FrameMessage;
    if (message.assetEtags !== undefined && decodeEtags(message.assetEtags, message.assets.length) === undefined)
        return {
            ok: false,
            error: apiError(
                400,
                "invalid_message",
                `frame message assetEtags is not ${message.assets.length} encoded ETag(s), one per asset`,
                "assetEtags",
            ),
        };
    // The renderer writes where the message says, so it may say only the job's own prefix of the renders bucket.
    if (message.output.bucket !== rendersBucket || !message.output.key.startsWith(outputPrefix(message.jobId))) {
        const where = `s3://${message.output.bucket}/${message.output.key}`;
        return {
            ok: false,
            error: apiError(
                400,
                "invalid_message",
                `frame message output ${where} is not under s3://${rendersBucket}/${outputPrefix(message.jobId)}`,
                "output",
            ),
        };
    }
    return { ok: true, value: message };
}

function messageError(issue: z.ZodIssue): ApiError {
    const field = issue.path.join(".");
    return apiError(400, "invalid_message", `frame message ${field || "body"}: ${issue.message}`, field || undefined);
}

/** Estimated Lambda cost of one invocation. */
export function lambdaCostUsd(wallMs: number, memoryMb: number): number {
    return (wallMs / 1000) * (memoryMb / 1024) * LAMBDA_X86_USD_PER_GB_SECOND;
}
