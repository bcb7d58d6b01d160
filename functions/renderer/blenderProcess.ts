// One Blender per renderer, kept between frames ("sticky"): render_frame.py --serve renders the frames it is sent
// on stdin and keeps the scene loaded while they share it, so a frame pays for Blender's start and the scene's load
// only when the job, the scene's version or the settings change. A frame that fails, times out or crashes ends that
// Blender, as does memory grown past a bound: the next frame starts a fresh one. Two bounds on its memory: a hard one
// watched while a frame renders (Blender is killed at it and the frame fails with out_of_memory, before the renderer
// itself runs out), and a softer one checked after a frame (Blender is restarted, so that what a scene left behind
// does not burden the next). Blender never outlives the process that started it: end of stdin ends it, and
// render_frame.py has the kernel kill it when its parent dies.
import { ChildProcessWithoutNullStreams, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    BlenderResult,
    blenderEnvironment,
    FrameRequest,
    LineSplitter,
    LogScanner,
    RESULT_PREFIX,
    RunBlenderOptions,
    redactor,
    renderedTile,
    requestProblem,
} from "./blender";
import { formatBytes, processTree, residentTreeBytes, watchMemory } from "./memoryWatch";

/** setTimeout fires at once for delays above this. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long Blender may take to exit after its stdin closed or it failed a frame, before SIGKILL. */
const EXIT_GRACE_MS = 5000;
/** Lines Blender writes while no frame runs (its start-up) go to the next frame's log, up to this many. */
const IDLE_LINES_KEPT = 200;

export interface BlenderProcessOptions {
    /** Default: $BLENDER_PATH, else `blender` on the PATH. */
    blenderPath?: string;
    /** Default: render_frame.py next to this module. */
    scriptPath?: string;
    /** The renderer's work dir: Blender's own temp dir is `<workDir>/blender-temp`, and its command line names it. */
    workDir: string;
    /** Soft bound: Blender is ended after a frame that leaves its resident memory above this; default: no bound. */
    maxResidentBytes?: number;
    /**
     * Hard bound: Blender (with any process it started) is killed as soon as its resident memory passes this while
     * a frame renders, and the frame fails with out_of_memory; default: no bound.
     */
    memoryLimitBytes?: number;
}

export interface BlenderExit {
    exitCode: number | null;
    signal: string | null;
}

export interface BlenderStats {
    /** Blender processes started. */
    starts: number;
    /** Scenes loaded, over all of them. */
    sceneLoads: number;
    /** Frames rendered to the end. */
    frames: number;
    /** Blenders ended after a frame because their memory grew past the soft bound. */
    memoryRestarts: number;
}

interface Running {
    child: ChildProcessWithoutNullStreams;
    /** When it was spawned, ms since the epoch. */
    spawnedAt: number;
    /** Resolves when Blender has exited and its output is read to the end. */
    closed: Promise<void>;
    exit?: BlenderExit & { spawnError?: Error };
    /** What the scene Blender holds was loaded for (see FrameRequest.sceneVersion). */
    loadedKey?: string;
    /** The log of the frame in flight; lines outside a frame wait in idleLines. */
    log?: LogScanner;
    idleLines: ["stdout" | "stderr", string][];
    /** Called on every line of the frame in flight. */
    wake?: () => void;
}

/** Blender's command line for a serving Blender: no scene (requests name it), no auto-run scripts. */
export function blenderServeArgs(scriptPath: string, workDir: string): string[] {
    // Absolute paths, so a script or dir name can never be read as a Blender option.
    return [
        "-b",
        "--factory-startup",
        "-noaudio",
        "--disable-autoexec",
        "--python-exit-code",
        "2",
        "-P",
        path.resolve(scriptPath),
        "--",
        "--serve",
        "--work-dir",
        path.resolve(workDir),
    ];
}

export class BlenderProcess {
    readonly stats: BlenderStats = { starts: 0, sceneLoads: 0, frames: 0, memoryRestarts: 0 };
    private running: Running | undefined;
    private lastExit: BlenderExit | undefined;
    private busy = false;
    private readonly blenderPath: string;
    private readonly scriptPath: string;
    private readonly workDir: string;

    constructor(private readonly options: BlenderProcessOptions) {
        this.blenderPath = options.blenderPath ?? process.env.BLENDER_PATH ?? "blender";
        this.scriptPath = options.scriptPath ?? path.join(__dirname, "render_frame.py");
        this.workDir = path.resolve(options.workDir);
    }

