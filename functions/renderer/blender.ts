// Runs Blender headless on one frame with render_frame.py and judges the outcome from everything it
// leaves behind: exit status, signal, the RENDER_FRAME_RESULT line, error lines, and the output file.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Engine, RenderSettings } from "../shared/contract";

export const RESULT_PREFIX = "RENDER_FRAME_RESULT ";
/** How much of Blender's combined stdout+stderr a result keeps. */
export const LOG_TAIL_BYTES = 4096;
/** Longest line kept whole while scanning; Blender's lines are short, a runaway one is cut here. */
const MAX_LINE_BYTES = 64 * 1024;
/** setTimeout fires at once for delays above this. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Environment variables Blender never needs and an untrusted scene must never see. */
const SECRET_VARIABLE = /^AWS_|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|API_KEY|ACCESS_KEY|PRIVATE_KEY/i;
const AWS_KEY_ID = /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g;
const UNREADABLE_SCENE = /File format is not supported|Failed to read blend file|Cannot read file|Unable to open/;

/** The farm's bounds on what a frame may render, enforced by render_frame.py on what Blender actually renders. */
export interface RenderLimits {
    allowedEngines: Engine[];
    /** Most output pixels per side, after the resolution percentage. */
    maxResolution: number;
    /** Most samples per pixel (Cycles, EEVEE; every view layer). */
    maxSamples: number;
}

export interface RunBlenderOptions {
    /** Default: $BLENDER_PATH, else `blender` on the PATH. */
    blenderPath?: string;
    scenePath: string;
    /** Default: render_frame.py next to this module. */
    scriptPath?: string;
    frame: number;
    /** Exactly where the image is written. */
    outputPath: string;
    settings: RenderSettings;
    limits: RenderLimits;
    threads: number;
    /** Blender's temp dir (tile buffers, caches): created empty before Blender starts and removed after it ends. */
    tempDir: string;
    /** Absolute time (Date.now() based) at which Blender is killed. */
    deadlineMs: number;
}

export interface BlenderResult {
    ok: boolean;
    exitCode: number | null;
    signal: string | null;
    wallMs: number;
    renderSeconds?: number;
    /** The engine id Blender rendered with, e.g. "CYCLES" or "BLENDER_EEVEE_NEXT". */
    engine?: string;
    blenderVersion?: string;
    /** External files (textures, libraries) the scene uses that were not on disk: Blender renders without them. */
    missingFiles?: string[];
    error?: { code: string; message: string };
    /** The last ~4 KB of combined stdout+stderr, credentials redacted. */
    logTail: string;
}

interface ScriptResult {
    ok: boolean;
    code?: string;
    message?: string;
    renderSeconds?: number;
    engine?: string;
    blenderVersion?: string;
    missingFiles?: string[];
}

/** Blender's arguments for one frame: `-b scene --factory-startup -noaudio --disable-autoexec --python-exit-code 2 -P script -- ...`. */
export function blenderArgs(options: RunBlenderOptions): string[] {
    const { settings } = options;
    const scriptPath = options.scriptPath ?? path.join(__dirname, "render_frame.py");
    // Absolute paths, so a scene or script name can never be read as a Blender option.
    const args = [
        "-b",
        path.resolve(options.scenePath),
        "--factory-startup",
        "-noaudio",
        "--disable-autoexec",
        "--python-exit-code",
        "2",
        "-P",
        path.resolve(scriptPath),
        "--",
    ];
    args.push(
        "--frame",
        String(options.frame),
        "--output",
        path.resolve(options.outputPath),
        "--format",
        settings.format,
        "--threads",
        String(options.threads),
    );
    if (settings.engine !== undefined) args.push("--engine", settings.engine);
    if (settings.samples !== undefined) args.push("--samples", String(settings.samples));
    const resolution = settings.resolution ?? {};
    if (resolution.x !== undefined) args.push("--resolution-x", String(resolution.x));
    if (resolution.y !== undefined) args.push("--resolution-y", String(resolution.y));
    if (resolution.percentage !== undefined) args.push("--percentage", String(resolution.percentage));
    const { limits } = options;
    args.push(
        "--allowed-engines",
        limits.allowedEngines.join(","),
        "--max-resolution",
        String(limits.maxResolution),
        "--max-samples",
        String(limits.maxSamples),
    );
    return args;
}

