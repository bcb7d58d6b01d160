// What ships is what was tested: the job API archive a mocked `pulumi up` serializes, unpacked and run by the
// Lambda runtime client as the nodejs22.x runtime runs it, against the S3/SQS emulator over HTTP.
import * as assert from "assert";
import * as fs from "fs";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { DeleteMessageCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { FrameMessage, frameOutputKey } from "../functions/shared/contract";
import { Emulator, FarmResources, createFarmResources, startEmulator } from "../local/emulator";
import { ShippedJobApi, shippedJobApi } from "./support/jobApiArchive";
import { makeScene } from "./support/scenes";

function httpEvent(routeKey: string, rawPath: string, body?: unknown, pathParameters?: Record<string, string>) {
    const [method] = routeKey.split(" ");
    return {
        version: "2.0",
        routeKey,
        rawPath,
        rawQueryString: "",
        headers: { "content-type": "application/json" },
        requestContext: { http: { method, path: rawPath } },
        pathParameters,
        body: body === undefined ? undefined : JSON.stringify(body),
        isBase64Encoded: false,
    };
}

describe("the serialized job API archive, run by the Lambda runtime client", function () {
    let emulator: Emulator;
    let farm: FarmResources;
    let shipped: ShippedJobApi;

    before(async function () {
        // The first run on a machine installs image/package.json (a native addon build) unless npm test did.
        this.timeout(15 * 60_000);
        emulator = await startEmulator();
        farm = await createFarmResources(emulator, {
            name: "serialized",
            maxReceiveCount: 3,
            visibilityTimeoutSeconds: 60,
            receiveWaitTimeSeconds: 0,
        });
        shipped = await shippedJobApi(emulator, farm);
        // The job API reads the scene (frame range, camera, referenced files) before it queues anything.
        await emulator.s3.send(
            new PutObjectCommand({
                Bucket: farm.scenesBucket,
                Key: "shots/a/shot.blend",
                Body: fs.readFileSync((await makeScene()).blendPath),
            }),
        );
        await emulator.s3.send(
            new PutObjectCommand({ Bucket: farm.scenesBucket, Key: "shots/a/textures/wood.png", Body: "png" }),
        );
    });

    after(async function () {
        await shipped?.stop();
        await emulator?.stop();
    });

    it("accepts a job and queues one versioned message per frame", async function () {
        const request = {
            scene: "shots/a/shot.blend",
            assets: ["shots/a/textures/wood.png"],
            frames: "1-9x2,20",
            engine: "CYCLES",
            samples: 8,
            format: "JPEG",
            jobId: "shipped-archive",
        };
        const reply = await shipped.invoke(httpEvent("POST /jobs", "/jobs", request));
        assert.strictEqual(reply.statusCode, 202, JSON.stringify(reply.body));
        assert.strictEqual(reply.body.jobId, "shipped-archive");
        assert.strictEqual(reply.body.frames, 6);

        const messages: FrameMessage[] = [];
        for (let round = 0; round < 10 && messages.length < 6; round++) {
            const received = await emulator.sqs.send(
                new ReceiveMessageCommand({ QueueUrl: farm.frameQueueUrl, MaxNumberOfMessages: 10 }),
            );
            for (const message of received.Messages ?? []) {
                messages.push(JSON.parse(message.Body!));
                await emulator.sqs.send(
                    new DeleteMessageCommand({ QueueUrl: farm.frameQueueUrl, ReceiptHandle: message.ReceiptHandle! }),
                );
            }
        }
        assert.deepStrictEqual(
            messages.map((message) => message.frame).sort((a, b) => a - b),
            [1, 3, 5, 7, 9, 20],
        );
        for (const message of messages) {
            assert.strictEqual(message.v, 1);
            assert.strictEqual(message.jobId, "shipped-archive");
            assert.strictEqual(message.scene, "shots/a/shot.blend");
            assert.ok(message.sceneEtag.length > 0);
            assert.deepStrictEqual(message.assets, ["shots/a/textures/wood.png"]);
            assert.deepStrictEqual(message.settings, { engine: "CYCLES", samples: 8, format: "JPEG" });
            assert.deepStrictEqual(message.output, {
                bucket: farm.rendersBucket,
                key: frameOutputKey("shipped-archive", message.frame, "JPEG"),
            });
        }

        const status = await shipped.invoke(
            httpEvent("GET /jobs/{jobId}", "/jobs/shipped-archive", undefined, { jobId: "shipped-archive" }),
        );
        assert.strictEqual(status.statusCode, 200);
        assert.deepStrictEqual(status.body.frames, { total: 6, done: 0, failed: 0, pending: 6 });
        assert.strictEqual(status.body.state, "queued");

        // The queue is empty (the messages above were taken and never rendered): a retry requeues all six, through
        // the queue progress and the frame summary the archive carries.
        const retry = await shipped.invoke(
            httpEvent("POST /jobs/{jobId}/retry", "/jobs/shipped-archive/retry", undefined, {
                jobId: "shipped-archive",
            }),
        );
        assert.strictEqual(retry.statusCode, 202, JSON.stringify(retry.body));
        assert.strictEqual(retry.body.lost, 6);
        const after = await shipped.invoke(
            httpEvent("GET /jobs/{jobId}", "/jobs/shipped-archive", undefined, { jobId: "shipped-archive" }),
        );
        assert.deepStrictEqual(after.body.pendingBy, { retrying: 0, requeued: 6, notStarted: 0 });
    });

    it("names the missing objects and a bad field, as the tested handler does", async function () {
        const missing = await shipped.invoke(
            httpEvent("POST /jobs", "/jobs", {
                scene: "shots/a/shot.blend",
                assets: ["shots/a/textures/gone.png"],
                frames: "1",
            }),
        );
        assert.strictEqual(missing.statusCode, 422);
        assert.strictEqual(missing.body.error.code, "missing_objects");
        assert.deepStrictEqual(missing.body.error.missing, ["shots/a/textures/gone.png"]);

        const bad = await shipped.invoke(
            httpEvent("POST /jobs", "/jobs", { scene: "shots/a/shot.blend", frames: "5-1" }),
        );
        assert.strictEqual(bad.statusCode, 400);
        assert.strictEqual(bad.body.error.field, "frames");

        const unknown = await shipped.invoke(
            httpEvent("GET /jobs/{jobId}", "/jobs/nope", undefined, { jobId: "nope" }),
        );
        assert.strictEqual(unknown.statusCode, 404);
    });
});
