// `render-farm inspect <scene.blend>`: what a .blend holds and needs, read with the farm's own .blend reader
// (no Blender), with every referenced file looked up on this disk: what `render` would upload, warn about or refuse.
import * as path from "path";
import type { BlendScene, BlendSummary } from "../functions/blend";
import { EXIT_FRAMES_FAILED, EXIT_OK } from "./errors";
import { Output } from "./output";
import { sceneReferences } from "./libraryReferences";
import { checkScene, LocalReference, neededBy, readSceneSummary, sequenceGlob } from "./sceneFiles";

export interface InspectFlags {
    json?: boolean;
    /** Exit 1 when anything is flagged (a problem or a warning), for scripts and CI. */
    strict?: boolean;
}

/** Exit code of `inspect --strict` on a readable scene with problems or warnings. */
export const EXIT_INSPECT_FLAGGED = EXIT_FRAMES_FAILED;

const COMPRESSION: Record<string, string> = { none: "uncompressed", gzip: "gzip-compressed", zstd: "zstd-compressed" };

function sceneLine(scene: BlendScene, active: boolean): string {
    const step = scene.frameStep > 1 ? ` step ${scene.frameStep}` : "";
    // What Blender renders: the percentage applies to both sides, rounded down.
    const width = Math.floor((scene.resolutionX * scene.resolutionPercentage) / 100);
    const height = Math.floor((scene.resolutionY * scene.resolutionPercentage) / 100);
    const size =
        scene.resolutionPercentage === 100
            ? `${scene.resolutionX}x${scene.resolutionY}`
            : `${scene.resolutionX}x${scene.resolutionY} at ${scene.resolutionPercentage}% (${width}x${height})`;
    const camera = scene.camera === null ? "camera: none — cannot render" : `camera "${scene.camera}"`;
    return `scene "${scene.name}"${active ? " (active: the one rendered)" : ""}: frames ${scene.frameStart}-${scene.frameEnd}${step}, ${size}, engine ${scene.engine}, output ${scene.fileFormat}, ${camera}`;
}

/** "found", "missing", or per UDIM tile / sequence what is there; plus why the farm cannot get it, if so. */
function whereLabel(references: LocalReference[]): string {
    if (references.length === 0) return "";
    const first = references[0];
    let state: string;
    if (first.tile !== undefined) {
        const found = references.filter((reference) => reference.exists).map((reference) => reference.tile);
        const missing = references.filter((reference) => !reference.exists).map((reference) => reference.tile);
        state =
            missing.length === 0
                ? "found"
                : found.length === 0
                  ? "MISSING"
                  : `tiles ${found.join(", ")} found, ${missing.join(", ")} MISSING`;
    } else if (first.frames !== undefined) {
        state =
            first.frames.length === 0
                ? `MISSING (no ${sequenceGlob(first)} on disk)`
                : `${first.frames.length} frame(s) found`;
    } else {
        state = first.exists ? "found" : "MISSING";
    }
    const unmirrorable = references.find((reference) => reference.unmirrorable);
    const farm = unmirrorable ? `; the farm cannot get it (${unmirrorable.unmirrorable!.reason})` : "";
    return ` — ${state}${farm}`;
}

/** The human report: one line per scene and per external file, then what would stop or spoil a render. */
function humanLines(
    summary: BlendSummary,
    references: LocalReference[],
    check: ReturnType<typeof checkScene>,
    scenePath: string,
): string[] {
    const out: string[] = [];
    const [major, minor, subversion] = summary.version;
    out.push(
        `${scenePath}: saved by Blender ${major}.${minor} (subversion ${subversion}), ${COMPRESSION[summary.compression] ?? summary.compression}`,
    );
    if (summary.scenes.length === 0) out.push("scenes: none");
    for (const scene of summary.scenes) out.push(sceneLine(scene, scene.name === summary.activeScene));

    // References grouped by the data-block that needs them (a UDIM image has one per tile).
    const byBlock = new Map<string, LocalReference[]>();
    for (const reference of references.filter((candidate) => candidate.depth === 0)) {
        const key = `${reference.kind}\0${reference.name}`;
        byBlock.set(key, [...(byBlock.get(key) ?? []), reference]);
    }
    const files: string[] = [];
    const line = (kind: string, name: string, text: string) =>
        files.push(`  ${kind} "${name}": ${text}${whereLabel(byBlock.get(`${kind}\0${name}`) ?? [])}`);
    for (const image of summary.images) {
        if (image.packed) line("image", image.name, "packed in the .blend");
        // Generated and viewer images (e.g. "Render Result") need no file.
        else if (image.filepath !== "" && ["FILE", "SEQUENCE", "MOVIE", "TILED"].includes(image.source)) {
            line(
                "image",
                image.name,
                `${image.filepath} (${image.source}${image.tiles.length > 0 ? `, tiles ${image.tiles.join(", ")}` : ""})`,
            );
        }
    }
    for (const library of summary.libraries) line("library", library.name, library.filepath);
    for (const clip of summary.movieClips) line("movie-clip", clip.name, `${clip.filepath} (${clip.source})`);
    for (const volume of summary.volumes)
        line(
            "volume",
            volume.name,
            volume.packed ? "packed in the .blend" : `${volume.filepath}${volume.isSequence ? " (sequence)" : ""}`,
        );
    for (const cache of summary.cacheFiles)
        line("cache-file", cache.name, `${cache.filepath}${cache.isSequence ? " (sequence)" : ""}`);
    for (const font of summary.fonts)
        line(
            "font",
            font.name,
            font.packed ? "packed in the .blend" : font.filepath === "<builtin>" ? "built in" : font.filepath,
        );
    if (files.length === 0) out.push("external files: none");
    else out.push(`external files (// is ${path.dirname(path.resolve(scenePath))}${path.sep}):`, ...files);
    // Linked libraries' own files, each path relative to the library that holds it.
    const throughLibraries = new Map<string, LocalReference[]>();
    for (const reference of references.filter((candidate) => candidate.depth > 0)) {
        const label = `${neededBy(reference)}: ${reference.filepath}`;
        throughLibraries.set(label, [...(throughLibraries.get(label) ?? []), reference]);
    }
    if (throughLibraries.size > 0)
        out.push(
            "files linked libraries need (// is the library's folder):",
            ...[...throughLibraries].map(([label, group]) => `  ${label}${whereLabel(group)}`),
        );

    if (check.problems.length > 0)
        out.push("problems (`render` refuses this scene):", ...check.problems.map((problem) => `  ${problem}`));
    if (check.warnings.length > 0)
        out.push(
            "warnings (files `render` cannot upload; on the farm they are missing, which fails or spoils the frames that use them):",
            ...check.warnings.map((warning) => `  ${warning}`),
        );
    if (check.problems.length === 0 && check.warnings.length === 0)
        out.push("ready to render: every referenced file is packed or on disk under the scene's directory");
    return out;
}

export async function inspectCommand(output: Output, scenePath: string, flags: InspectFlags): Promise<number> {
    const summary = await readSceneSummary(scenePath);
    const references = await sceneReferences(summary, scenePath);
    const check = checkScene(summary, references, scenePath);
    const document = {
        ...summary,
        sceneDir: path.dirname(path.resolve(scenePath)),
        references,
        problems: check.problems,
        warnings: check.warnings,
    };
    output.result(document, humanLines(summary, references, check, scenePath));
    const flagged = check.problems.length + check.warnings.length;
    if (flags.strict && flagged > 0) {
        output.problem(`${scenePath}: ${flagged} problem(s) or warning(s) (--strict)`);
        return EXIT_INSPECT_FLAGGED;
    }
    return EXIT_OK;
}
