// The whole render path with real parts: POST /jobs through the job API handler, one SQS message per
// frame in the emulator, the renderer handler run by an event-source poller, real Blender, frames and
// records on S3, GET /jobs from the ledger.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { ENGINES, FrameRecord, frameOutputKey, frameRecordKey, legacyJobId } from "../functions/shared/contract";
import { createJobApiHandler } from "../functions/jobApi/handler";
import { createRendererHandler } from "../functions/renderer/consumer";
import { DEFAULT_RENDER_LIMITS, RendererSettings } from "../functions/renderer/settings";
import { Emulator, FarmResources, createFarmResources, emulatorClients, startEmulator } from "../local/emulator";
import { pollOnce } from "../local/eventSourcePoller";
import { BLENDER, comparePngs, decodePng, makeScene, renderDirect, CUBE_2016_SCENE } from "./support/scenes";

const MAX_RECEIVE_COUNT = 2;
/** The frame queue's: a failed frame comes back after its failure backoff, long before this. */
const VISIBILITY_TIMEOUT_SECONDS = 120;

describe("the render path: job API → SQS → renderer → S3, with Blender", function () {
    let emulator: Emulator;
    let farm: FarmResources;
    let queueArn: string;
    let jobApi: ReturnType<typeof createJobApiHandler>;
    let jobApiWithoutPreflight: ReturnType<typeof createJobApiHandler>;
    let rendererSettings: RendererSettings;
    /** Scene-key GETs the renderer's S3 client sent, counted at the client. */
    const sceneGets: string[] = [];
    let rendererS3: S3Client;
    let renderer: ReturnType<typeof createRendererHandler>;

    before(async function () {
        emulator = await startEmulator();
        farm = await createFarmResources(emulator, {
            name: "render-path",
            maxReceiveCount: MAX_RECEIVE_COUNT,
            visibilityTimeoutSeconds: VISIBILITY_TIMEOUT_SECONDS,
            receiveWaitTimeSeconds: 0,
        });
        const attributes = await emulator.sqs.send(
            new GetQueueAttributesCommand({ QueueUrl: farm.frameQueueUrl, AttributeNames: ["QueueArn"] }),
        );
        queueArn = attributes.Attributes!.QueueArn!;
        const jobApiSettings = {
            scenesBucket: farm.scenesBucket,
            rendersBucket: farm.rendersBucket,
            frameQueueUrl: farm.frameQueueUrl,
            limits: { maxFrames: 1000, maxResolution: 4096, allowedEngines: [...ENGINES] },
            maxReceiveCount: MAX_RECEIVE_COUNT,
        };
        jobApi = createJobApiHandler({ s3: emulator.s3, sqs: emulator.sqs, settings: jobApiSettings });
        // A farm configured without the preflight queues what it is given, so a broken scene reaches the renderer.
        jobApiWithoutPreflight = createJobApiHandler({
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: { ...jobApiSettings, preflight: false },
        });
        rendererS3 = emulatorClients(emulator.endpoint, emulator.region, emulator.credentials).s3;
        rendererS3.middlewareStack.add(
            (next) => async (args: any) => {
                if (
                    args.input?.Key &&
                    String(args.input.Key).endsWith(".blend") &&
                    (args.request?.method ?? "GET") === "GET"
                )
                    sceneGets.push(args.input.Key);
                return next(args);
            },
            { step: "build", name: "countSceneGets" },
        );
        rendererSettings = {
            scenesBucket: farm.scenesBucket,
            rendersBucket: farm.rendersBucket,
            frameQueueUrl: farm.frameQueueUrl,
            maxReceiveCount: MAX_RECEIVE_COUNT,
            failureBackoffSeconds: 1,
            memoryMb: 10240,
            blenderPath: BLENDER,
            workDir: fs.mkdtempSync(path.join(os.tmpdir(), "renderer-work-")),
            threads: os.cpus().length,
            defaultTimeoutMs: 300_000,
            limits: DEFAULT_RENDER_LIMITS,
        };
        renderer = createRendererHandler({ s3: rendererS3, sqs: emulator.sqs, settings: rendererSettings });
    });

    after(async function () {
        await renderer?.close();
        await emulator?.stop();
    });

    async function api(
        method: string,
        routePath: string,
        body?: unknown,
        handler = jobApi,
    ): Promise<{ statusCode: number; body: any }> {
        const jobId = /^\/jobs\/([^/]+)/.exec(routePath)?.[1];
        const routeKey =
            routePath === "/jobs"
                ? `${method} /jobs`
                : routePath.endsWith("/retry")
                  ? `${method} /jobs/{jobId}/retry`
                  : `${method} /jobs/{jobId}`;
        const reply = await handler({
            version: "2.0",
            routeKey,
            rawPath: routePath,
            headers: { "content-type": "application/json" },
            requestContext: { http: { method, path: routePath } },
            pathParameters: jobId ? { jobId } : undefined,
            body: body === undefined ? undefined : JSON.stringify(body),
            isBase64Encoded: false,
        } as any);
        return { statusCode: reply.statusCode, body: JSON.parse(reply.body) };
    }

    /** Polls like the event source mapping until the queue has nothing visible `idleRounds` times in a row. */
    async function drainQueue(
        options: { idleRounds?: number; idleDelayMs?: number } = {},
    ): Promise<{ succeeded: number; failed: number }> {
        const counts = { succeeded: 0, failed: 0 };
        let idle = 0;
        while (idle < (options.idleRounds ?? 1)) {
            const outcome = await pollOnce({
                sqs: emulator.sqs,
                queueUrl: farm.frameQueueUrl,
                queueArn,
                region: emulator.region,
                handler: renderer,
            });
            if (outcome === "empty") {
                idle++;
                if (idle < (options.idleRounds ?? 1))
                    await new Promise((resolve) => setTimeout(resolve, options.idleDelayMs ?? 500));
            } else {
                idle = 0;
                counts[outcome]++;
            }
        }
        return counts;
    }

    async function getObject(bucket: string, key: string): Promise<Buffer> {
        const response = await emulator.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return Buffer.from(await response.Body!.transformToByteArray());
    }

    async function upload(key: string, file: string): Promise<void> {
        await emulator.s3.send(
            new PutObjectCommand({ Bucket: farm.scenesBucket, Key: key, Body: fs.readFileSync(file) }),
        );
    }

    async function listKeys(prefix: string): Promise<string[]> {
        const listed = await emulator.s3.send(new ListObjectsV2Command({ Bucket: farm.rendersBucket, Prefix: prefix }));
        return (listed.Contents ?? []).map((object) => object.Key!).sort();
    }

    it("renders a textured scene's frames pixel-identical to `blender -b -f N`", async function () {
        const scene = await makeScene({ texture: "textures/checker.png", frames: "1-4" });
        await upload("shots/textured/scene.blend", scene.blendPath);
        await upload("shots/textured/textures/checker.png", scene.texturePath!);
        const submitted = await api("POST", "/jobs", {
            scene: "shots/textured/scene.blend",
            assets: ["shots/textured/textures/checker.png"],
            frames: "1-3",
            jobId: "textured",
        });
        assert.strictEqual(submitted.statusCode, 202, JSON.stringify(submitted.body));
        assert.deepStrictEqual(await drainQueue(), { succeeded: 3, failed: 0 });

        const outDir = fs.mkdtempSync(path.join(os.tmpdir(), "render-path-compare-"));
        for (const frame of [1, 2, 3]) {
            const farmFrame = path.join(outDir, `farm_${frame}.png`);
            fs.writeFileSync(farmFrame, await getObject(farm.rendersBucket, frameOutputKey("textured", frame, "PNG")));
            const direct = await renderDirect(scene.blendPath, frame, outDir);
            const comparison = comparePngs(farmFrame, direct);
            assert.ok(comparison.sameShape, `frame ${frame}: same size and pixel format`);
            assert.strictEqual(
                comparison.differingSamples,
                0,
                `frame ${frame}: ${comparison.differingSamples} samples differ (max ${comparison.maxDifference})`,
            );
        }
        const status = await api("GET", "/jobs/textured");
        assert.strictEqual(status.statusCode, 200);
        assert.strictEqual(status.body.state, "complete");
        assert.deepStrictEqual(status.body.frames, { total: 3, done: 3, failed: 0, pending: 0 });
        assert.ok(status.body.renderSeconds > 0 && status.body.costUsd > 0, JSON.stringify(status.body));
        const record = JSON.parse(
            (await getObject(farm.rendersBucket, frameRecordKey("textured", 2))).toString(),
        ) as FrameRecord;
        assert.strictEqual(record.status, "done");
        assert.strictEqual(record.attempts, 1);
        assert.ok(record.wallMs >= record.blenderMs && record.blenderMs > 0);
        assert.strictEqual(record.memoryMb, 10240);
    });

    it("renders frames 1-3 of a 2016 .blend made by someone else, at 10 %", async function () {
        await upload("shared/cube-2016/scene.blend", CUBE_2016_SCENE);
        const submitted = await api("POST", "/jobs", {
            scene: "shared/cube-2016/scene.blend",
            frames: "1-3",
            resolution: { percentage: 10 },
            jobId: "cube-2016",
        });
        assert.strictEqual(submitted.statusCode, 202, JSON.stringify(submitted.body));
        assert.deepStrictEqual(await drainQueue(), { succeeded: 3, failed: 0 });
        assert.deepStrictEqual(await listKeys("renders/cube-2016/"), [
            "renders/cube-2016/frame_0001.png",
            "renders/cube-2016/frame_0002.png",
            "renders/cube-2016/frame_0003.png",
        ]);
        const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "cube-")), "frame.png");
        fs.writeFileSync(file, await getObject(farm.rendersBucket, "renders/cube-2016/frame_0001.png"));
        const png = decodePng(file);
        assert.ok(png.width > 0 && png.width <= 200, `10 % of the scene's width, got ${png.width}`);
        assert.strictEqual((await api("GET", "/jobs/cube-2016")).body.state, "complete");
    });

    for (const broken of ["no camera", "unreadable .blend"] as const) {
        it(`records a failing frame (${broken}), retries it after a short backoff, then dead-letters it and reports it failed`, async function () {
            const jobId = broken === "no camera" ? "no-camera" : "unreadable";
            const key = `broken/${jobId}.blend`;
            if (broken === "no camera") {
                await upload(key, (await makeScene({ noCamera: true })).blendPath);
            } else {
                await emulator.s3.send(
                    new PutObjectCommand({
                        Bucket: farm.scenesBucket,
                        Key: key,
                        Body: Buffer.concat([Buffer.from("BLENDER-v304"), Buffer.alloc(2048, 7)]),
                    }),
                );
            }
            // With the preflight on, the job API refuses both at submission (tests/preflight.test.ts); here the renderer meets them.
            const refused = await api("POST", "/jobs", { scene: key, frames: "1", jobId });
            assert.strictEqual(refused.statusCode, 400, JSON.stringify(refused.body));
            assert.strictEqual(refused.body.error.field, "scene");
            assert.strictEqual(
                (await api("POST", "/jobs", { scene: key, frames: "1", jobId }, jobApiWithoutPreflight)).statusCode,
                202,
            );

            assert.strictEqual(
                await pollOnce({
                    sqs: emulator.sqs,
                    queueUrl: farm.frameQueueUrl,
                    queueArn,
                    region: emulator.region,
                    handler: renderer,
                }),
                "failed",
            );
            const first = JSON.parse(
                (await getObject(farm.rendersBucket, frameRecordKey(jobId, 1))).toString(),
            ) as FrameRecord;
            assert.strictEqual(first.status, "retrying");
            assert.strictEqual(first.attempts, 1);
            assert.match(
                first.error!.code,
                broken === "no camera" ? /^no_camera$/ : /^(unreadable_scene|blender_failed)$/,
            );
            assert.ok(first.error!.message.length > 10, first.error!.message);
            assert.ok(first.logTail!.length > 0, "Blender's log tail is kept");

            // The backoff (1 s here) brings it back long before the queue's 120 s visibility timeout.
            const hiddenAt = Date.now();
            let secondOutcome = "empty";
            // Polled for up to half the visibility timeout: a frame left to that timeout could not be back by then.
            while (secondOutcome === "empty" && Date.now() - hiddenAt < (VISIBILITY_TIMEOUT_SECONDS * 1000) / 2) {
                secondOutcome = await pollOnce({
                    sqs: emulator.sqs,
                    queueUrl: farm.frameQueueUrl,
                    queueArn,
                    region: emulator.region,
                    handler: renderer,
                });
                if (secondOutcome === "empty") await new Promise((resolve) => setTimeout(resolve, 200));
            }
            assert.strictEqual(secondOutcome, "failed", "retried after its backoff, not the visibility timeout");
            assert.ok(Date.now() - hiddenAt >= 900, "not before the backoff");
            const second = JSON.parse(
                (await getObject(farm.rendersBucket, frameRecordKey(jobId, 1))).toString(),
            ) as FrameRecord;
            assert.strictEqual(second.status, "failed");
            assert.strictEqual(second.attempts, MAX_RECEIVE_COUNT);

            // After maxReceiveCount receives SQS moves it to the DLQ instead of delivering it again.
            await new Promise((resolve) => setTimeout(resolve, 2500));
            assert.strictEqual(
                await pollOnce({
                    sqs: emulator.sqs,
                    queueUrl: farm.frameQueueUrl,
                    queueArn,
                    region: emulator.region,
                    handler: renderer,
                }),
                "empty",
            );
            const dead = await emulator.sqs.send(
                new ReceiveMessageCommand({ QueueUrl: farm.deadLetterQueueUrl, MaxNumberOfMessages: 10 }),
            );
            assert.ok(
                (dead.Messages ?? []).some((message) => JSON.parse(message.Body!).jobId === jobId),
                "the frame is in the DLQ",
            );

            const status = await api("GET", `/jobs/${jobId}`);
            assert.strictEqual(status.body.state, "failed");
            assert.deepStrictEqual(status.body.frames, { total: 1, done: 0, failed: 1, pending: 0 });
            assert.strictEqual(status.body.failures[0].frame, 1);
            assert.strictEqual(status.body.failures[0].attempts, MAX_RECEIVE_COUNT);
            assert.ok(status.body.failures[0].error.length > 10 && status.body.failures[0].logTail.length > 0);
        });
    }

    it("rewrites the same keys on a duplicate delivery and counts the frame once", async function () {
        const scene = await makeScene({ frames: "1-4" });
        await upload("dup/scene.blend", scene.blendPath);
        assert.strictEqual(
            (await api("POST", "/jobs", { scene: "dup/scene.blend", frames: "1-2", jobId: "duplicate" })).statusCode,
            202,
        );
        // Capture frame 1's message and deliver it again, as SQS's at-least-once delivery may.
        const received = await emulator.sqs.send(
            new ReceiveMessageCommand({ QueueUrl: farm.frameQueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 0 }),
        );
        const frameOne = (received.Messages ?? []).find((message) => JSON.parse(message.Body!).frame === 1)!;
        await emulator.sqs.send(new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: frameOne.Body! }));
        assert.deepStrictEqual(await drainQueue(), { succeeded: 3, failed: 0 });
        assert.deepStrictEqual(await listKeys("renders/duplicate/"), [
            "renders/duplicate/frame_0001.png",
            "renders/duplicate/frame_0002.png",
        ]);
        // One record per frame (beside them, the job's summary shards: frames/summary/).
        assert.deepStrictEqual(
            (await listKeys("jobs/duplicate/frames/")).filter(
                (key) => !key.startsWith("jobs/duplicate/frames/summary/"),
            ),
            ["jobs/duplicate/frames/1.json", "jobs/duplicate/frames/2.json"],
        );
        const status = await api("GET", "/jobs/duplicate");
        assert.deepStrictEqual(status.body.frames, { total: 2, done: 2, failed: 0, pending: 0 });
        assert.strictEqual(status.body.state, "complete");

        // A late duplicate, after the scene was replaced: the frame stays done instead of failing on the new version.
        const recordBefore = (await getObject(farm.rendersBucket, frameRecordKey("duplicate", 1))).toString();
        await upload("dup/scene.blend", (await makeScene({ frames: "1-4", samples: 2 })).blendPath);
        await emulator.sqs.send(new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: frameOne.Body! }));
        assert.deepStrictEqual(await drainQueue(), { succeeded: 1, failed: 0 });
        assert.strictEqual(
            (await getObject(farm.rendersBucket, frameRecordKey("duplicate", 1))).toString(),
            recordBefore,
            "the done record is left as it was",
        );
        assert.strictEqual((await api("GET", "/jobs/duplicate")).body.state, "complete");
    });

    it("downloads no scene bytes for a second frame of the same scene on a warm renderer", async function () {
        const scene = await makeScene({ frames: "1-4" });
        await upload("warm/scene.blend", scene.blendPath);
        assert.strictEqual(
            (await api("POST", "/jobs", { scene: "warm/scene.blend", frames: "3-4", jobId: "warm" })).statusCode,
            202,
        );
        sceneGets.length = 0;
        assert.strictEqual(
            await pollOnce({
                sqs: emulator.sqs,
                queueUrl: farm.frameQueueUrl,
                queueArn,
                region: emulator.region,
                handler: renderer,
            }),
            "succeeded",
        );
        assert.deepStrictEqual(sceneGets, ["warm/scene.blend"], "the first frame downloads the scene");
        assert.strictEqual(
            await pollOnce({
                sqs: emulator.sqs,
                queueUrl: farm.frameQueueUrl,
                queueArn,
                region: emulator.region,
                handler: renderer,
            }),
            "succeeded",
        );
        assert.deepStrictEqual(sceneGets, ["warm/scene.blend"], "the second frame downloads nothing of the scene");
        assert.deepStrictEqual(await listKeys("renders/warm/"), [
            "renders/warm/frame_0003.png",
            "renders/warm/frame_0004.png",
        ]);
        // Nothing but the cached scene is left in the work dir between frames.
        const left: string[] = [];
        const walk = (dir: string): void => {
            for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
                if (entry.isDirectory()) walk(path.join(dir, entry.name));
                else left.push(path.relative(rendererSettings.workDir, path.join(dir, entry.name)));
            }
        };
        walk(rendererSettings.workDir);
        assert.deepStrictEqual(left, [path.join("scenes", "warm", "scene.blend")]);
    });

    it("accepts the unversioned frame message {file_name, frame, support_files}", async function () {
        const scene = await makeScene({ frames: "1-4" });
        await upload("legacy/shot.blend", scene.blendPath);
        await emulator.sqs.send(
            new SendMessageCommand({
                QueueUrl: farm.frameQueueUrl,
                MessageBody: JSON.stringify({ file_name: "legacy/shot.blend", frame: 2, support_files: [] }),
            }),
        );
        assert.deepStrictEqual(await drainQueue(), { succeeded: 1, failed: 0 });
        const jobId = legacyJobId("legacy/shot.blend");
        assert.match(jobId, /^legacy-legacy-shot-[0-9a-f]{8}$/);
        assert.notStrictEqual(legacyJobId("Legacy/Shot.blend"), jobId, "keys differing only in case get their own job");
        assert.deepStrictEqual(await listKeys(`renders/${jobId}/`), [`renders/${jobId}/frame_0002.png`]);
    });
});
