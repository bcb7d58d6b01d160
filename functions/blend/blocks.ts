// Walks the blocks of a decompressed .blend as its bytes stream past, keeping only what the summary needs.
// SDNA (the DNA1 block) comes last, so nothing can be decoded on the way: the few small blocks that matter
// (scenes, images, libraries, the window manager, ...) are kept raw until the end, objects only by their first bytes (for the
// camera's name), a scene's small DATA blocks within a budget (its ID properties, its sequencer), and everything else (meshes, packed files, previews) is skipped without being buffered.
import { blendFileError } from "./errors";
import {
    BlockHeader,
    FileHeader,
    MAX_FILE_HEADER_SIZE,
    parseBlockHeader,
    parseFileHeader,
    startsWithBlendMagic,
} from "./header";

export interface KeptBlock extends BlockHeader {
    /** The block's data, or its first bytes when `whole` is false. */
    data: Uint8Array;
    whole: boolean;
}

export interface WalkResult {
    header: FileHeader;
    /** Kept blocks in file order, DNA1 excluded. */
    blocks: KeptBlock[];
    dna: KeptBlock;
    /** Every block before ENDB, kept or not. */
    blockCount: number;
    /** Decompressed bytes up to and including ENDB. */
    bytes: number;
}

export interface ReadLimits {
    /** All kept bytes together (SDNA included): the reader's memory beyond its stream buffers. */
    maxKeptBytes: number;
    /** One kept ID block (a Scene is ~10 KiB in Blender 4.x). */
    maxIdBlockBytes: number;
    maxDnaBytes: number;
    /** Decompressed bytes read before giving up (a compression bomb costs time, not memory). */
    maxFileBytes: number;
}

export const DEFAULT_READ_LIMITS: ReadLimits = {
    maxKeptBytes: 96 * 1024 * 1024,
    maxIdBlockBytes: 4 * 1024 * 1024,
    maxDnaBytes: 32 * 1024 * 1024,
    maxFileBytes: 64 * 1024 * 1024 * 1024,
};

/** Blocks kept whole: their structs are decoded once SDNA is known. */
const WHOLE_CODES = ["SC", "IM", "LI", "MC", "VO", "CF", "VF", "GLOB", "WM"];
/** Blocks kept by their first bytes: enough for the ID name (Blender 5 names are up to 258 bytes, after 5 pointers). */
const PREFIX_CODES = ["OB", "ID"];
const ID_PREFIX_BYTES = 320;
/**
 * DATA blocks written right after an image (tiles, packed-file records) or the window manager (its windows) are
 * small; previews and pixels are not.
 */
const SMALL_DATA_MAX_BYTES = 16 * 1024;
const SMALL_DATA_AFTER = ["IM", "WM"];
/**
 * DATA blocks after a scene: its ID properties first (scene.cycles.*), then tool settings, the sequencer's strips,
 * ... Kept up to this many bytes per scene and only within maxKeptBytes, best effort: what falls outside reads as
 * "could not tell", never as an error.
 */
const SCENE_DATA_MAX_BYTES = 256 * 1024;

export interface BlockWalker {
    push(chunk: Uint8Array): void;
    /** Call at the end of the stream: the result, or the error that says why there is none. */
    finish(): WalkResult;
    /** True once ENDB was read; later bytes are ignored. */
    readonly done: boolean;
}

