// API exposure: IAM auth on every route of the deployed API (under mocks), and no credentials or signatures in
// what the farm says back. The job API and the renderer run against the emulator with AWS credentials set to
// recognizable fake secrets, through SDK clients that sign with them and whose errors carry the signed request;
// no reply, ledger object, queued message, log tail or console output may contain any of them.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as util from "util";
import {
    DeleteObjectCommand,
    GetObjectCommand,
    ListObjectsV2Command,
    PutObjectCommand,
    S3Client,
} from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { JOB_API_ROUTES } from "../components/jobApi";
import { createJobApiHandler, HttpApiResult } from "../functions/jobApi/handler";
import { JobApiSettings } from "../functions/jobApi/settings";
import { createRendererHandler } from "../functions/renderer/consumer";
import { DEFAULT_RENDER_LIMITS, RendererSettings } from "../functions/renderer/settings";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { pollOnce } from "../local/eventSourcePoller";
import { runProgram, stackConfig } from "./support/pulumiProgram";
import { makeScene } from "./support/scenes";

describe("API exposure: every route of the deployed API requires IAM auth (under mocks)", function () {
    for (const [label, config] of [
        ["the dev stack", stackConfig("dev")],
        ["a stack that sets nothing", { "aws:region": "us-east-1" }],
    ] as const) {
        it(`${label}: only the job routes exist, each AWS_IAM, no default route, invocable only from this API`, async function () {
            const run = await runProgram({ ...config });
            const [api] = run.ofType("aws:apigatewayv2/api:Api");
            // Quick create (target/routeKey on the Api) would add a $default route with no authorization.
            assert.strictEqual(api.inputs.target, undefined);
            assert.strictEqual(api.inputs.routeKey, undefined);
            const apiId = api.state.executionArn.split(":").pop();
            const routes = run.ofType("aws:apigatewayv2/route:Route");
            assert.deepStrictEqual(routes.map((route) => route.inputs.routeKey).sort(), [...JOB_API_ROUTES].sort());
            for (const route of routes) {
                assert.strictEqual(route.inputs.authorizationType, "AWS_IAM", route.inputs.routeKey);
                assert.strictEqual(route.inputs.apiId, apiId, `${route.inputs.routeKey} belongs to this API`);
            }
            const [permission] = run.ofType("aws:lambda/permission:Permission");
            assert.strictEqual(permission.inputs.principal, "apigateway.amazonaws.com");
            assert.ok(
                permission.inputs.sourceArn.startsWith(`${api.state.executionArn}/`),
                `invoke permission scoped to this API: ${permission.inputs.sourceArn}`,
            );
            // The access log names the caller's principal, never its access key or the request's headers.
            const [stage] = run.ofType("aws:apigatewayv2/stage:Stage");
            assert.doesNotMatch(
                stage.inputs.accessLogSettings.format,
                /accessKey|apiKey|header|authorization|querystring|\$input|sessionToken/i,
            );
        });
    }
});

/** Recognizable fake credentials: if any of them shows up in the farm's output, something leaked. */
const FAKE = {
    accessKeyId: "AKIAFAKELEAKPROBE123",
    secretAccessKey: "fAkE/SeCrEt+LeakProbe0123456789abcdefXYZ",
    sessionToken: "IQoJb3JpZ2luX2VjFAKE-session-token-leak-probe-0123456789",
};
/** What signed requests and presigned URLs look like, whatever the credentials. */
const SIGNATURE_PATTERNS = [
    /X-Amz-Signature=/i,
    /X-Amz-Credential=/i,
    /X-Amz-Security-Token/i,
    /AWS4-HMAC-SHA256/,
    /Signature=[0-9a-f]{64}/,
];

/** Every leak found in `text`, by name. */
function leaksIn(text: string): string[] {
    const found = Object.entries(FAKE)
        .filter(([, secret]) => text.includes(secret) || text.includes(encodeURIComponent(secret)))
        .map(([name]) => name);
    return [...found, ...SIGNATURE_PATTERNS.filter((pattern) => pattern.test(text)).map(String)];
}