export async function runBlender(options: RunBlenderOptions): Promise<BlenderResult> {
    const failed = (code: string, message: string): BlenderResult => ({
        ok: false,
        exitCode: null,
        signal: null,
        wallMs: 0,
        logTail: "",
        error: { code, message },
    });

    const problem = optionsProblem(options);
    if (problem) return failed("bad_argument", problem);
    const scenePath = path.resolve(options.scenePath);
    const outputPath = path.resolve(options.outputPath);
    if (!fs.existsSync(scenePath)) return failed("scene_missing", `scene file ${scenePath} does not exist`);
    if (options.deadlineMs <= Date.now()) {
        return failed(
            "timeout",
            `the deadline for frame ${options.frame} of ${scenePath} passed before Blender started`,
        );
    }
    fs.mkdirSync(path.dirname(outputPath), { recursive: true });
    // A stale file from an earlier attempt must not pass for this render's output.
    fs.rmSync(outputPath, { force: true });

    const blenderPath = options.blenderPath ?? process.env.BLENDER_PATH ?? "blender";
    const tempDir = path.resolve(options.tempDir);
    fs.rmSync(tempDir, { recursive: true, force: true });
    fs.mkdirSync(tempDir, { recursive: true });
    const env = blenderEnvironment(process.env, tempDir);
    const redact = redactor(process.env);
    const log = new LogScanner(redact);
    const started = Date.now();

    const outcome = await new Promise<{
        exitCode: number | null;
        signal: string | null;
        timedOut: boolean;
        spawnError?: Error;
    }>((resolve) => {
        let settled = false;
        let timedOut = false;
        const settle = (value: { exitCode: number | null; signal: string | null; spawnError?: Error }) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve({ ...value, timedOut });
        };
        const child = spawn(blenderPath, blenderArgs(options), { env, stdio: ["ignore", "pipe", "pipe"] });
        const timer = setTimeout(
            () => {
                // A Blender that exited just now finished in time.
                if (child.exitCode !== null || child.signalCode !== null) return;
                timedOut = true;
                child.kill("SIGKILL");
            },
            Math.min(Math.max(0, options.deadlineMs - Date.now()), MAX_TIMER_MS),
        );
        child.stdout.on("data", (chunk: Buffer) => log.write("stdout", chunk));
        child.stderr.on("data", (chunk: Buffer) => log.write("stderr", chunk));
        child.on("error", (error) => settle({ exitCode: null, signal: null, spawnError: error }));
        child.on("close", (exitCode, signal) => settle({ exitCode, signal }));
    });
    log.end();
    // A Blender killed mid-frame leaves its tile buffers (about 1 GB per pass at 8K) behind.
    fs.rmSync(tempDir, { recursive: true, force: true });

    const wallMs = Date.now() - started;
    const script = log.result;
    const base = {
        exitCode: outcome.exitCode,
        signal: outcome.signal,
        wallMs,
        logTail: log.tail(),
        ...(script?.renderSeconds !== undefined ? { renderSeconds: script.renderSeconds } : {}),
        ...(script?.engine !== undefined ? { engine: script.engine } : {}),
        ...(script?.blenderVersion !== undefined ? { blenderVersion: script.blenderVersion } : {}),
        ...(script?.missingFiles !== undefined ? { missingFiles: script.missingFiles } : {}),
    };
    const fail = (code: string, message: string): BlenderResult => ({ ok: false, ...base, error: { code, message } });
    const what = `frame ${options.frame} of ${scenePath}`;
    const detail = log.firstError ? `: ${log.firstError}` : "";

    if (outcome.spawnError) {
        const code =
            (outcome.spawnError as NodeJS.ErrnoException).code === "ENOENT" ? "blender_not_found" : "spawn_failed";
        return fail(code, `could not start Blender (${blenderPath}): ${outcome.spawnError.message}`);
    }
    if (outcome.timedOut) {
        return fail("timeout", `Blender did not finish ${what} before the deadline and was killed after ${wallMs} ms`);
    }
    if (outcome.signal) {
        const code = outcome.signal === "SIGKILL" ? "killed" : "crashed";
        const hint = outcome.signal === "SIGKILL" ? " (out of memory?)" : "";
        return fail(code, `Blender was ended by ${outcome.signal}${hint} while rendering ${what}${detail}`);
    }
    if (script && !script.ok) {
        return fail(script.code ?? "render_failed", script.message ?? `render_frame.py failed on ${what}`);
    }
    if (outcome.exitCode !== 0) {
        if (log.firstError && UNREADABLE_SCENE.test(log.firstError)) {
            return fail(
                "unreadable_scene",
                `Blender cannot read the scene ${scenePath}: ${log.firstError.replace(/^Error:\s*/, "")}`,
            );
        }
        const code = log.exception ? "script_error" : "blender_failed";
        return fail(
            code,
            `Blender exited with status ${outcome.exitCode} on ${what}${log.exception ? `: ${log.exception}` : detail}`,
        );
    }
    if (!script) {
        return fail(
            "no_result",
            `Blender exited 0 on ${what} but render_frame.py printed no ${RESULT_PREFIX.trim()} line`,
        );
    }
    if (log.exception || log.firstError) {
        return fail("blender_error", `Blender reported an error on ${what}: ${log.exception ?? log.firstError}`);
    }
    const size = fileSize(outputPath);
    if (!size) {
        return fail("no_output", `Blender finished ${what} but ${outputPath} is ${size === 0 ? "empty" : "missing"}`);
    }
    return { ok: true, ...base };
}

