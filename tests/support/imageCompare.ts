// Two images' pixels compared as Blender decodes them (compare_images.py): for EXR and TIFF, which the tests' own PNG
// decoder does not read.
import * as path from "path";
import { BLENDER, run } from "./scenes";

export interface ImageComparison {
    width: number;
    height: number;
    channels: number;
    sameShape: boolean;
    differingSamples?: number;
    maxDifference?: number;
}

export async function compareImages(fileA: string, fileB: string): Promise<ImageComparison> {
    const { stdout } = await run(BLENDER, [
        "-b",
        "--factory-startup",
        "-noaudio",
        "--python-exit-code",
        "2",
        "-P",
        path.join(__dirname, "compare_images.py"),
        "--",
        fileA,
        fileB,
    ]);
    const line = stdout.split("\n").find((text) => text.startsWith("COMPARE_IMAGES "));
    if (!line) throw new Error(`compare_images.py printed no result:\n${stdout}`);
    return JSON.parse(line.slice("COMPARE_IMAGES ".length));
}
