// `render-farm serve` as a user meets it: a child process, reached only through wire protocols (an S3 client
// configured from outputs.json, HTTP for the job API and the Lambda invoke path), with real Blender.
// Then crashes: SIGKILL mid-job, SIGTERM mid-frame, frames lost while it was down.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import { DeleteMessageCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import type { FarmOutputs, JobStatus } from "../functions/shared/contract";
import { startEmulator } from "../local/emulator";
import { processesWorkingIn } from "../local/processes";
import {
    api,
    frameKeys,
    frameRecords,
    listKeys,
    range,
    s3Of,
    uploadFile,
    waitFor,
    waitForJobEnd,
} from "./support/farmClient";
import { decodePng, makeScene } from "./support/scenes";
import { ServeProcess, startServe, stopServe } from "./support/serveProcess";

const OUTPUT_KEYS = [
    "apiUrl",
    "scenesBucket",
    "rendersBucket",
    "frameQueueUrl",
    "deadLetterQueueUrl",
    "rendererFunctionName",
    "jobApiFunctionName",
    "imageUri",
    "region",
    "awsEndpoint",
];
const WIDTH = 64;
const HEIGHT = 48;

function newDataDir(): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), "local-farm-"));
}

async function uploadScene(outputs: FarmOutputs, key: string, frames: string): Promise<void> {
    const scene = await makeScene({ frames, resolutionX: WIDTH, resolutionY: HEIGHT, samples: 4 });
    await uploadFile(outputs, key, scene.blendPath);
}

/** GET /jobs/{jobId} until the job ends; it must have completed. */
async function waitForJob(outputs: FarmOutputs, jobId: string, timeoutMs: number): Promise<JobStatus> {
    const status = await waitForJobEnd(outputs, jobId, timeoutMs, 200);
    assert.strictEqual(status.state, "complete", JSON.stringify(status));
    return status;
}

/** Listening TCP sockets on `port`, as "address:port" from /proc/net/tcp{,6}. */
function listeners(port: number): string[] {
    const found: string[] = [];
    for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
        for (const line of fs.readFileSync(file, "utf8").split("\n").slice(1)) {
            const fields = line.trim().split(/\s+/);
            if (fields.length < 4 || fields[3] !== "0A") continue;
            const [hexAddress, hexPort] = fields[1].split(":");
            if (parseInt(hexPort, 16) !== port) continue;
            // IPv4 is stored as one little-endian word; IPv6 as four.
            const address =
                hexAddress.length === 8
                    ? (hexAddress.match(/../g) ?? [])
                          .reverse()
                          .map((byte) => parseInt(byte, 16))
                          .join(".")
                    : `[${hexAddress}]`;
            found.push(`${address}:${port}`);
        }
    }
    return found;
}

