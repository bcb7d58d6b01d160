// The byte layer under the block walker: plain .blend, gzip (Blender < 3.0) or zstd (3.0+), told apart by
// their first bytes, decompressed as the stream passes. zstd goes through the pure-JS fzstd (Node's zlib has
// zstd only from 22.15, and the Lambda runtime's minor version is not ours to pick); each zstd frame header
// is checked first, because fzstd allocates whatever window a frame asks for.
import * as zlib from "zlib";
import { Decompress as ZstdDecompress } from "fzstd";
import { BlockWalker, createBlockWalker, DEFAULT_READ_LIMITS, ReadLimits, WalkResult } from "./blocks";
import { BlendFileError, blendFileError, isBlendFileError } from "./errors";

export type Compression = "none" | "gzip" | "zstd";

/** Largest zstd window (and so fzstd buffer) accepted; Blender writes frames of about 1 MiB. */
export const MAX_ZSTD_WINDOW_BYTES = 64 * 1024 * 1024;
/** zstd caps a block at 128 KiB. */
const ZSTD_MAX_BLOCK_BYTES = 128 * 1024;

export function compressionOf(first: Uint8Array): Compression | undefined {
    if (first.length >= 2 && first[0] === 0x1f && first[1] === 0x8b) return "gzip";
    if (first.length >= 4 && first[0] === 0x28 && first[1] === 0xb5 && first[2] === 0x2f && first[3] === 0xfd)
        return "zstd";
    if (first.length >= 4) return "none";
    return undefined;
}

/**
 * Follows the zstd framing (frame headers, block headers, skippable frames) over the compressed bytes and
 * refuses, before fzstd sees them, frames whose window would be a huge allocation and framing that is broken.
 */
function createZstdFrameGuard(file: string) {
    const buffer = new Uint8Array(16);
    let filled = 0;
    let needed = 4;
    let state: "magic" | "descriptor" | "frame-header" | "skippable-size" | "block-header" | "skip" = "magic";
    let skip = 0;
    let afterSkip: "block-header" | "magic" = "magic";
    let lastBlock = false;
    let checksum = false;
    let singleSegment = false;
    let dictionaryBytes = 0;
    let sizeBytes = 0;
    let offset = 0;
    const fail = (message: string): never => {
        throw blendFileError("bad_compression", file, `zstd: ${message}`, undefined);
    };
    const readLittle = (from: number, count: number): number => {
        let value = 0;
        for (let index = count - 1; index >= 0; index--) value = value * 256 + buffer[from + index];
        return value;
    };
    function complete(): void {
        filled = 0;
        if (state === "magic") {
            const magic = readLittle(0, 4);
            if (magic === 0xfd2fb528) {
                state = "descriptor";
                needed = 1;
            } else if (Math.floor(magic / 16) === 0x184d2a5) {
                state = "skippable-size";
                needed = 4;
            } else fail(`no frame magic at compressed byte ${offset - 4}`);
            return;
        }
        if (state === "descriptor") {
            const descriptor = buffer[0];
            if (descriptor & 0x08) fail("a frame header's reserved bit is set");
            singleSegment = (descriptor & 0x20) !== 0;
            checksum = (descriptor & 0x04) !== 0;
            dictionaryBytes = [0, 1, 2, 4][descriptor & 3];
            const sizeFlag = descriptor >> 6;
            sizeBytes = sizeFlag === 0 ? (singleSegment ? 1 : 0) : [0, 2, 4, 8][sizeFlag];
            state = "frame-header";
            needed = (singleSegment ? 0 : 1) + dictionaryBytes + sizeBytes;
            if (needed === 0) fail("a frame has neither a window size nor a content size");
            return;
        }
        if (state === "frame-header") {
            let window: number;
            if (!singleSegment) {
                const exponent = buffer[0] >> 3;
                const base = 2 ** (10 + exponent);
                window = base + (base / 8) * (buffer[0] & 7);
            } else {
                window = readLittle(dictionaryBytes, sizeBytes) + (sizeBytes === 2 ? 256 : 0);
            }
            if (dictionaryBytes > 0 && readLittle(singleSegment ? 0 : 1, dictionaryBytes) !== 0)
                fail("frames that need a dictionary are not supported");
            if (window > MAX_ZSTD_WINDOW_BYTES)
                fail(`a frame asks for a ${window}-byte window, over the reader's limit of ${MAX_ZSTD_WINDOW_BYTES}`);
            state = "block-header";
            needed = 3;
            return;
        }
        if (state === "skippable-size") {
            skip = readLittle(0, 4);
            afterSkip = "magic";
            state = "skip";
            return;
        }
        if (state === "block-header") {
            const value = readLittle(0, 3);
            lastBlock = (value & 1) === 1;
            const type = (value >> 1) & 3;
            const size = value >>> 3;
            if (type === 3) fail("a block has the reserved type 3");
            if (size > ZSTD_MAX_BLOCK_BYTES) fail(`a block claims ${size} bytes, over zstd's 128 KiB`);
            skip = (type === 1 ? 1 : size) + (lastBlock && checksum ? 4 : 0);
            afterSkip = lastBlock ? "magic" : "block-header";
            state = "skip";
        }
    }
    return {
        check(chunk: Uint8Array): void {
            let index = 0;
            while (index < chunk.length) {
                if (state === "skip") {
                    const take = Math.min(skip, chunk.length - index);
                    skip -= take;
                    index += take;
                    offset += take;
                    if (skip === 0) {
                        state = afterSkip;
                        needed = afterSkip === "magic" ? 4 : 3;
                    }
                    continue;
                }
                const take = Math.min(needed - filled, chunk.length - index);
                buffer.set(chunk.subarray(index, index + take), filled);
                filled += take;
                index += take;
                offset += take;
                if (filled === needed) {
                    complete();
                    // An empty block or skippable frame has nothing to skip.
                    if ((state as string) === "skip" && skip === 0) {
                        state = afterSkip;
                        needed = afterSkip === "magic" ? 4 : 3;
                    }
                }
            }
        },
        /** True when the stream may end here: between frames. */
        atFrameBoundary(): boolean {
            return state === "magic" && filled === 0;
        },
    };
}

