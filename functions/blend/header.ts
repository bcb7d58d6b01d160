// The .blend file header and block headers.
// Legacy header (12 bytes, every Blender up to 4.x): "BLENDER" + '_' (4-byte pointers) or '-' (8-byte)
// + 'v' (little-endian) or 'V' (big-endian) + 3-digit version ("304" = 3.4).
// File format 1 (17 bytes, Blender 5.x): "BLENDER" + "17" (header size) + '-' + "01" (format version)
// + 'v' + 4-digit version ("0500"); its blocks have 64-bit lengths (LargeBHead8).
import { blendFileError } from "./errors";

export interface FileHeader {
    pointerSize: 4 | 8;
    littleEndian: boolean;
    /** 0: legacy 12-byte header; 1: Blender 5.x 17-byte header with 64-bit block headers. */
    fileFormatVersion: 0 | 1;
    /** The Blender version that wrote the file, e.g. 304 for 3.4, 500 for 5.0. */
    version: number;
    /** Bytes the file header takes: 12 or 17. */
    size: number;
    /** Bytes every block header takes: 20 (4-byte pointers), 24, or 32 (format 1). */
    blockHeaderSize: number;
}

export interface BlockHeader {
    /** The block code without its NUL padding: "SC", "IM", "DATA", "DNA1", "ENDB", ... */
    code: string;
    /** Bytes of data after the header. */
    length: number;
    /** The block's address when it was written, as hex: what pointers in other blocks refer to. */
    oldPointer: string;
    /** Index of the block's struct in the file's SDNA. */
    sdnaIndex: number;
    /** How many structs the block holds. */
    count: number;
    /** Offset of the block's data in the decompressed file. */
    offset: number;
}

/** Enough bytes to decide any header: the longest one. */
export const MAX_FILE_HEADER_SIZE = 17;
const MAGIC = "BLENDER";

function ascii(bytes: Uint8Array, start: number, end: number): string {
    let text = "";
    for (let index = start; index < end && index < bytes.length; index++) text += String.fromCharCode(bytes[index]);
    return text;
}

/** True when the bytes start like a .blend (the magic), before any header detail is checked. */
export function startsWithBlendMagic(bytes: Uint8Array): boolean {
    return ascii(bytes, 0, MAGIC.length) === MAGIC;
}

/**
 * Parses the file header from the first bytes of the decompressed file (at least 12; 17 when byte 7 is a digit).
 * Returns undefined when more bytes are needed to decide.
 */
export function parseFileHeader(bytes: Uint8Array, file: string): FileHeader | undefined {
    if (bytes.length < 12) return undefined;
    if (!startsWithBlendMagic(bytes))
        throw blendFileError(
            "not_a_blend",
            file,
            `does not start with "${MAGIC}" (found ${JSON.stringify(ascii(bytes, 0, 7))})`,
            0,
        );
    const pointerChar = ascii(bytes, 7, 8);
    if (pointerChar === "_" || pointerChar === "-") {
        const endianChar = ascii(bytes, 8, 9);
        const versionText = ascii(bytes, 9, 12);
        if (endianChar !== "v" && endianChar !== "V")
            throw blendFileError(
                "unsupported_header",
                file,
                `unsupported .blend header: endianness "${endianChar}" is neither 'v' nor 'V'`,
                8,
            );
        if (!/^\d{3}$/.test(versionText))
            throw blendFileError(
                "unsupported_header",
                file,
                `unsupported .blend header: version "${versionText}" is not three digits`,
                9,
            );
        const pointerSize = pointerChar === "_" ? 4 : 8;
        return {
            pointerSize,
            littleEndian: endianChar === "v",
            fileFormatVersion: 0,
            version: Number(versionText),
            size: 12,
            blockHeaderSize: pointerSize === 4 ? 20 : 24,
        };
    }
    if (bytes.length < MAX_FILE_HEADER_SIZE) {
        if (!/^\d$/.test(pointerChar))
            throw blendFileError(
                "unsupported_header",
                file,
                `unsupported .blend header: pointer size "${pointerChar}" is neither '_' nor '-'`,
                7,
            );
        return undefined;
    }
    const header = ascii(bytes, 0, 17);
    const match = /^BLENDER(\d\d)(.)(\d\d)(.)(\d{4})$/.exec(header);
    if (match?.[1] !== "17")
        throw blendFileError("unsupported_header", file, `unsupported .blend header ${JSON.stringify(header)}`, 7);
    if (match[3] !== "01")
        throw blendFileError(
            "unsupported_header",
            file,
            `unsupported .blend header: file format version ${match[3]} (this reader knows 00 and 01)`,
            10,
        );
    if (match[2] !== "-" || match[4] !== "v")
        throw blendFileError(
            "unsupported_header",
            file,
            `unsupported .blend header ${JSON.stringify(header)}: format 01 is 8-byte pointers, little-endian`,
            9,
        );
    return {
        pointerSize: 8,
        littleEndian: true,
        fileFormatVersion: 1,
        version: Number(match[5]),
        size: 17,
        blockHeaderSize: 32,
    };
}

