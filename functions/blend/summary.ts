// Turns the kept blocks into the summary: scenes with their render settings, and every external file the
// scene needs (images, linked libraries, movie clips, volumes, caches, fonts), read field by field through
// the file's own SDNA, so the same code reads files from Blender 2.7x to 5.x.
import { KeptBlock, WalkResult } from "./blocks";
import { Compression } from "./decompress";
import { blendFileError } from "./errors";
import { groupChild, idPropertyAt, integerValue, PropertyLookup } from "./idProperties";
import { blockStruct, nested, readInteger, readPointer, readString, Sdna, parseSdna, StructRef } from "./sdna";

export interface BlendScene {
    name: string;
    frameStart: number;
    frameEnd: number;
    frameStep: number;
    resolutionX: number;
    resolutionY: number;
    resolutionPercentage: number;
    /** Blender's engine id as Blender 2.80+ reads it: "CYCLES", "BLENDER_EEVEE", "BLENDER_EEVEE_NEXT", "BLENDER_WORKBENCH", or an add-on's. */
    engine: string;
    /** The output format's id, as bpy names it: "PNG", "JPEG", "OPEN_EXR", "FFMPEG", ... */
    fileFormat: string;
    /** The active camera object's name, or null: Blender cannot render the scene without one. */
    camera: string | null;
    // What decides whether a frame can be split into regions rendered apart; null: this file cannot tell.
    /** The render goes through the compositor: Post Processing > Compositing on and a compositing node tree in use. */
    compositing: boolean | null;
    /** The scene's own border render (Output Properties > Format > Render Region). */
    border: boolean | null;
    /** Post Processing > Sequencer on and a strip other than sound at the sequencer's top level (muted ones count). */
    sequencer: boolean | null;
    /** scene.cycles.use_denoising (Render Properties > Sampling > Denoise), Cycles' default when never set. */
    cyclesDenoising: boolean | null;
    /** scene.cycles.use_adaptive_sampling (Sampling > Render > Noise Threshold), Cycles' default when never set. */
    cyclesAdaptiveSampling: boolean | null;
    /** scene.cycles.use_auto_tile (Performance > Memory > Use Tiling), Cycles' default when never set. */
    cyclesAutoTile: boolean | null;
    /** scene.cycles.tile_size, pixels, Cycles' default when never set. */
    cyclesTileSize: number | null;
    /** scene.cycles.use_guiding with surface or volume guiding on (Sampling > Path Guiding). */
    cyclesGuiding: boolean | null;
    /** RenderData.mode R_MBLUR (render.use_motion_blur). */
    motionBlur: boolean | null;
}

export type ImageSource = "FILE" | "SEQUENCE" | "MOVIE" | "GENERATED" | "VIEWER" | "TILED" | `UNKNOWN_${number}`;

export interface BlendImage {
    name: string;
    /** As stored: "//" starts a path relative to the .blend. */
    filepath: string;
    source: ImageSource;
    packed: boolean;
    /** UDIM tile numbers (1001, 1002, ...) of a TILED image; empty otherwise. */
    tiles: number[];
}

export interface BlendLibrary {
    name: string;
    filepath: string;
}

export interface BlendMovieClip {
    name: string;
    filepath: string;
    source: "SEQUENCE" | "MOVIE" | `UNKNOWN_${number}`;
}

export interface BlendVolume {
    name: string;
    filepath: string;
    isSequence: boolean;
    packed: boolean;
}

export interface BlendCacheFile {
    name: string;
    filepath: string;
    isSequence: boolean;
}

export interface BlendFont {
    name: string;
    /** "<builtin>" for Blender's own font. */
    filepath: string;
    packed: boolean;
}

export interface BlendSummary {
    file: string;
    compression: Compression;
    header: { pointerSize: 4 | 8; littleEndian: boolean; fileFormatVersion: 0 | 1 };
    /** The Blender version that saved the file: [major, minor, subversion], as bpy.data.version. */
    version: [number, number, number];
    /** Decompressed size up to the end marker. */
    bytes: number;
    blockCount: number;
    /** The scene Blender opens and renders (`blender -b file -a`): the first window's, else the file's stored current scene. */
    activeScene: string | null;
    scenes: BlendScene[];
    images: BlendImage[];
    libraries: BlendLibrary[];
    movieClips: BlendMovieClip[];
    volumes: BlendVolume[];
    cacheFiles: BlendCacheFile[];
    fonts: BlendFont[];
}

