// Opt-in (`npm run test:image`, root, builds the image first; not part of `npm test`, hence no .test.ts): the
// renderer image run the way Lambda runs an image function. Read-only root, /tmp the only writable place, an
// unprivileged uid, a memory limit, Lambda's variables, and the Runtime API served from here; the buckets and
// the frame queue live in the project's S3/SQS emulator. One frame is submitted through the job API handler,
// its SQS event is delivered through the Runtime API, and the frame must land in the renders bucket.
import * as assert from "assert";
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { DeleteMessageCommand, GetQueueAttributesCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { createJobApiHandler } from "../../functions/jobApi/handler";
import { FARM_DEFAULTS } from "../../functions/shared/farmSettings";
import { rendererEnvironment } from "../../functions/shared/functionEnvironment";
import { ENGINES, FrameRecord, frameOutputKey, frameRecordKey } from "../../functions/shared/contract";
import { Emulator, FarmResources, createFarmResources, startEmulator } from "../../local/emulator";
import { sqsRecordOf } from "../../local/eventSourcePoller";
import { BLENDER, comparePngs, decodePng, distinctColors, makeScene, renderDirect } from "../support/scenes";
import { exitReason, RuntimeApi, startRuntimeApi } from "../../local/lambdaRuntimeApi";

const IMAGE = process.env.RENDERER_IMAGE ?? "localhost/render-farm-renderer:test";
/** The engine command and its global options, e.g. "podman --runtime runc" (crun refuses hybrid cgroups here). */
const ENGINE = (process.env.CONTAINER_ENGINE ?? "podman --runtime runc").split(" ");
/** As the stack's defaults (config.ts): 10240 MB memory and /tmp, 900 s timeout. */
const MEMORY_MB = Number(process.env.IMAGE_TEST_MEMORY_MB ?? 10240);
const EPHEMERAL_MB = Number(process.env.IMAGE_TEST_EPHEMERAL_MB ?? 10240);
const TIMEOUT_SECONDS = 900;
/** The unprivileged user Lambda runs functions as (sbx_user1051). */
const LAMBDA_USER = "993:990";
/** Lambda's quotas: 1024 file descriptors, 1024 processes and threads. */
const LAMBDA_ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];
const FUNCTION_NAME = "render-farm-renderer-image-test";
const REGION = "us-east-1";
const ACCOUNT = "123456789012";
const TIMINGS_FILE = process.env.IMAGE_TEST_TIMINGS;

// ---- The container, started as Lambda starts an image function ------------------------------------------

/** Flags that make the engine's container look like Lambda's sandbox from the inside. */
function lambdaRunFlags(engine: string): string[] {
    const readOnly = engine === "podman" ? ["--read-only", "--read-only-tmpfs=false"] : ["--read-only"];
    return [
        ...readOnly,
        "--tmpfs",
        `/tmp:rw,size=${EPHEMERAL_MB}m,mode=1777`,
        "--user",
        LAMBDA_USER,
        "--memory",
        `${MEMORY_MB}m`,
        "--memory-swap",
        `${MEMORY_MB}m`,
        ...LAMBDA_ULIMITS,
        // Loopback is where the Runtime API and the emulator listen, as Lambda's Runtime API is on 127.0.0.1:9001.
        "--network",
        "host",
    ];
}

