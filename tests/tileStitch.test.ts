// One frame rendered as tiles: each tile is a full-size Cycles render with a border and no crop, made
// by the renderer's own Blender (BlenderProcess with render_frame.py), and oiiotool stitches them. The stitched frame
// must be bit-identical to the whole frame's render, judged by Blender's own image decoders
// (tests/fixtures/compare_images.py), not by oiiotool. What cannot be split exactly is refused as tiles_not_exact.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { FrameRequest, RenderedTile, TileRequest } from "../functions/renderer/blender";
import { BlenderProcess } from "../functions/renderer/blenderProcess";
import { DEFAULT_RENDER_LIMITS } from "../functions/renderer/settings";
import { StitchTile, stitchTiles } from "../functions/renderer/tileStitch";
import { FORMAT_EXTENSIONS, Format, RenderSettings } from "../functions/shared/contract";
import { isFarmError } from "../functions/shared/errors";
import { BLENDER, run, runBlenderScript } from "./support/scenes";

const FIXTURES = path.join(__dirname, "fixtures");
/** Every lossy OpenEXR codec Blender offers, at each depth it offers it (B44 and B44A store half floats only). */
const LOSSY_EXR = [
    ["DWAA", "16"],
    ["DWAA", "32"],
    ["DWAB", "16"],
    ["DWAB", "32"],
    ["B44", "16"],
    ["B44A", "16"],
    ["PXR24", "16"],
    ["PXR24", "32"],
] as const;
const FRAME = 5;
/** The grid for 7 tiles of 97x61 pixels: a row of 4 over a row of 3, boundaries at round(k * size / parts). */
const SEVEN_OF_97X61 = [
    [0, 0, 24, 31],
    [24, 0, 25, 31],
    [49, 0, 24, 31],
    [73, 0, 24, 31],
    [0, 31, 32, 30],
    [32, 31, 33, 30],
    [65, 31, 32, 30],
];

interface Comparison {
    a: string;
    b: string;
    size: [number, number][];
    maxDifference?: number;
    differingPixels?: number;
}

/** Compares pairs of images with Blender's decoders: one Blender for all of them. */
async function compare(pairs: [string, string][]): Promise<Comparison[]> {
    const { stdout } = await runBlenderScript(path.join(FIXTURES, "compare_images.py"), pairs.flat());
    const results = stdout
        .split("\n")
        .filter((line) => line.startsWith("COMPARE_IMAGES "))
        .map((line) => JSON.parse(line.slice("COMPARE_IMAGES ".length)) as Comparison);
    assert.strictEqual(results.length, pairs.length, stdout);
    return results;
}

function assertIdentical(comparison: Comparison): void {
    assert.deepStrictEqual(comparison.size[0], comparison.size[1], `${comparison.a} vs ${comparison.b}`);
    assert.deepStrictEqual(
        { maxDifference: comparison.maxDifference, differingPixels: comparison.differingPixels },
        { maxDifference: 0, differingPixels: 0 },
        `${comparison.b} differs from ${comparison.a}`,
    );
}

