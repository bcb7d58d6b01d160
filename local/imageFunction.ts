// The renderer image's function on this host, made by following image/Dockerfile: its build stage's COPY and
// RUN lines (its package.json from the cache, its tsconfig compiled with its TypeScript), its final stage's
// COPY destinations, ENV, WORKDIR, ENTRYPOINT and CMD. Paths inside the image are mapped to host paths:
//   /var/task (LAMBDA_TASK_ROOT)  -> a task root directory here
//   /tmp                          -> a directory private to this function (Lambda's /tmp is per sandbox)
//   /usr/local/bin/node           -> the project's Node 22 (the base image's node, same major)
//   /opt/blender/blender          -> this host's Blender (not the official build the image downloads)
//   the ENTRYPOINT's path          -> the repository file the Dockerfile COPYs there, run in place (not a copy)
import * as childProcess from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as util from "util";
import { envPairs, execForm, Instruction, lastInstruction, parseDockerfile, Stage } from "./dockerfile";
import { cacheRoot, ImagePackages } from "./imagePackages";
import { LambdaSandboxOptions } from "./lambdaSandbox";

const execFile = util.promisify(childProcess.execFile);

export interface ImageFunctionOptions {
    projectRoot: string;
    /** Default image/Dockerfile; a test may pass another Dockerfile's text (e.g. an older one). */
    dockerfileText?: string;
    packages: ImagePackages;
    /** The Node that runs the function; its major must match the final stage's base image. */
    node: string;
    /** This host's Blender, standing in for the image's /opt/blender/blender. */
    blenderPath: string;
    /** An empty directory for the task root and /tmp (the build stage is cached beside the image packages). */
    scratch: string;
}

export interface ImageFunction {
    /** ENTRYPOINT with image paths mapped to host paths; Lambda starts ENTRYPOINT + CMD. */
    entrypoint: string[];
    /** e.g. ["renderer/handler.handler"]. */
    cmd: string[];
    /** The image's ENV, paths mapped (LAMBDA_TASK_ROOT is the task root here, HOME the private /tmp). */
    environment: Record<string, string>;
    /** WORKDIR, mapped. */
    workdir: string;
    taskRoot: string;
    /** Stands in for the sandbox's /tmp. */
    tmpDir: string;
    /** A directory whose `node` is the runtime's Node: first on the PATH, as /usr/local/bin is in the base image. */
    binDir: string;
    /** What the image puts where, as read from the Dockerfile: image path -> host path. */
    mapped: Record<string, string>;
}

/** The final stage's base image must be Node's (node:<major>-...), of the runtime Node's major. */
function checkBaseImage(final: Stage, nodeVersion: string): void {
    const match = /^node:(\d+)/.exec(final.from);
    if (!match) throw new Error(`the image's base is ${final.from}; this emulation knows only node:<major> images`);
    const major = nodeVersion.replace(/^v/, "").split(".")[0];
    if (match[1] !== major)
        throw new Error(
            `the image's base is ${final.from} but the Node here is ${nodeVersion}; they must share a major`,
        );
}

/** Splits a RUN line's shell command into its `&&`-joined commands. */
function commandsOf(instruction: Instruction): string[] {
    return instruction.args
        .split(/\s*&&\s*/)
        .map((command) => command.replace(/\s+/g, " ").trim())
        .filter(Boolean);
}

function unknownRun(stage: Stage, instruction: Instruction, command: string): Error {
    return new Error(
        `image/Dockerfile line ${instruction.line} (stage ${stage.name}): RUN "${command}" is not one local/imageFunction.ts knows how to reproduce; teach it`,
    );
}

