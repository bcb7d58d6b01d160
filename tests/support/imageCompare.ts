// Two images' pixels compared as Blender decodes them (tests/fixtures/compare_images.py): for EXR and TIFF, which the
// tests' own PNG decoder does not read, and independent of the stitcher's OpenImageIO.
import * as path from "path";
import { runBlenderScript } from "./scenes";

export interface ImageComparison {
    sameShape: boolean;
    differingSamples?: number;
    maxDifference?: number;
}

export async function compareImages(fileA: string, fileB: string): Promise<ImageComparison> {
    const script = path.join(__dirname, "..", "fixtures", "compare_images.py");
    const { stdout } = await runBlenderScript(script, [fileA, fileB]);
    const line = stdout.split("\n").find((text) => text.startsWith("COMPARE_IMAGES "));
    if (!line) throw new Error(`compare_images.py printed no result:\n${stdout}`);
    const result = JSON.parse(line.slice("COMPARE_IMAGES ".length));
    const sameShape =
        JSON.stringify(result.size[0]) === JSON.stringify(result.size[1]) && result.maxDifference !== undefined;
    return { sameShape, differingSamples: result.differingPixels, maxDifference: result.maxDifference };
}
