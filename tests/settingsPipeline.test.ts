// Everything that takes or shows a farm setting follows its one declaration (functions/shared/farmSettings.ts,
// local/localSettings.ts): the README's configuration table, Pulumi.yaml, the CLI's flags and the local farm's
// options. (The stack's config and the functions' environment: tests/infrastructure.test.ts, farmSettings.test.ts.)
// No Blender, no emulator.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Writable } from "stream";
import * as yaml from "js-yaml";
import { run } from "../cli/main";
import { FARM_SETTINGS, FarmSetting, WholeNumberRange } from "../functions/shared/farmSettings";
import { startLocalFarm } from "../local/farm";
import { LOCAL_FARM_SETTINGS } from "../local/localSettings";
import { startRemoteWorkers } from "../local/remoteWorkers";
import {
    configTable,
    PULUMI_YAML,
    PulumiConfigType,
    pulumiYamlWithConfig,
    README,
    readmeWithTable,
    TABLE_HEADER,
    TABLE_MARKER,
} from "../scripts/configDocs";
import { CUBE_2016_SCENE } from "./support/scenes";

const STACK_CONFIG = path.join(path.dirname(PULUMI_YAML), "Pulumi.dev.yaml");
const REGENERATE = "run `npm run docs:config` after changing functions/shared/farmSettings.ts";

/** Pulumi's type for each kind of setting, as the project file reference names them. */
const PULUMI_TYPES: Record<FarmSetting["kind"], PulumiConfigType> = {
    wholeNumber: "integer",
    switch: "boolean",
    choice: "string",
    version: "string",
    engines: "array",
};

/** Whether Pulumi takes `value` as one of `type` (its workspace ValidateConfigValue, for a stack's or a default). */
function pulumiAccepts(type: string, items: { type: string } | undefined, value: unknown): boolean {
    if (type === "string") return typeof value === "string";
    if (type === "integer") return Number.isInteger(value) || (typeof value === "string" && /^[+-]?\d+$/.test(value));
    if (type === "boolean") return typeof value === "boolean" || value === "true" || value === "false";
    return (
        Array.isArray(value) && items !== undefined && value.every((item) => pulumiAccepts(items.type, undefined, item))
    );
}

/** The README's configuration table: its cells, row by row, under the marker. */
function readmeTableRows(): string[][] {
    const lines = fs.readFileSync(README, "utf8").split("\n");
    const start = lines.indexOf(TABLE_MARKER);
    assert.ok(start >= 0, `README.md has the marker line: ${REGENERATE}`);
    const rows: string[][] = [];
    for (let index = start + 1; index < lines.length && lines[index].startsWith("|"); index++)
        rows.push(
            lines[index]
                .slice(1, -1)
                .split(" | ")
                .map((cell) => cell.trim()),
        );
    return rows;
}

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
    describe("the configuration's documentation", function () {
        it("the README's table is the one the declaration makes", function () {
            const readme = fs.readFileSync(README, "utf8");
            assert.ok(readme.includes(configTable()), REGENERATE);
            assert.strictEqual(readmeWithTable(readme), readme, REGENERATE);
        });

        it("the README's table shows every key once, with its type, default, range and description", function () {
            const [header, , ...rows] = readmeTableRows();
            assert.deepStrictEqual(header, TABLE_HEADER);
            assert.deepStrictEqual(
                rows.map((row) => row[0]),
                Object.keys(FARM_SETTINGS).map((key) => `\`${key}\``),
                REGENERATE,
            );
            for (const [key, setting] of Object.entries<FarmSetting>(FARM_SETTINGS)) {
                const [, type, shownDefault, allowed, description] = rows.find((row) => row[0] === `\`${key}\``)!;
                assert.strictEqual(
                    type,
                    PULUMI_TYPES[setting.kind] === "array" ? "list of strings" : PULUMI_TYPES[setting.kind],
                    key,
                );
                const defaults = Array.isArray(setting.defaultValue) ? setting.defaultValue : [setting.defaultValue];
                for (const value of defaults)
                    assert.ok(shownDefault.includes(`\`${value}\``), `${key}: ${shownDefault}`);
                if (setting.kind === "wholeNumber") {
                    const range = setting.oneOf ? setting.oneOf.join(", ") : `${setting.min}–${setting.max}`;
                    assert.ok(allowed.includes(range), `${key}: ${allowed} shows ${range}`);
                }
                if (setting.kind === "choice")
                    for (const choice of setting.choices)
                        assert.ok(allowed.includes(`\`${choice}\``), `${key}: ${allowed}`);
                assert.strictEqual(description, setting.description, key);
            }
        });

        it("Pulumi.yaml declares every key with Pulumi's type, the declared default and description, and no other", function () {
            const text = fs.readFileSync(PULUMI_YAML, "utf8");
            assert.strictEqual(pulumiYamlWithConfig(text), text, REGENERATE);
            const project = yaml.load(text) as { name: string; config: Record<string, any> };
            const ownKeys = Object.keys(project.config).filter((key) => !key.includes(":"));
            assert.deepStrictEqual(ownKeys, Object.keys(FARM_SETTINGS));
            for (const [key, setting] of Object.entries<FarmSetting>(FARM_SETTINGS)) {
                const declared = project.config[key];
                assert.strictEqual(declared.type, PULUMI_TYPES[setting.kind], key);
                assert.deepStrictEqual(
                    declared.items,
                    setting.kind === "engines" ? { type: "string" } : undefined,
                    key,
                );
                assert.deepStrictEqual(declared.default, setting.defaultValue, key);
                assert.ok(
                    pulumiAccepts(declared.type, declared.items, declared.default),
                    `${key}: Pulumi takes its default`,
                );
                assert.ok(declared.description.startsWith(setting.description.replace(/`/g, "")), key);
            }
            // Another namespace's key may carry a value only (Pulumi refuses a type or a default there).
            for (const key of Object.keys(project.config).filter((name) => name.includes(":")))
                assert.deepStrictEqual(Object.keys(project.config[key]), ["value"], key);
        });

        it("Pulumi.dev.yaml sets only declared keys, each a value Pulumi takes for its declared type", function () {
            const stack = yaml.load(fs.readFileSync(STACK_CONFIG, "utf8")) as { config: Record<string, unknown> };
            const project = yaml.load(fs.readFileSync(PULUMI_YAML, "utf8")) as { config: Record<string, any> };
            const own = Object.entries(stack.config).filter(([key]) => key.startsWith("render-farm:"));
            assert.ok(own.length > 0);
            for (const [fullKey, value] of own) {
                const key = fullKey.slice("render-farm:".length);
                assert.ok(key in FARM_SETTINGS, `${fullKey} is declared in functions/shared/farmSettings.ts`);
                const declared = project.config[key];
                assert.ok(pulumiAccepts(declared.type, declared.items, value), `${fullKey}: ${JSON.stringify(value)}`);
            }
        });
    });

    describe("the CLI and the local farm", function () {
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
                            startRemoteWorkers({
                                [option]: value,
                                dataDir: path.join(cwd, "farm"),
                                log: () => undefined,
                            }),
                            new RegExp(
                                `^Error: ${option} must be a whole number from ${range.min} to ${range.max}, got ${value}$`,
                            ),
                        );
                    }
                }
            });
        });
    });
});
