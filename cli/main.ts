// The `render-farm` command: commander parses the arguments, each command lives in its own module,
// and every failure ends as one line on stderr (plus a JSON document with --json) and an exit code.
import * as fs from "fs";
import * as path from "path";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import {
    DEFAULT_FAIL_FAST_FRAMES,
    MAX_TILES,
    MIN_TILES,
    ENGINES,
    Engine,
    FORMATS,
    Format,
    JOB_ID_PATTERN,
    parseFrameSpec,
} from "../functions/shared/contract";
import { FARM_SETTINGS, WholeNumberRange, wholeNumberProblem } from "../functions/shared/farmSettings";
import { LOCAL_FARM_SETTINGS } from "../local/localSettings";
import { CliError, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, oneLine } from "./errors";
import { estimateCommand } from "./estimate";
import { cancelCommand, downloadCommand, retryCommand, statusCommand } from "./jobCommands";
import { Output } from "./output";
import { inspectCommand } from "./inspect";
import { renderCommand } from "./render";
import { reportCommand } from "./report/reportCommand";
import { Session } from "./session";
import { DEFAULT_DATA_DIR } from "./target";
import { workerCommand } from "./worker";
import { terminalSafe, terminalSafeLines } from "./terminalText";

const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** The exit code for a failure the command did not anticipate: a bug, reported without a stack trace. */
const EXIT_INTERNAL = 70;

function packageVersion(): string {
    for (let dir = __dirname; ; dir = path.dirname(dir)) {
        const file = path.join(dir, "package.json");
        if (fs.existsSync(file)) {
            const json = JSON.parse(fs.readFileSync(file, "utf8")) as { name?: string; version?: string };
            if (json.name === "render-farm") return json.version ?? "0.0.0";
        }
        if (path.dirname(dir) === dir) return "0.0.0";
    }
}

// ---- argument parsers (commander reports their errors as usage errors) ----------------------

/** A whole number `range` accepts: a setting's (functions/shared/farmSettings.ts, local/localSettings.ts), or a request field's. */
function wholeNumber(label: string, range: WholeNumberRange) {
    return (value: string): number => {
        const problem = wholeNumberProblem(/^\d+$/.test(value.trim()) ? Number(value) : Number.NaN, range);
        if (problem) throw new InvalidArgumentError(`${label} ${problem}.`);
        return Number(value);
    };
}

function positiveInt(label: string, max = Number.MAX_SAFE_INTEGER) {
    return wholeNumber(label, { min: 1, max });
}

/** A flag's help, with the default it stands for. */
function withDefault(help: string, fallback: number | string): string {
    return `${help} (default ${fallback})`;
}

/** The default of the stack setting a local farm's flag stands for. */
function stackDefault(key: keyof typeof FARM_SETTINGS): string {
    return `${FARM_SETTINGS[key].defaultValue}, as a stack's ${key}`;
}

/** --max-cost: US dollars, more than 0. */
function dollars(label: string) {
    return (value: string): number => {
        const number = Number(value.trim().replace(/^\$/, ""));
        if (!/^\$?\d+(\.\d+)?$/.test(value.trim()) || !(number > 0) || number > 1_000_000)
            throw new InvalidArgumentError(`${label} must be an amount of US dollars above 0, e.g. 2.50.`);
        return number;
    };
}

/** --tiles: MIN_TILES to MAX_TILES, or "auto". */
function tileCount(value: string): number | "auto" {
    if (value.trim().toLowerCase() === "auto") return "auto";
    const number = Number(value);
    if (!/^\d+$/.test(value.trim()) || number < MIN_TILES || number > MAX_TILES)
        throw new InvalidArgumentError(`--tiles must be a whole number from ${MIN_TILES} to ${MAX_TILES}, or auto.`);
    return number;
}

function nonNegativeInt(label: string) {
    return (value: string): number => {
        if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`${label} must be a whole number >= 0.`);
        return Number(value);
    };
}

