// Runs the real `render-farm` command (the package's bin shim) as a child process, with or without a
// pseudo-terminal, and collects what it printed.
import { spawn } from "child_process";
import * as path from "path";

export const ROOT = path.join(__dirname, "..", "..");
export const SHIM = path.join(ROOT, "cli", "render-farm.js");

export interface CliRun {
    code: number | null;
    stdout: string;
    stderr: string;
    ms: number;
}

export interface CliRunOptions {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    /** The node binary that starts the shim (default: the one running the tests). */
    node?: string;
    timeoutMs?: number;
}

function collect(command: string, args: string[], options: CliRunOptions): Promise<CliRun> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
        const child = spawn(command, args, {
            cwd: options.cwd ?? ROOT,
            env: options.env ?? process.env,
            stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (chunk) => (stdout += chunk));
        child.stderr.on("data", (chunk) => (stderr += chunk));
        const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 300_000);
        child.on("error", reject);
        child.on("close", (code) => {
            clearTimeout(timer);
            resolve({ code, stdout, stderr, ms: Date.now() - started });
        });
    });
}

/** `render-farm <args>` with stdout and stderr as pipes (not a terminal). */
export function runCli(args: string[], options: CliRunOptions = {}): Promise<CliRun> {
    return collect(options.node ?? process.execPath, [SHIM, ...args], options);
}

function shellQuote(arg: string): string {
    return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * `render-farm <args>` on a real pseudo-terminal, made by util-linux `script`: stdout and stderr are
 * both the terminal, so everything arrives (with its escape codes) on `stdout`.
 */
export function runCliOnTerminal(args: string[], options: CliRunOptions = {}): Promise<CliRun> {
    const command = [options.node ?? process.execPath, SHIM, ...args].map(shellQuote).join(" ");
    return collect("script", ["--quiet", "--return", "--command", command, "/dev/null"], options);
}
