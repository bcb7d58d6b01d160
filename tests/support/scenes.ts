// Test scenes made by tests/fixtures/make_scene.py with the real Blender, cached under the OS temp dir,
// a direct `blender -f` render for reference, and a small PNG decoder to compare pixels.
import { execFile } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import { Engine } from "../../functions/shared/contract";

export const BLENDER = process.env.BLENDER_PATH ?? "blender";
const MAKE_SCENE = path.join(__dirname, "..", "fixtures", "make_scene.py");
const CACHE_ROOT = path.join(os.tmpdir(), "render-farm-test-scenes");
/** A real scene made by others (MIT, saved by Blender 2.77): tests/fixtures/cube-2016/SOURCE.md. */
export const CUBE_2016_SCENE = path.join(__dirname, "..", "fixtures", "cube-2016", "scene.blend");

export interface SceneOptions {
    /** Path of a checker PNG relative to the .blend, loaded as `//<texture>`, e.g. "textures/checker.png". */
    texture?: string;
    noCamera?: boolean;
    /** e.g. "1-4" (the default). */
    frames?: string;
    engine?: Engine;
    samples?: number;
    resolutionX?: number;
    resolutionY?: number;
    percentage?: number;
    /** Adds a registered text block that writes `markerPath` if it ever runs. */
    autoexecProbe?: boolean;
    /** Adds a compositor File Output node writing into `fileOutputDir` (an absolute path outside any work dir). */
    fileOutput?: boolean;
    /** Cycles renders in tiles of this size, writing each finished tile to a file in Blender's temp dir. */
    tileSize?: number;
    /** Adds a sphere falling onto the ground, an unbaked rigid body simulation. */
    rigidBody?: boolean;
    /** Subdivides the moving cube this many levels at render time: rendering needs memory the file does not show. */
    subdivision?: number;
}

export interface Scene {
    blendPath: string;
    dir: string;
    texturePath?: string;
    /** The file the autoexec probe writes if scene code runs (absent until then). */
    markerPath?: string;
    /** Where the scene's File Output node writes, when it has one. */
    fileOutputDir?: string;
}

export function run(command: string, args: string[], timeoutMs = 120_000): Promise<{ stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
        execFile(command, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
            if (error) reject(new Error(`${command} ${args.join(" ")} failed: ${error.message}\n${stdout}\n${stderr}`));
            else resolve({ stdout, stderr });
        });
    });
}

/**
 * Runs a bpy script in background Blender, as the tests' fixture makers all do:
 * `blender -b [blend] --factory-startup -noaudio --disable-autoexec --python-exit-code 2 -P script -- ...args`.
 */
