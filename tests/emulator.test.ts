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

    it("stops and frees its port", async function () {
        const other = await startEmulator({ port: 0 });
        const port = Number(new URL(other.endpoint).port);
        await other.stop();
        const again = await startEmulator({ port });
        assert.strictEqual(again.endpoint, other.endpoint);
        await again.stop();
    });
});
