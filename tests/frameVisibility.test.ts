// A frame in flight is held no longer than its invocation can last: the renderer cuts the message's
// visibility, at frame start, from the queue's long timeout (6 x the renderer's timeout, for throttled invocations) to
// the invocation's remaining time plus a margin, so a renderer killed mid-frame gives its frame back minutes later.
// The local farm leaves this to its worker pool's heartbeat. The job API's stale threshold outlasts all of it.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import { FrameMessage } from "../functions/shared/contract";
import { createRendererHandler } from "../functions/renderer/consumer";
import { RendererSettings } from "../functions/renderer/settings";
import { jobApiSettingsFromEnvironment } from "../functions/jobApi/settings";
import { FARM_SETTINGS } from "../functions/shared/farmSettings";
import { frameVisibilityTimeoutSeconds } from "../functions/shared/farmTiming";
import { jobApiEnvironment } from "../functions/shared/functionEnvironment";
import { sqsRecordOf } from "../local/eventSourcePoller";
import { localRendererSettings } from "../local/localRenderer";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { DEFAULT_RENDER_LIMITS } from "../functions/renderer/settings";

/** The stack's frame queue at its default renderer timeout hides a received frame this long. */
const QUEUE_VISIBILITY_SECONDS = frameVisibilityTimeoutSeconds(FARM_SETTINGS.rendererTimeout.defaultValue);