export function runBlenderScript(
    script: string,
    args: string[],
    options: { blend?: string; timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
    const blend = options.blend === undefined ? [] : [options.blend];
    return run(
        BLENDER,
        [
            "-b",
            ...blend,
            "--factory-startup",
            "-noaudio",
            "--disable-autoexec",
            "--python-exit-code",
            "2",
            "-P",
            script,
            "--",
            ...args,
        ],
        options.timeoutMs,
    );
}

/** Makes (or reuses) a scene; the cache key covers the Blender, the options and make_scene.py itself. */
export async function makeScene(options: SceneOptions = {}): Promise<Scene> {
    const key = crypto
        .createHash("sha256")
        // A file saved by a newer Blender may not open in an older one.
        .update(BLENDER)
        .update(JSON.stringify(options))
        .update(fs.readFileSync(MAKE_SCENE))
        .digest("hex")
        .slice(0, 16);
    const dir = path.join(CACHE_ROOT, key);
    const scene: Scene = { blendPath: path.join(dir, "scene.blend"), dir };
    if (options.texture) scene.texturePath = path.join(dir, options.texture);
    if (options.autoexecProbe) scene.markerPath = path.join(dir, "autoexec-ran.txt");
    if (options.fileOutput) scene.fileOutputDir = path.join(dir, "file-output");
    if (fs.existsSync(path.join(dir, ".complete"))) return scene;

    // Built aside and renamed into place, so concurrent test runs never see half a scene.
    const building = fs.mkdtempSync(path.join(os.tmpdir(), "render-farm-scene-"));
    const args = ["--out", path.join(building, "scene.blend")];
    if (options.texture) args.push("--texture", options.texture);
    if (options.noCamera) args.push("--no-camera");
    if (options.frames) args.push("--frames", options.frames);
    if (options.engine) args.push("--engine", options.engine);
    if (options.samples !== undefined) args.push("--samples", String(options.samples));
    if (options.resolutionX !== undefined) args.push("--resolution-x", String(options.resolutionX));
    if (options.resolutionY !== undefined) args.push("--resolution-y", String(options.resolutionY));
    if (options.percentage !== undefined) args.push("--percentage", String(options.percentage));
    if (scene.markerPath) args.push("--autoexec-marker", scene.markerPath);
    if (scene.fileOutputDir) args.push("--file-output", scene.fileOutputDir);
    if (options.tileSize !== undefined) args.push("--tile-size", String(options.tileSize));
    if (options.rigidBody) args.push("--rigid-body");
    if (options.subdivision !== undefined) args.push("--subdivision", String(options.subdivision));
    await runBlenderScript(MAKE_SCENE, args);
    fs.writeFileSync(path.join(building, ".complete"), "");
    fs.mkdirSync(CACHE_ROOT, { recursive: true });
    try {
        fs.renameSync(building, dir);
    } catch (error) {
        // Another run finished the same scene first.
        if (!fs.existsSync(path.join(dir, ".complete"))) throw error;
        fs.rmSync(building, { recursive: true, force: true });
    }
    return scene;
}

/**
 * Renders frame `frame` the way an artist would on the command line (`blender -b scene -o … -F <format> -f <frame>`):
 * `-o`/`-F` must come before `-f`, because Blender applies its arguments in order and renders when it reaches `-f`.
 */
export async function renderDirect(
    blendPath: string,
    frame: number,
    outDir: string,
    format: "PNG" | "OPEN_EXR" = "PNG",
): Promise<string> {
    await run(BLENDER, [
        "-b",
        blendPath,
        "--factory-startup",
        "-noaudio",
        "--disable-autoexec",
        "-o",
        path.join(outDir, "direct_####"),
        "-F",
        format,
        "-f",
        String(frame),
    ]);
    const file = path.join(outDir, `direct_${String(frame).padStart(4, "0")}.${format === "PNG" ? "png" : "exr"}`);
    if (!fs.existsSync(file)) throw new Error(`blender -f ${frame} wrote no ${file}`);
    return file;
}

export interface DecodedPng {
    width: number;
    height: number;
    /** Samples per pixel: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. */
    channels: number;
    bitDepth: 8 | 16;
    /** Unfiltered samples, row after row (16-bit samples big-endian, as in the file). */
    data: Buffer;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS_BY_COLOR_TYPE: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

/** Decodes a non-interlaced 8- or 16-bit gray/RGB/RGBA PNG: what Blender writes. */
export function decodePng(file: string): DecodedPng {
    const bytes = fs.readFileSync(file);
    if (!bytes.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error(`${file} is not a PNG`);
    let offset = 8;
    let header: { width: number; height: number; bitDepth: number; colorType: number; interlace: number } | undefined;
    const idat: Buffer[] = [];
    while (offset < bytes.length) {
        const length = bytes.readUInt32BE(offset);
        const type = bytes.toString("latin1", offset + 4, offset + 8);
        const body = bytes.subarray(offset + 8, offset + 8 + length);
        if (type === "IHDR")
            header = {
                width: body.readUInt32BE(0),
                height: body.readUInt32BE(4),
                bitDepth: body[8],
                colorType: body[9],
                interlace: body[12],
            };
        else if (type === "IDAT") idat.push(body);
        else if (type === "IEND") break;
        offset += 12 + length;
    }
    if (!header) throw new Error(`${file} has no IHDR chunk`);
    const channels = CHANNELS_BY_COLOR_TYPE[header.colorType];
    if (!channels || (header.bitDepth !== 8 && header.bitDepth !== 16) || header.interlace !== 0) {
        throw new Error(
            `${file}: unsupported PNG (color type ${header.colorType}, depth ${header.bitDepth}, interlace ${header.interlace})`,
        );
    }
    const bytesPerPixel = (channels * header.bitDepth) / 8;
    const stride = header.width * bytesPerPixel;
    const raw = zlib.inflateSync(Buffer.concat(idat));
    if (raw.length !== (stride + 1) * header.height)
        throw new Error(`${file}: image data is ${raw.length} bytes, expected ${(stride + 1) * header.height}`);
    const data = Buffer.alloc(stride * header.height);
    for (let y = 0; y < header.height; y++) {
        const filter = raw[y * (stride + 1)];
        const row = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
        const out = y * stride;
        for (let x = 0; x < stride; x++) {
            const left = x >= bytesPerPixel ? data[out + x - bytesPerPixel] : 0;
            const up = y > 0 ? data[out - stride + x] : 0;
            const upLeft = y > 0 && x >= bytesPerPixel ? data[out - stride + x - bytesPerPixel] : 0;
            const predictor = [0, left, up, (left + up) >> 1, paeth(left, up, upLeft)][filter];
            if (predictor === undefined) throw new Error(`${file}: row ${y} has unknown filter ${filter}`);
            data[out + x] = (row[x] + predictor) & 0xff;
        }
    }
    return { width: header.width, height: header.height, channels, bitDepth: header.bitDepth as 8 | 16, data };
}

function paeth(a: number, b: number, c: number): number {
    const p = a + b - c;
    const pa = Math.abs(p - a);
    const pb = Math.abs(p - b);
    const pc = Math.abs(p - c);
    if (pa <= pb && pa <= pc) return a;
    return pb <= pc ? b : c;
}

export interface PixelComparison {
    sameShape: boolean;
    /** Samples that differ at all. */
    differingSamples: number;
    /** Largest difference of one sample, in the image's own units (0..255 for 8 bit). */
    maxDifference: number;
}

export function comparePngs(fileA: string, fileB: string): PixelComparison {
    const a = decodePng(fileA);
    const b = decodePng(fileB);
    const sameShape =
        a.width === b.width && a.height === b.height && a.channels === b.channels && a.bitDepth === b.bitDepth;
    if (!sameShape) return { sameShape, differingSamples: Number.NaN, maxDifference: Number.NaN };
    let differingSamples = 0;
    let maxDifference = 0;
    const step = a.bitDepth / 8;
    for (let i = 0; i < a.data.length; i += step) {
        const difference =
            step === 1 ? Math.abs(a.data[i] - b.data[i]) : Math.abs(a.data.readUInt16BE(i) - b.data.readUInt16BE(i));
        if (difference > 0) differingSamples++;
        if (difference > maxDifference) maxDifference = difference;
    }
    return { sameShape, differingSamples, maxDifference };
}

/** How many distinct colors an 8-bit image has: a blank or single-color render has 1. */
export function distinctColors(png: DecodedPng): number {
    const bytesPerPixel = (png.channels * png.bitDepth) / 8;
    const colors = new Set<string>();
    for (let i = 0; i < png.data.length; i += bytesPerPixel)
        colors.add(png.data.subarray(i, i + bytesPerPixel).toString("hex"));
    return colors.size;
}

/** The file type from the first bytes: what an image viewer would go by, not the extension. */
export function sniffImageType(file: string): "PNG" | "JPEG" | "OPEN_EXR" | "TIFF" | "unknown" {
    const head = fs.readFileSync(file).subarray(0, 8);
    if (head.length < 8) return "unknown";
    if (head.subarray(0, 8).equals(PNG_SIGNATURE)) return "PNG";
    if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return "JPEG";
    if (head.readUInt32LE(0) === 20000630) return "OPEN_EXR";
    if (head.toString("latin1", 0, 4) === "II*\0" || head.toString("latin1", 0, 4) === "MM\0*") return "TIFF";
    return "unknown";
}
