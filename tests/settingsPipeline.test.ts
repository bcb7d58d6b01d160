// Everything that takes or shows a farm setting follows its one declaration (functions/shared/farmSettings.ts,
// local/localSettings.ts): the CLI's flags and the local farm's options. No Blender, no emulator.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Writable } from "stream";
import { run } from "../cli/main";
import { FARM_SETTINGS, WholeNumberRange } from "../functions/shared/farmSettings";
import { startLocalFarm } from "../local/farm";
import { LOCAL_FARM_SETTINGS } from "../local/localSettings";
import { startRemoteWorkers } from "../local/remoteWorkers";
import { CUBE_2016_SCENE } from "./support/scenes";

/** `render-farm <args>` in this process: its exit code and what it wrote on stderr. */
async function cli(args: string[]): Promise<{ code: number; stderr: string }> {
    let stderr = "";
    const sink = new Writable({
        write(chunk, _encoding, done) {
            stderr += chunk;
            done();
        },
    });
    const code = await run(["node", "render-farm", ...args], { stderr: sink, stdout: sink });
    return { code, stderr };
}

/** `render-farm <command> --help` as printed (commander writes help to the process's stdout). */
async function helpOf(command: string): Promise<string> {
    let printed = "";
    const write = process.stdout.write;
    process.stdout.write = ((chunk: string | Uint8Array) => {
        printed += chunk.toString();
        return true;
    }) as typeof process.stdout.write;
    try {
        assert.strictEqual((await cli([command, "--help"])).code, 0);
    } finally {
        process.stdout.write = write;
    }
    return printed.replace(/\s+/g, " ");
}

/** The whole numbers just outside a range. */
function outside(range: WholeNumberRange): number[] {
    return [range.min - 1, range.max + 1].filter((value) => value >= 0);
}

describe("the settings pipeline", function () {
    let cwd: string;
    let initialCwd: string;
    beforeEach(function () {
        initialCwd = process.cwd();
        cwd = fs.mkdtempSync(path.join(os.tmpdir(), "settings-pipeline-"));
        process.chdir(cwd);
    });
    afterEach(function () {
        process.chdir(initialCwd);
        assert.deepStrictEqual(fs.readdirSync(cwd), [], "nothing was started: no data dir");
    });

    describe("the CLI's flags", function () {
        const local = LOCAL_FARM_SETTINGS;
        const flags: [string[], string, WholeNumberRange][] = [
            [["serve"], "--port", local.port],
            [["serve"], "--workers", local.workers],
            [["serve"], "--max-receive-count", local.maxReceiveCount],
            [["serve"], "--failure-backoff", local.failureBackoffSeconds],
            [["serve"], "--frame-timeout", local.frameTimeoutSeconds],
            [["worker"], "--workers", local.renderingWorkers],
            [["worker"], "--failure-backoff", local.failureBackoffSeconds],
            [["render", CUBE_2016_SCENE], "--workers", local.renderingWorkers],
            [["status", "some-job"], "--workers", local.renderingWorkers],
        ];
        for (const [command, flag, range] of flags) {
            it(`${command[0]} ${flag} refuses what its setting does not allow, naming the flag and the range`, async function () {
                for (const value of [...outside(range), "ten"]) {
                    const { code, stderr } = await cli([...command, flag, String(value)]);
                    assert.strictEqual(code, 2, `${flag} ${value}: ${stderr}`);
                    assert.match(
                        stderr,
                        new RegExp(
                            `^render-farm: .*'${value}' is invalid\\. ${flag} must be a whole number from ${range.min} to ${range.max}\\.\\n$`,
                        ),
                    );
                }
            });
        }

        it("stands for the stack's settings with the stack's ranges and defaults", async function () {
            assert.deepStrictEqual(local.maxReceiveCount, FARM_SETTINGS.maxReceiveCount);
            assert.deepStrictEqual(local.failureBackoffSeconds, FARM_SETTINGS.failureBackoffSeconds);
            assert.strictEqual(local.frameTimeoutSeconds.max, FARM_SETTINGS.rendererTimeout.max);
            assert.strictEqual(local.frameTimeoutSeconds.defaultValue, FARM_SETTINGS.rendererTimeout.defaultValue);
            const serve = await helpOf("serve");
            for (const [flag, key] of [
                ["--max-receive-count", "maxReceiveCount"],
                ["--failure-backoff", "failureBackoffSeconds"],
                ["--frame-timeout", "rendererTimeout"],
            ] as const) {
                const shown = `(default ${FARM_SETTINGS[key].defaultValue}, as a stack's ${key})`;
                assert.ok(serve.includes(shown), `serve --help shows ${flag}'s default ${shown}: ${serve}`);
            }
            const worker = await helpOf("worker");
            assert.ok(
                worker.includes(
                    `(default ${FARM_SETTINGS.failureBackoffSeconds.defaultValue}, as a stack's failureBackoffSeconds)`,
                ),
                worker,
            );
        });
    });

    describe("the local farm's options", function () {
        const options: [string, WholeNumberRange][] = [
            ["port", LOCAL_FARM_SETTINGS.port],
            ["workers", LOCAL_FARM_SETTINGS.workers],
            ["maxReceiveCount", LOCAL_FARM_SETTINGS.maxReceiveCount],
            ["failureBackoffSeconds", LOCAL_FARM_SETTINGS.failureBackoffSeconds],
            ["frameTimeoutSeconds", LOCAL_FARM_SETTINGS.frameTimeoutSeconds],
        ];
        for (const [option, range] of options) {
            it(`startLocalFarm refuses a ${option} its setting does not allow, before starting anything`, async function () {
                for (const value of [...outside(range), range.min + 0.5]) {
                    await assert.rejects(
                        startLocalFarm({ [option]: value, dataDir: path.join(cwd, "farm"), log: () => undefined }),
                        new RegExp(
                            `^Error: ${option} must be a whole number from ${range.min} to ${range.max}, got ${value}$`,
                        ),
                    );
                }
            });
        }

        it("startRemoteWorkers refuses workers and a failureBackoffSeconds their settings do not allow", async function () {
            const cases: [string, WholeNumberRange][] = [
                ["workers", LOCAL_FARM_SETTINGS.renderingWorkers],
                ["failureBackoffSeconds", LOCAL_FARM_SETTINGS.failureBackoffSeconds],
            ];
            for (const [option, range] of cases) {
                for (const value of outside(range)) {
                    await assert.rejects(
                        startRemoteWorkers({ [option]: value, dataDir: path.join(cwd, "farm"), log: () => undefined }),
                        new RegExp(
                            `^Error: ${option} must be a whole number from ${range.min} to ${range.max}, got ${value}$`,
                        ),
                    );
                }
            }
        });
    });
});
