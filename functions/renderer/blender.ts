// What a frame rendered by Blender is made of: its request, the farm's limits, the result judged from everything
// Blender leaves behind (exit status, signal, the RENDER_FRAME_RESULT line, error lines, the output file), the
// log tail with credentials redacted, and Blender's environment. The Blender itself: blenderProcess.ts.
import * as os from "os";
import {
    Engine,
    FrameEncoding,
    LOSSY_EXR_CODECS,
    LossyExrCodec,
    MAX_TILES,
    MIN_TILES,
    RenderSettings,
    TileRegion,
} from "../shared/contract";

export const RESULT_PREFIX = "RENDER_FRAME_RESULT ";
/** render_frame.py's marker on stderr after a frame: every stderr line of that frame came before it. */
export const END_PREFIX = "RENDER_FRAME_END ";
/** How much of Blender's combined stdout+stderr a result keeps. */
export const LOG_TAIL_BYTES = 4096;
/** Longest line kept whole while scanning; Blender's lines are short, a runaway one is cut here. */
export const MAX_LINE_BYTES = 64 * 1024;
/** Environment variables Blender never needs and an untrusted scene must never see. */
const SECRET_VARIABLE = /^AWS_|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|API_KEY|ACCESS_KEY|PRIVATE_KEY/i;
const AWS_KEY_ID = /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g;
/** Blender 5 logs a report's error as `00:04.269  reports          | ERROR <message>` instead of `Error: <message>`. */
const REPORT_ERROR = /^[\d:.]+\s+reports\s+\|\s+ERROR\s+(.*)$/;

/** The farm's bounds on what a frame may render, enforced by render_frame.py on what Blender actually renders. */
export interface RenderLimits {
    allowedEngines: Engine[];
    /** Most output pixels per side, after the resolution percentage. */
    maxResolution: number;
    /** Most samples per pixel (Cycles, EEVEE; every view layer). */
    maxSamples: number;
}

export interface FrameRequest {
    scenePath: string;
    /**
     * Identifies the scene file's content and what comes with it (the ETags of the scene and every asset on disk): a Blender that
     * has the scene loaded reuses it only for the same path, version, settings and limits. Without it, the
     * scene is loaded again for every frame.
     */
    sceneVersion?: string;
    frame: number;
    /** Exactly where the image is written. */
    outputPath: string;
    settings: RenderSettings;
    limits: RenderLimits;
    threads: number;
    /** Blender's temp dir (tile buffers) for this frame: created before, removed after, killed or not. */
    tempDir: string;
    /** Absolute time (Date.now() based) at which Blender is killed. */
    deadlineMs: number;
    /** Render only this tile of the frame's grid (see tileStitch.ts): a full-size image exact inside its region. */
    tile?: TileRequest;
}

export interface TileRequest {
    /** 0 to of - 1, row-major from the top-left. */
    index: number;
    /** How many tiles the frame is split into, 2 to MAX_TILES. */
    of: number;
}

/** The region a tile render holds, and for a JPEG job the lossless PNG it was written as instead. */
/** A tile's region in its frame (image pixels from the top-left), and which of the frame's tiles it is. */
export interface PlacedTile extends TileRegion {
    /** 0 to of - 1, row-major from the top-left. */
    index: number;
    of: number;
}

export interface RenderedTile extends PlacedTile {
    /** "PNG" when the job's format is JPEG: its tiles are lossless PNG. */
    format?: "PNG";
    /** A JPEG, or an OpenEXR with a lossy codec: the tile is lossless, and the stitch encodes the frame once. */
    encode?: FrameEncoding;
}

export interface RunBlenderOptions extends FrameRequest {
    /** Default: $BLENDER_PATH, else `blender` on the PATH. */
    blenderPath?: string;
    /** Default: render_frame.py next to this module. */
    scriptPath?: string;
}

export interface BlenderResult {
    ok: boolean;
    /** How Blender ended, when it ended with this frame (a failure, a kill); null while it lives on for the next. */
    exitCode: number | null;
    signal: string | null;
    wallMs: number;
    renderSeconds?: number;
    /** The engine id Blender rendered with, e.g. "CYCLES" or "BLENDER_EEVEE_NEXT". */
    engine?: string;
    blenderVersion?: string;
    /** External files (textures, libraries) the scene uses that were not on disk: Blender renders without them. */
    missingFiles?: string[];
    /** Whether Blender loaded the scene for this frame (false: it was still loaded from the frame before). */
    sceneLoaded?: boolean;
    /** Seconds Blender spent loading the scene for this frame (0 when it was still loaded). */
    loadSeconds?: number;
    /** Whether the scene stays loaded for the next frame (false: it depends on the frames before, so it is reloaded). */
    sceneKept?: boolean;
    /** When this frame started Blender: the seconds from its spawn until it read the frame's request. */
    blenderStartSeconds?: number;
    /** For a tile request: the region of the frame the image holds. */
    tile?: RenderedTile;
    error?: { code: string; message: string };
    /** The last ~4 KB of this frame's combined stdout+stderr, credentials redacted. */
    logTail: string;
}

