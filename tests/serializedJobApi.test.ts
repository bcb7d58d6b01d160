// What ships is what was tested: the job API archive a mocked `pulumi up` serializes, unpacked and run
// in a separate Node process, as Lambda would, against the S3/SQS emulator over HTTP.
import * as assert from "assert";
import * as childProcess from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as util from "util";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { DeleteMessageCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import { FrameMessage, frameOutputKey } from "../functions/contract";
import { Emulator, FarmResources, createFarmResources, startEmulator } from "../local/emulator";
import { archiveFiles, writeArchive } from "./support/archive";
import { PROJECT_ROOT, runProgram, stackConfig } from "./support/pulumiProgram";
import { makeScene } from "./support/scenes";

const execFile = util.promisify(childProcess.execFile);
const runtimeModules = runtimeProvidedModules();

/** What the nodejs22.x runtime puts beside a function: the AWS SDK v3, and nothing else of this project's packages. */
function runtimeProvidedModules(): string {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "lambda-runtime-modules-"));
    fs.mkdirSync(path.join(directory, "@aws-sdk"));
    for (const client of ["client-s3", "client-sqs"]) fs.symlinkSync(path.join(PROJECT_ROOT, "node_modules", "@aws-sdk", client), path.join(directory, "@aws-sdk", client));
    return directory;
}

/**
 * Runs the archive's `__index.handler` once in a fresh Node process (asynchronously: the emulator answers
 * from this one); the AWS SDK comes from outside the archive, as the nodejs22.x runtime provides it.
 */
async function invokeInProcess(archiveDir: string, environment: Record<string, string>, event: unknown): Promise<{ statusCode: number; body: any }> {
    const script = `
        const { handler } = require(${JSON.stringify(path.join(archiveDir, "__index.js"))});
        handler(JSON.parse(process.argv[1])).then(
            (result) => { process.stdout.write(JSON.stringify(result)); },
            (error) => { console.error(error); process.exit(3); });`;
    const { stdout: output } = await execFile(process.execPath, ["-e", script, JSON.stringify(event)], {
        cwd: archiveDir,
        env: { PATH: process.env.PATH ?? "", NODE_PATH: runtimeModules, ...environment },
        encoding: "utf8",
        timeout: 60_000,
    });
    const result = JSON.parse(output);
    return { statusCode: result.statusCode, body: JSON.parse(result.body) };
}

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

describe("the serialized job API archive, run in its own process", function () {
    let emulator: Emulator;
    let farm: FarmResources;
    let archiveDir: string;
    let environment: Record<string, string>;

    before(async function () {
        const run = await runProgram(stackConfig("dev"));
        const jobApi = run.named("render-farm-api-function");
        archiveDir = writeArchive(await archiveFiles(jobApi.inputs.code), fs.mkdtempSync(path.join(os.tmpdir(), "job-api-lambda-")));
        emulator = await startEmulator();
        farm = await createFarmResources(emulator, { name: "serialized", maxReceiveCount: 3, visibilityTimeoutSeconds: 60, receiveWaitTimeSeconds: 0 });
        // The function's own environment, as the stack sets it, pointed at the emulator's resources.
        const variables = jobApi.inputs.environment.variables as Record<string, string>;
        environment = {
            ...variables,
            SCENES_BUCKET: farm.scenesBucket,
            RENDERS_BUCKET: farm.rendersBucket,
            FRAME_QUEUE_URL: farm.frameQueueUrl,
            AWS_ENDPOINT_URL: emulator.endpoint,
            AWS_REGION: emulator.region,
            AWS_ACCESS_KEY_ID: emulator.credentials.accessKeyId,
            AWS_SECRET_ACCESS_KEY: emulator.credentials.secretAccessKey,
        };
        // The job API reads the scene (frame range, camera, referenced files) before it queues anything.
        await emulator.s3.send(new PutObjectCommand({ Bucket: farm.scenesBucket, Key: "shots/a/shot.blend", Body: fs.readFileSync((await makeScene()).blendPath) }));
        await emulator.s3.send(new PutObjectCommand({ Bucket: farm.scenesBucket, Key: "shots/a/textures/wood.png", Body: "png" }));
    });

    after(async function () {
        await emulator?.stop();
    });

    it("accepts a job and queues one versioned message per frame", async function () {
        const request = { scene: "shots/a/shot.blend", assets: ["shots/a/textures/wood.png"], frames: "1-9x2,20", engine: "CYCLES", samples: 8, format: "JPEG", jobId: "shipped-archive" };
        const reply = await invokeInProcess(archiveDir, environment, httpEvent("POST /jobs", "/jobs", request));
        assert.strictEqual(reply.statusCode, 202, JSON.stringify(reply.body));
        assert.strictEqual(reply.body.jobId, "shipped-archive");
        assert.strictEqual(reply.body.frames, 6);

        const messages: FrameMessage[] = [];
        for (let round = 0; round < 10 && messages.length < 6; round++) {
            const received = await emulator.sqs.send(new ReceiveMessageCommand({ QueueUrl: farm.frameQueueUrl, MaxNumberOfMessages: 10 }));
            for (const message of received.Messages ?? []) {
                messages.push(JSON.parse(message.Body!));
                await emulator.sqs.send(new DeleteMessageCommand({ QueueUrl: farm.frameQueueUrl, ReceiptHandle: message.ReceiptHandle! }));
            }
        }
        assert.deepStrictEqual(messages.map((message) => message.frame).sort((a, b) => a - b), [1, 3, 5, 7, 9, 20]);
        for (const message of messages) {
            assert.strictEqual(message.v, 1);
            assert.strictEqual(message.jobId, "shipped-archive");
            assert.strictEqual(message.scene, "shots/a/shot.blend");
            assert.ok(message.sceneEtag.length > 0);
            assert.deepStrictEqual(message.assets, ["shots/a/textures/wood.png"]);
            assert.deepStrictEqual(message.settings, { engine: "CYCLES", samples: 8, format: "JPEG" });
            assert.deepStrictEqual(message.output, { bucket: farm.rendersBucket, key: frameOutputKey("shipped-archive", message.frame, "JPEG") });
        }

        const status = await invokeInProcess(archiveDir, environment, httpEvent("GET /jobs/{jobId}", "/jobs/shipped-archive", undefined, { jobId: "shipped-archive" }));
        assert.strictEqual(status.statusCode, 200);
        assert.deepStrictEqual(status.body.frames, { total: 6, done: 0, failed: 0, pending: 6 });
        assert.strictEqual(status.body.state, "queued");
    });

    it("names the missing objects and a bad field, as the tested handler does", async function () {
        const missing = await invokeInProcess(archiveDir, environment, httpEvent("POST /jobs", "/jobs", { scene: "shots/a/shot.blend", assets: ["shots/a/textures/gone.png"], frames: "1" }));
        assert.strictEqual(missing.statusCode, 422);
        assert.strictEqual(missing.body.error.code, "missing_objects");
        assert.deepStrictEqual(missing.body.error.missing, ["shots/a/textures/gone.png"]);

        const bad = await invokeInProcess(archiveDir, environment, httpEvent("POST /jobs", "/jobs", { scene: "shots/a/shot.blend", frames: "5-1" }));
        assert.strictEqual(bad.statusCode, 400);
        assert.strictEqual(bad.body.error.field, "frames");

        const unknown = await invokeInProcess(archiveDir, environment, httpEvent("GET /jobs/{jobId}", "/jobs/nope", undefined, { jobId: "nope" }));
        assert.strictEqual(unknown.statusCode, 404);
    });
});