/** ImageFormatData.imtype -> bpy's file_format id (DNA_scene_types.h); old movie types read as FFMPEG, as Blender versions them. */
const IMAGE_TYPES: Record<number, string> = {
    0: "TARGA",
    1: "IRIS",
    4: "JPEG",
    7: "IRIS",
    14: "TARGA_RAW",
    15: "AVI_RAW",
    16: "AVI_JPEG",
    17: "PNG",
    20: "BMP",
    21: "HDR",
    22: "TIFF",
    23: "OPEN_EXR",
    24: "FFMPEG",
    26: "CINEON",
    27: "DPX",
    28: "OPEN_EXR_MULTILAYER",
    29: "DDS",
    30: "JPEG2000",
    31: "FFMPEG",
    32: "FFMPEG",
    33: "FFMPEG",
    34: "PSD",
    35: "WEBP",
    36: "FFMPEG",
    37: "AVIF",
};
/** Image.source (IMA_SRC_*). */
const IMAGE_SOURCES: Record<number, ImageSource> = {
    1: "FILE",
    2: "SEQUENCE",
    3: "MOVIE",
    4: "GENERATED",
    5: "VIEWER",
    6: "TILED",
};
/** MovieClip.source (MCLIP_SRC_*). */
const CLIP_SOURCES: Record<number, "SEQUENCE" | "MOVIE"> = { 1: "SEQUENCE", 2: "MOVIE" };
/** RenderData.scemode and RenderData.mode bits (DNA_scene_types.h), the same from 2.7x to 5.x. */
const R_DOSEQ = 1 << 0;
const R_DOCOMP = 1 << 6;
const R_BORDER = 1 << 9;
const R_MBLUR = 1 << 14;
/** Sequence.type (SEQ_TYPE_SOUND_RAM, STRIP_TYPE_SOUND_RAM in 5.x): sound does not make the sequencer render. */
const STRIP_TYPE_SOUND_RAM = 4;
/**
 * Files up to this version get use_denoising and use_adaptive_sampling False when never set (Cycles'
 * version_update.py, when their defaults became True in 3.0); newer ones read the defaults, True.
 */
const LAST_VERSION_DENOISING_OFF: [number, number, number] = [3, 0, 25];
/** Cycles' own tile size (scene.cycles.tile_size) when the file never set it. */
const CYCLES_DEFAULT_TILE_SIZE = 2048;
/** Longest list walked (UDIM tiles go up to 1001..2000): a cycle in corrupt data ends here. */
const MAX_LIST_LENGTH = 100000;

function structRef(sdna: Sdna, block: KeptBlock, expected: string, file: string): StructRef {
    const struct = blockStruct(sdna, block.sdnaIndex, expected, block.code, file);
    if (block.whole && block.data.length < struct.size)
        throw blendFileError(
            "corrupt",
            file,
            `${block.code} block is ${block.data.length} bytes, shorter than its ${struct.name} (${struct.size})`,
            block.offset,
        );
    return { sdna, struct, bytes: block.data, offset: 0 };
}

/** The ID name without its two-letter type prefix ("SCScene" -> "Scene"). */
function idName(ref: StructRef): string {
    const id = nested(ref, "id");
    const name = id ? readString(id, "name") : undefined;
    return name === undefined ? "" : name.slice(2);
}

function required(value: number | undefined, what: string, file: string): number {
    if (value === undefined) throw blendFileError("corrupt", file, `this file's SDNA has no ${what}`);
    return value;
}

/** Pointer fields may be absent from older (or newer) SDNA: absent reads as NULL. */
function pointerOf(ref: StructRef, name: string): string {
    return readPointer(ref, name) ?? "";
}