/** A pointer's bytes as a hex number (most significant first), whatever the file's byte order. */
export function pointerHex(bytes: Uint8Array, offset: number, size: number, littleEndian: boolean): string {
    let hex = "";
    for (let index = 0; index < size; index++) {
        const byte = bytes[littleEndian ? offset + size - 1 - index : offset + index];
        hex += (byte < 16 ? "0" : "") + byte.toString(16);
    }
    return hex;
}

/** True for the all-zero pointer. */
export function isNullPointer(hex: string): boolean {
    return /^0*$/.test(hex);
}

function codeOf(bytes: Uint8Array, offset: number): string {
    // Two-letter ID codes are NUL-padded: "SC\0\0" little-endian, "\0\0SC" big-endian.
    return ascii(bytes, offset, offset + 4).replace(/\0/g, "");
}

/** Parses one block header (`header.blockHeaderSize` bytes at `at`); `offset` is where the header is in the file. */
export function parseBlockHeader(
    bytes: Uint8Array,
    at: number,
    header: FileHeader,
    offset: number,
    file: string,
): BlockHeader {
    const view = new DataView(bytes.buffer, bytes.byteOffset + at, header.blockHeaderSize);
    const little = header.littleEndian;
    const code = codeOf(bytes, at);
    if (!/^[\x20-\x7e]{1,4}$/.test(code))
        throw blendFileError(
            "corrupt",
            file,
            `block code ${JSON.stringify(ascii(bytes, at, at + 4))} is not printable: not a block header`,
            offset,
        );
    let length: number;
    let count: number;
    let sdnaIndex: number;
    let oldPointer: string;
    if (header.fileFormatVersion === 1) {
        sdnaIndex = view.getInt32(4, little);
        oldPointer = pointerHex(bytes, at + 8, 8, little);
        const bigLength = view.getBigInt64(16, little);
        const bigCount = view.getBigInt64(24, little);
        if (bigLength < 0n || bigLength > BigInt(Number.MAX_SAFE_INTEGER))
            throw blendFileError(
                "corrupt",
                file,
                `block ${JSON.stringify(code)} has an impossible length ${bigLength}`,
                offset,
            );
        if (bigCount < 0n || bigCount > BigInt(Number.MAX_SAFE_INTEGER))
            throw blendFileError(
                "corrupt",
                file,
                `block ${JSON.stringify(code)} has an impossible struct count ${bigCount}`,
                offset,
            );
        length = Number(bigLength);
        count = Number(bigCount);
    } else {
        length = view.getInt32(4, little);
        oldPointer = pointerHex(bytes, at + 8, header.pointerSize, little);
        sdnaIndex = view.getInt32(8 + header.pointerSize, little);
        count = view.getInt32(12 + header.pointerSize, little);
        if (length < 0)
            throw blendFileError(
                "corrupt",
                file,
                `block ${JSON.stringify(code)} has a negative length ${length}`,
                offset,
            );
        if (count < 0)
            throw blendFileError(
                "corrupt",
                file,
                `block ${JSON.stringify(code)} has a negative struct count ${count}`,
                offset,
            );
    }
    return { code, length, oldPointer, sdnaIndex, count, offset: offset + header.blockHeaderSize };
}
