// What a renderer's Blender is doing, seen from outside its process (Linux /proc): a sticky Blender lives between
// frames, so "a Blender runs" does not mean "a frame renders". A frame renders while its work dir exists
// (<workDir>/frames/<frame>, functions/renderer/consumer.ts), and Blender's command line names the work dir.
import * as fs from "fs";
import * as path from "path";
import { processesWorkingIn } from "../../local/processes";
import { waitFor } from "./farmClient";

/** A process's command line, as its arguments. */
export function commandLine(pid: number): string[] {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
}

/** The frame the Blender `pid` renders now (its renderer's frame work dir exists), or undefined when it is idle. */
export function renderingFrame(pid: number): number | undefined {
    let args: string[];
    try {
        args = commandLine(pid);
    } catch {
        return undefined;
    }
    const at = args.indexOf("--work-dir");
    if (at < 0) return undefined;
    let frames: string[];
    try {
        frames = fs.readdirSync(path.join(args[at + 1], "frames"));
    } catch {
        return undefined;
    }
    return frames.length === 1 && /^\d+$/.test(frames[0]) ? Number(frames[0]) : undefined;
}

/** Whether a Blender working in `dir` renders a frame now. */
export function renderingIn(dir: string): boolean {
    return processesWorkingIn(dir).some((pid) => renderingFrame(pid) !== undefined);
}

/** A Blender working in `dir` that has been rendering the same frame for at least `forMs`: mid-frame, past its start. */
export async function blenderRenderingIn(
    dir: string,
    forMs: number,
    timeoutMs: number,
): Promise<{ pid: number; frame: number }> {
    const firstSeen = new Map<string, number>();
    return waitFor(
        `Blender rendering in ${dir}`,
        timeoutMs,
        () => {
            for (const pid of processesWorkingIn(dir)) {
                const frame = renderingFrame(pid);
                if (frame === undefined) continue;
                const key = `${pid}/${frame}`;
                if (!firstSeen.has(key)) firstSeen.set(key, Date.now());
                if (Date.now() - firstSeen.get(key)! >= forMs) return { pid, frame };
            }
            return undefined;
        },
        100,
    );
}

/** A Blender stopped with SIGSTOP in the middle of a frame; `resume()` lets it go on (SIGCONT). */
export interface PausedFrame {
    pid: number;
    frame: number;
    resume(): void;
}

/** Sends `name` to `pid`; false if it has exited meanwhile. */
function signal(pid: number, name: NodeJS.Signals): boolean {
    try {
        process.kill(pid, name);
        return true;
    } catch {
        return false;
    }
}

/** The work dir of `frame` of the renderer whose Blender is `pid` (the renderer removes it after the frame). */
export function frameDirOf(pid: number, frame: number): string | undefined {
    let args: string[];
    try {
        args = commandLine(pid);
    } catch {
        return undefined;
    }
    const at = args.indexOf("--work-dir");
    return at < 0 ? undefined : path.join(args[at + 1], "frames", String(frame));
}

/** Whether Blender `pid` is rendering `frame` and has not written its output yet (only its temp dir is there). */
function midFrame(pid: number, frame: number): boolean {
    const frameDir = frameDirOf(pid, frame);
    try {
        return frameDir !== undefined && fs.readdirSync(frameDir).every((entry) => entry === "blender-temp");
    } catch {
        return false;
    }
}

/**
 * Waits for a Blender working in `dir` to render a frame, and stops it (SIGSTOP) before it wrote the frame's output:
 * the frame is then provably mid-render, and stays so (its renderer cannot finish it) until `resume()`. A Blender
 * caught after its output was written is let go, and the wait goes on.
 */
export async function pauseMidFrame(dir: string, timeoutMs: number): Promise<PausedFrame> {
    return waitFor(
        `a Blender in ${dir} to pause mid-frame`,
        timeoutMs,
        () => {
            for (const pid of processesWorkingIn(dir)) {
                const frame = renderingFrame(pid);
                if (frame === undefined || !signal(pid, "SIGSTOP")) continue;
                let paused = false;
                try {
                    paused = renderingFrame(pid) === frame && midFrame(pid, frame);
                } finally {
                    if (!paused) signal(pid, "SIGCONT");
                }
                if (paused) return { pid, frame, resume: () => void signal(pid, "SIGCONT") };
            }
            return undefined;
        },
        50,
    );
}
