// The job API: submit a job (validate, check S3, write the manifest, queue one message per frame),
// read its status from the ledger, and requeue its failed or lost frames.
// Plain functions over { s3, sqs, settings }: Pulumi's closure serializer ships this module inside the
// job API Lambda, so nothing here creates clients, schemas or class instances at module level.
import * as crypto from "crypto";
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import {
    apiError,
    ApiError,
    ENGINES,
    Engine,
    errorBody,
    FrameMessage,
    FRAME_MESSAGE_VERSION,
    frameOutputKey,
    FrameRecord,
    formatFrameSpec,
    JOB_ID_PATTERN,
    JobLimits,
    JobManifest,
    JobRequest,
    MANIFEST_VERSION,
    MAX_ASSETS,
    objectKeyProblem,
    outputPrefix,
    parseFrameSpec,
    parseJobRequest,
    renderSettingsOf,
} from "./contract";
import {
    awsErrorStatus,
    computeJobStatus,
    deleteFrameRecord,
    deleteManifest,
    describeAwsError,
    frameProgress,
    isNotFound,
    latestRecordByFrame,
    mapWithConcurrency,
    readFrameRecords,
    readManifest,
    writeFrameRecord,
    writeManifest,
} from "./ledger";
import { BlendSummary, externalReferences, isBlendFileError, isSequenceFrame, readBlendStream, resolveReferenceKey, sequencePattern } from "./blend";

export interface JobApiSettings {
    scenesBucket: string;
    rendersBucket: string;
    frameQueueUrl: string;
    limits: JobLimits;
    maxReceiveCount: number;
    /**
     * A retry requeues frames with no record (or a stuck "retrying" one) only when the frame queue is
     * empty, or when the job's ledger has been quiet this long. Default DEFAULT_STALE_AFTER_SECONDS.
     */
    staleAfterSeconds?: number;
    /**
     * Read every submitted scene before queueing (default on): frame range when the request has none, camera,
     * and every external file it references. Off: the request must name its frames and nothing is read.
     */
    preflight?: boolean;
}

export interface JobApiDeps {
    s3: S3Client;
    sqs: SQSClient;
    settings: JobApiSettings;
}

/** What a job API function answers: an HTTP status and a JSON body. Errors are replies too, never throws. */
export interface ApiReply {
    status: number;
    body: unknown;
}

export interface SubmitReply {
    jobId: string;
    frames: number;
    state: string;
    statusUrl: string;
    /** Files the scene references that were found in the bucket and added to the job's assets (preflight only; absent when none). */
    assetsAdded?: string[];
    /** What the preflight found worth a look but not worth refusing the job for, e.g. absolute paths (absent when none). */
    warnings?: string[];
}

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
    state: string;
    statusUrl: string;
    message: string;
}

export const DEFAULT_MAX_FRAMES_PER_JOB = 10000;
export const DEFAULT_MAX_RESOLUTION = 16384;
export const DEFAULT_MAX_RECEIVE_COUNT = 3;
/** Longer than a frame's whole life in the queue at the default settings (3 receives of a 15-minute render). */
export const DEFAULT_STALE_AFTER_SECONDS = 3600;
/** HeadObject calls in flight when checking a request's scene and assets. */
export const HEAD_CONCURRENCY = 16;
/** SendMessageBatch calls in flight when queueing a job's frames. */
export const SEND_CONCURRENCY = 24;
/** Attempts per batch entry (the SDK retries each call too) before a frame is reported as not queued. */
export const SEND_ATTEMPTS = 6;
/** SQS's limit on a message and on a whole batch at the queue's default MaximumMessageSize. */
export const MAX_MESSAGE_BYTES = 262144;

// ---- settings -------------------------------------------------------------------------------

function positiveInteger(env: Record<string, string | undefined>, name: string, fallback: number): number {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 1) throw new Error(`environment variable ${name} must be a whole number >= 1, got "${raw}"`);
    return value;
}

/** PREFLIGHT: on unless set to off/false/0/no. */
function switchValue(env: Record<string, string | undefined>, name: string, fallback: boolean): boolean {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback;
    const value = raw.trim().toLowerCase();
    if (["on", "true", "1", "yes"].includes(value)) return true;
    if (["off", "false", "0", "no"].includes(value)) return false;
    throw new Error(`environment variable ${name} must be on or off, got "${raw}"`);
}