function compressionError(file: string, kind: string, error: unknown): BlendFileError {
    if (isBlendFileError(error)) return error;
    const message = error instanceof Error ? error.message : String(error);
    if (/unexpected end|end of file|UnexpectedEOF/i.test(message))
        return blendFileError("truncated", file, `the ${kind} stream ends early (${message})`);
    return blendFileError("bad_compression", file, `the ${kind} stream is corrupt (${message})`);
}

/** Feeds a gzip stream through zlib into the walker; resolves when the walker has its ENDB or the input ends. */
function createGunzipFeed(file: string, walker: BlockWalker) {
    const gunzip = zlib.createGunzip({ chunkSize: 64 * 1024 });
    let failure: BlendFileError | undefined;
    gunzip.on("data", (out: Buffer) => {
        if (failure || walker.done) return;
        try {
            walker.push(out);
        } catch (error) {
            failure = compressionError(file, "gzip", error);
            gunzip.destroy();
        }
    });
    const ended = new Promise<void>((resolve) => {
        gunzip.on("error", (error) => {
            if (!failure && !walker.done) failure = compressionError(file, "gzip", error);
            resolve();
        });
        gunzip.on("end", () => resolve());
        gunzip.on("close", () => resolve());
    });
    return {
        async write(chunk: Uint8Array): Promise<void> {
            if (failure) throw failure;
            // A destroyed zlib stream may never call back: its end settles the write too.
            await Promise.race([new Promise<void>((resolve) => gunzip.write(chunk, () => resolve())), ended]);
            if (failure) throw failure;
        },
        async end(): Promise<void> {
            if (!failure && !walker.done) gunzip.end();
            else gunzip.destroy();
            await ended;
            if (failure) throw failure;
        },
        destroy(): void {
            gunzip.destroy();
        },
    };
}

/**
 * Reads a .blend from a stream of bytes (a file, an S3 GetObject body): sniffs the compression, decompresses
 * as the bytes arrive and walks the blocks, keeping only the few the summary needs. Stops at ENDB.
 */
export async function walkBlendStream(
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    file: string,
    limits: ReadLimits = DEFAULT_READ_LIMITS,
): Promise<{ walk: WalkResult; compression: Compression }> {
    const walker = createBlockWalker(file, limits);
    let compression: Compression | undefined;
    let head = new Uint8Array(0);
    let gunzipFeed: ReturnType<typeof createGunzipFeed> | undefined;
    let zstd: { guard: ReturnType<typeof createZstdFrameGuard>; decompressor: ZstdDecompress } | undefined;

    const start = (kind: Compression) => {
        compression = kind;
        if (kind === "gzip") gunzipFeed = createGunzipFeed(file, walker);
        if (kind === "zstd") {
            const decompressor = new ZstdDecompress((data) => {
                if (!walker.done) walker.push(data);
            });
            zstd = { guard: createZstdFrameGuard(file), decompressor };
        }
    };
    const feed = async (chunk: Uint8Array) => {
        if (compression === "none") walker.push(chunk);
        else if (gunzipFeed) await gunzipFeed.write(chunk);
        else if (zstd) {
            zstd.guard.check(chunk);
            try {
                zstd.decompressor.push(chunk);
            } catch (error) {
                throw compressionError(file, "zstd", error);
            }
        }
    };

    try {
        for await (const raw of source) {
            const chunk = raw instanceof Uint8Array ? raw : new Uint8Array(raw as ArrayBuffer);
            if (compression === undefined) {
                // The first bytes may come in pieces: gather four before deciding.
                const joined = new Uint8Array(head.length + chunk.length);
                joined.set(head);
                joined.set(chunk, head.length);
                const kind = compressionOf(joined);
                if (kind === undefined) {
                    head = joined;
                    continue;
                }
                start(kind);
                await feed(joined);
            } else {
                await feed(chunk);
            }
            if (walker.done) break;
        }
        if (compression === undefined) {
            // Fewer than four bytes in all: too short for any header.
            start("none");
            walker.push(head);
        } else if (!walker.done) {
            if (gunzipFeed) await gunzipFeed.end();
            if (zstd) {
                if (!zstd.guard.atFrameBoundary())
                    throw blendFileError("truncated", file, "the zstd stream ends inside a frame");
                try {
                    zstd.decompressor.push(new Uint8Array(0), true);
                } catch (error) {
                    throw compressionError(file, "zstd", error);
                }
            }
        }
    } finally {
        gunzipFeed?.destroy();
    }
    return { walk: walker.finish(), compression: compression ?? "none" };
}
