// The contact sheet's thumbnails, each a data: URI. PNG and JPEG frames are inlined as they are (the browser scales
// them), unless a frame is large and ffmpeg can make a small copy; EXR and TIFF frames, which browsers cannot show,
// become PNG thumbnails made by ffmpeg, or a placeholder that says why when there is no ffmpeg.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { DownloadedFrame } from "../download";
import { oneLine } from "../errors";
import { Ffmpeg, inputOptions, linkAsSequence, runFfmpeg } from "./ffmpeg";
import { dataUri } from "./html";

/** Thumbnail width in pixels (frames narrower than this keep their size). */
export const THUMBNAIL_WIDTH = 192;
/** PNG and JPEG frames up to this size are inlined as they are; larger ones are shrunk by ffmpeg when it is here. */
const INLINE_AS_IS_BYTES = 128 * 1024;

export const BROWSER_IMAGE_TYPES: Record<string, string> = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg" };

export type Thumbnail =
    | { kind: "image"; uri: string; madeBy: "as-is" | "ffmpeg" }
    | { kind: "placeholder"; reason: string };

function extensionOf(file: string): string {
    return path.extname(file).slice(1).toLowerCase();
}

export async function makeThumbnails(
    frames: readonly DownloadedFrame[],
    ffmpeg: Ffmpeg | undefined,
): Promise<Map<number, Thumbnail>> {
    const thumbnails = new Map<number, Thumbnail>();
    const toShrink: DownloadedFrame[] = [];
    for (const frame of frames) {
        const mimeType = BROWSER_IMAGE_TYPES[extensionOf(frame.file)];
        const large = fs.statSync(frame.file).size > INLINE_AS_IS_BYTES;
        if (mimeType && !(large && ffmpeg))
            thumbnails.set(frame.frame, {
                kind: "image",
                uri: dataUri(mimeType, fs.readFileSync(frame.file)),
                madeBy: "as-is",
            });
        else if (ffmpeg) toShrink.push(frame);
        else
            thumbnails.set(frame.frame, {
                kind: "placeholder",
                reason: `${extensionOf(frame.file).toUpperCase()}: no ffmpeg here to make a thumbnail`,
            });
    }
    if (ffmpeg && toShrink.length > 0) {
        for (const [frame, thumbnail] of await shrinkWithFfmpeg(toShrink, ffmpeg)) thumbnails.set(frame, thumbnail);
    }
    return thumbnails;
}

/** One ffmpeg run per file type over all its frames; if that run fails, one run per frame, so a bad frame costs only its own thumbnail. */
async function shrinkWithFfmpeg(frames: readonly DownloadedFrame[], ffmpeg: Ffmpeg): Promise<Map<number, Thumbnail>> {
    const thumbnails = new Map<number, Thumbnail>();
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "render-farm-thumbnails-"));
    try {
        const byExtension = new Map<string, DownloadedFrame[]>();
        for (const frame of frames) {
            const extension = extensionOf(frame.file);
            byExtension.set(extension, [...(byExtension.get(extension) ?? []), frame]);
        }
        let batch = 0;
        const shrink = async (group: DownloadedFrame[], extension: string) => {
            const dir = path.join(work, String(batch++));
            const input = linkAsSequence(
                group.map((frame) => frame.file),
                path.join(dir, "in"),
                extension,
            );
            fs.mkdirSync(path.join(dir, "out"));
            await runFfmpeg(ffmpeg.executable, [
                "-loglevel",
                "error",
                ...inputOptions(extension),
                "-start_number",
                "0",
                "-i",
                input,
                "-vf",
                `scale=w='min(${THUMBNAIL_WIDTH},iw)':h=-2`,
                "-start_number",
                "0",
                path.join(dir, "out", "%06d.png"),
            ]);
            group.forEach((frame, index) => {
                const file = path.join(dir, "out", `${String(index).padStart(6, "0")}.png`);
                thumbnails.set(frame.frame, {
                    kind: "image",
                    uri: dataUri("image/png", fs.readFileSync(file)),
                    madeBy: "ffmpeg",
                });
            });
        };
        for (const [extension, group] of byExtension) {
            try {
                await shrink(group, extension);
            } catch {
                for (const frame of group) {
                    try {
                        await shrink([frame], extension);
                    } catch (error) {
                        thumbnails.set(frame.frame, {
                            kind: "placeholder",
                            reason: `ffmpeg could not read it: ${oneLine(error)}`,
                        });
                    }
                }
            }
        }
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
    return thumbnails;
}
