// Scenes that link libraries whose own data needs files (tests/fixtures/make_library_fixtures.py), made once per
// version of the script and cached under the OS temp dir; shared by the job API's and the CLI's tests.
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { runBlenderScript } from "./scenes";

const FIXTURE_SCRIPT = path.join(__dirname, "..", "fixtures", "make_library_fixtures.py");

/** The folder holding linked.blend, cycle.blend, chain.blend, absolute-lib.blend and their lib/ (see the script). */
export async function libraryFixtures(): Promise<string> {
    const key = crypto.createHash("sha256").update(fs.readFileSync(FIXTURE_SCRIPT)).digest("hex").slice(0, 16);
    const dir = path.join(os.tmpdir(), "render-farm-library-fixtures", key);
    if (fs.existsSync(path.join(dir, ".complete"))) return path.join(dir, "scenes");
    // Built aside and renamed into place, so concurrent test runs never see half the fixtures. The absolute path
    // absolute-lib.blend's library stores is inside the building folder: it is meant to be missing on the farm.
    const building = fs.mkdtempSync(path.join(os.tmpdir(), "render-farm-library-fixtures-"));
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

/** Every file under `dir`, as "/"-separated paths relative to it. */
export function filesUnder(dir: string): string[] {
    const files: string[] = [];
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) files.push(...filesUnder(full).map((file) => `${entry.name}/${file}`));
        else if (entry.isFile()) files.push(entry.name);
    }
    return files.sort();
}
