// The `render-farm` command as users run it: the bin shim in a child process, against the embedded
// local farm, a farm started by the test (--api/--outputs), or nothing reachable at all.
import * as assert from "assert";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { HeadObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { createS3Client } from "../cli/storage";
import { uploadObjects } from "../cli/upload";
import { LocalFarm, startLocalFarm } from "../local/farm";
import { emulatorClients } from "../local/emulator";
import { jobLedger } from "../functions/shared/ledger";
import { LOCAL_FARM_SETTINGS } from "../local/localSettings";
import { runCli, runCliOnTerminal, CliRun } from "./support/cliRunner";
import { makeFailingFrameScene } from "./support/failingFrameScene";
import { makeReferenceScene } from "./support/referenceScene";
import { BLENDER, comparePngs, decodePng, makeScene, renderDirect, run, CUBE_2016_SCENE } from "./support/scenes";

function tempDir(name: string): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), `cli-test-${name}-`));
}

/** The non-empty lines of some output. */
function lines(text: string): string[] {
    return text.split(/\r?\n/).filter((line) => line.trim() !== "");
}

/** An error run prints exactly one line, the reason, and no stack trace. */
function assertOneLineReason(run: CliRun, code: number, reason: RegExp): void {
    assert.strictEqual(run.code, code, `exit code; stderr: ${run.stderr}`);
    const printed = lines(run.stderr);
    assert.strictEqual(printed.length, 1, `one line on stderr, got:\n${run.stderr}`);
    assert.match(printed[0], /^render-farm: /);
    assert.match(printed[0], reason);
    assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
}

function closedPort(): Promise<number> {
    return new Promise((resolve) => {
        const server = net.createServer().listen(0, "127.0.0.1", () => {
            const port = (server.address() as net.AddressInfo).port;
            server.close(() => resolve(port));
        });
    });
}

