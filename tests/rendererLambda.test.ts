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
import type { SQSEvent } from "aws-lambda";
import { FrameMessage, FrameRecord, frameOutputKey, frameRecordKey } from "../functions/shared/contract";
import { Emulator, FarmResources, createFarmResources, startEmulator } from "../local/emulator";
import { findBlender } from "../local/farm";
import { ImageFunction, ImageFunctionConfig, buildImageFunction, imageSandboxOptions } from "../local/imageFunction";
import { imagePackages, nodeForRuntime } from "../local/imagePackages";
import { LambdaSandbox, startLambdaSandbox } from "../local/lambdaSandbox";
import { pollOnce } from "../local/eventSourcePoller";
import { PROJECT_ROOT } from "./support/pulumiProgram";
import { decodePng, makeScene } from "./support/scenes";
import { renderingIn } from "./support/blenderProcesses";

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

    async function frameRecord(jobId: string, frame: number): Promise<FrameRecord> {
        const object = await emulator.s3.send(
            new GetObjectCommand({ Bucket: farm.rendersBucket, Key: frameRecordKey(jobId, frame) }),
        );
        return JSON.parse(await object.Body!.transformToString());
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
                SCENES_BUCKET: farm.scenesBucket,
                RENDERS_BUCKET: farm.rendersBucket,
                FRAME_QUEUE_URL: farm.frameQueueUrl,
                MAX_RECEIVE_COUNT: "3",
                FAILURE_BACKOFF_SECONDS: "1",
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

    it("would have caught the image that could not start (ENTRYPOINT node + aws-lambda-ric, no _HANDLER)", async function () {
        // image/Dockerfile before 5ba511e: the runtime client started directly, the CMD ignored.
        const before5ba511e = fs
            .readFileSync(path.join(PROJECT_ROOT, "image", "Dockerfile"), "utf8")
            .replace(
                /^ENTRYPOINT .*$/m,
                'ENTRYPOINT ["/usr/local/bin/node", "/var/task/node_modules/aws-lambda-ric/index.mjs"]',
            );
        const old = await rendererImageFunction(before5ba511e);
        const oldSandbox = await startLambdaSandbox(imageSandboxOptions(old, config));
        sandboxes.push(oldSandbox);
        await assert.rejects(
            oldSandbox.start(),
            /exited \(exit status 1\) before it asked for an invocation[\s\S]*_HANDLER environment variable is not set/,
        );
    });
});
