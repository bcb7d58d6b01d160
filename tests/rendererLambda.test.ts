// The renderer as Lambda runs it: image/Dockerfile followed to a task root here (its build stage's package.json
// and tsconfig, its COPY destinations, ENV, WORKDIR), its ENTRYPOINT + CMD started with the variables Lambda
// injects (_HANDLER blank), aws-lambda-ric talking to the Runtime API stand-in, S3 and SQS on the emulator.
// /var/task is a directory here (LAMBDA_TASK_ROOT, which the image's ENV and Lambda both set to /var/task, points
// at it); see local/imageFunction.ts for every image path and what stands in for it.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import type { APIGatewayProxyEventV2, SQSEvent } from "aws-lambda";
import { createJobApiHandler } from "../functions/jobApi/handler";
import { FARM_DEFAULTS } from "../functions/shared/farmSettings";
import { rendererEnvironment } from "../functions/shared/functionEnvironment";
import { FrameMessage, FrameRecord, frameOutputKey, frameRecordKey, JobStatus } from "../functions/shared/contract";
import { Emulator, FarmResources, createFarmResources, startEmulator } from "../local/emulator";
import { findBlender } from "../local/farm";
import { ImageFunction, ImageFunctionConfig, buildImageFunction, imageSandboxOptions } from "../local/imageFunction";
import { imagePackages, nodeForRuntime } from "../local/imagePackages";
import { LambdaSandbox, startLambdaSandbox } from "../local/lambdaSandbox";
import { pollOnce } from "../local/eventSourcePoller";
import { PROJECT_ROOT } from "./support/pulumiProgram";
import { decodePng, makeScene } from "./support/scenes";
import { renderingIn } from "./support/blenderProcesses";
import { waitFor } from "./support/farmClient";

const WIDTH = 64;
const HEIGHT = 48;

/** Builds the image's function from `dockerfileText` (default: image/Dockerfile) into a fresh scratch directory. */
async function rendererImageFunction(dockerfileText?: string): Promise<ImageFunction> {
    return buildImageFunction({
        projectRoot: PROJECT_ROOT,
        dockerfileText,
        packages: await imagePackages(PROJECT_ROOT),
        node: nodeForRuntime(PROJECT_ROOT),
        blenderPath: findBlender(process.env.BLENDER_PATH ?? "blender"),
        scratch: fs.mkdtempSync(path.join(os.tmpdir(), "renderer-lambda-")),
    });
}

