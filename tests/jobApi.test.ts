// The job API against the embedded S3/SQS emulator over HTTP: what gets queued, what gets refused, what the ledger says.
import * as assert from "assert";
import * as fs from "fs";
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import {
    CreateQueueCommand,
    DeleteMessageCommand,
    GetQueueAttributesCommand,
    PurgeQueueCommand,
    ReceiveMessageCommand,
    SendMessageCommand,
} from "@aws-sdk/client-sqs";
import {
    encodeEtags,
    FrameMessage,
    frameRecordKey,
    FrameRecord,
    JobManifest,
    JobStatus,
    manifestKey,
    MAX_REQUEST_BYTES,
} from "../functions/shared/contract";
import { getJobStatus } from "../functions/jobApi/status";
import { JobApiDeps, jobApiSettingsFromEnvironment } from "../functions/jobApi/settings";
import { retryJob } from "../functions/jobApi/retry";
import { requestHashOf, submitJob } from "../functions/jobApi/submit";
import { createJobApiHandler, HttpApiEvent, HttpApiResult, JobApiHandler } from "../functions/jobApi/handler";
import { computeJobStatus } from "../functions/shared/jobStatus";
import { jobLedger } from "../functions/shared/ledger";
import { mapWithConcurrency } from "../functions/shared/concurrency";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { makeScene } from "./support/scenes";

const SCENE = "shots/a/shot.blend";
/** Not a .blend, though named like one (and starting like one): the preflight must refuse it. */
const FAKE_SCENE = "shots/a/fake.blend";
const NO_CAMERA_SCENE = "shots/a/no-camera.blend";
const TEXTURE = "shots/a/textures/wood.png";
const CACHE = "shots/a/cache/fluid_0001.vdb";
const MAX_FRAMES = 100;
const MAX_RECEIVE_COUNT = 3;

