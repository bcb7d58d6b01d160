// `render-farm serve --json` as a child process, as a user runs it: ready when it prints its outputs on stdout.
import { ChildProcess, spawn } from "child_process";
import * as path from "path";
import type { FarmOutputs } from "../../functions/shared/contract";

const ROOT = path.join(__dirname, "..", "..");
const RENDER_FARM = path.join(ROOT, "cli", "render-farm.js");

export interface ServeProcess {
    child: ChildProcess;
    outputs: FarmOutputs;
    /** Everything it wrote to stderr so far. */
    stderr(): string;
    /** Resolves with the exit code (or signal) once it has exited. */
    exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The package's bin run by this (Node 22) node, not npx, so that the pid the test signals is the farm's own. */
function serveCommand(args: string[]): string[] {
    return [RENDER_FARM, "serve", ...args, "--json"];
}

export async function startServe(args: string[], readyTimeoutMs = 60_000): Promise<ServeProcess> {
    const child = spawn(process.execPath, serveCommand(args), {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, NODE_NO_WARNINGS: "1" },
    });
    let stdout = "";
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on("exit", (code, signal) => resolve({ code, signal })),
    );
    const outputs = await new Promise<FarmOutputs>((resolve, reject) => {
        const timer = setTimeout(
            () =>
                reject(
                    new Error(
                        `serve ${args.join(" ")} printed no outputs within ${readyTimeoutMs} ms; stderr:\n${stderr}`,
                    ),
                ),
            readyTimeoutMs,
        );
        child.stdout!.on("data", (chunk: Buffer) => {
            stdout += chunk.toString("utf8");
            const line = stdout.split("\n")[0];
            if (stdout.includes("\n")) {
                clearTimeout(timer);
                try {
                    resolve(JSON.parse(line));
                } catch {
                    reject(new Error(`serve printed no JSON outputs but: ${line}`));
                }
            }
        });
        void exited.then(({ code, signal }) => {
            clearTimeout(timer);
            reject(
                new Error(`serve ${args.join(" ")} exited (${code ?? signal}) before it was ready; stderr:\n${stderr}`),
            );
        });
    });
    return { child, outputs, stderr: () => stderr, exited };
}

/** Stops it with SIGTERM if it is still running; for after() hooks. */
export async function stopServe(serve: ServeProcess | undefined): Promise<void> {
    if (!serve || serve.child.exitCode !== null || serve.child.signalCode !== null) return;
    serve.child.kill("SIGTERM");
    const timer = setTimeout(() => serve.child.kill("SIGKILL"), 20_000);
    await serve.exited;
    clearTimeout(timer);
}