    /** The running Blender's pid, if one runs. */
    get pid(): number | undefined {
        return this.running && !this.running.exit ? this.running.child.pid : undefined;
    }

    /** Renders one frame; never throws for the frame's failure. One frame at a time. */
    async render(request: FrameRequest): Promise<BlenderResult> {
        if (this.busy) throw new Error("a Blender renders one frame at a time");
        this.busy = true;
        try {
            return await this.renderFrame(request);
        } finally {
            this.busy = false;
        }
    }

    /** Ends Blender: stdin closed, SIGKILL if it has not exited after a grace period. Returns how it exited. */
    async stop(): Promise<BlenderExit | undefined> {
        const running = this.running;
        if (!running) return this.lastExit;
        this.running = undefined;
        if (!running.exit) {
            running.child.stdin.end();
            const timer = setTimeout(() => running.child.kill("SIGKILL"), EXIT_GRACE_MS);
            await running.closed;
            clearTimeout(timer);
        }
        this.lastExit = running.exit;
        fs.rmSync(this.tempBase(), { recursive: true, force: true });
        return running.exit;
    }

    /** SIGKILLs Blender at once (the frame in flight, if any, fails as killed). */
    kill(): void {
        if (this.running && !this.running.exit) this.running.child.kill("SIGKILL");
    }

    private tempBase(): string {
        return path.join(this.workDir, "blender-temp");
    }

    private start(): Running {
        fs.rmSync(this.tempBase(), { recursive: true, force: true });
        fs.mkdirSync(this.tempBase(), { recursive: true });
        const child = spawn(this.blenderPath, blenderServeArgs(this.scriptPath, this.workDir), {
            env: blenderEnvironment(process.env, this.tempBase()),
            stdio: ["pipe", "pipe", "pipe"],
        });
        this.stats.starts++;
        const running: Running = { child, spawnedAt: Date.now(), idleLines: [], closed: Promise.resolve() };
        const onLine = (stream: "stdout" | "stderr", line: string) => {
            if (running.log) {
                running.log.line(stream, line);
                running.wake?.();
            } else {
                running.idleLines.push([stream, line]);
                if (running.idleLines.length > IDLE_LINES_KEPT) running.idleLines.shift();
            }
        };
        const stdout = new LineSplitter((line) => onLine("stdout", line));
        const stderr = new LineSplitter((line) => onLine("stderr", line));
        child.stdout.on("data", (chunk: Buffer) => stdout.write(chunk));
        child.stderr.on("data", (chunk: Buffer) => stderr.write(chunk));
        // EPIPE when Blender is gone: its exit says why.
        child.stdin.on("error", () => undefined);
        // An idle Blender does not keep this process alive; a frame in flight does, through its deadline timer.
        child.unref();
        for (const stream of [child.stdin, child.stdout, child.stderr])
            (stream as unknown as { unref?: () => void }).unref?.();
        running.closed = new Promise((resolve) => {
            const settle = (exit: BlenderExit & { spawnError?: Error }) => {
                if (running.exit) return;
                stdout.end();
                stderr.end();
                running.exit = exit;
                resolve();
            };
            child.on("error", (error) => settle({ exitCode: null, signal: null, spawnError: error }));
            child.on("close", (exitCode, signal) => settle({ exitCode, signal }));
        });
        this.running = running;
        return running;
    }