/** Clients that sign with the environment's credentials (the SDK's default chain) and whose errors carry the signed request. */
function leakyClients(
    emulator: Emulator,
    signed: { count: number },
    sent: string[] = [],
): { s3: S3Client; sqs: SQSClient } {
    const s3 = new S3Client({ endpoint: emulator.endpoint, region: emulator.region, forcePathStyle: true });
    const sqs = new SQSClient({ endpoint: emulator.endpoint, region: emulator.region });
    for (const client of [s3, sqs] as (S3Client | SQSClient)[]) {
        client.middlewareStack.addRelativeTo(
            (next: any) => async (args: any) => {
                const request = args.request;
                if (String(request?.headers?.authorization ?? "").includes(FAKE.accessKeyId)) signed.count++;
                for (const entry of args.input?.Entries ?? []) if (entry.MessageBody) sent.push(entry.MessageBody);
                try {
                    return await next(args);
                } catch (error) {
                    // As a careless SDK or proxy might: the failing request, headers and all, rides on the error.
                    if (error && typeof error === "object") {
                        (error as Record<string, unknown>).$request = {
                            method: request?.method,
                            hostname: request?.hostname,
                            path: request?.path,
                            query: request?.query,
                            headers: { ...request?.headers },
                        };
                    }
                    throw error;
                }
            },
            // Right after signing, so it wraps the deserializer that turns error replies into exceptions.
            { relation: "after", toMiddleware: "httpSigningMiddleware", name: "attachSignedRequestToErrors" },
        );
    }
    return { s3, sqs };
}

