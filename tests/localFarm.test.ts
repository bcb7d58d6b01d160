// `render-farm serve` as a user meets it: a child process, reached only through wire protocols (an S3 client
// configured from outputs.json, HTTP for the job API and the Lambda invoke path), with real Blender.
// Then crashes: SIGKILL mid-job, SIGTERM mid-frame, frames lost while it was down.
import * as assert from "assert";
import { execFile } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { DeleteObjectCommand, GetObjectCommand } from "@aws-sdk/client-s3";
import { DeleteMessageCommand, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
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
import { RECEIVE_WAIT_SECONDS } from "../local/workers";
import { renderingIn } from "./support/blenderProcesses";
import { LOADED_MACHINE_MARGIN_MS } from "./support/timing";
import { decodePng, makeScene } from "./support/scenes";
import { curl, RawRequest, rawRequest } from "./support/rawHttp";
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

async function uploadScene(outputs: FarmOutputs, key: string, frames: string, samples = 4): Promise<void> {
    const scene = await makeScene({ frames, resolutionX: WIDTH, resolutionY: HEIGHT, samples });
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

        it("answers an oversized body 413 and never resets the connection: 5 MB with curl (with and without Expect: 100-continue) and Node's client", async function () {
            const body = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "local-farm-413-")), "body.json");
            fs.writeFileSync(body, `{"padding":"${"x".repeat(5 * 1024 * 1024)}"}`);
            const curl = (args: string[]) =>
                new Promise<string>((resolve) =>
                    execFile(
                        "curl",
                        ["-sS", "-o", "-", "-w", "\n%{http_code}", ...args, "--data-binary", `@${body}`],
                        { maxBuffer: 1024 * 1024 },
                        (error, stdout, stderr) =>
                            resolve(
                                `exit ${error ? (error as { code?: number }).code : 0} ${stdout.split("\n").pop()} ${stderr.trim()}`.trim(),
                            ),
                    ),
                );
            const outcomes: string[] = [];
            // curl sends Expect: 100-continue for bodies over 1 MB; -H "Expect:" sends the body at once.
            for (let attempt = 0; attempt < 30; attempt++) outcomes.push(await curl([`${outputs.apiUrl}/jobs`]));
            for (let attempt = 0; attempt < 10; attempt++)
                outcomes.push(await curl(["-H", "Expect:", `${outputs.apiUrl}/jobs`]));
            // The invoke path's limit is Lambda's 6 MB: 8 MB is refused there.
            fs.appendFileSync(body, "x".repeat(3 * 1024 * 1024));
            for (let attempt = 0; attempt < 10; attempt++)
                outcomes.push(await curl([`${outputs.apiUrl}/2015-03-31/functions/function/invocations`]));
            const failed = outcomes.filter((outcome) => outcome !== "exit 0 413");
            assert.deepStrictEqual(failed, [], `${failed.length} of ${outcomes.length} curl runs did not get the 413`);

            for (const chunked of [false, true]) {
                for (let attempt = 0; attempt < 5; attempt++) {
                    const reply = await new Promise<string>((resolve) => {
                        const url = new URL("/jobs", outputs.apiUrl);
                        const request = http.request(
                            {
                                host: url.hostname,
                                port: url.port,
                                method: "POST",
                                path: url.pathname,
                                headers: chunked ? {} : { "content-length": String(5 * 1024 * 1024) },
                            },
                            (response) => {
                                let text = "";
                                response.on("data", (chunk) => (text += chunk));
                                response.on("end", () =>
                                    resolve(`${response.statusCode} ${JSON.parse(text).error.code}`),
                                );
                            },
                        );
                        request.on("error", (error: NodeJS.ErrnoException) => resolve(`error ${error.code}`));
                        request.end(Buffer.alloc(5 * 1024 * 1024, "x"));
                    });
                    assert.strictEqual(reply, "413 body_too_large", `chunked ${chunked}, attempt ${attempt + 1}`);
                }
            }
            // And the farm still answers.
            const after = await api(outputs, "GET", "/jobs/after-the-413s");
            assert.deepStrictEqual([after.status, after.body.error.code], [404, "job_not_found"]);
        });

        it("refuses requests made to another Host (DNS rebinding) and cross-origin requests (a web page), before any handler runs", async function () {
            const { port } = new URL(outputs.apiUrl);
            const body = JSON.stringify({ scene: "shots/wire/scene.blend", frames: "1", jobId: "from-a-page" });
            const refused: { method: string; path: string; headers: Record<string, string>; body?: string }[] = [
                { method: "GET", path: "/jobs/wire", headers: { host: `attacker.example:${port}` } },
                { method: "GET", path: "/jobs/wire", headers: { host: `127.0.0.1:${Number(port) + 1}` } },
                {
                    method: "POST",
                    path: "/jobs",
                    headers: { "content-type": "text/plain", origin: "http://attacker.example" },
                    body,
                },
                { method: "POST", path: "/jobs", headers: { origin: "null" }, body },
                { method: "POST", path: "/jobs", headers: { "sec-fetch-site": "cross-site" }, body },
                {
                    method: "POST",
                    path: "/2015-03-31/functions/function/invocations",
                    headers: { origin: "http://attacker.example" },
                    body: "{}",
                },
            ];
            for (const request of refused) {
                const reply = await rawRequest(outputs.apiUrl, request);
                assert.strictEqual(reply.status, 403, `${JSON.stringify(request.headers)}: ${reply.body}`);
                assert.strictEqual(JSON.parse(reply.body).error.code, "forbidden");
            }
            assert.strictEqual((await api(outputs, "GET", "/jobs/from-a-page")).status, 404, "no job was created");
            // Its own address, by name or number, and a same-origin page are answered.
            for (const headers of [
                { host: `localhost:${port}` } as Record<string, string>,
                { host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}`, "sec-fetch-site": "same-origin" },
            ]) {
                const reply = await rawRequest(outputs.apiUrl, { method: "GET", path: "/jobs/wire", headers });
                assert.strictEqual(reply.status, 200, `${JSON.stringify(headers)}: ${reply.body}`);
            }
        });

        it("its S3/SQS endpoint also refuses another Host (DNS rebinding) and web pages; curl is answered", async function () {
            const port = Number(new URL(outputs.awsEndpoint!).port);
            const listing = `/${outputs.rendersBucket}?list-type=2&prefix=renders/wire/`;
            const sendMessage = {
                method: "POST",
                path: "/",
                body: JSON.stringify({ QueueUrl: outputs.frameQueueUrl, MessageBody: "{}" }),
            };
            const sqsHeaders = {
                "content-type": "application/x-amz-json-1.0",
                "x-amz-target": "AmazonSQS.SendMessage",
            };
            const refused: RawRequest[] = [
                { method: "GET", path: listing, headers: { host: `attacker.example:${port}` } },
                { method: "GET", path: listing, headers: { origin: "http://attacker.example" } },
                { ...sendMessage, headers: { ...sqsHeaders, host: `attacker.example:${port}` } },
                { ...sendMessage, headers: { ...sqsHeaders, origin: "http://attacker.example" } },
            ];
            for (const request of refused) {
                const reply = await rawRequest(outputs.awsEndpoint!, request);
                assert.strictEqual(reply.status, 403, `${JSON.stringify(request.headers)}: ${reply.body}`);
                assert.match(reply.body, /AccessDenied/);
            }
            for (const args of [
                ["-H", `Host: attacker.example:${port}`],
                ["-H", "Origin: http://attacker.example"],
                [],
            ]) {
                const reply = await curl([...args, `${outputs.awsEndpoint}${listing}`]);
                const expected = args.length === 0 ? 200 : 403;
                assert.strictEqual(reply.status, expected, `curl ${args.join(" ")}: ${reply.body}`);
                assert.strictEqual(reply.body.includes(frameKeys("wire", [1])[0]), expected === 200, reply.body);
            }
        });

        it("refuses a second farm on the same data dir", async function () {
            await assert.rejects(
                startServe(["--port", "0", "--workers", "1", "--data-dir", dataDir], 30_000),
                /in use by another local farm \(process \d+/,
            );
        });
    });

    describe("the Lambda invoke path", function () {
        let serve: ServeProcess;
        let outputs: FarmOutputs;

        before(async function () {
            // No workers: the frames stay queued, for the test to invoke by hand.
            serve = await startServe(["--port", "0", "--workers", "0", "--data-dir", newDataDir()]);
            outputs = serve.outputs;
        });

        after(async function () {
            await stopServe(serve);
        });

        it("renders a frame the job API queued, posted as an SQS event; refuses forged messages and frames already done", async function () {
            await uploadScene(outputs, "shots/invoke/scene.blend", "1-4");
            await uploadScene(outputs, "shots/invoke-gone/scene.blend", "1-4");
            for (const [jobId, scene, frames] of [
                ["invoked", "shots/invoke/scene.blend", "2-3"],
                ["invoked-gone", "shots/invoke-gone/scene.blend", "1"],
            ]) {
                const submitted = await api(outputs, "POST", "/jobs", { scene, frames, jobId });
                assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));
            }
            // The messages exactly as the job API queued them, by "<jobId>/<frame>".
            const sqs = new SQSClient({
                endpoint: outputs.awsEndpoint,
                region: outputs.region,
                credentials: { accessKeyId: "test", secretAccessKey: "test" },
            });
            const queued = new Map<string, string>();
            await waitFor("the three queued frames", 30_000, async () => {
                const received = await sqs.send(
                    new ReceiveMessageCommand({ QueueUrl: outputs.frameQueueUrl, MaxNumberOfMessages: 10 }),
                );
                for (const message of received.Messages ?? []) {
                    const body = JSON.parse(message.Body!);
                    queued.set(`${body.jobId}/${body.frame}`, message.Body!);
                }
                return queued.size === 3 ? true : undefined;
            });
            sqs.destroy();
            const record = (id: string, body: string) => ({
                messageId: id,
                receiptHandle: `not-from-a-queue-${id}`,
                body,
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
            const event = (...records: ReturnType<typeof record>[]) => JSON.stringify({ Records: records });
            const frame2 = JSON.parse(queued.get("invoked/2")!);

            // Forged: another output key, another scene, a job that does not exist, a frame outside the job.
            const forgeries: [unknown, RegExp][] = [
                [{ ...frame2, output: { ...frame2.output, key: "renders/elsewhere/frame.png" } }, /is not under/],
                [
                    { ...frame2, output: { ...frame2.output, key: "renders/invoked/frame_0003.png" } },
                    /differs .* in output/,
                ],
                [{ ...frame2, scene: "shots/other/scene.blend" }, /differs .* in scene/],
                [
                    {
                        ...frame2,
                        jobId: "no-such-job",
                        output: { ...frame2.output, key: "renders/no-such-job/frame_0002.png" },
                    },
                    /no job no-such-job/,
                ],
                [{ ...frame2, frame: 1 }, /frame 1 is not a frame of job invoked/],
            ];
            for (const [forged, reason] of forgeries) {
                const reply = await invoke(event(record("forged", JSON.stringify(forged))));
                const said = (await reply.json()) as { message: string };
                assert.strictEqual(reply.status, 403, JSON.stringify(said));
                assert.strictEqual(reply.headers.get("x-amzn-errortype"), "AccessDeniedException");
                assert.match(said.message, reason);
            }
            assert.deepStrictEqual(await listKeys(outputs, "jobs/invoked/frames/"), [], "no record was written");

            const ok = await invoke(event(record("good", queued.get("invoked/2")!)));
            assert.strictEqual(ok.status, 200);
            assert.deepStrictEqual(await ok.json(), { batchItemFailures: [] });
            const s3 = s3Of(outputs);
            const object = await s3.send(
                new GetObjectCommand({ Bucket: outputs.rendersBucket, Key: frame2.output.key }),
            );
            const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "local-farm-invoke-")), "frame.png");
            fs.writeFileSync(file, await object.Body!.transformToByteArray());
            assert.deepStrictEqual([decodePng(file).width, decodePng(file).height], [WIDTH, HEIGHT]);

            const again = await invoke(event(record("again", queued.get("invoked/2")!)));
            assert.strictEqual(again.status, 403);
            assert.match(
                ((await again.json()) as { message: string }).message,
                /frame 2 of job invoked is already done/,
            );

            // A genuine message whose scene has gone since: the renderer runs and reports the frame's failure.
            await s3.send(
                new DeleteObjectCommand({ Bucket: outputs.scenesBucket, Key: "shots/invoke-gone/scene.blend" }),
            );
            const missing = await invoke(event(record("bad", queued.get("invoked-gone/1")!)));
            assert.deepStrictEqual(await missing.json(), { batchItemFailures: [{ itemIdentifier: "bad" }] });
            const notJson = await invoke("{not json");
            assert.strictEqual(notJson.status, 400);
            assert.strictEqual(notJson.headers.get("x-amzn-errortype"), "InvalidRequestContentException");
            s3.destroy();
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
            // Frames of about a second: a sticky Blender renders 4 samples in a few ms, too short a window to be seen
            // mid-frame by a status poll.
            await uploadScene(serve.outputs, "shots/crash/scene.blend", "1-10", 512);
            assert.strictEqual(
                (await api(serve.outputs, "POST", "/jobs", { scene: "shots/crash/scene.blend", jobId: "crash" }))
                    .status,
                202,
            );
            const outputs = serve.outputs;
            // Killed while Blender renders a frame, with some frames done and some still queued.
            await waitFor("3 frames done and a 4th rendering", 120_000, async () => {
                const status = (await api(outputs, "GET", "/jobs/crash")).body;
                return status.frames.done >= 3 && renderingIn(path.join(dataDir, "work")) ? true : undefined;
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
                renderingIn(path.join(dataDir, "work")) ? true : undefined,
            );
            const signalledAt = Date.now();
            serve.child.kill("SIGTERM");
            const exit = await serve.exited;
            const stopMs = Date.now() - signalledAt;
            assert.deepStrictEqual(exit, { code: 0, signal: null }, serve.stderr());
            const putBack = /stopped frame (\d) of job term and put it back in the queue/.exec(serve.stderr());
            assert.ok(putBack, serve.stderr());
            // The stop cut the frame short rather than waiting for it; it waits only for the idle pollers' receive.
            assert.doesNotMatch(serve.stderr(), new RegExp(`frame ${putBack[1]} of job term \\([^)]*\\): done`));
            assert.ok(
                stopMs < RECEIVE_WAIT_SECONDS * 1000 + LOADED_MACHINE_MARGIN_MS,
                `stopping took ${stopMs} ms (receives wait ${RECEIVE_WAIT_SECONDS} s)`,
            );
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
