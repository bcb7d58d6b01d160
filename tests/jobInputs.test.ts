// The files a job's frames download, against the S3/SQS emulator with real .blend files and real renders: each is
// pinned to the version the job was submitted with (an asset re-uploaded mid-job fails its frames, naming it),
// linked libraries' own files travel with the job, and a job whose files cannot fit in a renderer's /tmp is refused.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    CompleteMultipartUploadCommand,
    CreateMultipartUploadCommand,
    DeleteObjectsCommand,
    GetObjectCommand,
    HeadObjectCommand,
    ListObjectsV2Command,
    PutObjectCommand,
    UploadPartCommand,
} from "@aws-sdk/client-s3";
import {
    DeleteMessageCommand,
    GetQueueAttributesCommand,
    PurgeQueueCommand,
    ReceiveMessageCommand,
    SendMessageCommand,
} from "@aws-sdk/client-sqs";
import {
    decodeEtags,
    encodeEtags,
    FrameMessage,
    FrameRecord,
    frameRecordKey,
    JobManifest,
    manifestKey,
    parseFrameMessage,
    pinnedAssets,
} from "../functions/shared/contract";
import { JobApiDeps } from "../functions/jobApi/settings";
import { MAX_MESSAGE_BYTES } from "../functions/jobApi/frameQueueing";
import { submitJob } from "../functions/jobApi/submit";
import { createRendererHandler } from "../functions/renderer/consumer";
import { DEFAULT_RENDER_LIMITS, RendererSettings } from "../functions/renderer/settings";
import { mapWithConcurrency } from "../functions/shared/concurrency";
import { createFarmResources, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { pollOnce } from "../local/eventSourcePoller";
import { blendFixtures } from "./support/blendFixtures";
import { shippedJobApi } from "./support/jobApiArchive";
import { filesUnder, libraryFixtures } from "./support/libraryFixtures";
import { BLENDER, comparePngs, makeScene, renderDirect } from "./support/scenes";

const MIB = 1024 * 1024;

describe("job inputs: pinned versions, linked libraries and the renderer's disk", function () {
    let emulator: Emulator;
    let farm: FarmResources;
    let queueArn: string;
    let deps: JobApiDeps;
    let renderer: ReturnType<typeof createRendererHandler>;
    let fixtures: string;
    let libraries: string;

    before(async function () {
        [fixtures, libraries] = await Promise.all([blendFixtures(), libraryFixtures()]);
        emulator = await startEmulator();
        farm = await createFarmResources(emulator, {
            name: "inputs",
            maxReceiveCount: 2,
            visibilityTimeoutSeconds: 120,
            receiveWaitTimeSeconds: 0,
        });
        queueArn = (
            await emulator.sqs.send(
                new GetQueueAttributesCommand({ QueueUrl: farm.frameQueueUrl, AttributeNames: ["QueueArn"] }),
            )
        ).Attributes!.QueueArn!;
        deps = {
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: {
                scenesBucket: farm.scenesBucket,
                rendersBucket: farm.rendersBucket,
                frameQueueUrl: farm.frameQueueUrl,
                limits: { maxFrames: 1000, maxResolution: 4096, allowedEngines: ["CYCLES", "EEVEE", "WORKBENCH"] },
                maxReceiveCount: 2,
            },
        };
        const rendererSettings: RendererSettings = {
            scenesBucket: farm.scenesBucket,
            rendersBucket: farm.rendersBucket,
            frameQueueUrl: farm.frameQueueUrl,
            maxReceiveCount: 2,
            failureBackoffSeconds: 0,
            memoryMb: 10240,
            blenderPath: BLENDER,
            workDir: fs.mkdtempSync(path.join(os.tmpdir(), "inputs-renderer-")),
            threads: os.cpus().length,
            defaultTimeoutMs: 300_000,
            limits: DEFAULT_RENDER_LIMITS,
        };
        renderer = createRendererHandler({ s3: emulator.s3, sqs: emulator.sqs, settings: rendererSettings });
    });

    after(async function () {
        await renderer?.close();
        await emulator?.stop();
    });

    beforeEach(async function () {
        await emulator.sqs.send(new PurgeQueueCommand({ QueueUrl: farm.frameQueueUrl }));
    });

    async function upload(key: string, body: string | Buffer): Promise<string> {
        const put = await emulator.s3.send(
            new PutObjectCommand({
                Bucket: farm.scenesBucket,
                Key: key,
                Body: typeof body === "string" ? fs.readFileSync(body) : body,
            }),
        );
        return put.ETag!;
    }

    /** A `mib` MiB object in 10 MiB parts (the emulator takes at most 11 MiB a request, as S3 takes 5 GB). */
    async function uploadLarge(key: string, mib: number): Promise<void> {
        const part = Buffer.alloc(10 * MIB, 1);
        const { UploadId } = await emulator.s3.send(
            new CreateMultipartUploadCommand({ Bucket: farm.scenesBucket, Key: key }),
        );
        const parts: { ETag: string; PartNumber: number }[] = [];
        for (let number = 1; number <= Math.ceil(mib / 10); number++) {
            const body = part.subarray(0, Math.min(10, mib - (number - 1) * 10) * MIB);
            const reply = await emulator.s3.send(
                new UploadPartCommand({
                    Bucket: farm.scenesBucket,
                    Key: key,
                    UploadId,
                    PartNumber: number,
                    Body: body,
                }),
            );
            parts.push({ ETag: reply.ETag!, PartNumber: number });
        }
        await emulator.s3.send(
            new CompleteMultipartUploadCommand({
                Bucket: farm.scenesBucket,
                Key: key,
                UploadId,
                MultipartUpload: { Parts: parts },
            }),
        );
    }

    /** Uploads every file under `dir` at `<prefix>/<its path>`. */
    async function uploadTree(dir: string, prefix: string, skip: (file: string) => boolean = () => false) {
        for (const file of filesUnder(dir)) if (!skip(file)) await upload(`${prefix}/${file}`, path.join(dir, file));
    }

    async function submit(body: unknown, settings: Partial<JobApiDeps["settings"]> = {}) {
        const reply = await submitJob({ ...deps, settings: { ...deps.settings, ...settings } }, body);
        return { status: reply.status, body: reply.body as any };
    }

    /** Takes every queued message off the queue. */
    async function takeMessages(): Promise<FrameMessage[]> {
        const messages: FrameMessage[] = [];
        for (;;) {
            const reply = await emulator.sqs.send(
                new ReceiveMessageCommand({ QueueUrl: farm.frameQueueUrl, MaxNumberOfMessages: 10 }),
            );
            if (!reply.Messages?.length) return messages;
            for (const message of reply.Messages) {
                assert.ok(Buffer.byteLength(message.Body!) <= MAX_MESSAGE_BYTES, "a message SQS accepts");
                messages.push(JSON.parse(message.Body!));
                await emulator.sqs.send(
                    new DeleteMessageCommand({ QueueUrl: farm.frameQueueUrl, ReceiptHandle: message.ReceiptHandle! }),
                );
            }
        }
    }

    /** Renders one queued frame, as the event source mapping would. */
    async function renderOne(): Promise<string> {
        return pollOnce({
            sqs: emulator.sqs,
            queueUrl: farm.frameQueueUrl,
            queueArn,
            region: emulator.region,
            handler: renderer,
        });
    }

    async function readJson<T>(bucket: string, key: string): Promise<T> {
        const object = await emulator.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return JSON.parse(await object.Body!.transformToString()) as T;
    }

    async function frameRecord(jobId: string, frame: number): Promise<FrameRecord> {
        return readJson<FrameRecord>(farm.rendersBucket, frameRecordKey(jobId, frame));
    }

    async function etagOf(key: string): Promise<string> {
        return (await emulator.s3.send(new HeadObjectCommand({ Bucket: farm.scenesBucket, Key: key }))).ETag!;
    }

    // ---- every asset pinned by ETag -----------------------------------------------------------

    it("pins each asset to the version submitted: a texture re-uploaded mid-job fails the later frame with asset_changed, naming it", async function () {
        const scene = await makeScene({ texture: "textures/checker.png", frames: "1-2" });
        await upload("pin/scene.blend", scene.blendPath);
        const textureEtag = await upload("pin/textures/checker.png", scene.texturePath!);
        const accepted = await submit({ scene: "pin/scene.blend", frames: "1-2", jobId: "pin-texture" });
        assert.strictEqual(accepted.status, 202, JSON.stringify(accepted.body));

        // The first frame renders; then the artist re-uploads the texture; the second must not render the new one.
        assert.strictEqual(await renderOne(), "succeeded");
        await upload("pin/textures/checker.png", Buffer.from("another texture, another version"));
        assert.strictEqual(await renderOne(), "failed");
        const records = await Promise.all([frameRecord("pin-texture", 1), frameRecord("pin-texture", 2)]);
        const failed = records.find((record) => record.status !== "done")!;
        assert.ok(failed, "one frame did not render");
        assert.strictEqual(failed.error?.code, "asset_changed", JSON.stringify(failed.error));
        assert.match(
            failed.error!.message,
            /the asset pin\/textures\/checker\.png changed since the job was submitted/,
        );
        assert.ok(failed.error!.message.includes(textureEtag), "the message names the version submitted");

        const manifest = await readJson<JobManifest>(farm.rendersBucket, manifestKey("pin-texture"));
        assert.deepStrictEqual(manifest.request.assets, ["pin/textures/checker.png"]);
        assert.deepStrictEqual(decodeEtags(manifest.assetEtags!, 1), [textureEtag]);
    });

    it("pins the frames of a sequence found by listing the bucket, with the ETags the listing gave", async function () {
        await upload("pinseq/sequence.blend", path.join(fixtures, "sequence.blend"));
        const etags: string[] = [];
        for (const frame of [1, 2, 3]) {
            const name = `textures/seq/frame_000${frame}.png`;
            etags.push(await upload(`pinseq/${name}`, path.join(fixtures, name)));
        }
        const accepted = await submit({ scene: "pinseq/sequence.blend", frames: "1", jobId: "pin-sequence" });
        assert.strictEqual(accepted.status, 202, JSON.stringify(accepted.body));
        await upload("pinseq/textures/seq/frame_0002.png", path.join(fixtures, "textures/seq/frame_0003.png"));
        assert.strictEqual(await renderOne(), "failed");
        const record = await frameRecord("pin-sequence", 1);
        assert.strictEqual(record.error?.code, "asset_changed", JSON.stringify(record.error));
        assert.match(record.error!.message, /the asset pinseq\/textures\/seq\/frame_0002\.png changed/);

        const manifest = await readJson<JobManifest>(farm.rendersBucket, manifestKey("pin-sequence"));
        assert.deepStrictEqual(
            manifest.request.assets,
            [1, 2, 3].map((n) => `pinseq/textures/seq/frame_000${n}.png`),
        );
        assert.deepStrictEqual(decodeEtags(manifest.assetEtags!, 3), etags);
    });

    it("renders a message that pins no asset versions (no assetEtags), whatever version is there", async function () {
        const scene = await makeScene({ texture: "textures/checker.png", frames: "1-2" });
        await upload("unpinned/scene.blend", scene.blendPath);
        await upload("unpinned/textures/checker.png", scene.texturePath!);
        const accepted = await submit({ scene: "unpinned/scene.blend", frames: "1", jobId: "unpinned" });
        assert.strictEqual(accepted.status, 202, JSON.stringify(accepted.body));
        const [queued] = await takeMessages();
        assert.ok(queued.assetEtags, "a new message pins its assets");
        const { assetEtags: _pinned, ...older } = queued;
        await upload("unpinned/textures/checker.png", path.join(fixtures, "textures", "wood.png"));
        await emulator.sqs.send(
            new SendMessageCommand({ QueueUrl: farm.frameQueueUrl, MessageBody: JSON.stringify(older) }),
        );
        assert.strictEqual(await renderOne(), "succeeded");
        assert.strictEqual((await frameRecord("unpinned", 1)).status, "done");
    });

    it("keeps a frame message of 1,000 assets and their ETags under SQS's 256 KB, with keys as long as fitted before", async function () {
        this.timeout(600_000);
        // 1,000 keys of 220 bytes: a 224 KB message without ETags, over 256 KB with them as a JSON array of strings.
        const keys = Array.from(
            { length: 1000 },
            (_, index) => `many/${"k".repeat(200)}/asset-${String(index).padStart(4, "0")}.bin`,
        );
        assert.strictEqual(Buffer.byteLength(keys[0]), 220);
        await upload("many/scene.blend", path.join(fixtures, "uncompressed.blend"));
        const etags = await mapWithConcurrency(keys, 32, (key, index) => upload(key, Buffer.from(`asset ${index}`)));
        const accepted = await submit(
            { scene: "many/scene.blend", assets: keys, frames: "1", jobId: "many-assets" },
            { preflight: false },
        );
        assert.strictEqual(accepted.status, 202, JSON.stringify(accepted.body));
        const [message] = await takeMessages();
        assert.deepStrictEqual(message.assets, keys);
        assert.deepStrictEqual(decodeEtags(message.assetEtags!, keys.length), etags);
        const bytes = Buffer.byteLength(JSON.stringify(message));
        const asStrings = Buffer.byteLength(JSON.stringify({ ...message, assetEtags: etags }));
        assert.ok(bytes <= MAX_MESSAGE_BYTES, `${bytes} bytes`);
        assert.ok(asStrings > MAX_MESSAGE_BYTES, `the plain encoding (${asStrings} bytes) would not have fitted`);
        console.log(`      1,000 pinned assets: ${bytes} bytes a message (${asStrings} as a JSON array of ETags)`);
    });

    it("encodes any ETag and decodes it exactly; the renderer refuses a message whose assetEtags do not match its assets", function () {
        const etags = [
            '"d41d8cd98f00b204e9800998ecf8427e"',
            '"9b2cf535f27731c974343645a3985328-10000"',
            "",
            'W/"weak, with a comma"',
            '"D41D8CD98F00B204E9800998ECF8427E"',
        ];
        const encoded = encodeEtags(etags);
        assert.deepStrictEqual(decodeEtags(encoded, etags.length), etags);
        assert.strictEqual(encoded.split(",")[0].length, 22, "an MD5 ETag takes 22 characters");
        assert.deepStrictEqual(decodeEtags("", 0), []);
        assert.strictEqual(decodeEtags(encoded, etags.length + 1), undefined);
        const message = {
            v: 1,
            jobId: "etags",
            frame: 1,
            scene: "a/scene.blend",
            sceneEtag: "",
            assets: ["a/one.png", "a/two.png"],
            settings: { format: "PNG" },
            output: { bucket: farm.rendersBucket, key: "renders/etags/frame_0001.png" },
        };
        assert.ok(parseFrameMessage(JSON.stringify(message), farm.rendersBucket).ok, "no assetEtags: unpinned");
        const pinned = parseFrameMessage(
            JSON.stringify({ ...message, assetEtags: encodeEtags([etags[0], etags[1]]) }),
            farm.rendersBucket,
        );
        assert.ok(pinned.ok);
        assert.deepStrictEqual(pinnedAssets(pinned.value), [
            { key: "a/one.png", etag: etags[0] },
            { key: "a/two.png", etag: etags[1] },
        ]);
        for (const assetEtags of [encodeEtags([etags[0]]), "not an etag!,x", 7]) {
            const refused = parseFrameMessage(JSON.stringify({ ...message, assetEtags }), farm.rendersBucket);
            assert.ok(!refused.ok && refused.error.field === "assetEtags", JSON.stringify(refused));
        }
    });

    // ---- linked libraries' own files, and the renderer's disk ---------------------------

    it("follows linked libraries: a library's own textures and the libraries it links, each resolved next to that library; the frame renders as `blender -f` does", async function () {
        await uploadTree(libraries, "libs", (file) => file === "lib/deep/tex/deep.png");
        const refused = await submit({ scene: "libs/linked.blend", jobId: "linked" });
        assert.strictEqual(refused.status, 422, JSON.stringify(refused.body));
        assert.deepStrictEqual(refused.body.error.missing, ["libs/lib/deep/tex/deep.png"]);
        assert.match(
            refused.body.error.message,
            /libs\/lib\/deep\/tex\/deep\.png \(needed by image "deep\.png" in library libs\/lib\/deep\/deep\.blend\)/,
        );

        await upload("libs/lib/deep/tex/deep.png", path.join(libraries, "lib/deep/tex/deep.png"));
        const accepted = await submit({ scene: "libs/linked.blend", jobId: "linked" });
        assert.strictEqual(accepted.status, 202, JSON.stringify(accepted.body));
        assert.deepStrictEqual(accepted.body.assetsAdded, [
            "libs/lib/deep/deep.blend",
            "libs/lib/deep/tex/deep.png",
            "libs/lib/mid.blend",
            "libs/lib/tex/mid.png",
        ]);
        const manifest = await readJson<JobManifest>(farm.rendersBucket, manifestKey("linked"));
        assert.deepStrictEqual(
            decodeEtags(manifest.assetEtags!, 4),
            await Promise.all(manifest.request.assets.map(etagOf)),
            "libraries read by the preflight are pinned too",
        );

        assert.strictEqual(await renderOne(), "succeeded", JSON.stringify(await frameRecord("linked", 1)));
        const out = fs.mkdtempSync(path.join(os.tmpdir(), "inputs-linked-"));
        const rendered = path.join(out, "farm.png");
        const object = await emulator.s3.send(
            new GetObjectCommand({ Bucket: farm.rendersBucket, Key: "renders/linked/frame_0001.png" }),
        );
        fs.writeFileSync(rendered, Buffer.from(await object.Body!.transformToByteArray()));
        const comparison = comparePngs(rendered, await renderDirect(path.join(libraries, "linked.blend"), 1, out));
        assert.ok(comparison.sameShape);
        assert.strictEqual(comparison.differingSamples, 0, `max difference ${comparison.maxDifference}`);
    });

    it("reads each library of a cycle once, and refuses a chain deeper than it follows (413) or a library that is not a .blend (400)", async function () {
        await uploadTree(libraries, "loops");
        const cycle = await submit({ scene: "loops/cycle.blend", jobId: "cycle" });
        assert.strictEqual(cycle.status, 202, JSON.stringify(cycle.body));
        assert.deepStrictEqual(cycle.body.assetsAdded, ["loops/lib/cycle-a.blend", "loops/lib/cycle-b.blend"]);

        const chain = await submit({ scene: "loops/chain.blend", jobId: "chain" });
        assert.strictEqual(chain.status, 413, JSON.stringify(chain.body));
        assert.strictEqual(chain.body.error.code, "too_many_libraries");
        assert.strictEqual(chain.body.error.field, "scene");
        assert.match(chain.body.error.message, /deeper than 8 levels \(loops\/lib\/chain\/l08\.blend links/);

        await upload("loops/lib/deep/deep.blend", Buffer.from("not a blend file at all"));
        const broken = await submit({ scene: "loops/linked.blend", jobId: "broken-library" });
        assert.strictEqual(broken.status, 400, JSON.stringify(broken.body));
        assert.strictEqual(broken.body.error.code, "not_a_blend");
        assert.match(
            broken.body.error.message,
            /^library loops\/lib\/deep\/deep\.blend \(needed by library "deep\.blend" in library loops\/lib\/mid\.blend of scene "loops\/linked\.blend"\) is not a readable \.blend file/,
        );
        const listed = await emulator.s3.send(
            new ListObjectsV2Command({ Bucket: farm.rendersBucket, Prefix: "jobs/chain/" }),
        );
        assert.strictEqual(listed.KeyCount ?? 0, 0, "a refused job writes no manifest");
    });

    it("answers 413 when the job's files cannot fit in the renderer's /tmp, from listed and HEADed sizes alike", async function () {
        this.timeout(600_000);
        // A 512 MB /tmp keeps 256 MiB for the frame and Blender's temp files: 256 MiB is left for the job's files.
        const keys = [1, 2, 3].map((n) => `huge/textures/seq/frame_000${n}.png`);
        await upload("huge/sequence.blend", path.join(fixtures, "sequence.blend"));
        try {
            for (const key of keys.slice(0, 2)) await uploadLarge(key, 90);
            const fits = await submit(
                { scene: "huge/sequence.blend", frames: "1" },
                { rendererEphemeralStorageMb: 512 },
            );
            assert.strictEqual(fits.status, 202, JSON.stringify(fits.body));
            await takeMessages();

            await uploadLarge(keys[2], 90);
            const sequence = await submit(
                { scene: "huge/sequence.blend", frames: "1" },
                { rendererEphemeralStorageMb: 512 },
            );
            assert.strictEqual(sequence.status, 413, JSON.stringify(sequence.body));
            assert.strictEqual(sequence.body.error.code, "inputs_too_large");
            assert.strictEqual(sequence.body.error.field, "assets");
            assert.match(
                sequence.body.error.message,
                /^the scene and its 3 asset\(s\) total 270\.\d MiB, more than the 256\.0 MiB a renderer can download \(its 512 MB \/tmp less 256\.0 MiB kept for the frame and Blender's temp files\); largest: huge\/textures\/seq\/frame_0001\.png \(90\.0 MiB\)/,
            );

            const listedAssets = await submit(
                { scene: "huge/sequence.blend", assets: keys, frames: "1" },
                { rendererEphemeralStorageMb: 512, preflight: false },
            );
            assert.strictEqual(listedAssets.status, 413, JSON.stringify(listedAssets.body));
            assert.strictEqual(listedAssets.body.error.code, "inputs_too_large");

            // The default (Lambda's largest /tmp, 10 GB) takes the same job.
            const roomy = await submit({ scene: "huge/sequence.blend", frames: "1" });
            assert.strictEqual(roomy.status, 202, JSON.stringify(roomy.body));
        } finally {
            await emulator.s3.send(
                new DeleteObjectsCommand({
                    Bucket: farm.scenesBucket,
                    Delete: { Objects: keys.map((Key) => ({ Key })) },
                }),
            );
        }
    });
    it("does the same inside the serialized job API archive: libraries followed, assets pinned, too deep a chain refused", async function () {
        const shipped = await shippedJobApi(emulator, farm);
        try {
            assert.strictEqual(
                shipped.variables.RENDERER_EPHEMERAL_STORAGE_MB,
                "10240",
                "the dev stack's renderer /tmp",
            );
            const invoke = (body: unknown) => shipped.submit(body);
            await uploadTree(libraries, "shipped");
            const accepted = await invoke({ scene: "shipped/linked.blend", jobId: "shipped-linked" });
            assert.strictEqual(accepted.statusCode, 202, JSON.stringify(accepted.body));
            assert.strictEqual(accepted.body.assetsAdded.length, 4);
            const [message] = await takeMessages();
            assert.deepStrictEqual(
                decodeEtags(message.assetEtags!, message.assets.length),
                await Promise.all(message.assets.map(etagOf)),
            );
            const chain = await invoke({ scene: "shipped/chain.blend", jobId: "shipped-chain" });
            assert.strictEqual(chain.statusCode, 413, JSON.stringify(chain.body));
            assert.strictEqual(chain.body.error.code, "too_many_libraries");
        } finally {
            await shipped.stop();
        }
    });
});
