// The scene and its assets as files to upload: checked locally (exists, really a .blend) and given
// scenes-bucket keys that keep the artist's layout, so `//textures/wood.png` resolves on the farm.
import * as fs from "fs";
import * as path from "path";
import { objectKeyProblem } from "../functions/contract";
import { usageError } from "./errors";

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
    /** The key prefix everything is uploaded under (the scene directory's name unless given). */
    prefix: string;
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
    return "does not start with Blender's file header (\"BLENDER\", or a gzip/zstd compressed .blend)";
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
        throw usageError(`scene ${scenePath} cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, "scene_unreadable");
    }
    if (problem) throw usageError(`${scenePath} is not a .blend file: it ${problem}`, "not_a_blend");
    if (!/\.blend$/i.test(file)) throw usageError(`${scenePath} is a Blender file but its name must end in .blend (the farm renders .blend scenes only)`, "not_a_blend");
    return { file, size: stat.size };
}

/** Every file under `dir`, recursively, in a stable order. */
function walkFiles(dir: string): string[] {
    const files: string[] = [];
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
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
    const prefix = (prefixOption ?? (path.basename(sceneDir) || "scene")).replace(/^\/+|\/+$/g, "");
    if (prefixOption !== undefined && prefix !== "" && objectKeyProblem(prefix)) {
        throw usageError(`--prefix "${prefixOption}" ${objectKeyProblem(prefix)}`, "invalid_key");
    }
    const planned = new Map<string, LocalObject>();
    for (const asset of assets) {
        const located = locateAsset(asset, sceneDir);
        if (!isInside(located, sceneDir)) {
            throw usageError(`asset ${asset} is outside the scene's directory ${sceneDir}; the farm mirrors that directory, so move the file under it (e.g. ${path.join(sceneDir, "textures")})`, "asset_outside_scene");
        }
        const stat = fs.statSync(located);
        const files = stat.isDirectory() ? walkFiles(located) : [located];
        for (const file of files) {
            if (file === scene.file || planned.has(file)) continue;
            planned.set(file, { file, key: keyOf(prefix, sceneDir, file), size: fs.statSync(file).size });
        }
    }
    return { scene: { file: scene.file, key: keyOf(prefix, sceneDir, scene.file), size: scene.size }, assets: [...planned.values()], prefix };
}
