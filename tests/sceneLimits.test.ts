// Crafted scenes that try to render more than the farm allows (tests/fixtures/make_limit_scenes.py): a file whose
// stored scene is not the one Blender renders, compositor nodes and sequencer strips that render other scenes,
// and a scene's own resolution and samples past the limits with the preflight off. The job API's reader must name
// the scene Blender renders, and render_frame.py must refuse, on what actually renders, anything past the limits.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, PurgeQueueCommand } from "@aws-sdk/client-sqs";
import { inspectBlendFile } from "../functions/blend";
import { BlenderResult, RenderLimits } from "../functions/renderer/blender";
import { runBlender } from "../functions/renderer/blenderProcess";
import { createRendererHandler } from "../functions/renderer/consumer";
import { DEFAULT_RENDER_LIMITS } from "../functions/renderer/settings";
import { ENGINES, Engine, FrameRecord, frameRecordKey, JobLimits } from "../functions/shared/contract";
import { JobApiDeps } from "../functions/jobApi/settings";
import { submitJob } from "../functions/jobApi/submit";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { pollOnce } from "../local/eventSourcePoller";
import { limitScenes } from "./support/blendFixtures";
import { BLENDER, decodePng, run } from "./support/scenes";

const EVERY_ENGINE: Engine[] = [...ENGINES];

