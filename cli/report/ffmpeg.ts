// ffmpeg, when this machine has it: the report's thumbnails of frames a browser cannot show (EXR, TIFF) and its MP4
// preview. `RENDER_FARM_FFMPEG` names the executable (default: ffmpeg on PATH); without one the report says what
// it left out instead.
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";

export interface Ffmpeg {
    executable: string;
    /** Encoders this build has, e.g. libx264 (an H.264 MP4 plays in browsers; MPEG-4 part 2 does not). */
    encoders: Set<string>;
}

/** How long one ffmpeg run may take before it is stopped: a preview of a very long job is skipped, not waited on. */
const RUN_TIMEOUT_MS = 10 * 60_000;

/** Runs ffmpeg; rejects with its last lines of stderr when it fails. */
export function runFfmpeg(executable: string, args: string[], timeoutMs = RUN_TIMEOUT_MS): Promise<string> {
    return new Promise((resolve, reject) => {
        execFile(
            executable,
            ["-hide_banner", "-nostdin", ...args],
            { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, killSignal: "SIGKILL" },
            (error, stdout, stderr) => {
                if (!error) return resolve(stdout);
                const tail = stderr.trim().split("\n").slice(-3).join(" ").trim();
                reject(new Error(tail || error.message));
            },
        );
    });
}

/** The ffmpeg to use, or undefined when there is none (not installed, or RENDER_FARM_FFMPEG names nothing runnable). */
export async function findFfmpeg(env: NodeJS.ProcessEnv = process.env): Promise<Ffmpeg | undefined> {
    const executable = env.RENDER_FARM_FFMPEG || "ffmpeg";
    try {
        const listing = await runFfmpeg(executable, ["-encoders"], 30_000);
        const encoders = new Set<string>();
        for (const line of listing.split("\n")) {
            const match = /^\s*V\S*\s+(\S+)/.exec(line);
            if (match) encoders.add(match[1]);
        }
        return { executable, encoders };
    } catch {
        return undefined;
    }
}

/**
 * Links `files` into `dir` as 000000.<ext>, 000001.<ext>, …: ffmpeg's image sequence input wants numbers without gaps,
 * and a job's frames may have them (every other frame, frames that failed). Returns the input pattern.
 */
export function linkAsSequence(files: readonly string[], dir: string, extension: string): string {
    fs.mkdirSync(dir, { recursive: true });
    for (const [index, file] of files.entries())
        fs.symlinkSync(path.resolve(file), path.join(dir, `${String(index).padStart(6, "0")}.${extension}`));
    return path.join(dir, `%06d.${extension}`);
}

/** Decoder options for a frame file: EXR holds linear light, shown with the sRGB curve as Blender's viewer does. */
export function inputOptions(extension: string): string[] {
    return extension === "exr" ? ["-apply_trc", "iec61966_2_1"] : [];
}
