// The job API as API Gateway and Lambda run it: real HTTP requests to the local farm's HTTP adapter, which makes
// API Gateway's payload 2.0 events of them; the serialized archive run by the runtime client as the nodejs22.x
// runtime runs it, answering through the Runtime API stand-in; its answer mapped back as API Gateway maps it.
import * as assert from "assert";
import * as fs from "fs";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import type { APIGatewayProxyEventV2WithIAMAuthorizer } from "aws-lambda";
import { Emulator, FarmResources, createFarmResources, startEmulator } from "../local/emulator";
import { HttpApi, startHttpApi } from "../local/httpApi";
import { startLambdaSandbox } from "../local/lambdaSandbox";
import { proxyResultOf } from "../local/lambdaProxyIntegration";
import { ShippedJobApi, shippedJobApi } from "./support/jobApiArchive";
import { makeScene } from "./support/scenes";

describe("the job API as API Gateway and Lambda run it (HTTP → payload 2.0 → aws-lambda-ric → archive)", function () {
    let emulator: Emulator;
    let farm: FarmResources;
    let shipped: ShippedJobApi;
    let front: HttpApi;
    /** The events the front handed to the function, in order. */
    const events: APIGatewayProxyEventV2WithIAMAuthorizer[] = [];

    before(async function () {
        // The first run on a machine installs image/package.json (a native addon build) unless npm test did.
        this.timeout(15 * 60_000);
        emulator = await startEmulator();
        farm = await createFarmResources(emulator, {
            name: "lambda-job-api",
            maxReceiveCount: 3,
            visibilityTimeoutSeconds: 60,
            receiveWaitTimeSeconds: 0,
        });
        shipped = await shippedJobApi(emulator, farm);
        front = await startHttpApi({
            host: "127.0.0.1",
            port: 0,
            jobApi: async (event) => {
                events.push(event as APIGatewayProxyEventV2WithIAMAuthorizer);
                return proxyResultOf(await shipped.sandbox.invoke(event));
            },
            functions: {},
            log: (line) => console.log(line),
        });
        await emulator.s3.send(
            new PutObjectCommand({
                Bucket: farm.scenesBucket,
                Key: "shots/http/scene.blend",
                Body: fs.readFileSync((await makeScene({ frames: "1-4" })).blendPath),
            }),
        );
    });

    after(async function () {
        await front?.close();
        await shipped?.stop();
        await emulator?.stop();
    });

    it("accepts a job POSTed over HTTP, from an event with the route key, raw path and request context", async function () {
        const reply = await fetch(`${front.url}/jobs`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ scene: "shots/http/scene.blend", frames: "1-2", jobId: "over-http" }),
        });
        assert.strictEqual(reply.status, 202);
        assert.strictEqual(reply.headers.get("content-type"), "application/json");
        assert.deepStrictEqual(await reply.json(), {
            jobId: "over-http",
            frames: 2,
            queued: 2,
            state: "queued",
            statusUrl: "/jobs/over-http",
        });
        const event = events.at(-1)!;
        assert.strictEqual(event.version, "2.0");
        assert.strictEqual(event.routeKey, "POST /jobs");
        assert.strictEqual(event.rawPath, "/jobs");
        assert.strictEqual(event.requestContext.http.method, "POST");
        assert.strictEqual(event.headers["content-type"], "application/json");
        assert.strictEqual(event.isBase64Encoded, false);
        assert.strictEqual(event.requestContext.authorizer, undefined, "an unsigned request has no IAM caller");
    });

    it("answers GET /jobs/{jobId} from an event with pathParameters and the raw query string", async function () {
        const reply = await fetch(`${front.url}/jobs/over-http?detail=1`);
        assert.strictEqual(reply.status, 200);
        const body = (await reply.json()) as { frames: unknown };
        assert.deepStrictEqual(body.frames, { total: 2, done: 0, failed: 0, pending: 2 });
        const event = events.at(-1)!;
        assert.strictEqual(event.routeKey, "GET /jobs/{jobId}");
        assert.deepStrictEqual(event.pathParameters, { jobId: "over-http" });
        assert.strictEqual(event.rawQueryString, "detail=1");
        assert.deepStrictEqual(event.queryStringParameters, { detail: "1" });
        const unknown = await fetch(`${front.url}/jobs/no-such-job`);
        assert.strictEqual(unknown.status, 404);
    });

    it("passes a binary body base64-encoded, which the job API decodes and refuses as JSON", async function () {
        const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x7b]);
        const reply = await fetch(`${front.url}/jobs`, { method: "POST", body: bytes });
        assert.strictEqual(reply.status, 400);
        assert.deepStrictEqual(
            [
                ((await reply.json()) as { error: { code: string } }).error.code,
                events.at(-1)!.isBase64Encoded,
                events.at(-1)!.body,
            ],
            ["invalid_json", true, bytes.toString("base64")],
        );
    });

    it("gives a SigV4-signed request the IAM authorizer context of its caller", async function () {
        const url = new URL(`${front.url}/jobs/over-http`);
        const signer = new SignatureV4({
            service: "execute-api",
            region: "us-east-1",
            credentials: { accessKeyId: "AKIDLAMBDATEST", secretAccessKey: "secret" },
            sha256: Sha256,
        });
        const signed = await signer.sign({
            method: "GET",
            protocol: "http:",
            hostname: url.hostname,
            port: Number(url.port),
            path: url.pathname,
            headers: { host: url.host },
        });
        const reply = await fetch(url, { headers: signed.headers as Record<string, string> });
        assert.strictEqual(reply.status, 200);
        const { iam } = events.at(-1)!.requestContext.authorizer;
        assert.strictEqual(iam.accessKey, "AKIDLAMBDATEST");
        assert.strictEqual(iam.accountId, "000000000000");
    });

    it("answers API Gateway's 500 when the function fails, and Lambda reports why", async function () {
        // The stack always sets SCENES_BUCKET; without it the handler's factory throws while the archive loads.
        const { SCENES_BUCKET: _, ...withoutScenes } = shipped.sandboxOptions.functionEnvironment;
        const broken = await startLambdaSandbox({ ...shipped.sandboxOptions, functionEnvironment: withoutScenes });
        try {
            const result = await broken.invoke(events[0]);
            assert.ok(!result.ok);
            assert.match(result.error.errorMessage, /SCENES_BUCKET/);
            assert.ok(broken.output().includes("SCENES_BUCKET"), "the runtime logged it");
            assert.deepStrictEqual(proxyResultOf(result), {
                statusCode: 500,
                headers: { "content-type": "application/json" },
                body: '{"message":"Internal Server Error"}',
            });
        } finally {
            await broken.stop();
        }
    });
});