/** Follows a build stage whose output the final stage copies: COPY from the project, npm install/prune from the cache, tsc. */
async function buildStage(stage: Stage, options: ImageFunctionOptions, stageDir: string): Promise<string> {
    const workdir = lastInstruction(stage, "WORKDIR")?.args;
    if (!workdir) throw new Error(`the Dockerfile's stage ${stage.name} has no WORKDIR`);
    const inStage = (target: string) => path.join(stageDir, path.posix.resolve(workdir, target).slice(workdir.length));
    fs.mkdirSync(stageDir, { recursive: true });
    const imagePackageJson = fs.readFileSync(path.join(options.projectRoot, "image", "package.json"));
    const linkModules = (modules: string) => {
        fs.rmSync(path.join(stageDir, "node_modules"), { force: true, recursive: true });
        fs.symlinkSync(modules, path.join(stageDir, "node_modules"), "dir");
    };
    for (const instruction of stage.instructions) {
        if (instruction.keyword === "COPY") {
            if (instruction.flags.from)
                throw new Error(`stage ${stage.name} copies from ${instruction.flags.from}: not supported here`);
            const [source, target] = instruction.args.split(/\s+/);
            const destination = inStage(target);
            fs.mkdirSync(target.endsWith("/") ? destination : path.dirname(destination), { recursive: true });
            fs.cpSync(path.join(options.projectRoot, source), destination, { recursive: true });
            continue;
        }
        if (instruction.keyword !== "RUN") continue;
        for (const command of commandsOf(instruction)) {
            // The system tools it installs (g++, cmake, python3) are the host's own.
            if (/^(apt-get|rm -rf \/var\/lib\/apt\/lists)/.test(command)) continue;
            if (/^npm (install|ci)\b/.test(command)) {
                if (!fs.readFileSync(path.join(stageDir, "package.json")).equals(imagePackageJson))
                    throw new Error(`stage ${stage.name} installs a package.json that is not image/package.json`);
                linkModules(options.packages.build);
                continue;
            }
            const tsc = /^npx tsc -p (\S+)$/.exec(command);
            if (tsc) {
                // Its own TypeScript (image/package.json's), as `npx tsc` in the stage finds it.
                await execFile(
                    options.node,
                    [path.join(stageDir, "node_modules", "typescript", "bin", "tsc"), "-p", tsc[1]],
                    { cwd: stageDir },
                ).catch((error: { stdout?: string; message: string }) => {
                    throw new Error(`the image's build stage failed to compile: ${error.stdout || error.message}`);
                });
                continue;
            }
            if (/^npm prune --omit=dev$/.test(command)) {
                linkModules(options.packages.runtime);
                continue;
            }
            throw unknownRun(stage, instruction, command);
        }
    }
    return workdir;
}

/** Every file under `source` (a file or a folder), by relative path, into `hash`. */
function hashTree(hash: crypto.Hash, source: string, relative = ""): void {
    const stat = fs.statSync(source);
    if (stat.isDirectory()) {
        for (const name of fs.readdirSync(source).sort())
            hashTree(hash, path.join(source, name), `${relative}/${name}`);
        return;
    }
    hash.update(`${relative}\0${stat.size}\0`).update(fs.readFileSync(source));
}

/**
 * A build stage's output, made once per content of what it is built from (its instructions, the project files it
 * copies, the installed packages) and kept in the cache beside those packages: each test would compile it again.
 */
async function cachedBuildStage(
    stage: Stage,
    options: ImageFunctionOptions,
): Promise<{ dir: string; workdir: string }> {
    const hash = crypto.createHash("sha256");
    hash.update(
        JSON.stringify([stage.from, stage.instructions.map(({ keyword, args, flags }) => [keyword, args, flags])]),
    );
    hash.update(`\0${options.packages.build}\0${options.packages.runtime}\0${options.node}\0`);
    for (const instruction of stage.instructions.filter((each) => each.keyword === "COPY" && !each.flags.from))
        hashTree(hash, path.join(options.projectRoot, instruction.args.split(/\s+/)[0]));
    const root = path.join(cacheRoot(), "build-stages");
    const dir = path.join(root, hash.digest("hex").slice(0, 16));
    const workdir = lastInstruction(stage, "WORKDIR")?.args ?? "/";
    if (fs.existsSync(path.join(dir, ".complete"))) return { dir, workdir };
    fs.mkdirSync(root, { recursive: true });
    const building = fs.mkdtempSync(path.join(root, ".building-"));
    try {
        await buildStage(stage, options, building);
        fs.writeFileSync(path.join(building, ".complete"), "");
        fs.renameSync(building, dir);
    } catch (error) {
        fs.rmSync(building, { recursive: true, force: true });
        const code = (error as NodeJS.ErrnoException).code;
        // Another run built the same stage first.
        if ((code !== "EEXIST" && code !== "ENOTEMPTY") || !fs.existsSync(path.join(dir, ".complete"))) throw error;
    }
    return { dir, workdir };
}

