// The Debian-root `blender` wrapper (scripts/debian-blender-run.sh) behaves like an installed Blender for the
// farm: same process, exit status, streams, signals and paths, and it leaves nothing behind. Run only by
// scripts/test-debian-blender.sh (root, a built root, BLENDER_PATH set), so it is outside npm test's glob.
import * as assert from "assert";
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const WRAPPER = process.env.BLENDER_PATH ?? "";
const ROOT = path.join(path.dirname(path.dirname(WRAPPER)), "root");
const BACKGROUND = ["-b", "--factory-startup", "-noaudio", "--python-exit-code", "2"];

/** Runs `code` in the wrapper's Blender and collects what comes back. */
function runPython(
    code: string,
    cwd = process.cwd(),
): Promise<{ status: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
        const child = spawn(WRAPPER, [...BACKGROUND, "--python-expr", code], {
            cwd,
            stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        child.on("error", reject);
        child.on("close", (status) => resolve({ status, stdout, stderr }));
    });
}

/** Resolves with the first `PID n` line the process prints. */
function printedPid(child: ChildProcess): Promise<number> {
    return new Promise((resolve, reject) => {
        let text = "";
        child.stdout!.on("data", (chunk: Buffer) => {
            text += chunk.toString();
            const match = /^PID (\d+)$/m.exec(text);
            if (match) resolve(Number(match[1]));
        });
        child.on("close", () => reject(new Error(`exited before printing its pid:\n${text}`)));
    });
}

/** True while the process runs (a zombie waiting to be reaped has already ended). */
function running(pid: number): boolean {
    try {
        return fs.readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "")[0] !== "Z";
    } catch {
        return false;
    }
}

async function waitUntilGone(pid: number, ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
        if (!running(pid)) return true;
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return !running(pid);
}

const SLEEP_AND_PRINT_PID = "import os, sys, time; print('PID %d' % os.getpid()); sys.stdout.flush(); time.sleep(120)";

describe("the Debian-root blender wrapper", function () {
    this.timeout(120_000);

    before(() => {
        assert.ok(
            WRAPPER && fs.existsSync(path.join(ROOT, "usr", "bin", "blender")),
            `BLENDER_PATH must be a wrapper built by scripts/debian-blender.sh, got ${JSON.stringify(WRAPPER)}`,
        );
    });

    it("passes Blender's exit status, stdout and stderr through", async () => {
        const result = await runPython("import sys; print('TO-STDOUT'); sys.stderr.write('TO-STDERR\\n'); sys.exit(7)");
        assert.strictEqual(result.status, 7, result.stderr);
        assert.match(result.stdout, /^TO-STDOUT$/m);
        assert.match(result.stderr, /^TO-STDERR$/m);
    });

    it("shows the host's temp dir and working directory at their own paths, and starts in the working directory", async () => {
        const work = fs.mkdtempSync(path.join(os.tmpdir(), "debian-blender-wrapper-"));
        fs.writeFileSync(path.join(work, "from-host.txt"), "host bytes");
        const here = path.resolve(__dirname);
        const code = [
            "import os",
            `print('READ ' + open(${JSON.stringify(path.join(work, "from-host.txt"))}).read())`,
            `open(${JSON.stringify(path.join(work, "from-blender.txt"))}, 'w').write('blender bytes')`,
            "print('CWD ' + os.getcwd())",
            "print('HERE ' + ' '.join(sorted(os.listdir('.'))))",
        ].join("; ");
        const result = await runPython(code, here);
        assert.strictEqual(result.status, 0, result.stderr);
        assert.match(result.stdout, /^READ host bytes$/m);
        assert.strictEqual(fs.readFileSync(path.join(work, "from-blender.txt"), "utf8"), "blender bytes");
        assert.ok(result.stdout.includes(`CWD ${here}\n`), result.stdout);
        assert.ok(result.stdout.includes(`HERE ${fs.readdirSync(here).sort().join(" ")}\n`), result.stdout);
        fs.rmSync(work, { recursive: true, force: true });
    });

    it("leaves nothing mounted on the host and the cached root as it was", async () => {
        const mountsBefore = fs.readFileSync("/proc/self/mountinfo", "utf8");
        const rootBefore = fs.readdirSync(ROOT).sort();
        const result = await runPython(
            "open('/root/written-inside.txt', 'w').write('x'); import os; os.makedirs('/opt/made-inside', exist_ok=True)",
        );
        assert.strictEqual(result.status, 0, result.stderr);
        assert.strictEqual(fs.readFileSync("/proc/self/mountinfo", "utf8"), mountsBefore);
        assert.deepStrictEqual(fs.readdirSync(ROOT).sort(), rootBefore);
        assert.ok(
            !fs.existsSync(path.join(ROOT, "root", "written-inside.txt")),
            "a file Blender wrote to the root's /root is in the cache",
        );
        assert.ok(
            !fs.existsSync(path.join(ROOT, "opt", "made-inside")),
            "a directory Blender made under the root's /opt is in the cache",
        );
    });

    it("is the very process its caller started: a SIGKILL to that pid ends Blender", async () => {
        const child = spawn(WRAPPER, [...BACKGROUND, "--python-expr", SLEEP_AND_PRINT_PID], {
            stdio: ["ignore", "pipe", "pipe"],
        });
        const pid = await printedPid(child);
        assert.strictEqual(pid, child.pid, "Blender runs under another pid than the one spawned");
        const closed = new Promise<string | null>((resolve) => child.on("close", (_status, signal) => resolve(signal)));
        child.kill("SIGKILL");
        assert.strictEqual(await closed, "SIGKILL");
        assert.ok(await waitUntilGone(pid, 5_000), `Blender (pid ${pid}) still runs`);
    });

    it("leaves no Blender behind when the process that started it is killed", async () => {
        // sh starts the wrapper and waits; killing sh orphans Blender unless the wrapper ties Blender to its parent.
        const parent = spawn(
            "/bin/sh",
            ["-c", '"$0" "$@" & wait', WRAPPER, ...BACKGROUND, "--python-expr", SLEEP_AND_PRINT_PID],
            { stdio: ["ignore", "pipe", "pipe"] },
        );
        const pid = await printedPid(parent);
        assert.notStrictEqual(pid, parent.pid);
        assert.ok(running(pid));
        parent.kill("SIGKILL");
        assert.ok(await waitUntilGone(pid, 5_000), `Blender (pid ${pid}) outlived the process that started it`);
    });
});