    private async renderFrame(request: FrameRequest): Promise<BlenderResult> {
        const failed = (code: string, message: string): BlenderResult => ({
            ok: false,
            exitCode: null,
            signal: null,
            wallMs: 0,
            logTail: "",
            error: { code, message },
        });
        const problem = requestProblem(request);
        if (problem) return failed("bad_argument", problem);
        const scenePath = path.resolve(request.scenePath);
        const outputPath = path.resolve(request.outputPath);
        const tempDir = path.resolve(request.tempDir);
        const what = `frame ${request.frame} of ${scenePath}`;
        if (!fs.existsSync(scenePath)) return failed("scene_missing", `scene file ${scenePath} does not exist`);
        if (request.deadlineMs <= Date.now())
            return failed("timeout", `the deadline for ${what} passed before Blender started`);
        fs.mkdirSync(path.dirname(outputPath), { recursive: true });
        // A stale file from an earlier attempt must not pass for this render's output.
        fs.rmSync(outputPath, { force: true });
        fs.rmSync(tempDir, { recursive: true, force: true });
        fs.mkdirSync(tempDir, { recursive: true });

        const started = Date.now();
        const warm = this.running && !this.running.exit ? this.running : undefined;
        const running = warm ?? this.start();
        const id = crypto.randomBytes(8).toString("hex");
        // Settings and limits are part of it: a scene another job changed is never rendered for this one.
        const key =
            request.sceneVersion === undefined
                ? undefined
                : JSON.stringify([scenePath, request.sceneVersion, request.settings, request.limits, request.threads]);
        const log = new LogScanner(id, redactor(process.env));
        for (const [stream, line] of running.idleLines.splice(0)) log.line(stream, line);
        running.log = log;
        const { settings } = request;
        running.child.stdin.write(
            `${JSON.stringify({
                id,
                scene: scenePath,
                reload: key === undefined || key !== running.loadedKey,
                frame: request.frame,
                output: outputPath,
                tempDir,
                format: settings.format,
                threads: request.threads,
                engine: settings.engine,
                samples: settings.samples,
                resolution: settings.resolution,
                limits: request.limits,
                ...(request.tile ? { tile: { index: request.tile.index, of: request.tile.of } } : {}),
            })}\n`,
        );
        let outcome: "answered" | "exited" | "timeout";
        let overLimit: number | undefined;
        const stopWatch = this.watchFrameMemory(running, (peak) => (overLimit = peak));
        try {
            outcome = await this.waitForFrame(running, log, request.deadlineMs);
        } finally {
            stopWatch();
            running.log = undefined;
            // A Blender killed mid-frame leaves its tile buffers (about 1 GB per pass at 8K) behind.
            fs.rmSync(tempDir, { recursive: true, force: true });
        }
        const wallMs = Date.now() - started;
        const script = log.result;
        const base = {
            exitCode: running.exit?.exitCode ?? null,
            signal: running.exit?.signal ?? null,
            wallMs,
            logTail: log.tail(),
            ...(script?.renderSeconds !== undefined ? { renderSeconds: script.renderSeconds } : {}),
            ...(script?.engine !== undefined ? { engine: script.engine } : {}),
            ...(script?.blenderVersion !== undefined ? { blenderVersion: script.blenderVersion } : {}),
            ...(script?.missingFiles !== undefined ? { missingFiles: script.missingFiles } : {}),
            ...(script?.sceneLoaded !== undefined ? { sceneLoaded: script.sceneLoaded } : {}),
            ...(typeof script?.loadSeconds === "number" ? { loadSeconds: script.loadSeconds } : {}),
            ...(typeof script?.sceneKept === "boolean" ? { sceneKept: script.sceneKept } : {}),
            ...(!warm && typeof script?.receivedAt === "number"
                ? { blenderStartSeconds: Math.max(0, script.receivedAt * 1000 - running.spawnedAt) / 1000 }
                : {}),
        };
        const fail = async (code: string, message: string): Promise<BlenderResult> => {
            // Whatever state the failure left Blender in, the next frame gets a fresh one.
            await this.stop();
            return { ok: false, ...base, error: { code, message } };
        };
        const detail = log.firstError ? `: ${log.firstError}` : "";

        if (overLimit !== undefined && outcome !== "answered")
            return fail(
                "out_of_memory",
                `Blender used ${formatBytes(overLimit)} of memory rendering ${what}, past the ${formatBytes(this.options.memoryLimitBytes!)} it may use, and was stopped; render at a lower resolution or with fewer samples, or give the renderer more memory`,
            );
        if (outcome === "timeout")
            return fail(
                "timeout",
                `Blender did not finish ${what} before the deadline and was killed after ${wallMs} ms`,
            );
        if (outcome === "exited") {
            const exit = running.exit!;
            if (exit.spawnError) {
                const code =
                    (exit.spawnError as NodeJS.ErrnoException).code === "ENOENT" ? "blender_not_found" : "spawn_failed";
                return fail(code, `could not start Blender (${this.blenderPath}): ${exit.spawnError.message}`);
            }
            if (exit.signal) {
                const code = exit.signal === "SIGKILL" ? "killed" : "crashed";
                const hint = exit.signal === "SIGKILL" ? " (out of memory?)" : "";
                return fail(code, `Blender was ended by ${exit.signal}${hint} while rendering ${what}${detail}`);
            }
            if (script && !script.ok)
                return fail(script.code ?? "render_failed", script.message ?? `render_frame.py failed on ${what}`);
            if (exit.exitCode !== 0) {
                const code = log.exception ? "script_error" : "blender_failed";
                return fail(
                    code,
                    `Blender exited with status ${exit.exitCode} on ${what}${log.exception ? `: ${log.exception}` : detail}`,
                );
            }
            return fail(
                "no_result",
                `Blender exited 0 on ${what} but render_frame.py printed no ${RESULT_PREFIX.trim()} line`,
            );
        }
        if (log.exception || log.firstError)
            return fail("blender_error", `Blender reported an error on ${what}: ${log.exception ?? log.firstError}`);
        const size = fileSize(outputPath);
        if (!size)
            return fail(
                "no_output",
                `Blender finished ${what} but ${outputPath} is ${size === 0 ? "empty" : "missing"}`,
            );

        const tile = request.tile ? renderedTile(script?.tile, request.tile) : undefined;
        if (request.tile && !tile)
            return fail(
                "no_result",
                `Blender finished tile ${request.tile.index} of ${request.tile.of} of ${what} but render_frame.py named no valid region for it: ${JSON.stringify(script?.tile)}`,
            );

        this.stats.frames++;
        if (script?.sceneLoaded) this.stats.sceneLoads++;
        running.loadedKey = key;
        const resident = residentTreeBytes(running.child.pid);
        if (
            this.options.maxResidentBytes !== undefined &&
            resident !== undefined &&
            resident > this.options.maxResidentBytes
        ) {
            this.stats.memoryRestarts++;
            await this.stop();
        }
        // Answered as the watch killed it: the frame is whole, and the next one gets a fresh Blender.
        if (overLimit !== undefined) await this.stop();
        return { ok: true, ...base, ...(tile ? { tile } : {}) };
    }