/** The job API's settings from its Lambda environment; throws (at cold start) with the variable that is wrong. */
export function jobApiSettingsFromEnvironment(env: Record<string, string | undefined>): JobApiSettings {
    const missing = ["SCENES_BUCKET", "RENDERS_BUCKET", "FRAME_QUEUE_URL"].filter((name) => !env[name]);
    if (missing.length > 0) throw new Error(`the job API needs environment variable(s) ${missing.join(", ")}`);
    let allowedEngines: Engine[] = [...ENGINES];
    if (env.ALLOWED_ENGINES !== undefined && env.ALLOWED_ENGINES.trim() !== "") {
        const names = env.ALLOWED_ENGINES.split(",").map((name) => name.trim().toUpperCase()).filter((name) => name !== "");
        const unknown = names.filter((name) => !(ENGINES as readonly string[]).includes(name));
        if (unknown.length > 0) throw new Error(`ALLOWED_ENGINES has unknown engine(s) ${unknown.join(", ")}; known: ${ENGINES.join(", ")}`);
        allowedEngines = [...new Set(names)] as Engine[];
    }
    return {
        scenesBucket: env.SCENES_BUCKET!,
        rendersBucket: env.RENDERS_BUCKET!,
        frameQueueUrl: env.FRAME_QUEUE_URL!,
        limits: {
            maxFrames: positiveInteger(env, "MAX_FRAMES_PER_JOB", DEFAULT_MAX_FRAMES_PER_JOB),
            maxResolution: positiveInteger(env, "MAX_RESOLUTION", DEFAULT_MAX_RESOLUTION),
            allowedEngines,
        },
        maxReceiveCount: positiveInteger(env, "MAX_RECEIVE_COUNT", DEFAULT_MAX_RECEIVE_COUNT),
        staleAfterSeconds: positiveInteger(env, "STALE_AFTER_SECONDS", DEFAULT_STALE_AFTER_SECONDS),
        preflight: switchValue(env, "PREFLIGHT", true),
    };
}

// ---- replies --------------------------------------------------------------------------------

function errorReply(error: ApiError): ApiReply {
    return { status: error.status, body: errorBody(error) };
}

/** A 5xx for an S3/SQS failure: what failed and where, from the SDK's error name and message only. */
function upstreamReply(code: string, error: unknown): ApiReply {
    const message = error instanceof Error ? error.message : describeAwsError(error);
    const status = (error as { status?: number } | undefined)?.status ?? awsErrorStatus(error);
    return errorReply(apiError(status === 503 || status === 429 ? 503 : 502, code, message));
}

function statusUrlOf(jobId: string): string {
    return `/jobs/${jobId}`;
}

function jobNotFound(jobId: unknown): ApiReply {
    const shown = typeof jobId === "string" ? jobId.slice(0, 80) : String(jobId);
    return errorReply(apiError(404, "job_not_found", `no job "${shown}" on this farm`, "jobId"));
}

// ---- the request ----------------------------------------------------------------------------

/** JSON with object keys sorted, so equal requests hash equally whatever their key order. */
function canonicalJson(value: unknown): string {
    if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
    if (typeof value === "object" && value !== null) {
        const entries = Object.entries(value)
            .filter(([, item]) => item !== undefined)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(",")}}`;
    }
    return JSON.stringify(value);
}

/**
 * sha256 of the request as the farm understands it: defaults applied, frames canonical, assets as a set, jobId
 * left out. Without frames (the scene's own range) the hash covers the request as sent, so a resubmit matches.
 */
export function requestHashOf(request: JobRequest, frames: number[] | undefined): string {
    const { jobId: _jobId, ...rest } = request;
    const normalized = { ...rest, frames: frames === undefined ? undefined : formatFrameSpec(frames), assets: [...new Set(request.assets)].sort() };
    return crypto.createHash("sha256").update(canonicalJson(normalized)).digest("hex");
}

export function newJobId(): string {
    return crypto.randomUUID();
}

interface ObjectCheck {
    key: string;
    etag?: string;
    missing: boolean;
}

async function headObject(s3: S3Client, bucket: string, key: string): Promise<ObjectCheck> {
    try {
        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return { key, etag: head.ETag ?? "", missing: false };
    } catch (error) {
        // HEAD replies carry no body, so a missing bucket also looks like a plain 404 here.
        if (isNotFound(error)) return { key, missing: true };
        const failure = new Error(`HeadObject s3://${bucket}/${key} failed: ${describeAwsError(error)}`);
        (failure as Error & { status?: number }).status = awsErrorStatus(error);
        throw failure;
    }
}