function optionsProblem(options: RunBlenderOptions): string | undefined {
    if (!Number.isInteger(options.frame)) return `frame must be a whole number, got ${options.frame}`;
    if (!Number.isInteger(options.threads) || options.threads < 1)
        return `threads must be a whole number >= 1, got ${options.threads}`;
    if (!Number.isFinite(options.deadlineMs))
        return `deadlineMs must be a time in milliseconds, got ${options.deadlineMs}`;
    if (!options.scenePath) return "scenePath is empty";
    if (!options.outputPath) return "outputPath is empty";
    if (!options.tempDir) return "tempDir is empty";
    return undefined;
}

function fileSize(file: string): number | undefined {
    try {
        return fs.statSync(file).size;
    } catch {
        return undefined;
    }
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

function redactor(parent: NodeJS.ProcessEnv): (text: string) => string {
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

/** Splits both streams into lines, remembers what matters, and keeps a bounded tail of the combined log. */
class LogScanner {
    result: ScriptResult | undefined;
    firstError: string | undefined;
    exception: string | undefined;
    private inTraceback = false;
    private ring = Buffer.alloc(0);
    private partial: Record<"stdout" | "stderr", string> = { stdout: "", stderr: "" };

    constructor(private readonly redact: (text: string) => string) {}

    write(stream: "stdout" | "stderr", chunk: Buffer): void {
        const lines = (this.partial[stream] + chunk.toString("utf8")).split(/\r\n|\n|\r/);
        let rest = lines.pop() ?? "";
        for (const line of lines) this.line(stream, line);
        if (rest.length > MAX_LINE_BYTES) {
            this.line(stream, rest);
            rest = "";
        }
        this.partial[stream] = rest;
    }

    end(): void {
        for (const stream of ["stdout", "stderr"] as const) {
            if (this.partial[stream]) this.line(stream, this.partial[stream]);
            this.partial[stream] = "";
        }
    }

    tail(): string {
        // The cut may land inside a UTF-8 sequence.
        return this.ring.toString("utf8").replace(/^\uFFFD+/, "");
    }

    private line(stream: "stdout" | "stderr", raw: string): void {
        const line = this.redact(raw.length > MAX_LINE_BYTES ? raw.slice(0, MAX_LINE_BYTES) : raw);
        this.ring = Buffer.concat([this.ring, Buffer.from(`${line}\n`, "utf8")]);
        if (this.ring.length > LOG_TAIL_BYTES)
            this.ring = Buffer.from(this.ring.subarray(this.ring.length - LOG_TAIL_BYTES));

        if (stream === "stdout" && line.startsWith(RESULT_PREFIX)) {
            this.result = parseScriptResult(line.slice(RESULT_PREFIX.length)) ?? this.result;
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
