// tileExactnessProblems: which scenes the job API refuses to split into tiles, and why. On scenes Blender wrote
// (make_blend_fixtures.py's exactness.blend, one scene per setting, read by the .blend reader), on summaries that
// isolate one setting each, and as the job API ships it: serialized by Pulumi and run in a process of its own.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { BlendScene, inspectBlendFile } from "../functions/blend";
import { tileExactnessProblems } from "../functions/jobApi/tileExactness";
import { blendFixtures } from "./support/blendFixtures";

/** A Cycles scene that splits exactly; each test turns one setting on. */
const EXACT: BlendScene = {
    name: "Shot",
    frameStart: 1,
    frameEnd: 1,
    frameStep: 1,
    resolutionX: 640,
    resolutionY: 480,
    resolutionPercentage: 100,
    engine: "CYCLES",
    fileFormat: "PNG",
    camera: "Camera",
    compositing: false,
    border: false,
    sequencer: false,
    cyclesDenoising: false,
    // Blender's factory settings: adaptive sampling on, Cycles' own tiles of 2048 px (larger than this frame).
    cyclesAdaptiveSampling: true,
    cyclesAutoTile: true,
    cyclesTileSize: 2048,
    cyclesGuiding: false,
    motionBlur: false,
};

describe("tile exactness (tileExactnessProblems)", function () {
    it("passes a Cycles scene without compositor, denoising, sequencer or border, motion blur included", function () {
        assert.deepStrictEqual(tileExactnessProblems(EXACT, "CYCLES"), []);
        assert.deepStrictEqual(tileExactnessProblems({ ...EXACT, motionBlur: true }, "CYCLES"), []);
    });

    it("refuses each setting that cannot split exactly with one reason that names it and says what to change", function () {
        const cases: [Partial<BlendScene>, string, RegExp][] = [
            [{ compositing: true }, "CYCLES", /compositor.*Post Processing > Compositing/],
            [{ cyclesDenoising: true }, "CYCLES", /denoises.*Sampling > Render > Denoise/],
            [{ sequencer: true }, "CYCLES", /Sequencer.*Post Processing > Sequencer/],
            [{ border: true }, "CYCLES", /Render Region/],
            [{ cyclesGuiding: true }, "CYCLES", /path guiding.*Sampling > Path Guiding/],
            [{ cyclesTileSize: 256 }, "CYCLES", /samples adaptively .*640x480 .*256 px.*Use Tiling.*Noise Threshold/],
            [{ resolutionX: 4200, resolutionPercentage: 50 }, "CYCLES", /2100x240 .*Use Tiling/],
            [{}, "BLENDER_EEVEE", /EEVEE.*whole frame.*Cycles/],
            [{}, "BLENDER_EEVEE_NEXT", /EEVEE.*Cycles/],
            [{}, "BLENDER_WORKBENCH", /Workbench.*Cycles/],
        ];
        for (const [change, engine, reason] of cases) {
            const problems = tileExactnessProblems({ ...EXACT, ...change }, engine);
            assert.strictEqual(problems.length, 1, `${JSON.stringify(change)} ${engine}: ${problems.join(" | ")}`);
            assert.match(problems[0], reason);
        }
        const all = tileExactnessProblems(
            { ...EXACT, compositing: true, cyclesDenoising: true, sequencer: true, border: true },
            "CYCLES",
        );
        assert.strictEqual(all.length, 4, all.join(" | "));
        assert.ok(
            all.every((problem) => problem.includes('scene "Shot"')),
            "each reason names the scene",
        );
    });

    it("passes adaptive sampling on a frame Cycles renders in one piece, or with Use Tiling or adaptive sampling off", function () {
        for (const change of [
            { resolutionX: 2048 },
            { resolutionX: 4096 },
            { cyclesTileSize: 256, cyclesAutoTile: false },
            { cyclesTileSize: 256, cyclesAdaptiveSampling: false },
        ]) {
            const problems = tileExactnessProblems({ ...EXACT, ...change }, "CYCLES");
            const expected = change.resolutionX === 4096 ? 1 : 0;
            assert.strictEqual(problems.length, expected, `${JSON.stringify(change)}: ${problems.join(" | ")}`);
        }
    });

    it("leaves what the file cannot tell (null) to the renderer's check in Blender", function () {
        const unknown = {
            ...EXACT,
            compositing: null,
            cyclesDenoising: null,
            sequencer: null,
            border: null,
            cyclesAdaptiveSampling: null,
            cyclesAutoTile: null,
            cyclesTileSize: null,
            cyclesGuiding: null,
        };
        assert.deepStrictEqual(tileExactnessProblems({ ...unknown, resolutionX: 8192 }, "CYCLES"), []);
    });

    it("judges the scenes Blender wrote, one per setting", async function () {
        const summary = await inspectBlendFile(path.join(await blendFixtures(), "exactness.blend"));
        const verdicts = Object.fromEntries(
            summary.scenes.map((scene) => [scene.name, tileExactnessProblems(scene, "CYCLES").length]),
        );
        // A new scene renders 1920x1080: in one piece with Cycles' default 2048 px tiles, in several of 256 px.
        assert.deepStrictEqual(verdicts, {
            AdaptiveOff: 1,
            AdaptiveOn: 1,
            Border: 2, // and denoising, Cycles' default for a 3.x scene
            Compositor: 2,
            CompositorOff: 1,
            Defaults: 1,
            DenoiseOff: 0,
            DenoiseOn: 1,
            Guiding: 2,
            GuidingNoSurfaceNoVolume: 1,
            MotionBlur: 1,
            NodesUnused: 1,
            Sequencer: 2,
            SequencerOff: 1,
            SequencerSound: 1,
            TileSize256: 2,
            TilingOff: 1,
        });
    });

    it("survives Pulumi's closure serialization and runs in a process of its own", async function () {
        const serialized = await pulumi.runtime.serializeFunction(
            () => (scene: BlendScene, engine: string) => tileExactnessProblems(scene, engine),
            { isFactoryFunction: true },
        );
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tile-exactness-"));
        try {
            fs.writeFileSync(path.join(dir, "index.js"), serialized.text);
            const scene = { ...EXACT, compositing: true, cyclesDenoising: true };
            const script = `const m = require(${JSON.stringify(path.join(dir, "index.js"))}); process.stdout.write(JSON.stringify(m.${serialized.exportName}(${JSON.stringify(scene)}, "CYCLES")));`;
            const output = execFileSync(process.execPath, ["-e", script], { cwd: dir, encoding: "utf8" });
            assert.deepStrictEqual(JSON.parse(output), tileExactnessProblems(scene, "CYCLES"));
            assert.strictEqual(JSON.parse(output).length, 2);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
