// Fixture .blend files made by Blender scripts in tests/fixtures, made once per version of the script and cached
// under the OS temp dir: the .blend reader's (make_blend_fixtures.py, shared by the reader's and the preflight's
// tests) and the scenes that try to render past the farm's limits (make_limit_scenes.py).
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { runBlenderScript } from "./scenes";

const FIXTURES = path.join(__dirname, "..", "fixtures");

/** Runs `script` (in tests/fixtures) with `--out <dir>` once per version of it; returns that dir. */
async function scriptFixtures(script: string, cacheName: string): Promise<string> {
    const scriptPath = path.join(FIXTURES, script);
    const key = crypto.createHash("sha256").update(fs.readFileSync(scriptPath)).digest("hex").slice(0, 16);
    const dir = path.join(os.tmpdir(), cacheName, key);
    if (fs.existsSync(path.join(dir, ".complete"))) return path.join(dir, "scenes");
    // Built aside and renamed into place, so concurrent test runs never see half the fixtures.
    const building = fs.mkdtempSync(path.join(os.tmpdir(), `${cacheName}-`));
    await runBlenderScript(scriptPath, ["--out", path.join(building, "scenes")], { timeoutMs: 300_000 });
    fs.writeFileSync(path.join(building, ".complete"), "");
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    try {
        fs.renameSync(building, dir);
    } catch (error) {
        if (!fs.existsSync(path.join(dir, ".complete"))) throw error;
    }
    return path.join(dir, "scenes");
}

export function blendFixtures(): Promise<string> {
    return scriptFixtures("make_blend_fixtures.py", "render-farm-blend-fixtures");
}

/** tests/fixtures/make_limit_scenes.py's files: window-scene, compositor-scene, strip-scene, oversized, layer-samples. */
export function limitScenes(): Promise<string> {
    return scriptFixtures("make_limit_scenes.py", "render-farm-limit-scenes");
}