/** Dirs 755 and files 644 under `dir`, as the final stage's `find /var/task ... chmod` does (node_modules is a link). */
function normalizeModes(dir: string): void {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) {
            fs.chmodSync(full, 0o755);
            normalizeModes(full);
        } else if (entry.isFile()) fs.chmodSync(full, 0o644);
    }
}

export async function buildImageFunction(options: ImageFunctionOptions): Promise<ImageFunction> {
    const dockerfile = parseDockerfile(
        options.dockerfileText ?? fs.readFileSync(path.join(options.projectRoot, "image", "Dockerfile"), "utf8"),
    );
    const { final } = dockerfile;
    const nodeVersion =
        options.node === process.execPath
            ? process.version
            : (await execFile(options.node, ["--version"])).stdout.trim();
    checkBaseImage(final, nodeVersion);
    const environment: Record<string, string> = {};
    for (const instruction of final.instructions.filter((each) => each.keyword === "ENV"))
        Object.assign(environment, envPairs(instruction));
    const imageTaskRoot = environment.LAMBDA_TASK_ROOT;
    if (imageTaskRoot !== "/var/task")
        throw new Error(`the image's ENV sets LAMBDA_TASK_ROOT to ${imageTaskRoot}; Lambda's task root is /var/task`);

    const taskRoot = path.join(options.scratch, "task");
    const tmpDir = path.join(options.scratch, "tmp");
    const binDir = path.join(options.scratch, "bin");
    for (const dir of [taskRoot, tmpDir, binDir]) fs.mkdirSync(dir, { recursive: true });
    fs.symlinkSync(options.node, path.join(binDir, "node"));
    const mapped: Record<string, string> = {
        "/var/task": taskRoot,
        "/tmp": tmpDir,
        "/usr/local/bin/node": options.node,
        "/opt/blender/blender": options.blenderPath,
    };
    const builtStages = new Map<string, { dir: string; workdir: string }>();
    for (const instruction of final.instructions) {
        if (instruction.keyword !== "COPY") continue;
        const [source, target] = instruction.args.split(/\s+/);
        const from = instruction.flags.from;
        if (from === "blender") {
            // The official Blender build the stage downloads is not reachable here: this host's Blender stands in.
            continue;
        }
        if (from) {
            let built = builtStages.get(from);
            if (!built) {
                built = await cachedBuildStage(dockerfile.stage(from), options);
                builtStages.set(from, built);
            }
            if (!source.startsWith(`${built.workdir}/`))
                throw new Error(`COPY --from=${from} ${source}: outside the stage's WORKDIR ${built.workdir}`);
            const hostSource = path.join(built.dir, source.slice(built.workdir.length + 1));
            if (!target.startsWith("/var/task/"))
                throw new Error(`COPY --from=${from} to ${target}: only /var/task is laid out here`);
            const destination = path.join(taskRoot, target.slice("/var/task/".length));
            if (fs.lstatSync(hostSource).isSymbolicLink()) {
                // node_modules: the cached install, linked rather than copied.
                fs.symlinkSync(fs.readlinkSync(hostSource), destination.replace(/\/$/, ""), "dir");
            } else {
                fs.mkdirSync(destination, { recursive: true });
                fs.cpSync(hostSource, destination, { recursive: true });
            }
            continue;
        }
        const hostSource = path.join(options.projectRoot, source);
        if (target.startsWith("/var/task/")) {
            const destination = path.join(taskRoot, target.slice("/var/task/".length));
            fs.mkdirSync(path.dirname(destination), { recursive: true });
            fs.copyFileSync(hostSource, destination);
        } else {
            // Outside the task root (the entrypoint script): run from the repository as it is.
            mapped[target] = hostSource;
        }
    }
    for (const instruction of final.instructions.filter((each) => each.keyword === "RUN")) {
        // The stand-in build's Debian Blender (BLENDER_SOURCE=debian) is a system package: the host's own here.
        if (/^if \[ "\$\{BLENDER_SOURCE\}" = debian \]; then\s+apt-get /.test(instruction.args)) continue;
        const blenderCheck = /^\/opt\/blender\/blender ((?:--?[\w-]+ ?)+)$/.exec(instruction.args.trim());
        if (blenderCheck) {
            // The build's own check that Blender starts, run with the Blender standing in for it.
            await execFile(options.blenderPath, blenderCheck[1].trim().split(" "), { timeout: 120_000 });
            continue;
        }
        for (const command of commandsOf(instruction)) {
            if (/^(apt-get|rm -rf \/var\/lib\/apt\/lists)/.test(command)) continue;
            if (/^find \/var\/task /.test(command)) continue; // Applied below, once, for both find lines.
            if (/^chmod -R \S+ \/opt\/blender$/.test(command)) continue;
            throw unknownRun(final, instruction, command);
        }
    }
    normalizeModes(taskRoot);

    const mapPath = (value: string) => {
        if (value in mapped) return mapped[value];
        for (const [imagePath, hostPath] of Object.entries(mapped))
            if (value.startsWith(`${imagePath}/`)) return hostPath + value.slice(imagePath.length);
        return value;
    };
    const entrypoint = lastInstruction(final, "ENTRYPOINT");
    const cmd = lastInstruction(final, "CMD");
    if (!entrypoint || !cmd) throw new Error("the image needs an exec-form ENTRYPOINT and CMD");
    for (const [name, value] of Object.entries(environment)) environment[name] = mapPath(value);
    // The image has no TMPDIR: os.tmpdir() is /tmp there, which is tmpDir here.
    environment.TMPDIR = tmpDir;
    return {
        entrypoint: execForm(entrypoint).map(mapPath),
        cmd: execForm(cmd),
        environment,
        workdir: mapPath(lastInstruction(final, "WORKDIR")?.args ?? "/"),
        taskRoot,
        tmpDir,
        binDir,
        mapped,
    };
}