describe("job API", function () {
    let emulator: Emulator;
    let farm: FarmResources;
    const ledger = () => jobLedger(emulator.s3, farm.rendersBucket);
    let deps: JobApiDeps;
    let handler: JobApiHandler;
    let sceneEtag: string;

    before(async function () {
        emulator = await startEmulator({ port: 0 });
        farm = await createFarmResources(emulator, {
            name: "jobapi",
            maxReceiveCount: MAX_RECEIVE_COUNT,
            visibilityTimeoutSeconds: 30,
        });
        // Real .blend files: the job API reads every scene (frames 1-4, a camera, no external files).
        const put = await emulator.s3.send(
            new PutObjectCommand({
                Bucket: farm.scenesBucket,
                Key: SCENE,
                Body: fs.readFileSync((await makeScene()).blendPath),
            }),
        );
        sceneEtag = put.ETag!;
        await emulator.s3.send(
            new PutObjectCommand({
                Bucket: farm.scenesBucket,
                Key: FAKE_SCENE,
                Body: "BLENDER-v304 and then nothing a .blend has",
            }),
        );
        await emulator.s3.send(
            new PutObjectCommand({
                Bucket: farm.scenesBucket,
                Key: NO_CAMERA_SCENE,
                Body: fs.readFileSync((await makeScene({ noCamera: true })).blendPath),
            }),
        );
        await emulator.s3.send(new PutObjectCommand({ Bucket: farm.scenesBucket, Key: TEXTURE, Body: "PNG" }));
        await emulator.s3.send(new PutObjectCommand({ Bucket: farm.scenesBucket, Key: CACHE, Body: "VDB" }));
        const settings = jobApiSettingsFromEnvironment({
            SCENES_BUCKET: farm.scenesBucket,
            RENDERS_BUCKET: farm.rendersBucket,
            FRAME_QUEUE_URL: farm.frameQueueUrl,
            MAX_FRAMES_PER_JOB: String(MAX_FRAMES),
            MAX_RESOLUTION: "4096",
            ALLOWED_ENGINES: "CYCLES, eevee",
            MAX_RECEIVE_COUNT: String(MAX_RECEIVE_COUNT),
        });
        deps = { s3: emulator.s3, sqs: emulator.sqs, settings };
        handler = createJobApiHandler(deps);
    });

    after(async function () {
        await emulator?.stop();
    });

    beforeEach(async function () {
        await emulator.sqs.send(new PurgeQueueCommand({ QueueUrl: farm.frameQueueUrl }));
    });

    // ---- helpers ----

    function httpEvent(
        method: string,
        path: string,
        body?: string,
        options: { routeKey?: string; base64?: boolean } = {},
    ): HttpApiEvent {
        const match = /^\/jobs\/([^/]+)(\/retry)?$/.exec(path);
        const routeKey =
            options.routeKey ??
            (path === "/jobs" ? `${method} /jobs` : match ? `${method} /jobs/{jobId}${match[2] ?? ""}` : "$default");
        return {
            routeKey,
            rawPath: path,
            body: body === undefined ? undefined : options.base64 ? Buffer.from(body, "utf8").toString("base64") : body,
            isBase64Encoded: options.base64 ?? false,
            pathParameters: match ? { jobId: decodeURIComponent(match[1]) } : undefined,
            requestContext: { http: { method, path } },
        };
    }

    async function call(
        method: string,
        path: string,
        body?: unknown,
        options: { raw?: boolean; routeKey?: string; base64?: boolean } = {},
    ): Promise<{ status: number; body: any; result: HttpApiResult }> {
        const text = body === undefined ? undefined : options.raw ? (body as string) : JSON.stringify(body);
        const result = await handler(httpEvent(method, path, text, options));
        assert.strictEqual(result.headers["content-type"], "application/json");
        return { status: result.statusCode, body: JSON.parse(result.body), result };
    }

    /** Receives every message in the frame queue and deletes it. */
    async function drainQueue(queueUrl = farm.frameQueueUrl): Promise<string[]> {
        const bodies: string[] = [];
        for (;;) {
            const reply = await emulator.sqs.send(
                new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 300 }),
            );
            if (!reply.Messages?.length) return bodies;
            for (const message of reply.Messages) {
                bodies.push(message.Body!);
                await emulator.sqs.send(
                    new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle! }),
                );
            }
        }
    }

    async function messagesInQueue(queueUrl = farm.frameQueueUrl): Promise<number> {
        const { Attributes } = await emulator.sqs.send(
            new GetQueueAttributesCommand({
                QueueUrl: queueUrl,
                AttributeNames: [
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            }),
        );
        return (
            Number(Attributes!.ApproximateNumberOfMessages) +
            Number(Attributes!.ApproximateNumberOfMessagesNotVisible) +
            Number(Attributes!.ApproximateNumberOfMessagesDelayed)
        );
    }

    async function manifestKeys(): Promise<string[]> {
        const keys: string[] = [];
        let token: string | undefined;
        do {
            const page = await emulator.s3.send(
                new ListObjectsV2Command({ Bucket: farm.rendersBucket, Prefix: "jobs/", ContinuationToken: token }),
            );
            keys.push(...(page.Contents ?? []).map((object) => object.Key!).filter((key) => key.endsWith("/job.json")));
            token = page.IsTruncated ? page.NextContinuationToken : undefined;
        } while (token);
        return keys.sort();
    }

    async function readManifestObject(jobId: string): Promise<JobManifest> {
        const reply = await emulator.s3.send(
            new GetObjectCommand({ Bucket: farm.rendersBucket, Key: manifestKey(jobId) }),
        );
        return JSON.parse(await reply.Body!.transformToString());
    }

    function record(
        jobId: string,
        frame: number,
        status: FrameRecord["status"],
        extra: Partial<FrameRecord> = {},
    ): FrameRecord {
        return {
            jobId,
            frame,
            status,
            attempts: 1,
            startedAt: `2030-01-01T00:00:${String(frame % 60).padStart(2, "0")}.000Z`,
            finishedAt: `2030-01-01T00:01:${String(frame % 60).padStart(2, "0")}.000Z`,
            wallMs: 10000,
            blenderMs: 8000,
            renderSeconds: 8,
            memoryMb: 10240,
            costUsd: 0.001,
            ...(status === "done"
                ? {
                      output: {
                          bucket: farm.rendersBucket,
                          key: `renders/${jobId}/frame_${String(frame).padStart(4, "0")}.png`,
                      },
                  }
                : {}),
            ...(status !== "done"
                ? {
                      error: { code: "blender_exit", message: "Blender exited with code 1" },
                      logTail: "Error: out of memory\n",
                  }
                : {}),
            ...extra,
        };
    }

    const validRequest = {
        scene: SCENE,
        assets: [TEXTURE, CACHE],
        frames: "1-10x2,20",
        engine: "CYCLES",
        samples: 16,
        resolution: { x: 640, y: 360, percentage: 50 },
        format: "PNG",
    };

    // ---- submit ----

    it("queues exactly one message per frame, with the contract's frame message", async function () {
        const { status, body } = await call("POST", "/jobs", { ...validRequest, jobId: "shot-a-v1" });
        assert.strictEqual(status, 202, JSON.stringify(body));
        assert.deepStrictEqual(body, {
            jobId: "shot-a-v1",
            frames: 6,
            queued: 6,
            state: "queued",
            statusUrl: "/jobs/shot-a-v1",
        });

        const messages = (await drainQueue()).map((text) => JSON.parse(text) as FrameMessage);
        assert.deepStrictEqual(
            messages.map((message) => message.frame).sort((a, b) => a - b),
            [1, 3, 5, 7, 9, 20],
        );
        // Each asset pinned to the version the job API saw.
        const assetEtags = encodeEtags(
            await Promise.all(
                [TEXTURE, CACHE].map(
                    async (key) =>
                        (await emulator.s3.send(new HeadObjectCommand({ Bucket: farm.scenesBucket, Key: key }))).ETag!,
                ),
            ),
        );
        for (const message of messages) {
            const expected: FrameMessage = {
                v: 1,
                jobId: "shot-a-v1",
                frame: message.frame,
                scene: SCENE,
                sceneEtag,
                assets: [TEXTURE, CACHE],
                assetEtags,
                settings: {
                    engine: "CYCLES",
                    samples: 16,
                    resolution: { x: 640, y: 360, percentage: 50 },
                    format: "PNG",
                },
                output: {
                    bucket: farm.rendersBucket,
                    key: `renders/shot-a-v1/frame_${String(message.frame).padStart(4, "0")}.png`,
                },
            };
            assert.deepStrictEqual(message, expected);
        }

        const manifest = await readManifestObject("shot-a-v1");
        assert.deepStrictEqual(manifest.frames, [1, 3, 5, 7, 9, 20]);
        assert.strictEqual(manifest.sceneEtag, sceneEtag);
        assert.strictEqual(manifest.scenesBucket, farm.scenesBucket);
        assert.strictEqual(manifest.outputPrefix, "renders/shot-a-v1/");
        assert.match(manifest.requestHash, /^[0-9a-f]{64}$/);
        assert.ok(!Number.isNaN(Date.parse(manifest.createdAt)));
    });

    it("queues nothing new when the same jobId and request come again, even written differently", async function () {
        const first = await call("POST", "/jobs", { ...validRequest, jobId: "shot-a-v2" });
        assert.strictEqual(first.status, 202);
        assert.strictEqual((await drainQueue()).length, 6);

        // Same request: keys in another order, the same frames spelled another way, defaults written out.
        const again = await call("POST", "/jobs", {
            jobId: "shot-a-v2",
            format: "PNG",
            frames: "20, 1-9x2",
            resolution: { percentage: 50, y: 360, x: 640 },
            samples: 16,
            engine: "CYCLES",
            assets: [CACHE, TEXTURE, TEXTURE],
            scene: SCENE,
        });
        assert.strictEqual(again.status, 202, JSON.stringify(again.body));
        assert.deepStrictEqual(again.body, {
            jobId: "shot-a-v2",
            frames: 6,
            queued: 6,
            state: "queued",
            statusUrl: "/jobs/shot-a-v2",
        });
        assert.strictEqual(await messagesInQueue(), 0);
    });

    it("refuses the same jobId with another request (409) and queues nothing", async function () {
        assert.strictEqual((await call("POST", "/jobs", { ...validRequest, jobId: "shot-a-v3" })).status, 202);
        await drainQueue();
        const before = await readManifestObject("shot-a-v3");
        const { status, body } = await call("POST", "/jobs", { ...validRequest, samples: 64, jobId: "shot-a-v3" });
        assert.strictEqual(status, 409);
        assert.strictEqual(body.error.code, "job_conflict");
        assert.strictEqual(body.error.field, "jobId");
        assert.strictEqual(await messagesInQueue(), 0);
        assert.deepStrictEqual(await readManifestObject("shot-a-v3"), before, "the first job's manifest is untouched");
    });

    it("queues the scene's own frame range when the request has none, and refuses to guess when the preflight is off", async function () {
        const { status, body } = await call("POST", "/jobs", { scene: SCENE, jobId: "own-range" });
        assert.strictEqual(status, 202, JSON.stringify(body));
        assert.strictEqual(body.frames, 4);
        const messages = (await drainQueue()).map((text) => JSON.parse(text) as FrameMessage);
        assert.deepStrictEqual(
            messages.map((message) => message.frame).sort((a, b) => a - b),
            [1, 2, 3, 4],
        );
        assert.strictEqual((await readManifestObject("own-range")).request.frames, "1-4");
        // The same body again is the same job, not a conflict.
        const again = await call("POST", "/jobs", { scene: SCENE, jobId: "own-range" });
        assert.strictEqual(again.status, 202, JSON.stringify(again.body));
        assert.strictEqual(await messagesInQueue(), 0);

        const environment = { SCENES_BUCKET: "s", RENDERS_BUCKET: "r", FRAME_QUEUE_URL: "q" };
        assert.strictEqual(jobApiSettingsFromEnvironment(environment).preflight, true, "on by default");
        assert.strictEqual(jobApiSettingsFromEnvironment({ ...environment, PREFLIGHT: "off" }).preflight, false);
        assert.throws(
            () => jobApiSettingsFromEnvironment({ ...environment, PREFLIGHT: "sometimes" }),
            /PREFLIGHT must be on or off/,
        );
        const off: JobApiDeps = { ...deps, settings: { ...deps.settings, preflight: false } };
        const refused = await submitJob(off, { scene: SCENE, jobId: "no-preflight" });
        assert.strictEqual(refused.status, 400);
        assert.deepStrictEqual(
            [(refused.body as any).error.code, (refused.body as any).error.field],
            ["frames_required", "frames"],
        );
        // Off means off: the scene is not read, so even bytes that are no .blend pass.
        const unread = await submitJob(off, { scene: FAKE_SCENE, frames: "1", jobId: "no-preflight" });
        assert.strictEqual(unread.status, 202, JSON.stringify(unread.body));
        assert.strictEqual((await drainQueue()).length, 1);
    });

    it("generates a jobId when the request has none, and accepts a base64 body behind a $default route", async function () {
        const { status, body } = await call(
            "POST",
            "/jobs",
            { scene: SCENE, frames: "1-3" },
            { base64: true, routeKey: "$default" },
        );
        assert.strictEqual(status, 202, JSON.stringify(body));
        assert.match(body.jobId, /^[a-z0-9-]{1,64}$/);
        assert.strictEqual(body.frames, 3);
        const messages = (await drainQueue()).map((text) => JSON.parse(text) as FrameMessage);
        assert.deepStrictEqual(messages.map((message) => message.frame).sort(), [1, 2, 3]);
        assert.ok(
            messages.every(
                (message) =>
                    message.jobId === body.jobId && message.settings.format === "PNG" && message.assets.length === 0,
            ),
        );
    });

    // ---- refusals ----

    const bigBody = JSON.stringify({
        ...validRequest,
        jobId: "bad-big",
        assets: Array.from({ length: 400 }, (_, index) => `shots/a/textures/${"t".repeat(700)}-${index}.png`),
    });
    // Just under the body limit, but the frame message (scene, job id, output key on top) would be over SQS's.
    const nearLimitAssets = assetsWithJsonLength(262000, 300);

    /** `count` distinct asset keys whose JSON array is exactly `length` characters. */
    function assetsWithJsonLength(length: number, count: number): string[] {
        const each = Math.floor((length - 1) / count) - 3; // '"key",' per key, '[]' around, one comma fewer
        const keys = Array.from(
            { length: count },
            (_, index) => `shots/a/textures/${"t".repeat(each - 25)}-${String(index).padStart(3, "0")}.png`,
        );
        const short = length - JSON.stringify(keys).length;
        keys[count - 1] = `shots/a/textures/${"t".repeat(each - 25 + short)}-last.png`;
        return keys;
    }

    interface BadCase {
        name: string;
        body?: unknown;
        raw?: string;
        base64?: boolean;
        status: number;
        field: string;
        code?: string;
        missing?: string[];
    }
    const badCases: BadCase[] = [
        {
            name: "malformed JSON",
            raw: '{"scene": "shots/a/shot.blend", ',
            status: 400,
            field: "body",
            code: "invalid_json",
        },
        { name: "empty body", raw: "", status: 400, field: "body", code: "invalid_json" },
        { name: "whitespace body", raw: "  \n ", status: 400, field: "body", code: "invalid_json" },
        {
            name: "malformed base64 JSON",
            raw: "{frames: 1-10}",
            base64: true,
            status: 400,
            field: "body",
            code: "invalid_json",
        },
        { name: "array body", body: [validRequest], status: 400, field: "body" },
        { name: "string body", body: "shots/a/shot.blend", status: 400, field: "body" },
        { name: "null body", body: null, status: 400, field: "body" },
        { name: "scene missing", body: { frames: "1-3", jobId: "bad-1" }, status: 400, field: "scene" },
        { name: "scene is a number", body: { scene: 42, frames: "1-3", jobId: "bad-2" }, status: 400, field: "scene" },
        {
            name: "assets is a string",
            body: { scene: SCENE, assets: TEXTURE, frames: "1-3", jobId: "bad-3" },
            status: 400,
            field: "assets",
        },
        {
            name: "asset is a number",
            body: { scene: SCENE, assets: [7], frames: "1-3", jobId: "bad-4" },
            status: 400,
            field: "assets.0",
        },
        {
            name: "unknown field",
            body: { scene: SCENE, frames: "1-3", priority: "high", jobId: "bad-5" },
            status: 400,
            field: "priority",
        },
        {
            name: "frames is a number",
            body: { scene: SCENE, frames: 10, jobId: "bad-6" },
            status: 400,
            field: "frames",
        },
        {
            name: "scene that is not a readable .blend",
            body: { scene: FAKE_SCENE, frames: "1", jobId: "bad-7" },
            status: 400,
            field: "scene",
            code: "not_a_blend",
        },
        {
            name: "scene without a camera",
            body: { scene: NO_CAMERA_SCENE, jobId: "bad-7b" },
            status: 400,
            field: "scene",
            code: "no_camera",
        },
        {
            name: "negative frame",
            body: { scene: SCENE, frames: "-5", jobId: "bad-8" },
            status: 400,
            field: "frames",
            code: "invalid_frames",
        },
        {
            name: "reversed range",
            body: { scene: SCENE, frames: "10-1", jobId: "bad-9" },
            status: 400,
            field: "frames",
            code: "invalid_frames",
        },
        {
            name: "frame past Blender's last",
            body: { scene: SCENE, frames: "1-2000000", jobId: "bad-10" },
            status: 400,
            field: "frames",
            code: "invalid_frames",
        },
        {
            name: "step 0",
            body: { scene: SCENE, frames: "1-10x0", jobId: "bad-11" },
            status: 400,
            field: "frames",
            code: "invalid_frames",
        },
        {
            name: "malformed frames",
            body: { scene: SCENE, frames: "1-10,abc", jobId: "bad-12" },
            status: 400,
            field: "frames",
            code: "invalid_frames",
        },
        {
            name: "empty frames",
            body: { scene: SCENE, frames: " ", jobId: "bad-13" },
            status: 400,
            field: "frames",
            code: "invalid_frames",
        },
        {
            name: "frames over the limit",
            body: { scene: SCENE, frames: `1-${MAX_FRAMES + 1}`, jobId: "bad-14" },
            status: 413,
            field: "frames",
            code: "too_many_frames",
        },
        {
            name: "huge frame range",
            body: { scene: SCENE, frames: "0-1048574", jobId: "bad-15" },
            status: 413,
            field: "frames",
            code: "too_many_frames",
        },
        {
            name: "many small parts over the limit",
            body: {
                scene: SCENE,
                frames: Array.from({ length: 60 }, (_, index) => `${index * 10}-${index * 10 + 1}`).join(","),
                jobId: "bad-16",
            },
            status: 413,
            field: "frames",
        },
        {
            name: "path traversal in scene",
            body: { scene: "shots/../../etc/passwd.blend", frames: "1", jobId: "bad-17" },
            status: 400,
            field: "scene",
            code: "invalid_key",
        },
        {
            name: "absolute scene path",
            body: { scene: "/shots/a/shot.blend", frames: "1", jobId: "bad-18" },
            status: 400,
            field: "scene",
            code: "invalid_key",
        },
        {
            name: "scene that is not a .blend",
            body: { scene: "shots/a/shot.txt", frames: "1", jobId: "bad-19" },
            status: 400,
            field: "scene",
            code: "invalid_key",
        },
        {
            name: "path traversal in an asset",
            body: { scene: SCENE, assets: [TEXTURE, "../secrets/key.png"], frames: "1", jobId: "bad-20" },
            status: 400,
            field: "assets.1",
            code: "invalid_key",
        },
        {
            name: "backslash in an asset",
            body: { scene: SCENE, assets: ["shots\\a\\wood.png"], frames: "1", jobId: "bad-21" },
            status: 400,
            field: "assets.0",
            code: "invalid_key",
        },
        {
            name: "unknown engine",
            body: { scene: SCENE, frames: "1", engine: "RENDERMAN", jobId: "bad-22" },
            status: 400,
            field: "engine",
        },
        {
            name: "engine not allowed",
            body: { scene: SCENE, frames: "1", engine: "WORKBENCH", jobId: "bad-23" },
            status: 400,
            field: "engine",
            code: "engine_not_allowed",
        },
        {
            name: "unknown format",
            body: { scene: SCENE, frames: "1", format: "GIF", jobId: "bad-24" },
            status: 400,
            field: "format",
        },
        {
            name: "samples 0",
            body: { scene: SCENE, frames: "1", samples: 0, jobId: "bad-25" },
            status: 400,
            field: "samples",
        },
        {
            name: "fractional samples",
            body: { scene: SCENE, frames: "1", samples: 1.5, jobId: "bad-26" },
            status: 400,
            field: "samples",
        },
        {
            name: "resolution over the limit",
            body: { scene: SCENE, frames: "1", resolution: { x: 8192, y: 4320 }, jobId: "bad-27" },
            status: 400,
            field: "resolution.x",
        },
        {
            name: "unknown resolution field",
            body: { scene: SCENE, frames: "1", resolution: { x: 640, z: 2 }, jobId: "bad-28" },
            status: 400,
            field: "resolution.z",
        },
        {
            name: "percentage over 100",
            body: { scene: SCENE, frames: "1", resolution: { percentage: 150 }, jobId: "bad-29" },
            status: 400,
            field: "resolution.percentage",
        },
        { name: "uppercase jobId", body: { scene: SCENE, frames: "1", jobId: "Shot_A" }, status: 400, field: "jobId" },
        {
            name: "jobId too long",
            body: { scene: SCENE, frames: "1", jobId: "a".repeat(65) },
            status: 400,
            field: "jobId",
        },
        {
            name: "too many assets",
            body: {
                scene: SCENE,
                frames: "1",
                assets: Array.from({ length: 1001 }, (_, index) => `t/${index}.png`),
                jobId: "bad-30",
            },
            status: 400,
            field: "assets",
        },
        {
            name: "missing scene object",
            body: { scene: "shots/b/missing.blend", assets: [TEXTURE], frames: "1-5", jobId: "bad-31" },
            status: 422,
            field: "scene",
            code: "missing_objects",
            missing: ["shots/b/missing.blend"],
        },
        {
            name: "missing asset objects, all listed",
            body: {
                scene: SCENE,
                assets: [TEXTURE, "shots/a/textures/gone.png", CACHE, "shots/a/cache/gone.vdb"],
                frames: "1-5",
                jobId: "bad-32",
            },
            status: 422,
            field: "assets",
            code: "missing_objects",
            missing: ["shots/a/textures/gone.png", "shots/a/cache/gone.vdb"],
        },
        { name: "oversized body", raw: bigBody, status: 413, field: "body", code: "body_too_large" },
        {
            name: "oversized base64 body",
            raw: bigBody,
            base64: true,
            status: 413,
            field: "body",
            code: "body_too_large",
        },
        {
            name: "frame message over SQS's limit",
            body: { scene: SCENE, frames: "1", assets: nearLimitAssets, jobId: "bad-33" },
            status: 413,
            field: "assets",
            code: "message_too_large",
        },
    ];

    it(`refuses ${badCases.length} bad requests with the documented status and field, queueing nothing and writing no manifest`, async function () {
        assert.ok(badCases.length >= 25);
        const manifestsBefore = await manifestKeys();
        const mismatches: string[] = [];
        for (const bad of badCases) {
            const { status, body } = await call("POST", "/jobs", bad.raw ?? bad.body, {
                raw: bad.raw !== undefined,
                base64: bad.base64,
            });
            const problems: string[] = [];
            if (status !== bad.status) problems.push(`status ${status}, expected ${bad.status}`);
            if (body?.error?.field !== bad.field) problems.push(`field ${body?.error?.field}, expected ${bad.field}`);
            if (bad.code && body?.error?.code !== bad.code)
                problems.push(`code ${body?.error?.code}, expected ${bad.code}`);
            if (typeof body?.error?.message !== "string" || body.error.message.length < 10)
                problems.push("no readable message");
            if (bad.missing) {
                if (
                    JSON.stringify([...(body?.error?.missing ?? [])].sort()) !== JSON.stringify([...bad.missing].sort())
                )
                    problems.push(`missing ${JSON.stringify(body?.error?.missing)}`);
                if (!String(body.error.message).includes(farm.scenesBucket))
                    problems.push("the message does not name the bucket");
            }
            if (problems.length > 0)
                mismatches.push(`${bad.name}: ${problems.join("; ")} (${JSON.stringify(body).slice(0, 300)})`);
        }
        assert.deepStrictEqual(mismatches, []);
        assert.strictEqual(await messagesInQueue(), 0, "a refused request queued a message");
        assert.deepStrictEqual(await manifestKeys(), manifestsBefore, "a refused request wrote a manifest");
    });

    it("answers 404 for an unknown route", async function () {
        for (const [method, path] of [
            ["GET", "/jobs"],
            ["DELETE", "/jobs/x"],
            ["GET", "/health"],
            ["POST", "/jobs/x/pause"],
        ]) {
            const { status, body } = await call(method, path, undefined, { routeKey: "$default" });
            assert.strictEqual(status, 404, `${method} ${path}`);
            assert.strictEqual(body.error.code, "not_found");
        }
    });

    it("answers 502 naming the bucket and key when S3 fails, with nothing queued", async function () {
        const broken: JobApiDeps = { ...deps, settings: { ...deps.settings, rendersBucket: "no-such-renders-bucket" } };
        const reply = await submitJob(broken, { scene: SCENE, frames: "1-3" });
        assert.strictEqual(reply.status, 502);
        const message = (reply.body as { error: { code: string; message: string } }).error.message;
        assert.match(message, /s3:\/\/no-such-renders-bucket\/jobs\/[a-z0-9-]+\/job\.json/);
        assert.match(message, /NoSuchBucket/);
        assert.doesNotMatch(message, /emulator|secret|at .*\.ts:\d+/i);
        assert.strictEqual(await messagesInQueue(), 0);
    });

    it("keeps the manifest and answers 503 when SQS refuses the frames, and the same request again queues them (no rollback)", async function () {
        // A queue that takes only tiny messages: every entry of every batch fails (SenderFault).
        const tiny = await emulator.sqs.send(
            new CreateQueueCommand({ QueueName: "jobapi-tiny", Attributes: { MaximumMessageSize: "1024" } }),
        );
        const tinyDeps: JobApiDeps = { ...deps, settings: { ...deps.settings, frameQueueUrl: tiny.QueueUrl! } };
        const request = {
            scene: SCENE,
            frames: "1-12",
            assets: [`shots/a/textures/${"w".repeat(600)}.png`, `shots/a/textures/${"v".repeat(600)}.png`],
            jobId: "tiny-queue",
        };
        for (const asset of request.assets)
            await emulator.s3.send(new PutObjectCommand({ Bucket: farm.scenesBucket, Key: asset, Body: "PNG" }));
        const reply = await submitJob(tinyDeps, request);
        assert.strictEqual(reply.status, 503, JSON.stringify(reply.body));
        const error = (reply.body as { error: { code: string; message: string } }).error;
        assert.strictEqual(error.code, "queue_error");
        assert.match(error.message, /12 of 12 frame messages could not be queued \(frames 1-12\)/);
        assert.strictEqual(
            (reply.body as { jobId?: string }).jobId,
            "tiny-queue",
            "the reply names the job to resubmit under",
        );
        assert.match(
            error.message,
            /0 of 12 frames are queued: submit the same request again \(with "jobId": "tiny-queue"\)/,
        );
        assert.ok((await manifestKeys()).includes(manifestKey("tiny-queue")), "the manifest stays");
        const stalled = (await call("GET", "/jobs/tiny-queue")).body as JobStatus;
        assert.strictEqual(stalled.state, "queueing");
        assert.deepStrictEqual(stalled.queue, { kind: "submit", queued: 0, total: 12, complete: false, stalled: true });
        // With a queue that takes them, the very same request queues every frame, once.
        const again = await submitJob(deps, request);
        assert.strictEqual(again.status, 202, JSON.stringify(again.body));
        assert.strictEqual((again.body as { queued: number }).queued, 12);
        assert.deepStrictEqual(
            (await drainQueue()).map((text) => (JSON.parse(text) as FrameMessage).frame).sort((a, b) => a - b),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        );
        assert.strictEqual(((await call("GET", "/jobs/tiny-queue")).body as JobStatus).state, "queued");
    });

    // ---- status ----

    it("answers 404 for an unknown or impossible job id", async function () {
        for (const jobId of ["no-such-job", "Not%20A%20Job", "..%2F..%2Fetc"]) {
            const { status, body } = await call("GET", `/jobs/${jobId}`);
            assert.strictEqual(status, 404, jobId);
            assert.strictEqual(body.error.code, "job_not_found");
        }
        assert.strictEqual((await getJobStatus(deps, undefined)).status, 404);
        assert.strictEqual((await call("POST", "/jobs/no-such-job/retry")).status, 404);
    });

    it("reports progress from the frame records: each frame once, failures with error and log tail", async function () {
        assert.strictEqual(
            (await call("POST", "/jobs", { scene: SCENE, frames: "1-6", jobId: "progress" })).status,
            202,
        );
        await drainQueue();
        let status = (await call("GET", "/jobs/progress")).body as JobStatus;
        assert.strictEqual(status.state, "queued");
        assert.deepStrictEqual(status.frames, { total: 6, done: 0, failed: 0, pending: 6 });

        await ledger().writeFrameRecord(record("progress", 1, "retrying"));
        await ledger().writeFrameRecord(record("progress", 1, "done", { attempts: 2 })); // rewritten: counts once
        await ledger().writeFrameRecord(record("progress", 2, "done"));
        await ledger().writeFrameRecord(record("progress", 2, "done")); // duplicate delivery
        await ledger().writeFrameRecord(record("progress", 3, "failed", { attempts: 3 }));
        await ledger().writeFrameRecord(record("progress", 4, "retrying", { attempts: 1 }));
        await ledger().writeFrameRecord(record("progress", 5, "retrying", { attempts: MAX_RECEIVE_COUNT })); // next receive goes to the DLQ
        // A record for a frame outside the job is ignored.
        await ledger().writeFrameRecord(record("progress", 99, "done"));

        const reply = await call("GET", "/jobs/progress");
        assert.strictEqual(reply.status, 200);
        status = reply.body;
        assert.strictEqual(status.jobId, "progress");
        assert.strictEqual(status.state, "rendering");
        assert.deepStrictEqual(status.frames, { total: 6, done: 2, failed: 2, pending: 2 });
        assert.deepStrictEqual(
            status.failures.map((failure) => [failure.frame, failure.attempts]),
            [
                [3, 3],
                [5, MAX_RECEIVE_COUNT],
            ],
        );
        assert.strictEqual(status.failures[0].error, "blender_exit: Blender exited with code 1");
        assert.strictEqual(status.failures[0].logTail, "Error: out of memory\n");
        assert.strictEqual(status.outputPrefix, "renders/progress/");
        assert.strictEqual(status.renderSeconds, 5 * 8);
        assert.ok(Math.abs(status.costUsd - 0.005) < 1e-9, String(status.costUsd));
        assert.strictEqual(status.startedAt, "2030-01-01T00:00:01.000Z");
        assert.strictEqual(status.updatedAt, "2030-01-01T00:01:05.000Z");

        for (const frame of [4, 5, 6]) await ledger().writeFrameRecord(record("progress", frame, "done"));
        status = (await call("GET", "/jobs/progress")).body;
        assert.strictEqual(status.state, "partial");
        assert.deepStrictEqual(status.frames, { total: 6, done: 5, failed: 1, pending: 0 });
        await ledger().writeFrameRecord(record("progress", 3, "done"));
        status = (await call("GET", "/jobs/progress")).body;
        assert.strictEqual(status.state, "complete");
        assert.deepStrictEqual(status.failures, []);
    });

    it("reads every frame record of a big job, across ListObjectsV2 pages", async function () {
        const frames = Array.from({ length: 1500 }, (_, index) => index + 1); // S3 lists 1000 keys a page
        const manifest: JobManifest = {
            v: 1,
            jobId: "big-job",
            request: { scene: SCENE, assets: [], frames: "1-1500", format: "PNG", jobId: "big-job" },
            requestHash: "0".repeat(64),
            frames,
            scenesBucket: farm.scenesBucket,
            sceneEtag,
            settings: { format: "PNG" },
            outputPrefix: "renders/big-job/",
            createdAt: "2030-01-01T00:00:00.000Z",
        };
        assert.strictEqual(await ledger().writeManifest(manifest), "written");
        await mapWithConcurrency(frames, 32, (frame) =>
            ledger().writeFrameRecord(record("big-job", frame, frame % 500 === 0 ? "failed" : "done")),
        );
        const { status, body } = await call("GET", "/jobs/big-job");
        assert.strictEqual(status, 200);
        assert.deepStrictEqual(body.frames, { total: 1500, done: 1497, failed: 3, pending: 0 });
        assert.strictEqual(body.state, "partial");
        assert.deepStrictEqual(
            body.failures.map((failure: { frame: number }) => failure.frame),
            [500, 1000, 1500],
        );
    });

    it("opens a job whose manifest is version 1 (no frame summary) once: its summary from its records, and its frames are not queued again", async function () {
        const jobId = "from-v1";
        const request = { scene: SCENE, assets: [], frames: "1-4", format: "PNG" as const, jobId };
        const manifest: JobManifest = {
            v: 1,
            jobId,
            request,
            requestHash: requestHashOf(request, [1, 2, 3, 4]),
            frames: [1, 2, 3, 4],
            scenesBucket: farm.scenesBucket,
            sceneEtag,
            settings: { format: "PNG" },
            outputPrefix: `renders/${jobId}/`,
            createdAt: "2030-01-01T00:00:00.000Z",
        };
        // Written as the job's renderers wrote them then: records only, no summary shard, no queue progress.
        const put = (key: string, value: unknown) =>
            emulator.s3.send(
                new PutObjectCommand({ Bucket: farm.rendersBucket, Key: key, Body: JSON.stringify(value) }),
            );
        await put(manifestKey(jobId), manifest);
        for (const frame of [1, 2, 3, 4]) await put(frameRecordKey(jobId, frame), record(jobId, frame, "done"));

        const status = await call("GET", `/jobs/${jobId}`);
        assert.strictEqual(status.status, 200, JSON.stringify(status.body));
        assert.deepStrictEqual(status.body.frames, { total: 4, done: 4, failed: 0, pending: 0 });
        assert.strictEqual(status.body.state, "complete");
        assert.strictEqual(status.body.renderSeconds, 4 * 8);
        // Upgraded where it was opened: the current manifest, and a summary that counts every record.
        const opened = await readManifestObject(jobId);
        assert.strictEqual(opened.v, 2);
        assert.strictEqual((await ledger().readSummary(opened)).done, 4);

        // Nothing is left to requeue, and the same request again queues nothing: its frames were queued when it was submitted.
        const retried = await call("POST", `/jobs/${jobId}/retry`);
        assert.strictEqual(retried.status, 202, JSON.stringify(retried.body));
        assert.strictEqual(retried.body.requeued, 0);
        const again = await call("POST", "/jobs", request);
        assert.strictEqual(again.status, 202, JSON.stringify(again.body));
        assert.strictEqual(again.body.state, "complete");
        assert.strictEqual(await messagesInQueue(), 0);
    });

    it("computes failed, partial and complete states", function () {
        const manifest = {
            v: 1,
            jobId: "j",
            frames: [1, 2],
            createdAt: "2030-01-01T00:00:00.000Z",
            outputPrefix: "renders/j/",
        } as JobManifest;
        const fake = (frame: number, status: FrameRecord["status"], attempts = 1) => ({
            jobId: "j",
            frame,
            status,
            attempts,
            startedAt: "",
            finishedAt: "",
            wallMs: 0,
            blenderMs: 0,
            memoryMb: 0,
            costUsd: 0,
        });
        assert.strictEqual(computeJobStatus(manifest, []).state, "queued");
        assert.strictEqual(computeJobStatus(manifest, [fake(1, "failed"), fake(2, "failed")]).state, "failed");
        assert.strictEqual(computeJobStatus(manifest, [fake(1, "failed"), fake(2, "done")]).state, "partial");
        assert.strictEqual(
            computeJobStatus(manifest, [fake(1, "done"), fake(2, "done"), fake(2, "retrying")]).state,
            "complete",
        );
        assert.strictEqual(
            computeJobStatus(manifest, [fake(1, "done"), fake(2, "retrying", 3)]).state,
            "rendering",
            "without maxReceiveCount a retrying frame is pending",
        );
        assert.strictEqual(computeJobStatus(manifest, [fake(1, "done"), fake(2, "retrying", 3)], 3).state, "partial");
    });

    // ---- retry ----

    it("requeues failed frames at once, and frames with no record only once the job has gone quiet", async function () {
        assert.strictEqual(
            (
                await call("POST", "/jobs", {
                    scene: SCENE,
                    assets: [TEXTURE],
                    frames: "1-5",
                    format: "OPEN_EXR",
                    jobId: "retry-me",
                })
            ).status,
            202,
        );
        const original = (await drainQueue()).map((text) => JSON.parse(text) as FrameMessage);
        await ledger().writeFrameRecord(record("retry-me", 1, "done"));
        await ledger().writeFrameRecord(record("retry-me", 2, "failed", { attempts: 3 }));
        await ledger().writeFrameRecord(record("retry-me", 3, "failed", { attempts: 3 }));
        await ledger().writeFrameRecord(record("retry-me", 4, "retrying", { attempts: 1 }));
        // Frame 5 has no record. Another job's message is in flight, so the queue is not empty.
        await emulator.sqs.send(
            new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: "another job's frame" }),
        );
        const other = (
            await emulator.sqs.send(new ReceiveMessageCommand({ QueueUrl: farm.frameQueueUrl, VisibilityTimeout: 300 }))
        ).Messages![0];

        const retried = await call("POST", "/jobs/retry-me/retry");
        assert.strictEqual(retried.status, 202, JSON.stringify(retried.body));
        assert.strictEqual(retried.body.requeued, 2);
        assert.strictEqual(retried.body.failed, 2);
        assert.strictEqual(retried.body.lost, 0);
        assert.strictEqual(retried.body.inFlight, 2);
        const requeued = (await drainQueue()).map((text) => JSON.parse(text) as FrameMessage);
        assert.deepStrictEqual(requeued.map((message) => message.frame).sort(), [2, 3]);
        for (const message of requeued)
            assert.deepStrictEqual(
                message,
                original.find((first) => first.frame === message.frame),
            );

        let status = (await call("GET", "/jobs/retry-me")).body as JobStatus;
        assert.deepStrictEqual(status.frames, { total: 5, done: 1, failed: 0, pending: 4 });
        assert.strictEqual(status.state, "rendering");
        assert.strictEqual(status.startedAt, "2030-01-01T00:00:01.000Z", "requeue records do not count as renders");

        // Right after, nothing is requeued twice.
        const twice = await call("POST", "/jobs/retry-me/retry");
        assert.strictEqual(twice.body.requeued, 0, JSON.stringify(twice.body));
        assert.strictEqual(await messagesInQueue(), 1, "only the other job's message");

        // Long after the last ledger write, the stuck frames count as lost even though the queue is busy.
        const later = await retryJob(deps, "retry-me", new Date("2030-01-01T03:00:00.000Z")); // the fake records end at 00:01
        assert.strictEqual(later.status, 202);
        assert.strictEqual((later.body as { requeued: number }).requeued, 4);
        assert.deepStrictEqual(
            (await drainQueue())
                .filter((text) => text.startsWith("{"))
                .map((text) => (JSON.parse(text) as FrameMessage).frame)
                .sort(),
            [2, 3, 4, 5],
        );

        // With the queue empty (the other job's message done), lost frames are requeued at once.
        await emulator.sqs.send(new PurgeQueueCommand({ QueueUrl: farm.frameQueueUrl }));
        void other;
        await ledger().writeFrameRecord(record("retry-me", 2, "done"));
        await ledger().writeFrameRecord(record("retry-me", 3, "done"));
        const drained = await call("POST", "/jobs/retry-me/retry");
        assert.strictEqual(drained.body.requeued, 2, JSON.stringify(drained.body));
        assert.strictEqual(drained.body.lost, 2);
        assert.deepStrictEqual(
            (await drainQueue()).map((text) => (JSON.parse(text) as FrameMessage).frame).sort(),
            [4, 5],
        );
        status = (await call("GET", "/jobs/retry-me")).body;
        assert.deepStrictEqual(status.frames, { total: 5, done: 3, failed: 0, pending: 2 });

        // The requeued frames read "requeued" in the job's summary; their records are not rewritten one by one.
        assert.deepStrictEqual(status.pendingBy, { retrying: 0, requeued: 2, notStarted: 0 });
        const stored = JSON.parse(
            await (
                await emulator.s3.send(
                    new GetObjectCommand({ Bucket: farm.rendersBucket, Key: frameRecordKey("retry-me", 4) }),
                )
            ).Body!.transformToString(),
        );
        assert.strictEqual(stored.status, "retrying", "the renderer's record stays as it wrote it");
    });

    it("refuses an oversized base64 body with 413 before decoding it", async function () {
        // A base64 body just over the encoded limit: were it decoded first, Buffer.from(body, "base64") would run.
        const encoded = Buffer.from(bigBody, "utf8").toString("base64");
        assert.ok(encoded.length > Math.ceil(MAX_REQUEST_BYTES / 3) * 4);
        const decodes: number[] = [];
        const realFrom = Buffer.from;
        Buffer.from = function (this: unknown, ...args: unknown[]) {
            if (args[0] === encoded && args[1] === "base64") decodes.push((args[0] as string).length);
            return (realFrom as (...a: unknown[]) => Buffer).apply(Buffer, args);
        } as typeof Buffer.from;
        let result: HttpApiResult;
        try {
            result = await handler({ ...httpEvent("POST", "/jobs"), body: encoded, isBase64Encoded: true });
        } finally {
            Buffer.from = realFrom;
        }
        assert.strictEqual(result.statusCode, 413, result.body);
        assert.strictEqual(JSON.parse(result.body).error.code, "body_too_large");
        assert.deepStrictEqual(decodes, [], "the body was decoded before its size was checked");
        // The SQS-limit case of the table above is under the body limit, so it reaches the message-size check.
        assert.ok(
            JSON.stringify({ scene: SCENE, frames: "1", assets: nearLimitAssets, jobId: "bad-33" }).length <
                MAX_REQUEST_BYTES,
        );
    });
});
