// The .blend reader: what a scene is (frame range, render settings, camera) and which files it needs
// (images, libraries, caches, fonts), read in TypeScript without Blender, from a file or a stream.
import * as fs from "fs";
import { DEFAULT_READ_LIMITS, ReadLimits } from "./blocks";
import { walkBlendStream } from "./decompress";
import { summarize, BlendSummary } from "./summary";

export { BlendFileError, blendFileError, BlendErrorCode, BLEND_ERROR_CODES, isBlendFileError } from "./errors";
export { Compression } from "./decompress";
export { DEFAULT_READ_LIMITS, ReadLimits } from "./blocks";
export {
    BlendCacheFile,
    BlendFont,
    BlendImage,
    BlendLibrary,
    BlendMovieClip,
    BlendScene,
    BlendSummary,
    BlendVolume,
    ImageSource,
} from "./summary";
export { describeNeed, HeldReference, LIBRARY_LIMITS, referencesWithLibraries } from "./libraries";
export {
    BlendReference,
    externalReferences,
    isSequenceFrame,
    ReferenceKind,
    resolveReferenceKey,
    ResolvedReference,
    sequencePattern,
} from "./references";

/**
 * Reads a .blend (plain, gzip or zstd) from a stream of bytes, e.g. an S3 GetObject body, with memory bounded
 * by the scene's metadata rather than the file's size. `file` names the source in errors.
 * Throws BlendFileError for anything that is not a readable .blend.
 */
export async function readBlendStream(
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    file: string,
    limits: ReadLimits = DEFAULT_READ_LIMITS,
): Promise<BlendSummary> {
    const { walk, compression } = await walkBlendStream(source, file, limits);
    return summarize(walk, file, compression);
}

/** Reads a .blend from bytes already in memory (tests, small files). */
export async function readBlendBuffer(
    bytes: Uint8Array,
    file: string,
    limits: ReadLimits = DEFAULT_READ_LIMITS,
): Promise<BlendSummary> {
    return readBlendStream([bytes], file, limits);
}

/** Reads a local .blend file: what `render-farm inspect <scene.blend>` shows. */
export async function inspectBlendFile(path: string, limits: ReadLimits = DEFAULT_READ_LIMITS): Promise<BlendSummary> {
    const stream = fs.createReadStream(path, { highWaterMark: 256 * 1024 });
    try {
        return await readBlendStream(stream, path, limits);
    } finally {
        stream.destroy();
    }
}
