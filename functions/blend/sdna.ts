// SDNA: the struct catalogue every .blend carries in its DNA1 block, so that any Blender (and this reader) can
// find a field by name in a file written by another version, pointer size or byte order.
// Layout: "SDNA", "NAME" n names, "TYPE" n types, "TLEN" n type sizes, "STRC" n structs of (type, field count,
// (field type, field name)...); each section starts 4-byte aligned from the block's start.
import { blendFileError } from "./errors";
import { isNullPointer, pointerHex } from "./header";

export interface SdnaField {
    /** The field's type name: "int", "char", "ID", "RenderData", ... */
    type: string;
    /** The bare name: "*camera" -> "camera", "name[66]" -> "name". */
    name: string;
    /** As written in the SDNA: "*camera", "name[66]", "(*func)()". */
    declaration: string;
    offset: number;
    size: number;
    isPointer: boolean;
    /** Product of the array dimensions; 1 for a scalar. */
    arrayLength: number;
}

export interface SdnaStruct {
    name: string;
    size: number;
    fields: SdnaField[];
}

export interface Sdna {
    pointerSize: 4 | 8;
    littleEndian: boolean;
    structs: SdnaStruct[];
    /** Type sizes by type name (primitives and structs). */
    typeSizes: Map<string, number>;
    structIndex: Map<string, number>;
}

/** A struct instance inside a block's bytes. */
export interface StructRef {
    sdna: Sdna;
    struct: SdnaStruct;
    bytes: Uint8Array;
    offset: number;
}

/** Primitive types and how to read them; any other type is a struct (or void). */
const INTEGER_TYPES: Record<string, { size: number; signed: boolean }> = {
    char: { size: 1, signed: false }, // Blender's char is unsigned in practice (UTF-8 strings, flags)
    uchar: { size: 1, signed: false },
    int8_t: { size: 1, signed: true },
    uint8_t: { size: 1, signed: false },
    short: { size: 2, signed: true },
    ushort: { size: 2, signed: false },
    int16_t: { size: 2, signed: true },
    uint16_t: { size: 2, signed: false },
    int: { size: 4, signed: true },
    uint: { size: 4, signed: false },
    int32_t: { size: 4, signed: true },
    uint32_t: { size: 4, signed: false },
    long: { size: 4, signed: true },
    ulong: { size: 4, signed: false },
};

function align4(offset: number): number {
    return (offset + 3) & ~3;
}

