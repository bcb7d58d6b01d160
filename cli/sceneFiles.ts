// The scene and its assets as files to upload: checked locally (exists, really a .blend) and given
// scenes-bucket keys that keep the artist's layout, so `//textures/wood.png` resolves on the farm.
import * as fs from "fs";
import * as path from "path";
import {
    BlendReference,
    BlendScene,
    BlendSummary,
    describeNeed,
    externalReferences,
    HeldReference,
    inspectBlendFile,
    isBlendFileError,
    isSequenceFrame,
    resolveReferenceKey,
    sequencePattern,
} from "../functions/blend";
import { objectKeyProblem } from "../functions/shared/contract";
import { CliError, EXIT_USAGE, usageError } from "./errors";
import { defaultUploadPrefix } from "./uploadPrefix";

export interface LocalObject {
    /** Absolute path on this machine. */
    file: string;
    /** Key in the scenes bucket. */
    key: string;
    size: number;
}

export interface ScenePlan {
    scene: LocalObject;
    assets: LocalObject[];
    /** The key prefix everything is uploaded under (unless given: the scene directory's name and a hash of its path). */
    prefix: string;
    /** Assets added because the scene references them (not already given with --assets). */
    referenced: LocalObject[];
}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** Why `file` is not a .blend by its first bytes, or undefined: "BLENDER" raw, or gzip (≤ 2.9) / zstd (3.0+) compressed. */
export function blendMagicProblem(file: string): string | undefined {
    const head = Buffer.alloc(12);
    const fd = fs.openSync(file, "r");
    let read: number;
    try {
        read = fs.readSync(fd, head, 0, head.length, 0);
    } finally {
        fs.closeSync(fd);
    }
    const bytes = head.subarray(0, read);
    if (bytes.subarray(0, 7).toString("latin1") === "BLENDER") return undefined;
    if (bytes.subarray(0, 2).equals(GZIP_MAGIC) || bytes.subarray(0, 4).equals(ZSTD_MAGIC)) return undefined;
    if (read === 0) return "is empty";
    return 'does not start with Blender\'s file header ("BLENDER", or a gzip/zstd compressed .blend)';
}

