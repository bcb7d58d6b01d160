// POST /jobs: validate the request, check S3 (and read the scene: the preflight), write the manifest, then queue one
// message per frame through the job's queue progress, so that the same request again carries on where a killed one
// stopped (frameDispatch.ts).
import * as crypto from "crypto";
import { isBlendFileError } from "../blend";
import {
    ApiError,
    apiError,
    Checked,
    encodeEtags,
    errorBody,
    formatFrameSpec,
    frameMessageOf,
    JobManifest,
    JobRequest,
    MANIFEST_VERSION,
    MAX_ASSETS,
    outputPrefix,
    parseFrameSpec,
    parseJobRequest,
    refused,
    renderSettingsOf,
    SubmitReply,
} from "../shared/contract";
import { mapWithConcurrency } from "../shared/concurrency";
import { StoredManifest } from "../shared/ledger";
import { conflictBackoff } from "../shared/ledger/jsonObjects";
import { newDispatch } from "../shared/queueProgress";
import { DispatchOutcome, resumeDispatch, startDispatch } from "./frameDispatch";
import { MAX_MESSAGE_BYTES, notSentSummary } from "./frameQueueing";
import {
    HEAD_CONCURRENCY,
    headObject,
    ObjectCheck,
    ObjectVersion,
    Preflight,
    preflightScene,
    tilesPreflight,
} from "./scenePreflight";
import { inputsTooLarge, pinAssets, versionsOf } from "./jobInputs";
import { ApiReply, errorReply, sceneChangedError, statusUrlOf, upstreamReply } from "./replies";
import { DEFAULT_WORK_MS, isCrash, JobApiContext, JobApiDeps, jobApiContext } from "./settings";
import { asProbe, widenProbe } from "./probes";
import { readJobStatus } from "./status";
import { FARM_DEFAULTS } from "../shared/farmSettings";
import { farmError } from "../shared/errors";
import {
    autoTileCount,
    autoTilesNeedEstimate,
    slowestDoneFrameSeconds,
    tilesEngineProblem,
    tooManyTiles,
} from "./tiles";

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
 * probe and tiles left out (tiles split a frame's work, never its pixels). Without frames (the scene's own range) the hash covers the request as sent, so a resubmit matches.
 */
