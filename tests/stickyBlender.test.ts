// The renderer's sticky Blender (functions/renderer/blenderProcess.ts with render_frame.py --serve): one Blender
// renders frame after frame, keeping the scene loaded while frames share it. What it renders must be exactly what a
// fresh `blender -b -f N` renders, whatever came before: frames out of order, another job's scene or settings, an
// unbaked simulation. Failures, deadlines and memory growth end it; it never outlives the process that started it.
import * as assert from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { HeadObjectCommand, GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { FrameRequest } from "../functions/renderer/blender";
import { BlenderProcess, runBlender } from "../functions/renderer/blenderProcess";
import { peakTreeBytes } from "../functions/renderer/memoryWatch";
import { createRendererHandler, RendererHandler } from "../functions/renderer/consumer";
import { DEFAULT_RENDER_LIMITS } from "../functions/renderer/settings";
import {
    encodeEtags,
    FRAME_MESSAGE_VERSION,
    FrameMessage,
    frameOutputKey,
    RenderSettings,
} from "../functions/shared/contract";
import { jobLedger } from "../functions/shared/ledger";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { pollOnce } from "../local/eventSourcePoller";
import { waitFor } from "./support/farmClient";
import { LOADED_MACHINE_MARGIN_MS } from "./support/timing";
import { BLENDER, comparePngs, makeScene, renderDirect, run, Scene } from "./support/scenes";

const ROOT = path.join(__dirname, "..");
const IDENTICAL = { sameShape: true, differingSamples: 0, maxDifference: 0 };

/** Alive and not a zombie (a dead Blender reparented to an init that does not reap stays a zombie). */
function isRunning(pid: number): boolean {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
    } catch {
        return false;
    }
}