/** Every key of the request checked with HeadObject; all missing ones are reported together. */
async function checkObjects(deps: JobApiDeps, keys: string[]): Promise<ObjectCheck[]> {
    return mapWithConcurrency(keys, HEAD_CONCURRENCY, (key) => headObject(deps.s3, deps.settings.scenesBucket, key));
}

export function frameMessageOf(manifest: JobManifest, rendersBucket: string, frame: number): FrameMessage {
    return {
        v: FRAME_MESSAGE_VERSION,
        jobId: manifest.jobId,
        frame,
        scene: manifest.request.scene,
        sceneEtag: manifest.sceneEtag,
        assets: manifest.request.assets,
        settings: manifest.settings,
        output: { bucket: rendersBucket, key: frameOutputKey(manifest.jobId, frame, manifest.settings.format) },
    };
}

// ---- preflight: read the scene before anything is queued ----------------------------------

/** Most keys of one sequence (image, clip, volume or cache frames) the preflight lists before giving up. */
export const MAX_SEQUENCE_KEYS = MAX_ASSETS;

export interface Preflight {
    summary: BlendSummary;
    /** ETag of the scene object that was read. */
    etag: string;
    /** Frames from the scene's own range, when the request had none. */
    frames?: number[];
    /** Referenced keys found in the bucket that the request did not list. */
    found: string[];
    /** Referenced keys absent from the bucket, each with what needs it. */
    missing: { key: string; neededBy: string }[];
    warnings: string[];
}

/** The scene object's bytes through the .blend reader, streamed: the object is never held in memory whole. */
async function readSceneObject(deps: JobApiDeps, key: string): Promise<{ summary: BlendSummary; etag: string }> {
    let object;
    try {
        object = await deps.s3.send(new GetObjectCommand({ Bucket: deps.settings.scenesBucket, Key: key }));
    } catch (error) {
        const failure = new Error(`GetObject s3://${deps.settings.scenesBucket}/${key} failed: ${describeAwsError(error)}`);
        (failure as Error & { status?: number }).status = awsErrorStatus(error);
        throw failure;
    }
    const body = object.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
    if (!body) throw new Error(`GetObject s3://${deps.settings.scenesBucket}/${key} returned no body`);
    try {
        return { summary: await readBlendStream(body, key), etag: object.ETag ?? "" };
    } finally {
        body.destroy?.();
    }
}

/** Every key of the sequence `key` is one frame of, from one listing of its folder (bounded). */
async function listSequence(deps: JobApiDeps, key: string): Promise<string[]> {
    const pattern = sequencePattern(key);
    if (!pattern) return [];
    const keys: string[] = [];
    let token: string | undefined;
    do {
        let page;
        try {
            page = await deps.s3.send(new ListObjectsV2Command({ Bucket: deps.settings.scenesBucket, Prefix: pattern.folder + pattern.head, ContinuationToken: token }));
        } catch (error) {
            const failure = new Error(`ListObjectsV2 s3://${deps.settings.scenesBucket}/${pattern.folder + pattern.head} failed: ${describeAwsError(error)}`);
            (failure as Error & { status?: number }).status = awsErrorStatus(error);
            throw failure;
        }
        for (const object of page.Contents ?? []) if (object.Key && isSequenceFrame(pattern, object.Key)) keys.push(object.Key);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token && keys.length <= MAX_SEQUENCE_KEYS);
    return keys.sort();
}

/** The scene's active scene, or the reply that refuses the job: no scene, no camera, or frames the farm cannot take. */
function sceneProblems(request: JobRequest, summary: BlendSummary, limits: JobLimits): ApiError | { frames?: number[] } {
    const scene = summary.scenes.find((candidate) => candidate.name === summary.activeScene);
    if (!scene) return apiError(400, "no_scene", `scene "${request.scene}" holds no scene to render`, "scene");
    if (scene.camera === null) {
        return apiError(400, "no_camera", `scene "${request.scene}": its scene "${scene.name}" has no active camera, so Blender cannot render it; set one (Scene Properties > Camera) and upload it again`, "scene");
    }
    if (request.frames !== undefined) return {};
    const own = `${scene.frameStart}-${scene.frameEnd}x${Math.max(1, scene.frameStep)}`;
    const frames = parseFrameSpec(own, limits.maxFrames);
    if (!frames.ok) return { ...frames.error, message: `the scene's own frame range ${own} (used because the request has no frames): ${frames.error.message}` };
    return { frames: frames.value };
}