export function requestHashOf(request: JobRequest, frames: number[] | undefined): string {
    const { jobId: _jobId, probe: _probe, tiles: _tiles, ...rest } = request;
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

/**
 * The same jobId again. Another request: 409. The same request, but the scene object changed since: 409 naming the
 * change (the job renders the version it was submitted with; a new version is a new job). The same request with the
 * same scene: carries on queueing where an earlier request stopped (killed, or out of time), then 202.
 */
async function existingJobReply(
    deps: JobApiContext,
    stored: StoredManifest,
    requestHash: string,
    request: Pick<JobRequest, "probe" | "tiles">,
    deadline: number,
): Promise<ApiReply> {
    const { manifest } = stored;
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
    const scene = await headObject(deps.s3, manifest.scenesBucket, manifest.request.scene);
    if (scene.missing || scene.etag !== manifest.sceneEtag)
        return errorReply(
            sceneChangedError(
                manifest,
                scene.missing ? undefined : scene.etag,
                "to render the new version, submit it as a new job (another jobId, or none)",
            ),
        );
    let progress = await deps.ledger.readQueueProgress(manifest.jobId);
    let outcome: DispatchOutcome | undefined;
    const widened = widenProbe(manifest, request.probe);
    if (widened) {
        const tiled = await tilesOfWidened(deps, manifest, widened.manifest, request.tiles);
        if (!tiled.ok) return errorReply(tiled.error);
        // More probe frames, or the rest of the job. An earlier dispatch is finished first, unless it is the one that
        // sends these frames (a request killed before it wrote the manifest below): then it is carried on.
        const addedSpec = formatFrameSpec(widened.added);
        if (progress && !progress.dispatch.complete && progress.dispatch.frames !== addedSpec) {
            outcome = await resumeDispatch(deps, manifest, progress, deadline);
            if (outcome.outcome !== "complete") return submitReplyOf(deps, manifest, outcome, {}, false);
            progress = outcome.stored;
        }
        outcome =
            progress?.dispatch.frames === addedSpec
                ? await resumeDispatch(deps, widened.manifest, progress, deadline)
                : await startDispatch(
                      deps,
                      widened.manifest,
                      newDispatch(manifest.jobId, "submit", widened.added, progress?.dispatch, new Date()),
                      progress?.etag,
                      deadline,
                  );
        if (outcome.outcome === "busy") return submitReplyOf(deps, manifest, outcome, {}, false);
        const written = await writeWidenedManifest(deps, stored, widened.manifest, request.probe);
        return submitReplyOf(deps, written, outcome, {}, false);
    }
    // No progress yet: the request that wrote the manifest was killed before sending anything.
    if (!progress)
        outcome = await startDispatch(
            deps,
            manifest,
            newDispatch(manifest.jobId, "submit", manifest.frames, undefined, new Date()),
            undefined,
            deadline,
        );
    else if (progress.dispatch.kind === "submit" && !progress.dispatch.complete)
        outcome = await resumeDispatch(deps, manifest, progress, deadline);
    return submitReplyOf(deps, manifest, outcome, {}, false);
}

/** Conditional writes of a widened manifest that meet another resubmit's before the request gives up. */
const MANIFEST_WRITE_ATTEMPTS = 8;

/**
 * Writes the widened manifest over the version it was widened from (If-Match). Another resubmit may have widened it
 * meanwhile (an estimate's more probe frames, a render of the whole job): then the widening is applied again to what
 * that one wrote. Widening only adds frames, so the manifest written covers every frame either request queued.
 * Answers the manifest that stands.
 */
async function writeWidenedManifest(
    deps: JobApiContext,
    from: StoredManifest,
    widened: JobManifest,
    probe: number | undefined,
): Promise<JobManifest> {
    const { ledger } = deps;
    let base = from;
    let next = widened;
    for (let attempt = 0; attempt < MANIFEST_WRITE_ATTEMPTS; attempt++) {
        if (attempt > 0) await conflictBackoff(attempt);
        if ((await ledger.writeManifest(next, { ifMatch: base.etag })) === "written") return next;
        const current = await ledger.readStoredManifest(next.jobId);
        if (!current)
            throw farmError("storage_error", `the manifest of job ${next.jobId} vanished while it was widened`, 503);
        const again = widenProbe(current.manifest, probe);
        // Already as wide (or the whole job): the other request's manifest covers this one's frames.
        if (!again) return current.manifest;
        base = current;
        next = again.manifest;
    }
    throw farmError(
        "storage_error",
        `PutObject of the manifest of job ${widened.jobId} failed: ${MANIFEST_WRITE_ATTEMPTS} conditional writes in a row met another request; submit the same request again`,
        503,
    );
}

/**
 * Sets the tiles of a probe job's newly asked frames: the request's, resolved when "auto" from the probe frames
 * rendered so far. A job already tiled keeps its count (its tiles' records and images are by index), whatever the
 * resubmit says; a job tiled now is checked as a new tiled job is (422 when its frames cannot be split exactly).
 */
async function tilesOfWidened(
    deps: JobApiContext,
    manifest: JobManifest,
    widened: JobManifest,
    tiles: JobRequest["tiles"],
): Promise<Checked<undefined>> {
    if (manifest.tiles !== undefined || tiles === undefined) return { ok: true, value: undefined };
    let count = tiles;
    if (count === "auto") {
        const slowest = await slowestDoneFrameSeconds(deps.ledger, manifest);
        if (slowest === undefined) return refused(autoTilesNeedEstimate(manifest.jobId));
        const timeout = deps.settings.frameTimeoutSeconds ?? FARM_DEFAULTS.rendererTimeout;
        count = autoTileCount(slowest, timeout);
    }
    if (count < 2) return { ok: true, value: undefined };
    const request = { ...manifest.request, tiles: count };
    const notExact =
        (request.engine && tilesEngineProblem(request.engine)) ||
        (deps.settings.preflight !== false ? await tilesPreflight(deps, request) : undefined);
    if (notExact) return refused(notExact);
    const tooMany = tooManyTiles(widened.frames.length, count, deps.settings.limits.maxFrames);
    if (tooMany) return refused(tooMany);
    widened.tiles = count;
    return { ok: true, value: undefined };
}

/** The reply to a submit once its dispatch ran (or, for a job long queued, without one). */
async function submitReplyOf(
    deps: JobApiContext,
    manifest: JobManifest,
    outcome: DispatchOutcome | undefined,
    extra: Pick<SubmitReply, "assetsAdded" | "warnings">,
    fresh: boolean,
): Promise<ApiReply> {
    const { jobId } = manifest;
    if (outcome?.outcome === "queue_error") {
        const { result, stored } = outcome;
        return {
            status: 503,
            body: {
                ...errorBody(
                    apiError(
                        503,
                        "queue_error",
                        `${notSentSummary(result, result.sent + result.notSent.length)}; ${stored.dispatch.sent} of ${stored.dispatch.count} frames are queued: submit the same request again (with "jobId": "${jobId}") to queue the rest`,
                    ),
                ),
                jobId,
                queued: stored.dispatch.sent,
            },
        };
    }
    const body: SubmitReply = {
        jobId,
        frames: manifest.frames.length,
        queued: 0,
        state: "queued",
        statusUrl: statusUrlOf(jobId),
        ...extra,
    };
    if (fresh && outcome) {
        // A new job: nothing has rendered yet, so its state is where its queueing stands.
        body.queued = outcome.outcome === "busy" ? outcome.dispatch.sent : outcome.stored.dispatch.sent;
        body.state =
            outcome.outcome === "complete" ? "queued" : outcome.outcome === "stopped" ? outcome.stop.state : "queueing";
    } else {
        const status = await readJobStatus(deps, manifest, undefined);
        body.queued = status.queue?.kind === "submit" ? status.queue.queued : manifest.frames.length;
        body.state = status.state;
    }
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
 * POST /jobs: 202 once the manifest is written and every frame is queued, or (state "queueing", queued < frames) once
 * its time is up: the same request again carries on. Nothing is queued for an invalid request.
 * With the preflight on (the default), the scene itself is read first: a scene Blender cannot render (not a
 * .blend, no camera) or one that references files absent from the bucket is refused here, not frame by frame.
 */
export async function submitJob(
    deps: JobApiDeps,
    body: unknown,
    deadline: number = Date.now() + DEFAULT_WORK_MS,
): Promise<ApiReply> {
    const api = jobApiContext(deps);
    const { ledger, settings } = api;
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
            const existing = await ledger.openJob(jobId);
            if (existing) return await existingJobReply(api, existing, requestHash, request, deadline);
        }
    } catch (error) {
        if (isCrash(error)) throw error;
        return upstreamReply("storage_error", error);
    }
    // A new job has no probe frames to size "auto" tiles from.
    if (request.tiles === "auto") return errorReply(autoTilesNeedEstimate(jobId));
    if (request.tiles !== undefined) {
        manifest.tiles = request.tiles;
        const notExact = request.engine && tilesEngineProblem(request.engine);
        if (notExact) return errorReply(notExact);
    }

    let checks: ObjectCheck[];
    try {
        checks = await checkObjects(api, [request.scene, ...assets]);
    } catch (error) {
        return upstreamReply("storage_error", error);
    }
    const missing = checks.filter((check) => check.missing).map((check) => check.key);
    if (missing.includes(request.scene) || (missing.length > 0 && !preflightOn)) {
        return missingReply(settings.scenesBucket, missing, missing.includes(request.scene) ? "scene" : "assets");
    }
    manifest.sceneEtag = checks[0].etag ?? "";

    const extra: Pick<SubmitReply, "assetsAdded" | "warnings"> = {};
    let referenced = new Map<string, ObjectVersion>();
    if (preflightOn) {
        let checked: Checked<Preflight>;
        try {
            checked = await preflightScene(api, request, assets);
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
            extra.assetsAdded = preflight.found;
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
        if (preflight.warnings.length > 0) extra.warnings = preflight.warnings;
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
        settings.rendererEphemeralStorageMb ?? FARM_DEFAULTS.rendererEphemeralStorage,
    );
    if (tooLarge) return errorReply(tooLarge);
    const late = messageSizeProblem(manifest, settings.rendersBucket, manifest.frames);
    if (late) return errorReply(late);
    const tooMany = manifest.tiles && tooManyTiles(manifest.frames.length, manifest.tiles, settings.limits.maxFrames);
    if (tooMany) return errorReply(tooMany);
    asProbe(manifest, request.probe);

    manifest.createdAt = new Date().toISOString();
    try {
        const written = await ledger.writeManifest(manifest, { ifAbsent: true });
        if (written === "exists") {
            // Another submit of the same jobId won the race: answer as a resubmit would.
            const existing = await ledger.openJob(jobId);
            if (existing) return await existingJobReply(api, existing, requestHash, request, deadline);
            return errorReply(
                apiError(409, "job_conflict", `job ${jobId} is being created by another request; try again`, "jobId"),
            );
        }
        api.crashPoint?.("manifest-written");
        // No rollback if the queue refuses: the manifest stays, and the same request again queues the rest.
        const outcome = await startDispatch(
            api,
            manifest,
            newDispatch(jobId, "submit", manifest.frames, undefined, new Date()),
            undefined,
            deadline,
        );
        return await submitReplyOf(api, manifest, outcome, extra, true);
    } catch (error) {
        if (isCrash(error)) throw error;
        return upstreamReply("storage_error", error);
    }
}