export interface ScriptResult {
    id?: string;
    ok: boolean;
    code?: string;
    message?: string;
    renderSeconds?: number;
    engine?: string;
    blenderVersion?: string;
    missingFiles?: string[];
    sceneLoaded?: boolean;
    loadSeconds?: number;
    sceneKept?: boolean;
    /** When the script read the request, seconds since the epoch. */
    receivedAt?: number;
    tile?: unknown;
}

/** Why a frame request cannot be rendered as given, or undefined. */
export function requestProblem(request: FrameRequest): string | undefined {
    if (!Number.isInteger(request.frame)) return `frame must be a whole number, got ${request.frame}`;
    if (!Number.isInteger(request.threads) || request.threads < 1)
        return `threads must be a whole number >= 1, got ${request.threads}`;
    if (!Number.isFinite(request.deadlineMs))
        return `deadlineMs must be a time in milliseconds, got ${request.deadlineMs}`;
    if (!request.scenePath) return "scenePath is empty";
    if (!request.outputPath) return "outputPath is empty";
    if (!request.tempDir) return "tempDir is empty";
    const { tile } = request;
    if (tile !== undefined) {
        if (!Number.isInteger(tile.of) || tile.of < MIN_TILES || tile.of > MAX_TILES)
            return `tile.of must be a whole number between ${MIN_TILES} and ${MAX_TILES}, got ${tile.of}`;
        if (!Number.isInteger(tile.index) || tile.index < 0 || tile.index >= tile.of)
            return `tile.index must be a whole number between 0 and ${tile.of - 1}, got ${tile.index}`;
    }
    return undefined;
}

/** The tile render_frame.py says it rendered, if it is the one asked for and a region inside its frame. */
export function renderedTile(value: unknown, asked: TileRequest): RenderedTile | undefined {
    if (typeof value !== "object" || value === null) return undefined;
    const tile = value as Record<string, unknown>;
    const whole = (name: string, min: number) =>
        typeof tile[name] === "number" && Number.isInteger(tile[name]) && (tile[name] as number) >= min;
    const names = ["x", "y", "width", "height", "frameWidth", "frameHeight"];
    if (tile.index !== asked.index || tile.of !== asked.of) return undefined;
    if (!whole("x", 0) || !whole("y", 0) || !whole("width", 1) || !whole("height", 1)) return undefined;
    if (!whole("frameWidth", 1) || !whole("frameHeight", 1)) return undefined;
    const region = Object.fromEntries(names.map((name) => [name, tile[name] as number]));
    if (region.x + region.width > region.frameWidth || region.y + region.height > region.frameHeight) return undefined;
    if (tile.format !== undefined && tile.format !== "PNG") return undefined;
    const encode = tile.encode === undefined ? undefined : frameEncodingOf(tile.encode);
    if (tile.encode !== undefined && !encode) return undefined;
    if ((tile.format === "PNG") !== (encode?.format === "JPEG")) return undefined;
    return {
        index: asked.index,
        of: asked.of,
        x: region.x,
        y: region.y,
        width: region.width,
        height: region.height,
        frameWidth: region.frameWidth,
        frameHeight: region.frameHeight,
        ...(tile.format === "PNG" ? { format: "PNG" as const } : {}),
        ...(encode ? { encode } : {}),
    };
}

/** render_frame.py's description of how a tiled frame is encoded, checked; undefined when it is not one. */
function frameEncodingOf(value: unknown): FrameEncoding | undefined {
    if (typeof value !== "object" || value === null) return undefined;
    const { format, quality, colorMode, exrCodec, colorDepth } = value as Record<string, unknown>;
    if (typeof quality !== "number" || !Number.isInteger(quality) || quality < 0 || quality > 100) return undefined;
    if (format === "JPEG")
        return (colorMode === "BW" || colorMode === "RGB") && exrCodec === undefined && colorDepth === undefined
            ? { format, quality, colorMode }
            : undefined;
    if (format !== "OPEN_EXR" || !LOSSY_EXR_CODECS.includes(exrCodec as LossyExrCodec)) return undefined;
    if (colorDepth !== "16" && colorDepth !== "32") return undefined;
    return colorMode === undefined ? { format, quality, exrCodec: exrCodec as LossyExrCodec, colorDepth } : undefined;
}

/**
 * The parent's environment without credentials, with a writable HOME (Blender writes its config there) and
 * `tempDir` as every temp dir variable Blender reads (TMP first, then TMPDIR; TEMP on Windows).
 */
