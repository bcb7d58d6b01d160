// `render-farm serve --runtime lambda`: the local farm running the shipped artifacts (the job API archive and
// the renderer image's task root) under the Lambda runtime client, rendering a job submitted over HTTP.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { api, frameKeys, frameRecords, listKeys, s3Of, waitForJobEnd } from "./support/farmClient";
import { decodePng, makeScene } from "./support/scenes";
import { ServeProcess, startServe, stopServe } from "./support/serveProcess";

const WIDTH = 64;
const HEIGHT = 48;

describe("render-farm serve --runtime lambda", function () {
    let serve: ServeProcess;

    before(async function () {
        // The first run on a machine installs image/package.json (a native addon build) unless npm test did.
        this.timeout(16 * 60_000);
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lambda-farm-"));
        // Ready once the archive is serialized, the image's task root compiled and every sandbox has polled /next.
        serve = await startServe(
            ["--runtime", "lambda", "--port", "0", "--workers", "1", "--data-dir", dataDir],
            15 * 60_000,
        );
    });

    after(async function () {
        await stopServe(serve);
    });

    it("renders a job submitted over HTTP through the job API archive and the renderer image's entrypoint", async function () {
        const { outputs } = serve;
        const scene = await makeScene({ frames: "1-2", resolutionX: WIDTH, resolutionY: HEIGHT, samples: 4 });
        const s3 = s3Of(outputs);
        await s3.send(
            new PutObjectCommand({
                Bucket: outputs.scenesBucket,
                Key: "shots/lambda/scene.blend",
                Body: fs.readFileSync(scene.blendPath),
            }),
        );
        const submitted = await api(outputs, "POST", "/jobs", { scene: "shots/lambda/scene.blend", jobId: "lambda" });
        assert.strictEqual(submitted.status, 202, JSON.stringify(submitted.body));
        const status = await waitForJobEnd(outputs, "lambda", 180_000);
        assert.deepStrictEqual(status.frames, { total: 2, done: 2, failed: 0, pending: 0 });

        assert.deepStrictEqual((await listKeys(outputs, "renders/lambda/")).sort(), frameKeys("lambda", [1, 2]));
        const object = await s3.send(
            new GetObjectCommand({ Bucket: outputs.rendersBucket, Key: frameKeys("lambda", [1])[0] }),
        );
        const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lambda-farm-frame-")), "frame.png");
        fs.writeFileSync(file, await object.Body!.transformToByteArray());
        assert.deepStrictEqual([decodePng(file).width, decodePng(file).height], [WIDTH, HEIGHT]);
        s3.destroy();

        // The renderer read its memory size from Lambda's AWS_LAMBDA_FUNCTION_MEMORY_SIZE (the stack's 10240 MB),
        // which the in-process farm does not set.
        for (const record of await frameRecords(outputs, "lambda")) {
            assert.strictEqual(record.memoryMb, 10240);
            assert.ok(record.costUsd > 0);
        }
        const log = serve.stderr();
        assert.match(log, /lambda runtime: job API \(nodejs22\.x, the serialized archive\) cold start \d+ ms/);
        assert.match(log, /lambda runtime: renderer worker-1 \(image\/Dockerfile's ENTRYPOINT \+ CMD\) cold start/);
        assert.match(log, /frame 2 of job lambda \(worker 1, [\d.]+ s\): done/);
    });
});
