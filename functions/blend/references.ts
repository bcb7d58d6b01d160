// The external files a scene needs to render, and where they are relative to the scene's key: Blender's "//"
// prefix means "next to the .blend", and the farm's work dir mirrors the bucket, so "//textures/a.png" of
// "shots/a/shot.blend" is the key "shots/a/textures/a.png".
import { BlendSummary } from "./summary";

export type ReferenceKind = "image" | "library" | "movie-clip" | "volume" | "cache-file" | "font";

export interface BlendReference {
    kind: ReferenceKind;
    /** The data-block that needs the file, e.g. the image's name. */
    name: string;
    /** The path as stored in the .blend (for a UDIM tile, with its number in place of the token). */
    filepath: string;
    /** True when the path is one file of a numbered sequence (image, clip, volume or cache sequence): its frames are all needed. */
    sequence: boolean;
    /** The UDIM tile this path is for, if any. */
    tile?: number;
}

export type ResolvedReference =
    | { ok: true; key: string }
    | { ok: false; reason: "absolute" | "outside-bucket" | "not-blend-relative" | "empty"; message: string };

/** "<UDIM>" -> "1001"; "<UVTILE>" -> "u1_v1" (Blender's two tile tokens). */
function tilePath(filepath: string, tile: number): string {
    const u = ((tile - 1001) % 10) + 1;
    const v = Math.floor((tile - 1001) / 10) + 1;
    return filepath.replace(/<UDIM>/g, String(tile)).replace(/<UVTILE>/g, `u${u}_v${v}`);
}

/** Every external file the scene references and does not carry packed inside itself. */
export function externalReferences(summary: BlendSummary): BlendReference[] {
    const references: BlendReference[] = [];
    for (const image of summary.images) {
        if (image.packed || image.filepath === "") continue;
        if (image.source === "TILED") {
            for (const tile of image.tiles)
                references.push({
                    kind: "image",
                    name: image.name,
                    filepath: tilePath(image.filepath, tile),
                    sequence: false,
                    tile,
                });
        } else if (image.source === "FILE" || image.source === "SEQUENCE" || image.source === "MOVIE") {
            references.push({
                kind: "image",
                name: image.name,
                filepath: image.filepath,
                sequence: image.source === "SEQUENCE",
            });
        }
    }
    for (const library of summary.libraries) {
        if (library.filepath !== "")
            references.push({ kind: "library", name: library.name, filepath: library.filepath, sequence: false });
    }
    for (const clip of summary.movieClips) {
        if (clip.filepath !== "")
            references.push({
                kind: "movie-clip",
                name: clip.name,
                filepath: clip.filepath,
                sequence: clip.source === "SEQUENCE",
            });
    }
    for (const volume of summary.volumes) {
        if (!volume.packed && volume.filepath !== "")
            references.push({
                kind: "volume",
                name: volume.name,
                filepath: volume.filepath,
                sequence: volume.isSequence,
            });
    }
    for (const cache of summary.cacheFiles) {
        if (cache.filepath !== "")
            references.push({
                kind: "cache-file",
                name: cache.name,
                filepath: cache.filepath,
                sequence: cache.isSequence,
            });
    }
    for (const font of summary.fonts) {
        if (!font.packed && font.filepath !== "" && font.filepath !== "<builtin>")
            references.push({ kind: "font", name: font.name, filepath: font.filepath, sequence: false });
    }
    return references;
}

/**
 * The S3 key a stored path points at, for a scene at `sceneKey`: "//" paths resolve against the scene's folder
 * ("\" separators, as a Windows artist saves them, count as "/"); absolute paths and paths that climb out
 * of the bucket have no key.
 */
export function resolveReferenceKey(sceneKey: string, filepath: string): ResolvedReference {
    if (filepath === "") return { ok: false, reason: "empty", message: "the path is empty" };
    if (!filepath.startsWith("//")) {
        const absolute = filepath.startsWith("/") || filepath.startsWith("\\") || /^[A-Za-z]:[\\/]/.test(filepath);
        return absolute
            ? {
                  ok: false,
                  reason: "absolute",
                  message: `"${filepath}" is an absolute path: it exists on the artist's machine, not on the farm; make it relative (File > External Data > Make Paths Relative) or pack it`,
              }
            : {
                  ok: false,
                  reason: "not-blend-relative",
                  message: `"${filepath}" is relative to Blender's working directory, not to the .blend; make it relative to the .blend ("//...") or pack it`,
              };
    }
    const segments = sceneKey.split("/").slice(0, -1);
    for (const segment of filepath.slice(2).split(/[\\/]/)) {
        if (segment === "" || segment === ".") continue;
        if (segment === "..") {
            if (segments.length === 0)
                return {
                    ok: false,
                    reason: "outside-bucket",
                    message: `"${filepath}" climbs above the bucket's root from "${sceneKey}": the farm cannot provide it; keep the files under the scene's folder or pack them`,
                };
            segments.pop();
        } else segments.push(segment);
    }
    if (segments.length === 0)
        return { ok: false, reason: "empty", message: `"${filepath}" names a folder, not a file` };
    return { ok: true, key: segments.join("/") };
}

/**
 * How the frames of a sequence are named: "textures/seq/frame_0001.png" -> folder "textures/seq/",
 * head "frame_", tail ".png" (the last run of digits in the file name is the frame number, as in Blender).
 */
export function sequencePattern(key: string): { folder: string; head: string; tail: string } | undefined {
    const slash = key.lastIndexOf("/");
    const folder = key.slice(0, slash + 1);
    const name = key.slice(slash + 1);
    const match = /^(.*?)(\d+)(\D*)$/.exec(name);
    if (!match) return undefined;
    return { folder, head: match[1], tail: match[3] };
}

/** True when `key` is a frame of the sequence `pattern` describes. */
export function isSequenceFrame(pattern: { folder: string; head: string; tail: string }, key: string): boolean {
    if (!key.startsWith(pattern.folder)) return false;
    const name = key.slice(pattern.folder.length);
    if (name.includes("/") || !name.startsWith(pattern.head) || !name.endsWith(pattern.tail)) return false;
    const digits = name.slice(pattern.head.length, name.length - pattern.tail.length);
    return /^\d+$/.test(digits);
}