export function blenderEnvironment(parent: NodeJS.ProcessEnv, tempDir: string): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [name, value] of Object.entries(parent)) {
        if (!SECRET_VARIABLE.test(name)) env[name] = value;
    }
    if (!env.HOME) env.HOME = os.tmpdir();
    env.TMP = tempDir;
    env.TMPDIR = tempDir;
    env.TEMP = tempDir;
    return env;
}

export function redactor(parent: NodeJS.ProcessEnv): (text: string) => string {
    const secrets = Object.entries(parent)
        .filter(([name, value]) => SECRET_VARIABLE.test(name) && value !== undefined && value.length >= 8)
        .map(([, value]) => value as string)
        .sort((a, b) => b.length - a.length);
    return (text) => {
        let clean = text;
        for (const secret of secrets) clean = clean.split(secret).join("[redacted]");
        return clean.replace(AWS_KEY_ID, "[redacted]");
    };
}

/** Splits one stream's chunks into lines; a runaway line is cut at MAX_LINE_BYTES. */
export class LineSplitter {
    private partial = "";

    constructor(private readonly onLine: (line: string) => void) {}

    write(chunk: Buffer): void {
        const lines = (this.partial + chunk.toString("utf8")).split(/\r\n|\n|\r/);
        let rest = lines.pop() ?? "";
        for (const line of lines) this.onLine(line);
        if (rest.length > MAX_LINE_BYTES) {
            this.onLine(rest);
            rest = "";
        }
        this.partial = rest;
    }

    end(): void {
        if (this.partial) this.onLine(this.partial);
        this.partial = "";
    }
}

/** One frame's log: remembers what matters and keeps a bounded, redacted tail of the combined lines. */
export class LogScanner {
    /** The frame's RENDER_FRAME_RESULT (its own id, or none: a failure before any request was read). */
    result: ScriptResult | undefined;
    /** render_frame.py's end-of-frame marker came on stderr. */
    ended = false;
    firstError: string | undefined;
    exception: string | undefined;
    private inTraceback = false;
    private ring = Buffer.alloc(0);

    constructor(
        private readonly requestId: string,
        private readonly redact: (text: string) => string,
    ) {}

    tail(): string {
        // The cut may land inside a UTF-8 sequence.
        return this.ring.toString("utf8").replace(/^\uFFFD+/, "");
    }

    line(stream: "stdout" | "stderr", raw: string): void {
        const line = this.redact(raw.length > MAX_LINE_BYTES ? raw.slice(0, MAX_LINE_BYTES) : raw);
        if (stream === "stderr" && line.startsWith(END_PREFIX)) {
            const id = line.slice(END_PREFIX.length).trim();
            if (id === this.requestId || id === "") this.ended = true;
            return;
        }
        this.ring = Buffer.concat([this.ring, Buffer.from(`${line}\n`, "utf8")]);
        if (this.ring.length > LOG_TAIL_BYTES)
            this.ring = Buffer.from(this.ring.subarray(this.ring.length - LOG_TAIL_BYTES));

        if (stream === "stdout" && line.startsWith(RESULT_PREFIX)) {
            const result = parseScriptResult(line.slice(RESULT_PREFIX.length));
            if (result && (result.id === this.requestId || !result.id)) this.result = result;
            return;
        }
        const trimmed = line.trim();
        if (trimmed.includes("Traceback (most recent call last)")) {
            this.inTraceback = true;
        } else if (this.inTraceback && trimmed && !/^\s/.test(line)) {
            // The first unindented line after a traceback names the exception.
            this.exception ??= trimmed.slice(0, 1000);
            this.inTraceback = false;
        }
        if (/^Error:/.test(trimmed)) this.firstError ??= trimmed.slice(0, 1000);
        const reportError = REPORT_ERROR.exec(trimmed);
        if (reportError) this.firstError ??= `Error: ${reportError[1]}`.slice(0, 1000);
    }
}

function parseScriptResult(json: string): ScriptResult | undefined {
    try {
        const value = JSON.parse(json) as unknown;
        if (typeof value === "object" && value !== null && typeof (value as ScriptResult).ok === "boolean")
            return value as ScriptResult;
    } catch {
        // A garbled line counts as no line.
    }
    return undefined;
}

/** How much of a tool's output (oiiotool's, Blender's) a stitch_failed message keeps. */
const OUTPUT_TAIL_CHARS = 2000;

/** The end of what a failed tool printed, for its error message. */
export function outputTail(text: string): string {
    const trimmed = text.trim();
    return trimmed.length > OUTPUT_TAIL_CHARS ? `…${trimmed.slice(-OUTPUT_TAIL_CHARS)}` : trimmed;
}