describe("no credentials or signatures in replies, records, messages, log tails or console output", function () {
    this.timeout(300_000);
    const savedEnv: Record<string, string | undefined> = {};
    let emulator: Emulator;
    let farm: FarmResources;
    let queueArn: string;
    let work: string;
    const signed = { count: 0 };
    /** Every frame message body the job API sent. */
    const sent: string[] = [];

    before(async function () {
        for (const name of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"])
            savedEnv[name] = process.env[name];
        process.env.AWS_ACCESS_KEY_ID = FAKE.accessKeyId;
        process.env.AWS_SECRET_ACCESS_KEY = FAKE.secretAccessKey;
        process.env.AWS_SESSION_TOKEN = FAKE.sessionToken;
        delete process.env.AWS_PROFILE;
        work = fs.mkdtempSync(path.join(os.tmpdir(), "secrets-exposure-"));
        emulator = await startEmulator();
        farm = await createFarmResources(emulator, {
            name: "secrets",
            maxReceiveCount: 2,
            visibilityTimeoutSeconds: 120,
        });
        queueArn = (
            await emulator.sqs.send(
                new GetQueueAttributesCommand({ QueueUrl: farm.frameQueueUrl, AttributeNames: ["QueueArn"] }),
            )
        ).Attributes!.QueueArn!;
    });

    after(async function () {
        for (const [name, value] of Object.entries(savedEnv)) {
            if (value === undefined) delete process.env[name];
            else process.env[name] = value;
        }
        await emulator?.stop();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    /** Runs `action` with everything written to stdout/stderr (console included) captured instead of printed. */
    async function capturingOutput<T>(output: string[], action: () => Promise<T>): Promise<T> {
        const writes = { out: process.stdout.write, err: process.stderr.write };
        const capture = (chunk: unknown, ...rest: unknown[]) => {
            output.push(typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8"));
            const callback = rest.find((arg) => typeof arg === "function") as (() => void) | undefined;
            callback?.();
            return true;
        };
        process.stdout.write = capture as typeof process.stdout.write;
        process.stderr.write = capture as typeof process.stderr.write;
        try {
            return await action();
        } finally {
            process.stdout.write = writes.out;
            process.stderr.write = writes.err;
        }
    }

    it("the probe is live: requests are signed with the fake credentials, and an SDK error carries them", async function () {
        const { s3 } = leakyClients(emulator, signed);
        const error = await s3.send(new GetObjectCommand({ Bucket: "no-such-bucket", Key: "x" })).then(
            () => assert.fail("GetObject on a missing bucket succeeded"),
            (caught: unknown) => caught,
        );
        assert.ok(signed.count > 0, "the client did not sign with the environment's credentials");
        // Had the farm logged or returned this error whole, the test below would see these.
        assert.deepStrictEqual(
            leaksIn(util.inspect(error, { depth: 5 })).sort(),
            [
                "/AWS4-HMAC-SHA256/",
                "/Signature=[0-9a-f]{64}/",
                "/X-Amz-Security-Token/i",
                "accessKeyId",
                "sessionToken",
            ].sort(),
        );
    });

    it("the job API and the renderer, on success and on S3/SQS failures, leak nothing", async function () {
        const output: string[] = [];
        const replies: { what: string; reply: HttpApiResult }[] = [];
        const records: string[] = [];
        const scene = await makeScene({ frames: "1-4" });
        await emulator.s3.send(
            new PutObjectCommand({
                Bucket: farm.scenesBucket,
                Key: "shots/a/scene.blend",
                Body: fs.readFileSync(scene.blendPath),
            }),
        );
        const noSuchQueueUrl = farm.frameQueueUrl.replace(/[^/]+$/, "no-such-queue");
        const apiSettings: JobApiSettings = {
            scenesBucket: farm.scenesBucket,
            rendersBucket: farm.rendersBucket,
            frameQueueUrl: farm.frameQueueUrl,
            limits: { maxFrames: 100, maxResolution: 4096, allowedEngines: ["CYCLES", "EEVEE", "WORKBENCH"] },
            maxReceiveCount: 2,
        };
        const rendererSettings = (overrides: Partial<RendererSettings>): RendererSettings => ({
            scenesBucket: farm.scenesBucket,
            rendersBucket: farm.rendersBucket,
            frameQueueUrl: farm.frameQueueUrl,
            maxReceiveCount: 2,
            failureBackoffSeconds: 1,
            memoryMb: 1024,
            blenderPath: "blender",
            workDir: fs.mkdtempSync(path.join(work, "renderer-")),
            threads: 1,
            defaultTimeoutMs: 120_000,
            limits: DEFAULT_RENDER_LIMITS,
            ...overrides,
        });
        // A "Blender" that prints its whole environment and fails: the log tail shows what the renderer hands it.
        const envDumpingBlender = path.join(work, "blender-dumping-env");
        fs.writeFileSync(
            envDumpingBlender,
            '#!/bin/sh\nenv\necho "Error: failing on purpose after printing the environment"\nexit 1\n',
            { mode: 0o755 },
        );

        const api = (settings: Partial<JobApiSettings>) => {
            const handler = createJobApiHandler({
                ...leakyClients(emulator, signed, sent),
                settings: { ...apiSettings, ...settings },
            });
            return async (what: string, method: string, rawPath: string, body?: string) => {
                const reply = await handler({ rawPath, body, requestContext: { http: { method, path: rawPath } } });
                replies.push({ what, reply });
                return reply;
            };
        };
        const expectStatus = (reply: HttpApiResult, status: number) =>
            assert.strictEqual(reply.statusCode, status, reply.body);
        const poll = async (settings: Partial<RendererSettings>) => {
            const handler = createRendererHandler({
                ...leakyClients(emulator, signed),
                settings: rendererSettings(settings),
            });
            try {
                return await pollOnce({
                    sqs: emulator.sqs,
                    queueUrl: farm.frameQueueUrl,
                    queueArn,
                    region: emulator.region,
                    handler,
                });
            } finally {
                await handler.close();
            }
        };
        const submit = (jobId: string, scene = "shots/a/scene.blend") =>
            JSON.stringify({ scene, frames: "1", jobId, resolution: { percentage: 25 } });

        await capturingOutput(output, async () => {
            const good = api({});
            expectStatus(await good("submit", "POST", "/jobs", submit("ok")), 202);
            assert.strictEqual(await poll({}), "succeeded", "a real frame renders");
            expectStatus(await good("status", "GET", "/jobs/ok"), 200);
            expectStatus(await good("missing object", "POST", "/jobs", submit("missing", "shots/none.blend")), 422);
            expectStatus(await good("bad JSON", "POST", "/jobs", '{"scene": '), 400);

            const noRenders = api({ rendersBucket: "no-such-renders-bucket" });
            expectStatus(await noRenders("submit, renders bucket missing", "POST", "/jobs", submit("nb")), 502);
            expectStatus(await noRenders("status, renders bucket missing", "GET", "/jobs/ok"), 502);
            assert.strictEqual(
                (
                    await api({ scenesBucket: "no-such-scenes-bucket" })(
                        "submit, scenes bucket missing",
                        "POST",
                        "/jobs",
                        submit("ns"),
                    )
                ).statusCode,
                422,
            );
            const noQueue = api({ frameQueueUrl: noSuchQueueUrl });
            expectStatus(await noQueue("submit, queue missing", "POST", "/jobs", submit("nq")), 503);

            // Renderer failures, one frame message visible at a time (a failed frame hides for its 30 s backoff):
            // Blender failing with its environment in the log, the scenes bucket missing, then a missing scene
            // object whose record cannot be written (renders bucket missing) nor its message hidden (queue missing).
            expectStatus(await good("submit env", "POST", "/jobs", submit("env")), 202);
            assert.strictEqual(
                await poll({ blenderPath: envDumpingBlender, failureBackoffSeconds: 30 }),
                "failed",
                "Blender failing",
            );
            await emulator.s3.send(
                new PutObjectCommand({
                    Bucket: farm.scenesBucket,
                    Key: "shots/gone.blend",
                    Body: fs.readFileSync(scene.blendPath),
                }),
            );
            expectStatus(await good("submit gone", "POST", "/jobs", submit("gone", "shots/gone.blend")), 202);
            assert.strictEqual(
                await poll({ scenesBucket: "no-such-scenes-bucket", failureBackoffSeconds: 30 }),
                "failed",
                "scenes bucket missing",
            );
            // A frame message for a renders bucket that does not exist (the renderer refuses any other bucket).
            const gone = JSON.parse(sent.find((body) => JSON.parse(body).jobId === "gone")!);
            const orphan = {
                ...gone,
                jobId: "gone2",
                output: { bucket: "no-such-renders-bucket", key: "renders/gone2/frame_0001.png" },
            };
            await emulator.sqs.send(
                new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: JSON.stringify(orphan) }),
            );
            await emulator.s3.send(new DeleteObjectCommand({ Bucket: farm.scenesBucket, Key: "shots/gone.blend" }));
            assert.strictEqual(
                await poll({ rendersBucket: "no-such-renders-bucket", frameQueueUrl: noSuchQueueUrl }),
                "failed",
                "scene object, renders bucket and queue missing",
            );
            assert.strictEqual(await poll({}), "empty", "every message is hidden by its backoff");

            expectStatus(await good("retry env", "POST", "/jobs/env/retry"), 202);
            // A job whose scene version is gone is not retried (409 scene_changed); with the same bytes back it is.
            expectStatus(await good("retry, scene gone", "POST", "/jobs/gone/retry"), 409);
            await emulator.s3.send(
                new PutObjectCommand({
                    Bucket: farm.scenesBucket,
                    Key: "shots/gone.blend",
                    Body: fs.readFileSync(scene.blendPath),
                }),
            );
            expectStatus(await noQueue("retry, queue missing", "POST", "/jobs/gone/retry"), 502);
        });

        // Everything the farm wrote: the ledger (manifests, frame records with their log tails); the messages are in `sent`.
        const listed = await emulator.s3.send(
            new ListObjectsV2Command({ Bucket: farm.rendersBucket, Prefix: "jobs/" }),
        );
        for (const object of listed.Contents ?? []) {
            const body = await emulator.s3.send(new GetObjectCommand({ Bucket: farm.rendersBucket, Key: object.Key! }));
            records.push(`${object.Key}: ${await body.Body!.transformToString()}`);
        }
        // The scenario did what it says: failures were recorded and logged with their causes.
        const envRecord = records.find((record) => record.startsWith("jobs/env/frames/1.json"));
        assert.ok(envRecord && /PATH=/.test(envRecord), "the env-dumping Blender's output is in its record's log tail");
        // Not merely redacted from the tail: Blender (and the scene) never get the credentials at all.
        const handedToBlender = envRecord!.match(/AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)=/g);
        assert.strictEqual(handedToBlender, null, `the renderer handed Blender ${handedToBlender?.join(", ")}`);
        assert.ok(
            records.some((record) => /no-such-scenes-bucket|NoSuchBucket/.test(record)),
            "a record names the missing scenes bucket",
        );
        const logged = output.join("");
        assert.ok(
            /no-such-renders-bucket|NoSuchBucket/.test(logged) &&
                /queue does not exist|NonExistentQueue|QueueDoesNotExist/i.test(logged),
            `the renderer logged the failed record write and visibility change:\n${logged.slice(-3000)}`,
        );
        assert.ok(sent.length >= 3, `${sent.length} frame messages sent`);
        assert.ok(
            replies.some(({ reply }) => /NoSuchBucket/.test(reply.body)),
            "an error reply names the missing bucket",
        );
        assert.ok(signed.count > 20, `only ${signed.count} requests were signed with the fake credentials`);

        const places: [string, string][] = [
            ...replies.map(({ what, reply }): [string, string] => [
                `reply to ${what}`,
                `${reply.statusCode} ${JSON.stringify(reply.headers)} ${reply.body}`,
            ]),
            ...records.map((record): [string, string] => [`ledger object ${record.split(":")[0]}`, record]),
            ...sent.map((message, index): [string, string] => [`queued message ${index}`, message]),
            ["console and log output", output.join("")],
        ];
        const leaks = places.flatMap(([where, text]) => leaksIn(text).map((leak) => `${where}: ${leak}`));
        assert.deepStrictEqual(leaks, [], `leaked:\n${leaks.join("\n")}`);
    });
});
