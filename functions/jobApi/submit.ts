// POST /jobs: validate the request, check S3 (and read the scene: the preflight), write the manifest, then
// queue one message per frame.
import * as crypto from "crypto";
import { isBlendFileError } from "../blend";
import {
    ApiError,
    apiError,
    Checked,
    encodeEtags,
    errorBody,
    formatFrameSpec,
    JobManifest,
    JobRequest,
    MANIFEST_VERSION,
    MAX_ASSETS,
    outputPrefix,
    parseFrameSpec,
    parseJobRequest,
    renderSettingsOf,
    SubmitReply,
} from "../shared/contract";
import { mapWithConcurrency } from "../shared/concurrency";
import { computeJobStatus, deleteManifest, readFrameRecords, readManifest, writeManifest } from "../shared/ledger";
import { frameMessageOf, MAX_MESSAGE_BYTES, notSentSummary, sendFrameMessages } from "./frameQueueing";
import { HEAD_CONCURRENCY, headObject, ObjectCheck, ObjectVersion, Preflight, preflightScene } from "./scenePreflight";
import { inputsTooLarge, pinAssets, versionsOf } from "./jobInputs";
import { ApiReply, errorReply, statusUrlOf, upstreamReply } from "./replies";
import { JobApiDeps } from "./settings";
import { TUNABLES } from "../shared/farmSettings";

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
    const normalized = {
        ...rest,
        frames: frames === undefined ? undefined : formatFrameSpec(frames),
        assets: [...new Set(request.assets)].sort(),
    };
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
            apiError(
                409,
                "job_conflict",
                `job ${manifest.jobId} already exists with a different request; submit this one under another jobId (or none)`,
                "jobId",
            ),
        );
    }
    const records = await readFrameRecords(deps.s3, deps.settings.rendersBucket, manifest.jobId);
    const status = computeJobStatus(manifest, records, deps.settings.maxReceiveCount);
    const body: SubmitReply = {
        jobId: manifest.jobId,
        frames: manifest.frames.length,
        state: status.state,
        statusUrl: statusUrlOf(manifest.jobId),
    };
    return { status: 202, body };
}

/** The 413 for a frame message SQS would refuse, or undefined when the largest one fits. */
function messageSizeProblem(manifest: JobManifest, rendersBucket: string, frames: number[]): ApiError | undefined {
    // Before the objects are checked their ETags are unknown: an MD5 ETag per asset stands in for each.
    const typicalEtag = `"${"0".repeat(32)}"`;
    const probe = frameMessageOf(
        {
            ...manifest,
            sceneEtag: manifest.sceneEtag || typicalEtag,
            assetEtags: manifest.assetEtags ?? encodeEtags(manifest.request.assets.map(() => typicalEtag)),
        },
        rendersBucket,
        frames[frames.length - 1],
    );
    const probeBytes = Buffer.byteLength(JSON.stringify(probe), "utf8");
    if (probeBytes <= MAX_MESSAGE_BYTES) return undefined;
    return apiError(
        413,
        "message_too_large",
        `each frame message would be ${probeBytes} bytes, over SQS's ${MAX_MESSAGE_BYTES}; use fewer or shorter asset keys`,
        "assets",
    );
}

function missingReply(bucket: string, missing: string[], field: string, details: string[] = []): ApiReply {
    const shown =
        (details.length > 0 ? details : missing).slice(0, 5).join(", ") +
        (missing.length > 5 ? `, and ${missing.length - 5} more` : "");
    return errorReply({
        ...apiError(
            422,
            "missing_objects",
            `${missing.length} object(s) not found in bucket ${bucket}: ${shown}; upload them first`,
            field,
        ),
        missing,
    });
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
    if (!parsed.ok)
        return errorReply(parsed.error.field === undefined ? { ...parsed.error, field: "body" } : parsed.error);
    const request = parsed.value;
    let frames: number[] | undefined;
    if (request.frames !== undefined) {
        const frameList = parseFrameSpec(request.frames, settings.limits.maxFrames);
        if (!frameList.ok) return errorReply(frameList.error);
        frames = frameList.value;
    } else if (!preflightOn) {
        return errorReply(
            apiError(
                400,
                "frames_required",
                'frames is required on this farm (its scene preflight is off, so it does not read a scene\'s own range); send e.g. "1-250"',
                "frames",
            ),
        );
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
    let referenced = new Map<string, ObjectVersion>();
    if (preflightOn) {
        let checked: Checked<Preflight>;
        try {
            checked = await preflightScene(deps, request, assets);
        } catch (error) {
            if (!isBlendFileError(error)) return upstreamReply("storage_error", error);
            return errorReply(
                error.code === "too_large"
                    ? apiError(
                          413,
                          "scene_too_large",
                          `scene "${request.scene}" cannot be checked: ${error.message}`,
                          "scene",
                      )
                    : apiError(
                          400,
                          "not_a_blend",
                          `scene "${request.scene}" is not a readable .blend file: ${error.message}`,
                          "scene",
                      ),
            );
        }
        if (!checked.ok) return errorReply(checked.error);
        const preflight = checked.value;
        const allMissing = [...missing, ...preflight.missing.map((entry) => entry.key)];
        if (allMissing.length > 0) {
            const details = [
                ...missing,
                ...preflight.missing.map((entry) => `${entry.key} (needed by ${entry.neededBy})`),
            ];
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
            return errorReply(
                apiError(
                    413,
                    "too_many_assets",
                    `the job needs ${manifest.request.assets.length} files besides the scene (${preflight.found.length} found through the scene's references), over the limit of ${MAX_ASSETS}`,
                    "assets",
                ),
            );
        }
        if (preflight.warnings.length > 0) reply.warnings = preflight.warnings;
        manifest.sceneEtag = preflight.etag || manifest.sceneEtag;
        referenced = preflight.objects;
        referenced.set(request.scene, { etag: preflight.etag, size: preflight.size });
    }
    // Every file a frame downloads is pinned to the version checked here, and together they must fit the renderer's disk.
    const versions = versionsOf(checks, referenced);
    pinAssets(manifest, versions);
    const tooLarge = inputsTooLarge(
        manifest,
        versions,
        settings.rendererEphemeralStorageMb ?? TUNABLES.rendererEphemeralStorage.defaultValue,
    );
    if (tooLarge) return errorReply(tooLarge);
    const late = messageSizeProblem(manifest, settings.rendersBucket, frames!);
    if (late) return errorReply(late);
    const jobFrames = frames!;
    reply.frames = jobFrames.length;

    manifest.createdAt = new Date().toISOString();
    try {
        const written = await writeManifest(deps.s3, settings.rendersBucket, manifest, { ifAbsent: true });
        if (written === "exists") {
            // Another submit of the same jobId won the race: answer as a resubmit would.
            const existing = await readManifest(deps.s3, settings.rendersBucket, jobId);
            if (existing) return await existingJobReply(deps, existing, requestHash);
            return errorReply(
                apiError(409, "job_conflict", `job ${jobId} is being created by another request; try again`, "jobId"),
            );
        }
    } catch (error) {
        return upstreamReply("storage_error", error);
    }

    const result = await sendFrameMessages(
        deps.sqs,
        settings.frameQueueUrl,
        jobFrames.map((frame) => frameMessageOf(manifest, settings.rendersBucket, frame)),
    );
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
        return {
            status: 503,
            body: {
                ...errorBody(apiError(503, "queue_error", `${notSentSummary(result, jobFrames.length)}; ${rollback}`)),
                jobId,
            },
        };
    }
    return { status: 202, body: reply };
}