/**
 * Reads the scene and checks what it needs: a camera, its frame range (when the request has none), and every
 * external file it references, resolved against the scene's key. Files listed in `assets` count as present;
 * others are looked up in the bucket (one HEAD per file, one listing per sequence).
 */
async function preflightScene(deps: JobApiDeps, request: JobRequest, assets: string[]): Promise<Preflight | ApiError> {
    const { summary, etag } = await readSceneObject(deps, request.scene);
    const checked = sceneProblems(request, summary, deps.settings.limits);
    if ("status" in checked) return checked;

    const listed = new Set([request.scene, ...assets]);
    const warnings: string[] = [];
    const single = new Map<string, string>();
    const sequences = new Map<string, string>();
    for (const reference of externalReferences(summary)) {
        const neededBy = `${reference.kind} "${reference.name}"${reference.tile === undefined ? "" : ` (tile ${reference.tile})`}`;
        const resolved = resolveReferenceKey(request.scene, reference.filepath);
        if (!resolved.ok) {
            warnings.push(`${neededBy}: ${resolved.message}`);
            continue;
        }
        const problem = objectKeyProblem(resolved.key);
        if (problem) {
            warnings.push(`${neededBy}: "${reference.filepath}" resolves to "${resolved.key}", which ${problem}; the farm cannot provide it`);
            continue;
        }
        if (reference.sequence && sequencePattern(resolved.key)) {
            if (!sequences.has(resolved.key)) sequences.set(resolved.key, neededBy);
        } else if (!listed.has(resolved.key) && !single.has(resolved.key)) single.set(resolved.key, neededBy);
    }

    const found = new Set<string>();
    const missing: Preflight["missing"] = [];
    const heads = await mapWithConcurrency([...single.keys()], HEAD_CONCURRENCY, (key) => headObject(deps.s3, deps.settings.scenesBucket, key));
    for (const head of heads) {
        if (head.missing) missing.push({ key: head.key, neededBy: single.get(head.key)! });
        else found.add(head.key);
    }
    // A sequence's frame numbers are not in the .blend: every frame present in the bucket goes with the job.
    const listings = await mapWithConcurrency([...sequences.keys()], HEAD_CONCURRENCY, async (key) => ({ key, frames: await listSequence(deps, key) }));
    for (const { key, frames } of listings) {
        const pattern = sequencePattern(key)!;
        const fromAssets = assets.filter((asset) => isSequenceFrame(pattern, asset));
        if (frames.length === 0 && fromAssets.length === 0) missing.push({ key, neededBy: `${sequences.get(key)!} (a sequence: no ${pattern.folder}${pattern.head}<number>${pattern.tail} in the bucket)` });
        for (const frame of frames) if (!listed.has(frame)) found.add(frame);
    }
    return { summary, etag, frames: checked.frames, found: [...found].sort(), missing, warnings };
}

// ---- queueing -------------------------------------------------------------------------------

export interface SendResult {
    sent: number;
    /** Frames that never went, with SQS's last word on each. */
    notSent: { frame: number; reason: string }[];
}

