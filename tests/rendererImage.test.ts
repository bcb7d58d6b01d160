// What can be checked of the renderer image without a Docker engine: the handler its CMD names is
// compiled the way the Dockerfile compiles it and exports a function; its packages match the lock file.
import * as assert from "assert";
import * as childProcess from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_ROOT } from "./support/pulumiProgram";

const dockerfile = fs.readFileSync(path.join(PROJECT_ROOT, "image", "Dockerfile"), "utf8");

function jsonArrayInstruction(instruction: string): string[] {
    const match = new RegExp(`^${instruction}\\s+(\\[.*\\])\\s*$`, "m").exec(dockerfile);
    assert.ok(match, `the Dockerfile has an exec-form ${instruction}`);
    return JSON.parse(match![1]);
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
        const fromFunctions = [...dockerfile.matchAll(/^COPY (?!--from)(?:--chmod=\d+ )?(functions\/\S*)/gm)].map(
            (match) => match[1].split("/")[1],
        );
        assert.deepStrictEqual([...new Set(fromFunctions)].sort(), ["renderer", "shared"]);
    });

    it("copies only files that exist and that .dockerignore lets into the build context", function () {
        const ignore = fs
            .readFileSync(path.join(PROJECT_ROOT, ".dockerignore"), "utf8")
            .split("\n")
            .filter((line) => line.startsWith("!"))
            .map((line) => line.slice(1));
        const sources = [...dockerfile.matchAll(/^COPY (?!--from)(?:--chmod=\d+ )?(\S+)/gm)].map((match) => match[1]);
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

    it("starts through aws-lambda-ric and renders with the official Blender build of the configured version", function () {
        const [entrypoint] = jsonArrayInstruction("ENTRYPOINT");
        const copied = new RegExp(`^COPY (?:--chmod=755 )?(\\S+) ${entrypoint}$`, "m").exec(dockerfile);
        assert.ok(copied, `the Dockerfile copies its ENTRYPOINT ${entrypoint} with mode 755`);
        assert.match(
            fs.readFileSync(path.join(PROJECT_ROOT, copied![1]), "utf8"),
            /export _HANDLER="\$1"[\s\S]*exec node .*aws-lambda-ric\/index\.mjs/,
        );
        assert.match(dockerfile, /ARG BLENDER_VERSION/);
        assert.match(dockerfile, /download\.blender\.org\/release\/Blender\$\{series\}/);
        assert.match(dockerfile, /sha256sum -c/);
        assert.match(dockerfile, /HOME=\/tmp/);
        assert.match(dockerfile, /libegl-mesa0/);
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
