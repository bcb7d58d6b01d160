// The embedded emulator behaves like the AWS parts the farm relies on: path-style S3, redrive to the DLQ, visibility changes.
import * as assert from "assert";
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import {
    ChangeMessageVisibilityCommand,
    DeleteMessageCommand,
    GetQueueAttributesCommand,
    ReceiveMessageCommand,
    SendMessageCommand,
} from "@aws-sdk/client-sqs";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { curl, RawRequest, rawRequest } from "./support/rawHttp";

describe("local emulator", function () {
    let emulator: Emulator;
    let farm: FarmResources;
    const maxReceiveCount = 3;

    before(async function () {
        emulator = await startEmulator({ port: 0 });
        farm = await createFarmResources(emulator, { name: "emu-test", maxReceiveCount, visibilityTimeoutSeconds: 30 });
    });

    after(async function () {
        await emulator?.stop();
    });

    async function receiveOne(queueUrl: string, visibilityTimeout?: number) {
        const reply = await emulator.sqs.send(
            new ReceiveMessageCommand({
                QueueUrl: queueUrl,
                MaxNumberOfMessages: 1,
                VisibilityTimeout: visibilityTimeout,
                MessageSystemAttributeNames: ["ApproximateReceiveCount"],
            }),
        );
        return reply.Messages?.[0];
    }

    it("listens on loopback and names the farm's resources", function () {
        assert.match(emulator.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
        assert.strictEqual(farm.scenesBucket, "emu-test-scenes");
        assert.strictEqual(farm.rendersBucket, "emu-test-renders");
        assert.match(farm.frameQueueUrl, /\/emu-test-frames$/);
        assert.match(farm.deadLetterQueueUrl, /\/emu-test-frames-dlq$/);
    });

    it("configures the frame queue like the stack: visibility timeout and redrive policy", async function () {
        const { Attributes } = await emulator.sqs.send(
            new GetQueueAttributesCommand({ QueueUrl: farm.frameQueueUrl, AttributeNames: ["All"] }),
        );
        const dlq = await emulator.sqs.send(
            new GetQueueAttributesCommand({ QueueUrl: farm.deadLetterQueueUrl, AttributeNames: ["QueueArn"] }),
        );
        assert.strictEqual(Attributes!.VisibilityTimeout, "30");
        const policy = JSON.parse(Attributes!.RedrivePolicy!);
        assert.strictEqual(policy.deadLetterTargetArn, dlq.Attributes!.QueueArn);
        assert.strictEqual(Number(policy.maxReceiveCount), maxReceiveCount);
    });

    it("serves S3 path-style: put, head with ETag, 404 for a missing key, paginated listing", async function () {
        const put = await emulator.s3.send(
            new PutObjectCommand({ Bucket: farm.scenesBucket, Key: "shots/a/shot.blend", Body: "BLENDER" }),
        );
        const head = await emulator.s3.send(
            new HeadObjectCommand({ Bucket: farm.scenesBucket, Key: "shots/a/shot.blend" }),
        );
        assert.ok(put.ETag && put.ETag === head.ETag);
        const get = await emulator.s3.send(
            new GetObjectCommand({ Bucket: farm.scenesBucket, Key: "shots/a/shot.blend" }),
        );
        assert.strictEqual(await get.Body!.transformToString(), "BLENDER");
        await assert.rejects(
            emulator.s3.send(new HeadObjectCommand({ Bucket: farm.scenesBucket, Key: "shots/a/missing.blend" })),
            (error: { $metadata?: { httpStatusCode?: number } }) => error.$metadata?.httpStatusCode === 404,
        );

        for (let index = 0; index < 5; index++) {
            await emulator.s3.send(
                new PutObjectCommand({ Bucket: farm.rendersBucket, Key: `list/${index}.json`, Body: "{}" }),
            );
        }
        const keys: string[] = [];
        let token: string | undefined;
        do {
            const page = await emulator.s3.send(
                new ListObjectsV2Command({
                    Bucket: farm.rendersBucket,
                    Prefix: "list/",
                    MaxKeys: 2,
                    ContinuationToken: token,
                }),
            );
            keys.push(...(page.Contents ?? []).map((object) => object.Key!));
            token = page.IsTruncated ? page.NextContinuationToken : undefined;
        } while (token);
        assert.deepStrictEqual(keys, ["list/0.json", "list/1.json", "list/2.json", "list/3.json", "list/4.json"]);
    });

    it("honours S3's conditional writes: If-None-Match creates once, If-Match replaces only the ETag it names, one winner in a race", async function () {
        const Bucket = farm.rendersBucket;
        const Key = "conditional/object.json";
        const status = (error: unknown) =>
            (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        const created = await emulator.s3.send(new PutObjectCommand({ Bucket, Key, Body: "1", IfNoneMatch: "*" }));
        await assert.rejects(
            emulator.s3.send(new PutObjectCommand({ Bucket, Key, Body: "2", IfNoneMatch: "*" })),
            (error) => status(error) === 412,
        );
        await assert.rejects(
            emulator.s3.send(
                new PutObjectCommand({ Bucket, Key, Body: "2", IfMatch: '"0123456789abcdef0123456789abcdef"' }),
            ),
            (error) => status(error) === 412,
        );
        await assert.rejects(
            emulator.s3.send(
                new PutObjectCommand({ Bucket, Key: "conditional/absent.json", Body: "2", IfMatch: created.ETag }),
            ),
            (error) => status(error) === 404,
        );
        const replaced = await emulator.s3.send(
            new PutObjectCommand({ Bucket, Key, Body: "2", IfMatch: created.ETag }),
        );
        assert.notStrictEqual(replaced.ETag, created.ETag);
        // Twenty writers all holding the same ETag: exactly one may replace it.
        const outcomes = await Promise.allSettled(
            Array.from({ length: 20 }, (_, index) =>
                emulator.s3.send(
                    new PutObjectCommand({ Bucket, Key, Body: `writer ${index}`, IfMatch: replaced.ETag }),
                ),
            ),
        );
        assert.strictEqual(outcomes.filter((outcome) => outcome.status === "fulfilled").length, 1);
        for (const outcome of outcomes)
            if (outcome.status === "rejected") assert.strictEqual(status(outcome.reason), 412);
        const body = await (await emulator.s3.send(new GetObjectCommand({ Bucket, Key }))).Body!.transformToString();
        assert.match(body, /^writer \d+$/);
    });

    it("moves a message received maxReceiveCount times without a delete to the DLQ", async function () {
        await emulator.sqs.send(new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: "poison" }));
        for (let attempt = 1; attempt <= maxReceiveCount; attempt++) {
            // VisibilityTimeout 0: the failed attempt hands the message straight back, as the renderer's backoff would.
            const message = await receiveOne(farm.frameQueueUrl, 0);
            assert.ok(message, `receive ${attempt} got the message`);
            assert.strictEqual(message.Body, "poison");
            assert.strictEqual(message.Attributes!.ApproximateReceiveCount, String(attempt));
        }
        assert.strictEqual(await receiveOne(farm.frameQueueUrl, 0), undefined, "no delivery after maxReceiveCount");
        const dead = await receiveOne(farm.deadLetterQueueUrl);
        assert.ok(dead, "the message is in the DLQ");
        assert.strictEqual(dead.Body, "poison");
        await emulator.sqs.send(
            new DeleteMessageCommand({ QueueUrl: farm.deadLetterQueueUrl, ReceiptHandle: dead.ReceiptHandle! }),
        );
    });

    it("honours ChangeMessageVisibility: 0 releases the message now, a longer timeout keeps it hidden", async function () {
        await emulator.sqs.send(new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: "backoff" }));
        const first = await receiveOne(farm.frameQueueUrl);
        assert.ok(first);
        assert.strictEqual(
            await receiveOne(farm.frameQueueUrl),
            undefined,
            "hidden for the queue's 30 s visibility timeout",
        );
        await emulator.sqs.send(
            new ChangeMessageVisibilityCommand({
                QueueUrl: farm.frameQueueUrl,
                ReceiptHandle: first.ReceiptHandle!,
                VisibilityTimeout: 0,
            }),
        );
        const second = await receiveOne(farm.frameQueueUrl, 1);
        assert.ok(second, "visible again right after ChangeMessageVisibility 0");
        assert.strictEqual(second.Attributes!.ApproximateReceiveCount, "2");

        await emulator.sqs.send(
            new ChangeMessageVisibilityCommand({
                QueueUrl: farm.frameQueueUrl,
                ReceiptHandle: second.ReceiptHandle!,
                VisibilityTimeout: 60,
            }),
        );
        await new Promise((resolve) => setTimeout(resolve, 1200));
        assert.strictEqual(await receiveOne(farm.frameQueueUrl), undefined, "the 1 s timeout was extended to 60 s");
        await emulator.sqs.send(
            new DeleteMessageCommand({ QueueUrl: farm.frameQueueUrl, ReceiptHandle: second.ReceiptHandle! }),
        );
        await assert.rejects(
            emulator.sqs.send(
                new ChangeMessageVisibilityCommand({
                    QueueUrl: farm.frameQueueUrl,
                    ReceiptHandle: second.ReceiptHandle!,
                    VisibilityTimeout: 0,
                }),
            ),
            "a deleted message's receipt handle is no longer valid",
        );
    });

    it("refuses requests made to another Host (DNS rebinding) or from a web page before any handler runs; SDK clients and curl are answered", async function () {
        const guard = await createFarmResources(emulator, {
            name: "emu-guard",
            maxReceiveCount,
            visibilityTimeoutSeconds: 30,
        });
        const port = Number(new URL(emulator.endpoint).port);
        await emulator.s3.send(new PutObjectCommand({ Bucket: guard.scenesBucket, Key: "shots/own.blend", Body: "B" }));
        await emulator.sqs.send(new SendMessageCommand({ QueueUrl: guard.frameQueueUrl, MessageBody: "real" }));
        const sqsCall = (action: string, input: object) => ({
            method: "POST",
            path: "/",
            headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": `AmazonSQS.${action}` },
            body: JSON.stringify({ QueueUrl: guard.frameQueueUrl, ...input }),
        });
        const calls: RawRequest[] = [
            { method: "GET", path: `/${guard.scenesBucket}?list-type=2`, headers: {} },
            { method: "GET", path: `/${guard.scenesBucket}/shots/own.blend`, headers: {} },
            { method: "PUT", path: `/${guard.scenesBucket}/shots/forged.blend`, headers: {}, body: "forged" },
            sqsCall("SendMessage", { MessageBody: "forged" }),
            sqsCall("ReceiveMessage", { MaxNumberOfMessages: 10 }),
            { method: "GET", path: "/_fauxqs/queues/emu-guard-frames", headers: {} },
        ];
        const foreign: Record<string, string>[] = [
            { host: `attacker.example:${port}` },
            { host: `127.0.0.1:${port + 1}` },
            // The host in fauxqs's own queue URLs and S3's virtual-hosted style: names, which the farm never hands out.
            { host: `sqs.us-east-1.localhost:${port}` },
            { host: `${guard.scenesBucket}.localhost:${port}` },
            { origin: "http://attacker.example" },
            { origin: "null" },
            { "sec-fetch-site": "cross-site" },
        ];
        for (const call of calls) {
            for (const headers of foreign) {
                const reply = await rawRequest(emulator.endpoint, {
                    ...call,
                    headers: { ...call.headers, ...headers },
                });
                const what = `${call.method} ${call.path} ${JSON.stringify(headers)}`;
                assert.strictEqual(reply.status, 403, `${what}: ${reply.body}`);
                assert.match(reply.body, /AccessDenied/, what);
                assert.match(reply.body, /is not the address of the S3\/SQS emulator|is not for web pages/, what);
            }
        }
        for (const args of [
            ["-H", `Host: attacker.example:${port}`],
            ["-H", "Origin: http://attacker.example"],
        ]) {
            const reply = await curl([...args, `${emulator.endpoint}/${guard.scenesBucket}?list-type=2`]);
            assert.strictEqual(reply.status, 403, `curl ${args.join(" ")}: ${reply.body}`);
            assert.doesNotMatch(reply.body, /own\.blend/);
        }
        // Nothing was taken, sent or written.
        const queue = emulator.inspectQueue(guard.frameQueueUrl)!;
        assert.deepStrictEqual([queue.waiting, queue.inFlight.length], [["real"], 0]);
        await assert.rejects(
            emulator.s3.send(new HeadObjectCommand({ Bucket: guard.scenesBucket, Key: "shots/forged.blend" })),
            (error: { $metadata?: { httpStatusCode?: number } }) => error.$metadata?.httpStatusCode === 404,
        );

        // Its own address, by number or by name, a same-origin request, curl and the SDK clients are answered.
        for (const headers of [
            { host: `localhost:${port}` } as Record<string, string>,
            { host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}`, "sec-fetch-site": "same-origin" },
        ]) {
            const reply = await rawRequest(emulator.endpoint, { ...calls[0], headers });
            assert.strictEqual(reply.status, 200, `${JSON.stringify(headers)}: ${reply.body}`);
            assert.match(reply.body, /shots\/own\.blend/);
        }
        const curled = await curl([`${emulator.endpoint}/${guard.scenesBucket}/shots/own.blend`]);
        assert.deepStrictEqual(curled, { status: 200, body: "B" });
        const listed = await emulator.s3.send(new ListObjectsV2Command({ Bucket: guard.scenesBucket }));
        assert.deepStrictEqual(
            (listed.Contents ?? []).map((object) => object.Key),
            ["shots/own.blend"],
        );
        const received = await receiveOne(guard.frameQueueUrl);
        assert.strictEqual(received?.Body, "real");
        await emulator.sqs.send(
            new DeleteMessageCommand({ QueueUrl: guard.frameQueueUrl, ReceiptHandle: received.ReceiptHandle! }),
        );
    });

    it("stops and frees its port", async function () {
        const other = await startEmulator({ port: 0 });
        const port = Number(new URL(other.endpoint).port);
        await other.stop();
        const again = await startEmulator({ port });
        assert.strictEqual(again.endpoint, other.endpoint);
        await again.stop();
    });
});
