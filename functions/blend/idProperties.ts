// ID properties: the IDProperty trees where add-ons keep their settings on a data-block (Cycles' scene.cycles.*),
// written as DATA blocks right after the ID and linked by old pointers. A lookup answers the property, null when
// the file does not have it, or undefined when the kept blocks cannot tell (a block outside what the walker keeps).
import { KeptBlock } from "./blocks";
import { nested, readInteger, readPointer, readString, Sdna, StructRef } from "./sdna";

/** IDProperty.type (DNA_ID.h eIDPropertyType). */
export const IDP_INT = 1;
export const IDP_GROUP = 6;
export const IDP_BOOLEAN = 10;
/** Longest child list walked: a cycle in corrupt data ends here. */
const MAX_GROUP_CHILDREN = 100000;

export type PropertyLookup = StructRef | null | undefined;

/** The IDProperty an old pointer refers to; undefined when that block was not kept or is not a whole IDProperty. */
export function idPropertyAt(sdna: Sdna, byAddress: Map<string, KeptBlock>, pointer: string): PropertyLookup {
    if (!pointer) return null;
    const block = byAddress.get(pointer);
    const struct = block?.code === "DATA" ? sdna.structs[block.sdnaIndex] : undefined;
    if (!block?.whole || struct?.name !== "IDProperty" || block.data.length < struct.size) return undefined;
    return { sdna, struct, bytes: block.data, offset: 0 };
}

/** The child of a group property by name. */
export function groupChild(
    sdna: Sdna,
    byAddress: Map<string, KeptBlock>,
    group: StructRef,
    name: string,
): PropertyLookup {
    if (readInteger(group, "type") !== IDP_GROUP) return null;
    const data = nested(group, "data");
    const list = data ? nested(data, "group") : undefined;
    if (!list) return undefined;
    const seen = new Set<string>();
    let pointer = readPointer(list, "first") ?? "";
    while (pointer && !seen.has(pointer) && seen.size < MAX_GROUP_CHILDREN) {
        seen.add(pointer);
        const child = idPropertyAt(sdna, byAddress, pointer);
        if (!child) return undefined;
        if (readString(child, "name") === name) return child;
        pointer = readPointer(child, "next") ?? "";
    }
    return pointer ? undefined : null;
}

/** An integer or boolean property's value; undefined when the property holds another type. */
export function integerValue(property: StructRef): number | undefined {
    const type = readInteger(property, "type");
    if (type !== IDP_INT && type !== IDP_BOOLEAN) return undefined;
    const data = nested(property, "data");
    return data ? readInteger(data, "val") : undefined;
}
