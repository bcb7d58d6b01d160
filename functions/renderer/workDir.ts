// The renderer's work dir under /tmp: a mirror of the scenes bucket's keys, so `//textures/wood.png`
// resolves next to the .blend exactly as on the artist's disk. The scene is cached by ETag across warm
// invocations; everything else is cleaned before each frame.
import * as fs from "fs";
import * as path from "path";
import { pipeline } from "stream/promises";
import { GetObjectCommand, GetObjectCommandOutput, S3Client } from "@aws-sdk/client-s3";
import { objectKeyProblem } from "../shared/contract";
import { awsErrorStatus, describeAwsError, isNotFound } from "../shared/awsErrors";
import { FarmError, farmError } from "../shared/errors";

export interface CachedScene {
    key: string;
    etag: string;
}

export interface SceneMirror {
    /** Root of the mirror: `<root>/<key>` is the object `key`. */
    root: string;
    /** The scene kept from the last frame, if any. */
    cached?: CachedScene;
}

/** Where `key` lives in the mirror; refuses any key that could leave it. */
export function mirrorPath(root: string, key: string): string {
    const problem = objectKeyProblem(key);
    if (problem) throw farmError("invalid_key", `object key "${key}" ${problem}`);
    const target = path.resolve(root, key);
    if (!target.startsWith(path.resolve(root) + path.sep))
        throw farmError("invalid_key", `object key "${key}" leaves the work dir`);
    return target;
}

/** Deletes everything under `root` but the file `keep` (when given). */
function removeAllBut(root: string, keep?: string): void {
    if (!fs.existsSync(root)) return;
    for (const entry of fs.readdirSync(root, { withFileTypes: true })) {
        const full = path.join(root, entry.name);
        if (full === keep) continue;
        if (entry.isDirectory() && keep?.startsWith(full + path.sep)) {
            removeAllBut(full, keep);
        } else {
            fs.rmSync(full, { recursive: true, force: true });
        }
    }
}

/** A failed GetObject, with the key it was about: missing_object, object_changed (IfMatch) or storage_error. */
export interface DownloadError extends FarmError {
    key: string;
}

function downloadError(bucket: string, key: string, cause: unknown): DownloadError {
    const status = awsErrorStatus(cause);
    const code = isNotFound(cause) ? "missing_object" : status === 412 ? "object_changed" : "storage_error";
    const error = farmError(code, `s3://${bucket}/${key}: ${describeAwsError(cause)}`, status) as DownloadError;
    error.key = key;
    return error;
}

/** Streams one object to `target` through a temporary name, so a broken download never looks complete. Returns its ETag. */
export async function downloadObject(
    s3: S3Client,
    bucket: string,
    key: string,
    target: string,
    ifMatch?: string,
): Promise<{ etag: string; bytes: number }> {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    let response: GetObjectCommandOutput;
    try {
        response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, IfMatch: ifMatch || undefined }));
    } catch (error) {
        throw downloadError(bucket, key, error);
    }
    const partial = `${target}.partial-${process.pid}`;
    try {
        await pipeline(response.Body as NodeJS.ReadableStream, fs.createWriteStream(partial));
        fs.renameSync(partial, target);
    } finally {
        fs.rmSync(partial, { force: true });
    }
    return { etag: response.ETag ?? "", bytes: fs.statSync(target).size };
}

export interface FrameFiles {
    scenePath: string;
    /** Scene bytes downloaded for this frame: 0 when the cached copy was used. */
    sceneBytes: number;
    /** Seconds the scene's download took (0 when the cached copy was used). */
    sceneDownloadSeconds: number;
    /**
     * Every file laid out (the scene and each asset) with the ETag of the bytes that are on disk, or undefined when
     * S3 named no ETag for one of them. A Blender that keeps a scene loaded may reuse it only while this is the same:
     * a replaced texture or library is a new version even when the scene and the asset keys are not.
     */
    version?: string;
}

/**
 * Lays out the scene and its assets for one frame. The scene is downloaded only when the cached copy is
 * another key or another version; the assets always, after the last frame's files are cleaned away, each with
 * IfMatch on its ETag when it has one.
 */
export async function prepareFrameFiles(
    s3: S3Client,
    bucket: string,
    mirror: SceneMirror,
    scene: { key: string; etag: string },
    assets: { key: string; etag: string }[],
): Promise<FrameFiles> {
    const scenePath = mirrorPath(mirror.root, scene.key);
    const assetPaths = assets.map((asset) => ({ ...asset, target: mirrorPath(mirror.root, asset.key) }));
    // Without an ETag (a message without a version pins none) the cached copy may be another version: download again.
    const cacheHit =
        scene.etag !== "" &&
        mirror.cached?.key === scene.key &&
        mirror.cached.etag === scene.etag &&
        fs.existsSync(scenePath);
    removeAllBut(mirror.root, cacheHit ? scenePath : undefined);
    let sceneBytes = 0;
    let sceneDownloadSeconds = 0;
    if (!cacheHit) {
        const started = Date.now();
        mirror.cached = undefined;
        // IfMatch: every frame of a job renders the scene version that was submitted, or fails saying so.
        const downloaded = await downloadObject(s3, bucket, scene.key, scenePath, scene.etag);
        mirror.cached = { key: scene.key, etag: downloaded.etag };
        sceneBytes = downloaded.bytes;
        sceneDownloadSeconds = (Date.now() - started) / 1000;
    }
    const laidOut: [string, string][] = [[scene.key, mirror.cached?.etag ?? ""]];
    for (const asset of assetPaths) {
        if (asset.target === scenePath) continue;
        // IfMatch again: an asset re-uploaded mid-job fails the frame instead of mixing versions across frames.
        const downloaded = await downloadObject(s3, bucket, asset.key, asset.target, asset.etag);
        laidOut.push([asset.key, downloaded.etag]);
    }
    const version = laidOut.every(([, etag]) => etag !== "") ? JSON.stringify(laidOut) : undefined;
    return { scenePath, sceneBytes, sceneDownloadSeconds, version };
}

/** Cleans the frame's files away but keeps the cached scene for the next warm invocation. */
export function cleanFrameFiles(mirror: SceneMirror): void {
    removeAllBut(mirror.root, mirror.cached ? mirrorPath(mirror.root, mirror.cached.key) : undefined);
}
