// The scene preflight: read the .blend from S3 before anything is queued, refuse what Blender cannot
// render, take the scene's own frame range, and find every external file it needs in the bucket.
import {
    GetObjectCommand,
    GetObjectCommandOutput,
    HeadObjectCommand,
    ListObjectsV2Command,
    ListObjectsV2CommandOutput,
    S3Client,
} from "@aws-sdk/client-s3";
import {
    ApiError,
    apiError,
    Checked,
    Engine,
    JobLimits,
    JobRequest,
    MAX_ASSETS,
    objectKeyProblem,
    parseFrameSpec,
    refused,
} from "../shared/contract";
import {
    BlendScene,
    BlendSummary,
    describeNeed,
    HeldReference,
    isBlendFileError,
    isSequenceFrame,
    readBlendStream,
    referencesWithLibraries,
    sequencePattern,
} from "../blend";
import { isNotFound, storageError } from "../shared/awsErrors";
import { farmError, isFarmError } from "../shared/errors";
import { mapWithConcurrency } from "../shared/concurrency";
import type { JobApiDeps } from "./settings";
import { tileExactnessProblems } from "./tileExactness";
import { tilesNotExact } from "./tiles";

/** HeadObject calls in flight when checking a request's scene and assets. */
export const HEAD_CONCURRENCY = 16;

export interface ObjectCheck {
    key: string;
    etag?: string;
    /** Bytes, when the object is there. */
    size?: number;
    missing: boolean;
}

/** The version of an object a job was checked against: what the renderer downloads (IfMatch) and how big it is. */
export interface ObjectVersion {
    etag: string;
    size: number;
}

export async function headObject(s3: S3Client, bucket: string, key: string): Promise<ObjectCheck> {
    try {
        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return { key, etag: head.ETag ?? "", size: head.ContentLength ?? 0, missing: false };
    } catch (error) {
        // HEAD replies carry no body, so a missing bucket also looks like a plain 404 here.
        if (isNotFound(error)) return { key, missing: true };
        throw storageError("HeadObject", bucket, key, error);
    }
}

/** Most keys of one sequence (image, clip, volume or cache frames) the preflight lists before giving up. */
export const MAX_SEQUENCE_KEYS = MAX_ASSETS;

export interface Preflight {
    summary: BlendSummary;
    /** ETag of the scene object that was read. */
    etag: string;
    /** Bytes of the scene object that was read. */
    size: number;
    /** Frames from the scene's own range, when the request had none. */
    frames?: number[];
    /** Referenced keys found in the bucket that the request did not list (with those of linked libraries). */
    found: string[];
    /** The version and size of every referenced object found: the keys of `found`, and linked libraries read. */
    objects: Map<string, ObjectVersion>;
    /** Referenced keys absent from the bucket, each with what needs it. */
    missing: { key: string; neededBy: string }[];
    warnings: string[];
}

/**
 * A .blend object's bytes through the reader, streamed: the object is never held in memory whole. Undefined when
 * `missingIsUndefined` and the key is not there.
 */
async function readBlendObject(
    deps: JobApiDeps,
    key: string,
    missingIsUndefined = false,
): Promise<({ summary: BlendSummary } & ObjectVersion) | undefined> {
    let object: GetObjectCommandOutput;
    try {
        object = await deps.s3.send(new GetObjectCommand({ Bucket: deps.settings.scenesBucket, Key: key }));
    } catch (error) {
        if (missingIsUndefined && isNotFound(error)) return undefined;
        throw storageError("GetObject", deps.settings.scenesBucket, key, error);
    }
    const body = object.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
    if (!body) throw farmError("storage_error", `GetObject s3://${deps.settings.scenesBucket}/${key} returned no body`);
    try {
        const summary = await readBlendStream(body, key);
        return { summary, etag: object.ETag ?? "", size: object.ContentLength ?? 0 };
    } finally {
        body.destroy?.();
    }
}