function compareVersions(a: [number, number, number], b: [number, number, number]): number {
    return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

export function summarize(walk: WalkResult, file: string, compression: Compression): BlendSummary {
    const { header } = walk;
    const sdna = parseSdna(walk.dna.data, header.pointerSize, header.littleEndian, file);
    const byAddress = new Map<string, KeptBlock>();
    for (const block of walk.blocks) if (!byAddress.has(block.oldPointer)) byAddress.set(block.oldPointer, block);
    const ofCode = (code: string) => walk.blocks.filter((block) => block.code === code);

    /** The name of the ID a pointer refers to (an object in this file, or a linked one's placeholder), or null. */
    const idNameAt = (pointer: string): string | null => {
        const target = pointer ? byAddress.get(pointer) : undefined;
        if (!target || (target.code !== "OB" && target.code !== "ID")) return null;
        const struct = blockStruct(sdna, target.sdnaIndex, undefined, target.code, file);
        const ref: StructRef = { sdna, struct, bytes: target.data, offset: 0 };
        // An "ID" placeholder block (a linked data-block) is the ID struct itself; an object starts with one.
        const id = struct.name === "ID" ? ref : nested(ref, "id");
        const name = id ? readString(id, "name") : undefined;
        return name === undefined || name.length < 2 ? null : name.slice(2);
    };

    let subversion = 0;
    let activeScenePointer = "";
    const glob = ofCode("GLOB")[0];
    if (glob) {
        const ref = structRef(sdna, glob, "FileGlobal", file);
        subversion = readInteger(ref, "subversion") ?? 0;
        activeScenePointer = pointerOf(ref, "curscene");
    }

    /** wmWindow.scene of the window manager's first window (2.80+; older files keep the scene in the screen). */
    function firstWindowScenePointer(): string {
        const manager = ofCode("WM")[0];
        if (!manager) return "";
        const windows = nested(structRef(sdna, manager, "wmWindowManager", file), "windows");
        const first = windows ? byAddress.get(pointerOf(windows, "first")) : undefined;
        if (first?.code !== "DATA" || !first.whole) return "";
        return pointerOf(structRef(sdna, first, "wmWindow", file), "scene");
    }

    const fileVersion: [number, number, number] = [Math.floor(header.version / 100), header.version % 100, subversion];
    const flag = (value: number | undefined, bit: number): boolean | null =>
        value === undefined ? null : (value & bit) !== 0;

    /** Blender 5 renders through scene.compositing_node_group; earlier ones through the embedded nodetree with "Use Nodes". */
    function compositingOf(scene: StructRef, scemode: number | undefined): boolean | null {
        if (scemode === undefined) return null;
        const group = readPointer(scene, "compositing_node_group");
        if (header.version >= 500 && group !== undefined) return (scemode & R_DOCOMP) !== 0 && group !== "";
        const useNodes = readInteger(scene, "use_nodes");
        const tree = readPointer(scene, "nodetree");
        if (useNodes === undefined || tree === undefined) return null;
        return (scemode & R_DOCOMP) !== 0 && useNodes !== 0 && tree !== "";
    }

    /** RE_seq_render_active: the sequencer on, and a top-level strip that is not sound. */
    function sequencerOf(scene: StructRef, scemode: number | undefined): boolean | null {
        if (scemode === undefined) return null;
        if ((scemode & R_DOSEQ) === 0) return false;
        const editing = readPointer(scene, "ed");
        if (editing === undefined) return null;
        if (editing === "") return false;
        const block = byAddress.get(editing);
        const struct = block?.code === "DATA" && block.whole ? sdna.structs[block.sdnaIndex] : undefined;
        if (!block || struct?.name !== "Editing") return null;
        const seqbase = nested({ sdna, struct, bytes: block.data, offset: 0 }, "seqbase");
        if (!seqbase) return null;
        const seen = new Set<string>();
        let pointer = pointerOf(seqbase, "first");
        while (pointer && !seen.has(pointer) && seen.size < MAX_LIST_LENGTH) {
            seen.add(pointer);
            const strip = byAddress.get(pointer);
            const stripStruct = strip?.code === "DATA" && strip.whole ? sdna.structs[strip.sdnaIndex] : undefined;
            if (!strip || (stripStruct?.name !== "Sequence" && stripStruct?.name !== "Strip")) return null;
            const ref: StructRef = { sdna, struct: stripStruct, bytes: strip.data, offset: 0 };
            const type = readInteger(ref, "type");
            if (type === undefined) return null;
            if (type !== STRIP_TYPE_SOUND_RAM) return true;
            pointer = pointerOf(ref, "next");
        }
        return pointer ? null : false;
    }

    /**
     * A setting of scene.cycles: an ID property of the "cycles" group (Blender 5 keeps add-on properties in
     * ID.system_properties). Its integer value; `fallback` (Cycles' default) when the file never set it; null when
     * the kept blocks cannot tell.
     */
    function cyclesSettingOf(scene: StructRef, name: string, fallback: number): number | null {
        const id = nested(scene, "id");
        if (!id) return null;
        const roots = header.version >= 500 ? ["system_properties", "properties"] : ["properties"];
        let cycles: PropertyLookup = null;
        for (const root of roots) {
            const pointer = readPointer(id, root);
            if (pointer === undefined) continue;
            const properties = idPropertyAt(sdna, byAddress, pointer);
            cycles = properties ? groupChild(sdna, byAddress, properties, "cycles") : properties;
            if (cycles !== null) break;
        }
        if (cycles === undefined) return null;
        const setting = cycles ? groupChild(sdna, byAddress, cycles, name) : null;
        if (setting === undefined) return null;
        return (setting ? integerValue(setting) : undefined) ?? (setting ? null : fallback);
    }

    const asFlag = (value: number | null): boolean | null => (value === null ? null : value !== 0);
    // Files up to 3.0.25 read use_denoising and use_adaptive_sampling False when never set; newer ones True.
    const onSince300 = compareVersions(fileVersion, LAST_VERSION_DENOISING_OFF) > 0 ? 1 : 0;
    /** Path guiding learns from the whole render: on when guiding is, with surface or volume guiding. */
    function cyclesGuidingOf(scene: StructRef): boolean | null {
        const guiding = asFlag(cyclesSettingOf(scene, "use_guiding", 0));
        if (guiding !== true) return guiding;
        const surface = asFlag(cyclesSettingOf(scene, "use_surface_guiding", 1));
        const volume = asFlag(cyclesSettingOf(scene, "use_volume_guiding", 1));
        return surface === true || volume === true ? true : surface === null || volume === null ? null : false;
    }

    const sceneBlocks = ofCode("SC");
    const scenes: BlendScene[] = sceneBlocks.map((block) => {
        const ref = structRef(sdna, block, "Scene", file);
        const render = nested(ref, "r");
        if (!render) throw blendFileError("corrupt", file, "this file's Scene struct has no render settings (r)");
        const imageFormat = nested(render, "im_format");
        let engine = readString(render, "engine") ?? "";
        // Blender 2.80 reads 2.7x's Blender Internal scenes as EEVEE (versioning_280).
        if (header.version < 280 && engine === "BLENDER_RENDER") engine = "BLENDER_EEVEE";
        const imtype = imageFormat ? readInteger(imageFormat, "imtype") : readInteger(render, "imtype");
        const scemode = readInteger(render, "scemode");
        const mode = readInteger(render, "mode");
        return {
            name: idName(ref),
            frameStart: required(readInteger(render, "sfra"), "RenderData.sfra", file),
            frameEnd: required(readInteger(render, "efra"), "RenderData.efra", file),
            frameStep: readInteger(render, "frame_step") ?? 1,
            resolutionX: required(readInteger(render, "xsch"), "RenderData.xsch", file),
            resolutionY: required(readInteger(render, "ysch"), "RenderData.ysch", file),
            resolutionPercentage: required(readInteger(render, "size"), "RenderData.size", file),
            engine,
            fileFormat: imtype === undefined ? "UNKNOWN" : (IMAGE_TYPES[imtype] ?? `UNKNOWN_${imtype}`),
            camera: idNameAt(pointerOf(ref, "camera")),
            compositing: compositingOf(ref, scemode),
            border: flag(mode, R_BORDER),
            sequencer: sequencerOf(ref, scemode),
            cyclesDenoising: asFlag(cyclesSettingOf(ref, "use_denoising", onSince300)),
            cyclesAdaptiveSampling: asFlag(cyclesSettingOf(ref, "use_adaptive_sampling", onSince300)),
            cyclesAutoTile: asFlag(cyclesSettingOf(ref, "use_auto_tile", 1)),
            cyclesTileSize: cyclesSettingOf(ref, "tile_size", CYCLES_DEFAULT_TILE_SIZE),
            cyclesGuiding: cyclesGuidingOf(ref),
            motionBlur: flag(mode, R_MBLUR),
        };
    });
    // Blender opens the first window's scene when the file has windows (and renders it with -b), the stored
    // current scene (FileGlobal.curscene) otherwise; the two differ only in a crafted file, but then they do.
    const sceneAt = (pointer: string) =>
        pointer ? sceneBlocks.find((block) => block.oldPointer === pointer) : undefined;
    const activeBlock = sceneAt(firstWindowScenePointer()) ?? sceneAt(activeScenePointer);
    const activeScene = activeBlock
        ? scenes[sceneBlocks.indexOf(activeBlock)].name
        : scenes.length > 0
          ? scenes[0].name
          : null;

    /** Tile numbers along Image.tiles, through the DATA blocks kept after the image. */
    const tilesOf = (ref: StructRef): number[] => {
        const list = nested(ref, "tiles");
        const tiles: number[] = [];
        const seen = new Set<string>();
        let pointer = list ? pointerOf(list, "first") : "";
        while (pointer && !seen.has(pointer) && tiles.length < MAX_LIST_LENGTH) {
            seen.add(pointer);
            const block = byAddress.get(pointer);
            if (block?.code !== "DATA")
                throw blendFileError(
                    "corrupt",
                    file,
                    `image ${idName(ref)}: its tile list points at a block the file does not have`,
                );
            const tile = structRef(sdna, block, "ImageTile", file);
            tiles.push(required(readInteger(tile, "tile_number"), "ImageTile.tile_number", file));
            pointer = pointerOf(tile, "next");
        }
        return tiles;
    };

    const images: BlendImage[] = ofCode("IM").map((block) => {
        const ref = structRef(sdna, block, "Image", file);
        const sourceNumber = readInteger(ref, "source") ?? 0;
        const source = IMAGE_SOURCES[sourceNumber] ?? (`UNKNOWN_${sourceNumber}` as const);
        const packedFiles = nested(ref, "packedfiles");
        // Blender 2.76 moved Image.packedfile to a list (one per view); older files have only the pointer.
        const packed =
            (packedFiles !== undefined && pointerOf(packedFiles, "first") !== "") ||
            pointerOf(ref, "packedfile") !== "";
        return {
            name: idName(ref),
            // Image.filepath is stored under its old name "name" (DNA_rename_defs.h).
            filepath: readString(ref, "filepath") ?? readString(ref, "name") ?? "",
            source,
            packed,
            tiles: source === "TILED" ? tilesOf(ref) : [],
        };
    });

    const libraries: BlendLibrary[] = ofCode("LI").map((block) => {
        const ref = structRef(sdna, block, "Library", file);
        return { name: idName(ref), filepath: readString(ref, "filepath") ?? readString(ref, "name") ?? "" };
    });

    const movieClips: BlendMovieClip[] = ofCode("MC").map((block) => {
        const ref = structRef(sdna, block, "MovieClip", file);
        const sourceNumber = readInteger(ref, "source") ?? 0;
        return {
            name: idName(ref),
            filepath: readString(ref, "filepath") ?? readString(ref, "name") ?? "",
            source: CLIP_SOURCES[sourceNumber] ?? (`UNKNOWN_${sourceNumber}` as const),
        };
    });

    const volumes: BlendVolume[] = ofCode("VO").map((block) => {
        const ref = structRef(sdna, block, "Volume", file);
        return {
            name: idName(ref),
            filepath: readString(ref, "filepath") ?? "",
            isSequence: (readInteger(ref, "is_sequence") ?? 0) !== 0,
            packed: pointerOf(ref, "packedfile") !== "",
        };
    });

    const cacheFiles: BlendCacheFile[] = ofCode("CF").map((block) => {
        const ref = structRef(sdna, block, "CacheFile", file);
        return {
            name: idName(ref),
            filepath: readString(ref, "filepath") ?? "",
            isSequence: (readInteger(ref, "is_sequence") ?? 0) !== 0,
        };
    });

    const fonts: BlendFont[] = ofCode("VF").map((block) => {
        const ref = structRef(sdna, block, "VFont", file);
        return {
            name: idName(ref),
            filepath: readString(ref, "filepath") ?? readString(ref, "name") ?? "",
            packed: pointerOf(ref, "packedfile") !== "",
        };
    });

    return {
        file,
        compression,
        header: {
            pointerSize: header.pointerSize,
            littleEndian: header.littleEndian,
            fileFormatVersion: header.fileFormatVersion,
        },
        version: fileVersion,
        bytes: walk.bytes,
        blockCount: walk.blockCount,
        activeScene,
        scenes,
        images,
        libraries,
        movieClips,
        volumes,
        cacheFiles,
        fonts,
    };
}
