// The Blender runner against the real Blender: no mocks. Scenes are tiny (64x48, 4 samples) to stay fast.
import * as assert from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BlenderResult, LOG_TAIL_BYTES, RunBlenderOptions } from "../functions/renderer/blender";
import { runBlender } from "../functions/renderer/blenderProcess";
import { DEFAULT_RENDER_LIMITS } from "../functions/renderer/settings";
import { FORMAT_EXTENSIONS, Format, RenderSettings } from "../functions/shared/contract";
import { LOADED_MACHINE_MARGIN_MS } from "./support/timing";
import {
    BLENDER,
    comparePngs,
    decodePng,
    distinctColors,
    makeScene,
    renderDirect,
    run,
    Scene,
    sniffImageType,
    CUBE_2016_SCENE,
} from "./support/scenes";

describe("runBlender with the real Blender", function () {
    this.timeout(180_000);
    let work: string;
    let textured: Scene;

    before(async () => {
        work = fs.mkdtempSync(path.join(os.tmpdir(), "render-farm-blender-test-"));
        textured = await makeScene({ texture: "textures/checker.png" });
    });

    after(() => fs.rmSync(work, { recursive: true, force: true }));

    function render(
        scenePath: string,
        frame: number,
        settings: RenderSettings,
        name: string,
        extra: Partial<RunBlenderOptions> = {},
    ): Promise<BlenderResult> {
        return runBlender({
            scenePath,
            frame,
            outputPath: path.join(work, name),
            settings,
            limits: DEFAULT_RENDER_LIMITS,
            threads: 2,
            tempDir: path.join(work, "blender-temp"),
            deadlineMs: Date.now() + 120_000,
            ...extra,
        });
    }

    function assertOk(result: BlenderResult): void {
        assert.ok(
            result.ok,
            `expected a successful render, got ${JSON.stringify(result.error)}\n--- log tail ---\n${result.logTail}`,
        );
        assert.strictEqual(result.error, undefined);
        assert.strictEqual(result.exitCode, 0);
        assert.strictEqual(result.signal, null);
    }

    it("renders frame 2 to exactly the output path, pixel-identical to `blender -b -f 2`", async () => {
        const output = path.join(work, "exact", "frame_0002.png");
        const result = await render(textured.blendPath, 2, { format: "PNG" }, "exact/frame_0002.png");
        assertOk(result);
        assert.strictEqual(result.engine, "CYCLES");
        assert.match(result.blenderVersion ?? "", /^\d+\.\d+\.\d+$/);
        assert.ok(
            result.renderSeconds !== undefined && result.renderSeconds > 0,
            `renderSeconds ${result.renderSeconds}`,
        );
        assert.ok(
            result.wallMs >= result.renderSeconds * 1000,
            `wallMs ${result.wallMs} < renderSeconds ${result.renderSeconds}`,
        );
        assert.deepStrictEqual(result.missingFiles, []);
        assert.deepStrictEqual(fs.readdirSync(path.dirname(output)), ["frame_0002.png"]);
        assert.match(result.logTail, /RENDER_FRAME_RESULT \{"ok": true/);
        assert.ok(
            Buffer.byteLength(result.logTail) <= LOG_TAIL_BYTES,
            `log tail is ${Buffer.byteLength(result.logTail)} bytes`,
        );

        const direct = await renderDirect(textured.blendPath, 2, path.join(work, "direct"));
        const comparison = comparePngs(output, direct);
        assert.deepStrictEqual(comparison, { sameShape: true, differingSamples: 0, maxDifference: 0 });
        const png = decodePng(output);
        assert.deepStrictEqual([png.width, png.height], [64, 48]);
        assert.ok(distinctColors(png) > 20, "a lit, textured scene has more than a handful of colors");
    });

    it("renders the frame it is asked for: frames 1 and 3 differ", async () => {
        const [first, third] = [
            await render(textured.blendPath, 1, { format: "PNG" }, "f1.png"),
            await render(textured.blendPath, 3, { format: "PNG" }, "f3.png"),
        ];
        assertOk(first);
        assertOk(third);
        const comparison = comparePngs(path.join(work, "f1.png"), path.join(work, "f3.png"));
        assert.ok(
            comparison.sameShape && comparison.differingSamples > 50,
            `frames 1 and 3 look alike: ${JSON.stringify(comparison)}`,
        );
    });

    it("finds a texture by its //relative path, and lists it as missing when it is absent", async () => {
        const bare = path.join(work, "bare");
        fs.mkdirSync(bare);
        fs.copyFileSync(textured.blendPath, path.join(bare, "scene.blend"));
        const withTexture = await render(textured.blendPath, 2, { format: "PNG" }, "with-texture.png");
        const withoutTexture = await render(
            path.join(bare, "scene.blend"),
            2,
            { format: "PNG" },
            "without-texture.png",
        );
        assertOk(withTexture);
        assertOk(withoutTexture);
        assert.deepStrictEqual(withTexture.missingFiles, []);
        assert.deepStrictEqual(withoutTexture.missingFiles, ["//textures/checker.png"]);
        const comparison = comparePngs(path.join(work, "with-texture.png"), path.join(work, "without-texture.png"));
        assert.ok(comparison.differingSamples > 100, `the texture made no difference: ${JSON.stringify(comparison)}`);
    });

    for (const engine of ["EEVEE", "WORKBENCH"] as const) {
        it(`renders with ${engine} headless`, async () => {
            const result = await render(textured.blendPath, 2, { engine, samples: 2, format: "PNG" }, `${engine}.png`);
            assertOk(result);
            assert.match(result.engine ?? "", engine === "EEVEE" ? /^BLENDER_EEVEE(_NEXT)?$/ : /^BLENDER_WORKBENCH$/);
            const png = decodePng(path.join(work, `${engine}.png`));
            assert.deepStrictEqual([png.width, png.height], [64, 48]);
            assert.ok(
                distinctColors(png) > 20,
                `${engine} rendered a nearly blank image (${distinctColors(png)} colors)`,
            );
        });
    }

    for (const format of ["JPEG", "OPEN_EXR", "TIFF"] as Format[]) {
        it(`writes ${format} when asked`, async () => {
            const name = `format.${FORMAT_EXTENSIONS[format]}`;
            assertOk(await render(textured.blendPath, 1, { format }, name));
            assert.strictEqual(sniffImageType(path.join(work, name)), format);
        });
    }

    it("applies resolution x/y/percentage overrides to the output's size", async () => {
        assertOk(
            await render(
                textured.blendPath,
                1,
                { format: "PNG", resolution: { x: 80, y: 60, percentage: 50 } },
                "res-all.png",
            ),
        );
        assertOk(
            await render(
                textured.blendPath,
                1,
                { format: "PNG", resolution: { percentage: 25 } },
                "res-percentage.png",
            ),
        );
        const all = decodePng(path.join(work, "res-all.png"));
        const percentage = decodePng(path.join(work, "res-percentage.png"));
        assert.deepStrictEqual([all.width, all.height], [40, 30]);
        assert.deepStrictEqual([percentage.width, percentage.height], [16, 12]);
    });

    it("refuses a resolution Blender would silently clamp, naming the field", async () => {
        const result = await render(textured.blendPath, 1, { format: "PNG", resolution: { x: 2 } }, "res-tiny.png");
        assert.strictEqual(result.ok, false);
        assert.strictEqual(result.error?.code, "bad_argument");
        assert.match(result.error?.message ?? "", /resolution\.x=2 is outside what Blender .* accepts/);
    });

    it("fails a scene without a camera with no_camera, a readable message and the log tail, leaving no stale output", async () => {
        const cameraless = await makeScene({ noCamera: true });
        const output = path.join(work, "no-camera.png");
        fs.writeFileSync(output, "left over from an earlier attempt");
        const result = await render(cameraless.blendPath, 1, { format: "PNG" }, "no-camera.png");
        assert.strictEqual(result.ok, false);
        assert.strictEqual(result.error?.code, "no_camera");
        assert.ok(result.error?.message.includes(cameraless.blendPath), result.error?.message);
        assert.match(result.error?.message ?? "", /has no active camera at frame 1/);
        assert.strictEqual(result.exitCode, 3);
        assert.match(result.logTail, /RENDER_FRAME_RESULT .*"no_camera"/);
        assert.ok(!fs.existsSync(output), "the stale output file is still there");
    });

    it("reports timeout without starting Blender when the deadline has passed", async () => {
        const result = await render(textured.blendPath, 1, { format: "PNG" }, "late.png", {
            deadlineMs: Date.now() - 1,
        });
        assert.strictEqual(result.ok, false);
        assert.strictEqual(result.error?.code, "timeout");
        assert.strictEqual(result.exitCode, null);
        assert.ok(!fs.existsSync(path.join(work, "late.png")));
    });

    it("kills Blender with SIGKILL at the deadline and reports timeout", async () => {
        const started = Date.now();
        // 100000 samples would take minutes; the deadline is 2.5 s away.
        const deadlineInMs = 2500;
        const result = await render(textured.blendPath, 1, { format: "PNG", samples: 100_000 }, "slow.png", {
            deadlineMs: started + deadlineInMs,
        });
        const elapsed = Date.now() - started;
        assert.strictEqual(result.ok, false, result.logTail);
        assert.strictEqual(result.error?.code, "timeout");
        assert.strictEqual(result.signal, "SIGKILL");
        // Not before the deadline; after it, by no more than a loaded machine takes to fire the timer and reap Blender.
        assert.ok(
            elapsed >= deadlineInMs - 100 && elapsed < deadlineInMs + LOADED_MACHINE_MARGIN_MS,
            `returned after ${elapsed} ms`,
        );
        assert.match(result.error?.message ?? "", /before the deadline/);
        assert.ok(!fs.existsSync(path.join(work, "slow.png")));
    });

    it("fails a corrupt .blend with a readable error naming the file", async () => {
        const corrupt = path.join(work, "corrupt.blend");
        fs.writeFileSync(corrupt, crypto.randomBytes(4096));
        const result = await render(corrupt, 1, { format: "PNG" }, "corrupt.png");
        assert.strictEqual(result.ok, false);
        assert.strictEqual(result.error?.code, "unreadable_scene");
        assert.ok(result.error?.message.includes(corrupt), result.error?.message);
        assert.notStrictEqual(result.exitCode, 0);
        assert.ok(result.logTail.length > 0);
    });

    it("renders frame 1 of a real 2016 file (cube-2016) at 10 %", async () => {
        const result = await render(
            CUBE_2016_SCENE,
            1,
            { format: "PNG", resolution: { percentage: 10 } },
            "cube-2016.png",
        );
        assertOk(result);
        const png = decodePng(path.join(work, "cube-2016.png"));
        assert.deepStrictEqual([png.width, png.height], [192, 108]);
        assert.ok(distinctColors(png) > 5, `cube-2016 rendered a blank image (${distinctColors(png)} colors)`);
    });

    it("does not run the scene's registered text block, which runs when auto-execution is on", async () => {
        const probed = await makeScene({ autoexecProbe: true });
        const marker = probed.markerPath as string;
        fs.rmSync(marker, { force: true });
        assertOk(await render(probed.blendPath, 1, { format: "PNG" }, "probe.png"));
        assert.ok(!fs.existsSync(marker), "the scene's registered text block ran during the render");
        // The probe itself works: with auto-execution on, loading the file runs it.
        await run(BLENDER, ["-b", probed.blendPath, "--factory-startup", "-noaudio", "--enable-autoexec"]);
        assert.ok(fs.existsSync(marker), "control failed: the probe did not run even with --enable-autoexec");
        fs.rmSync(marker, { force: true });
    });

    it("mutes the scene's compositor File Output nodes, so a scene writes nothing outside the frame", async () => {
        const writer = await makeScene({ fileOutput: true });
        const outside = writer.fileOutputDir as string;
        fs.rmSync(outside, { recursive: true, force: true });
        const result = await render(writer.blendPath, 1, { format: "PNG" }, "file-output.png");
        assertOk(result);
        assert.ok(
            !fs.existsSync(outside) || fs.readdirSync(outside).length === 0,
            `the scene wrote ${outside} during a farm render`,
        );
        assert.match(result.logTail, /"mutedFileOutputs": \["File Output"\]/);
        // The probe itself works: a plain `blender -f` writes into that directory.
        await renderDirect(writer.blendPath, 1, fs.mkdtempSync(path.join(work, "direct-file-output-")));
        assert.ok(
            fs.readdirSync(outside).length > 0,
            "control failed: the File Output node wrote nothing even in a plain render",
        );
        fs.rmSync(outside, { recursive: true, force: true });
    });

    it("keeps credentials out of Blender's environment and out of the log tail, and gives it a HOME", async () => {
        const secret = "wJalrXUtnFEMI-test-secret-K7MDENG";
        const leakFile = path.join(work, "leak.txt");
        fs.writeFileSync(leakFile, secret);
        const script = path.join(work, "env_probe.py");
        fs.writeFileSync(
            script,
            [
                "import json, os, sys",
                "request = json.loads(sys.stdin.readline())",
                "print('SECRET_IN_ENV=%r' % os.environ.get('AWS_SECRET_ACCESS_KEY'))",
                "print('HOME=%s' % os.environ.get('HOME'))",
                `print('LEAKED=' + open(${JSON.stringify(leakFile)}).read() + ' AKIAABCDEFGHIJKLMNOP')`,
                "open(request['output'], 'wb').write(b'x')",
                "sys.stdout.flush()",
                "sys.stderr.write('RENDER_FRAME_END %s\\n' % request['id'])",
                "sys.stderr.flush()",
                "print('RENDER_FRAME_RESULT ' + json.dumps({'ok': True, 'id': request['id']}))",
            ].join("\n"),
        );
        const saved = { secret: process.env.AWS_SECRET_ACCESS_KEY, home: process.env.HOME };
        process.env.AWS_SECRET_ACCESS_KEY = secret;
        delete process.env.HOME;
        try {
            const result = await render(textured.blendPath, 1, { format: "PNG" }, "env.png", { scriptPath: script });
            assertOk(result);
            assert.match(result.logTail, /SECRET_IN_ENV=None/);
            assert.ok(result.logTail.includes(`HOME=${os.tmpdir()}`), result.logTail);
            assert.match(result.logTail, /LEAKED=\[redacted\] \[redacted\]/);
            assert.ok(!result.logTail.includes(secret));
        } finally {
            if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
            else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
            if (saved.home !== undefined) process.env.HOME = saved.home;
        }
    });

    it("reports a missing Blender binary and bad options without rendering", async () => {
        const missing = await render(textured.blendPath, 1, { format: "PNG" }, "nobin.png", {
            blenderPath: path.join(work, "no-such-blender"),
        });
        assert.strictEqual(missing.error?.code, "blender_not_found");
        assert.ok(missing.error?.message.includes("no-such-blender"));
        const noThreads = await render(textured.blendPath, 1, { format: "PNG" }, "nothreads.png", { threads: 0 });
        assert.strictEqual(noThreads.error?.code, "bad_argument");
        assert.match(noThreads.error?.message ?? "", /threads/);
        const noScene = await render(path.join(work, "absent.blend"), 1, { format: "PNG" }, "absent.png");
        assert.strictEqual(noScene.error?.code, "scene_missing");
    });
});