describe("scene limits: what Blender actually renders stays within the farm's limits", function () {
    this.timeout(300_000);
    let scenes: string;
    let work: string;

    before(async function () {
        scenes = await limitScenes();
        work = fs.mkdtempSync(path.join(os.tmpdir(), "scene-limits-"));
    });

    after(function () {
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    function scene(name: string): string {
        return path.join(scenes, `${name}.blend`);
    }

    function render(name: string, limits: Partial<RenderLimits>, output = `${name}.png`): Promise<BlenderResult> {
        return runBlender({
            scenePath: scene(name),
            frame: 1,
            outputPath: path.join(work, output),
            settings: { format: "PNG" },
            limits: { ...DEFAULT_RENDER_LIMITS, ...limits },
            threads: 2,
            tempDir: path.join(work, "blender-temp"),
            deadlineMs: Date.now() + 120_000,
        });
    }

    function assertRefused(result: BlenderResult, message: RegExp, output: string): void {
        assert.strictEqual(result.ok, false, `rendered past the limits\n${result.logTail}`);
        assert.strictEqual(result.error?.code, "limit_exceeded", JSON.stringify(result.error));
        assert.match(result.error?.message ?? "", message);
        assert.ok(!fs.existsSync(path.join(work, output)), "a refused frame left an image");
        assert.doesNotMatch(result.logTail, /\| Sample \d+\//, "Blender started rendering before the refusal");
    }

    /** The name of the scene `blender -b <file>` makes current, and the one Blender opens without the file's UI. */
    async function scenesBlenderOpens(file: string): Promise<{ withWindows: string; stored: string }> {
        const probe = path.join(work, "scene_probe.py");
        fs.writeFileSync(
            probe,
            [
                "import bpy",
                "print('WITH_WINDOWS=' + bpy.context.scene.name)",
                // Without the file's windows, Blender takes the stored current scene (FileGlobal.curscene).
                "bpy.ops.wm.open_mainfile(filepath=bpy.data.filepath, load_ui=False, use_scripts=False)",
                "print('STORED=' + bpy.context.scene.name)",
            ].join("\n"),
        );
        const { stdout } = await run(BLENDER, [
            "-b",
            file,
            "--factory-startup",
            "-noaudio",
            "--disable-autoexec",
            "--python-exit-code",
            "2",
            "-P",
            probe,
        ]);
        return {
            withWindows: /^WITH_WINDOWS=(.*)$/m.exec(stdout)?.[1] ?? "",
            stored: /^STORED=(.*)$/m.exec(stdout)?.[1] ?? "",
        };
    }

    describe("a file whose stored scene is not the one its window shows", function () {
        it("Blender renders the window's scene, and the .blend reader names that one", async function () {
            const opened = await scenesBlenderOpens(scene("window-scene"));
            // The control: the file really is crafted, its stored scene is the other one.
            assert.deepStrictEqual(opened, { withWindows: "Shown", stored: "Stored" });
            const summary = await inspectBlendFile(scene("window-scene"));
            assert.strictEqual(summary.activeScene, opened.withWindows);
            const shown = summary.scenes.find((candidate) => candidate.name === "Shown")!;
            assert.match(shown.engine, /^BLENDER_EEVEE(_NEXT)?$/);
            assert.deepStrictEqual([shown.resolutionX, shown.resolutionY], [48, 40]);
        });

        it("render_frame.py refuses the window's scene when the farm does not allow its engine", async function () {
            assertRefused(
                await render("window-scene", { allowedEngines: ["WORKBENCH"] }),
                /scene "Shown" of .*window-scene\.blend renders with engine EEVEE, which this farm does not allow \(allowed: WORKBENCH\)/,
                "window-scene.png",
            );
            const allowed = await render("window-scene", { allowedEngines: EVERY_ENGINE }, "window-scene-allowed.png");
            assert.ok(allowed.ok, JSON.stringify(allowed.error));
            assert.match(allowed.engine ?? "", /^BLENDER_EEVEE(_NEXT)?$/);
            const png = decodePng(path.join(work, "window-scene-allowed.png"));
            assert.deepStrictEqual([png.width, png.height], [48, 40], "the shown scene is what renders");
        });
    });

    describe("other scenes a frame renders", function () {
        for (const [name, via] of [
            ["compositor-scene", 'compositor node "Other Layers" of scene "Main"'],
            ["strip-scene", 'sequencer strip "Other Strip" of scene "Main"'],
        ] as const) {
            it(`${name}: the scene "Other" it renders is held to the farm's engines, naming the ${via.split(" ")[0]} ${via.split('"')[1]}`, async function () {
                const escaped = via.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
                assertRefused(
                    await render(name, { allowedEngines: ["WORKBENCH", "EEVEE"] }),
                    new RegExp(
                        `scene "Other" \\(rendered by ${escaped}\\) renders with engine CYCLES, which this farm does not allow`,
                    ),
                    `${name}.png`,
                );
                assertRefused(
                    await render(name, { maxSamples: 1 }),
                    new RegExp(
                        `scene "Other" \\(rendered by ${escaped}\\) renders 2 samples, over this farm's limit of 1`,
                    ),
                    `${name}.png`,
                );
                // The control: allowed, the Workbench job really does render "Other" with Cycles.
                const allowed = await render(name, { allowedEngines: EVERY_ENGINE }, `${name}-allowed.png`);
                assert.ok(allowed.ok, JSON.stringify(allowed.error));
                assert.strictEqual(allowed.engine, "BLENDER_WORKBENCH");
                assert.match(allowed.logTail, /\| Other, ViewLayer \| Sample 2\/2/);
            });
        }
    });

    describe("the scene's own settings", function () {
        it("refuses a resolution percentage that takes the output past the farm's resolution limit", async function () {
            assertRefused(
                await render("oversized", { maxResolution: 100 }),
                /scene "Scene" of .*oversized\.blend renders 240x240 pixels, over this farm's limit of 100 pixels per side/,
                "oversized.png",
            );
            const allowed = await render("oversized", { maxResolution: 240 }, "oversized-allowed.png");
            assert.ok(allowed.ok, JSON.stringify(allowed.error));
            const png = decodePng(path.join(work, "oversized-allowed.png"));
            assert.deepStrictEqual([png.width, png.height], [240, 240]);
        });

        it("refuses a view layer's own sample count past the farm's samples limit", async function () {
            assertRefused(
                await render("layer-samples", { maxSamples: 1000 }),
                /renders 3000 samples, over this farm's limit of 1000/,
                "layer-samples.png",
            );
            const allowed = await render("layer-samples", { maxSamples: 3000 }, "layer-samples-allowed.png");
            assert.ok(allowed.ok, JSON.stringify(allowed.error));
            assert.match(allowed.logTail, /Sample 3000\/3000/, "the view layer's count is what Cycles renders");
        });

        describe("through the job API and the renderer", function () {
            let emulator: Emulator;
            let farm: FarmResources;
            let queueArn: string;

            before(async function () {
                emulator = await startEmulator();
                farm = await createFarmResources(emulator, {
                    name: "limits",
                    maxReceiveCount: 1,
                    visibilityTimeoutSeconds: 120,
                    receiveWaitTimeSeconds: 0,
                });
                queueArn = (
                    await emulator.sqs.send(
                        new GetQueueAttributesCommand({ QueueUrl: farm.frameQueueUrl, AttributeNames: ["QueueArn"] }),
                    )
                ).Attributes!.QueueArn!;
            });

            after(async function () {
                await emulator?.stop();
            });

            async function submitAndRender(
                key: string,
                file: string,
                jobId: string,
                limits: JobLimits,
            ): Promise<FrameRecord> {
                await emulator.sqs.send(new PurgeQueueCommand({ QueueUrl: farm.frameQueueUrl }));
                await emulator.s3.send(
                    new PutObjectCommand({ Bucket: farm.scenesBucket, Key: key, Body: fs.readFileSync(file) }),
                );
                const deps: JobApiDeps = {
                    s3: emulator.s3,
                    sqs: emulator.sqs,
                    settings: {
                        scenesBucket: farm.scenesBucket,
                        rendersBucket: farm.rendersBucket,
                        frameQueueUrl: farm.frameQueueUrl,
                        limits,
                        maxReceiveCount: 1,
                        preflight: false,
                    },
                };
                const submitted = await submitJob(deps, { scene: key, frames: "1", jobId });
                // With the preflight off nothing reads the scene: the job API accepts it.
                assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));
                const renderer = createRendererHandler({
                    s3: emulator.s3,
                    sqs: emulator.sqs,
                    settings: {
                        scenesBucket: farm.scenesBucket,
                        rendersBucket: farm.rendersBucket,
                        frameQueueUrl: farm.frameQueueUrl,
                        maxReceiveCount: 1,
                        failureBackoffSeconds: 1,
                        memoryMb: 2048,
                        blenderPath: BLENDER,
                        workDir: fs.mkdtempSync(path.join(work, `renderer-${jobId}-`)),
                        threads: 2,
                        defaultTimeoutMs: 120_000,
                        limits: {
                            allowedEngines: limits.allowedEngines,
                            maxResolution: limits.maxResolution,
                            maxSamples: 1000,
                        },
                    },
                });
                const outcome = await pollOnce({
                    sqs: emulator.sqs,
                    queueUrl: farm.frameQueueUrl,
                    queueArn,
                    region: emulator.region,
                    handler: renderer,
                }).finally(() => renderer.close());
                assert.strictEqual(outcome, "failed");
                const object = await emulator.s3.send(
                    new GetObjectCommand({ Bucket: farm.rendersBucket, Key: frameRecordKey(jobId, 1) }),
                );
                return JSON.parse(await object.Body!.transformToString()) as FrameRecord;
            }

            it("with the preflight on, the job API checks the window's scene, the one Blender renders", async function () {
                await emulator.s3.send(
                    new PutObjectCommand({
                        Bucket: farm.scenesBucket,
                        Key: "limits/window-scene.blend",
                        Body: fs.readFileSync(scene("window-scene")),
                    }),
                );
                const deps: JobApiDeps = {
                    s3: emulator.s3,
                    sqs: emulator.sqs,
                    settings: {
                        scenesBucket: farm.scenesBucket,
                        rendersBucket: farm.rendersBucket,
                        frameQueueUrl: farm.frameQueueUrl,
                        limits: { maxFrames: 100, maxResolution: 4096, allowedEngines: ["WORKBENCH"] },
                        maxReceiveCount: 1,
                    },
                };
                const refused = await submitJob(deps, { scene: "limits/window-scene.blend", jobId: "window-scene" });
                assert.strictEqual(refused.status, 400, JSON.stringify(refused.body));
                const body = refused.body as { error: { code: string; message: string } };
                assert.strictEqual(body.error.code, "engine_not_allowed");
                assert.match(body.error.message, /renders with EEVEE, which this farm does not offer/);
            });

            it("with the preflight off, fails the frame of a scene whose own resolution is past the limit, naming it", async function () {
                const record = await submitAndRender("limits/oversized.blend", scene("oversized"), "oversized", {
                    maxFrames: 100,
                    maxResolution: 100,
                    allowedEngines: EVERY_ENGINE,
                });
                assert.strictEqual(record.status, "failed");
                assert.strictEqual(record.error?.code, "limit_exceeded");
                assert.match(record.error?.message ?? "", /renders 240x240 pixels, over this farm's limit of 100/);
            });

            it("with the preflight off, fails the frame of a scene whose own engine the farm does not offer, naming it", async function () {
                const record = await submitAndRender(
                    "limits/layer-samples.blend",
                    scene("layer-samples"),
                    "cycles-scene",
                    { maxFrames: 100, maxResolution: 4096, allowedEngines: ["WORKBENCH", "EEVEE"] },
                );
                assert.strictEqual(record.status, "failed");
                assert.strictEqual(record.error?.code, "limit_exceeded");
                assert.match(record.error?.message ?? "", /renders with engine CYCLES, which this farm does not allow/);
            });
        });
    });
});
