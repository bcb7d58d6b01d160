// The last step of a tiled frame whose tiles were stored losslessly: Blender itself encodes the stitched image with
// the scene's settings (encode_frame.py), so the frame is the file Blender writes for the whole frame. Any other
// encoder differs: another JPEG library, or a DWA level Blender derives from the scene's quality.
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { FrameEncoding } from "../shared/contract";
import { farmError } from "../shared/errors";
import { blenderEnvironment, outputTail } from "./blender";

/** Blender's command line for encode_frame.py: no scene, no auto-run scripts, exit status 2 on a script error. */
export function encodeFrameArgs(scriptPath: string, input: string, output: string, encode: FrameEncoding): string[] {
    // Absolute paths, so that none can be read as an option.
    const files = ["--input", path.resolve(input), "--output", path.resolve(output)];
    const args = [...files, "--format", encode.format, "--quality", String(encode.quality)];
    if (encode.colorMode) args.push("--color-mode", encode.colorMode);
    if (encode.exrCodec) args.push("--exr-codec", encode.exrCodec);
    if (encode.colorDepth) args.push("--color-depth", encode.colorDepth);
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
        ...args,
    ];
}

/** Writes `input` (a lossless image) to exactly `output` as `encode` says, with Blender; throws stitch_failed. */
export async function encodeFrame(options: {
    input: string;
    output: string;
    encode: FrameEncoding;
    timeoutMs: number;
    /** Default: $BLENDER_PATH, else `blender` on the PATH. */
    blenderPath?: string;
    /** Default: encode_frame.py next to this module. */
    scriptPath?: string;
}): Promise<void> {
    const blenderPath = options.blenderPath ?? process.env.BLENDER_PATH ?? "blender";
    const scriptPath = options.scriptPath ?? path.join(__dirname, "encode_frame.py");
    // Blender's own temp files, removed with it: they never pile up in a warm renderer's /tmp.
    const tempDir = fs.mkdtempSync(path.join(path.dirname(path.resolve(options.output)), ".encode-"));
    const what = `encode the stitched frame as ${options.encode.exrCodec ?? options.encode.format}`;
    try {
        await new Promise<void>((resolve, reject) => {
            execFile(
                blenderPath,
                encodeFrameArgs(scriptPath, options.input, options.output, options.encode),
                {
                    env: blenderEnvironment(process.env, tempDir),
                    timeout: options.timeoutMs,
                    killSignal: "SIGKILL",
                    maxBuffer: 16 * 1024 * 1024,
                },
                (error, stdout, stderr) => {
                    if (!error && stdout.includes(`ENCODE_FRAME_OK ${path.resolve(options.output)}`)) return resolve();
                    const why = !error
                        ? "printed no ENCODE_FRAME_OK line"
                        : (error as NodeJS.ErrnoException).code === "ENOENT"
                          ? `is not installed (${blenderPath})`
                          : error.killed
                            ? `was killed after ${options.timeoutMs} ms`
                            : `failed (${error.message.split("\n")[0]})`;
                    reject(
                        farmError(
                            "stitch_failed",
                            `Blender could not ${what}: it ${why}: ${outputTail(`${stderr}${stdout}`)}`,
                        ),
                    );
                },
            );
        });
    } finally {
        fs.rmSync(tempDir, { recursive: true, force: true });
    }
}