describe("a frame in flight is held no longer than its invocation", function () {
    this.timeout(120_000);
    let emulator: Emulator;
    let farm: FarmResources;
    let work: string;

    before(async function () {
        emulator = await startEmulator({ port: 0 });
        farm = await createFarmResources(emulator, {
            name: "hold",
            maxReceiveCount: 3,
            visibilityTimeoutSeconds: QUEUE_VISIBILITY_SECONDS,
        });
        work = fs.mkdtempSync(path.join(os.tmpdir(), "frame-hold-"));
        await emulator.s3.send(new PutObjectCommand({ Bucket: farm.scenesBucket, Key: "hold/scene.blend", Body: "x" }));
    });

    after(async function () {
        await emulator?.stop();
    });

    /** A Blender stand-in that says it started (a marker file), then waits a moment and fails. */
    function slowBlender(marker: string): string {
        const file = path.join(work, "blender-that-waits");
        fs.writeFileSync(file, ["#!/bin/sh", `touch ${JSON.stringify(marker)}`, "sleep 2", "exit 1", ""].join("\n"), {
            mode: 0o755,
        });
        return file;
    }

    /** Sends one frame message and receives it as the event source mapping would (the queue's own visibility). */
    async function receivedFrame(jobId: string): Promise<SQSRecord> {
        const message: FrameMessage = {
            v: 1,
            jobId,
            frame: 1,
            scene: "hold/scene.blend",
            sceneEtag: "",
            assets: [],
            settings: { format: "PNG" },
            output: { bucket: farm.rendersBucket, key: `renders/${jobId}/frame_0001.png` },
        };
        await emulator.sqs.send(
            new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: JSON.stringify(message) }),
        );
        const reply = await emulator.sqs.send(
            new ReceiveMessageCommand({
                QueueUrl: farm.frameQueueUrl,
                MaxNumberOfMessages: 1,
                MessageSystemAttributeNames: ["All"],
            }),
        );
        const received = reply.Messages![0];
        return sqsRecordOf(received, "arn:aws:sqs:us-east-1:000000000000:hold-frames", emulator.region);
    }

    function visibleAt(receiptHandle: string): number {
        const entry = emulator
            .inspectQueue(farm.frameQueueUrl)!
            .inFlight.find((m) => m.receiptHandle === receiptHandle);
        assert.ok(entry, "the message is in flight");
        return entry.visibleAt;
    }

    async function untilExists(file: string): Promise<void> {
        for (let waited = 0; !fs.existsSync(file); waited += 50) {
            assert.ok(waited < 30_000, `${file} never appeared`);
            await new Promise((resolve) => setTimeout(resolve, 50));
        }
    }

    function rendererSettings(blenderPath: string, name: string): RendererSettings {
        return {
            scenesBucket: farm.scenesBucket,
            rendersBucket: farm.rendersBucket,
            frameQueueUrl: farm.frameQueueUrl,
            maxReceiveCount: 3,
            failureBackoffSeconds: 5,
            memoryMb: 1024,
            blenderPath,
            workDir: path.join(work, name),
            threads: 1,
            defaultTimeoutMs: 900_000,
            limits: DEFAULT_RENDER_LIMITS,
        };
    }

    it("on Lambda: at frame start, the message is hidden for the invocation's remaining time plus 30 s, not the queue's 90 minutes", async function () {
        const record = await receivedFrame("hold-lambda");
        const received = Date.now();
        assert.ok(visibleAt(record.receiptHandle) >= received + (QUEUE_VISIBILITY_SECONDS - 5) * 1000);
        const marker = path.join(work, "lambda-started");
        const handler = createRendererHandler({
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: rendererSettings(slowBlender(marker), "lambda"),
        });
        const remainingMs = 120_000;
        const invocation = handler({ Records: [record] }, { getRemainingTimeInMillis: () => remainingMs });
        await untilExists(marker);
        // Blender is running: a renderer killed now would give its frame back within the invocation's time.
        const held = visibleAt(record.receiptHandle) - Date.now();
        assert.ok(held <= (remainingMs / 1000 + 30) * 1000, `hidden for ${Math.round(held / 1000)} s more`);
        assert.ok(held >= (remainingMs / 1000 + 30 - 10) * 1000, `hidden for ${Math.round(held / 1000)} s more`);
        const reply = await invocation;
        assert.deepStrictEqual(reply.batchItemFailures, [{ itemIdentifier: record.messageId }]);
        // And the failed frame comes back after its backoff, as before.
        assert.ok(visibleAt(record.receiptHandle) - Date.now() <= 5_000);
    });

    it("on the local farm: the renderer leaves a frame's visibility to the worker pool's heartbeat", async function () {
        const settings = localRendererSettings({
            resources: farm,
            maxReceiveCount: 3,
            failureBackoffSeconds: 5,
            blenderPath: "blender",
            workDir: path.join(work, "local"),
            workers: 1,
        });
        assert.strictEqual(settings.holdFrameVisibility, false);
        const record = await receivedFrame("hold-local");
        const marker = path.join(work, "local-started");
        const handler = createRendererHandler({
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: { ...settings, blenderPath: slowBlender(marker) },
        });
        const before = visibleAt(record.receiptHandle);
        const invocation = handler({ Records: [record] });
        await untilExists(marker);
        assert.strictEqual(visibleAt(record.receiptHandle), before, "untouched while the frame renders");
        await invocation;
    });

    it("the stack's job API counts a frame as lost only after it could have been hidden, rendered and backed off", function () {
        for (const rendererTimeoutSeconds of [60, 300, 900]) {
            const settings = jobApiSettingsFromEnvironment(
                jobApiEnvironment(
                    { scenesBucket: "s", rendersBucket: "r", frameQueueUrl: "q", deadLetterQueueUrl: "d" },
                    {
                        maxFramesPerJob: 100,
                        maxResolution: 4096,
                        allowedEngines: ["CYCLES"],
                        maxReceiveCount: 3,
                        rendererEphemeralStorage: 10240,
                        preflight: true,
                        rendererTimeout: rendererTimeoutSeconds,
                        failureBackoffSeconds: 10,
                        maxConcurrency: 100,
                    },
                ),
            );
            const visibility = frameVisibilityTimeoutSeconds(rendererTimeoutSeconds);
            assert.ok(
                settings.staleAfterSeconds! >= visibility + rendererTimeoutSeconds,
                `timeout ${rendererTimeoutSeconds}: stale after ${settings.staleAfterSeconds} s, visibility ${visibility} s`,
            );
        }
    });
});
