// Strings from scenes and from the farm reach the user's terminal: the CLI shows their control characters as
// escapes and never sends them. A crafted .blend (tests/fixtures/make_escape_scene.py) carries an OSC title
// change, a clear-screen, a C1 CSI, a carriage return and a right-to-left override in an image's name and path.
import * as assert from "assert";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { PassThrough } from "stream";
import type { JobStatus } from "../functions/shared/contract";
import { Output } from "../cli/output";
import { createProgressReporter } from "../cli/progress";
import { failureLines } from "../cli/jobReport";
import { runCli } from "./support/cliRunner";
import { BLENDER, run } from "./support/scenes";

const MAKE_ESCAPE_SCENE = path.join(__dirname, "fixtures", "make_escape_scene.py");
/** What make_escape_scene.py puts in the image's name and path. */
const HOSTILE = "\x1b]0;owned\x07\x1b[2J\u009b31m\r\u202e";
/** Anything a terminal could act on; newline separates the CLI's lines and is allowed between them. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

function assertNoRawControls(text: string, what: string): void {
    const match = RAW_CONTROL.exec(text);
    assert.ok(
        !match,
        `${what} carries U+${match?.[0].charCodeAt(0).toString(16).padStart(4, "0")} raw: ${JSON.stringify(text)}`,
    );
}

function collector(): { stream: PassThrough; text: () => string } {
    const stream = new PassThrough();
    let text = "";
    stream.on("data", (chunk) => (text += chunk));
    return { stream, text: () => text };
}

const hostileStatus: JobStatus = {
    jobId: "escape",
    state: "partial",
    frames: { total: 2, done: 1, failed: 1, pending: 0 },
    failures: [
        {
            frame: 2,
            attempts: 3,
            error: `missing_files: scene uses textures/tex${HOSTILE}.png`,
            logTail: `Fra:2 | Syncing ${HOSTILE}\nError: cannot read tex${HOSTILE}.png\n`,
        },
    ],
    outputPrefix: "renders/escape/",
    startedAt: "2025-01-01T00:00:00.000Z",
    updatedAt: "2025-01-01T00:00:05.000Z",
    renderSeconds: 1,
    costUsd: 0,
};

describe("terminal output: control characters from scenes and the farm are shown, never sent", function () {
    let scenePath: string;

    before(async function () {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "terminal-output-"));
        scenePath = path.join(dir, "escape.blend");
        await run(BLENDER, [
            "-b",
            "--factory-startup",
            "-noaudio",
            "--python-exit-code",
            "2",
            "-P",
            MAKE_ESCAPE_SCENE,
            "--",
            "--out",
            scenePath,
        ]);
    });

    it("inspect prints the crafted image's name and path with visible escapes; --json keeps the exact strings", async function () {
        const text = await runCli(["inspect", scenePath]);
        assert.strictEqual(text.code, 0, text.stderr);
        assertNoRawControls(text.stdout, "inspect's stdout");
        assertNoRawControls(text.stderr, "inspect's stderr");
        assert.ok(
            text.stdout.includes("tex\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\x0d\\u202e"),
            `the name is shown escaped:\n${text.stdout}`,
        );

        const json = await runCli(["inspect", scenePath, "--json"]);
        assert.strictEqual(json.code, 0, json.stderr);
        assertNoRawControls(json.stdout, "inspect --json");
        const images = JSON.stringify(JSON.parse(json.stdout));
        assert.ok(
            images.includes(JSON.stringify(`//textures/tex${HOSTILE}.png`).slice(1, -1)),
            "the JSON value is exact",
        );
    });

    it("render's warnings about the crafted path, and its refusal, are escaped", async function () {
        const closed = await new Promise<number>((resolve) => {
            const server = net.createServer().listen(0, "127.0.0.1", () => {
                const port = (server.address() as net.AddressInfo).port;
                server.close(() => resolve(port));
            });
        });
        // The crafted path is no storable key: render refuses it (exit 2), naming it escaped...
        const refused = await runCli(["render", scenePath, "--api", `http://127.0.0.1:${closed}`]);
        assert.strictEqual(refused.code, 2, refused.stderr);
        assert.match(refused.stderr, /image "tex\\x1b\]0;owned/);
        assertNoRawControls(refused.stderr, "render's refusal");
        // ...and with --allow-missing warns about it, escaped, before it finds no farm there (exit 3).
        const result = await runCli(["render", scenePath, "--allow-missing", "--api", `http://127.0.0.1:${closed}`]);
        assert.strictEqual(result.code, 3, result.stderr);
        assert.match(result.stderr, /warning: image "tex\\x1b\]0;owned/);
        assertNoRawControls(result.stderr, "render's stderr");
    });

    it("status prints a farm's failure lines (error and Blender's last log line) escaped", async function () {
        // A farm whose status echoes what a scene put in its frame's error and log.
        const server = http.createServer((_request, response) => {
            const body = JSON.stringify(hostileStatus);
            response.writeHead(200, { "content-type": "application/json" }).end(body);
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
        try {
            const api = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
            const result = await runCli(["status", "escape", "--api", api]);
            assert.strictEqual(result.code, 0, result.stderr);
            assertNoRawControls(result.stdout, "status's stdout");
            assert.match(result.stdout, /frame 2 failed after 3 attempt\(s\): missing_files: .*tex\\x1b\]0;owned/);
            const json = await runCli(["status", "escape", "--api", api, "--json"]);
            assertNoRawControls(json.stdout, "status --json");
            assert.deepStrictEqual(JSON.parse(json.stdout).failures, hostileStatus.failures);
        } finally {
            await new Promise((resolve) => server.close(resolve));
        }
    });

    it("the progress lines and bar, and every Output channel, escape what they are given", function () {
        const lines = collector();
        const lineReporter = createProgressReporter({ stream: lines.stream, tty: false });
        lineReporter.update({ ...hostileStatus, state: "rendering", failures: [] });
        lineReporter.update(hostileStatus);
        lineReporter.stop();
        assertNoRawControls(lines.text(), "the progress lines");
        assert.match(lines.text(), /frame 2 failed after 3 attempt\(s\): missing_files: .*\\x1b\]0;owned/);

        const bar = collector();
        const barReporter = createProgressReporter({ stream: bar.stream, tty: true });
        barReporter.update({ ...hostileStatus, jobId: `j${HOSTILE}` });
        barReporter.stop();
        assert.ok(
            !bar.text().includes("\x1b]0;owned"),
            `the bar draws the job id escaped: ${JSON.stringify(bar.text())}`,
        );

        const stdout = collector();
        const stderr = collector();
        const output = new Output(false, stdout.stream, stderr.stream);
        output.note(`note ${HOSTILE}`);
        for (const line of failureLines(hostileStatus)) output.problem(line);
        output.result({}, [`line ${HOSTILE}`, "second line"]);
        assertNoRawControls(stdout.text() + stderr.text(), "Output");
        assert.strictEqual(stdout.text().split("\n").length, 3, "two result lines, each still one line");
        const json = collector();
        new Output(true, json.stream, stderr.stream).result({ name: HOSTILE }, []);
        assertNoRawControls(json.text(), "Output's JSON");
        assert.deepStrictEqual(JSON.parse(json.text()), { name: HOSTILE });
    });
});
