// The one error the .blend reader throws: anything that is not a readable .blend ends here, with a code
// a caller can branch on and a message that names the file and what was wrong where.
import { FarmError, farmError } from "../shared/errors";

export const BLEND_ERROR_CODES = [
    /** Not a .blend at all: no BLENDER magic (after any gzip/zstd layer), or an empty file. */
    "not_a_blend",
    /** A .blend header this reader does not know (e.g. a future file format version). */
    "unsupported_header",
    /** The file ends before its last block (ENDB), or inside a block. */
    "truncated",
    /** Blocks or SDNA that contradict themselves: negative lengths, dangling struct indexes, bad sizes. */
    "corrupt",
    /** The gzip or zstd layer is broken, or asks for more memory than the reader allows. */
    "bad_compression",
    /** A limit the reader keeps so that memory stays bounded (kept metadata, decompressed size). */
    "too_large",
] as const;
export type BlendErrorCode = (typeof BLEND_ERROR_CODES)[number];

/** Thrown by the reader for anything that is not a readable .blend: a FarmError (shared/errors.ts) with the file. */
export interface BlendFileError extends FarmError {
    name: "BlendFileError";
    code: BlendErrorCode;
    /** The file (path or S3 key) being read, as the caller named it. */
    file: string;
    /** Offset in the decompressed .blend where the problem was found, when known. */
    offset?: number;
}

export function blendFileError(code: BlendErrorCode, file: string, message: string, offset?: number): BlendFileError {
    const error = farmError(
        code,
        `${file}: ${message}${offset === undefined ? "" : ` (at byte ${offset})`}`,
    ) as BlendFileError;
    error.name = "BlendFileError";
    error.file = file;
    if (offset !== undefined) error.offset = offset;
    return error;
}

/** True for the errors the reader throws on purpose. */
export function isBlendFileError(error: unknown): error is BlendFileError {
    return (
        error instanceof Error &&
        error.name === "BlendFileError" &&
        typeof (error as { code?: unknown }).code === "string"
    );
}