describe("tiles: one frame rendered in regions by the renderer's Blender and stitched with oiiotool", function () {
    this.timeout(300_000);
    let work: string;
    let count = 0;
    const scenes: Record<string, string> = {};
    let blender: BlenderProcess;

    before(async function () {
        work = fs.mkdtempSync(path.join(os.tmpdir(), "tile-stitch-"));
        // Motion blur and a wide pixel filter: Cycles samples both per pixel, so tiles keep them. Transparent film: the
        // partly transparent edges oiiotool would change if it premultiplied.
        const variants: Record<string, string[]> = {
            textured: ["--motion-blur", "--filter-width", "3", "--transparent"],
            // JPEG has no alpha: compared with a PNG of an opaque frame.
            opaque: ["--motion-blur"],
            half: ["--resolution", "194x122", "--percentage", "50"],
            compositor: ["--compositor"],
            denoised: ["--denoise"],
            freestyle: ["--freestyle"],
            // Adaptive sampling as Blender's factory settings have it (noise threshold 0.01, automatic minimum).
            adaptive64: ["--adaptive", "--samples", "64", "--resolution", "80x48"],
            adaptive128: ["--adaptive", "--samples", "128", "--resolution", "80x48"],
            adaptive256: ["--adaptive", "--samples", "256", "--resolution", "80x48"],
            // Cycles' own tiles of 32 px split the 80x48 frame: each adapts its sampling on its own.
            adaptiveCyclesTiles: [
                "--adaptive",
                "--samples",
                "128",
                "--resolution",
                "80x48",
                "--cycles-tile-size",
                "32",
            ],
            cyclesTiles: ["--samples", "16", "--resolution", "80x48", "--cycles-tile-size", "32"],
            guiding: ["--guiding"],
            ...Object.fromEntries(
                LOSSY_EXR.map(([codec, depth]) => [
                    `exr-${codec}-${depth}`,
                    ["--exr-codec", codec, "--exr-depth", depth, "--samples", "8"],
                ]),
            ),
        };
        await Promise.all(
            Object.entries(variants).map(async ([name, args]) => {
                scenes[name] = path.join(work, name, "scene.blend");
                await runBlenderScript(path.join(FIXTURES, "make_tiles_scene.py"), ["--out", scenes[name], ...args]);
            }),
        );
        blender = new BlenderProcess({ workDir: path.join(work, "renderer") });
    });

    after(async function () {
        await blender?.stop();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    function request(
        scene: string,
        format: Format,
        name: string,
        tile?: TileRequest,
        settings: Partial<RenderSettings> = {},
    ): FrameRequest {
        const dir = path.join(work, `out-${++count}`);
        return {
            scenePath: scene,
            sceneVersion: "v1",
            frame: FRAME,
            outputPath: path.join(dir, `${name}.${FORMAT_EXTENSIONS[format]}`),
            settings: { format, ...settings },
            limits: DEFAULT_RENDER_LIMITS,
            threads: 2,
            tempDir: path.join(dir, "blender-temp"),
            deadlineMs: Date.now() + 120_000,
            tile,
        };
    }

    async function renderWhole(scene: string, format: Format): Promise<string> {
        const frameRequest = request(scene, format, "whole");
        const result = await blender.render(frameRequest);
        assert.ok(result.ok, `${JSON.stringify(result.error)}\n${result.logTail}`);
        assert.strictEqual(result.tile, undefined);
        return frameRequest.outputPath;
    }

    async function renderTiles(scene: string, format: Format, of: number): Promise<StitchTile[]> {
        const tiles: StitchTile[] = [];
        for (let index = 0; index < of; index++) {
            const tileRequest = request(scene, format, `tile-${of}-${index}`, { index, of });
            const result = await blender.render(tileRequest);
            assert.ok(result.ok, `tile ${index} of ${of}: ${JSON.stringify(result.error)}\n${result.logTail}`);
            assert.ok(result.tile, `tile ${index} of ${of} came back without its region`);
            tiles.push({ path: tileRequest.outputPath, region: result.tile });
        }
        return tiles;
    }

    /** Stitches as the renderer does: encoded as tile 0's result says (a JPEG, a lossy EXR codec). */
    async function stitched(tiles: StitchTile[], format: Format): Promise<string> {
        const outputPath = path.join(work, `out-${++count}`, `stitched.${FORMAT_EXTENSIONS[format]}`);
        fs.mkdirSync(path.dirname(outputPath), { recursive: true });
        const { encode } = tiles[0].region as RenderedTile;
        await stitchTiles({ tiles, outputPath, format, encode: encode?.format === format ? encode : undefined });
        // Nothing but the frame is left beside it: no lossless intermediate, no encoder's temp dir.
        assert.deepStrictEqual(fs.readdirSync(path.dirname(outputPath)), [path.basename(outputPath)]);
        return outputPath;
    }

    for (const format of ["PNG", "OPEN_EXR", "TIFF"] as const) {
        it(`${format}: a textured, animated, motion-blurred frame as 2, 4 and 7 tiles stitches bit-identical to the whole frame`, async function () {
            const whole = await renderWhole(scenes.textured, format);
            const pairs: [string, string][] = [];
            let sevenTiles: StitchTile[] = [];
            for (const of of [2, 4, 7]) {
                const tiles = await renderTiles(scenes.textured, format, of);
                if (of === 7) sevenTiles = tiles;
                pairs.push([whole, await stitched(tiles, format)]);
            }
            assert.deepStrictEqual(
                sevenTiles.map(({ region }) => [region.x, region.y, region.width, region.height]),
                SEVEN_OF_97X61,
            );
            // The same Blender renders the whole frame again: the tiles' border is not left on the loaded scene.
            const wholeAgain = await renderWhole(scenes.textured, format);
            const results = await compare([
                ...pairs,
                [whole, wholeAgain],
                // A tile alone is not the frame: the comparison does see differences.
                [whole, sevenTiles[5].path],
            ]);
            for (const result of results.slice(0, -1)) assertIdentical(result);
            const tileAlone = results[results.length - 1];
            // Outside its region a tile is empty (transparent): thousands of the frame's pixels differ.
            assert.ok((tileAlone.differingPixels ?? 0) > 1000, JSON.stringify(tileAlone));
        });
    }

    it("resolution percentage 50: tiles are computed in final pixels and stitch bit-identical", async function () {
        const whole = await renderWhole(scenes.half, "PNG");
        const tiles = await renderTiles(scenes.half, "PNG", 4);
        assert.deepStrictEqual(
            tiles.map(({ region }) => [region.frameWidth, region.frameHeight]),
            Array(4).fill([97, 61]),
        );
        const [result] = await compare([[whole, await stitched(tiles, "PNG")]]);
        assertIdentical(result);
    });

    it("JPEG: tiles come as lossless 8-bit PNG with the scene's quality, and Blender encodes the frame once: bit-identical to its own JPEG of the whole frame", async function () {
        const wholePng = await renderWhole(scenes.opaque, "PNG");
        const wholeJpeg = await renderWhole(scenes.opaque, "JPEG");
        const tiles = await renderTiles(scenes.opaque, "JPEG", 4);
        for (const { path: tilePath, region } of tiles) {
            const rendered = region as RenderedTile;
            assert.strictEqual(rendered.format, "PNG");
            assert.deepStrictEqual(rendered.encode, { format: "JPEG", quality: 83, colorMode: "RGB" });
            assert.ok(fs.readFileSync(tilePath).subarray(1, 4).equals(Buffer.from("PNG")), `${tilePath} is no PNG`);
        }
        const jpeg = await stitched(tiles, "JPEG");
        assert.ok(
            fs
                .readFileSync(jpeg)
                .subarray(0, 3)
                .equals(Buffer.from([0xff, 0xd8, 0xff])),
            `${jpeg} is no JPEG`,
        );
        const [lossless, encoded] = await compare([
            [wholePng, await stitched(tiles, "PNG")],
            [wholeJpeg, jpeg],
        ]);
        assertIdentical(lossless);
        assertIdentical(encoded);
    });

    for (const samples of [64, 128, 256]) {
        it(`adaptive sampling at its factory settings, ${samples} samples: 2, 4 and 7 tiles stitch bit-identical to the whole frame`, async function () {
            const scene = scenes[`adaptive${samples}`];
            const whole = await renderWhole(scene, "OPEN_EXR");
            const pairs: [string, string][] = [];
            for (const of of [2, 4, 7])
                pairs.push([whole, await stitched(await renderTiles(scene, "OPEN_EXR", of), "OPEN_EXR")]);
            for (const result of await compare(pairs)) assertIdentical(result);
        });
    }

    it("adaptive sampling with Cycles' own tiling of the frame: refused, naming both settings; without adaptive sampling, exact", async function () {
        const message = await refusal(request(scenes.adaptiveCyclesTiles, "PNG", "t", { index: 0, of: 2 }));
        assert.match(message, /adaptive sampling .*Use Tiling.*Noise Threshold/);
        const whole = await renderWhole(scenes.cyclesTiles, "OPEN_EXR");
        const [result] = await compare([
            [whole, await stitched(await renderTiles(scenes.cyclesTiles, "OPEN_EXR", 4), "OPEN_EXR")],
        ]);
        assertIdentical(result);
    });

    it("path guiding, which learns from the whole render: refused", async function () {
        assert.match(await refusal(request(scenes.guiding, "PNG", "t", { index: 1, of: 2 })), /Path Guiding/);
    });

    for (const [codec, depth] of LOSSY_EXR) {
        it(`OpenEXR ${codec} (${depth}-bit): tiles are stored losslessly and the frame is encoded once, bit-identical to the whole frame`, async function () {
            const scene = scenes[`exr-${codec}-${depth}`];
            const whole = await renderWhole(scene, "OPEN_EXR");
            const tiles = await renderTiles(scene, "OPEN_EXR", 4);
            for (const { path: tilePath, region } of tiles) {
                assert.deepStrictEqual((region as RenderedTile).encode, {
                    format: "OPEN_EXR",
                    quality: 83,
                    exrCodec: codec,
                    colorDepth: depth,
                });
                assert.match((await run("oiiotool", ["--info", "-v", tilePath])).stdout, /compression: "zip"/);
            }
            const frame = await stitched(tiles, "OPEN_EXR");
            const info = (await run("oiiotool", ["--info", "-v", frame])).stdout;
            assert.match(info, new RegExp(`compression: "${codec.toLowerCase()}`), info);
            assert.match(info, new RegExp(`, ${depth === "16" ? "half" : "float"} openexr`), info);
            const [result] = await compare([[whole, frame]]);
            assertIdentical(result);
        });
    }

    async function refusal(frameRequest: FrameRequest): Promise<string> {
        const result = await blender.render(frameRequest);
        assert.strictEqual(result.ok, false, `rendered: ${result.logTail}`);
        assert.strictEqual(result.error?.code, "tiles_not_exact", JSON.stringify(result.error));
        assert.ok(fs.existsSync(frameRequest.scenePath));
        return result.error.message;
    }

    it("refuses what would not be exact, before rendering, saying why and what to change", async function () {
        const compositor = await refusal(request(scenes.compositor, "PNG", "t", { index: 0, of: 2 }));
        assert.match(compositor, /compositor .*Compositing/);
        const eevee = await refusal(request(scenes.textured, "PNG", "t", { index: 1, of: 4 }, { engine: "EEVEE" }));
        assert.match(eevee, /engine EEVEE .*Cycles/);
        const freestyle = await refusal(request(scenes.freestyle, "PNG", "t", { index: 0, of: 4 }));
        assert.match(freestyle, /Freestyle/);
        const tooMany = await refusal(
            request(scenes.textured, "PNG", "t", { index: 0, of: 64 }, { resolution: { x: 8, y: 6 } }),
        );
        assert.match(tooMany, /8x6 pixels, too few for 64 tiles .*fewer tiles/);
    });

    it("denoising: refused where this Blender denoises, turned off (as for whole frames) where it cannot", async function () {
        // render_frame.py turns Cycles denoising off when the build has no OpenImageDenoise (Debian's 3.4 has none).
        const { stdout } = await run(BLENDER, [
            "-b",
            "--factory-startup",
            "-noaudio",
            "--python-expr",
            "import bpy, _cycles; print('OIDN', bool(getattr(bpy.app.build_options, 'openimagedenoise', getattr(_cycles, 'with_openimagedenoise', False))))",
        ]);
        const denoises = /OIDN True/.test(stdout);
        const frameRequest = request(scenes.denoised, "PNG", "t", { index: 1, of: 2 });
        if (denoises) {
            assert.match(await refusal(frameRequest), /denoises each render .*Denoise/);
        } else {
            const result = await blender.render(frameRequest);
            assert.ok(result.ok, JSON.stringify(result.error));
            assert.deepStrictEqual(result.tile && [result.tile.x, result.tile.width], [49, 48]);
        }
    });

    describe("stitchTiles refuses what does not make one frame (stitch_failed)", function () {
        let tiles: StitchTile[];

        before(async function () {
            tiles = await renderTiles(scenes.textured, "PNG", 4);
        });

        async function stitchFails(given: StitchTile[], pattern: RegExp): Promise<void> {
            const outputPath = path.join(work, `out-${++count}`, "stitched.png");
            fs.mkdirSync(path.dirname(outputPath), { recursive: true });
            await assert.rejects(stitchTiles({ tiles: given, outputPath, format: "PNG" }), (error: unknown) => {
                assert.ok(isFarmError(error, "stitch_failed"), String(error));
                assert.match((error as Error).message, pattern);
                return true;
            });
            assert.deepStrictEqual(fs.readdirSync(path.dirname(outputPath)), [], "a failed stitch left a file");
        }

        it("a missing tile", async function () {
            await stitchFails(tiles.slice(0, 3), /tile 3 of 4 missing/);
        });

        it("a duplicated tile", async function () {
            await stitchFails([...tiles, tiles[2]], /tile 2 is given twice/);
        });

        it("a tile image of another size than its frame", async function () {
            const texture = path.join(path.dirname(scenes.textured), "textures", "noise.png");
            await stitchFails(
                [tiles[0], tiles[1], { ...tiles[2], path: texture }, tiles[3]],
                /64x64 pixels, not its frame's 97x61/,
            );
        });

        it("a JPEG whose encoder cannot run: Blender named, nothing left beside the frame", async function () {
            const outputPath = path.join(work, `out-${++count}`, "stitched.jpg");
            fs.mkdirSync(path.dirname(outputPath), { recursive: true });
            const encode = { format: "JPEG" as const, quality: 90, colorMode: "RGB" as const };
            await assert.rejects(
                stitchTiles({ tiles, outputPath, format: "JPEG", encode, blenderPath: path.join(work, "no-blender") }),
                (error: unknown) => {
                    assert.ok(isFarmError(error, "stitch_failed"), String(error));
                    assert.match((error as Error).message, /Blender could not encode .*is not installed .*no-blender/);
                    return true;
                },
            );
            assert.deepStrictEqual(fs.readdirSync(path.dirname(outputPath)), [], "a failed encode left a file");
        });

        it("a tile oiiotool cannot read, with oiiotool's own words", async function () {
            const garbage = path.join(work, "garbage.png");
            fs.writeFileSync(garbage, "not an image");
            await stitchFails(
                [tiles[0], { ...tiles[1], path: garbage }, tiles[2], tiles[3]],
                /oiiotool could not read the tiles: .*garbage\.png/s,
            );
        });
    });
});
