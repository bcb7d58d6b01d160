// A scene that passes every check at submit time but whose frame 2 fails in Blender (see the .py).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { runBlenderScript } from "./scenes";

const SCRIPT = path.join(__dirname, "make_failing_frame_scene.py");

/** Path of a fresh .blend (in its own directory) whose frames 1 and 3 render and frame 2 fails. */
export async function makeFailingFrameScene(): Promise<string> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "failing-frame-"));
    const blendPath = path.join(dir, "scene.blend");
    await runBlenderScript(SCRIPT, ["--out", blendPath]);
    return blendPath;
}