export function createBlockWalker(file: string, limits: ReadLimits = DEFAULT_READ_LIMITS): BlockWalker {
    let header: FileHeader | undefined;
    let phase: "file-header" | "block-header" | "body" | "done" = "file-header";
    // Headers are at most 32 bytes: gathered here when they straddle chunks.
    const pending = new Uint8Array(32);
    let pendingLength = 0;
    let needed = 12;
    let position = 0;
    let block: BlockHeader | undefined;
    let remaining = 0;
    let keep: Uint8Array | undefined;
    let keepFilled = 0;
    let keptBytes = 0;
    let lastIdCode = "";
    let sceneDataBytes = 0;
    let blockCount = 0;
    let dna: KeptBlock | undefined;
    const blocks: KeptBlock[] = [];

    function keptLength(found: BlockHeader): number {
        if (found.code === "DNA1") {
            if (found.length > limits.maxDnaBytes)
                throw blendFileError(
                    "too_large",
                    file,
                    `SDNA block is ${found.length} bytes, over the reader's limit of ${limits.maxDnaBytes}`,
                    found.offset,
                );
            return found.length;
        }
        if (WHOLE_CODES.includes(found.code)) {
            if (found.length > limits.maxIdBlockBytes)
                throw blendFileError(
                    "too_large",
                    file,
                    `${found.code} block is ${found.length} bytes, over the reader's limit of ${limits.maxIdBlockBytes}`,
                    found.offset,
                );
            return found.length;
        }
        if (PREFIX_CODES.includes(found.code)) return Math.min(found.length, ID_PREFIX_BYTES);
        if (found.code === "DATA" && SMALL_DATA_AFTER.includes(lastIdCode) && found.length <= SMALL_DATA_MAX_BYTES)
            return found.length;
        if (
            found.code === "DATA" &&
            lastIdCode === "SC" &&
            found.length <= SMALL_DATA_MAX_BYTES &&
            sceneDataBytes + found.length <= SCENE_DATA_MAX_BYTES &&
            keptBytes + found.length <= limits.maxKeptBytes
        ) {
            sceneDataBytes += found.length;
            return found.length;
        }
        return 0;
    }

    function startBlock(found: BlockHeader): void {
        blockCount++;
        if (found.code !== "DATA") {
            lastIdCode = found.code;
            sceneDataBytes = 0;
        }
        block = found;
        remaining = found.length;
        const wanted = keptLength(found);
        keptBytes += wanted;
        if (keptBytes > limits.maxKeptBytes) {
            throw blendFileError(
                "too_large",
                file,
                `the scene's metadata (scenes, images, objects' names, SDNA) passes the reader's limit of ${limits.maxKeptBytes} bytes`,
                found.offset,
            );
        }
        keep = wanted > 0 || found.code === "DNA1" ? new Uint8Array(wanted) : undefined;
        keepFilled = 0;
        if (remaining === 0) endBlock();
        else phase = "body";
    }

    function endBlock(): void {
        const found = block!;
        if (keep) {
            const kept: KeptBlock = { ...found, data: keep, whole: keep.length === found.length };
            if (found.code === "DNA1") dna = kept;
            else blocks.push(kept);
        }
        keep = undefined;
        block = undefined;
        phase = "block-header";
        needed = header!.blockHeaderSize;
        pendingLength = 0;
    }

    function headerComplete(): void {
        if (phase === "file-header") {
            const parsed = parseFileHeader(pending.subarray(0, pendingLength), file);
            if (!parsed) {
                needed = MAX_FILE_HEADER_SIZE;
                return;
            }
            header = parsed;
            phase = "block-header";
            needed = parsed.blockHeaderSize;
            pendingLength = 0;
            return;
        }
        const found = parseBlockHeader(pending, 0, header!, position - pendingLength, file);
        if (found.code === "ENDB") {
            phase = "done";
            return;
        }
        startBlock(found);
    }

    return {
        get done() {
            return phase === "done";
        },
        push(chunk: Uint8Array): void {
            let index = 0;
            while (index < chunk.length && phase !== "done") {
                if (phase === "body") {
                    const take = Math.min(remaining, chunk.length - index);
                    if (keep && keepFilled < keep.length) {
                        const copy = Math.min(take, keep.length - keepFilled);
                        keep.set(chunk.subarray(index, index + copy), keepFilled);
                        keepFilled += copy;
                    }
                    index += take;
                    position += take;
                    remaining -= take;
                    if (position > limits.maxFileBytes)
                        throw blendFileError(
                            "too_large",
                            file,
                            `is larger than the reader's limit of ${limits.maxFileBytes} bytes uncompressed`,
                            position,
                        );
                    if (remaining === 0) endBlock();
                    continue;
                }
                const take = Math.min(needed - pendingLength, chunk.length - index);
                pending.set(chunk.subarray(index, index + take), pendingLength);
                pendingLength += take;
                index += take;
                position += take;
                if (
                    phase === "file-header" &&
                    pendingLength >= 7 &&
                    !startsWithBlendMagic(pending.subarray(0, pendingLength))
                ) {
                    throw blendFileError("not_a_blend", file, 'does not start with "BLENDER": not a .blend file', 0);
                }
                if (pendingLength === needed) headerComplete();
            }
        },
        finish(): WalkResult {
            if (phase === "file-header") {
                if (position === 0) throw blendFileError("not_a_blend", file, "is empty: not a .blend file");
                const prefix = pending.subarray(0, Math.min(pendingLength, 7));
                if (Buffer.from(prefix).toString("latin1") !== "BLENDER".slice(0, prefix.length))
                    throw blendFileError("not_a_blend", file, 'does not start with "BLENDER": not a .blend file', 0);
                throw blendFileError(
                    "truncated",
                    file,
                    `ends after ${position} bytes, inside the file header`,
                    position,
                );
            }
            // Some old Blenders ended the file with an 8-byte ENDB (code and length only).
            const legacyEnd =
                phase === "block-header" &&
                pendingLength === 8 &&
                Buffer.from(pending.subarray(0, 4)).toString("latin1") === "ENDB";
            if (phase === "body")
                throw blendFileError(
                    "truncated",
                    file,
                    `ends inside block ${block!.code} (${block!.length - remaining} of its ${block!.length} bytes)`,
                    position,
                );
            if (phase !== "done" && !legacyEnd) {
                throw blendFileError(
                    "truncated",
                    file,
                    pendingLength > 0 ? "ends inside a block header" : "ends without its ENDB block",
                    position,
                );
            }
            if (!dna) throw blendFileError("corrupt", file, "has no DNA1 (SDNA) block: its structs cannot be decoded");
            return { header: header!, blocks, dna, blockCount, bytes: position };
        },
    };
}