/** Every key of the sequence `key` is one frame of, with its version, from one listing of its folder (bounded). */
async function listSequence(deps: JobApiDeps, key: string): Promise<({ key: string } & ObjectVersion)[]> {
    const pattern = sequencePattern(key);
    if (!pattern) return [];
    const keys: ({ key: string } & ObjectVersion)[] = [];
    let token: string | undefined;
    do {
        let page: ListObjectsV2CommandOutput;
        try {
            page = await deps.s3.send(
                new ListObjectsV2Command({
                    Bucket: deps.settings.scenesBucket,
                    Prefix: pattern.folder + pattern.head,
                    ContinuationToken: token,
                }),
            );
        } catch (error) {
            throw storageError("ListObjectsV2", deps.settings.scenesBucket, pattern.folder + pattern.head, error);
        }
        for (const object of page.Contents ?? [])
            if (object.Key && isSequenceFrame(pattern, object.Key))
                keys.push({ key: object.Key, etag: object.ETag ?? "", size: object.Size ?? 0 });
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token && keys.length <= MAX_SEQUENCE_KEYS);
    return keys.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Blender's engine ids (as a .blend stores them, 3.x to 5.x) by the farm's engine names. */
/** The Blender engine id a request's engine selects (EEVEE's id differs by version; any of them reads as EEVEE). */
const BLENDER_ENGINE_IDS: Record<Engine, string> = {
    CYCLES: "CYCLES",
    EEVEE: "BLENDER_EEVEE",
    WORKBENCH: "BLENDER_WORKBENCH",
};

const SCENE_ENGINES: Record<string, Engine> = {
    CYCLES: "CYCLES",
    BLENDER_EEVEE: "EEVEE",
    BLENDER_EEVEE_NEXT: "EEVEE",
    BLENDER_WORKBENCH: "WORKBENCH",
};

/**
 * The reply that refuses the job, or the frames to render: no scene, no camera, an engine or a resolution the
 * farm does not allow (the scene's own, when the request does not override them), or frames it cannot take.
 */
function sceneProblems(request: JobRequest, summary: BlendSummary, limits: JobLimits): Checked<{ frames?: number[] }> {
    const scene = summary.scenes.find((candidate) => candidate.name === summary.activeScene);
    if (!scene) return refused(400, "no_scene", `scene "${request.scene}" holds no scene to render`, "scene");
    if (scene.camera === null) {
        return refused(
            400,
            "no_camera",
            `scene "${request.scene}": its scene "${scene.name}" has no active camera, so Blender cannot render it; set one (Scene Properties > Camera) and upload it again`,
            "scene",
        );
    }
    if (request.engine === undefined) {
        const engine = SCENE_ENGINES[scene.engine];
        if (engine === undefined || !limits.allowedEngines.includes(engine)) {
            const allowed = limits.allowedEngines.join(", ");
            return refused(
                400,
                "engine_not_allowed",
                `scene "${request.scene}" renders with ${engine ?? scene.engine}, which this farm does not offer (it has ${allowed}); set "engine" in the request`,
                "engine",
            );
        }
    }
    if (request.tiles !== undefined) {
        const notExact = tilesProblemOf(request, scene);
        if (notExact) return refused(notExact);
    }
    const percentage = request.resolution?.percentage ?? scene.resolutionPercentage;
    const width = Math.round(((request.resolution?.x ?? scene.resolutionX) * percentage) / 100);
    const height = Math.round(((request.resolution?.y ?? scene.resolutionY) * percentage) / 100);
    if (Math.max(width, height) > limits.maxResolution) {
        return refused(
            400,
            "resolution_too_large",
            `scene "${request.scene}" would render ${width}x${height}, over this farm's ${limits.maxResolution} pixels per side; set "resolution" in the request`,
            "resolution",
        );
    }
    if (request.frames !== undefined) return { ok: true, value: {} };
    const own = `${scene.frameStart}-${scene.frameEnd}x${Math.max(1, scene.frameStep)}`;
    const frames = parseFrameSpec(own, limits.maxFrames);
    if (!frames.ok)
        return refused({
            ...frames.error,
            message: `the scene's own frame range ${own} (used because the request has no frames): ${frames.error.message}`,
        });
    return { ok: true, value: { frames: frames.value } };
}

/** The 422 for a tiled job of this scene that could not equal its whole frames (see tileExactness.ts). */
function tilesProblemOf(request: JobRequest, scene: BlendScene): ApiError | undefined {
    const problems = tileExactnessProblems(scene, request.engine ? BLENDER_ENGINE_IDS[request.engine] : scene.engine);
    if (problems.length === 0) return undefined;
    return tilesNotExact(`scene "${request.scene}" cannot be split into tiles exactly: ${problems.join("; ")}`);
}

/**
 * A job tiled only on a resubmit (the rest of a probe job): the scene read again for what keeps tiles from being
 * exact, as a new tiled job's preflight does. Undefined when tiles are fine, or when no scene is there to read.
 */
export async function tilesPreflight(deps: JobApiDeps, request: JobRequest): Promise<ApiError | undefined> {
    const read = await readBlendObject(deps, request.scene, true);
    const scene = read?.summary.scenes.find((candidate) => candidate.name === read.summary.activeScene);
    return scene ? tilesProblemOf(request, scene) : undefined;
}

/**
 * Reads the scene and checks what it needs: a camera, its frame range (when the request has none), and every
 * external file it references, resolved against the scene's key, and those of every library it links (read from the
 * bucket, each one's paths resolved against its own key). Files listed in `assets` count as present; others are
 * looked up in the bucket (one HEAD per file, one listing per sequence).
 */
export async function preflightScene(
    deps: JobApiDeps,
    request: JobRequest,
    assets: string[],
): Promise<Checked<Preflight>> {
    const scene = (await readBlendObject(deps, request.scene))!;
    const { summary, etag } = scene;
    const checked = sceneProblems(request, summary, deps.settings.limits);
    if (!checked.ok) return checked;

    const listed = new Set([request.scene, ...assets]);
    const objects = new Map<string, ObjectVersion>();
    const found = new Set<string>();
    const missing: Preflight["missing"] = [];
    let unreadable: ApiError | undefined;
    let references: HeldReference[];
    try {
        references = await referencesWithLibraries(request.scene, summary, async (key, reference) => {
            let library: Awaited<ReturnType<typeof readBlendObject>>;
            try {
                library = await readBlendObject(deps, key, true);
            } catch (error) {
                if (!isBlendFileError(error)) throw error;
                unreadable ??= apiError(
                    400,
                    "not_a_blend",
                    `library ${key} (needed by ${describeNeed(reference)} of scene "${request.scene}") is not a readable .blend file: ${error.message}`,
                    "assets",
                );
                return undefined;
            }
            if (!library) {
                if (!listed.has(key)) missing.push({ key, neededBy: describeNeed(reference) });
                return undefined;
            }
            objects.set(key, { etag: library.etag, size: library.size });
            if (!listed.has(key)) found.add(key);
            return library.summary;
        });
    } catch (error) {
        if (!isFarmError(error, "too_many_libraries")) throw error;
        return refused(413, "too_many_libraries", `scene "${request.scene}": ${error.message}`, "scene");
    }
    if (unreadable) return refused(unreadable);

    const warnings: string[] = [];
    const single = new Map<string, string>();
    const sequences = new Map<string, string>();
    for (const reference of references) {
        const neededBy = describeNeed(reference);
        const resolved = reference.resolved;
        if (!resolved.ok) {
            warnings.push(`${neededBy}: ${resolved.message}`);
            continue;
        }
        const problem = objectKeyProblem(resolved.key);
        if (problem) {
            warnings.push(
                `${neededBy}: "${reference.filepath}" resolves to "${resolved.key}", which ${problem}; the farm cannot provide it`,
            );
            continue;
        }
        // Libraries were read (or found missing) while following them.
        if (reference.kind === "library") continue;
        if (reference.sequence && sequencePattern(resolved.key)) {
            if (!sequences.has(resolved.key)) sequences.set(resolved.key, neededBy);
        } else if (!listed.has(resolved.key) && !single.has(resolved.key)) single.set(resolved.key, neededBy);
    }

    const heads = await mapWithConcurrency([...single.keys()], HEAD_CONCURRENCY, (key) =>
        headObject(deps.s3, deps.settings.scenesBucket, key),
    );
    for (const head of heads) {
        if (head.missing) missing.push({ key: head.key, neededBy: single.get(head.key)! });
        else {
            found.add(head.key);
            objects.set(head.key, { etag: head.etag ?? "", size: head.size ?? 0 });
        }
    }
    // A sequence's frame numbers are not in the .blend: every frame present in the bucket goes with the job.
    const listings = await mapWithConcurrency([...sequences.keys()], HEAD_CONCURRENCY, async (key) => ({
        key,
        frames: await listSequence(deps, key),
    }));
    for (const { key, frames } of listings) {
        const pattern = sequencePattern(key)!;
        const fromAssets = assets.filter((asset) => isSequenceFrame(pattern, asset));
        if (frames.length === 0 && fromAssets.length === 0)
            missing.push({
                key,
                neededBy: `${sequences.get(key)!} (a sequence: no ${pattern.folder}${pattern.head}<number>${pattern.tail} in the bucket)`,
            });
        for (const frame of frames) {
            if (listed.has(frame.key)) continue;
            found.add(frame.key);
            objects.set(frame.key, { etag: frame.etag, size: frame.size });
        }
    }
    return {
        ok: true,
        value: {
            summary,
            etag,
            size: scene.size,
            frames: checked.value.frames,
            found: [...found].sort(),
            objects,
            missing,
            warnings,
        },
    };
}