function delay(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Groups messages into SendMessageBatch calls: at most 10 entries and MAX_MESSAGE_BYTES each. */
function packBatches(bodies: { frame: number; body: string }[]): { frame: number; body: string }[][] {
    const batches: { frame: number; body: string }[][] = [];
    let current: { frame: number; body: string }[] = [];
    let bytes = 0;
    for (const entry of bodies) {
        const size = Buffer.byteLength(entry.body, "utf8");
        if (current.length === 10 || (current.length > 0 && bytes + size > MAX_MESSAGE_BYTES)) {
            batches.push(current);
            current = [];
            bytes = 0;
        }
        current.push(entry);
        bytes += size;
    }
    if (current.length > 0) batches.push(current);
    return batches;
}

/** Sends one batch, resending the entries SQS reports as Failed (unless they are the sender's fault) with backoff. */
async function sendBatch(sqs: SQSClient, queueUrl: string, batch: { frame: number; body: string }[]): Promise<SendResult> {
    let pending = batch;
    let lastReason = new Map<number, string>();
    const notSent: SendResult["notSent"] = [];
    for (let attempt = 1; attempt <= SEND_ATTEMPTS && pending.length > 0; attempt++) {
        if (attempt > 1) await delay(Math.min(2000, 50 * 2 ** (attempt - 2)) * (0.5 + Math.random()));
        const byId = new Map(pending.map((entry) => [`f${entry.frame}`, entry]));
        let failed: { Id?: string; SenderFault?: boolean; Code?: string; Message?: string }[];
        try {
            const reply = await sqs.send(
                new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: pending.map((entry) => ({ Id: `f${entry.frame}`, MessageBody: entry.body })) }),
            );
            failed = reply.Failed ?? [];
        } catch (error) {
            const status = awsErrorStatus(error);
            const reason = `SendMessageBatch to ${queueUrl} failed: ${describeAwsError(error)}`;
            lastReason = new Map(pending.map((entry) => [entry.frame, reason]));
            // A 4xx other than throttling will not get better by asking again.
            if (status !== undefined && status >= 400 && status < 500 && status !== 429 && !/Throttl|RequestThrottled|OverLimit/i.test(describeAwsError(error))) break;
            continue;
        }
        const retry: { frame: number; body: string }[] = [];
        lastReason = new Map();
        for (const entry of failed) {
            const original = entry.Id ? byId.get(entry.Id) : undefined;
            if (!original) continue;
            const reason = `${entry.Code ?? "Failed"}: ${entry.Message ?? "no message"}`;
            if (entry.SenderFault) notSent.push({ frame: original.frame, reason });
            else {
                retry.push(original);
                lastReason.set(original.frame, reason);
            }
        }
        pending = retry;
    }
    for (const entry of pending) notSent.push({ frame: entry.frame, reason: lastReason.get(entry.frame) ?? "not sent" });
    return { sent: batch.length - notSent.length, notSent };
}

/** Queues the frames' messages with SendMessageBatch: 10 per call, SEND_CONCURRENCY calls in flight. */
export async function sendFrameMessages(sqs: SQSClient, queueUrl: string, messages: FrameMessage[], concurrency = SEND_CONCURRENCY): Promise<SendResult> {
    const batches = packBatches(messages.map((message) => ({ frame: message.frame, body: JSON.stringify(message) })));
    const results = await mapWithConcurrency(batches, concurrency, (batch) => sendBatch(sqs, queueUrl, batch));
    return {
        sent: results.reduce((sum, result) => sum + result.sent, 0),
        notSent: results.flatMap((result) => result.notSent).sort((a, b) => a.frame - b.frame),
    };
}

function notSentSummary(result: SendResult, total: number): string {
    const frames = formatFrameSpec(result.notSent.map((entry) => entry.frame));
    return `${result.notSent.length} of ${total} frame messages could not be queued (frames ${frames}): ${result.notSent[0].reason}`;
}

// ---- POST /jobs -----------------------------------------------------------------------------

async function existingJobReply(deps: JobApiDeps, manifest: JobManifest, requestHash: string): Promise<ApiReply> {
    if (manifest.requestHash !== requestHash) {
        return errorReply(
            apiError(409, "job_conflict", `job ${manifest.jobId} already exists with a different request; submit this one under another jobId (or none)`, "jobId"),
        );
    }
    const records = await readFrameRecords(deps.s3, deps.settings.rendersBucket, manifest.jobId);
    const status = computeJobStatus(manifest, records, deps.settings.maxReceiveCount);
    const body: SubmitReply = { jobId: manifest.jobId, frames: manifest.frames.length, state: status.state, statusUrl: statusUrlOf(manifest.jobId) };
    return { status: 202, body };
}

/** The 413 for a frame message SQS would refuse, or undefined when the largest one fits. */
function messageSizeProblem(manifest: JobManifest, rendersBucket: string, frames: number[]): ApiError | undefined {
    const probe = frameMessageOf({ ...manifest, sceneEtag: `"${"0".repeat(32)}"` }, rendersBucket, frames[frames.length - 1]);
    const probeBytes = Buffer.byteLength(JSON.stringify(probe), "utf8");
    if (probeBytes <= MAX_MESSAGE_BYTES) return undefined;
    return apiError(413, "message_too_large", `each frame message would be ${probeBytes} bytes, over SQS's ${MAX_MESSAGE_BYTES}; use fewer or shorter asset keys`, "assets");
}

