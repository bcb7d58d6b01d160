// The report's MP4 preview: the downloaded frames in order, at 24 frames a second, scaled to at most 640 pixels wide,
// as H.264 (what browsers play) when this ffmpeg has libx264, else MPEG-4 part 2. Only PNG and JPEG frames: EXR and
// TIFF would need a colour decision the report does not make for a preview.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { DownloadedFrame } from "../download";
import { oneLine } from "../errors";
import { Ffmpeg, linkAsSequence, runFfmpeg } from "./ffmpeg";
import { dataUri } from "./html";
import { BROWSER_IMAGE_TYPES } from "./thumbnails";

export const PREVIEW_FPS = 24;
const PREVIEW_MAX_WIDTH = 640;

export type PreviewVideo =
    | { kind: "video"; uri: string; codec: string; frames: number; fps: number; bytes: number }
    | { kind: "skipped"; reason: string };

export async function makePreviewVideo(
    frames: readonly DownloadedFrame[],
    ffmpeg: Ffmpeg | undefined,
): Promise<PreviewVideo> {
    if (frames.length === 0) return { kind: "skipped", reason: "no frames were downloaded" };
    const extensions = new Set(frames.map((frame) => path.extname(frame.file).slice(1).toLowerCase()));
    const extension = [...extensions][0];
    if (extensions.size > 1 || !BROWSER_IMAGE_TYPES[extension])
        return {
            kind: "skipped",
            reason: `the frames are ${[...extensions].map((ext) => ext.toUpperCase()).join(", ")}; a preview is made from PNG or JPEG frames only`,
        };
    if (!ffmpeg)
        return { kind: "skipped", reason: "no ffmpeg on this machine (install it, or set RENDER_FARM_FFMPEG)" };
    const h264 = ffmpeg.encoders.has("libx264");
    const codec = h264 ? ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"] : ["-c:v", "mpeg4", "-q:v", "4"];
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "render-farm-preview-"));
    try {
        const input = linkAsSequence(
            frames.map((frame) => frame.file),
            path.join(work, "in"),
            extension,
        );
        const output = path.join(work, "preview.mp4");
        await runFfmpeg(ffmpeg.executable, [
            "-loglevel",
            "error",
            "-framerate",
            String(PREVIEW_FPS),
            "-start_number",
            "0",
            "-i",
            input,
            // Even sizes, as yuv420p needs; never enlarged.
            "-vf",
            `scale=w='trunc(min(${PREVIEW_MAX_WIDTH},iw)/2)*2':h=-2,format=yuv420p`,
            ...codec,
            "-movflags",
            "+faststart",
            output,
        ]);
        const bytes = fs.readFileSync(output);
        return {
            kind: "video",
            uri: dataUri("video/mp4", bytes),
            codec: h264 ? "H.264" : "MPEG-4 part 2 (this ffmpeg has no libx264; browsers may not play it)",
            frames: frames.length,
            fps: PREVIEW_FPS,
            bytes: bytes.length,
        };
    } catch (error) {
        return { kind: "skipped", reason: `ffmpeg could not make it: ${oneLine(error)}` };
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}
