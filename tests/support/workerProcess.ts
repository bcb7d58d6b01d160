// `render-farm worker --json` as a child process: ready when it prints its JSON line on stdout. Its stderr
// lines are kept with the time each arrived, so tests can tell how far apart a frame's attempts were.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { processesWorkingIn } from "../../local/processes";
import { frameDirOf, renderingFrame } from "./blenderProcesses";
import { waitFor } from "./farmClient";

const ROOT = path.join(__dirname, "..", "..");
const RENDER_FARM = path.join(ROOT, "cli", "render-farm.js");

export interface WorkerReady {
    pid: number;
    workers: number;
    workDir: string;
    awsEndpoint: string;
    apiUrl: string;
}

export interface LogLine {
    at: number;
    text: string;
}

export interface WorkerProcess {
    child: ChildProcess;
    ready: WorkerReady;
    /** Every complete line it wrote to stderr so far. */
    lines(): LogLine[];
    stderr(): string;
    /** Everything it wrote to stdout so far: the ready line, then what the renderers log (console.log). */
    stdout(): string;
    exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `render-farm worker <args> --json` with this (Node 22) node, so the pid is the worker's own; `env` adds to
 * this process's environment.
 */
export async function startWorker(
    args: string[],
    readyTimeoutMs = 60_000,
    env: Record<string, string> = {},
): Promise<WorkerProcess> {
    const child = spawn(process.execPath, [RENDER_FARM, "worker", ...args, "--json"], {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, NODE_NO_WARNINGS: "1", ...env },
    });
    let stdout = "";
    let partial = "";
    let stderr = "";
    const lines: LogLine[] = [];
    child.stderr!.on("data", (chunk: Buffer) => {
        const text = chunk.toString("utf8");
        stderr += text;
        const parts = (partial + text).split("\n");
        partial = parts.pop() ?? "";
        const at = Date.now();
        for (const line of parts) lines.push({ at, text: line });
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on("exit", (code, signal) => resolve({ code, signal })),
    );
    const ready = await new Promise<WorkerReady>((resolve, reject) => {
        const timer = setTimeout(
            () =>
                reject(
                    new Error(
                        `worker ${args.join(" ")} printed nothing within ${readyTimeoutMs} ms; stderr:\n${stderr}`,
                    ),
                ),
            readyTimeoutMs,
        );
        child.stdout!.on("data", (chunk: Buffer) => {
            stdout += chunk.toString("utf8");
            if (!stdout.includes("\n")) return;
            clearTimeout(timer);
            try {
                resolve(JSON.parse(stdout.split("\n")[0]));
            } catch {
                reject(new Error(`worker printed no JSON line but: ${stdout}`));
            }
        });
        void exited.then(({ code, signal }) => {
            clearTimeout(timer);
            reject(
                new Error(
                    `worker ${args.join(" ")} exited (${code ?? signal}) before it was ready; stderr:\n${stderr}`,
                ),
            );
        });
    });
    return { child, ready, lines: () => [...lines], stderr: () => stderr, stdout: () => stdout, exited };
}

/** SIGKILLs it: no cleanup, no release of the frame it holds. */
export async function killWorker(worker: WorkerProcess): Promise<void> {
    if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill("SIGKILL");
    await worker.exited;
}

/** Stops it with SIGTERM if it is still running; for after() hooks. */
export async function stopWorker(worker: WorkerProcess | undefined): Promise<void> {
    if (!worker || worker.child.exitCode !== null || worker.child.signalCode !== null) return;
    worker.child.kill("SIGTERM");
    const timer = setTimeout(() => worker.child.kill("SIGKILL"), 20_000);
    await worker.exited;
    clearTimeout(timer);
}

/** Frames a worker's log reports done, as "<jobId>/<frame>", once per line (a frame rendered twice counts twice). */
export function framesDone(lines: LogLine[], jobId?: string): string[] {
    const done: string[] = [];
    for (const { text } of lines) {
        const match = /^frame (\d+) of job ([a-z0-9-]+) \(worker \d+, [\d.]+ s\): done$/.exec(text);
        if (match && (jobId === undefined || match[2] === jobId)) done.push(`${match[2]}/${match[1]}`);
    }
    return done;
}

/**
 * Waits for `worker` to render a frame and freezes it (SIGSTOP) while it holds that frame's message: its renderer
 * removes the frame's work dir before it records the frame and deletes the message, so a work dir still there once
 * the worker is frozen means the SIGKILL that follows catches the frame unfinished. The frame, or undefined if the
 * worker held none in `timeoutMs`.
 */
export async function freezeHoldingFrame(worker: WorkerProcess, timeoutMs: number): Promise<number | undefined> {
    return waitFor(
        `worker ${worker.ready.pid} to hold a frame`,
        timeoutMs,
        () => {
            for (const pid of processesWorkingIn(worker.ready.workDir)) {
                const frame = renderingFrame(pid);
                const frameDir = frame === undefined ? undefined : frameDirOf(pid, frame);
                if (frameDir === undefined) continue;
                worker.child.kill("SIGSTOP");
                if (fs.existsSync(frameDir)) return frame;
                worker.child.kill("SIGCONT");
            }
            return undefined;
        },
        20,
    ).catch(() => undefined);
}