function missingReply(bucket: string, missing: string[], field: string, details: string[] = []): ApiReply {
    const shown = (details.length > 0 ? details : missing).slice(0, 5).join(", ") + (missing.length > 5 ? `, and ${missing.length - 5} more` : "");
    return errorReply({ ...apiError(422, "missing_objects", `${missing.length} object(s) not found in bucket ${bucket}: ${shown}; upload them first`, field), missing });
}

/**
 * POST /jobs: 202 once the manifest is written and every frame is queued; nothing is queued for an invalid request.
 * With the preflight on (the default), the scene itself is read first: a scene Blender cannot render (not a
 * .blend, no camera) or one that references files absent from the bucket is refused here, not frame by frame.
 */
export async function submitJob(deps: JobApiDeps, body: unknown): Promise<ApiReply> {
    const { settings } = deps;
    const preflightOn = settings.preflight !== false;
    const parsed = parseJobRequest(body, settings.limits);
    // A body that is not an object at all has no field to blame but the body itself.
    if (!parsed.ok) return errorReply(parsed.error.field === undefined ? { ...parsed.error, field: "body" } : parsed.error);
    const request = parsed.value;
    let frames: number[] | undefined;
    if (request.frames !== undefined) {
        const frameList = parseFrameSpec(request.frames, settings.limits.maxFrames);
        if (!frameList.ok) return errorReply(frameList.error);
        frames = frameList.value;
    } else if (!preflightOn) {
        return errorReply(apiError(400, "frames_required", 'frames is required on this farm (its scene preflight is off, so it does not read a scene\'s own range); send e.g. "1-250"', "frames"));
    }
    const jobId = request.jobId ?? newJobId();
    const assets = [...new Set(request.assets)].filter((asset) => asset !== request.scene);
    // Hashed as sent (frames only when given): the preflight's additions must not turn a resubmit into a conflict.
    const requestHash = requestHashOf({ ...request, jobId, assets }, frames);
    const renderSettings = renderSettingsOf(request);

    // sceneEtag and createdAt are filled in once the scene has been checked; frames once they are known.
    const manifest: JobManifest = {
        v: MANIFEST_VERSION,
        jobId,
        request: { ...request, jobId, assets, frames: frames === undefined ? undefined : formatFrameSpec(frames) },
        requestHash,
        frames: frames ?? [],
        scenesBucket: settings.scenesBucket,
        sceneEtag: "",
        settings: renderSettings,
        outputPrefix: outputPrefix(jobId),
        createdAt: "",
    };
    // The largest message is known before anything is read: SQS would refuse it later (checked again after the preflight).
    const early = messageSizeProblem(manifest, settings.rendersBucket, frames ?? [0]);
    if (early) return errorReply(early);

    try {
        if (request.jobId !== undefined) {
            const existing = await readManifest(deps.s3, settings.rendersBucket, jobId);
            if (existing) return await existingJobReply(deps, existing, requestHash);
        }
    } catch (error) {
        return upstreamReply("storage_error", error);
    }

    let checks: ObjectCheck[];
    try {
        checks = await checkObjects(deps, [request.scene, ...assets]);
    } catch (error) {
        return upstreamReply("storage_error", error);
    }
    const missing = checks.filter((check) => check.missing).map((check) => check.key);
    if (missing.includes(request.scene) || (missing.length > 0 && !preflightOn)) {
        return missingReply(settings.scenesBucket, missing, missing.includes(request.scene) ? "scene" : "assets");
    }
    manifest.sceneEtag = checks[0].etag ?? "";

    const reply: SubmitReply = { jobId, frames: 0, state: "queued", statusUrl: statusUrlOf(jobId) };
    if (preflightOn) {
        let preflight: Preflight | ApiError;
        try {
            preflight = await preflightScene(deps, request, assets);
        } catch (error) {
            if (!isBlendFileError(error)) return upstreamReply("storage_error", error);
            return errorReply(
                error.code === "too_large"
                    ? apiError(413, "scene_too_large", `scene "${request.scene}" cannot be checked: ${error.message}`, "scene")
                    : apiError(400, "not_a_blend", `scene "${request.scene}" is not a readable .blend file: ${error.message}`, "scene"),
            );
        }
        if ("status" in preflight) return errorReply(preflight);
        const allMissing = [...missing, ...preflight.missing.map((entry) => entry.key)];
        if (allMissing.length > 0) {
            const details = [...missing, ...preflight.missing.map((entry) => `${entry.key} (needed by ${entry.neededBy})`)];
            return missingReply(settings.scenesBucket, allMissing, "assets", details);
        }
        if (preflight.frames) {
            frames = preflight.frames;
            manifest.frames = frames;
            manifest.request.frames = formatFrameSpec(frames);
        }
        if (preflight.found.length > 0) {
            // The renderer downloads only the job's assets: referenced files found in the bucket join them.
            manifest.request.assets = [...assets, ...preflight.found];
            reply.assetsAdded = preflight.found;
        }
        if (manifest.request.assets.length > MAX_ASSETS) {
            return errorReply(apiError(413, "too_many_assets", `the job needs ${manifest.request.assets.length} files besides the scene (${preflight.found.length} found through the scene's references), over the limit of ${MAX_ASSETS}`, "assets"));
        }
        if (preflight.warnings.length > 0) reply.warnings = preflight.warnings;
        manifest.sceneEtag = preflight.etag || manifest.sceneEtag;
        const late = messageSizeProblem(manifest, settings.rendersBucket, frames!);
        if (late) return errorReply(late);
    }
    const jobFrames = frames!;
    reply.frames = jobFrames.length;

    manifest.createdAt = new Date().toISOString();
    try {
        const written = await writeManifest(deps.s3, settings.rendersBucket, manifest, { ifAbsent: true });
        if (written === "exists") {
            // Another submit of the same jobId won the race: answer as a resubmit would.
            const existing = await readManifest(deps.s3, settings.rendersBucket, jobId);
            if (existing) return await existingJobReply(deps, existing, requestHash);
            return errorReply(apiError(409, "job_conflict", `job ${jobId} is being created by another request; try again`, "jobId"));
        }
    } catch (error) {
        return upstreamReply("storage_error", error);
    }

    const result = await sendFrameMessages(deps.sqs, settings.frameQueueUrl, jobFrames.map((frame) => frameMessageOf(manifest, settings.rendersBucket, frame)));
    if (result.notSent.length > 0) {
        // Without its manifest the job does not exist, so resubmitting the same request queues it all again;
        // frames that did go may render twice, which the ledger absorbs (the same keys are rewritten).
        let rollback = "resubmitting the same request is safe";
        try {
            await deleteManifest(deps.s3, settings.rendersBucket, jobId);
        } catch (error) {
            rollback = `the manifest could not be removed (${error instanceof Error ? error.message : String(error)}); POST /jobs/${jobId}/retry once the queue is reachable`;
        }
        return errorReply(apiError(503, "queue_error", `${notSentSummary(result, jobFrames.length)}; ${rollback}`));
    }
    return { status: 202, body: reply };
}

