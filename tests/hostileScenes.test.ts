// Hostile scenes: a real .blend with a registered auto-run text block and a Python driver, each writing a
// marker file if it runs, goes through the consumer handler (emulator SQS → event-source poller → renderer → real Blender).
// It also renders on the local farm, submitted as a user would. The control shows the probe is live: Blender's own
// render of the file with auto-run enabled writes both markers. Even a farm Blender started with auto-run enabled
// writes none: render_frame.py opens every scene without scripts.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import {
    FRAME_MESSAGE_VERSION,
    FrameMessage,
    FrameRecord,
    frameOutputKey,
    frameRecordKey,
} from "../functions/shared/contract";
import { createRendererHandler } from "../functions/renderer/consumer";
import { DEFAULT_RENDER_LIMITS } from "../functions/renderer/settings";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { pollOnce } from "../local/eventSourcePoller";
import { startLocalFarm } from "../local/farm";
import {
    blenderIgnoringDisableAutoexec,
    clearMarkers,
    HostileScene,
    makeHostileScene,
    markersPresent,
    renderWithAutoexecEnabled,
} from "./support/hostileScene";
import { BLENDER, decodePng } from "./support/scenes";

const SCENE_KEY = "untrusted/hostile.blend";

describe("hostile scenes: code that comes with a .blend never runs on the farm", function () {
    this.timeout(300_000);
    let scene: HostileScene;
    let emulator: Emulator;
    let farm: FarmResources;
    let queueArn: string;
    let work: string;

    before(async function () {
        work = fs.mkdtempSync(path.join(os.tmpdir(), "hostile-scenes-"));
        scene = await makeHostileScene(path.join(work, "scene"));
        emulator = await startEmulator();
        farm = await createFarmResources(emulator, {
            name: "hostile",
            maxReceiveCount: 1,
            visibilityTimeoutSeconds: 120,
        });
        queueArn = (
            await emulator.sqs.send(
                new GetQueueAttributesCommand({ QueueUrl: farm.frameQueueUrl, AttributeNames: ["QueueArn"] }),
            )
        ).Attributes!.QueueArn!;
        await emulator.s3.send(
            new PutObjectCommand({ Bucket: farm.scenesBucket, Key: SCENE_KEY, Body: fs.readFileSync(scene.blendPath) }),
        );
    });

    after(async function () {
        await emulator?.stop();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    /**
     * Queues frames 1-2 of the hostile scene as the job API would (the contract's frame message) and runs every
     * message through a renderer using `blenderPath`. Queued directly: the consumer must be safe on its own,
     * whatever the job API's checks accept.
     */
    async function renderOnTheFarm(
        jobId: string,
        blenderPath: string,
    ): Promise<{ outcomes: string[]; records: FrameRecord[] }> {
        const head = await emulator.s3.send(new HeadObjectCommand({ Bucket: farm.scenesBucket, Key: SCENE_KEY }));
        for (const frame of [1, 2]) {
            const message: FrameMessage = {
                v: FRAME_MESSAGE_VERSION,
                jobId,
                frame,
                scene: SCENE_KEY,
                sceneEtag: head.ETag ?? "",
                assets: [],
                settings: { format: "PNG" },
                output: { bucket: farm.rendersBucket, key: frameOutputKey(jobId, frame, "PNG") },
            };
            await emulator.sqs.send(
                new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: JSON.stringify(message) }),
            );
        }
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
                blenderPath,
                workDir: fs.mkdtempSync(path.join(work, `renderer-${jobId}-`)),
                threads: 1,
                defaultTimeoutMs: 120_000,
                limits: DEFAULT_RENDER_LIMITS,
            },
        });
        const outcomes: string[] = [];
        try {
            for (;;) {
                const outcome = await pollOnce({
                    sqs: emulator.sqs,
                    queueUrl: farm.frameQueueUrl,
                    queueArn,
                    region: emulator.region,
                    handler: renderer,
                });
                if (outcome === "empty") break;
                outcomes.push(outcome);
            }
        } finally {
            await renderer.close();
        }
        const records: FrameRecord[] = [];
        for (const frame of [1, 2]) {
            const object = await emulator.s3.send(
                new GetObjectCommand({ Bucket: farm.rendersBucket, Key: frameRecordKey(jobId, frame) }),
            );
            records.push(JSON.parse(await object.Body!.transformToString()) as FrameRecord);
        }
        return { outcomes, records };
    }

    it("control: Blender's own render with --enable-autoexec runs both the text block and the driver", async function () {
        clearMarkers(scene);
        const result = await renderWithAutoexecEnabled(scene.blendPath, 1, path.join(work, "control"));
        assert.strictEqual(result.exitCode, 0, result.output);
        assert.deepStrictEqual(
            markersPresent(scene).sort(),
            ["driver", "textBlock"],
            `the probe is dead: with auto-run on, its code did not run\n${result.output}`,
        );
        assert.strictEqual(fs.readFileSync(scene.markers.textBlock, "utf8"), "registered text block ran");
        assert.strictEqual(fs.readFileSync(scene.markers.driver, "utf8"), "python driver ran");
    });

    it("a consumer whose Blender lost --disable-autoexec still runs neither: render_frame.py opens scenes without scripts", async function () {
        clearMarkers(scene);
        const { outcomes, records } = await renderOnTheFarm(
            "hostile-autoexec-on",
            blenderIgnoringDisableAutoexec(work, BLENDER),
        );
        assert.deepStrictEqual(outcomes, ["succeeded", "succeeded"], JSON.stringify(records.map((r) => r.error)));
        assert.deepStrictEqual(markersPresent(scene), [], "with auto-run on at Blender's command line, scene code ran");
    });

    it("renders the hostile scene through the consumer handler, and neither the text block nor the driver runs", async function () {
        clearMarkers(scene);
        const { outcomes, records } = await renderOnTheFarm("hostile", BLENDER);
        assert.deepStrictEqual(markersPresent(scene), [], "code that came with the scene ran on the farm");
        // Refusing the scene would also keep the markers away; the farm must render it as well.
        assert.deepStrictEqual(
            outcomes,
            ["succeeded", "succeeded"],
            JSON.stringify(records.map((record) => record.error)),
        );
        for (const record of records) {
            assert.strictEqual(record.status, "done", JSON.stringify(record.error));
            const frame = await emulator.s3.send(
                new GetObjectCommand({
                    Bucket: farm.rendersBucket,
                    Key: frameOutputKey("hostile", record.frame, "PNG"),
                }),
            );
            const file = path.join(work, `hostile-${record.frame}.png`);
            fs.writeFileSync(file, Buffer.from(await frame.Body!.transformToByteArray()));
            const png = decodePng(file);
            assert.deepStrictEqual([png.width, png.height], [32, 24]);
        }
    });

    it("renders the hostile scene on the local farm (job API, queue, worker), and neither the text block nor the driver runs", async function () {
        clearMarkers(scene);
        const local = await startLocalFarm({
            port: 0,
            workers: 1,
            dataDir: path.join(work, "local-farm"),
            log: () => undefined,
        });
        try {
            // Only what a user has: the outputs, an S3 client at awsEndpoint, and HTTP to the job API.
            const s3 = new S3Client({
                endpoint: local.outputs.awsEndpoint,
                region: local.outputs.region,
                forcePathStyle: true,
                credentials: { accessKeyId: "local", secretAccessKey: "local" },
            });
            await s3.send(
                new PutObjectCommand({
                    Bucket: local.outputs.scenesBucket,
                    Key: SCENE_KEY,
                    Body: fs.readFileSync(scene.blendPath),
                }),
            );
            const submitted = await fetch(`${local.apiUrl}/jobs`, {
                method: "POST",
                body: JSON.stringify({ scene: SCENE_KEY, frames: "1-2", jobId: "hostile-local" }),
            });
            assert.strictEqual(submitted.status, 202, await submitted.text());
            let status: { state: string; frames: { done: number } } = { state: "queued", frames: { done: 0 } };
            for (
                const started = Date.now();
                !["complete", "failed", "partial"].includes(status.state) && Date.now() - started < 120_000;
            ) {
                await new Promise((resolve) => setTimeout(resolve, 500));
                status = (await (await fetch(`${local.apiUrl}/jobs/hostile-local`)).json()) as typeof status;
            }
            assert.strictEqual(status.state, "complete", JSON.stringify(status));
            assert.strictEqual(status.frames.done, 2);
            assert.deepStrictEqual(markersPresent(scene), [], "code that came with the scene ran on the local farm");
            s3.destroy();
        } finally {
            await local.stop();
        }
    });
});
