// A scene that references files in every way `render` must handle (see make_reference_scene.py), laid out as
//   <root>/shot/refs.blend, shot/textures/checker.png, shot/seq/frame_000{1,2,3}.png, shot/udim/wood.100{1,2}.png,
//   <root>/elsewhere/out.png (referenced as //../elsewhere/out.png) and <root>/abs.png (referenced by absolute path).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { makeScene, runBlenderScript } from "./scenes";

const SCRIPT = path.join(__dirname, "make_reference_scene.py");

export interface ReferenceScene {
    root: string;
    shotDir: string;
    blendPath: string;
    absolutePath: string;
}

/** Builds a fresh copy in its own temporary root (tests may delete files from it). */
export async function makeReferenceScene(): Promise<ReferenceScene> {
    const textured = await makeScene({ texture: "textures/checker.png" });
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "reference-scene-"));
    const shotDir = path.join(root, "shot");
    const checker = textured.texturePath!;
    const place = (relative: string) => {
        fs.mkdirSync(path.dirname(path.join(root, relative)), { recursive: true });
        fs.copyFileSync(checker, path.join(root, relative));
    };
    for (const relative of [
        "shot/textures/checker.png",
        "shot/seq/frame_0001.png",
        "shot/seq/frame_0002.png",
        "shot/seq/frame_0003.png",
        "shot/udim/wood.1001.png",
        "shot/udim/wood.1002.png",
        "elsewhere/out.png",
        "abs.png",
    ]) {
        place(relative);
    }
    const blendPath = path.join(shotDir, "refs.blend");
    const absolutePath = path.join(root, "abs.png");
    await runBlenderScript(SCRIPT, ["--out", blendPath, "--absolute", absolutePath], { blend: textured.blendPath });
    return { root, shotDir, blendPath, absolutePath };
}
