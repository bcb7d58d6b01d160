// The files a job's frames download, as the job API checked them: each pinned to the version it saw (its ETag, which
// the renderer downloads with IfMatch) and their sizes summed against the renderer's /tmp, which holds them all.
import { ApiError, apiError, encodeEtags, JobManifest } from "../shared/contract";
import type { ObjectCheck, ObjectVersion } from "./scenePreflight";

const MIB = 1024 * 1024;
/** The least the renderer's /tmp keeps free for the frame it writes and Blender's temp files (render buffers). */
const MIN_RESERVE_MIB = 256;

/** Bytes of a renderer's /tmp a job's files may fill: the rest is kept for the frame's output and Blender's temp files. */
export function inputBudgetBytes(ephemeralStorageMb: number): { budget: number; reserve: number } {
    // A quarter, at least 256 MiB: an 8K multilayer EXR and Cycles' tile buffers run to a few GB at most.
    const reserve = Math.max(MIN_RESERVE_MIB, Math.ceil(ephemeralStorageMb / 4)) * MIB;
    return { budget: Math.max(0, ephemeralStorageMb * MIB - reserve), reserve };
}

function mib(bytes: number): string {
    return `${(bytes / MIB).toFixed(1)} MiB`;
}

/** Every version the job API saw: the HEADs of the request's keys, then what the preflight read, HEADed or listed. */
export function versionsOf(checks: ObjectCheck[], referenced: Map<string, ObjectVersion>): Map<string, ObjectVersion> {
    const versions = new Map<string, ObjectVersion>();
    for (const check of checks)
        if (!check.missing) versions.set(check.key, { etag: check.etag ?? "", size: check.size ?? 0 });
    for (const [key, version] of referenced) versions.set(key, version);
    return versions;
}

/** Pins the manifest's assets (and so every frame message) to the versions seen. */
export function pinAssets(manifest: JobManifest, versions: Map<string, ObjectVersion>): void {
    manifest.assetEtags = encodeEtags(manifest.request.assets.map((key) => versions.get(key)?.etag ?? ""));
}

/** The 413 for a job whose scene and assets together cannot fit in a renderer's /tmp, or undefined when they fit. */
export function inputsTooLarge(
    manifest: JobManifest,
    versions: Map<string, ObjectVersion>,
    ephemeralStorageMb: number,
): ApiError | undefined {
    const files = [manifest.request.scene, ...manifest.request.assets].map((key) => ({
        key,
        size: versions.get(key)?.size ?? 0,
    }));
    const total = files.reduce((sum, file) => sum + file.size, 0);
    const { budget, reserve } = inputBudgetBytes(ephemeralStorageMb);
    if (total <= budget) return undefined;
    const largest = [...files]
        .sort((a, b) => b.size - a.size)
        .slice(0, 3)
        .map((file) => `${file.key} (${mib(file.size)})`)
        .join(", ");
    return apiError(
        413,
        "inputs_too_large",
        `the scene and its ${files.length - 1} asset(s) total ${mib(total)}, more than the ${mib(budget)} a renderer can download (its ${ephemeralStorageMb} MB /tmp less ${mib(reserve)} kept for the frame and Blender's temp files); largest: ${largest}; make the files smaller (e.g. fewer or smaller sequence frames or caches) or split the job`,
        "assets",
    );
}