    /** Kills Blender and its children once they pass the hard bound mid-frame, telling `exceeded` the peak. */
    private watchFrameMemory(running: Running, exceeded: (peakBytes: number) => void): () => void {
        const limit = this.options.memoryLimitBytes;
        const pid = running.child.pid;
        if (limit === undefined || pid === undefined) return () => undefined;
        return watchMemory(pid, limit, (peak) => {
            exceeded(peak);
            for (const member of processTree(pid)) {
                try {
                    process.kill(member, "SIGKILL");
                } catch {
                    // Gone already.
                }
            }
        });
    }

    /** Until the frame's result and end marker arrive, Blender exits, or the deadline kills it. */
    private waitForFrame(
        running: Running,
        log: LogScanner,
        deadlineMs: number,
    ): Promise<"answered" | "exited" | "timeout"> {
        return new Promise((resolve) => {
            let timedOut = false;
            let grace: NodeJS.Timeout | undefined;
            const finish = (outcome: "answered" | "exited" | "timeout") => {
                clearTimeout(deadline);
                clearTimeout(grace);
                running.wake = undefined;
                resolve(outcome);
            };
            const deadline = setTimeout(
                () => {
                    // A Blender that answered just now finished in time.
                    if (running.exit || (log.result?.ok && log.ended)) return;
                    timedOut = true;
                    running.child.kill("SIGKILL");
                },
                Math.min(Math.max(0, deadlineMs - Date.now()), MAX_TIMER_MS),
            );
            running.wake = () => {
                if (!log.result || !log.ended) return;
                if (log.result.ok) finish("answered");
                // render_frame.py exits after a failed frame; one that does not is ended.
                else grace ??= setTimeout(() => running.child.kill("SIGKILL"), EXIT_GRACE_MS);
            };
            void running.closed.then(() => finish(timedOut ? "timeout" : "exited"));
            // Lines that arrived before the request was written (start-up failures) may already have answered.
            running.wake();
        });
    }
}

/** Renders one frame with a Blender of its own, ended with the frame: `blender -b -f` through render_frame.py. */
export async function runBlender(options: RunBlenderOptions): Promise<BlenderResult> {
    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "render-frame-"));
    const blender = new BlenderProcess({ blenderPath: options.blenderPath, scriptPath: options.scriptPath, workDir });
    try {
        const result = await blender.render(options);
        const exit = await blender.stop();
        return result.exitCode === null && result.signal === null && exit
            ? { ...result, exitCode: exit.exitCode, signal: exit.signal }
            : result;
    } finally {
        await blender.stop();
        fs.rmSync(workDir, { recursive: true, force: true });
    }
}

function fileSize(file: string): number | undefined {
    try {
        return fs.statSync(file).size;
    } catch {
        return undefined;
    }
}