function oneOf<T extends string>(label: string, allowed: readonly T[]) {
    return (value: string): T => {
        const upper = value.trim().toUpperCase().replace(/^EXR$/, "OPEN_EXR") as T;
        if (!allowed.includes(upper)) throw new InvalidArgumentError(`${label} must be one of ${allowed.join(", ")}.`);
        return upper;
    };
}

function resolution(value: string): { x: number; y: number } {
    const match = /^(\d{1,5})[xX](\d{1,5})$/.exec(value.trim());
    if (!match || Number(match[1]) < 1 || Number(match[2]) < 1)
        throw new InvalidArgumentError("use WIDTHxHEIGHT, e.g. 1920x1080.");
    return { x: Number(match[1]), y: Number(match[2]) };
}

function frameSpec(value: string): string {
    const parsed = parseFrameSpec(value, Number.MAX_SAFE_INTEGER);
    if (!parsed.ok) throw new InvalidArgumentError(`${parsed.error.message}.`);
    return value.trim();
}

function jobId(value: string): string {
    if (!JOB_ID_PATTERN.test(value)) throw new InvalidArgumentError("a job id is 1-64 characters of a-z, 0-9 and '-'.");
    return value;
}

/** The options that describe a job: what render submits, and what estimate prices. */
function withJobOptions(command: Command): Command {
    return command
        .option(
            "--assets <paths...>",
            "files or directories the scene uses (under the scene's directory), e.g. textures/",
            collect,
        )
        .option("--frames <spec>", 'frames to render: "1-250", "1-250x2" (every 2nd), "1,5,10-20"', frameSpec)
        .option(
            "--engine <engine>",
            `render engine: ${ENGINES.join(", ")} (default: the scene's)`,
            oneOf<Engine>("--engine", ENGINES),
        )
        .option("--samples <n>", "render samples (default: the scene's)", positiveInt("--samples"))
        .option("--resolution <WxH>", "resolution, e.g. 1920x1080 (default: the scene's)", resolution)
        .option(
            "--percentage <n>",
            "resolution percentage, 1-100 (default: the scene's)",
            positiveInt("--percentage", 100),
        )
        .option("--format <format>", `image format: ${FORMATS.join(", ")}`, oneOf<Format>("--format", FORMATS), "PNG")
        .option("--out <dir>", "where the frames go (default: renders/<jobId>)")
        .option("--job-id <id>", "the job's id (an idempotency key: resubmitting it queues nothing new)", jobId)
        .option(
            "--prefix <key>",
            "key prefix in the scenes bucket (default: the scene directory's name and a hash of its path, e.g. shot-3f9c0a12be)",
        )
        .option(
            "--allow-missing",
            "submit even when files the scene references are missing on disk or cannot be uploaded (absolute paths, paths outside the scene's folder): warns instead of exiting 2",
        )
        .option(
            "--max-cost <usd>",
            "the job's budget in US dollars: no frame starts once it would be spent, and the job ends stopped_budget",
            dollars("--max-cost"),
        )
        .option(
            "--tiles <n>",
            `split every frame into <n> regions (${MIN_TILES}-${MAX_TILES}) rendered apart and stitched exactly, or "auto" (sized from the job's estimate: pass its --job-id)`,
            tileCount,
        )
        .option(
            "--fail-fast <n>",
            `stop the job once <n> frames failed with the same error and none is done; 0 never stops (default ${DEFAULT_FAIL_FAST_FRAMES})`,
            nonNegativeInt("--fail-fast"),
        );
}

/** Repeated and variadic --assets values add up (commander passes no previous value the first time). */
function collect(value: string, previous: string[]): string[] {
    return [...(previous ?? []), value];
}

// ---- the program ----------------------------------------------------------------------------

