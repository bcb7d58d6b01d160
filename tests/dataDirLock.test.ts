// One local farm per data dir, and one owner per farm: the data dir's lock taken over from a dead farm by exactly
// one of many processes starting at once, and a farm that one CLI command started for its own run never used
// (and so never lost half-way) by another command.
import * as assert from "assert";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LOCK_FILE, lockDataDir } from "../local/dataDirLock";
import { runCli, SHIM } from "./support/cliRunner";
import { makeScene } from "./support/scenes";

const ROOT = path.join(__dirname, "..");

/** The pid of a process that has exited: what a farm killed without cleaning up leaves in its lock. */
function deadPid(): number {
    const child = spawnSync("true");
    assert.ok(child.pid, "spawned a process");
    return child.pid!;
}

/** A process that takes the lock when told "go" on stdin, says whether it got it, and holds it until stdin closes. */
function contender(dataDir: string): { child: ChildProcess; said: Promise<string>; ready: Promise<void> } {
    const script = `
        const { lockDataDir } = require(${JSON.stringify(path.join(ROOT, "local", "dataDirLock"))});
        process.stdout.write("ready\\n");
        let input = "";
        process.stdin.on("data", (chunk) => {
            input += chunk;
            if (input !== "go\\n") return;
            try {
                lockDataDir(${JSON.stringify(dataDir)});
                process.stdout.write("got\\n");
            } catch (error) {
                process.stdout.write("refused " + error.message + "\\n");
            }
        });
        process.stdin.on("end", () => process.exit(0));`;
    const child = spawn(process.execPath, ["-r", "ts-node/register/transpile-only", "-e", script], {
        cwd: ROOT,
        stdio: ["pipe", "pipe", "inherit"],
    });
    let stdout = "";
    let onReady: () => void;
    const ready = new Promise<void>((resolve) => (onReady = resolve));
    const said = new Promise<string>((resolve) => {
        child.stdout!.on("data", (chunk) => {
            stdout += chunk;
            if (stdout.startsWith("ready\n")) onReady();
            const lines = stdout.split("\n");
            if (lines.length > 2) resolve(lines[1]);
        });
        child.on("exit", () => resolve(stdout.split("\n")[1] ?? `exited: ${stdout}`));
    });
    return { child, said, ready };
}

describe("the data dir's lock and the farm's owner", function () {
    it("a stale lock is taken over by exactly one of 6 processes starting at once (6 rounds)", async function () {
        const rounds: string[][] = [];
        for (let round = 0; round < 6; round++) {
            const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lock-race-"));
            fs.writeFileSync(path.join(dataDir, LOCK_FILE), `${deadPid()}\n`);
            const contenders = Array.from({ length: 6 }, () => contender(dataDir));
            await Promise.all(contenders.map((each) => each.ready));
            for (const each of contenders) each.child.stdin!.write("go\n");
            const said = await Promise.all(contenders.map((each) => each.said));
            for (const each of contenders) each.child.stdin!.end();
            await Promise.all(contenders.map((each) => new Promise((resolve) => each.child.once("exit", resolve))));
            rounds.push(said);
            assert.deepStrictEqual(
                fs.readdirSync(dataDir).filter((name) => name.includes("takeover")),
                [],
                "no takeover file left",
            );
        }
        const summary = rounds.map(
            (said) =>
                `${said.filter((line) => line === "got").length} got, ${said.filter((line) => /is in use by another local farm/.test(line)).length} refused as in use, others: ${JSON.stringify(said.filter((line) => line !== "got" && !/is in use by another local farm/.test(line)))}`,
        );
        assert.deepStrictEqual(
            summary,
            Array(6).fill("1 got, 5 refused as in use, others: []"),
            `per round:\n${summary.join("\n")}`,
        );
    });

    it("a lock whose taker died mid-takeover is still taken over", function () {
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lock-takeover-"));
        const stale = deadPid();
        fs.writeFileSync(path.join(dataDir, LOCK_FILE), `${stale}\n`);
        fs.writeFileSync(path.join(dataDir, `${LOCK_FILE}.takeover-${stale}`), `${deadPid()}\n`);
        const lock = lockDataDir(dataDir);
        assert.strictEqual(fs.readFileSync(path.join(dataDir, LOCK_FILE), "utf8").trim(), String(process.pid));
        assert.deepStrictEqual(fs.readdirSync(dataDir).sort(), [LOCK_FILE]);
        lock.release();
        assert.deepStrictEqual(fs.readdirSync(dataDir), []);
    });

    it("a second command in the same directory refuses the farm the first started for its own run, which finishes undisturbed", async function () {
        const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "embedded-owner-"));
        const scene = await makeScene({ frames: "1-3", resolutionX: 320, resolutionY: 240, samples: 16 });
        fs.mkdirSync(path.join(cwd, "shot"));
        fs.copyFileSync(scene.blendPath, path.join(cwd, "shot", "scene.blend"));
        const first = spawn(
            process.execPath,
            [SHIM, "render", "shot/scene.blend", "--frames", "1-3", "--workers", "1", "--job-id", "first"],
            { cwd, stdio: ["ignore", "pipe", "pipe"] },
        );
        let firstErr = "";
        first.stderr!.on("data", (chunk) => (firstErr += chunk));
        const firstExit = new Promise<number | null>((resolve) => first.on("exit", (code) => resolve(code)));
        try {
            // The first command's farm is up once it has submitted its job.
            const deadline = Date.now() + 120_000;
            while (!/job first: /.test(firstErr) && !/\[\d+:\d+\] job first/.test(firstErr)) {
                assert.ok(Date.now() < deadline, `the first render never submitted: ${firstErr}`);
                assert.strictEqual(first.exitCode, null, `the first render ended early: ${firstErr}`);
                await new Promise((resolve) => setTimeout(resolve, 200));
            }
            const second = await runCli(["status", "first"], { cwd });
            assert.strictEqual(second.code, 3, `second command: ${second.stdout}${second.stderr}`);
            assert.match(
                second.stderr,
                new RegExp(
                    `in use by \`render-farm render\` \\(process ${first.pid}\\), which started a local farm for its own run.*render-farm serve`,
                ),
            );
            assert.strictEqual(await firstExit, 0, firstErr);
        } finally {
            if (first.exitCode === null) first.kill("SIGINT");
            await firstExit;
        }
    });
});
