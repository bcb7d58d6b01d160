// What the CLI trusts in the directory it runs in: a .farm/outputs.json planted in a cloned repository must
// not send scenes anywhere but a farm on this machine's loopback, and a scene must not make `render` upload
// files beside it that the artist never meant to share (hidden files, links out of the scene's folder).
import * as assert from "assert";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { createS3Client } from "../cli/storage";
import { LocalFarm, startLocalFarm } from "../local/farm";
import { runCli } from "./support/cliRunner";
import { BLENDER, makeScene, run } from "./support/scenes";

const MAKE_IMAGE_REFERENCE_SCENE = path.join(__dirname, "fixtures", "make_image_reference_scene.py");

function tempDir(name: string): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), `cli-trust-${name}-`));
}

/** An address of this machine that is not loopback: where a planted outputs.json can point and still be answered. */
function externalAddress(): string {
    for (const addresses of Object.values(os.networkInterfaces()))
        for (const address of addresses ?? [])
            if (!address.internal && address.family === "IPv4") return address.address;
    throw new Error("this machine has no non-loopback IPv4 address to stand in for someone else's farm");
}

async function makeImageReferenceScene(blendPath: string, images: string[]): Promise<void> {
    fs.mkdirSync(path.dirname(blendPath), { recursive: true });
    await run(BLENDER, [
        "-b",
        "--factory-startup",
        "-noaudio",
        "--python-exit-code",
        "2",
        "-P",
        MAKE_IMAGE_REFERENCE_SCENE,
        "--",
        "--out",
        blendPath,
        ...images.flatMap((image) => ["--image", image]),
    ]);
}