describe("sticky Blender: one Blender per renderer, frame after frame", function () {
    this.timeout(600_000);
    let work: string;
    let count = 0;

    before(function () {
        work = fs.mkdtempSync(path.join(os.tmpdir(), "sticky-blender-"));
    });

    after(function () {
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    function newBlender(options: { maxResidentBytes?: number; memoryLimitBytes?: number } = {}): BlenderProcess {
        return new BlenderProcess({ workDir: fs.mkdtempSync(path.join(work, "renderer-")), ...options });
    }

    function request(scene: Scene, frame: number, extra: Partial<FrameRequest> = {}): FrameRequest {
        const name = `out-${++count}`;
        return {
            scenePath: scene.blendPath,
            sceneVersion: "v1",
            frame,
            outputPath: path.join(work, name, `frame_${String(frame).padStart(4, "0")}.png`),
            settings: { format: "PNG" },
            limits: DEFAULT_RENDER_LIMITS,
            threads: 2,
            tempDir: path.join(work, name, "blender-temp"),
            deadlineMs: Date.now() + 180_000,
            ...extra,
        };
    }

    async function renderAll(blender: BlenderProcess, scene: Scene, frames: number[]): Promise<string[]> {
        const outputs: string[] = [];
        for (const frame of frames) {
            const frameRequest = request(scene, frame);
            const result = await blender.render(frameRequest);
            assert.ok(result.ok, `frame ${frame}: ${JSON.stringify(result.error)}\n${result.logTail}`);
            outputs.push(frameRequest.outputPath);
        }
        return outputs;
    }

    for (const engine of ["CYCLES", "EEVEE"] as const) {
        it(`${engine}: frames 9, 2, 5 of an animation, rendered by one Blender, are pixel-identical to fresh \`blender -b -f\` renders`, async function () {
            const scene = await makeScene({ engine, frames: "1-10", resolutionX: 96, resolutionY: 54, samples: 8 });
            const blender = newBlender();
            try {
                const frames = [9, 2, 5];
                const outputs = await renderAll(blender, scene, frames);
                assert.deepStrictEqual(blender.stats, { starts: 1, sceneLoads: 1, frames: 3, memoryRestarts: 0 });
                for (const [index, frame] of frames.entries()) {
                    const fresh = await renderDirect(scene.blendPath, frame, fs.mkdtempSync(path.join(work, "fresh-")));
                    assert.deepStrictEqual(comparePngs(outputs[index], fresh), IDENTICAL, `frame ${frame}`);
                }
                // The animation shows: the frames are not all the same picture.
                assert.ok(comparePngs(outputs[0], outputs[1]).differingSamples > 50, "frames 9 and 2 look alike");
            } finally {
                await blender.stop();
            }
        });
    }

    it("an unbaked simulation: the scene is loaded again for every frame, so frames 2 then 3 match fresh renders", async function () {
        const scene = await makeScene({ frames: "1-10", rigidBody: true, resolutionX: 96, resolutionY: 54 });
        const blender = newBlender();
        try {
            const outputs = await renderAll(blender, scene, [2, 3]);
            assert.deepStrictEqual(blender.stats, { starts: 1, sceneLoads: 2, frames: 2, memoryRestarts: 0 });
            // What a quote needs to know: this scene's load is paid every frame, not once per renderer.
            const again = await blender.render(request(scene, 4));
            assert.ok(again.ok && again.sceneLoaded && again.sceneKept === false, JSON.stringify(again));
            assert.ok(again.loadSeconds! > 0 && again.blenderStartSeconds === undefined, JSON.stringify(again));
            const freshDir = fs.mkdtempSync(path.join(work, "fresh-"));
            const fresh = [
                await renderDirect(scene.blendPath, 2, freshDir),
                await renderDirect(scene.blendPath, 3, freshDir),
            ];
            assert.deepStrictEqual(comparePngs(outputs[0], fresh[0]), IDENTICAL, "frame 2");
            assert.deepStrictEqual(comparePngs(outputs[1], fresh[1]), IDENTICAL, "frame 3");

            // The control: a Blender that kept the scene from frame 2 simulates on into frame 3 and renders it otherwise.
            const kept = path.join(work, "kept-frame-3.png");
            const script = path.join(work, "render_2_then_3.py");
            fs.writeFileSync(
                script,
                [
                    "import bpy",
                    "scene = bpy.context.scene",
                    "for frame in (2, 3):",
                    "    scene.frame_set(frame)",
                    "    bpy.ops.render.render()",
                    `bpy.data.images['Render Result'].save_render(${JSON.stringify(kept)}, scene=scene)`,
                ].join("\n"),
            );
            await run(BLENDER, [
                "-b",
                scene.blendPath,
                "--factory-startup",
                "-noaudio",
                "--disable-autoexec",
                "--python-exit-code",
                "2",
                "-P",
                script,
            ]);
            assert.ok(comparePngs(kept, fresh[1]).differingSamples > 0, "the simulation made no difference");
        } finally {
            await blender.stop();
        }
    });

    describe("the renderer's Blender across jobs (consumer handler, emulator)", function () {
        let emulator: Emulator;
        let farm: FarmResources;
        const ledger = () => jobLedger(emulator.s3, farm.rendersBucket);
        let queueArn: string;

        before(async function () {
            emulator = await startEmulator();
            farm = await createFarmResources(emulator, {
                name: "sticky",
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

        function newRenderer() {
            return createRendererHandler({
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
                    workDir: fs.mkdtempSync(path.join(work, "consumer-")),
                    threads: 2,
                    defaultTimeoutMs: 180_000,
                    limits: DEFAULT_RENDER_LIMITS,
                },
            });
        }

        /** Uploads a file to the scenes bucket; returns its ETag. */
        async function upload(key: string, file: string): Promise<string> {
            await emulator.s3.send(
                new PutObjectCommand({ Bucket: farm.scenesBucket, Key: key, Body: fs.readFileSync(file) }),
            );
            return (await emulator.s3.send(new HeadObjectCommand({ Bucket: farm.scenesBucket, Key: key }))).ETag!;
        }

        /** Renders one frame through the handler; returns the frame downloaded from the renders bucket. */
        async function renderOne(
            renderer: RendererHandler,
            job: { jobId: string; scene: string; sceneEtag: string; assets: string[]; assetEtags?: string[] },
            frame: number,
            settings: RenderSettings,
        ): Promise<string> {
            const { jobId, assetEtags, ...rest } = job;
            const message: FrameMessage = {
                v: FRAME_MESSAGE_VERSION,
                jobId,
                frame,
                ...rest,
                ...(assetEtags ? { assetEtags: encodeEtags(assetEtags) } : {}),
                settings,
                output: { bucket: farm.rendersBucket, key: frameOutputKey(jobId, frame, "PNG") },
            };
            await emulator.sqs.send(
                new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: JSON.stringify(message) }),
            );
            const outcome = await pollOnce({
                sqs: emulator.sqs,
                queueUrl: farm.frameQueueUrl,
                queueArn,
                region: emulator.region,
                handler: renderer,
            });
            assert.strictEqual(outcome, "succeeded", `frame ${frame} of job ${jobId}`);
            const object = await emulator.s3.send(
                new GetObjectCommand({ Bucket: farm.rendersBucket, Key: message.output.key }),
            );
            const file = path.join(work, `${jobId}-${frame}.png`);
            fs.writeFileSync(file, Buffer.from(await object.Body!.transformToByteArray()));
            return file;
        }

        const fresh = (scene: Scene, frame: number) =>
            renderDirect(scene.blendPath, frame, fs.mkdtempSync(path.join(work, "fresh-")));

        it("renders job A, job B with an engine override, job B without, then A at a new version: each as a fresh Blender would", async function () {
            const sceneA = await makeScene({ frames: "1-4" });
            const sceneB = await makeScene({ frames: "1-4", texture: "textures/checker.png" });
            const sceneA2 = await makeScene({ frames: "1-4", resolutionX: 80, resolutionY: 60 });
            const renderer = newRenderer();
            const jobA = (jobId: string, sceneEtag: string) => ({
                jobId,
                scene: "shots/a/scene.blend",
                sceneEtag,
                assets: [],
            });
            const jobB = (jobId: string, sceneEtag: string) => ({
                jobId,
                scene: "shots/b/scene.blend",
                sceneEtag,
                assets: ["shots/b/textures/checker.png"],
            });

            try {
                const etagA = await upload("shots/a/scene.blend", sceneA.blendPath);
                const etagB = await upload("shots/b/scene.blend", sceneB.blendPath);
                await upload("shots/b/textures/checker.png", sceneB.texturePath!);
                const a3 = await renderOne(renderer, jobA("job-a", etagA), 3, { format: "PNG" });
                const a1 = await renderOne(renderer, jobA("job-a", etagA), 1, { format: "PNG" });
                const bWorkbench = await renderOne(renderer, jobB("job-b-workbench", etagB), 2, {
                    format: "PNG",
                    engine: "WORKBENCH",
                });
                const b = await renderOne(renderer, jobB("job-b", etagB), 2, { format: "PNG" });
                const etagA2 = await upload("shots/a/scene.blend", sceneA2.blendPath);
                assert.notStrictEqual(etagA2, etagA);
                const a2 = await renderOne(renderer, jobA("job-a2", etagA2), 3, { format: "PNG" });

                assert.deepStrictEqual(renderer.blender.stats, {
                    starts: 1,
                    sceneLoads: 4,
                    frames: 5,
                    memoryRestarts: 0,
                });
                assert.deepStrictEqual(comparePngs(a3, await fresh(sceneA, 3)), IDENTICAL, "job A frame 3");
                assert.deepStrictEqual(comparePngs(a1, await fresh(sceneA, 1)), IDENTICAL, "job A frame 1");
                const workbench = path.join(work, "fresh-workbench.png");
                const freshWorkbench = await runBlender({
                    ...request({ blendPath: sceneB.blendPath, dir: sceneB.dir }, 2),
                    outputPath: workbench,
                    settings: { format: "PNG", engine: "WORKBENCH" },
                });
                assert.ok(freshWorkbench.ok, JSON.stringify(freshWorkbench.error));
                assert.deepStrictEqual(comparePngs(bWorkbench, workbench), IDENTICAL, "job B (Workbench) frame 2");
                // The Workbench override of the job before left nothing behind.
                assert.deepStrictEqual(comparePngs(b, await fresh(sceneB, 2)), IDENTICAL, "job B frame 2");
                assert.deepStrictEqual(comparePngs(a2, await fresh(sceneA2, 3)), IDENTICAL, "job A at its new version");
            } finally {
                await renderer.close();
            }
        });

        it("a texture replaced between two jobs of the same scene: job B's frame shows the new texture, as Blender's own render does", async function () {
            const scene = await makeScene({ frames: "1-4", texture: "textures/checker.png" });
            // The same .blend beside another texture: what the artist has on disk after replacing the file.
            const replaced: Scene = {
                blendPath: path.join(work, "replaced", "scene.blend"),
                dir: path.join(work, "replaced"),
            };
            const newTexture = path.join(replaced.dir, "textures", "checker.png");
            fs.mkdirSync(path.dirname(newTexture), { recursive: true });
            fs.copyFileSync(scene.blendPath, replaced.blendPath);
            await run("oiiotool", [
                "--pattern",
                "checker:width=2:height=2:color1=1,0,0:color2=0,1,0",
                "16x16",
                "3",
                "-d",
                "uint8",
                "-o",
                newTexture,
            ]);
            const renderer = newRenderer();
            const textureKey = "shots/t/textures/checker.png";
            const job = (jobId: string, sceneEtag: string, textureEtag: string) => ({
                jobId,
                scene: "shots/t/scene.blend",
                sceneEtag,
                assets: [textureKey],
                assetEtags: [textureEtag],
            });
            try {
                const sceneEtag = await upload("shots/t/scene.blend", scene.blendPath);
                const oldEtag = await upload(textureKey, scene.texturePath!);
                const a = await renderOne(renderer, job("texture-a", sceneEtag, oldEtag), 2, { format: "PNG" });
                const newEtag = await upload(textureKey, newTexture);
                assert.notStrictEqual(newEtag, oldEtag);
                const b = await renderOne(renderer, job("texture-b", sceneEtag, newEtag), 2, { format: "PNG" });
                assert.strictEqual(renderer.blender.stats.starts, 1, "job B was not rendered by job A's Blender");
                assert.deepStrictEqual(comparePngs(a, await fresh(scene, 2)), IDENTICAL, "job A, the old texture");
                assert.deepStrictEqual(comparePngs(b, await fresh(replaced, 2)), IDENTICAL, "job B, the new texture");
                // The control: the two textures make two different frames.
                assert.ok(comparePngs(a, b).differingSamples > 100, "the new texture does not show in the frame");
            } finally {
                await renderer.close();
            }
        });

        it("a frame's record says what readying its renderer cost: Blender's start, the scene's download and load on the first frame, none of it on the next", async function () {
            const scene = await makeScene({ frames: "1-4" });
            const renderer = newRenderer();
            const job = (sceneEtag: string) => ({
                jobId: "startup",
                scene: "shots/s/scene.blend",
                sceneEtag,
                assets: [],
            });
            try {
                const sceneEtag = await upload("shots/s/scene.blend", scene.blendPath);
                await renderOne(renderer, job(sceneEtag), 3, { format: "PNG" });
                await renderOne(renderer, job(sceneEtag), 1, { format: "PNG" });
                const [first, next] = await Promise.all(
                    [3, 1].map((frame) => ledger().readFrameRecord("startup", frame)),
                );
                const cold = first?.startup;
                assert.ok(cold, JSON.stringify(first));
                assert.ok(cold.blenderSeconds > 0, `Blender's start: ${JSON.stringify(cold)}`);
                assert.strictEqual(cold.sceneBytes, fs.statSync(scene.blendPath).size);
                assert.ok(cold.downloadSeconds > 0 && cold.loadSeconds > 0, JSON.stringify(cold));
                assert.strictEqual(cold.sceneKept, true);
                const readying = cold.blenderSeconds + cold.downloadSeconds + cold.loadSeconds;
                assert.ok(readying < first!.wallMs / 1000, `${readying} s of readying in ${first!.wallMs} ms`);
                assert.deepStrictEqual(next?.startup, {
                    blenderSeconds: 0,
                    downloadSeconds: 0,
                    sceneBytes: 0,
                    loadSeconds: 0,
                    sceneKept: true,
                });
            } finally {
                await renderer.close();
            }
        });
    });

    describe("when a Blender ends", function () {
        it("a frame past its deadline kills Blender, and the next frame starts a fresh one", async function () {
            const scene = await makeScene({ frames: "1-4" });
            const blender = newBlender();
            try {
                await renderAll(blender, scene, [1]);
                const first = blender.pid;
                const started = Date.now();
                const deadlineInMs = 3000;
                const late = await blender.render(
                    request(scene, 2, {
                        settings: { format: "PNG", samples: 100_000 },
                        deadlineMs: started + deadlineInMs,
                    }),
                );
                assert.strictEqual(late.error?.code, "timeout", JSON.stringify(late.error));
                assert.strictEqual(late.signal, "SIGKILL");
                // Killed at its deadline (plus what a loaded machine adds), not at the end of 100,000 samples.
                const elapsed = Date.now() - started;
                assert.ok(elapsed < deadlineInMs + LOADED_MACHINE_MARGIN_MS, `returned after ${elapsed} ms`);
                assert.ok(first !== undefined && !isRunning(first), "the timed-out Blender still runs");
                await renderAll(blender, scene, [3]);
                assert.notStrictEqual(blender.pid, first);
                assert.strictEqual(blender.stats.starts, 2);
            } finally {
                await blender.stop();
            }
        });

        it("a failed frame ends its Blender (status 3), and the next frame starts a fresh one", async function () {
            const scene = await makeScene({ frames: "1-4" });
            const cameraless = await makeScene({ noCamera: true });
            const blender = newBlender();
            try {
                await renderAll(blender, scene, [1]);
                const failed = await blender.render(request(cameraless, 1));
                assert.strictEqual(failed.error?.code, "no_camera");
                assert.strictEqual(failed.exitCode, 3);
                assert.strictEqual(blender.pid, undefined);
                await renderAll(blender, scene, [2]);
                assert.deepStrictEqual(blender.stats, { starts: 2, sceneLoads: 2, frames: 2, memoryRestarts: 0 });
            } finally {
                await blender.stop();
            }
        });

        it("a Blender passing the hard memory bound mid-frame is killed at once: out_of_memory naming the figure, and the next frame starts a fresh one", async function () {
            const MB = 1024 * 1024;
            // Subdivided at render time: about 1.6 million faces, built and handed to Cycles over a few seconds.
            const heavy = await makeScene({ frames: "1-2", subdivision: 9 });
            const light = await makeScene({ frames: "1-4" });
            // What the frame takes without a bound: its peak, from the kernel's high-water mark of the Blender it ran in.
            const unbounded = newBlender();
            let naturalPeak: number;
            try {
                await renderAll(unbounded, heavy, [1]);
                naturalPeak = peakTreeBytes(unbounded.pid)!;
            } finally {
                await unbounded.stop();
            }
            const limit = Math.round(naturalPeak / 2);
            const blender = newBlender({ memoryLimitBytes: limit });
            try {
                const result = await blender.render(request(heavy, 1));
                const first = blender.stats.starts;
                assert.strictEqual(result.error?.code, "out_of_memory", JSON.stringify(result.error));
                assert.strictEqual(result.signal, "SIGKILL");
                const match =
                    /^Blender used (\d+) MB of memory rendering frame 1 of \S+, past the (\d+) MB it may use, and was stopped; render at a lower resolution or with fewer samples, or give the renderer more memory$/.exec(
                        result.error!.message,
                    );
                assert.ok(match, result.error!.message);
                const [used, bound] = [Number(match[1]) * MB, Number(match[2]) * MB];
                assert.strictEqual(bound, Math.round(limit / MB) * MB);
                assert.ok(used > limit, `${used} reported, bound ${limit}`);
                // Stopped on its way up: nearer the bound than the peak the frame reaches unbounded.
                const halfway = limit + (naturalPeak - limit) / 2;
                console.log(
                    `      bound ${(limit / MB).toFixed(0)} MB: stopped at ${(used / MB).toFixed(0)} MB (unbounded the frame peaks at ${(naturalPeak / MB).toFixed(0)} MB)`,
                );
                assert.ok(used < halfway, `stopped at ${used} bytes, past halfway (${halfway}) to the unbounded peak`);
                assert.strictEqual(blender.pid, undefined, "the Blender that ran out is gone");
                await renderAll(blender, light, [1]);
                assert.strictEqual(blender.stats.starts, first + 1);
            } finally {
                await blender.stop();
            }
        });

        it("a Blender whose memory grew past the bound is ended after its frame", async function () {
            const scene = await makeScene({ frames: "1-4" });
            const blender = newBlender({ maxResidentBytes: 1 });
            try {
                await renderAll(blender, scene, [1, 2]);
                assert.deepStrictEqual(blender.stats, { starts: 2, sceneLoads: 2, frames: 2, memoryRestarts: 2 });
                assert.strictEqual(blender.pid, undefined);
            } finally {
                await blender.stop();
            }
        });
    });

    it("each frame's log tail holds that frame's lines only, with credentials redacted", async function () {
        const secret = "sticky-test-secret-9f8e7d6c";
        const scene = await makeScene({ frames: "1-4" });
        // Frames written under a folder named like a credential: each frame's result line names its output.
        const secretDir = path.join(work, secret);
        const saved = process.env.RENDER_TEST_API_KEY;
        process.env.RENDER_TEST_API_KEY = secret;
        const blender = newBlender();
        try {
            const inSecretDir = (frame: number) =>
                request(scene, frame, { outputPath: path.join(secretDir, `frame_${frame}.png`) });
            const first = await blender.render(inSecretDir(1));
            const second = await blender.render(inSecretDir(3));
            assert.ok(first.ok && second.ok, `${first.logTail}\n${second.logTail}`);
            assert.match(first.logTail, /"output": "[^"]*\[redacted\]\/frame_1\.png"/);
            for (const tail of [first.logTail, second.logTail]) assert.ok(!tail.includes(secret), tail);
            assert.match(first.logTail, /^Fra:1 /m);
            assert.doesNotMatch(first.logTail, /^Fra:3 /m);
            assert.match(second.logTail, /^Fra:3 /m);
            assert.doesNotMatch(second.logTail, /^Fra:1 /m, "frame 1's lines are in frame 3's log");
            assert.strictEqual((second.logTail.match(/RENDER_FRAME_RESULT /g) ?? []).length, 1);
            assert.match(second.logTail, /RENDER_FRAME_RESULT \{"ok": true, "frame": 3,.*"sceneLoaded": false/);
            assert.doesNotMatch(`${first.logTail}${second.logTail}`, /RENDER_FRAME_END/);
        } finally {
            if (saved === undefined) delete process.env.RENDER_TEST_API_KEY;
            else process.env.RENDER_TEST_API_KEY = saved;
            await blender.stop();
        }
    });

    describe("no Blender outlives the process that started it (that process SIGKILLed)", function () {
        for (const mode of ["starting", "idle", "rendering"] as const) {
            it(`with Blender ${mode}`, async function () {
                const scene = await makeScene({ frames: "1-4" });
                const holder = spawn(
                    process.execPath,
                    [
                        "-r",
                        "ts-node/register/transpile-only",
                        path.join(ROOT, "tests", "support", "blenderHolder.ts"),
                        mode,
                        scene.blendPath,
                        fs.mkdtempSync(path.join(work, "holder-")),
                    ],
                    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
                );
                let output = "";
                holder.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
                holder.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
                const exited = new Promise((resolve) => holder.on("exit", resolve));
                const pid = await waitFor(`the holder's Blender (${mode})`, 120_000, () => {
                    const match = /^BLENDER (\d+)$/m.exec(output);
                    if (match) return Number(match[1]);
                    if (holder.exitCode !== null) throw new Error(`the holder exited: ${output}`);
                    return undefined;
                });
                assert.ok(isRunning(pid), `Blender ${pid} is not running`);
                if (mode === "rendering") await new Promise((resolve) => setTimeout(resolve, 1500));
                holder.kill("SIGKILL");
                await exited;
                const gone = await waitFor(
                    `Blender ${pid} to end`,
                    10_000,
                    () => (isRunning(pid) ? undefined : true),
                    100,
                ).catch(() => false);
                if (!gone) process.kill(pid, "SIGKILL");
                assert.ok(gone, `Blender ${pid} outlived its SIGKILLed parent (${mode})`);
            });
        }
    });
});
