// What can be checked of the renderer image without a Docker engine: the handler its CMD names is
// compiled the way the Dockerfile compiles it and exports a function; its packages match the lock file.
import * as assert from "assert";
import * as childProcess from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Arg, Copy, DockerfileParser, Env, From, Instruction } from "dockerfile-ast";
import { FARM_DEFAULTS } from "../functions/shared/farmSettings";
import { PROJECT_ROOT } from "./support/pulumiProgram";
import { ShellCommand, shellCommands } from "./support/shellScript";

const dockerfile = fs.readFileSync(path.join(PROJECT_ROOT, "image", "Dockerfile"), "utf8");
const parsed = DockerfileParser.parse(dockerfile);

function jsonArrayInstruction(instruction: "CMD" | "ENTRYPOINT"): string[] {
    const found = instruction === "CMD" ? parsed.getCMDs() : parsed.getENTRYPOINTs();
    assert.strictEqual(found.length, 1, `the Dockerfile has one ${instruction}`);
    const strings = found[0].getJSONStrings();
    assert.ok(strings.length > 0, `the Dockerfile's ${instruction} is in exec form`);
    return strings.map((value) => value.getJSONValue());
}

/** The instructions of the stage named `name` (null: the last, unnamed one), after its FROM. */
function stageInstructions(name: string | null): Instruction[] {
    const instructions = parsed.getInstructions();
    const froms = instructions.flatMap((instruction, index) => (instruction.getKeyword() === "FROM" ? [index] : []));
    const at =
        name === null
            ? froms.length - 1
            : froms.findIndex((index) => (instructions[index] as From).getBuildStage() === name);
    assert.ok(at >= 0, `the Dockerfile has a stage ${name}`);
    return instructions.slice(froms[at] + 1, froms[at + 1] ?? instructions.length);
}

/** A COPY's sources and destination (dockerfile-ast keeps its flags apart). */
function copyArguments(instruction: Instruction): string[] {
    return instruction.getArguments().map((argument) => argument.getValue());
}

/** What the COPY instructions take from the build context (not from another stage). */
function contextSources(): string[] {
    return parsed
        .getInstructions()
        .filter((instruction) => instruction.getKeyword() === "COPY" && !(instruction as Copy).getFromFlag())
        .flatMap((instruction) => copyArguments(instruction).slice(0, -1));
}

/** The ENV of a stage, name to value. */
function envOf(stage: Instruction[]): Record<string, string> {
    return Object.fromEntries(
        stage
            .filter((instruction) => instruction.getKeyword() === "ENV")
            .flatMap((instruction) => (instruction as Env).getProperties())
            .map((property) => [property.getName(), property.getValue() ?? ""]),
    );
}

