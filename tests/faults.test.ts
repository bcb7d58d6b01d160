// Faults a render farm meets in production, with real parts: Blender SIGKILLed mid-frame, a worker process lost
// while it holds a frame, S3 failing for a while (through a fault-injecting proxy), and a poison frame that ends
// in the DLQ until its cause is fixed and `render-farm retry` renders it.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { FarmOutputs, FrameRecord, frameOutputKey, frameRecordKey, JobStatus } from "../functions/shared/contract";
import { createJobApiHandler } from "../functions/jobApi/handler";
import { RENDERER_CLIENT_RETRY } from "../functions/renderer/handler";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { createLocalRenderer, LocalRenderer, localRendererSettings } from "../local/localRenderer";
import { processesWorkingIn } from "../local/processes";
import { blenderRenderingIn, commandLine } from "./support/blenderProcesses";
import {
    FRAME_VISIBILITY_SECONDS,
    frameLog,
    startWorkerPool,
    VISIBILITY_HEARTBEAT_MS,
    WorkerPool,
} from "../local/workers";
import { runCli } from "./support/cliRunner";
import { makeFailingFrameScene } from "./support/failingFrameScene";
import {
    api,
    deleteObject,
    frameKeys,
    frameRecords,
    listKeys,
    peekDeadLetters,
    queueDepth,
    s3Of,
    uploadFile,
    waitFor,
    waitForJobEnd,
} from "./support/farmClient";
import { FaultKind, FaultProxy, ProxiedRequest, startFaultProxy } from "./support/faultProxy";
import { BLENDER, decodePng, makeScene } from "./support/scenes";
import { ServeProcess, startServe, stopServe } from "./support/serveProcess";
import { framesDone, killWorker, LogLine, startWorker, stopWorker, WorkerProcess } from "./support/workerProcess";

/** A frame that renders for a few seconds, so it can be caught mid-render. */
const SLOW_SCENE = { frames: "1-4", resolutionX: 320, resolutionY: 240, samples: 64 };

function newDataDir(): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), "faults-"));
}

async function downloadPng(outputs: FarmOutputs, key: string): Promise<{ width: number; height: number }> {
    const s3 = s3Of(outputs);
    try {
        const object = await s3.send(new GetObjectCommand({ Bucket: outputs.rendersBucket, Key: key }));
        const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "faults-frame-")), path.basename(key));
        fs.writeFileSync(file, await object.Body!.transformToByteArray());
        return decodePng(file);
    } finally {
        s3.destroy();
    }
}

/**
 * "frame 1 of job poison (worker 1, 0.3 s): failed, attempt 2 of 3, …" lines of one frame, with the time each arrived
 * and how long its attempt ran.
 */
function failedAttempts(
    lines: LogLine[],
    jobId: string,
    frame: number,
): { at: number; attempt: number; attemptMs: number; text: string }[] {
    const pattern = new RegExp(
        `^frame ${frame} of job ${jobId} \\(worker \\d+, ([\\d.]+) s\\): failed, attempt (\\d+) of \\d+`,
    );
    return lines.flatMap(({ at, text }) => {
        const match = pattern.exec(text);
        return match ? [{ at, attempt: Number(match[2]), attemptMs: Number(match[1]) * 1000, text }] : [];
    });
}

/**
 * How long each retry waited in the queue: from one failed attempt's end to the next attempt's start (its end less its
 * own run time), so a slow Blender on a loaded machine does not count.
 */
function waitsBetween(attempts: { at: number; attemptMs: number }[]): number[] {
    return attempts.slice(1).map((next, index) => next.at - next.attemptMs - attempts[index].at);
}

/**
 * A failed frame left to the queue's visibility timeout (no backoff) comes back no sooner than this after its attempt
 * ended: the worker's last heartbeat hid it for FRAME_VISIBILITY_SECONDS at most VISIBILITY_HEARTBEAT_MS before then.
 */
const LEFT_TO_VISIBILITY_MS = FRAME_VISIBILITY_SECONDS * 1000 - VISIBILITY_HEARTBEAT_MS;