function withTargetOptions(command: Command): Command {
    return command
        .addOption(new Option("--api <url>", "the farm's job API URL (with --outputs for its buckets)"))
        .addOption(new Option("--outputs <file>", "the farm's stack outputs as JSON (`pulumi stack output --json`)"))
        .addOption(
            new Option("--stack <name>", "a deployed stack: reads `pulumi stack output --json --stack NAME`").conflicts(
                ["api", "outputs"],
            ),
        )
        .option(
            "--data-dir <dir>",
            `the local farm's data dir, used when no --api/--outputs/--stack is given`,
            DEFAULT_DATA_DIR,
        )
        .option(
            "--workers <n>",
            "frames the local farm started for this run renders at once",
            wholeNumber("--workers", LOCAL_FARM_SETTINGS.renderingWorkers),
        )
        .option("--json", "print one JSON document on stdout when done")
        .option("--verbose", "show the local farm's log lines");
}

export interface RunIo {
    stdout?: NodeJS.WritableStream;
    stderr?: NodeJS.WritableStream & { isTTY?: boolean };
    /** How a Ctrl-C ends the process (default process.exit). */
    exit?: (code: number) => void;
}

/** Runs the CLI on `argv` (as process.argv: node, script, args…) and resolves to the exit code. */
export async function run(argv: string[], io: RunIo = {}): Promise<number> {
    const stderr = io.stderr ?? process.stderr;
    let exitCode = EXIT_OK;

    /** Runs one command's body: a CliError becomes its one-line reason and exit code. */
    const act = async (json: boolean | undefined, body: (session: Session) => Promise<number>) => {
        const wantsJson = json === true;
        const output = new Output(wantsJson, io.stdout ?? process.stdout, stderr);
        const current = new Session(output);
        const onSignal = () => void current.interrupt(io.exit ?? ((code) => process.exit(code)));
        // SIGHUP too: a closed terminal must still stop an embedded farm and its Blender processes.
        for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
        try {
            exitCode = await body(current);
        } catch (error) {
            const known = error instanceof CliError;
            exitCode = known ? error.exitCode : EXIT_INTERNAL;
            const message = known ? error.message : `unexpected error: ${oneLine(error)}`;
            output.problem(message);
            if (wantsJson) output.result({ error: { code: known ? error.code : "internal", message, exitCode } }, []);
        } finally {
            for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
            await current.close().catch((error) => output.problem(`stopping the farm: ${oneLine(error)}`));
        }
    };

    const program = new Command("render-farm")
        .description(
            "Render Blender scenes on a serverless render farm (AWS Lambda) or on a local farm on this machine.",
        )
        .version(`${packageVersion()} (Node ${process.version})`, "-V, --version")
        // Usage errors are one line, like every other reason the CLI gives.
        .configureOutput({
            writeErr: (text) => stderr.write(terminalSafeLines(text)),
            outputError: (text, write) => write(`render-farm: ${text.replace(/^error: /, "")}`),
        })
        .exitOverride();

    withTargetOptions(
        withJobOptions(
            program
                .command("render")
                .description("upload a scene and its assets, render frames, download them; exits 1 if any frame failed")
                .argument("<scene>", "the .blend file"),
        ).option("--no-wait", "submit and print the job id without waiting"),
    ).action((scene: string, flags) => act(flags.json, (session) => renderCommand(session, scene, flags)));

    withTargetOptions(
        withJobOptions(
            program
                .command("estimate")
                .description(
                    "price a job before rendering it: renders probe frames (first, last, middle; more when their times disagree) on the farm at the job's settings, prints render time, GB-seconds, cost and wall time as ranges, writes quote.json; the probe frames are kept for the job",
                )
                .argument("<scene>", "the .blend file"),
        ),
    ).action((scene: string, flags) => act(flags.json, (session) => estimateCommand(session, scene, flags)));

    program
        .command("inspect")
        .description(
            "show what a .blend holds (scenes, frame range, resolution, engine, camera) and the files it needs, found on disk or not; no Blender needed",
        )
        .argument("<scene>", "the .blend file")
        .option("--json", "print the file's summary and where each referenced file is on disk as one JSON document")
        .option(
            "--strict",
            "exit 1 when anything is flagged: no camera, missing files, or paths the farm cannot mirror",
        )
        .action((scene: string, flags) => act(flags.json, (session) => inspectCommand(session.output, scene, flags)));

    withTargetOptions(
        program
            .command("status")
            .description("show a job's progress and failures (the first page of them; --all-failures for every one)")
            .argument("<jobId>")
            .option("--all-failures", "fetch and list every failed frame, page after page"),
    ).action((id: string, flags) => act(flags.json, (session) => statusCommand(session, id, flags)));

    withTargetOptions(
        program
            .command("download")
            .description("download a job's rendered frames; exits 1 unless every frame is there")
            .argument("<jobId>")
            .option("--out <dir>", "where the frames go (default: renders/<jobId>)"),
    ).action((id: string, flags) => act(flags.json, (session) => downloadCommand(session, id, flags)));

    withTargetOptions(
        program
            .command("report")
            .description(
                "write report.html beside a job's frames (downloading those not there yet): contact sheet, timeline, render seconds and cost per frame, the quote beside the actual, failures with their logs, an MP4 preview",
            )
            .argument("<jobId>")
            .option("--out <dir>", "where the frames and report.html go (default: renders/<jobId>)"),
    ).action((id: string, flags) => act(flags.json, (session) => reportCommand(session, id, flags)));

    withTargetOptions(
        program
            .command("cancel")
            .description(
                "cancel a job: frames not yet rendered never are; frames rendering now finish and are kept (a cancel again changes nothing)",
            )
            .argument("<jobId>"),
    ).action((id: string, flags) => act(flags.json, (session) => cancelCommand(session, id, flags)));

    withTargetOptions(
        program
            .command("retry")
            .description("render a job's failed (and lost) frames again, and follow it to the end")
            .argument("<jobId>")
            .option("--no-wait", "requeue and return at once"),
    ).action((id: string, flags) => act(flags.json, (session) => retryCommand(session, id, flags)));

    program
        .command("serve")
        .description("run the local farm (S3/SQS emulator, job API, renderers) until Ctrl-C")
        .option(
            "--port <n>",
            withDefault("job API port (0 = any free port)", LOCAL_FARM_SETTINGS.port.defaultValue),
            wholeNumber("--port", LOCAL_FARM_SETTINGS.port),
        )
        .option("--host <address>", "listen address (default 127.0.0.1; anything else exposes the farm)")
        .option(
            "--workers <n>",
            "frames rendered at once (default: one per CPU); 0 leaves the rendering to `render-farm worker` processes",
            wholeNumber("--workers", LOCAL_FARM_SETTINGS.workers),
        )
        .option("--data-dir <dir>", "where the farm keeps its buckets, queues and outputs.json", DEFAULT_DATA_DIR)
        .option(
            "--max-receive-count <n>",
            withDefault("attempts per frame before it is dead-lettered", stackDefault("maxReceiveCount")),
            wholeNumber("--max-receive-count", LOCAL_FARM_SETTINGS.maxReceiveCount),
        )
        .option(
            "--failure-backoff <seconds>",
            withDefault("delay before a failed frame's retry", stackDefault("failureBackoffSeconds")),
            wholeNumber("--failure-backoff", LOCAL_FARM_SETTINGS.failureBackoffSeconds),
        )
        .option("--blender <path>", "the Blender executable (default: blender on PATH)")
        .addOption(
            new Option(
                "--runtime <kind>",
                "inprocess: the handlers in this process (fast); lambda: the shipped job API archive and the renderer image's task root under the Lambda runtime client (a source checkout only)",
            )
                .choices(["inprocess", "lambda"])
                .default("inprocess"),
        )
        .option(
            "--frame-timeout <seconds>",
            withDefault("longest a frame may render", stackDefault("rendererTimeout")),
            wholeNumber("--frame-timeout", LOCAL_FARM_SETTINGS.frameTimeoutSeconds),
        )
        .option(
            "--no-preflight",
            "queue jobs without reading their scenes first (as a stack with preflight off): requests must name their frames",
        )
        .option("--json", "print the farm's outputs as JSON once it listens")
        .action(async (flags) => {
            try {
                const { runServe } = await import("../local/serve");
                await runServe({
                    port: flags.port,
                    host: flags.host,
                    workers: flags.workers,
                    dataDir: flags.dataDir,
                    maxReceiveCount: flags.maxReceiveCount,
                    failureBackoffSeconds: flags.failureBackoff,
                    blenderPath: flags.blender,
                    runtime: flags.runtime,
                    frameTimeoutSeconds: flags.frameTimeout,
                    preflight: flags.preflight,
                    json: flags.json,
                    // The farm's log names scenes, files and Blender's errors: shown, never sent to the terminal raw.
                    log: (line) => stderr.write(`${terminalSafe(line)}\n`),
                });
            } catch (error) {
                const code = (error as NodeJS.ErrnoException).code;
                stderr.write(`render-farm: the local farm could not run: ${terminalSafe(oneLine(error))}\n`);
                exitCode = code === "EADDRINUSE" ? EXIT_USAGE : EXIT_UNREACHABLE;
            }
        });

    program
        .command("worker")
        .description(
            "render frames for a local farm running on this machine (e.g. `render-farm serve --workers 0`), in this process, until Ctrl-C or until the farm stops",
        )
        .option(
            "--data-dir <dir>",
            "the running farm's data dir (its outputs.json says where its queue and buckets are)",
            DEFAULT_DATA_DIR,
        )
        .option(
            "--workers <n>",
            "frames rendered at once (default: one per CPU)",
            wholeNumber("--workers", LOCAL_FARM_SETTINGS.renderingWorkers),
        )
        .option(
            "--failure-backoff <seconds>",
            withDefault("delay before a failed frame's retry", stackDefault("failureBackoffSeconds")),
            wholeNumber("--failure-backoff", LOCAL_FARM_SETTINGS.failureBackoffSeconds),
        )
        .option("--blender <path>", "the Blender executable (default: blender on PATH)")
        .option("--json", "print one JSON line (pid, workers, work dir, the farm's endpoints) once the workers poll")
        .action(async (flags) => {
            exitCode = await workerCommand(flags, stderr);
        });

    try {
        await program.parseAsync(argv);
    } catch (error) {
        if (error instanceof CommanderError) {
            // --help and --version end here too, successfully.
            return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
        }
        throw error;
    }
    return exitCode;
}

/** Flushes stdout and stderr, then exits: pipes must not lose the JSON document, and idle sockets must not keep the process alive. */
function exitAfterFlush(code: number): void {
    let pending = 2;
    const done = () => {
        if (--pending === 0) process.exit(code);
    };
    process.stdout.write("", done);
    process.stderr.write("", done);
}

/** Node 22 warns that node:sqlite (the local farm's persistence) is experimental: noise to a CLI user. */
function quietSqliteWarning(): void {
    const listeners = process.listeners("warning");
    process.removeAllListeners("warning");
    process.on("warning", (warning) => {
        if (warning.name === "ExperimentalWarning" && /SQLite/i.test(warning.message)) return;
        for (const listener of listeners) listener(warning);
    });
}

/** The entry point cli/render-farm.js calls. */
export function main(): void {
    quietSqliteWarning();
    run(process.argv).then(exitAfterFlush, (error) => {
        process.stderr.write(`render-farm: unexpected error: ${terminalSafe(oneLine(error))}\n`);
        exitAfterFlush(EXIT_INTERNAL);
    });
}
