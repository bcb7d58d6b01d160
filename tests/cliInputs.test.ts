// What `render-farm render` uploads and refuses: a prefix no other project's folder shares, the files linked
// libraries need (resolved next to each library), and paths the farm can never get (absolute, outside the
// scene's folder) refused unless --allow-missing.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { planSceneFiles } from "../cli/sceneFiles";
import { createS3Client } from "../cli/storage";
import { LocalFarm, startLocalFarm } from "../local/farm";
import { runCli } from "./support/cliRunner";
import { filesUnder, libraryFixtures } from "./support/libraryFixtures";
import { makeReferenceScene } from "./support/referenceScene";
import { comparePngs, renderDirect } from "./support/scenes";

function tempDir(name: string): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), `cli-inputs-${name}-`));
}

function lines(text: string): string[] {
    return text.split(/\r?\n/).filter((line) => line.trim() !== "");
}

/** A copy of the library fixtures at `<new temp dir>/<folder>/`. */
async function copyOfLibraries(folder: string): Promise<string> {
    const source = await libraryFixtures();
    const dir = path.join(tempDir(folder), folder);
    for (const file of filesUnder(source)) {
        fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
        fs.copyFileSync(path.join(source, file), path.join(dir, file));
    }
    return dir;
}

describe("render-farm render: what it uploads, and under which keys", function () {
    it("uploads each folder under its own prefix: two projects both called shot/ never share keys, and one folder always maps to the same prefix", async function () {
        const first = await copyOfLibraries("shot");
        const second = await copyOfLibraries("shot");
        const a = planSceneFiles(path.join(first, "linked.blend"));
        const b = planSceneFiles(path.join(second, "linked.blend"));
        assert.match(a.prefix, /^shot-[0-9a-f]{10}$/);
        assert.match(b.prefix, /^shot-[0-9a-f]{10}$/);
        assert.notStrictEqual(a.prefix, b.prefix);
        assert.notStrictEqual(a.scene.key, b.scene.key);
        assert.strictEqual(planSceneFiles(path.join(first, "linked.blend")).prefix, a.prefix, "stable");
        // The same folder reached through another path (a symlink) is the same folder.
        const link = path.join(tempDir("link"), "elsewhere");
        fs.symlinkSync(first, link);
        assert.strictEqual(planSceneFiles(path.join(link, "linked.blend")).prefix, a.prefix);
        assert.strictEqual(
            planSceneFiles(path.join(first, "linked.blend"), [], "mine/shot").scene.key,
            "mine/shot/linked.blend",
        );
        // A folder name with spaces and punctuation stays readable.
        const odd = path.join(tempDir("odd"), "My Shot (v2)");
        fs.mkdirSync(odd);
        fs.copyFileSync(path.join(first, "linked.blend"), path.join(odd, "linked.blend"));
        assert.match(planSceneFiles(path.join(odd, "linked.blend")).prefix, /^My-Shot-v2-[0-9a-f]{10}$/);
    });

    describe("against a local farm", function () {
        let farm: LocalFarm;
        let target: string[];
        let s3: ReturnType<typeof createS3Client>;

        before(async function () {
            farm = await startLocalFarm({
                port: 0,
                dataDir: path.join(tempDir("farm"), "farm"),
                workers: 1,
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

        async function keys(prefix: string): Promise<string[]> {
            const listed = await s3.send(
                new ListObjectsV2Command({ Bucket: farm.outputs.scenesBucket, Prefix: prefix }),
            );
            return (listed.Contents ?? []).map((object) => object.Key!).sort();
        }

        it("uploads what linked libraries need, resolved next to each library, and the frame renders as `blender -f` does", async function () {
            const dir = await copyOfLibraries("shot");
            const prefix = planSceneFiles(path.join(dir, "linked.blend")).prefix;
            const out = tempDir("linked-out");
            const run = await runCli(["render", path.join(dir, "linked.blend"), "--out", out, "--json", ...target]);
            assert.strictEqual(run.code, 0, run.stderr);
            const report = JSON.parse(run.stdout);
            assert.strictEqual(report.upload.scene, `${prefix}/linked.blend`);
            assert.deepStrictEqual(
                [...report.upload.referenced].sort(),
                ["lib/deep/deep.blend", "lib/deep/tex/deep.png", "lib/mid.blend", "lib/tex/mid.png"].map(
                    (file) => `${prefix}/${file}`,
                ),
            );
            assert.deepStrictEqual(
                await keys(`${prefix}/`),
                [`${prefix}/linked.blend`, ...report.upload.referenced].sort(),
            );
            const comparison = comparePngs(
                path.join(out, "frame_0001.png"),
                await renderDirect(path.join(dir, "linked.blend"), 1, tempDir("linked-direct")),
            );
            assert.ok(comparison.sameShape);
            assert.strictEqual(comparison.differingSamples, 0, `max difference ${comparison.maxDifference}`);
        });

        it("refuses an absolute path, even inside a linked library, before uploading anything; --allow-missing submits with a warning", async function () {
            const dir = await copyOfLibraries("absolute");
            const prefix = planSceneFiles(path.join(dir, "absolute-lib.blend")).prefix;
            const refused = await runCli(["render", path.join(dir, "absolute-lib.blend"), ...target]);
            assert.strictEqual(refused.code, 2, refused.stderr);
            assert.strictEqual(lines(refused.stderr).length, 1, refused.stderr);
            assert.match(
                refused.stderr,
                /^render-farm: .*absolute-lib\.blend references 1 file\(s\) `render` cannot upload, so the farm would lack them: \/\S+\/abs\/plate\.png \(image "plate\.png" in library lib\/absolute\.blend: an absolute path\); .*pass --allow-missing to submit anyway$/m,
            );
            assert.deepStrictEqual(await keys(`${prefix}/`), [], "nothing uploaded");

            const allowed = await runCli([
                "render",
                path.join(dir, "absolute-lib.blend"),
                "--allow-missing",
                "--no-wait",
                ...target,
            ]);
            assert.strictEqual(allowed.code, 0, allowed.stderr);
            assert.match(
                allowed.stderr,
                /^render-farm: warning: image "plate\.png" in library lib\/absolute\.blend: ".*\/abs\/plate\.png" is an absolute path.*; the farm fails the frames that use it \(missing_files\)$/m,
            );
            assert.deepStrictEqual(await keys(`${prefix}/`), [
                `${prefix}/absolute-lib.blend`,
                `${prefix}/lib/absolute.blend`,
            ]);
        });

        it("refuses the scene's own absolute and outside-the-folder paths the same way", async function () {
            const scene = await makeReferenceScene();
            const refused = await runCli([
                "render",
                scene.blendPath,
                "--frames",
                "1",
                "--prefix",
                "refs-refused",
                ...target,
            ]);
            assert.strictEqual(refused.code, 2, refused.stderr);
            assert.strictEqual(lines(refused.stderr).length, 1, refused.stderr);
            assert.match(
                refused.stderr,
                /references 2 file\(s\) `render` cannot upload, so the farm would lack them: \S+abs\.png \(image "absolute": an absolute path\), \/\/\.\.\/elsewhere\/out\.png \(image "outside": outside the scene's folder\);/,
            );
            assert.deepStrictEqual(await keys("refs-refused/"), [], "nothing uploaded");
        });
    });
});
