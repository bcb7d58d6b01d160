// Assembles one frame from its tiles with OpenImageIO's oiiotool. Each tile is a full-size render that is exact
// inside its region only (render_frame.py: a border without crop keeps full-frame pixel coordinates), so the frame
// is tile 0 with every other tile's region cut out and pasted over it, pixel for pixel, in the tiles' own data
// format. A JPEG's tiles are lossless PNG, a lossy OpenEXR codec's are ZIP: Blender encodes the frame once, after
// the stitch (frameEncode.ts).
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Format, FrameEncoding, MAX_TILES, MIN_TILES } from "../shared/contract";
import { farmError } from "../shared/errors";
import { outputTail, PlacedTile } from "./blender";
import { encodeFrame } from "./frameEncode";

/** Blender's default JPEG quality, for a stitch not told the scene's. */
const DEFAULT_JPEG_QUALITY = 90;
/** The least time oiiotool gets for a stitch: a small frame's stitch takes seconds, even on a busy machine. */
const MIN_STITCH_TIMEOUT_MS = 120_000;
/**
 * oiiotool's time per megapixel it reads (every tile is the frame's full size). Measured in this repo: 64 full-size
 * 1920x1080 tiles (133 megapixels) stitch in 3.9 s as Blender's PNG on a quiet 2-core machine, and as incompressible
 * float EXR in 54 s with that machine 7 times oversubscribed: 1 s per megapixel is 2.5 times that worst case.
 */
const STITCH_MS_PER_MEGAPIXEL = 1000;
/** oiiotool's names for the farm's formats (its -o fileformatname). */
const OIIO_FORMATS: Record<Format, string> = { PNG: "png", JPEG: "jpeg", OPEN_EXR: "openexr", TIFF: "tiff" };
/** One line of `oiiotool --info`: `<path> :  102 x   58, 4 channel, uint16 png`. */
const INFO_LINE = / : +(\d+) x +(\d+), (\d+) channel, (\S+) /;

export interface StitchTile {
    /** The tile's image: the whole frame's size, exact inside its region. */
    path: string;
    region: PlacedTile;
}

/** How long oiiotool may take to stitch a frame of `framePixels` pixels from `tiles` tiles: it reads them all whole. */
export function stitchTimeoutMs(framePixels: number, tiles: number): number {
    return Math.max(MIN_STITCH_TIMEOUT_MS, Math.ceil((framePixels * tiles * STITCH_MS_PER_MEGAPIXEL) / 1_000_000));
}

/** oiiotool as this process finds it: $OIIOTOOL_PATH, else `oiiotool` on the PATH. */
export function oiiotoolPath(env: NodeJS.ProcessEnv = process.env): string {
    return env.OIIOTOOL_PATH || "oiiotool";
}

/** Writes the frame the tiles make to exactly `outputPath` (never a partial file); throws stitch_failed. */
export async function stitchTiles(options: {
    tiles: StitchTile[];
    outputPath: string;
    format: Format;
    /**
     * How Blender encodes the frame once stitched, when its tiles were stored losslessly (render_frame.py's tile
     * result says); a JPEG without it is encoded at Blender's default quality.
     */
    encode?: FrameEncoding;
    /** The Blender that encodes; default $BLENDER_PATH, else `blender` on the PATH. */
    blenderPath?: string;
    oiiotoolPath?: string;
    /** oiiotool's time for the whole stitch; default stitchTimeoutMs of the frame's pixels and tiles. */
    timeoutMs?: number;
    /** When the stitch must be over whatever its timeout (ms since the epoch): the invocation's time left. */
    deadlineMs?: number;
}): Promise<void> {
    const problem = tilesProblem(options.tiles);
    if (problem) throw farmError("stitch_failed", `cannot stitch ${options.outputPath}: ${problem}`);
    const tiles = [...options.tiles].sort((a, b) => a.region.index - b.region.index);
    const tool = options.oiiotoolPath ?? oiiotoolPath();
    const { frameWidth, frameHeight } = tiles[0].region;
    const timeoutMs = Math.min(
        options.timeoutMs ?? stitchTimeoutMs(frameWidth * frameHeight, tiles.length),
        (options.deadlineMs ?? Number.POSITIVE_INFINITY) - Date.now(),
    );
    if (timeoutMs <= 0)
        throw farmError("stitch_failed", `cannot stitch ${options.outputPath}: the invocation has no time left for it`);
    const until = Date.now() + timeoutMs;
    const timeLeft = () => Math.max(1, until - Date.now());

    // The regions fit the frame only if every image is the frame: oiiotool would paste a wrong-sized one silently.
    const info = await runOiiotool(tool, ["--info", ...tiles.map((tile) => tile.path)], timeLeft(), "read the tiles");
    const lines = info.split("\n").filter((line) => INFO_LINE.test(line));
    if (lines.length !== tiles.length)
        throw farmError(
            "stitch_failed",
            `oiiotool described ${lines.length} of ${tiles.length} tiles: ${outputTail(info)}`,
        );
    const first = INFO_LINE.exec(lines[0])!;
    tiles.forEach((tile, i) => {
        const [, width, height, channels, dataFormat] = INFO_LINE.exec(lines[i])!;
        if (Number(width) !== frameWidth || Number(height) !== frameHeight)
            throw farmError(
                "stitch_failed",
                `tile ${tile.region.index} (${tile.path}) is ${width}x${height} pixels, not its frame's ${frameWidth}x${frameHeight}`,
            );
        if (channels !== first[3] || dataFormat !== first[4])
            throw farmError(
                "stitch_failed",
                `tile ${tile.region.index} (${tile.path}) has ${channels} ${dataFormat} channels, tile 0 has ${first[3]} ${first[4]}`,
            );
    });

    // Written aside and renamed into place: a failed or killed stitch leaves no torn frame under outputPath.
    const output = path.resolve(options.outputPath);
    const partial = path.join(path.dirname(output), `.${path.basename(output)}.${process.pid}.stitching`);
    const encode =
        options.encode ??
        (options.format === "JPEG"
            ? { format: "JPEG" as const, quality: DEFAULT_JPEG_QUALITY, colorMode: "RGB" as const }
            : undefined);
    if (encode && encode.format !== options.format)
        throw farmError(
            "stitch_failed",
            `cannot stitch ${options.outputPath}: its tiles are to be encoded as ${encode.format}, not ${options.format}`,
        );
    // The tiles' own lossless format, for Blender to encode from.
    const lossless = `${partial}.lossless.${encode?.format === "JPEG" ? "png" : "exr"}`;
    try {
        if (!encode) {
            await runOiiotool(tool, stitchArgs(tiles, partial, options.format), timeLeft(), "stitch the tiles");
        } else {
            const tileFormat = encode.format === "JPEG" ? "PNG" : "OPEN_EXR";
            await runOiiotool(tool, stitchArgs(tiles, lossless, tileFormat), timeLeft(), "stitch the tiles");
            await encodeFrame({
                blenderPath: options.blenderPath,
                input: lossless,
                output: partial,
                encode,
                timeoutMs: timeLeft(),
            });
        }
        fs.renameSync(partial, output);
    } finally {
        fs.rmSync(partial, { force: true });
        fs.rmSync(lossless, { force: true });
    }
}