/** What Lambda puts in an image function's environment, plus the function's own variables. */
function lambdaEnvironment(runtimeApi: string, emulator: Emulator, farm: FarmResources): Record<string, string> {
    const today = new Date().toISOString().slice(0, 10).replace(/-/g, "/");
    return {
        AWS_LAMBDA_RUNTIME_API: runtimeApi,
        AWS_LAMBDA_FUNCTION_NAME: FUNCTION_NAME,
        AWS_LAMBDA_FUNCTION_VERSION: "$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(MEMORY_MB),
        AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${FUNCTION_NAME}`,
        AWS_LAMBDA_LOG_STREAM_NAME: `${today}/[$LATEST]${crypto.randomBytes(16).toString("hex")}`,
        AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand",
        AWS_REGION: REGION,
        AWS_DEFAULT_REGION: REGION,
        AWS_ACCESS_KEY_ID: emulator.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: emulator.credentials.secretAccessKey,
        AWS_SESSION_TOKEN: "image-test-session-token",
        _HANDLER: "",
        LAMBDA_TASK_ROOT: "/var/task",
        LAMBDA_RUNTIME_DIR: "/var/runtime",
        TZ: ":UTC",
        // The function's environment, as components/renderer.ts sets it for a stack at the defaults.
        ...rendererEnvironment(farm, FARM_DEFAULTS),
        // The one addition Lambda would not make: the SDK's endpoint for S3 and SQS is the emulator.
        AWS_ENDPOINT_URL: emulator.endpoint,
    };
}

describe("the renderer image, run as Lambda runs an image function", function () {
    this.timeout(15 * 60_000);
    let emulator: Emulator;
    let farm: FarmResources;
    let runtimeApi: RuntimeApi;
    let container: ChildProcess | undefined;
    let containerName: string;
    let containerLog = "";
    let exited: Promise<number | null>;
    let spawnedAt = 0;
    const timings: Record<string, number> = {};

    before(async function () {
        emulator = await startEmulator();
        farm = await createFarmResources(emulator, {
            name: "image-test",
            maxReceiveCount: 3,
            visibilityTimeoutSeconds: TIMEOUT_SECONDS,
            receiveWaitTimeSeconds: 0,
        });
        runtimeApi = await startRuntimeApi({
            functionArn: `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${FUNCTION_NAME}`,
            // Lambda ends a sandbox whose invocation ran out of time.
            onTimeout: () => container?.kill("SIGKILL"),
        });
        containerName = `render-farm-image-test-${process.pid}`;
        const environment = Object.entries(lambdaEnvironment(runtimeApi.address, emulator, farm)).flatMap(
            ([name, value]) => ["--env", `${name}=${value}`],
        );
        spawnedAt = Date.now();
        container = spawn(
            ENGINE[0],
            [
                ...ENGINE.slice(1),
                "run",
                "--rm",
                "--name",
                containerName,
                ...lambdaRunFlags(path.basename(ENGINE[0])),
                ...environment,
                IMAGE,
            ],
            { stdio: ["ignore", "pipe", "pipe"] },
        );
        const keep = (chunk: Buffer) => {
            containerLog += chunk.toString("utf8");
            if (process.env.IMAGE_TEST_VERBOSE) process.stderr.write(chunk);
        };
        container.stdout!.on("data", keep);
        container.stderr!.on("data", keep);
        exited = new Promise((resolve) =>
            container!.on("close", (code, signal) => {
                runtimeApi.runtimeExited(exitReason(code, signal));
                resolve(code);
            }),
        );
    });

    after(async function () {
        if (container && container.exitCode === null) {
            try {
                execFileSync(ENGINE[0], [...ENGINE.slice(1), "rm", "--force", "--time", "0", containerName], {
                    stdio: "ignore",
                });
            } catch {
                container.kill("SIGKILL");
            }
            await exited;
        }
        await runtimeApi?.close();
        await emulator?.stop();
        if (TIMINGS_FILE) fs.writeFileSync(TIMINGS_FILE, JSON.stringify(timings, null, 2));
        for (const [name, ms] of Object.entries(timings)) console.log(`  timing: ${name} ${(ms / 1000).toFixed(1)} s`);
    });

    /** Fails with the container's output when it exits or reports an init error before `promise` settles. */
    function beforeTheContainerDies<T>(promise: Promise<T>): Promise<T> {
        const died = exited.then((code) => {
            throw new Error(`the container exited (${code}) early; its output:\n${containerLog.slice(-6000)}`);
        });
        return Promise.race([promise, died]);
    }

    it("starts under those limits and asks the Runtime API for its first event", async function () {
        await beforeTheContainerDies(
            runtimeApi.waitForNext().catch((error: Error) => {
                throw new Error(`${error.message}\ncontainer output:\n${containerLog.slice(-6000)}`);
            }),
        );
        timings.coldStartToFirstNext = Date.now() - spawnedAt;
    });

    /** Submits through the job API, receives the frame's message as the event source mapping would, and invokes. */
    /** Submits the job through the job API's handler, then invokes the container once per message it queued. */
    async function renderThroughRuntimeApi(
        jobId: string,
        request: Record<string, unknown>,
        messages = 1,
    ): Promise<{ response: SQSBatchResponse; renderMs: number }> {
        const jobApi = createJobApiHandler({
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: {
                scenesBucket: farm.scenesBucket,
                rendersBucket: farm.rendersBucket,
                frameQueueUrl: farm.frameQueueUrl,
                limits: { maxFrames: 100, maxResolution: 4096, allowedEngines: [...ENGINES] },
                maxReceiveCount: 3,
            },
        });
        const reply = await jobApi({
            version: "2.0",
            routeKey: "POST /jobs",
            rawPath: "/jobs",
            headers: { "content-type": "application/json" },
            requestContext: { http: { method: "POST", path: "/jobs" } },
            body: JSON.stringify({ ...request, jobId }),
            isBase64Encoded: false,
        } as any);
        assert.strictEqual(reply.statusCode, 202, reply.body);
        const queueArn = (
            await emulator.sqs.send(
                new GetQueueAttributesCommand({ QueueUrl: farm.frameQueueUrl, AttributeNames: ["QueueArn"] }),
            )
        ).Attributes!.QueueArn!;
        const invokedAt = Date.now();
        const failures: SQSBatchResponse["batchItemFailures"] = [];
        for (let message = 0; message < messages; message++) {
            const received = await emulator.sqs.send(
                new ReceiveMessageCommand({
                    QueueUrl: farm.frameQueueUrl,
                    MaxNumberOfMessages: 1,
                    MessageSystemAttributeNames: ["All"],
                }),
            );
            assert.strictEqual(
                received.Messages?.length,
                1,
                `the job API queued message ${message + 1} of ${messages}`,
            );
            const event: SQSEvent = { Records: [sqsRecordOf(received.Messages![0], queueArn, REGION)] };
            const outcome = await beforeTheContainerDies(
                runtimeApi.invoke(event, { timeoutMs: TIMEOUT_SECONDS * 1000 }),
            );
            assert.ok(
                outcome.ok,
                `the handler failed: ${JSON.stringify(outcome)}\ncontainer output:\n${containerLog.slice(-6000)}`,
            );
            const response = outcome.payload as SQSBatchResponse;
            failures.push(...response.batchItemFailures);
            // As the event source mapping does: a message not reported as failed is deleted.
            if (response.batchItemFailures.length === 0)
                await emulator.sqs.send(
                    new DeleteMessageCommand({
                        QueueUrl: farm.frameQueueUrl,
                        ReceiptHandle: received.Messages![0].ReceiptHandle!,
                    }),
                );
        }
        return { response: { batchItemFailures: failures }, renderMs: Date.now() - invokedAt };
    }

    async function getObject(bucket: string, key: string): Promise<Buffer> {
        const response = await emulator.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return Buffer.from(await response.Body!.transformToByteArray());
    }

    it("renders one frame from an SQS event into the renders bucket and answers through the Runtime API", async function () {
        const scene = await makeScene({ texture: "textures/checker.png", frames: "1-4" });
        await emulator.s3.send(
            new PutObjectCommand({
                Bucket: farm.scenesBucket,
                Key: "shots/textured/scene.blend",
                Body: fs.readFileSync(scene.blendPath),
            }),
        );
        await emulator.s3.send(
            new PutObjectCommand({
                Bucket: farm.scenesBucket,
                Key: "shots/textured/textures/checker.png",
                Body: fs.readFileSync(scene.texturePath!),
            }),
        );

        const { response, renderMs } = await renderThroughRuntimeApi("image-cycles", {
            scene: "shots/textured/scene.blend",
            assets: ["shots/textured/textures/checker.png"],
            frames: "2",
        });
        timings.firstFrameInvocation = renderMs;
        const record = JSON.parse(
            (await getObject(farm.rendersBucket, frameRecordKey("image-cycles", 2))).toString("utf8"),
        ) as FrameRecord;
        assert.deepStrictEqual(response, { batchItemFailures: [] }, `frame record: ${JSON.stringify(record)}`);
        assert.strictEqual(record.status, "done", JSON.stringify(record));
        assert.strictEqual(record.memoryMb, MEMORY_MB, "the handler read AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
        timings.firstFrameBlender = record.blenderMs;

        const work = fs.mkdtempSync(path.join(os.tmpdir(), "image-test-"));
        const framePath = path.join(work, "frame.png");
        fs.writeFileSync(framePath, await getObject(farm.rendersBucket, frameOutputKey("image-cycles", 2, "PNG")));
        const png = decodePng(framePath);
        assert.deepStrictEqual([png.width, png.height], [64, 48]);
        assert.ok(distinctColors(png) > 20, `a nearly blank frame (${distinctColors(png)} colors)`);
        // With this machine's Blender in the image (the Debian stand-in) the frame must match `blender -b -f 2` exactly.
        const hostBlender = firstLine(execFileSync(BLENDER, ["--version"], { encoding: "utf8" }));
        const imageBlender = firstLine(
            execFileSync(
                ENGINE[0],
                [
                    ...ENGINE.slice(1),
                    "run",
                    "--rm",
                    ...LAMBDA_ULIMITS,
                    "--network",
                    "none",
                    "--entrypoint",
                    "/opt/blender/blender",
                    IMAGE,
                    "--version",
                ],
                { encoding: "utf8" },
            ),
        );
        if (imageBlender === hostBlender) {
            const comparison = comparePngs(framePath, await renderDirect(scene.blendPath, 2, work));
            assert.ok(
                comparison.sameShape && comparison.differingSamples === 0,
                `the image's frame differs from ${hostBlender}'s own: ${JSON.stringify(comparison)}`,
            );
        } else {
            console.log(
                `  the image's ${imageBlender} is not this machine's ${hostBlender}: frame checked for size and content only`,
            );
        }
        const left = emulator.inspectQueue(farm.frameQueueUrl)!;
        assert.deepStrictEqual([left.waiting.length, left.inFlight.length], [0, 0], "the frame's message was deleted");
    });

    it("renders EEVEE headless on the warm container (EGL, Mesa's software rasterizer)", async function () {
        const { response, renderMs } = await renderThroughRuntimeApi("image-eevee", {
            scene: "shots/textured/scene.blend",
            assets: ["shots/textured/textures/checker.png"],
            frames: "3",
            engine: "EEVEE",
            samples: 2,
        });
        timings.warmEeveeInvocation = renderMs;
        const record = JSON.parse(
            (await getObject(farm.rendersBucket, frameRecordKey("image-eevee", 3))).toString("utf8"),
        ) as FrameRecord;
        assert.deepStrictEqual(response, { batchItemFailures: [] }, `frame record: ${JSON.stringify(record)}`);
        const png = decodePng(writeTemp(await getObject(farm.rendersBucket, frameOutputKey("image-eevee", 3, "PNG"))));
        assert.ok(distinctColors(png) > 20, `EEVEE rendered a nearly blank frame (${distinctColors(png)} colors)`);
    });

    it("renders a frame as 2 tiles and stitches it inside the container (its oiiotool), equal to the whole frame", async function () {
        const { response, renderMs } = await renderThroughRuntimeApi(
            "image-tiles",
            {
                scene: "shots/textured/scene.blend",
                assets: ["shots/textured/textures/checker.png"],
                frames: "2",
                tiles: 2,
            },
            2,
        );
        timings.twoTileInvocations = renderMs;
        const record = JSON.parse(
            (await getObject(farm.rendersBucket, frameRecordKey("image-tiles", 2))).toString("utf8"),
        ) as FrameRecord;
        assert.deepStrictEqual(response, { batchItemFailures: [] }, `frame record: ${JSON.stringify(record)}`);
        assert.strictEqual(record.status, "done", JSON.stringify(record));
        assert.strictEqual(record.stitch?.of, 2, JSON.stringify(record));
        // Pixel for pixel the frame the container rendered whole (the first test's job, same scene and frame).
        const comparison = comparePngs(
            writeTemp(await getObject(farm.rendersBucket, frameOutputKey("image-tiles", 2, "PNG"))),
            writeTemp(await getObject(farm.rendersBucket, frameOutputKey("image-cycles", 2, "PNG"))),
        );
        assert.ok(
            comparison.sameShape && comparison.differingSamples === 0,
            `the stitched frame differs from the whole one: ${JSON.stringify(comparison)}`,
        );
    });

    it("keeps running between invocations, waiting on the Runtime API for the next event", async function () {
        assert.strictEqual(
            container!.exitCode,
            null,
            `the runtime exited after answering: ${containerLog.slice(-3000)}`,
        );
    });
});

function firstLine(text: string): string {
    return text.split("\n")[0].trim();
}

function writeTemp(bytes: Buffer): string {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "image-test-")), "frame.png");
    fs.writeFileSync(file, bytes);
    return file;
}