describe("render-farm CLI", function () {
    describe("refuses bad input before starting anything, with one line and its exit code", function () {
        let cwd: string;
        beforeEach(function () {
            cwd = tempDir("input");
        });
        afterEach(function () {
            // Nothing was started for a command that could not run: no local farm data dir.
            assert.ok(!fs.existsSync(path.join(cwd, ".farm")), "no local farm was started");
        });

        it("a missing scene file exits 2", async function () {
            assertOneLineReason(
                await runCli(["render", "no/such/scene.blend"], { cwd }),
                2,
                /scene no\/such\/scene\.blend not found/,
            );
        });

        it("a file named .blend that is not one (by its bytes) exits 2", async function () {
            fs.writeFileSync(path.join(cwd, "notes.blend"), "these are my notes, not a Blender file\n");
            assertOneLineReason(
                await runCli(["render", "notes.blend"], { cwd }),
                2,
                /notes\.blend is not a \.blend file/,
            );
        });

        it("an asset outside the scene's directory exits 2", async function () {
            assertOneLineReason(
                await runCli(["render", CUBE_2016_SCENE, "--assets", "/etc/hostname"], { cwd }),
                2,
                /asset \/etc\/hostname is outside the scene's directory/,
            );
        });

        it("an unreachable --api exits 3", async function () {
            const port = await closedPort();
            assertOneLineReason(
                await runCli(["render", CUBE_2016_SCENE, "--frames", "1", "--api", `http://127.0.0.1:${port}`], {
                    cwd,
                }),
                3,
                new RegExp(`cannot reach the job API at http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`),
            );
        });

        it("--stack without the Pulumi CLI exits 2 and says what to install", async function () {
            // A PATH with node alone: pulumi cannot be found even where it is installed.
            const env = { ...process.env, PATH: path.dirname(process.execPath) };
            assertOneLineReason(
                await runCli(["status", "some-job", "--stack", "dev"], { cwd, env }),
                2,
                /needs the Pulumi CLI, which is not installed/,
            );
        });

        it("a bad option value exits 2 (commander's message, on one line)", async function () {
            assertOneLineReason(
                await runCli(["render", CUBE_2016_SCENE, "--resolution", "wide"], { cwd }),
                2,
                /--resolution.*WIDTHxHEIGHT/,
            );
        });

        it("a local farm setting outside its declared range exits 2, naming the flag and the range", async function () {
            // Every flag and bound: tests/settingsPipeline.test.ts. Here, the shim as users run it.
            const { max } = LOCAL_FARM_SETTINGS.failureBackoffSeconds;
            assertOneLineReason(
                await runCli(["serve", "--failure-backoff", String(max + 1)], { cwd }),
                2,
                new RegExp(`--failure-backoff must be a whole number from 0 to ${max}\\.$`),
            );
        });

        it("--json puts the reason in a JSON document on stdout too", async function () {
            const run = await runCli(["render", "missing.blend", "--json"], { cwd });
            assert.strictEqual(run.code, 2);
            assert.deepStrictEqual(JSON.parse(run.stdout).error.code, "scene_not_found");
        });
    });

    it("renders frames 1-4 of the 2016 scene at 10 % on the embedded local farm and reports the frames' paths (--json)", async function () {
        // As a user would type it, in an empty directory: the farm's data and the frames land there.
        const cwd = tempDir("embedded");
        const run = await runCli(["render", CUBE_2016_SCENE, "--frames", "1-4", "--percentage", "10", "--json"], {
            cwd,
        });
        assert.strictEqual(run.code, 0, run.stderr);
        const report = JSON.parse(run.stdout);
        assert.strictEqual(report.state, "complete");
        assert.deepStrictEqual(report.frames, { total: 4, done: 4, failed: 0, pending: 0 });
        assert.deepStrictEqual(
            report.files.map((file: string) => path.basename(file)),
            ["frame_0001.png", "frame_0002.png", "frame_0003.png", "frame_0004.png"],
        );
        for (const file of report.files as string[]) {
            assert.ok(
                file.startsWith(path.join(fs.realpathSync(cwd), "renders", report.jobId) + path.sep) ||
                    file.startsWith(path.join(cwd, "renders", report.jobId) + path.sep),
                file,
            );
            const png = decodePng(file);
            assert.ok(png.width > 0 && png.width <= 200, `10 % of the scene's width, got ${png.width}`);
        }
        // The embedded farm was stopped: its lock is released, so the next run may start one again.
        assert.ok(!fs.existsSync(path.join(cwd, ".farm", "farm.pid")), "the embedded farm released its data dir");
    });

    describe("against a farm given by --api and --outputs", function () {
        let farm: LocalFarm;
        let target: string[];
        let workDir: string;

        before(async function () {
            workDir = tempDir("farm");
            // One attempt and no backoff: a failing frame is reported failed within seconds.
            farm = await startLocalFarm({
                port: 0,
                dataDir: path.join(workDir, "farm"),
                workers: 2,
                maxReceiveCount: 1,
                failureBackoffSeconds: 0,
                log: () => undefined,
            });
            target = ["--api", farm.apiUrl, "--outputs", path.join(farm.dataDir, "outputs.json")];
        });

        after(async function () {
            await farm?.stop();
        });

        it("exits 1 for a job with a failing frame, naming the frame and why on one line, and delivers the others", async function () {
            const scene = await makeFailingFrameScene();
            const out = path.join(workDir, "failing");
            const run = await runCli([
                "render",
                scene,
                "--frames",
                "1-3",
                "--job-id",
                "cli-failing-frame",
                "--out",
                out,
                "--json",
                ...target,
            ]);
            assert.strictEqual(run.code, 1, run.stderr);
            const reasons = lines(run.stderr).filter((line) => line.startsWith("render-farm: "));
            assert.strictEqual(reasons.length, 1, run.stderr);
            assert.match(reasons[0], /^render-farm: frame 2 failed after 1 attempt\(s\): \S.{10,}/);
            assert.match(
                run.stderr,
                /job cli-failing-frame partial: 2\/3 done, 1 failed.*`render-farm retry cli-failing-frame`/,
            );
            const report = JSON.parse(run.stdout);
            assert.strictEqual(report.state, "partial");
            assert.deepStrictEqual(
                report.failures.map((failure: { frame: number }) => failure.frame),
                [2],
            );
            assert.deepStrictEqual(
                report.files.map((file: string) => path.basename(file)),
                ["frame_0001.png", "frame_0003.png"],
            );
        });

        it("status, download and retry work on that job by its id", async function () {
            const status = await runCli(["status", "cli-failing-frame", "--json", ...target]);
            assert.strictEqual(status.code, 0, status.stderr);
            assert.strictEqual(JSON.parse(status.stdout).state, "partial");

            const dir = path.join(workDir, "download");
            const download = await runCli(["download", "cli-failing-frame", "--out", dir, ...target]);
            assert.strictEqual(download.code, 1, "a frame is missing");
            assert.match(download.stderr, /frame 2 failed/);
            assert.deepStrictEqual(fs.readdirSync(dir).sort(), ["frame_0001.png", "frame_0003.png"]);

            // The retry renders frame 2 again (it fails again: the scene is unchanged) and follows it to the end.
            const retry = await runCli(["retry", "cli-failing-frame", "--json", ...target]);
            assert.strictEqual(retry.code, 1, retry.stderr);
            assert.match(retry.stderr, /requeued 1 failed frame/);
            assert.strictEqual(JSON.parse(retry.stdout).requeued, 1);

            assertOneLineReason(
                await runCli(["status", "no-such-job", ...target]),
                2,
                /no job "no-such-job" on this farm/,
            );
        });

        it("without a terminal prints one line per event, and skips uploading an unchanged scene", async function () {
            const scene = await makeScene({ frames: "1-4", texture: "textures/checker.png" });
            const out = path.join(workDir, "lines");
            const first = await runCli([
                "render",
                scene.blendPath,
                "--assets",
                "textures",
                "--frames",
                "1-3",
                "--out",
                out,
                ...target,
            ]);
            assert.strictEqual(first.code, 0, first.stderr);
            assert.ok(!first.stderr.includes("\x1b["), "no escape codes without a terminal");
            assert.match(first.stderr, /uploaded 2 file\(s\) .*, 0 already there/);
            const events = lines(first.stderr).filter((line) => /^\[\d+:\d\d\] /.test(line));
            assert.match(events[0], /job [0-9a-f-]+: (queued|rendering), 3 frame\(s\)/);
            assert.match(events.find((line) => /3\/3 done/.test(line)) ?? "", /3\/3 done, 0 failed, 0 pending/);
            assert.match(events[events.length - 1], /: complete$/);
            assert.deepStrictEqual(fs.readdirSync(out).sort(), [
                "frame_0001.png",
                "frame_0002.png",
                "frame_0003.png",
                "report.html",
            ]);
            assert.match(first.stdout.trim(), /^3 frame\(s\) in /);

            const second = await runCli([
                "render",
                scene.blendPath,
                "--assets",
                "textures",
                "--frames",
                "4",
                "--out",
                out,
                ...target,
            ]);
            assert.strictEqual(second.code, 0, second.stderr);
            assert.match(second.stderr, /nothing to upload: 2 file\(s\) already there/);
        });

        it("on a terminal draws the progress bar", async function () {
            const scene = await makeScene({ frames: "1-4" });
            const run = await runCliOnTerminal([
                "render",
                scene.blendPath,
                "--frames",
                "1-2",
                "--out",
                path.join(workDir, "tty"),
                ...target,
            ]);
            assert.strictEqual(run.code, 0, run.stdout);
            assert.ok(run.stdout.includes("\x1b["), "escape codes redraw the bar in place");
            assert.match(run.stdout, /\[█{20}\] 2\/2 done, 0 failed \| \d+:\d\d \| ETA 0:00/);
            assert.doesNotMatch(run.stdout, /^\[\d+:\d\d\] /m, "not the plain line format");
        });

        it("uploads a large file in parts and still recognizes it as unchanged (sha256 metadata)", async function () {
            const s3 = createS3Client(farm.outputs);
            const file = path.join(workDir, "cache.bin");
            fs.writeFileSync(file, Buffer.alloc(11 * 1024 * 1024, 7));
            const object = { file, key: "cli-test/cache.bin", size: fs.statSync(file).size };
            const options = { multipartThreshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024 };
            assert.strictEqual(
                (await uploadObjects(s3, farm.outputs.scenesBucket, [object], options)).uploaded.length,
                1,
            );
            const head = await s3.send(new HeadObjectCommand({ Bucket: farm.outputs.scenesBucket, Key: object.key }));
            assert.match(head.ETag ?? "", /-3"?$/, "a three-part upload, whose ETag is no MD5");
            assert.strictEqual(
                (await uploadObjects(s3, farm.outputs.scenesBucket, [object], options)).unchanged.length,
                1,
            );
            // Same size, one byte different: uploaded again.
            const fd = fs.openSync(file, "r+");
            fs.writeSync(fd, Buffer.from([8]), 0, 1, 1234);
            fs.closeSync(fd);
            assert.strictEqual(
                (await uploadObjects(s3, farm.outputs.scenesBucket, [object], options)).uploaded.length,
                1,
            );
            s3.destroy();
        });
    });

    it("signs requests to an AWS farm with SigV4 (execute-api) from the default credential chain", async function () {
        // A stand-in for API Gateway that records what it is sent and answers like the job API.
        const seen: { url?: string; headers: Record<string, string | string[] | undefined> }[] = [];
        const server = http.createServer((request, response) => {
            seen.push({ url: request.url, headers: request.headers });
            response.writeHead(200, { "content-type": "application/json" });
            response.end(
                JSON.stringify({
                    jobId: "signed-job",
                    state: "complete",
                    frames: { total: 1, done: 1, failed: 0, pending: 0 },
                    failures: [],
                    outputPrefix: "renders/signed-job/",
                    startedAt: "",
                    updatedAt: "",
                    renderSeconds: 1,
                    costUsd: 0,
                }),
            );
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        try {
            const dir = tempDir("aws");
            const outputsFile = path.join(dir, "outputs.json");
            // No awsEndpoint: these are a deployed stack's outputs, so the CLI must sign.
            const apiUrl = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
            fs.writeFileSync(
                outputsFile,
                JSON.stringify({
                    apiUrl,
                    scenesBucket: "s",
                    rendersBucket: "r",
                    frameQueueUrl: "",
                    deadLetterQueueUrl: "",
                    rendererFunctionName: "",
                    jobApiFunctionName: "",
                    imageUri: "",
                    region: "eu-west-1",
                }),
            );
            const env = {
                ...process.env,
                AWS_ACCESS_KEY_ID: "AKIDCLITEST",
                AWS_SECRET_ACCESS_KEY: "not-a-real-secret",
                AWS_SESSION_TOKEN: "session-token-for-the-test",
                AWS_CONFIG_FILE: path.join(dir, "no-config"),
                AWS_SHARED_CREDENTIALS_FILE: path.join(dir, "no-credentials"),
            };
            const run = await runCli(["status", "signed-job", "--outputs", outputsFile, "--json"], { env, cwd: dir });
            assert.strictEqual(run.code, 0, run.stderr);
            assert.strictEqual(JSON.parse(run.stdout).state, "complete");
            assert.strictEqual(seen.length, 1);
            assert.strictEqual(seen[0].url, "/jobs/signed-job");
            assert.match(
                String(seen[0].headers.authorization),
                /^AWS4-HMAC-SHA256 Credential=AKIDCLITEST\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$/,
            );
            assert.strictEqual(seen[0].headers["x-amz-security-token"], "session-token-for-the-test");
            assert.match(String(seen[0].headers["x-amz-date"]), /^\d{8}T\d{6}Z$/);
        } finally {
            server.close();
        }
    });

    it("the shim started by an older Node moves to the bundled Node 22", async function () {
        const systemNode = ["/usr/bin/node", "/usr/local/bin/node"].find((candidate) => fs.existsSync(candidate));
        const major = systemNode
            ? Number(
                  require("child_process")
                      .execFileSync(systemNode, ["-p", "process.versions.node.split('.')[0]"])
                      .toString(),
              )
            : 22;
        if (!systemNode || major >= 22) this.skip();
        const run = await runCli(["--version"], { node: systemNode });
        assert.strictEqual(run.code, 0, run.stderr);
        assert.match(run.stdout, /^\d+\.\d+\.\d+ \(Node v22\./);
    });
});

describe("render-farm waiting for big or stuck jobs", function () {
    this.timeout(300_000);
    let farm: LocalFarm;
    let target: string[];
    let workDir: string;

    before(async function () {
        workDir = tempDir("waits");
        // No workers: nothing renders. One attempt and a 2 s frame timeout: a frame in flight is silent at most
        // 30 s (the local queue's visibility) + 2 s + 10 s of margin.
        farm = await startLocalFarm({
            port: 0,
            dataDir: path.join(workDir, "farm"),
            workers: 0,
            maxReceiveCount: 1,
            failureBackoffSeconds: 0,
            frameTimeoutSeconds: 2,
            log: () => undefined,
        });
        target = ["--api", farm.apiUrl, "--outputs", path.join(farm.dataDir, "outputs.json")];
    });

    after(async function () {
        await farm?.stop();
    });

    it("gives up waiting for a job that makes no progress, once no frame in flight can still be silent, with exit 4", async function () {
        const scene = (await makeScene({ frames: "1-2" })).blendPath;
        const run = await runCli(
            ["render", scene, "--job-id", "cli-stalled", "--out", path.join(workDir, "s"), ...target],
            {
                timeoutMs: 180_000,
            },
        );
        assertOneLineReason(
            {
                ...run,
                stderr: lines(run.stderr)
                    .filter((line) => line.startsWith("render-farm: "))
                    .join("\n"),
            },
            4,
            /job cli-stalled made no progress for 0:4\d \(0\/2 done, 0 failed, 2 pending\).*\(42 s\).*`render-farm retry cli-stalled`/,
        );
        assert.ok(run.ms >= 42_000 && run.ms < 120_000, `gave up after ${run.ms} ms`);
    });

    it("status shows the first page of 60 failures and the count of the rest; --all-failures lists every one", async function () {
        const scene = (await makeScene({ frames: "1-60" })).blendPath;
        const submitted = await runCli(["render", scene, "--job-id", "cli-many-failures", "--no-wait", ...target]);
        assert.strictEqual(submitted.code, 0, submitted.stderr);
        const { s3 } = emulatorClients(farm.outputs.awsEndpoint!, farm.outputs.region, {
            accessKeyId: "emulator",
            secretAccessKey: "emulator",
        });
        const ledger = jobLedger(s3, farm.outputs.rendersBucket);
        const at = new Date().toISOString();
        for (let frame = 1; frame <= 60; frame++)
            await ledger.writeFrameRecord({
                jobId: "cli-many-failures",
                frame,
                status: "failed",
                attempts: 1,
                startedAt: at,
                finishedAt: at,
                wallMs: 1,
                blenderMs: 1,
                memoryMb: 0,
                costUsd: 0,
                error: { code: "blender_failed", message: `Blender failed on frame ${frame}` },
                logTail: "",
            });
        const status = await runCli(["status", "cli-many-failures", ...target]);
        assert.strictEqual(status.code, 0, status.stderr);
        const failureLines = lines(status.stdout).filter((line) => /^frame \d+ failed/.test(line));
        assert.strictEqual(failureLines.length, 50, status.stdout);
        assert.match(
            status.stdout,
            /… and 10 more failed frame\(s\): `render-farm status cli-many-failures --all-failures` lists them all/,
        );
        const all = await runCli(["status", "cli-many-failures", "--all-failures", "--json", ...target]);
        assert.strictEqual(all.code, 0, all.stderr);
        const document = JSON.parse(all.stdout);
        assert.deepStrictEqual(
            document.failures.map((failure: { frame: number }) => failure.frame),
            Array.from({ length: 60 }, (_, i) => i + 1),
        );
        assert.strictEqual(document.failuresNext, undefined);
    });
});

describe("render-farm inspect, and render uploading the files a scene references", function () {
    /** What Blender itself says: `expr` evaluated by bpy with the file open, printed as JSON. */
    async function blenderSays(blendPath: string, expr: string): Promise<any> {
        const printed = await run(BLENDER, [
            "-b",
            blendPath,
            "--factory-startup",
            "-noaudio",
            "--disable-autoexec",
            "--python-exit-code",
            "2",
            "--python-expr",
            `import bpy, json, os; print("BPY_SAYS " + json.dumps(${expr}))`,
        ]);
        const line = printed.stdout.split("\n").find((candidate) => candidate.startsWith("BPY_SAYS "));
        assert.ok(line, `Blender printed no answer:\n${printed.stdout}`);
        return JSON.parse(line.slice("BPY_SAYS ".length));
    }

    describe("inspect", function () {
        it("reports the 2016 scene's frame range, resolution, engine and camera as Blender reads them (text and --json)", async function () {
            const bpy = await blenderSays(
                CUBE_2016_SCENE,
                "dict(start=bpy.context.scene.frame_start, end=bpy.context.scene.frame_end, x=bpy.context.scene.render.resolution_x, y=bpy.context.scene.render.resolution_y, pct=bpy.context.scene.render.resolution_percentage, engine=bpy.context.scene.render.engine, camera=bpy.context.scene.camera.name)",
            );
            const json = await runCli(["inspect", CUBE_2016_SCENE, "--json"]);
            assert.strictEqual(json.code, 0, json.stderr);
            assert.strictEqual(json.stderr, "");
            const report = JSON.parse(json.stdout);
            const scene = report.scenes.find((candidate: { name: string }) => candidate.name === report.activeScene);
            assert.deepStrictEqual(
                {
                    start: scene.frameStart,
                    end: scene.frameEnd,
                    x: scene.resolutionX,
                    y: scene.resolutionY,
                    pct: scene.resolutionPercentage,
                    engine: scene.engine,
                    camera: scene.camera,
                },
                bpy,
            );
            assert.deepStrictEqual([report.references, report.problems, report.warnings], [[], [], []]);

            const text = await runCli(["inspect", CUBE_2016_SCENE]);
            assert.strictEqual(text.code, 0, text.stderr);
            const sceneLine =
                lines(text.stdout).find((line) => line.startsWith(`scene "${report.activeScene}" (active`)) ?? "";
            assert.ok(sceneLine.includes(`frames ${bpy.start}-${bpy.end},`), sceneLine);
            assert.ok(
                sceneLine.includes(
                    `${bpy.x}x${bpy.y} at ${bpy.pct}% (${Math.floor((bpy.x * bpy.pct) / 100)}x${Math.floor((bpy.y * bpy.pct) / 100)})`,
                ),
                sceneLine,
            );
            assert.ok(
                sceneLine.includes(`engine ${bpy.engine},`) && sceneLine.includes(`camera "${bpy.camera}"`),
                sceneLine,
            );
            assert.match(text.stdout, /^external files: none$/m);
            assert.match(lines(text.stdout)[0], /saved by Blender 2\.77 .*uncompressed/);
        });

        it("resolves every kind of reference on disk the way Blender does, and flags what the farm cannot get", async function () {
            const scene = await makeReferenceScene();
            // Blender's own answer for each single-file image: does the path it would load exist?
            const bpy: Record<string, boolean> = await blenderSays(
                scene.blendPath,
                "{i.name: os.path.exists(bpy.path.abspath(i.filepath)) for i in bpy.data.images if i.source == 'FILE' and not i.packed_file}",
            );
            assert.deepStrictEqual(bpy, { absolute: true, checker: true, outside: true });
            fs.rmSync(path.join(scene.root, "elsewhere", "out.png"));
            fs.rmSync(path.join(scene.shotDir, "udim", "wood.1002.png"));
            const bpyAfter: Record<string, boolean> = await blenderSays(
                scene.blendPath,
                "{i.name: os.path.exists(bpy.path.abspath(i.filepath)) for i in bpy.data.images if i.source == 'FILE' and not i.packed_file}",
            );

            const run = await runCli(["inspect", scene.blendPath, "--json"]);
            assert.strictEqual(run.code, 0, run.stderr);
            const report = JSON.parse(run.stdout);
            const byName = (name: string) =>
                report.references.filter((reference: { name: string }) => reference.name === name);
            for (const name of Object.keys(bpyAfter))
                assert.strictEqual(byName(name)[0].exists, bpyAfter[name], `image "${name}": exists as Blender says`);
            assert.deepStrictEqual(bpyAfter, { absolute: true, checker: true, outside: false });
            assert.strictEqual(byName("absolute")[0].path, scene.absolutePath);
            assert.strictEqual(byName("absolute")[0].unmirrorable.reason, "absolute");
            assert.strictEqual(byName("outside")[0].path, path.join(scene.root, "elsewhere", "out.png"));
            assert.strictEqual(byName("outside")[0].unmirrorable.reason, "outside-scene");
            assert.deepStrictEqual(byName("checker")[0], {
                kind: "image",
                name: "checker",
                filepath: "//textures/checker.png",
                sequence: false,
                holder: "refs.blend",
                depth: 0,
                path: path.join(scene.shotDir, "textures", "checker.png"),
                exists: true,
                relative: "textures/checker.png",
            });
            assert.deepStrictEqual(byName("sequence")[0].frames, [
                "seq/frame_0001.png",
                "seq/frame_0002.png",
                "seq/frame_0003.png",
            ]);
            assert.deepStrictEqual(
                byName("tiles").map((tile: { tile: number; exists: boolean }) => [tile.tile, tile.exists]),
                [
                    [1001, true],
                    [1002, false],
                ],
            );
            assert.deepStrictEqual(byName("packed"), [], "a packed image needs no file");
            assert.strictEqual(report.problems.length, 1, JSON.stringify(report.problems));
            assert.match(
                report.problems[0],
                /references 1 file\(s\) missing on disk next to it: udim\/wood\.1002\.png \(image "tiles" \(tile 1002\)\)$/,
            );
            assert.strictEqual(report.warnings.length, 2, JSON.stringify(report.warnings));

            const text = await runCli(["inspect", scene.blendPath]);
            assert.strictEqual(text.code, 0, "problems alone do not fail inspect");
            assert.match(
                text.stdout,
                /^ {2}image "tiles": \/\/udim\/wood\.<UDIM>\.png \(TILED, tiles 1001, 1002\) — tiles 1001 found, 1002 MISSING$/m,
            );
            assert.match(
                text.stdout,
                /^ {2}image "sequence": \/\/seq\/frame_0001\.png \(SEQUENCE\) — 3 frame\(s\) found$/m,
            );
            assert.match(text.stdout, /^ {2}image "packed": packed in the \.blend$/m);
            assert.match(
                text.stdout,
                /^ {2}image "outside": \/\/\.\.\/elsewhere\/out\.png \(FILE\) — MISSING; the farm cannot get it \(outside-scene\)$/m,
            );
            assert.match(text.stdout, /^problems \(`render` refuses this scene\):$/m);

            const strict = await runCli(["inspect", scene.blendPath, "--strict"]);
            assert.strictEqual(strict.code, 1, strict.stderr);
            assert.match(strict.stderr, /^render-farm: .*refs\.blend: 3 problem\(s\) or warning\(s\) \(--strict\)\n$/);
        });

        it("shows a scene without a camera as one that cannot render (exit 0; --strict exits 1)", async function () {
            const scene = await makeScene({ noCamera: true });
            const text = await runCli(["inspect", scene.blendPath]);
            assert.strictEqual(text.code, 0, text.stderr);
            assert.match(text.stdout, /camera: none — cannot render$/m);
            assert.match(text.stdout, /has no active camera, so Blender cannot render it/);
            assert.strictEqual((await runCli(["inspect", scene.blendPath, "--strict"])).code, 1);
        });

        it("a missing file, a non-.blend and a truncated .blend each exit 2 with one line (a typed code with --json)", async function () {
            const cwd = tempDir("inspect-bad");
            fs.writeFileSync(path.join(cwd, "notes.blend"), "these are my notes, not a Blender file\n");
            fs.writeFileSync(path.join(cwd, "cut.blend"), fs.readFileSync(CUBE_2016_SCENE).subarray(0, 4000));
            const cases: [string, RegExp, string][] = [
                ["no/such/scene.blend", /^render-farm: scene no\/such\/scene\.blend not found$/, "scene_not_found"],
                [
                    "notes.blend",
                    /^render-farm: notes\.blend is not a readable \.blend file: does not start with "BLENDER"/,
                    "not_a_blend",
                ],
                [
                    "cut.blend",
                    /^render-farm: cut\.blend is not a readable \.blend file: ends inside block/,
                    "truncated",
                ],
            ];
            for (const [file, reason, code] of cases) {
                assertOneLineReason(await runCli(["inspect", file], { cwd }), 2, reason);
                const json = await runCli(["inspect", file, "--json"], { cwd });
                assert.strictEqual(json.code, 2);
                assert.strictEqual(JSON.parse(json.stdout).error.code, code, file);
            }
        });
    });

    describe("render", function () {
        let farm: LocalFarm;
        let target: string[];
        let s3: ReturnType<typeof createS3Client>;
        let workDir: string;

        before(async function () {
            workDir = tempDir("references");
            farm = await startLocalFarm({
                port: 0,
                dataDir: path.join(workDir, "farm"),
                workers: 2,
                maxReceiveCount: 1,
                failureBackoffSeconds: 0,
                log: () => undefined,
            });
            target = ["--api", farm.apiUrl, "--outputs", path.join(farm.dataDir, "outputs.json")];
            s3 = createS3Client(farm.outputs);
        });

        after(async function () {
            s3?.destroy();
            await farm?.stop();
        });

        async function keys(bucket: string, prefix: string): Promise<string[]> {
            const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
            return (listed.Contents ?? []).map((object) => object.Key!).sort();
        }

        /** The textured test scene copied to a fresh directory, with or without its texture. */
        async function texturedCopy(name: string, withTexture: boolean): Promise<string> {
            const scene = await makeScene({ texture: "textures/checker.png" });
            const dir = path.join(tempDir(name), "shot");
            fs.mkdirSync(path.join(dir, "textures"), { recursive: true });
            fs.copyFileSync(scene.blendPath, path.join(dir, "scene.blend"));
            if (withTexture) fs.copyFileSync(scene.texturePath!, path.join(dir, "textures", "checker.png"));
            return path.join(dir, "scene.blend");
        }

        it("uploads the scene's texture without --assets, and the frame shows it as `blender -b -f` does", async function () {
            const blendPath = await texturedCopy("auto-texture", true);
            const out = path.join(workDir, "auto-texture");
            const run = await runCli([
                "render",
                blendPath,
                "--frames",
                "1",
                "--prefix",
                "auto-texture",
                "--out",
                out,
                "--json",
                ...target,
            ]);
            assert.strictEqual(run.code, 0, run.stderr);
            assert.match(
                run.stderr,
                /^found 1 file\(s\) the scene references next to it \(uploaded with it\): textures\/checker\.png$/m,
            );
            const report = JSON.parse(run.stdout);
            assert.deepStrictEqual(report.upload.referenced, ["auto-texture/textures/checker.png"]);
            const head = await s3.send(
                new HeadObjectCommand({ Bucket: farm.outputs.scenesBucket, Key: "auto-texture/textures/checker.png" }),
            );
            assert.strictEqual(
                head.ContentLength,
                fs.statSync(path.join(path.dirname(blendPath), "textures", "checker.png")).size,
            );

            const direct = await renderDirect(blendPath, 1, tempDir("auto-texture-direct"));
            const comparison = comparePngs(path.join(out, "frame_0001.png"), direct);
            assert.ok(comparison.sameShape, "same size and pixel format");
            assert.strictEqual(
                comparison.differingSamples,
                0,
                `${comparison.differingSamples} samples differ (max ${comparison.maxDifference})`,
            );
        });

        it("refuses a scene whose texture is missing on disk, listing it, before uploading or submitting anything", async function () {
            const blendPath = await texturedCopy("missing-texture", false);
            const run = await runCli([
                "render",
                blendPath,
                "--frames",
                "1",
                "--prefix",
                "missing-texture",
                "--job-id",
                "cli-missing-texture",
                ...target,
            ]);
            assertOneLineReason(
                run,
                2,
                /scene\.blend references 1 file\(s\) missing on disk next to it: textures\/checker\.png \(image "checker"\); put them there, or pass --allow-missing/,
            );
            assert.deepStrictEqual(await keys(farm.outputs.scenesBucket, "missing-texture/"), [], "nothing uploaded");
            assert.deepStrictEqual(
                await keys(farm.outputs.rendersBucket, "jobs/cli-missing-texture/"),
                [],
                "no job submitted",
            );

            // --allow-missing submits with a warning; the farm's preflight then refuses the job itself.
            const allowed = await runCli([
                "render",
                blendPath,
                "--frames",
                "1",
                "--prefix",
                "missing-texture",
                "--job-id",
                "cli-missing-texture",
                "--allow-missing",
                ...target,
            ]);
            assert.strictEqual(allowed.code, 2, allowed.stderr);
            assert.match(
                allowed.stderr,
                /^render-farm: warning: .*textures\/checker\.png \(image "checker"\); submitting anyway \(--allow-missing\)/m,
            );
            assert.match(lines(allowed.stderr).pop()!, /^render-farm: .*missing-texture\/textures\/checker\.png/);
            assert.deepStrictEqual(await keys(farm.outputs.scenesBucket, "missing-texture/"), [
                "missing-texture/scene.blend",
            ]);
            assert.deepStrictEqual(await keys(farm.outputs.rendersBucket, "jobs/cli-missing-texture/"), []);
        });

        it("uploads sequence frames and UDIM tiles found on disk, and with --allow-missing warns about paths it cannot mirror", async function () {
            const scene = await makeReferenceScene();
            const run = await runCli([
                "render",
                scene.blendPath,
                "--frames",
                "1",
                "--prefix",
                "refs",
                "--job-id",
                "cli-references",
                "--allow-missing",
                "--json",
                ...target,
            ]);
            // The outside path leads to "elsewhere/out.png" in the bucket, which the farm's preflight requires.
            assert.strictEqual(run.code, 2, run.stderr);
            const warnings = lines(run.stderr).filter((line) => line.startsWith("render-farm: warning: "));
            assert.strictEqual(warnings.length, 2, run.stderr);
            assert.match(
                warnings[0],
                /image "absolute": ".*abs\.png" is an absolute path.*; the farm fails the frames that use it \(missing_files\)$/,
            );
            assert.match(
                warnings[1],
                /image "outside": "\/\/\.\.\/elsewhere\/out\.png" is outside the scene's directory .*; the farm refuses the job unless its scenes bucket already has elsewhere\/out\.png$/,
            );
            assert.strictEqual(JSON.parse(run.stdout).error.code, "missing_objects");
            assert.deepStrictEqual(await keys(farm.outputs.scenesBucket, "refs/"), [
                "refs/refs.blend",
                "refs/seq/frame_0001.png",
                "refs/seq/frame_0002.png",
                "refs/seq/frame_0003.png",
                "refs/textures/checker.png",
                "refs/udim/wood.1001.png",
                "refs/udim/wood.1002.png",
            ]);
            assert.deepStrictEqual(
                await keys(farm.outputs.scenesBucket, "elsewhere/"),
                [],
                "nothing outside the scene's directory is uploaded",
            );
        });

        it("refuses a scene without a camera with one line, before starting any farm", async function () {
            const scene = await makeScene({ noCamera: true });
            const cwd = tempDir("no-camera");
            assertOneLineReason(
                await runCli(["render", scene.blendPath, "--frames", "1"], { cwd }),
                2,
                /scene "Scene" has no active camera, so Blender cannot render it/,
            );
            assert.ok(!fs.existsSync(path.join(cwd, ".farm")), "no local farm was started");
        });
    });
});
