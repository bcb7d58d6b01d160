// The job API: submit a job (validate, check S3, write the manifest, queue one message per frame),
// read its status from the ledger, and requeue its failed or lost frames.
// Plain functions over { s3, sqs, settings }: Pulumi's closure serializer ships this module inside the
// job API Lambda, so nothing here creates clients, schemas or class instances at module level.
import * as crypto from "crypto";
import { S3Client } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";
import {
    apiError,
    ApiError,
    ENGINES,
    Engine,
    errorBody,
    FrameRecord,
    formatFrameSpec,
    JOB_ID_PATTERN,
    JobLimits,
    JobManifest,
    JobRequest,
    MANIFEST_VERSION,
    MAX_ASSETS,
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
    latestRecordByFrame,
    mapWithConcurrency,
    readFrameRecords,
    readManifest,
    writeFrameRecord,
    writeManifest,
} from "./ledger";
import { isBlendFileError } from "./blend";
import { frameMessageOf, MAX_MESSAGE_BYTES, notSentSummary, sendFrameMessages } from "./frameQueueing";
import { HEAD_CONCURRENCY, headObject, ObjectCheck, Preflight, preflightScene } from "./scenePreflight";

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

/** Every key of the request checked with HeadObject; all missing ones are reported together. */
async function checkObjects(deps: JobApiDeps, keys: string[]): Promise<ObjectCheck[]> {
    return mapWithConcurrency(keys, HEAD_CONCURRENCY, (key) => headObject(deps.s3, deps.settings.scenesBucket, key));
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
        // Resubmitting under the same jobId: frames that did go out then belong to the job instead of being orphaned.
        let rollback = `resubmit the same request with "jobId": "${jobId}"`;
        try {
            await deleteManifest(deps.s3, settings.rendersBucket, jobId);
        } catch (error) {
            rollback = `the manifest could not be removed (${error instanceof Error ? error.message : String(error)}); POST /jobs/${jobId}/retry once the queue is reachable`;
        }
        return { status: 503, body: { ...errorBody(apiError(503, "queue_error", `${notSentSummary(result, jobFrames.length)}; ${rollback}`)), jobId } };
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