describe("the renderer as Lambda runs it (image/Dockerfile's ENTRYPOINT + CMD, aws-lambda-ric, Runtime API)", function () {
    let emulator: Emulator;
    let farm: FarmResources;
    let queueArn: string;
    let image: ImageFunction;
    let config: ImageFunctionConfig;
    let sandbox: LambdaSandbox;
    const sandboxes: LambdaSandbox[] = [];

    async function sandboxWith(changes: Partial<ImageFunctionConfig>): Promise<LambdaSandbox> {
        const made = await startLambdaSandbox(imageSandboxOptions(image, { ...config, ...changes }));
        sandboxes.push(made);
        return made;
    }

    /** The message the job API would queue for `frame` of the scene at `key`. */
    async function frameMessage(jobId: string, key: string, frame: number): Promise<FrameMessage> {
        const head = await emulator.s3.send(new HeadObjectCommand({ Bucket: farm.scenesBucket, Key: key }));
        return {
            v: 1,
            jobId,
            frame,
            scene: key,
            sceneEtag: head.ETag!,
            assets: [],
            settings: { engine: "CYCLES", samples: 4, format: "PNG" },
            output: { bucket: farm.rendersBucket, key: frameOutputKey(jobId, frame, "PNG") },
        } as FrameMessage;
    }

    /** Sends `body` to the frame queue and lets the event-source-mapping poller hand it to `target`. */
    async function deliver(target: LambdaSandbox, body: string) {
        await emulator.sqs.send(new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: body }));
        const results: Awaited<ReturnType<LambdaSandbox["invoke"]>>[] = [];
        const outcome = await pollOnce({
            sqs: emulator.sqs,
            queueUrl: farm.frameQueueUrl,
            queueArn,
            region: emulator.region,
            handler: async (event: SQSEvent) => {
                const result = await target.invoke(event);
                results.push(result);
                if (!result.ok) throw new Error(`${result.error.errorType}: ${result.error.errorMessage}`);
                return result.payload as { batchItemFailures: { itemIdentifier: string }[] };
            },
        });
        return { outcome, result: results[0] };
    }

    async function frameRecordIn(bucket: string, jobId: string, frame: number): Promise<FrameRecord> {
        const object = await emulator.s3.send(
            new GetObjectCommand({ Bucket: bucket, Key: frameRecordKey(jobId, frame) }),
        );
        return JSON.parse(await object.Body!.transformToString());
    }

    async function frameRecord(jobId: string, frame: number): Promise<FrameRecord> {
        return frameRecordIn(farm.rendersBucket, jobId, frame);
    }

    before(async function () {
        // The first run on a machine installs image/package.json (a native addon build) unless npm test did.
        this.timeout(15 * 60_000);
        emulator = await startEmulator();
        farm = await createFarmResources(emulator, {
            name: "lambda-renderer",
            maxReceiveCount: 3,
            visibilityTimeoutSeconds: 120,
            receiveWaitTimeSeconds: 0,
        });
        queueArn = (
            await emulator.sqs.send(
                new GetQueueAttributesCommand({ QueueUrl: farm.frameQueueUrl, AttributeNames: ["QueueArn"] }),
            )
        ).Attributes!.QueueArn!;
        image = await rendererImageFunction();
        config = {
            functionName: "render-farm-renderer",
            // The stack's variables for the renderer (components/renderer.ts), on the emulator. AWS_ENDPOINT_URL is the
            // one addition: the SDK v3 reads it, and picks path-style S3 addressing itself for an IP-address endpoint.
            functionEnvironment: {
                ...rendererEnvironment(farm, { ...FARM_DEFAULTS, maxReceiveCount: 3, failureBackoffSeconds: 1 }),
                AWS_ENDPOINT_URL: emulator.endpoint,
            },
            memoryMb: 10240,
            timeoutSeconds: 900,
            region: emulator.region,
            credentials: emulator.credentials,
        };
        sandbox = await sandboxWith({});
        const scene = await makeScene({ frames: "1-3", resolutionX: WIDTH, resolutionY: HEIGHT, samples: 4 });
        await emulator.s3.send(
            new PutObjectCommand({
                Bucket: farm.scenesBucket,
                Key: "shots/lambda/scene.blend",
                Body: fs.readFileSync(scene.blendPath),
            }),
        );
    });

    after(async function () {
        for (const each of sandboxes) await each.stop();
        await emulator?.stop();
    });

    it("starts the entrypoint image/Dockerfile names, from the repository, and reaches /next (cold start printed)", async function () {
        const coldStartMs = await sandbox.start();
        console.log(`      cold start (spawn of ENTRYPOINT + CMD to its first /next): ${coldStartMs.toFixed(0)} ms`);
        assert.ok(coldStartMs > 0);
        assert.strictEqual(image.entrypoint[0], path.join(PROJECT_ROOT, "image", "lambda-entrypoint.sh"));
        assert.strictEqual(image.environment.LAMBDA_TASK_ROOT, image.taskRoot);
        assert.strictEqual(await sandbox.start(), 0, "warm: the same runtime waits in /next");
    });

    it("renders a frame message to S3 with Blender and answers with no batch item failures", async function () {
        const message = await frameMessage("lambda-job", "shots/lambda/scene.blend", 2);
        const { outcome, result } = await deliver(sandbox, JSON.stringify(message));
        assert.deepStrictEqual(result.ok ? result.payload : result.error, { batchItemFailures: [] });
        assert.strictEqual(outcome, "succeeded");
        const object = await emulator.s3.send(
            new GetObjectCommand({ Bucket: farm.rendersBucket, Key: message.output.key }),
        );
        const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "renderer-lambda-frame-")), "frame.png");
        fs.writeFileSync(file, await object.Body!.transformToByteArray());
        const png = decodePng(file);
        assert.deepStrictEqual([png.width, png.height], [WIDTH, HEIGHT]);
        const record = await frameRecord("lambda-job", 2);
        assert.strictEqual(record.status, "done");
    });

    it("answers a message it cannot read with a partial-batch failure naming that message", async function () {
        const { outcome, result } = await deliver(sandbox, "{not a frame");
        assert.ok(result.ok, JSON.stringify(result));
        const failures = (result.payload as { batchItemFailures: { itemIdentifier: string }[] }).batchItemFailures;
        assert.strictEqual(failures.length, 1);
        assert.match(failures[0].itemIdentifier, /^[0-9a-f-]{36}$/);
        assert.strictEqual(outcome, "failed");
        // The renderer's log line, in the runtime client's text format: time, request id, level, message.
        assert.match(
            sandbox.output(),
            new RegExp(`\\t${result.requestId}\\tERROR\\trenderer: message ${failures[0].itemIdentifier} refused`),
        );
    });

    it("reports a thrown error in Lambda's shape (errorType, errorMessage, trace) through /invocation/{id}/error", async function () {
        const result = await sandbox.invoke({ notAnSqsEvent: true });
        assert.ok(!result.ok);
        assert.strictEqual(result.error.errorType, "TypeError");
        assert.match(result.error.errorMessage, /not iterable/);
        assert.ok(result.error.trace!.some((line) => line.includes(path.join("renderer", "consumer.js"))));
        // The runtime lives on: the next invocation is warm.
        assert.strictEqual(await sandbox.start(), 0);
    });

    it("gives the handler the stand-in's deadline through context.getRemainingTimeInMillis", async function () {
        // A 15 s function timeout leaves less than the 20 s the renderer keeps for reporting: Blender never starts.
        const short = await sandboxWith({ timeoutSeconds: 15 });
        const message = await frameMessage("lambda-deadline", "shots/lambda/scene.blend", 1);
        const { result } = await deliver(short, JSON.stringify(message));
        assert.ok(result.ok, JSON.stringify(result));
        assert.strictEqual((result.payload as { batchItemFailures: unknown[] }).batchItemFailures.length, 1);
        const record = await frameRecord("lambda-deadline", 1);
        assert.strictEqual(record.error?.code, "timeout");
        assert.match(record.error!.message, /passed before Blender started/);
    });

    it("reports a missing handler through /init/error", async function () {
        const missing = await sandboxWith({ cmd: ["renderer/handler.noSuchExport"] });
        await assert.rejects(missing.start(), /init error: Runtime\.HandlerNotFound/);
        const result = await missing.invoke({ Records: [] });
        assert.ok(!result.ok);
        assert.strictEqual(result.error.errorType, "Runtime.HandlerNotFound");
        assert.match(result.error.errorMessage, /noSuchExport/);
    });

    it("reports a runtime killed mid-frame as Runtime.ExitError instead of waiting", async function () {
        // Enough samples that the frame is still rendering when the test sees it start.
        const message = { ...(await frameMessage("lambda-killed", "shots/lambda/scene.blend", 3)) };
        message.settings = { ...message.settings, samples: 4096 };
        const delivered = deliver(sandbox, JSON.stringify(message));
        // Once Blender renders the frame (a sticky Blender may idle there between frames: renderingIn tells a frame
        // in progress), the whole sandbox dies as an OOM kill would.
        const started = Date.now();
        while (!renderingIn(image.tmpDir) && Date.now() - started < 60_000)
            await new Promise((resolve) => setTimeout(resolve, 50));
        assert.ok(renderingIn(image.tmpDir), "Blender renders the frame");
        const pid = sandbox.pid()!;
        process.kill(-pid, "SIGKILL");
        const { outcome, result } = await delivered;
        assert.ok(!result.ok);
        assert.strictEqual(result.error.errorType, "Runtime.ExitError");
        assert.match(result.error.errorMessage, /Runtime exited with error: signal: killed/);
        assert.strictEqual(outcome, "failed");
        // The next invocation gets a new sandbox.
        const coldAgainMs = await sandbox.start();
        assert.ok(coldAgainMs > 0);
        assert.notStrictEqual(sandbox.pid(), pid);
    });

    it("a frame whose runtime is killed on its last delivery: dead-lettered, GET /jobs shows it failed with renderer_killed and why, and a retry renders it", async function () {
        this.timeout(10 * 60_000);
        // Two deliveries, each invocation 45 s: the renderer holds a started frame for 45 + 30 s, then SQS sees it again.
        const maxReceiveCount = 2;
        const timeoutSeconds = 45;
        const last = await createFarmResources(emulator, {
            name: "lambda-last-attempt",
            maxReceiveCount,
            visibilityTimeoutSeconds: 120,
            receiveWaitTimeSeconds: 0,
        });
        const lastQueueArn = (
            await emulator.sqs.send(
                new GetQueueAttributesCommand({ QueueUrl: last.frameQueueUrl, AttributeNames: ["QueueArn"] }),
            )
        ).Attributes!.QueueArn!;
        const jobApi = createJobApiHandler({
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: {
                ...last,
                limits: { maxFrames: 100, maxResolution: 4096, allowedEngines: ["CYCLES", "EEVEE", "WORKBENCH"] },
                maxReceiveCount,
            },
        });
        const call = async (method: string, route: string): Promise<{ status: number; body: any }> => {
            const jobId = /^\/jobs\/([^/]+)/.exec(route)?.[1];
            const body = method === "POST" && !jobId ? JSON.stringify(submit) : undefined;
            const reply = await jobApi({
                version: "2.0",
                routeKey: jobId
                    ? `${method} /jobs/{jobId}${route.endsWith("/retry") ? "/retry" : ""}`
                    : `${method} /jobs`,
                rawPath: route,
                headers: { "content-type": "application/json" },
                requestContext: { http: { method, path: route } },
                pathParameters: jobId ? { jobId } : undefined,
                body,
                isBase64Encoded: false,
            } as unknown as APIGatewayProxyEventV2);
            return { status: reply.statusCode, body: JSON.parse(reply.body) };
        };
        const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "renderer-lambda-last-"));
        const renderer = await sandboxWith({
            functionEnvironment: {
                ...config.functionEnvironment,
                ...rendererEnvironment(last, { ...FARM_DEFAULTS, maxReceiveCount, failureBackoffSeconds: 1 }),
            },
            timeoutSeconds,
            tmpDir,
        });
        const scene = await makeScene({ frames: "1-3", resolutionX: WIDTH, resolutionY: HEIGHT, samples: 4 });
        await emulator.s3.send(
            new PutObjectCommand({
                Bucket: last.scenesBucket,
                Key: "shots/last/scene.blend",
                Body: fs.readFileSync(scene.blendPath),
            }),
        );
        const jobId = "last-attempt-killed";
        const submit = { scene: "shots/last/scene.blend", frames: "2", jobId };
        const submitted = await call("POST", "/jobs");
        assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));

        /** The event source mapping's next delivery of the frame to the renderer, waiting for it to be visible. */
        const deliverWhenVisible = () =>
            waitFor(
                "the frame message delivered",
                (timeoutSeconds + 60) * 1000,
                async () => {
                    const outcome = await pollOnce({
                        sqs: emulator.sqs,
                        queueUrl: last.frameQueueUrl,
                        queueArn: lastQueueArn,
                        region: emulator.region,
                        handler: async (event: SQSEvent) => {
                            const result = await renderer.invoke(event);
                            if (!result.ok) throw new Error(`${result.error.errorType}: ${result.error.errorMessage}`);
                            return result.payload as { batchItemFailures: { itemIdentifier: string }[] };
                        },
                    });
                    return outcome === "empty" ? undefined : outcome;
                },
                500,
            );
        const recordOf = async (): Promise<FrameRecord | undefined> => {
            try {
                return await frameRecordIn(last.rendersBucket, jobId, 2);
            } catch {
                return undefined;
            }
        };

        for (const attempt of [1, 2]) {
            const delivered = deliverWhenVisible();
            // The whole runtime dies while the frame renders, as it does past the Lambda's memory or timeout.
            await waitFor(
                `attempt ${attempt} rendering`,
                (timeoutSeconds + 60) * 1000,
                () => (renderingIn(tmpDir) ? true : undefined),
                50,
            );
            process.kill(-renderer.pid()!, "SIGKILL");
            assert.strictEqual(await delivered, "failed");
            const record = await recordOf();
            const now = (await call("GET", `/jobs/${jobId}`)).body as JobStatus;
            assert.deepStrictEqual(
                now.frames,
                { total: 1, done: 0, failed: 0, pending: 1 },
                `after attempt ${attempt}`,
            );
            if (attempt === 1) assert.strictEqual(record, undefined, "a killed attempt writes nothing");
            else {
                // Written before the render: failed for good only once the invocation can no longer report.
                assert.strictEqual(record?.error?.code, "renderer_killed", JSON.stringify(record));
                assert.ok(record!.provisionalUntil, JSON.stringify(record));
            }
        }

        // The next receive moves the message to the DLQ; the frame then reads failed, with the reason.
        const dlqDepth = async () =>
            Number(
                (
                    await emulator.sqs.send(
                        new GetQueueAttributesCommand({
                            QueueUrl: last.deadLetterQueueUrl,
                            AttributeNames: ["ApproximateNumberOfMessages"],
                        }),
                    )
                ).Attributes!.ApproximateNumberOfMessages,
            );
        await waitFor(
            "the frame message in the DLQ",
            (timeoutSeconds + 60) * 1000,
            async () => {
                assert.strictEqual(await deliverWhenVisibleOnce(), "empty", "a third delivery");
                return (await dlqDepth()) === 1 ? true : undefined;
            },
            1000,
        );
        const failed = await waitFor(
            "the frame to read failed",
            60_000,
            async () => {
                const now = (await call("GET", `/jobs/${jobId}`)).body as JobStatus;
                return now.frames.failed === 1 ? now : undefined;
            },
            1000,
        );
        assert.strictEqual(failed.state, "failed");
        assert.deepStrictEqual(failed.frames, { total: 1, done: 0, failed: 1, pending: 0 });
        assert.strictEqual(failed.failures[0].attempts, 2);
        assert.match(
            failed.failures[0].error,
            /^renderer_killed: the renderer ended without reporting on the frame's last attempt \(2 of 2\), so its message went to the dead-letter queue: it was killed mid-frame, as Lambda ends a renderer that passes its memory \(10240 MB\) or its time \(the invocation had 4\d s left\); attempt 1 left no record either; render at a lower resolution/,
        );
        console.log(`      ${failed.failures[0].error}`);

        const retried = await call("POST", `/jobs/${jobId}/retry`);
        assert.strictEqual(retried.status, 202, JSON.stringify(retried.body));
        assert.strictEqual(retried.body.requeued, 1);
        assert.strictEqual(retried.body.deadLetters.removed, 1);
        assert.strictEqual(await deliverWhenVisible(), "succeeded");
        const complete = (await call("GET", `/jobs/${jobId}`)).body as JobStatus;
        assert.strictEqual(complete.state, "complete", JSON.stringify(complete));
        const done = await recordOf();
        assert.deepStrictEqual([done?.status, done?.attempts, done?.provisionalUntil], ["done", 1, undefined]);

        async function deliverWhenVisibleOnce() {
            return pollOnce({
                sqs: emulator.sqs,
                queueUrl: last.frameQueueUrl,
                queueArn: lastQueueArn,
                region: emulator.region,
                handler: async () => {
                    throw new Error("the message was delivered a third time");
                },
            });
        }
    });

    it("reports an image that cannot start: ENTRYPOINT node + aws-lambda-ric, no _HANDLER", async function () {
        // The runtime client started directly reads the handler only from _HANDLER, which Lambda leaves unset for an
        // image function: the CMD is ignored and the runtime exits before its first invocation.
        const directRuntimeClient = fs
            .readFileSync(path.join(PROJECT_ROOT, "image", "Dockerfile"), "utf8")
            .replace(
                /^ENTRYPOINT .*$/m,
                'ENTRYPOINT ["/usr/local/bin/node", "/var/task/node_modules/aws-lambda-ric/index.mjs"]',
            );
        const old = await rendererImageFunction(directRuntimeClient);
        const oldSandbox = await startLambdaSandbox(imageSandboxOptions(old, config));
        sandboxes.push(oldSandbox);
        await assert.rejects(
            oldSandbox.start(),
            /exited \(exit status 1\) before it asked for an invocation[\s\S]*_HANDLER environment variable is not set/,
        );
    });
});
