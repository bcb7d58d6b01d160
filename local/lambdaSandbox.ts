// One Lambda execution environment on this machine: a runtime process started as Lambda starts it (the command
// and the variables Lambda injects), talking to its own Runtime API stand-in; one invocation at a time; a new
// process after a crash or a timeout, as Lambda starts a new sandbox.
import { ChildProcess, spawn } from "child_process";
import { randomBytes } from "crypto";
import { exitReason, InvokeResult, RuntimeApi, startRuntimeApi } from "./lambdaRuntimeApi";

export interface LambdaSandboxOptions {
    /** What Lambda execs: an image's ENTRYPOINT + CMD, or the managed runtime's `node .../index.mjs`. */
    command: string[];
    cwd: string;
    /** The image's ENV (none for a managed runtime): overridden by the function's variables, then by Lambda's. */
    imageEnvironment?: Record<string, string>;
    /** The function's configured variables (the stack's, plus AWS_ENDPOINT_URL for the emulator). */
    functionEnvironment: Record<string, string>;
    functionName: string;
    /** "" for image functions: Lambda leaves _HANDLER blank for them. */
    handler: string;
    taskRoot: string;
    /** The managed runtime's directory (LAMBDA_RUNTIME_DIR); for images Lambda sets /var/runtime. */
    runtimeDir: string;
    memoryMb: number;
    timeoutSeconds: number;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
    /** The base of the PATH, e.g. a directory holding the runtime's `node` first. */
    path: string;
    /** Variables only a managed runtime sets (AWS_EXECUTION_ENV, NODE_PATH). */
    runtimeEnvironment?: Record<string, string>;
    /** The Runtime API stand-in's listen address; default 127.0.0.1. */
    host?: string;
    /** Each line the runtime writes (Lambda sends them to CloudWatch Logs). */
    log?(line: string): void;
}

export interface LambdaSandbox {
    /** host:port of its Runtime API. */
    runtimeApi: string;
    /** Starts the runtime if none runs and resolves once it polls /next: the cold start's ms (0 when warm). */
    start(): Promise<number>;
    /** One invocation (queued behind the one running), as Lambda answers a synchronous invoke. */
    invoke(event: unknown): Promise<InvokeResult>;
    /** The running runtime process's pid (also its process group's), if one runs. */
    pid(): number | undefined;
    /** Everything the runtime wrote, across its processes. */
    output(): string;
    /** Kills the runtime (and its children) at once; an invocation in progress fails with Runtime.ExitError. */
    kill(): void;
    stop(): Promise<void>;
}

/** Lambda's reserved variables for this function, as it sets them in every sandbox. */
function lambdaEnvironment(options: LambdaSandboxOptions, runtimeApi: string): Record<string, string> {
    const today = new Date().toISOString().slice(0, 10).replace(/-/g, "/");
    return {
        AWS_LAMBDA_RUNTIME_API: runtimeApi,
        AWS_LAMBDA_FUNCTION_NAME: options.functionName,
        AWS_LAMBDA_FUNCTION_VERSION: "$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(options.memoryMb),
        AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${options.functionName}`,
        AWS_LAMBDA_LOG_STREAM_NAME: `${today}/[$LATEST]${randomBytes(16).toString("hex")}`,
        AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand",
        AWS_REGION: options.region,
        AWS_DEFAULT_REGION: options.region,
        AWS_ACCESS_KEY_ID: options.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: options.credentials.secretAccessKey,
        AWS_SESSION_TOKEN: options.credentials.sessionToken ?? "local-session-token",
        _HANDLER: options.handler,
        LAMBDA_TASK_ROOT: options.taskRoot,
        LAMBDA_RUNTIME_DIR: options.runtimeDir,
        TZ: ":UTC",
        LANG: "en_US.UTF-8",
        PATH: options.path,
        ...options.runtimeEnvironment,
    };
}

export async function startLambdaSandbox(options: LambdaSandboxOptions): Promise<LambdaSandbox> {
    /** The runtime process of the current sandbox, if one runs. */
    let current: { process: ChildProcess; ready: Promise<number>; exited: Promise<void> } | undefined;
    /** Until a killed runtime is gone, no new one starts: its exit must not fail the next one's invocation. */
    let dying: Promise<void> = Promise.resolve();
    let output = "";
    let stopping = false;
    const api: RuntimeApi = await startRuntimeApi({
        host: options.host,
        functionArn: `arn:aws:lambda:${options.region}:000000000000:function:${options.functionName}`,
        // Lambda ends a sandbox whose invocation timed out; the next invocation starts a new one.
        onTimeout: () => kill(),
    });
    const environment = {
        ...options.imageEnvironment,
        ...options.functionEnvironment,
        ...lambdaEnvironment(options, api.address),
    };

    function kill(): void {
        if (!current) return;
        const { process: runtime, exited } = current;
        current = undefined;
        dying = exited;
        if (runtime.exitCode !== null || runtime.signalCode !== null) return;
        try {
            // The runtime's process group: Blender and whatever else it started go with it.
            process.kill(-runtime.pid!, "SIGKILL");
        } catch {
            runtime.kill("SIGKILL");
        }
    }

    /** Collects a stream's output, and hands the log whole lines (a chunk may end mid-line). */
    const recorder = () => {
        let partial = "";
        return (chunk: Buffer) => {
            const text = chunk.toString("utf8");
            output += text;
            if (output.length > 4_000_000) output = output.slice(-2_000_000);
            const lines = (partial + text).split("\n");
            partial = lines.pop() ?? "";
            if (options.log) for (const line of lines.filter(Boolean)) options.log(line);
        };
    };

    function spawnRuntime(): Promise<number> {
        const spawnedAt = process.hrtime.bigint();
        const runtime = spawn(options.command[0], options.command.slice(1), {
            cwd: options.cwd,
            env: environment,
            stdio: ["ignore", "pipe", "pipe"],
            detached: true,
        });
        runtime.stdout!.on("data", recorder());
        runtime.stderr!.on("data", recorder());
        const reason = new Promise<string>((resolve) => {
            runtime.on("error", (error) => resolve(`could not start ${options.command[0]}: ${error.message}`));
            runtime.on("exit", (code, signal) => resolve(exitReason(code, signal)));
        });
        const exited = reason.then((why) => {
            if (current?.process === runtime) current = undefined;
            api.runtimeExited(why);
        });
        const ready = api.waitForNext().then(
            () => Number(process.hrtime.bigint() - spawnedAt) / 1e6,
            async (error: Error) => {
                // Its last words say why: a PlatformError, a missing module.
                await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 1000))]);
                throw new Error(`${error.message}; it wrote:\n${output.trim().split("\n").slice(-20).join("\n")}`);
            },
        );
        current = { process: runtime, ready, exited };
        return ready;
    }

    let queue: Promise<unknown> = Promise.resolve();
    return {
        runtimeApi: api.address,
        async start() {
            await dying;
            if (current) {
                await current.ready;
                return 0;
            }
            return spawnRuntime();
        },
        invoke(event) {
            const run = queue.then(async () => {
                await dying;
                // A failed start answers the invocation itself (init error, exit): the stand-in knows which.
                if (!current && !stopping) spawnRuntime().catch(() => undefined);
                return api.invoke(event, { timeoutMs: options.timeoutSeconds * 1000 });
            });
            queue = run.catch(() => undefined);
            return run;
        },
        pid: () => current?.process.pid,
        output: () => output,
        kill,
        async stop() {
            stopping = true;
            kill();
            await dying;
            await api.close();
        },
    };
}