describe("the renderer image (image/Dockerfile)", function () {
    it("CMD names a handler that the compiled functions/ export", function () {
        const [handlerSpec] = jsonArrayInstruction("CMD");
        const [moduleName, exportName] = handlerSpec.split("."); // e.g. renderer/handler, handler
        // Lay out the build stage as the Dockerfile does: image/tsconfig.json at the root beside functions/.
        const stage = fs.mkdtempSync(path.join(os.tmpdir(), "renderer-image-"));
        for (const folder of ["renderer", "shared"])
            fs.cpSync(path.join(PROJECT_ROOT, "functions", folder), path.join(stage, "functions", folder), {
                recursive: true,
            });
        fs.copyFileSync(path.join(PROJECT_ROOT, "image", "tsconfig.json"), path.join(stage, "tsconfig.json"));
        // Only the image's own packages (image/package.json), as `npm install` in the Dockerfile gives them.
        const imagePackage = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "image", "package.json"), "utf8"));
        for (const name of Object.keys({ ...imagePackage.dependencies, ...imagePackage.devDependencies })) {
            fs.mkdirSync(path.dirname(path.join(stage, "node_modules", name)), { recursive: true });
            fs.symlinkSync(path.join(PROJECT_ROOT, "node_modules", name), path.join(stage, "node_modules", name));
        }
        childProcess.execFileSync(
            process.execPath,
            [path.join(stage, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"],
            { cwd: stage, stdio: "pipe" },
        );
        const compiled = path.join(stage, "dist", `${moduleName}.js`);
        assert.ok(fs.existsSync(compiled), `${moduleName}.js is in the compiled output`);
        const probe = childProcess.execFileSync(
            process.execPath,
            [
                "-e",
                `const m = require(${JSON.stringify(compiled)}); process.stdout.write(typeof m[${JSON.stringify(exportName)}])`,
            ],
            { cwd: stage, encoding: "utf8" },
        );
        assert.strictEqual(probe, "function");
        // The image packs its own folder and shared/, nothing else of functions/.
        assert.deepStrictEqual(fs.readdirSync(path.join(stage, "dist")).sort(), ["renderer", "shared"]);
        const fromFunctions = contextSources()
            .filter((source) => source.startsWith("functions/"))
            .map((source) => source.split("/")[1]);
        assert.deepStrictEqual([...new Set(fromFunctions)].sort(), ["renderer", "shared"]);
    });

    it("copies only files that exist and that .dockerignore lets into the build context", function () {
        const ignore = fs
            .readFileSync(path.join(PROJECT_ROOT, ".dockerignore"), "utf8")
            .split("\n")
            .filter((line) => line.startsWith("!"))
            .map((line) => line.slice(1));
        const sources = contextSources();
        assert.ok(sources.length >= 3);
        for (const source of sources) {
            assert.ok(fs.existsSync(path.join(PROJECT_ROOT, source)), `${source} exists`);
            assert.ok(
                ignore.some(
                    (allowed) =>
                        source === allowed ||
                        source.startsWith(allowed) ||
                        allowed.startsWith(source.replace(/\/$/, "")),
                ),
                `${source} is in the build context`,
            );
        }
        for (const script of ["render_frame.py", "encode_frame.py"])
            assert.ok(sources.includes(`functions/renderer/${script}`), `${script} ships beside the handler`);
    });

    it("is built to start the handler through aws-lambda-ric from its entrypoint script, and to download the configured Blender version and fail unless the archive matches the release's checksum (read with Dockerfile and shell parsers; nothing is built)", function () {
        // The entrypoint: an exec-form ENTRYPOINT, copied executable from the build context.
        const [entrypoint] = parsed
            .getENTRYPOINTs()[0]
            .getJSONStrings()
            .map((value) => value.getJSONValue());
        const finalStage = stageInstructions(null);
        const copied = finalStage.find(
            (instruction) => instruction.getKeyword() === "COPY" && copyArguments(instruction).at(-1) === entrypoint,
        ) as Copy | undefined;
        assert.ok(copied, `the final stage copies its ENTRYPOINT ${entrypoint}`);
        assert.deepStrictEqual(
            copied!.getFlags().map((flag) => [flag.getName(), flag.getValue()]),
            [["chmod", "755"]],
            "copied from the build context, executable",
        );
        const script = copyArguments(copied!)[0];
        const entry = shellCommands(fs.readFileSync(path.join(PROJECT_ROOT, script), "utf8"), script);
        assert.deepStrictEqual(entry[0].words, ["set", "-eu"], `${script} stops at its first failure`);
        const exported = entry.find((command) => command.words[0] === "export" && "_HANDLER" in command.assigns);
        assert.strictEqual(exported?.assigns._HANDLER, "$1", "_HANDLER is the CMD, the script's first argument");
        // It ends by replacing itself with the runtime client of the image's node_modules.
        const last = entry.at(-1)!;
        assert.deepStrictEqual(last.words.slice(0, 2), ["exec", "node"]);
        assert.match(last.words[2], /^\$task_root\/node_modules\/aws-lambda-ric\/index\.mjs$/);
        const taskRoot = entry.find((command) => "task_root" in command.assigns)?.assigns.task_root;
        assert.strictEqual(taskRoot, "$LAMBDA_TASK_ROOT");
        assert.strictEqual(envOf(finalStage).LAMBDA_TASK_ROOT, "/var/task");
        assert.ok(
            finalStage.some(
                (instruction) =>
                    instruction.getKeyword() === "COPY" &&
                    (instruction as Copy).getFromFlag()?.getValue() === "handler" &&
                    copyArguments(instruction).join(" ") === "/build/node_modules /var/task/node_modules",
            ),
            "the handler stage's node_modules are in /var/task",
        );
        const imagePackage = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "image", "package.json"), "utf8"));
        assert.ok(imagePackage.dependencies["aws-lambda-ric"], "aws-lambda-ric is one of the image's dependencies");

        // Blender: the stage named blender defaults to the farm's configured version and is copied into the image.
        const blenderStage = stageInstructions("blender");
        const version = blenderStage
            .filter((instruction) => instruction.getKeyword() === "ARG")
            .map((instruction) => (instruction as Arg).getProperty()!)
            .find((property) => property.getName() === "BLENDER_VERSION");
        assert.strictEqual(version?.getValue(), FARM_DEFAULTS.blenderVersion, "ARG BLENDER_VERSION's default");
        assert.ok(
            finalStage.some(
                (instruction) =>
                    instruction.getKeyword() === "COPY" &&
                    (instruction as Copy).getFromFlag()?.getValue() === "blender" &&
                    copyArguments(instruction).join(" ") === "/opt/blender /opt/blender",
            ),
            "the image takes /opt/blender from the blender stage",
        );
        // Its download: the official release's archive, checked against the release's checksums before unpacking,
        // each step's failure failing the build.
        const runs = blenderStage
            .filter((instruction) => instruction.getKeyword() === "RUN")
            .map((instruction) => shellCommands(instruction.getArgumentsContent() ?? "", "RUN"));
        const download = runs.find((commands) => commands.some((command) => command.words[0] === "sha256sum"));
        assert.ok(download, "a RUN of the blender stage checks a checksum");
        const assigned = Object.assign({}, ...download!.map((command) => command.assigns));
        assert.strictEqual(assigned.archive, "blender-$BLENDER_VERSION-linux-x64.tar.xz");
        assert.strictEqual(assigned.base, "https://download.blender.org/release/Blender$series");
        assert.strictEqual(assigned.series, "$BLENDER_VERSION", "the series is read from BLENDER_VERSION");
        const at = (test: (command: ShellCommand) => boolean, what: string) => {
            const index = download!.findIndex(test);
            assert.ok(index >= 0, `the download RUN ${what}`);
            assert.ok(download![index].failureFailsScript, `a failure to ${what} fails the build`);
            return index;
        };
        const fetched = at(
            (command) =>
                command.words[0] === "curl" &&
                command.words.includes("$base/$archive") &&
                command.words.some((word) => /^-[a-zA-Z]*f/.test(word)),
            "fetches the archive with curl --fail",
        );
        const checked = at(
            (command) => command.words.join(" ") === "sha256sum -c blender.sha256",
            "checks the archive against the release's checksum (sha256sum -c)",
        );
        const unpacked = at(
            (command) => command.words[0] === "tar" && command.words.includes("/tmp/$archive"),
            "unpacks the archive",
        );
        assert.ok(fetched < checked && checked < unpacked, "fetched, then checked, then unpacked");
        const checksums = download!.find((command) => command.words.includes("$base/blender-$BLENDER_VERSION.sha256"));
        assert.ok(checksums, "the checksums are the release's own");
        assert.strictEqual(envOf(finalStage).HOME, "/tmp", "HOME is writable on Lambda");
        const packages = finalStage
            .filter((instruction) => instruction.getKeyword() === "RUN")
            .flatMap((instruction) => shellCommands(instruction.getArgumentsContent() ?? "", "RUN"))
            .filter((command) => command.words[0] === "apt-get" && command.words[1] === "install")
            .flatMap((command) => command.words);
        assert.ok(packages.includes("libegl-mesa0"), "EGL with Mesa, for EEVEE without a display");
    });

    it("takes Debian's Blender (the stand-in for npm run test:image) only when BLENDER_SOURCE=debian is asked for", function () {
        const declared = [...dockerfile.matchAll(/^ARG BLENDER_SOURCE(=\S*)?$/gm)].map((match) => match[1]);
        assert.deepStrictEqual(
            declared,
            ["=official", "=official"],
            "both stages that read BLENDER_SOURCE default to the official build",
        );
        assert.match(
            dockerfile,
            /official\) ;; \\\n\s+debian\) [^\n]*exit 0 ;; \\\n\s+\*\) [^\n]*exit 1 ;;/,
            "the official download runs unless debian is asked for, and anything else fails",
        );
    });

    it("pins the image's packages to the versions the project's lock file tested", function () {
        const imagePackage = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "image", "package.json"), "utf8"));
        const lock = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, "package-lock.json"), "utf8"));
        const all = { ...imagePackage.dependencies, ...imagePackage.devDependencies } as Record<string, string>;
        // Only the image needs these (the runtime client; Node 22's types where the project compiles against 20's).
        const imageOnly = ["aws-lambda-ric", "@types/node"];
        for (const [name, version] of Object.entries(all)) {
            assert.match(version, /^\d+\.\d+\.\d+$/, `${name} in image/package.json is pinned to one version`);
            if (imageOnly.includes(name)) continue;
            const locked = lock.packages[`node_modules/${name}`];
            assert.ok(locked, `${name} in image/package.json is in the project's lock file (or listed as image-only)`);
            assert.strictEqual(version, locked.version, `${name} in image/package.json`);
        }
        for (const name of imageOnly) assert.ok(all[name], `${name} is in image/package.json`);
    });
});