describe("render-farm serve (the local farm, over the wire)", function () {
    describe("a running farm", function () {
        let dataDir: string;
        let serve: ServeProcess;
        let outputs: FarmOutputs;

        before(async function () {
            dataDir = newDataDir();
            serve = await startServe(["--port", "0", "--workers", "2", "--data-dir", dataDir]);
            outputs = serve.outputs;
        });

        after(async function () {
            await stopServe(serve);
        });

        it("prints its outputs and writes the same to <data-dir>/outputs.json", function () {
            assert.deepStrictEqual(Object.keys(outputs).sort(), [...OUTPUT_KEYS].sort());
            assert.deepStrictEqual(JSON.parse(fs.readFileSync(path.join(dataDir, "outputs.json"), "utf8")), outputs);
            assert.match(outputs.apiUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
            assert.match(outputs.awsEndpoint!, /^http:\/\/127\.0\.0\.1:\d+$/);
            assert.ok(outputs.frameQueueUrl.startsWith(`${outputs.awsEndpoint}/`), outputs.frameQueueUrl);
        });

        it("listens on 127.0.0.1 only: the job API and the S3/SQS emulator", function () {
            for (const url of [outputs.apiUrl, outputs.awsEndpoint!]) {
                const port = Number(new URL(url).port);
                assert.deepStrictEqual(listeners(port), [`127.0.0.1:${port}`], `listening sockets on ${url}`);
            }
        });

        it("renders a job submitted over HTTP from a scene uploaded with a plain S3 client", async function () {
            await uploadScene(outputs, "shots/wire/scene.blend", "1-4");
            const submitted = await api(outputs, "POST", "/jobs", {
                scene: "shots/wire/scene.blend",
                frames: "1-3",
                jobId: "wire",
            });
            assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));
            assert.deepStrictEqual(submitted.body, {
                jobId: "wire",
                frames: 3,
                queued: 3,
                state: "queued",
                statusUrl: "/jobs/wire",
            });
            const status = await waitForJob(outputs, "wire", 120_000);
            assert.deepStrictEqual(status.frames, { total: 3, done: 3, failed: 0, pending: 0 });

            assert.deepStrictEqual((await listKeys(outputs, "renders/wire/")).sort(), frameKeys("wire", [1, 2, 3]));
            const s3 = s3Of(outputs);
            const work = fs.mkdtempSync(path.join(os.tmpdir(), "local-farm-frames-"));
            for (const key of frameKeys("wire", [1, 2, 3])) {
                const object = await s3.send(new GetObjectCommand({ Bucket: outputs.rendersBucket, Key: key }));
                const file = path.join(work, path.basename(key));
                fs.writeFileSync(file, await object.Body!.transformToByteArray());
                const png = decodePng(file);
                assert.deepStrictEqual([png.width, png.height], [WIDTH, HEIGHT], key);
            }
            s3.destroy();
            assert.match(serve.stderr(), /frame 2 of job wire \(worker \d, [\d.]+ s\): done/);
        });

        it("answers unknown routes and oversized bodies with JSON errors", async function () {
            const unknown = await api(outputs, "GET", "/nothing-here");
            assert.strictEqual(unknown.status, 404);
            assert.strictEqual(unknown.body.error.code, "not_found");
            const oversized = await api(
                outputs,
                "POST",
                "/jobs",
                JSON.stringify({ scene: "x.blend", padding: "x".repeat(300 * 1024) }),
            );
            assert.strictEqual(oversized.status, 413);
            assert.deepStrictEqual([oversized.body.error.code, oversized.body.error.field], ["body_too_large", "body"]);
            const invalid = await api(outputs, "POST", "/jobs", { scene: "missing/scene.blend" });
            assert.strictEqual(invalid.status, 422, "the producer handler answers, through the adapter");
            assert.deepStrictEqual(invalid.body.error.missing, ["missing/scene.blend"]);
        });

        it("renders one frame posted as an SQS event to the Lambda invoke path", async function () {
            await uploadScene(outputs, "shots/invoke/scene.blend", "1-4");
            const s3 = s3Of(outputs);
            const head = await s3.send(
                new HeadObjectCommand({ Bucket: outputs.scenesBucket, Key: "shots/invoke/scene.blend" }),
            );
            const message = {
                v: 1,
                jobId: "invoked",
                frame: 2,
                scene: "shots/invoke/scene.blend",
                sceneEtag: head.ETag,
                assets: [],
                settings: { format: "PNG" },
                output: { bucket: outputs.rendersBucket, key: "renders/invoked/frame_0002.png" },
            };
            const record = (id: string, body: unknown) => ({
                messageId: id,
                receiptHandle: `not-from-a-queue-${id}`,
                body: JSON.stringify(body),
                attributes: {
                    ApproximateReceiveCount: "1",
                    SentTimestamp: String(Date.now()),
                    SenderId: "test",
                    ApproximateFirstReceiveTimestamp: String(Date.now()),
                },
                messageAttributes: {},
                md5OfBody: "",
                eventSource: "aws:sqs",
                eventSourceARN: "arn:aws:sqs:us-east-1:000000000000:render-farm-frames",
                awsRegion: "us-east-1",
            });
            const invoke = (event: string) =>
                fetch(`${outputs.apiUrl}/2015-03-31/functions/function/invocations`, { method: "POST", body: event });

            const ok = await invoke(JSON.stringify({ Records: [record("good", message)] }));
            assert.strictEqual(ok.status, 200);
            assert.deepStrictEqual(await ok.json(), { batchItemFailures: [] });
            const object = await s3.send(
                new GetObjectCommand({ Bucket: outputs.rendersBucket, Key: "renders/invoked/frame_0002.png" }),
            );
            const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "local-farm-invoke-")), "frame.png");
            fs.writeFileSync(file, await object.Body!.transformToByteArray());
            assert.deepStrictEqual([decodePng(file).width, decodePng(file).height], [WIDTH, HEIGHT]);

            const missing = await invoke(
                JSON.stringify({
                    Records: [
                        record("bad", {
                            ...message,
                            frame: 3,
                            scene: "shots/none/scene.blend",
                            output: { ...message.output, key: "renders/invoked/frame_0003.png" },
                        }),
                    ],
                }),
            );
            assert.deepStrictEqual(await missing.json(), { batchItemFailures: [{ itemIdentifier: "bad" }] });
            const notJson = await invoke("{not json");
            assert.strictEqual(notJson.status, 400);
            assert.strictEqual(notJson.headers.get("x-amzn-errortype"), "InvalidRequestContentException");
            s3.destroy();
        });

        it("refuses a second farm on the same data dir", async function () {
            await assert.rejects(
                startServe(["--port", "0", "--workers", "1", "--data-dir", dataDir], 30_000),
                /in use by another local farm \(process \d+/,
            );
        });
    });

    describe("crashes and stops", function () {
        let serve: ServeProcess | undefined;

        afterEach(async function () {
            await stopServe(serve);
            serve = undefined;
        });

        it("finishes a job SIGKILLed mid-frame once restarted on the same data dir, every frame exactly once", async function () {
            const dataDir = newDataDir();
            const frames = range(1, 10);
            serve = await startServe(["--port", "0", "--workers", "1", "--data-dir", dataDir]);
            await uploadScene(serve.outputs, "shots/crash/scene.blend", "1-10");
            assert.strictEqual(
                (await api(serve.outputs, "POST", "/jobs", { scene: "shots/crash/scene.blend", jobId: "crash" }))
                    .status,
                202,
            );
            const outputs = serve.outputs;
            // Killed while Blender renders a frame, with some frames done and some still queued.
            await waitFor("3 frames done and a 4th rendering", 120_000, async () => {
                const status = (await api(outputs, "GET", "/jobs/crash")).body;
                return status.frames.done >= 3 && processesWorkingIn(path.join(dataDir, "work")).length > 0
                    ? true
                    : undefined;
            });
            const doneBeforeKill = (await api(outputs, "GET", "/jobs/crash")).body.frames.done;
            assert.ok(doneBeforeKill < frames.length, "the job must still be running when the farm is killed");
            const killedAt = Date.now();
            serve.child.kill("SIGKILL");
            await serve.exited;

            serve = await startServe(["--port", "0", "--workers", "1", "--data-dir", dataDir]);
            const readyAt = Date.now();
            const status = await waitForJob(serve.outputs, "crash", 180_000);
            const recoveredAt = Date.now();
            assert.match(
                serve.stderr(),
                /put 1 frame\(s\) that were rendering when the farm last stopped back in the queue/,
            );
            assert.deepStrictEqual(status.frames, { total: 10, done: 10, failed: 0, pending: 0 });
            assert.deepStrictEqual(
                (await listKeys(serve.outputs, "renders/crash/")).sort(),
                frameKeys("crash", frames),
            );
            const records = await frameRecords(serve.outputs, "crash");
            assert.deepStrictEqual(
                records.map((record) => record.frame).sort((a, b) => a - b),
                frames,
            );
            assert.ok(
                records.every((record) => record.status === "done"),
                JSON.stringify(records.filter((record) => record.status !== "done")),
            );
            console.log(
                `      recovery: ${doneBeforeKill} frames done at SIGKILL; restart ready ${((readyAt - killedAt) / 1000).toFixed(1)} s after the kill; the remaining ${frames.length - doneBeforeKill} frames done ${((recoveredAt - readyAt) / 1000).toFixed(1)} s later`,
            );
        });

        it("stops cleanly on SIGTERM mid-frame, putting the frame back for the next start", async function () {
            const dataDir = newDataDir();
            serve = await startServe(["--port", "0", "--workers", "1", "--data-dir", dataDir]);
            await uploadScene(serve.outputs, "shots/term/scene.blend", "1-4");
            assert.strictEqual(
                (
                    await api(serve.outputs, "POST", "/jobs", {
                        scene: "shots/term/scene.blend",
                        frames: "1-4",
                        jobId: "term",
                    })
                ).status,
                202,
            );
            await waitFor("a frame rendering", 60_000, async () =>
                processesWorkingIn(path.join(dataDir, "work")).length > 0 ? true : undefined,
            );
            const signalledAt = Date.now();
            serve.child.kill("SIGTERM");
            const exit = await serve.exited;
            const stopMs = Date.now() - signalledAt;
            assert.deepStrictEqual(exit, { code: 0, signal: null }, serve.stderr());
            assert.ok(stopMs < 8000, `stopping took ${stopMs} ms`);
            assert.match(serve.stderr(), /stopped frame \d of job term and put it back in the queue/);
            assert.deepStrictEqual(processesWorkingIn(path.join(dataDir, "work")), [], "no Blender left running");
            assert.ok(!fs.existsSync(path.join(dataDir, "outputs.json")), "outputs.json of a stopped farm is removed");

            // What the farm left on disk: nothing in flight, every unfinished frame waiting.
            const emulator = await startEmulator({ dataDir: path.join(dataDir, "emulator") });
            const left = emulator.inspectQueue("render-farm-frames")!;
            await emulator.stop();
            assert.strictEqual(left.inFlight.length, 0, "the interrupted frame's message was released");
            const waitingFrames = left.waiting.map((body) => JSON.parse(body).frame);

            serve = await startServe(["--port", "0", "--workers", "1", "--data-dir", dataDir]);
            const status = await waitForJob(serve.outputs, "term", 120_000);
            assert.doesNotMatch(
                serve.stderr(),
                /put \d+ frame\(s\)/,
                "nothing was left in flight for the start to release",
            );
            assert.deepStrictEqual(status.frames, { total: 4, done: 4, failed: 0, pending: 0 });
            const records = await frameRecords(serve.outputs, "term");
            assert.ok(
                records.every((record) => record.status === "done" && !record.error),
                "the stopped frame left no failure record",
            );
            const interrupted = records.filter((record) => record.attempts === 2).map((record) => record.frame);
            assert.strictEqual(
                interrupted.length,
                1,
                `one frame was received twice: ${JSON.stringify(records.map((record) => [record.frame, record.attempts]))}`,
            );
            assert.ok(
                waitingFrames.includes(interrupted[0]),
                `frame ${interrupted[0]} was back in the queue after the stop`,
            );
            assert.deepStrictEqual(
                (await listKeys(serve.outputs, "renders/term/")).sort(),
                frameKeys("term", [1, 2, 3, 4]),
            );
            console.log(`      SIGTERM mid-frame: exited 0 after ${stopMs} ms`);
        });

        it("requeues on start the frames of a job that are neither rendered nor queued", async function () {
            const dataDir = newDataDir();
            serve = await startServe(["--port", "0", "--workers", "1", "--data-dir", dataDir]);
            await uploadScene(serve.outputs, "shots/lost/scene.blend", "1-4");
            assert.strictEqual(
                (
                    await api(serve.outputs, "POST", "/jobs", {
                        scene: "shots/lost/scene.blend",
                        frames: "1-4",
                        jobId: "lost",
                    })
                ).status,
                202,
            );
            // Killed at once: at most the first frame has been picked up.
            serve.child.kill("SIGKILL");
            await serve.exited;

            // Two waiting frame messages vanish while no farm runs (what persistence alone could not bring back).
            const emulator = await startEmulator({ dataDir: path.join(dataDir, "emulator") });
            const queueUrl = `${emulator.endpoint}/000000000000/render-farm-frames`;
            const received = await emulator.sqs.send(
                new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 2 }),
            );
            assert.strictEqual(received.Messages?.length, 2);
            const lostFrames = received.Messages!.map((message) => JSON.parse(message.Body!).frame);
            for (const message of received.Messages!)
                await emulator.sqs.send(
                    new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle! }),
                );
            await emulator.stop();

            serve = await startServe(["--port", "0", "--workers", "1", "--data-dir", dataDir]);
            const status = await waitForJob(serve.outputs, "lost", 120_000);
            assert.match(serve.stderr(), /requeued 2 frame\(s\) of job lost that were neither rendered nor queued/);
            assert.deepStrictEqual(status.frames, { total: 4, done: 4, failed: 0, pending: 0 });
            assert.deepStrictEqual(
                (await listKeys(serve.outputs, "renders/lost/")).sort(),
                frameKeys("lost", [1, 2, 3, 4]),
            );
            const records = await frameRecords(serve.outputs, "lost");
            assert.deepStrictEqual(
                records
                    .filter((record) => lostFrames.includes(record.frame))
                    .map((record) => [record.frame, record.status, record.attempts]),
                lostFrames.sort((a, b) => a - b).map((frame) => [frame, "done", 1]),
                "each lost frame was queued once more and rendered once",
            );
        });
    });
});
