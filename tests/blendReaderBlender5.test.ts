// The .blend reader on files Blender 5.2 saved (tests/fixtures/blender-5.2): its ID struct (408 bytes) is longer
// than the bytes the reader keeps of an object, which once hid every camera, so the job API refused every
// Blender 5.2 scene as having none; and Blender 5 keeps the compositor as a node group and add-on settings
// (scene.cycles) in ID.system_properties. The host's Blender 3.4 cannot open these files: the expected summary
// is what Blender 5.2 reported for each (its *.oracle.json, see SOURCE.md).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { BlendSummary, inspectBlendFile } from "../functions/blend";

const FIXTURE = path.join(__dirname, "fixtures", "blender-5.2");
const LISTS = ["scenes", "images", "libraries", "movieClips", "volumes", "cacheFiles", "fonts"] as const;
const TILE_SETTINGS = [
    "compositing",
    "border",
    "sequencer",
    "cyclesDenoising",
    "cyclesAdaptiveSampling",
    "cyclesAutoTile",
    "cyclesGuiding",
    "motionBlur",
] as const;

/** The reader's summary and Blender 5.2's report on one file, as comparable objects (scenes by name). */
async function compared(blend: string, oracleFile: string) {
    const oracle = JSON.parse(fs.readFileSync(path.join(FIXTURE, oracleFile), "utf8"));
    const summary = await inspectBlendFile(path.join(FIXTURE, blend));
    const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    const expected: Record<string, unknown> = { version: oracle.version, activeScene: oracle.activeScene };
    const actual: Record<string, unknown> = { version: summary.version, activeScene: summary.activeScene };
    for (const list of LISTS) {
        expected[list] = (oracle[list] as { name: string; library?: unknown }[])
            .map(({ library: _library, ...rest }) => rest)
            .sort(byName);
        actual[list] = [...(summary[list] as { name: string }[])].sort(byName);
    }
    return { summary, actual, expected };
}

describe(".blend reader on files Blender 5.2 saved", function () {
    it("reports what Blender 5.2 reported for it, the camera with its 85-byte name included", async function () {
        const { summary, actual, expected } = await compared("scene.blend", "oracle.json");
        assert.deepStrictEqual(summary.header, { pointerSize: 8, littleEndian: true, fileFormatVersion: 1 });
        assert.strictEqual(summary.compression, "zstd");
        assert.deepStrictEqual(actual, expected);
        assert.strictEqual(summary.scenes[0].camera?.length, 85);
    });

    it("reads the settings that decide tile exactness as Blender 5.2 does: compositor node group, system properties, strips", async function () {
        const { summary, actual, expected } = await compared("exactness.blend", "exactness.oracle.json");
        assert.deepStrictEqual(actual, expected);
        // The comparison means something only if each setting is on in one scene and off in another.
        const scenes = summary.scenes as BlendSummary["scenes"];
        for (const setting of TILE_SETTINGS) {
            const values = new Set(scenes.map((scene) => scene[setting]));
            assert.deepStrictEqual([...values].sort(), [false, true], `${setting} is both on and off somewhere`);
        }
        const scene = (name: string) => scenes.find((candidate) => candidate.name === name)!;
        assert.strictEqual(scene("Compositor").compositing, true);
        assert.strictEqual(scene("CompositorOff").compositing, false);
        assert.strictEqual(scene("DenoiseOff").cyclesDenoising, false);
        assert.strictEqual(scene("Defaults").cyclesDenoising, true, "never set: Cycles' default since 3.0");
        assert.strictEqual(scene("Sequencer").sequencer, true);
        assert.strictEqual(scene("SequencerSound").sequencer, false, "a sound strip alone does not render");
    });
});