/** Checks the scene file itself: exists, is a file, named .blend (the farm requires it) and is one by content. */
export function checkSceneFile(scenePath: string): { file: string; size: number } {
    const file = path.resolve(scenePath);
    let stat: fs.Stats;
    try {
        stat = fs.statSync(file);
    } catch {
        throw usageError(`scene ${scenePath} not found`, "scene_not_found");
    }
    if (!stat.isFile()) throw usageError(`scene ${scenePath} is not a file`, "not_a_blend");
    let problem: string | undefined;
    try {
        problem = blendMagicProblem(file);
    } catch (error) {
        throw usageError(
            `scene ${scenePath} cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
            "scene_unreadable",
        );
    }
    if (problem) throw usageError(`${scenePath} is not a .blend file: it ${problem}`, "not_a_blend");
    if (!/\.blend$/i.test(file))
        throw usageError(
            `${scenePath} is a Blender file but its name must end in .blend (the farm renders .blend scenes only)`,
            "not_a_blend",
        );
    return { file, size: stat.size };
}

/** Every file under `dir`, recursively, in a stable order; hidden entries and links are not followed into. */
function walkFiles(dir: string): string[] {
    const files: string[] = [];
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        // A dotfile is uploaded only when named with --assets itself (.git, .env, .aws are never swept up).
        if (entry.name.startsWith(".")) continue;
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) files.push(...walkFiles(full));
        else if (entry.isFile()) files.push(full);
    }
    return files;
}

function isInside(child: string, parent: string): boolean {
    const relative = path.relative(parent, child);
    return relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative);
}

/** Where `file` really is when a symbolic link on its way leaves `dir` (compared by real paths), else undefined. */
export function linkedOutside(file: string, dir: string): string | undefined {
    let real: string;
    try {
        real = fs.realpathSync(file);
    } catch {
        return undefined;
    }
    return isInside(real, fs.realpathSync(dir)) ? undefined : real;
}

/** True when a "/"-separated path has a hidden (dot) file or folder in it. */
function isHiddenPath(relative: string): boolean {
    return relative.split("/").some((segment) => segment.startsWith("."));
}

/** An asset path as the artist gave it: relative to the scene's directory first, then to the working directory. */
function locateAsset(asset: string, sceneDir: string): string {
    if (path.isAbsolute(asset)) return asset;
    const fromScene = path.resolve(sceneDir, asset);
    if (fs.existsSync(fromScene)) return fromScene;
    const fromCwd = path.resolve(asset);
    if (fs.existsSync(fromCwd)) return fromCwd;
    throw usageError(`asset ${asset} not found (looked in ${sceneDir} and ${process.cwd()})`, "asset_not_found");
}

function keyOf(prefix: string, sceneDir: string, file: string): string {
    const relative = path.relative(sceneDir, file).split(path.sep).join("/");
    const key = prefix === "" ? relative : `${prefix}/${relative}`;
    const problem = objectKeyProblem(key);
    if (problem) throw usageError(`cannot upload ${file}: its key "${key}" ${problem}`, "invalid_key");
    return key;
}

/**
 * Plans the upload: the scene at `<prefix>/<scene file name>`, each asset (a file, or a directory of
 * files) at `<prefix>/<path relative to the scene's directory>`. Assets must live under the scene's
 * directory, since the farm mirrors the bucket's layout and Blender finds them by relative path.
 */
export function planSceneFiles(scenePath: string, assets: string[] = [], prefixOption?: string): ScenePlan {
    const scene = checkSceneFile(scenePath);
    const sceneDir = path.dirname(scene.file);
    const prefix = (prefixOption ?? defaultUploadPrefix(sceneDir)).replace(/^\/+|\/+$/g, "");
    if (prefixOption !== undefined && prefix !== "" && objectKeyProblem(prefix)) {
        throw usageError(`--prefix "${prefixOption}" ${objectKeyProblem(prefix)}`, "invalid_key");
    }
    const planned = new Map<string, LocalObject>();
    for (const asset of assets) {
        const located = locateAsset(asset, sceneDir);
        if (!isInside(located, sceneDir)) {
            throw usageError(
                `asset ${asset} is outside the scene's directory ${sceneDir}; the farm mirrors that directory, so move the file under it (e.g. ${path.join(sceneDir, "textures")})`,
                "asset_outside_scene",
            );
        }
        const real = linkedOutside(located, sceneDir);
        if (real !== undefined) {
            throw usageError(
                `asset ${asset} is a link to ${real}, outside the scene's directory ${sceneDir}; \`render\` does not follow links out of it: copy the file under it`,
                "asset_outside_scene",
            );
        }
        const stat = fs.statSync(located);
        const files = stat.isDirectory() ? walkFiles(located) : [located];
        for (const file of files) {
            if (file === scene.file || planned.has(file)) continue;
            planned.set(file, { file, key: keyOf(prefix, sceneDir, file), size: fs.statSync(file).size });
        }
    }
    return {
        scene: { file: scene.file, key: keyOf(prefix, sceneDir, scene.file), size: scene.size },
        assets: [...planned.values()],
        prefix,
        referenced: [],
    };
}

/** Adds the files the scene references (absolute paths under its directory) to the plan, as if given with --assets. */
export function addReferencedFiles(plan: ScenePlan, files: string[]): void {
    const sceneDir = path.dirname(plan.scene.file);
    const planned = new Set([plan.scene.file, ...plan.assets.map((asset) => asset.file)]);
    for (const file of files) {
        if (planned.has(file)) continue;
        planned.add(file);
        const object = { file, key: keyOf(plan.prefix, sceneDir, file), size: fs.statSync(file).size };
        plan.assets.push(object);
        plan.referenced.push(object);
    }
}

// ---- what the scene references, found on this disk ------------------------------------------

/** Reads the .blend with the farm's own reader; anything unreadable is a one-line usage error with the reader's code. */
export async function readSceneSummary(scenePath: string): Promise<BlendSummary> {
    try {
        return await inspectBlendFile(scenePath);
    } catch (error) {
        if (isBlendFileError(error)) {
            // The reader's message starts with the file's name already.
            const detail = error.message.startsWith(`${scenePath}: `)
                ? error.message.slice(scenePath.length + 2)
                : error.message;
            throw new CliError(`${scenePath} is not a readable .blend file: ${detail}`, EXIT_USAGE, error.code);
        }
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT") throw usageError(`scene ${scenePath} not found`, "scene_not_found");
        if (code === "EISDIR") throw usageError(`scene ${scenePath} is not a file`, "not_a_blend");
        throw usageError(`scene ${scenePath} cannot be read: ${code ?? String(error)}`, "scene_unreadable");
    }
}

export type UnmirrorableReason =
    | "absolute"
    | "outside-scene"
    | "not-blend-relative"
    | "empty"
    | "invalid-key"
    | "link-outside-scene"
    | "hidden";

/** One external file the scene needs, resolved on this machine the way Blender does ("//" = the .blend's directory). */
export interface LocalReference extends BlendReference {
    /** The .blend holding the path, relative to the scene's directory: the scene's file name, or a linked library's. */
    holder: string;
    /** Libraries between the scene and the holder: 0 for the scene's own references. */
    depth: number;
    /** The file on this machine, or null when the path cannot name one here (e.g. "C:\…" on Linux). */
    path: string | null;
    /** Whether it is on disk (a sequence: at least one frame is). */
    exists: boolean;
    /** "/"-separated path under the scene's directory: what the farm's work dir mirrors. Absent when unmirrorable. */
    relative?: string;
    /** A sequence's frames found on disk, relative like `relative`. */
    frames?: string[];
    /** Why the farm cannot get this file by mirroring the scene's directory, if it cannot. */
    unmirrorable?: { reason: UnmirrorableReason; message: string };
}

/** What needs the file, as the job API's preflight names it: `image "wood" (tile 1002) in library lib/props.blend`. */
export function neededBy(reference: LocalReference): string {
    return describeNeed(reference);
}

function isFile(file: string): boolean {
    try {
        return fs.statSync(file).isFile();
    } catch {
        return false;
    }
}

/** Files of a sequence on disk: one listing of its folder, matched with the preflight's own pattern test. */
function sequenceFrames(sceneDir: string, pattern: NonNullable<ReturnType<typeof sequencePattern>>): string[] {
    let names: string[];
    try {
        names = fs.readdirSync(path.join(sceneDir, ...pattern.folder.split("/").filter(Boolean)));
    } catch {
        return [];
    }
    return names
        .map((name) => pattern.folder + name)
        .filter((key) => isSequenceFrame(pattern, key) && isFile(path.join(sceneDir, ...key.split("/"))))
        .sort();
}

/**
 * Every external file the scene references, resolved against the scene's directory with the job API's own
 * resolver (the scene's file name stands in for its key, so "outside the bucket" means "outside the directory").
 * Linked libraries' own references: sceneReferences (cli/libraryReferences.ts).
 */
export function localReferences(summary: BlendSummary, sceneFile: string): LocalReference[] {
    const sceneKey = path.basename(sceneFile);
    return externalReferences(summary).map((reference) =>
        localReference(
            { ...reference, holder: sceneKey, depth: 0, resolved: resolveReferenceKey(sceneKey, reference.filepath) },
            path.dirname(path.resolve(sceneFile)),
        ),
    );
}

/** One reference held by the scene or a library (its holder, a path relative to `sceneDir`), found on this disk. */
export function localReference(held: HeldReference, sceneDir: string): LocalReference {
    const { resolved, ...reference } = held;
    if (!resolved.ok) {
        // Where Blender on this machine would look: relative to the .blend holding the path, or to its working directory.
        const holderDir = path.dirname(path.join(sceneDir, ...held.holder.split("/")));
        const slashed = reference.filepath.replace(/\\/g, "/");
        const local = reference.filepath.startsWith("//")
            ? path.resolve(holderDir, slashed.slice(2))
            : path.isAbsolute(reference.filepath) || resolved.reason === "not-blend-relative"
              ? path.resolve(reference.filepath)
              : null;
        const reason: UnmirrorableReason = resolved.reason === "outside-bucket" ? "outside-scene" : resolved.reason;
        const message =
            reason === "outside-scene"
                ? `"${reference.filepath}" is outside the scene's directory ${sceneDir}, the only one \`render\` uploads; move the file under it or pack it`
                : resolved.message;
        return {
            ...reference,
            path: local,
            exists: local !== null && isFile(local),
            unmirrorable: { reason, message },
        };
    }
    const local = path.join(sceneDir, ...resolved.key.split("/"));
    const problem = objectKeyProblem(resolved.key);
    if (problem) {
        return {
            ...reference,
            path: local,
            exists: isFile(local),
            unmirrorable: {
                reason: "invalid-key",
                message: `"${reference.filepath}" resolves to "${resolved.key}", which ${problem}; the farm cannot store it`,
            },
        };
    }
    if (isHiddenPath(resolved.key)) {
        return {
            ...reference,
            path: local,
            exists: isFile(local),
            unmirrorable: {
                reason: "hidden",
                message: `"${reference.filepath}" names a hidden file (${resolved.key}); \`render\` uploads hidden files only when given with --assets`,
            },
        };
    }
    const pattern = reference.sequence ? sequencePattern(resolved.key) : undefined;
    const frames = pattern ? sequenceFrames(sceneDir, pattern) : undefined;
    for (const relative of frames ?? [resolved.key]) {
        const real = linkedOutside(path.join(sceneDir, ...relative.split("/")), sceneDir);
        if (real === undefined) continue;
        return {
            ...reference,
            path: local,
            exists: true,
            unmirrorable: {
                reason: "link-outside-scene",
                message: `"${reference.filepath}" resolves to ${relative}, a link to ${real} outside the scene's directory ${sceneDir}; \`render\` does not follow links out of it: copy the file under it`,
            },
        };
    }
    if (frames) return { ...reference, path: local, exists: frames.length > 0, relative: resolved.key, frames };
    return { ...reference, path: local, exists: isFile(local), relative: resolved.key };
}

/** The files under the scene's directory that the references name and that are on disk: what `render` uploads. */
export function referencedFiles(references: LocalReference[], sceneFile: string): string[] {
    const sceneDir = path.dirname(path.resolve(sceneFile));
    const files = new Set<string>();
    for (const reference of references) {
        if (reference.unmirrorable || !reference.exists || reference.relative === undefined) continue;
        for (const relative of reference.frames ?? [reference.relative])
            files.add(path.join(sceneDir, ...relative.split("/")));
    }
    return [...files];
}

/** A sequence's file names as looked for on disk, e.g. "seq/frame_<number>.png"; undefined for a single file. */
export function sequenceGlob(reference: LocalReference): string | undefined {
    const pattern =
        reference.frames !== undefined && reference.relative !== undefined
            ? sequencePattern(reference.relative)
            : undefined;
    return pattern && `${pattern.folder}${pattern.head}<number>${pattern.tail}`;
}

/** "textures/wood.png (image "wood")", or for a sequence with no frame on disk the pattern it looked for. */
export function missingLabel(reference: LocalReference): string {
    const glob = sequenceGlob(reference);
    if (glob) return `${glob} (${neededBy(reference)}, a sequence)`;
    return `${reference.relative ?? reference.filepath} (${neededBy(reference)})`;
}

export interface SceneCheck {
    /** The scene Blender renders by default (the active one when the file was saved). */
    scene: BlendScene | undefined;
    /** Reasons a render of this file would fail: no scene, no camera, referenced files missing on disk. */
    problems: string[];
    /** Referenced files missing on disk, each once (they are also in `problems`). */
    missing: LocalReference[];
    /** Referenced files the farm cannot get by mirroring the scene's directory: the render would lack them. */
    warnings: string[];
}

/** The checks `render` makes before uploading and `inspect` reports; the job API's preflight makes the same ones on the farm. */
export function checkScene(summary: BlendSummary, references: LocalReference[], scenePath: string): SceneCheck {
    const scene = summary.scenes.find((candidate) => candidate.name === summary.activeScene);
    const problems: string[] = [];
    if (!scene) problems.push(`${scenePath} holds no scene to render`);
    else if (scene.camera === null)
        problems.push(
            `${scenePath}: scene "${scene.name}" has no active camera, so Blender cannot render it; set one (Scene Properties > Camera) and save`,
        );
    const missing: LocalReference[] = [];
    const seen = new Set<string>();
    for (const reference of references) {
        if (reference.unmirrorable || reference.exists) continue;
        const label = reference.relative ?? reference.filepath;
        if (seen.has(label)) continue;
        seen.add(label);
        missing.push(reference);
    }
    if (missing.length > 0) problems.push(missingFilesLine(missing, scenePath));
    const warnings = [
        ...new Set(
            references
                .filter((reference) => reference.unmirrorable)
                .map((reference) => `${neededBy(reference)}: ${reference.unmirrorable!.message}`),
        ),
    ];
    return { scene, problems, missing, warnings };
}

/**
 * What the farm does without a file `render` could not upload: its preflight requires a path that resolves inside the
 * scenes bucket from the scene's key; otherwise the renderer fails frames missing a single-file image or a library
 * (render_frame.py's missing-file check) and renders without anything else.
 */
export function farmConsequence(reference: LocalReference, sceneKey: string): string {
    // A library's paths resolve against the library's key on the farm, as Blender resolves them next to the library.
    const holderKey = reference.depth > 0 ? path.posix.join(path.posix.dirname(sceneKey), reference.holder) : sceneKey;
    const onFarm = resolveReferenceKey(holderKey, reference.filepath);
    if (onFarm.ok && !objectKeyProblem(onFarm.key))
        return `the farm refuses the job unless its scenes bucket already has ${onFarm.key}`;
    const checkedByRenderer =
        reference.kind === "library" ||
        (reference.kind === "image" && !reference.sequence && reference.tile === undefined);
    return checkedByRenderer ? "the farm fails the frames that use it (missing_files)" : "the farm renders without it";
}

/** Most missing files named on the one line (the rest are counted; `inspect` lists them all). */
const MISSING_LISTED = 20;

/** One line naming the referenced files that are not on disk. */
export function missingFilesLine(missing: LocalReference[], scenePath: string): string {
    const listed = missing.slice(0, MISSING_LISTED).map(missingLabel).join(", ");
    const more =
        missing.length > MISSING_LISTED
            ? `, and ${missing.length - MISSING_LISTED} more (\`render-farm inspect ${scenePath}\` lists them all)`
            : "";
    return `${scenePath} references ${missing.length} file(s) missing on disk next to it: ${listed}${more}`;
}

/** How each reason reads in the one line `render` refuses such files with. */
const UNMIRRORABLE_LABELS: Record<UnmirrorableReason, string> = {
    absolute: "an absolute path",
    "outside-scene": "outside the scene's folder",
    "not-blend-relative": "relative to Blender's working directory",
    empty: "no file name",
    "invalid-key": "not a storable key",
    "link-outside-scene": "a link out of the scene's folder",
    hidden: "a hidden file (give it with --assets)",
};

/** One line naming the referenced files `render` cannot upload, and why. */
export function unmirrorableFilesLine(unmirrorable: LocalReference[], scenePath: string): string {
    const labels = [
        ...new Set(
            unmirrorable.map(
                (reference) =>
                    `${reference.filepath} (${neededBy(reference)}: ${UNMIRRORABLE_LABELS[reference.unmirrorable!.reason]})`,
            ),
        ),
    ];
    const listed = labels.slice(0, MISSING_LISTED).join(", ");
    const more =
        labels.length > MISSING_LISTED
            ? `, and ${labels.length - MISSING_LISTED} more (\`render-farm inspect ${scenePath}\` lists them all)`
            : "";
    return `${scenePath} references ${labels.length} file(s) \`render\` cannot upload, so the farm would lack them: ${listed}${more}`;
}