describe("faults: crashes, lost workers, flaky S3, poison frames", function () {
    describe("Blender killed mid-frame", function () {
        let serve: ServeProcess | undefined;

        after(async function () {
            await stopServe(serve);
        });

        it("retries the frame after the failure backoff; the ledger shows one output and 2 attempts", async function () {
            const dataDir = newDataDir();
            serve = await startServe([
                "--port",
                "0",
                "--workers",
                "1",
                "--failure-backoff",
                "1",
                "--data-dir",
                dataDir,
            ]);
            const { outputs } = serve;
            await uploadFile(outputs, "shots/crash/scene.blend", (await makeScene(SLOW_SCENE)).blendPath);
            const jobId = "blender-killed";
            assert.strictEqual(
                (await api(outputs, "POST", "/jobs", { scene: "shots/crash/scene.blend", frames: "1", jobId })).status,
                202,
            );

            const { pid, frame } = await blenderRenderingIn(path.join(dataDir, "work"), 1000, 60_000);
            assert.match(
                path.basename(commandLine(pid)[0]),
                /blender/i,
                `process ${pid} is Blender: ${commandLine(pid).join(" ")}`,
            );
            assert.strictEqual(frame, 1);
            process.kill(pid, "SIGKILL");

            const status = await waitForJobEnd(outputs, jobId, 120_000);
            assert.strictEqual(status.state, "complete", JSON.stringify(status));
            assert.deepStrictEqual(status.frames, { total: 1, done: 1, failed: 0, pending: 0 });
            const records = await frameRecords(outputs, jobId);
            assert.deepStrictEqual(
                records.map((record) => [record.frame, record.status, record.attempts, record.error]),
                [[1, "done", 2, undefined]],
            );
            assert.deepStrictEqual(await listKeys(outputs, `renders/${jobId}/`), frameKeys(jobId, [1]));
            const png = await downloadPng(outputs, frameKeys(jobId, [1])[0]);
            assert.deepStrictEqual([png.width, png.height], [SLOW_SCENE.resolutionX, SLOW_SCENE.resolutionY]);
            // The first attempt was recorded as the crash it was, and the retry came after the 1 s backoff.
            assert.match(
                serve.stderr(),
                /frame 1 of job blender-killed \(worker 1, [\d.]+ s\): failed, attempt 1 of 3, retry in 1 s: killed: Blender was ended by SIGKILL/,
            );
            assert.strictEqual(
                serve.stderr().match(/frame 1 of job blender-killed \(worker 1, [\d.]+ s\): done/g)?.length,
                1,
                serve.stderr(),
            );
        });
    });

    describe("a worker process lost while it holds a frame", function () {
        let serve: ServeProcess | undefined;
        const workers: WorkerProcess[] = [];

        after(async function () {
            for (const worker of workers) await stopWorker(worker);
            await stopServe(serve);
        });

        it("gets the frame back after the visibility timeout and renders every frame exactly once", async function () {
            const dataDir = newDataDir();
            serve = await startServe([
                "--port",
                "0",
                "--workers",
                "0",
                "--failure-backoff",
                "1",
                "--data-dir",
                dataDir,
            ]);
            const { outputs } = serve;
            const workerArgs = ["--data-dir", dataDir, "--workers", "1", "--failure-backoff", "1"];
            const [lost, survivor] = [await startWorker(workerArgs), await startWorker(workerArgs)];
            workers.push(lost, survivor);
            await uploadFile(outputs, "shots/lost/scene.blend", (await makeScene(SLOW_SCENE)).blendPath);
            const jobId = "worker-lost";
            assert.strictEqual(
                (await api(outputs, "POST", "/jobs", { scene: "shots/lost/scene.blend", frames: "1-3", jobId })).status,
                202,
            );

            // Killed while its Blender renders: the message it holds is neither deleted nor released.
            const { frame: lostFrame } = await blenderRenderingIn(lost.ready.workDir, 500, 60_000);
            const killedAt = Date.now();
            await killWorker(lost);

            // A worker started in its place ends the dead worker's Blender (if still running) and removes its work dir.
            const restarted = await startWorker(workerArgs);
            workers.push(restarted);
            assert.deepStrictEqual(
                processesWorkingIn(lost.ready.workDir),
                [],
                "no Blender of the killed worker is left running",
            );
            assert.ok(!fs.existsSync(lost.ready.workDir), "the killed worker's work dir was removed");

            const status = await waitForJobEnd(outputs, jobId, 180_000);
            assert.strictEqual(status.state, "complete", JSON.stringify(status));
            assert.deepStrictEqual(status.frames, { total: 3, done: 3, failed: 0, pending: 0 });
            assert.deepStrictEqual(await listKeys(outputs, `renders/${jobId}/`), frameKeys(jobId, [1, 2, 3]));

            const records = await frameRecords(outputs, jobId);
            assert.deepStrictEqual(
                records.map((record) => [record.frame, record.status, record.attempts]),
                [1, 2, 3].map((frame) => [frame, "done", frame === lostFrame ? 2 : 1]),
                "the lost frame was received twice, the others once",
            );
            // Rendered to the end exactly once per frame, across every worker's log.
            const done = [lost, survivor, restarted].flatMap((worker) => framesDone(worker.lines(), jobId)).sort();
            assert.deepStrictEqual(
                done,
                [1, 2, 3].map((frame) => `${jobId}/${frame}`),
            );
            assert.ok(!framesDone(lost.lines(), jobId).includes(`${jobId}/${lostFrame}`));

            // The heartbeat kept the frame hidden until the kill; only the visibility running out released it, not 960 s later.
            const retriedAfterMs =
                Date.parse(records.find((record) => record.frame === lostFrame)!.startedAt) - killedAt;
            const visibilityMs = FRAME_VISIBILITY_SECONDS * 1000;
            assert.ok(
                retriedAfterMs >= visibilityMs / 2,
                `the lost frame was handed out again ${retriedAfterMs} ms after the kill, before its visibility ran out`,
            );
            assert.ok(
                retriedAfterMs <= visibilityMs + 45_000,
                `the lost frame was handed out again only ${retriedAfterMs} ms after the kill`,
            );

            await waitFor("the frame queue to drain", 30_000, async () =>
                (await queueDepth(outputs, outputs.frameQueueUrl)) === 0 ? true : undefined,
            );
            assert.deepStrictEqual(await peekDeadLetters(outputs), []);
            console.log(
                `      frame ${lostFrame} lost with its worker; handed out again ${(retriedAfterMs / 1000).toFixed(1)} s after the kill (visibility ${FRAME_VISIBILITY_SECONDS} s)`,
            );
        });
    });

    describe("S3 failing for a while (a fault-injecting proxy between the renderer and S3)", function () {
        const MAX_RECEIVE_COUNT = 5;
        let emulator: Emulator;
        let resources: FarmResources;
        let proxy: FaultProxy;
        let renderer: LocalRenderer;
        let pool: WorkerPool;
        const log: string[] = [];
        let jobApi: ReturnType<typeof createJobApiHandler>;
        let scene: string;

        before(async function () {
            emulator = await startEmulator();
            resources = await createFarmResources(emulator, {
                name: "faults",
                maxReceiveCount: MAX_RECEIVE_COUNT,
                visibilityTimeoutSeconds: FRAME_VISIBILITY_SECONDS,
            });
            const queueArn = (
                await emulator.sqs.send(
                    new GetQueueAttributesCommand({ QueueUrl: resources.frameQueueUrl, AttributeNames: ["QueueArn"] }),
                )
            ).Attributes!.QueueArn!;
            proxy = await startFaultProxy(emulator.endpoint);
            // The renderer reaches S3 (and SQS) only through the proxy; the pool and the test talk to the emulator directly.
            const settings = localRendererSettings({
                resources,
                maxReceiveCount: MAX_RECEIVE_COUNT,
                failureBackoffSeconds: 1,
                blenderPath: BLENDER,
                workDir: fs.mkdtempSync(path.join(os.tmpdir(), "faults-renderer-")),
                workers: 1,
            });
            renderer = createLocalRenderer({
                endpoint: proxy.url,
                region: emulator.region,
                credentials: emulator.credentials,
                settings,
            });
            pool = startWorkerPool({
                sqs: emulator.sqs,
                queueUrl: resources.frameQueueUrl,
                queueArn,
                region: emulator.region,
                consumers: [renderer],
                ...frameLog({
                    s3: emulator.s3,
                    rendersBucket: resources.rendersBucket,
                    maxReceiveCount: MAX_RECEIVE_COUNT,
                    backoffSeconds: (attempts) => 2 ** (attempts - 1),
                    log: (line) => log.push(line),
                }),
                log: (line) => log.push(line),
            });
            jobApi = createJobApiHandler({
                s3: emulator.s3,
                sqs: emulator.sqs,
                settings: {
                    ...resources,
                    limits: { maxFrames: 100, maxResolution: 4096, allowedEngines: ["CYCLES", "EEVEE", "WORKBENCH"] },
                    maxReceiveCount: MAX_RECEIVE_COUNT,
                },
            });
            scene = (await makeScene({ frames: "1-4", resolutionX: 64, resolutionY: 48, samples: 4 })).blendPath;
        });

        afterEach(function () {
            proxy.setRule(undefined);
        });

        after(async function () {
            await pool?.stop();
            renderer?.close();
            await proxy?.close();
            await emulator?.stop();
        });

        async function jobApiCall(
            method: string,
            route: string,
            body?: unknown,
        ): Promise<{ status: number; body: any }> {
            const jobId = /^\/jobs\/([^/]+)/.exec(route)?.[1];
            const reply = await jobApi({
                version: "2.0",
                routeKey: jobId ? `${method} /jobs/{jobId}` : `${method} /jobs`,
                rawPath: route,
                headers: { "content-type": "application/json" },
                requestContext: { http: { method, path: route } },
                pathParameters: jobId ? { jobId } : undefined,
                body: body === undefined ? undefined : JSON.stringify(body),
                isBase64Encoded: false,
            } as unknown as APIGatewayProxyEventV2);
            return { status: reply.statusCode, body: JSON.parse(reply.body) };
        }

        /**
         * Renders frame 1 of a fresh copy of the scene (a new key, so no cached scene hides the download) under `rule`,
         * watching the frame's key the whole time. Returns the frame's record, its size on S3 and every size seen.
         */
        async function renderUnder(
            jobId: string,
            rule: (request: ProxiedRequest, sceneKey: string, frameKey: string) => FaultKind | undefined,
        ) {
            const sceneKey = `shots/${jobId}/scene.blend`;
            await emulator.s3.send(
                new PutObjectCommand({ Bucket: resources.scenesBucket, Key: sceneKey, Body: fs.readFileSync(scene) }),
            );
            const frameKey = frameOutputKey(jobId, 1, "PNG");
            proxy.setRule((request) => rule(request, sceneKey, frameKey));
            const submitted = await jobApiCall("POST", "/jobs", { scene: sceneKey, frames: "1", jobId });
            assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));

            // Whatever S3 holds under the frame's key, at any moment, must be the whole frame or nothing.
            const sizesSeen = new Set<number>();
            let watching = true;
            const watcher = (async () => {
                while (watching) {
                    try {
                        sizesSeen.add(
                            (
                                await emulator.s3.send(
                                    new HeadObjectCommand({ Bucket: resources.rendersBucket, Key: frameKey }),
                                )
                            ).ContentLength!,
                        );
                    } catch {
                        // Not there yet.
                    }
                    await new Promise((resolve) => setTimeout(resolve, 10));
                }
            })();
            let status: JobStatus;
            try {
                status = await waitFor(
                    `job ${jobId} to end`,
                    180_000,
                    async () => {
                        const reply = await jobApiCall("GET", `/jobs/${jobId}`);
                        return ["complete", "failed", "partial"].includes(reply.body.state)
                            ? (reply.body as JobStatus)
                            : undefined;
                    },
                    250,
                );
            } finally {
                watching = false;
                await watcher;
            }
            assert.strictEqual(status.state, "complete", JSON.stringify(status));
            const object = await emulator.s3.send(
                new GetObjectCommand({ Bucket: resources.rendersBucket, Key: frameKey }),
            );
            const bytes = Buffer.from(await object.Body!.transformToByteArray());
            const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "faults-s3-")), "frame.png");
            fs.writeFileSync(file, bytes);
            const png = decodePng(file);
            assert.deepStrictEqual([png.width, png.height], [64, 48], "the frame on S3 is a whole PNG");
            assert.deepStrictEqual(
                [...sizesSeen],
                [bytes.length],
                `sizes seen under ${frameKey} while rendering: ${[...sizesSeen].join(", ")} (the frame is ${bytes.length} bytes)`,
            );
            const recordObject = await emulator.s3.send(
                new GetObjectCommand({ Bucket: resources.rendersBucket, Key: frameRecordKey(jobId, 1) }),
            );
            const record = JSON.parse(await recordObject.Body!.transformToString()) as FrameRecord;
            const requests = proxy.requests.filter(
                (request) =>
                    request.key === sceneKey || request.key === frameKey || request.key === frameRecordKey(jobId, 1),
            );
            return { record, requests, sceneKey, frameKey };
        }

        function gaps(requests: ProxiedRequest[]): string {
            return requests
                .slice(1)
                .map((request, index) => `${request.at - requests[index].at} ms`)
                .join(", ");
        }

        // With the SDK's default 3 attempts this frame would fail its first attempt.
        it("a scene download answered 503 SlowDown 4 times: the SDK backs off and retries, the frame renders on its first attempt", async function () {
            const { record, requests, sceneKey } = await renderUnder("slow-down", (request, sceneKey) => {
                const earlier = proxy.requests.filter(
                    (seen) => seen.operation === "GetObject" && seen.key === sceneKey,
                ).length;
                return request.operation === "GetObject" && request.key === sceneKey && earlier < 4
                    ? "slow-down"
                    : undefined;
            });
            const gets = requests.filter((request) => request.operation === "GetObject" && request.key === sceneKey);
            assert.deepStrictEqual(
                gets.map((request) => request.fault),
                ["slow-down", "slow-down", "slow-down", "slow-down", undefined],
            );
            assert.deepStrictEqual([record.status, record.attempts], ["done", 1]);
            console.log(`      5 GETs of the scene, ${gaps(gets)} apart`);
        });

        it("a frame upload cut mid-body 3 times: retried whole, and no truncated frame is ever visible", async function () {
            const { record, requests, frameKey } = await renderUnder("cut-upload", (request, _sceneKey, frameKey) => {
                const earlier = proxy.requests.filter(
                    (seen) => seen.operation === "PutObject" && seen.key === frameKey,
                ).length;
                return request.operation === "PutObject" && request.key === frameKey && earlier < 3
                    ? "cut-request"
                    : undefined;
            });
            const puts = requests.filter((request) => request.operation === "PutObject" && request.key === frameKey);
            assert.deepStrictEqual(
                puts.map((request) => request.fault),
                ["cut-request", "cut-request", "cut-request", undefined],
            );
            assert.deepStrictEqual([record.status, record.attempts], ["done", 1]);
            console.log(`      4 PUTs of the frame, ${gaps(puts)} apart`);
        });

        it("a scene download cut mid-body: that attempt fails (no half scene is used) and the frame's retry renders it", async function () {
            const { record, requests, sceneKey } = await renderUnder("cut-download", (request, sceneKey) => {
                const earlier = proxy.requests.filter(
                    (seen) => seen.operation === "GetObject" && seen.key === sceneKey,
                ).length;
                return request.operation === "GetObject" && request.key === sceneKey && earlier < 1
                    ? "cut-response"
                    : undefined;
            });
            const gets = requests.filter((request) => request.operation === "GetObject" && request.key === sceneKey);
            assert.deepStrictEqual(
                gets.map((request) => request.fault),
                ["cut-response", undefined],
            );
            assert.deepStrictEqual([record.status, record.attempts], ["done", 2]);
            assert.ok(
                log.some((line) =>
                    /^frame 1 of job cut-download \(worker 1, [\d.]+ s\): failed, attempt 1 of 5, retry in 1 s: renderer_error/.test(
                        line,
                    ),
                ),
                log.join("\n"),
            );
        });

        it("S3 unreachable (every connection reset) until the scene download's retries have run out: the frame fails, backs off and renders once S3 is back", async function () {
            // Counted, not timed: the SDK's backoff is jittered, so a fixed outage may or may not outlast a call's retries.
            // S3 answers nothing until the renderer's download of the scene has used every attempt its client makes; the
            // reads before it (the frame's record, the job's stop) fail quietly on the way.
            const sceneAttempts = RENDERER_CLIENT_RETRY.maxAttempts;
            let sceneResets = 0;
            let backAt: number | undefined;
            const { record, requests } = await renderUnder("outage", (request, sceneKey) => {
                if (request.operation === "other" || sceneResets >= sceneAttempts) return undefined;
                if (request.key === sceneKey && ++sceneResets === sceneAttempts) backAt = Date.now();
                return "reset";
            });
            const reset = proxy.requests.filter((request) => request.fault === "reset");
            assert.strictEqual(sceneResets, sceneAttempts);
            assert.ok(reset.length > sceneAttempts, `${reset.length} requests reset`);
            assert.strictEqual(record.status, "done");
            assert.ok(record.attempts >= 2 && record.attempts <= MAX_RECEIVE_COUNT, `attempts ${record.attempts}`);
            assert.ok(Date.parse(record.finishedAt) >= backAt!, "the frame was done only once S3 was back");
            assert.ok(
                log.some((line) => /^frame 1 of job outage \(worker 1, [\d.]+ s\): failed, attempt 1 of 5/.test(line)),
                log.join("\n"),
            );
            console.log(
                `      ${reset.length} requests reset; done on attempt ${record.attempts}; ${requests.length} requests for the scene, frame and record in all`,
            );
        });
    });

    describe("a poison frame", function () {
        let serve: ServeProcess | undefined;
        let worker: WorkerProcess | undefined;
        let dataDir: string;

        before(async function () {
            dataDir = newDataDir();
            // No workers in the farm: the texture is deleted after the job is accepted and before any frame runs.
            serve = await startServe([
                "--port",
                "0",
                "--workers",
                "0",
                "--failure-backoff",
                "1",
                "--max-receive-count",
                "3",
                "--data-dir",
                dataDir,
            ]);
        });

        after(async function () {
            await stopWorker(worker);
            await stopServe(serve);
        });

        it("fails on every receive (an asset deleted after submission), lands in the DLQ within seconds, and `render-farm retry` completes it once the asset is back", async function () {
            const { outputs } = serve!;
            const scene = await makeScene({ texture: "textures/checker.png", frames: "1-2" });
            const texture = "shots/poison/textures/checker.png";
            await uploadFile(outputs, "shots/poison/scene.blend", scene.blendPath);
            await uploadFile(outputs, texture, scene.texturePath!);
            const jobId = "poison";
            const submitted = await api(outputs, "POST", "/jobs", {
                scene: "shots/poison/scene.blend",
                assets: [texture],
                frames: "1",
                jobId,
            });
            assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));
            await deleteObject(outputs, outputs.scenesBucket, texture);

            worker = await startWorker(["--data-dir", dataDir, "--workers", "1", "--failure-backoff", "1"]);
            const status = await waitForJobEnd(outputs, jobId, 120_000);
            assert.strictEqual(status.state, "failed", JSON.stringify(status));
            assert.deepStrictEqual(status.frames, { total: 1, done: 0, failed: 1, pending: 0 });
            assert.strictEqual(status.failures.length, 1);
            const [failure] = status.failures;
            assert.deepStrictEqual([failure.frame, failure.attempts], [1, 3]);
            assert.match(
                failure.error,
                /^missing_object: frame 1 cannot render: the asset shots\/poison\/textures\/checker\.png is missing from the scenes bucket/,
            );
            assert.strictEqual(typeof failure.logTail, "string");

            // Three receives, a failure backoff (1 s, then 2 s) apart: nothing waited on the queue's visibility timeout.
            const attempts = await waitFor("three failed attempts in the worker's log", 10_000, () => {
                const found = failedAttempts(worker!.lines(), jobId, 1);
                return found.length === 3 ? found : undefined;
            });
            assert.deepStrictEqual(
                attempts.map((attempt) => attempt.attempt),
                [1, 2, 3],
            );
            const waits = waitsBetween(attempts);
            assert.strictEqual(waits.length, 2);
            assert.ok(
                waits.every((ms) => ms < LEFT_TO_VISIBILITY_MS),
                `retries waited ${waits.join(" ms, ")} ms: one was left to the visibility timeout`,
            );
            assert.match(attempts[2].text, /no attempts left: missing_object/);

            // SQS moves it to the DLQ on the receive after the third.
            const dead = await waitFor(
                "the frame in the DLQ",
                30_000,
                async () => {
                    const messages = (await peekDeadLetters(outputs)).filter(
                        (message) => JSON.parse(message.Body!).jobId === jobId,
                    );
                    return messages.length > 0 ? messages : undefined;
                },
                500,
            );
            assert.deepStrictEqual(
                dead.map((message) => JSON.parse(message.Body!).frame),
                [1],
            );

            // The cause fixed, the real CLI requeues the frame and follows the job to its end.
            await uploadFile(outputs, texture, scene.texturePath!);
            const retry = await runCli(["retry", jobId, "--data-dir", dataDir, "--json"], { timeoutMs: 120_000 });
            assert.strictEqual(retry.code, 0, retry.stderr);
            assert.match(retry.stderr, /requeued 1 failed frame/);
            const report = JSON.parse(retry.stdout);
            assert.strictEqual(report.state, "complete");
            assert.deepStrictEqual(report.frames, { total: 1, done: 1, failed: 0, pending: 0 });
            const records = await frameRecords(outputs, jobId);
            assert.deepStrictEqual(
                records.map((record) => [record.frame, record.status, record.attempts]),
                [[1, "done", 1]],
            );
            assert.deepStrictEqual(await listKeys(outputs, `renders/${jobId}/`), frameKeys(jobId, [1]));
            console.log(
                `      retries waited ${waits.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(", ")}; retry exited 0 after ${(retry.ms / 1000).toFixed(1)} s`,
            );
        });

        it("a frame Blender cannot render: dead-lettered after 3 receives, GET /jobs shows the reason and Blender's log tail", async function () {
            const { outputs } = serve!;
            worker ??= await startWorker(["--data-dir", dataDir, "--workers", "1", "--failure-backoff", "1"]);
            await uploadFile(outputs, "shots/failing/scene.blend", await makeFailingFrameScene());
            const jobId = "poison-blender";
            assert.strictEqual(
                (await api(outputs, "POST", "/jobs", { scene: "shots/failing/scene.blend", frames: "1-3", jobId }))
                    .status,
                202,
            );
            const status = await waitForJobEnd(outputs, jobId, 120_000);
            assert.strictEqual(status.state, "partial", JSON.stringify(status));
            assert.deepStrictEqual(status.frames, { total: 3, done: 2, failed: 1, pending: 0 });
            const [failure] = status.failures;
            assert.deepStrictEqual([failure.frame, failure.attempts], [2, 3]);
            assert.match(failure.error, /^\w+: \S.{10,}/);
            assert.match(failure.logTail, /Blender/, "Blender's own output is in the log tail");
            const dead = await waitFor(
                "frame 2 in the DLQ",
                30_000,
                async () => {
                    const messages = (await peekDeadLetters(outputs)).filter(
                        (message) => JSON.parse(message.Body!).jobId === jobId,
                    );
                    return messages.length > 0 ? messages : undefined;
                },
                500,
            );
            assert.deepStrictEqual(
                dead.map((message) => JSON.parse(message.Body!).frame),
                [2],
            );
            // Its three receives, each retry after its failure backoff, none left to the queue's visibility timeout.
            const attempts = await waitFor("three failed attempts of frame 2 in the worker's log", 30_000, () => {
                const found = failedAttempts(worker!.lines(), jobId, 2);
                return found.length >= 3 ? found : undefined;
            });
            assert.deepStrictEqual(
                attempts.map((attempt) => attempt.attempt),
                [1, 2, 3],
            );
            const waits = waitsBetween(attempts);
            assert.ok(
                waits.every((ms) => ms < LEFT_TO_VISIBILITY_MS),
                `retries waited ${waits.join(" ms, ")} ms: one was left to the visibility timeout`,
            );
            assert.deepStrictEqual(await listKeys(outputs, `renders/${jobId}/`), frameKeys(jobId, [1, 3]));
        });
    });
});
