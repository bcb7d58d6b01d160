// The .blend reader's fixtures (tests/fixtures/make_blend_fixtures.py), made once per version of the script
// and cached under the OS temp dir; shared by the reader's and the preflight's tests.
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { runBlenderScript } from "./scenes";

const FIXTURE_SCRIPT = path.join(__dirname, "..", "fixtures", "make_blend_fixtures.py");

export async function blendFixtures(): Promise<string> {
    const key = crypto.createHash("sha256").update(fs.readFileSync(FIXTURE_SCRIPT)).digest("hex").slice(0, 16);
    const dir = path.join(os.tmpdir(), "render-farm-blend-fixtures", key);
    if (fs.existsSync(path.join(dir, ".complete"))) return path.join(dir, "scenes");
    // Built aside and renamed into place, so concurrent test runs never see half the fixtures.
    const building = fs.mkdtempSync(path.join(os.tmpdir(), "render-farm-blend-fixtures-"));
    await runBlenderScript(FIXTURE_SCRIPT, ["--out", path.join(building, "scenes")], { timeoutMs: 300_000 });
    fs.writeFileSync(path.join(building, ".complete"), "");
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    try {
        fs.renameSync(building, dir);
    } catch (error) {
        if (!fs.existsSync(path.join(dir, ".complete"))) throw error;
    }
    return path.join(dir, "scenes");
}