/**
 * oiiotool's command line: tile 0, then for each other tile its region cut out (moved to the origin), swapped under
 * the frame so far and pasted back at its place. --no-autopremult: straight-alpha PNG and TIFF tiles would otherwise
 * be premultiplied on read and unpremultiplied on write, changing edge pixels.
 */
export function stitchArgs(tiles: StitchTile[], output: string, format: Format): string[] {
    const args = ["--no-autopremult", tiles[0].path];
    for (const { path: tilePath, region } of tiles.slice(1)) {
        const place = `+${region.x}+${region.y}`;
        args.push(tilePath, "--cut", `${region.width}x${region.height}${place}`, "--swap", "--paste", place);
    }
    args.push(`-o:fileformatname=${OIIO_FORMATS[format]}`, output);
    return args;
}

/** Why these tiles do not make exactly one frame, or undefined: each index once, one frame size, no gap, no overlap. */
export function tilesProblem(tiles: StitchTile[]): string | undefined {
    if (tiles.length === 0) return "no tiles";
    const { of, frameWidth, frameHeight } = tiles[0].region;
    if (!Number.isInteger(of) || of < MIN_TILES || of > MAX_TILES)
        return `a frame has ${MIN_TILES} to ${MAX_TILES} tiles, not ${of}`;
    const seen = new Set<number>();
    for (const { path: tilePath, region } of tiles) {
        const name = `tile ${region.index} (${tilePath})`;
        if (region.of !== of || region.frameWidth !== frameWidth || region.frameHeight !== frameHeight)
            return `${name} is 1 of ${region.of} of a ${region.frameWidth}x${region.frameHeight} frame, tile ${tiles[0].region.index} is 1 of ${of} of a ${frameWidth}x${frameHeight} frame`;
        if (!Number.isInteger(region.index) || region.index < 0 || region.index >= of)
            return `${name}: its index is not between 0 and ${of - 1}`;
        if (seen.has(region.index)) return `tile ${region.index} is given twice`;
        seen.add(region.index);
        const { x, y, width, height } = region;
        if (![x, y, width, height].every(Number.isInteger) || x < 0 || y < 0 || width < 1 || height < 1)
            return `${name}: its region ${width}x${height}+${x}+${y} is not whole pixels`;
        if (x + width > frameWidth || y + height > frameHeight)
            return `${name}: its region ${width}x${height}+${x}+${y} is outside the ${frameWidth}x${frameHeight} frame`;
    }
    const missing = Array.from({ length: of }, (_, index) => index).filter((index) => !seen.has(index));
    if (missing.length) return `tile${missing.length > 1 ? "s" : ""} ${missing.join(", ")} of ${of} missing`;
    for (const [i, a] of tiles.entries())
        for (const b of tiles.slice(i + 1))
            if (overlap(a.region, b.region))
                return `the regions of tiles ${a.region.index} and ${b.region.index} overlap`;
    const area = tiles.reduce((sum, { region }) => sum + region.width * region.height, 0);
    if (area !== frameWidth * frameHeight)
        return `the regions cover ${area} of the frame's ${frameWidth * frameHeight} pixels`;
    return undefined;
}

function overlap(a: PlacedTile, b: PlacedTile): boolean {
    return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

function runOiiotool(tool: string, args: string[], timeoutMs: number, what: string): Promise<string> {
    return new Promise((resolve, reject) => {
        execFile(
            tool,
            args,
            { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 16 * 1024 * 1024 },
            (error, stdout, stderr) => {
                if (!error) return resolve(stdout);
                const code = (error as NodeJS.ErrnoException).code;
                if (code === "ENOENT")
                    return reject(
                        farmError(
                            "stitch_failed",
                            `oiiotool (${tool}) is not installed: install OpenImageIO's tools (Debian: openimageio-tools) or set OIIOTOOL_PATH`,
                        ),
                    );
                const why = error.killed
                    ? `was killed after ${timeoutMs} ms`
                    : `failed (${error.message.split("\n")[0]})`;
                reject(
                    farmError(
                        "stitch_failed",
                        `oiiotool could not ${what}: it ${why}: ${outputTail(`${stderr}${stdout}`)}`,
                    ),
                );
            },
        );
    });
}