describe("what the CLI trusts in the directory it runs in", function () {
    describe("a .farm/outputs.json naming a farm that is not on this machine's loopback", function () {
        let server: http.Server;
        const seen: string[] = [];
        let planted: string;
        let scene: string;

        before(async function () {
            // Someone else's "farm": answers the CLI's ping as a job API does and records everything it is sent.
            server = http.createServer((request, response) => {
                seen.push(`${request.method} ${request.url}`);
                request.resume();
                request.on("end", () => {
                    if (request.url?.startsWith("/jobs/")) {
                        const body = JSON.stringify({ error: { code: "not_found", message: "no such job" } });
                        response.writeHead(404, { "content-type": "application/json" }).end(body);
                    } else {
                        response.writeHead(200, { etag: '"planted"' }).end();
                    }
                });
            });
            await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", () => resolve()));
            const elsewhere = `http://${externalAddress()}:${(server.address() as net.AddressInfo).port}`;
            planted = tempDir("planted");
            fs.mkdirSync(path.join(planted, ".farm"));
            fs.writeFileSync(
                path.join(planted, ".farm", "outputs.json"),
                JSON.stringify({
                    apiUrl: elsewhere,
                    scenesBucket: "render-farm-scenes",
                    rendersBucket: "render-farm-renders",
                    frameQueueUrl: `${elsewhere}/000000000000/render-farm-frames`,
                    deadLetterQueueUrl: `${elsewhere}/000000000000/render-farm-frames-dlq`,
                    region: "us-east-1",
                    awsEndpoint: elsewhere,
                }),
            );
            scene = path.join(planted, "shot", "scene.blend");
            fs.mkdirSync(path.dirname(scene));
            fs.copyFileSync((await makeScene({ frames: "1" })).blendPath, scene);
        });

        after(async function () {
            await new Promise((resolve) => server.close(resolve));
        });

        it("render refuses it (exit 2, naming the file and --outputs) and sends it nothing", async function () {
            const result = await runCli(["render", "shot/scene.blend", "--frames", "1", "--no-wait"], {
                cwd: planted,
            });
            assert.strictEqual(result.code, 2, `exit code; stderr: ${result.stderr}; the planted farm saw: ${seen}`);
            assert.match(
                result.stderr,
                /\.farm\/outputs\.json names a farm that is not on this machine \(its apiUrl http:\/\/[\d.]+:\d+\);.*pass --outputs/,
            );
            assert.deepStrictEqual(seen, [], "no request reached the planted farm");
        });

        it("render-farm worker refuses to render for it", async function () {
            const result = await runCli(["worker", "--workers", "1"], { cwd: planted, timeoutMs: 60_000 });
            assert.strictEqual(result.code, 3, result.stderr);
            assert.match(result.stderr, /not on this machine's loopback/);
            assert.deepStrictEqual(seen, [], "no request reached the planted farm");
        });

        it("given explicitly with --outputs it is used (the user's choice)", async function () {
            const result = await runCli(
                ["status", "some-job", "--outputs", path.join(planted, ".farm", "outputs.json")],
                { cwd: planted },
            );
            assert.ok(
                seen.some((request) => request.startsWith("GET /jobs/some-job")),
                `the farm named by --outputs was asked: ${seen}; ${result.stderr}`,
            );
        });
    });

    describe("render and the files a scene names", function () {
        let farm: LocalFarm;
        let target: string[];
        let s3: ReturnType<typeof createS3Client>;
        let home: string;
        let outside: string;

        before(async function () {
            const root = tempDir("files");
            farm = await startLocalFarm({
                port: 0,
                dataDir: path.join(root, "farm"),
                workers: 0,
                log: () => undefined,
            });
            target = ["--api", farm.apiUrl, "--outputs", path.join(farm.dataDir, "outputs.json")];
            s3 = createS3Client(farm.outputs);
            // A scene saved in a home directory, next to the user's credentials, with a texture folder holding a
            // link to a file elsewhere and a hidden file of its own.
            home = path.join(root, "home");
            outside = path.join(root, "elsewhere");
            fs.mkdirSync(path.join(home, ".aws"), { recursive: true });
            fs.mkdirSync(path.join(home, "textures"), { recursive: true });
            fs.mkdirSync(outside);
            fs.writeFileSync(path.join(home, ".aws", "credentials"), "[default]\naws_secret_access_key = SECRET\n");
            fs.writeFileSync(path.join(outside, "private.png"), "not for the farm");
            fs.symlinkSync(path.join(outside, "private.png"), path.join(home, "textures", "link.png"));
            fs.symlinkSync(outside, path.join(home, "textures", "linked-dir"));
            fs.writeFileSync(path.join(home, "textures", "ok.png"), "a texture");
            fs.writeFileSync(path.join(home, "textures", ".hidden.png"), "an editor's file");
            await makeImageReferenceScene(path.join(home, "scene.blend"), [
                "//.aws/credentials",
                "//textures/link.png",
                "//textures/linked-dir/private.png",
                "//textures/ok.png",
            ]);
        });

        after(async function () {
            s3?.destroy();
            await farm?.stop();
        });

        async function uploaded(prefix: string): Promise<string[]> {
            const listed = await s3.send(
                new ListObjectsV2Command({ Bucket: farm.outputs.scenesBucket, Prefix: `${prefix}/` }),
            );
            return (listed.Contents ?? []).map((object) => object.Key!).sort();
        }

        it("uploads neither a hidden file nor a link out of the scene's folder that the scene names, and says why", async function () {
            // Files the farm would lack stop render (exit 2) before anything is uploaded...
            const refused = await runCli([
                "render",
                path.join(home, "scene.blend"),
                "--prefix",
                "named",
                "--no-wait",
                ...target,
            ]);
            assert.strictEqual(refused.code, 2, refused.stderr);
            assert.match(refused.stderr, /unmirrorable|cannot upload/);
            assert.deepStrictEqual(await uploaded("named"), []);
            // ...and with --allow-missing it submits without them, saying why for each.
            const result = await runCli([
                "render",
                path.join(home, "scene.blend"),
                "--allow-missing",
                "--prefix",
                "named",
                "--job-id",
                "trust-named",
                "--no-wait",
                ...target,
            ]);
            assert.deepStrictEqual(
                await uploaded("named"),
                ["named/scene.blend", "named/textures/ok.png"],
                result.stderr,
            );
            assert.match(
                result.stderr,
                /warning: image "image0": .*names a hidden file \(\.aws\/credentials\).*--assets/,
            );
            assert.match(
                result.stderr,
                /warning: image "image1": .*textures\/link\.png, a link to .*private\.png outside/,
            );
            assert.match(result.stderr, /warning: image "image2": .*linked-dir\/private\.png, a link to .*outside/);
        });

        it("uploads a hidden file given with --assets, skips hidden files in a folder given with --assets, and refuses a link out as an asset", async function () {
            const explicit = await runCli([
                "render",
                path.join(home, "scene.blend"),
                "--assets",
                ".aws/credentials",
                "textures/ok.png",
                "--allow-missing",
                "--prefix",
                "explicit",
                "--job-id",
                "trust-explicit",
                "--no-wait",
                ...target,
            ]);
            assert.ok((await uploaded("explicit")).includes("explicit/.aws/credentials"), explicit.stderr);
            assert.doesNotMatch(explicit.stderr, /names a hidden file/);

            const folder = await runCli([
                "render",
                path.join(home, "scene.blend"),
                "--assets",
                "textures",
                "--allow-missing",
                "--prefix",
                "folder",
                "--job-id",
                "trust-folder",
                "--no-wait",
                ...target,
            ]);
            assert.deepStrictEqual(
                await uploaded("folder"),
                ["folder/scene.blend", "folder/textures/ok.png"],
                `no .hidden.png, no link: ${folder.stderr}`,
            );

            const link = await runCli([
                "render",
                path.join(home, "scene.blend"),
                "--assets",
                "textures/link.png",
                "--prefix",
                "link",
                ...target,
            ]);
            assert.strictEqual(link.code, 2, link.stderr);
            assert.match(
                link.stderr,
                /asset textures\/link\.png is a link to .*private\.png, outside the scene's directory/,
            );
            assert.deepStrictEqual(await uploaded("link"), []);
        });

        it("inspect lists the hidden file and the links among the files render will not upload", async function () {
            const result = await runCli(["inspect", path.join(home, "scene.blend"), "--json"]);
            assert.strictEqual(result.code, 0, result.stderr);
            const warnings: string[] = JSON.parse(result.stdout).warnings;
            assert.ok(
                warnings.some((warning) => /hidden file \(\.aws\/credentials\)/.test(warning)),
                `${warnings}`,
            );
            assert.ok(
                warnings.some((warning) => /textures\/link\.png, a link to/.test(warning)),
                `${warnings}`,
            );
        });
    });
});