/** Parses a DNA1 block's data. Every count and index is checked against the block, so a corrupted SDNA ends in an error. */
export function parseSdna(data: Uint8Array, pointerSize: 4 | 8, littleEndian: boolean, file: string): Sdna {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let at = 0;
    const fail = (message: string): never => {
        throw blendFileError("corrupt", file, `SDNA (DNA1 block): ${message}`);
    };
    const need = (bytes: number, what: string) => {
        if (at + bytes > data.length) fail(`ends inside ${what}`);
    };
    const tag = (expected: string) => {
        need(4, `the "${expected}" tag`);
        const found = String.fromCharCode(data[at], data[at + 1], data[at + 2], data[at + 3]);
        if (found !== expected) fail(`expected "${expected}" at offset ${at}, found ${JSON.stringify(found)}`);
        at += 4;
    };
    const count = (what: string, minimumBytesEach: number): number => {
        need(4, `the ${what} count`);
        const value = view.getInt32(at, littleEndian);
        at += 4;
        if (value < 0 || value * minimumBytesEach > data.length - at)
            fail(`${what} count ${value} does not fit in the block`);
        return value;
    };
    const strings = (what: string, howMany: number): string[] => {
        const list: string[] = new Array(howMany);
        for (let index = 0; index < howMany; index++) {
            const end = data.indexOf(0, at);
            if (end < 0) fail(`${what} ${index} is not NUL-terminated`);
            list[index] = Buffer.from(data.buffer, data.byteOffset + at, end - at).toString("latin1");
            at = end + 1;
        }
        at = align4(at);
        return list;
    };

    tag("SDNA");
    tag("NAME");
    const names = strings("name", count("name", 1));
    tag("TYPE");
    const types = strings("type", count("type", 1));
    tag("TLEN");
    need(types.length * 2, "the type sizes");
    const typeSizes = new Map<string, number>();
    const sizes: number[] = new Array(types.length);
    for (let index = 0; index < types.length; index++) {
        sizes[index] = view.getUint16(at + index * 2, littleEndian);
        typeSizes.set(types[index], sizes[index]);
    }
    at = align4(at + types.length * 2);
    tag("STRC");
    const structCount = count("struct", 4);
    const structs: SdnaStruct[] = [];
    const structIndex = new Map<string, number>();
    for (let index = 0; index < structCount; index++) {
        need(4, `struct ${index}`);
        const typeIndex = view.getInt16(at, littleEndian);
        const fieldCount = view.getInt16(at + 2, littleEndian);
        at += 4;
        if (typeIndex < 0 || typeIndex >= types.length)
            fail(`struct ${index} has type index ${typeIndex} of ${types.length}`);
        if (fieldCount < 0) fail(`struct ${types[typeIndex]} has ${fieldCount} fields`);
        need(fieldCount * 4, `the fields of struct ${types[typeIndex]}`);
        const fields: SdnaField[] = [];
        let offset = 0;
        for (let fieldIndex = 0; fieldIndex < fieldCount; fieldIndex++) {
            const fieldType = view.getInt16(at, littleEndian);
            const fieldName = view.getInt16(at + 2, littleEndian);
            at += 4;
            if (fieldType < 0 || fieldType >= types.length || fieldName < 0 || fieldName >= names.length) {
                fail(
                    `field ${fieldIndex} of struct ${types[typeIndex]} has type ${fieldType} / name ${fieldName} out of range`,
                );
            }
            const declaration = names[fieldName];
            const isPointer = declaration.startsWith("*") || declaration.startsWith("(*");
            let arrayLength = 1;
            // Function pointers "(*func)()" have no dimensions; "mat[4][4]" has two.
            if (!declaration.startsWith("("))
                for (const dimension of declaration.matchAll(/\[(\d+)\]/g)) arrayLength *= Number(dimension[1]);
            const size = (isPointer ? pointerSize : sizes[fieldType]) * arrayLength;
            const bare = /^[(*]*([A-Za-z0-9_]+)/.exec(declaration);
            fields.push({
                type: types[fieldType],
                name: bare ? bare[1] : declaration,
                declaration,
                offset,
                size,
                isPointer,
                arrayLength,
            });
            offset += size;
        }
        // Blender's structs carry explicit padding, so their fields add up to the recorded size exactly.
        if (offset !== sizes[typeIndex])
            fail(
                `struct ${types[typeIndex]}: fields add up to ${offset} bytes, the type table says ${sizes[typeIndex]}`,
            );
        structIndex.set(types[typeIndex], structs.length);
        structs.push({ name: types[typeIndex], size: offset, fields });
    }
    return { pointerSize, littleEndian, structs, typeSizes, structIndex };
}

export function findField(struct: SdnaStruct, name: string): SdnaField | undefined {
    return struct.fields.find((field) => field.name === name);
}

/** The struct a block holds, checked: the block's SDNA index must exist and name the expected struct (when given). */
export function blockStruct(
    sdna: Sdna,
    sdnaIndex: number,
    expected: string | undefined,
    code: string,
    file: string,
): SdnaStruct {
    const struct = sdna.structs[sdnaIndex];
    if (!struct)
        throw blendFileError(
            "corrupt",
            file,
            `block ${code} names SDNA struct ${sdnaIndex}, but the file has ${sdna.structs.length}`,
        );
    if (expected !== undefined && struct.name !== expected)
        throw blendFileError("corrupt", file, `block ${code} holds a ${struct.name}, expected a ${expected}`);
    return struct;
}

/** A field of a struct instance, or undefined when this file's SDNA has no such field or the bytes end before it. */
export function fieldRef(ref: StructRef, name: string): { field: SdnaField; at: number } | undefined {
    const field = findField(ref.struct, name);
    if (!field || ref.offset + field.offset + field.size > ref.bytes.length) return undefined;
    return { field, at: ref.offset + field.offset };
}

/**
 * The nested struct a field holds (e.g. Scene.r -> RenderData). It only has to start within the bytes: each of its
 * fields is bounds-checked when read, and an object kept by its first bytes ends inside its ID (408 bytes in 5.2).
 */
export function nested(ref: StructRef, name: string): StructRef | undefined {
    const field = findField(ref.struct, name);
    if (!field || field.isPointer || ref.offset + field.offset >= ref.bytes.length) return undefined;
    const index = ref.sdna.structIndex.get(field.type);
    if (index === undefined) return undefined;
    return { sdna: ref.sdna, struct: ref.sdna.structs[index], bytes: ref.bytes, offset: ref.offset + field.offset };
}

/** An integer field (any of the integer types), or undefined when absent. */
export function readInteger(ref: StructRef, name: string): number | undefined {
    const found = fieldRef(ref, name);
    if (!found || found.field.isPointer) return undefined;
    const kind = INTEGER_TYPES[found.field.type];
    if (!kind) return undefined;
    const view = new DataView(ref.bytes.buffer, ref.bytes.byteOffset + found.at, kind.size);
    const little = ref.sdna.littleEndian;
    if (kind.size === 1) return kind.signed ? view.getInt8(0) : view.getUint8(0);
    if (kind.size === 2) return kind.signed ? view.getInt16(0, little) : view.getUint16(0, little);
    return kind.signed ? view.getInt32(0, little) : view.getUint32(0, little);
}

/** A char array field as text (UTF-8, up to the first NUL), or undefined when absent. */
export function readString(ref: StructRef, name: string): string | undefined {
    const found = fieldRef(ref, name);
    if (!found || found.field.isPointer || found.field.type !== "char") return undefined;
    const bytes = ref.bytes.subarray(found.at, found.at + found.field.size);
    const end = bytes.indexOf(0);
    return Buffer.from(bytes.buffer, bytes.byteOffset, end < 0 ? bytes.length : end).toString("utf8");
}

/** A pointer field as hex ("" for NULL), or undefined when absent. */
export function readPointer(ref: StructRef, name: string): string | undefined {
    const found = fieldRef(ref, name);
    if (!found?.field.isPointer) return undefined;
    const hex = pointerHex(ref.bytes, found.at, ref.sdna.pointerSize, ref.sdna.littleEndian);
    return isNullPointer(hex) ? "" : hex;
}
