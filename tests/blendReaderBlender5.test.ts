// The .blend reader on a file Blender 5.2 saved (tests/fixtures/blender-5.2): its ID struct (408 bytes) is longer
// than the bytes the reader keeps of an object, which once hid every camera, so the job API refused every
// Blender 5.2 scene as having none. The host's Blender 3.4 cannot open the file: the expected summary is what
// Blender 5.2 reported for it (oracle.json, see SOURCE.md).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { inspectBlendFile } from "../functions/blend";

const FIXTURE = path.join(__dirname, "fixtures", "blender-5.2");
const LISTS = ["scenes", "images", "libraries", "movieClips", "volumes", "cacheFiles", "fonts"] as const;

describe(".blend reader on a file Blender 5.2 saved", function () {
    it("reports what Blender 5.2 reported for it, the camera with its 85-byte name included", async function () {
        const oracle = JSON.parse(fs.readFileSync(path.join(FIXTURE, "oracle.json"), "utf8"));
        const summary = await inspectBlendFile(path.join(FIXTURE, "scene.blend"));
        assert.deepStrictEqual(summary.header, { pointerSize: 8, littleEndian: true, fileFormatVersion: 1 });
        assert.strictEqual(summary.compression, "zstd");
        const expected: Record<string, unknown> = { version: oracle.version, activeScene: oracle.activeScene };
        const actual: Record<string, unknown> = { version: summary.version, activeScene: summary.activeScene };
        for (const list of LISTS) {
            expected[list] = (oracle[list] as Record<string, unknown>[]).map(({ library: _library, ...rest }) => rest);
            actual[list] = summary[list];
        }
        assert.deepStrictEqual(actual, expected);
        assert.strictEqual(summary.scenes[0].camera?.length, 85);
    });
});