// ---- GET /jobs/{jobId} ----------------------------------------------------------------------

async function loadJob(deps: JobApiDeps, jobId: unknown): Promise<{ manifest: JobManifest; records: FrameRecord[] } | ApiReply> {
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

// ---- POST /jobs/{jobId}/retry ---------------------------------------------------------------

/** True when the frame queue holds nothing at all (visible, in flight or delayed): nothing of any job is still coming. */
async function frameQueueIsEmpty(deps: JobApiDeps): Promise<boolean> {
    const reply = await deps.sqs.send(
        new GetQueueAttributesCommand({
            QueueUrl: deps.settings.frameQueueUrl,
            AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"],
        }),
    );
    const attributes = reply.Attributes ?? {};
    return ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"].every((name) => Number(attributes[name as keyof typeof attributes] ?? 0) === 0);
}

/**
 * POST /jobs/{jobId}/retry. Requeues:
 * - every failed frame: its message is in the DLQ, so nothing else will ever render it;
 * - frames with no record, or a "retrying" one, only once the job has gone quiet: the frame queue is
 *   empty, or nothing was written to the job's ledger for staleAfterSeconds. Until then those frames are
 *   most likely waiting in the queue or rendering, and requeueing them would render them twice.
 * Each requeued frame first gets a "retrying" record with 0 attempts (written before its message is
 * sent, so it can never overwrite the renderer's newer record): the job reads as pending again, and a
 * second retry right after this one finds nothing to requeue instead of queueing duplicates.
 */
export async function retryJob(deps: JobApiDeps, jobId: unknown, now: Date = new Date()): Promise<ApiReply> {
    const { settings } = deps;
    const job = await loadJob(deps, jobId);
    if ("status" in job) return job;
    const { manifest, records } = job;
    const status = computeJobStatus(manifest, records, settings.maxReceiveCount);
    const byFrame = latestRecordByFrame(manifest, records);
    const failed: number[] = [];
    const pending: number[] = [];
    for (const frame of manifest.frames) {
        const progress = frameProgress(byFrame.get(frame), settings.maxReceiveCount);
        if (progress === "failed") failed.push(frame);
        else if (progress === "pending") pending.push(frame);
    }

    let quiet = false;
    let why = "";
    if (pending.length > 0) {
        const staleAfterMs = (settings.staleAfterSeconds ?? DEFAULT_STALE_AFTER_SECONDS) * 1000;
        const idleMs = now.getTime() - Date.parse(status.updatedAt);
        try {
            if (idleMs >= staleAfterMs) {
                quiet = true;
                why = `nothing was written for job ${manifest.jobId} in ${Math.round(idleMs / 1000)} s`;
            } else if (await frameQueueIsEmpty(deps)) {
                quiet = true;
                why = "the frame queue is empty";
            }
        } catch (error) {
            return upstreamReply("queue_error", new Error(`GetQueueAttributes ${settings.frameQueueUrl} failed: ${describeAwsError(error)}`));
        }
    }
    const lost = quiet ? pending : [];
    const requeue = [...failed, ...lost].sort((a, b) => a - b);
    const inFlight = pending.length - lost.length;

    const at = now.toISOString();
    const previous = new Map<number, FrameRecord | undefined>();
    try {
        await mapWithConcurrency(requeue, HEAD_CONCURRENCY, async (frame) => {
            const old = byFrame.get(frame);
            previous.set(frame, old);
            const earlier = old ? `after ${old.attempts} attempt(s), last: ${old.error ? `${old.error.code}: ${old.error.message}` : old.status}` : "with no record";
            const record: FrameRecord = {
                ...(old ?? { startedAt: at, wallMs: 0, blenderMs: 0, memoryMb: 0, costUsd: 0 }),
                jobId: manifest.jobId,
                frame,
                status: "retrying",
                attempts: 0,
                finishedAt: at,
                error: { code: "requeued", message: `requeued by POST /jobs/${manifest.jobId}/retry at ${at} ${earlier}` },
            };
            await writeFrameRecord(deps.s3, settings.rendersBucket, record);
        });
    } catch (error) {
        return upstreamReply("storage_error", error);
    }

    const result = await sendFrameMessages(deps.sqs, settings.frameQueueUrl, requeue.map((frame) => frameMessageOf(manifest, settings.rendersBucket, frame)));
    if (result.notSent.length > 0) {
        // Put back what the ledger said, so those frames read as failed (or missing) and a later retry picks them up.
        await mapWithConcurrency(result.notSent, HEAD_CONCURRENCY, async ({ frame }) => {
            const old = previous.get(frame);
            try {
                if (old) await writeFrameRecord(deps.s3, settings.rendersBucket, old);
                else await deleteFrameRecord(deps.s3, settings.rendersBucket, manifest.jobId, frame);
            } catch {
                // Best effort: the frame then reads as pending until the job goes quiet again.
            }
        });
        return errorReply(apiError(503, "queue_error", `${notSentSummary(result, requeue.length)}; ${result.sent} were requeued; retry again later`));
    }

    const parts = [`requeued ${failed.length} failed frame(s)`];
    if (lost.length > 0) parts.push(`requeued ${lost.length} frame(s) that never finished, since ${why}`);
    if (inFlight > 0) parts.push(`left ${inFlight} pending frame(s) alone: they are still queued or rendering (a retry requeues them once the queue is empty or the job is quiet for ${settings.staleAfterSeconds ?? DEFAULT_STALE_AFTER_SECONDS} s)`);
    const reply: RetryReply = {
        jobId: manifest.jobId,
        requeued: requeue.length,
        failed: failed.length,
        lost: lost.length,
        inFlight,
        state: requeue.length > 0 ? "rendering" : status.state,
        statusUrl: statusUrlOf(manifest.jobId),
        message: parts.join("; "),
    };
    return { status: 202, body: reply };
}