export interface ImageFunctionConfig {
    functionName: string;
    /** The function's configured variables. */
    functionEnvironment: Record<string, string>;
    memoryMb: number;
    timeoutSeconds: number;
    region: string;
    credentials: LambdaSandboxOptions["credentials"];
    /** Overrides the image's CMD, as a function's ImageConfig.Command does. */
    cmd?: string[];
    /** This sandbox's /tmp, when several sandboxes share the image's task root; default the image's tmpDir. */
    tmpDir?: string;
    log?(line: string): void;
}

/** How Lambda starts this image: ENTRYPOINT + CMD in WORKDIR, its ENV, _HANDLER blank, /var/runtime as runtime dir. */
export function imageSandboxOptions(image: ImageFunction, config: ImageFunctionConfig): LambdaSandboxOptions {
    const tmpDir = config.tmpDir ?? image.tmpDir;
    const imageEnvironment: Record<string, string> = {};
    for (const [name, value] of Object.entries(image.environment))
        imageEnvironment[name] =
            value === image.tmpDir || value.startsWith(`${image.tmpDir}/`)
                ? tmpDir + value.slice(image.tmpDir.length)
                : value;
    fs.mkdirSync(tmpDir, { recursive: true });
    return {
        command: [...image.entrypoint, ...(config.cmd ?? image.cmd)],
        cwd: image.workdir,
        imageEnvironment,
        functionEnvironment: config.functionEnvironment,
        functionName: config.functionName,
        handler: "",
        taskRoot: image.taskRoot,
        runtimeDir: "/var/runtime",
        memoryMb: config.memoryMb,
        timeoutSeconds: config.timeoutSeconds,
        region: config.region,
        credentials: config.credentials,
        path: `${image.binDir}${path.delimiter}${process.env.PATH ?? ""}`,
        log: config.log,
    };
}
