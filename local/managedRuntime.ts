// A ZIP function as Lambda's nodejs22.x managed runtime starts it: the runtime client (aws-lambda-ric, the same
// one the renderer image runs) with _HANDLER set to the function's handler, the unpacked archive as /var/task,
// and the AWS SDK v3 beside it in /var/runtime/node_modules, found through NODE_PATH as on Lambda.
import * as fs from "fs";
import * as path from "path";
import { ImagePackages } from "./imagePackages";
import { LambdaSandboxOptions } from "./lambdaSandbox";

/** The SDK clients the project's functions use; the managed runtime carries the whole SDK v3. */
const RUNTIME_SDK_CLIENTS = ["client-s3", "client-sqs"];

export interface ManagedFunction {
    /** e.g. nodejs22.x: the only runtime emulated here. */
    runtime: string;
    functionName: string;
    /** e.g. __index.handler */
    handler: string;
    /** The unpacked archive. */
    taskRoot: string;
    functionEnvironment: Record<string, string>;
    memoryMb: number;
    timeoutSeconds: number;
    region: string;
    credentials: LambdaSandboxOptions["credentials"];
    log?(line: string): void;
}

/**
 * Makes the stand-in for /var/runtime under `dir`: node_modules/@aws-sdk/<client> linked to the project's
 * installed clients (their own dependencies resolve from where they really are), nothing else of the project.
 */
export function managedRuntimeDir(projectRoot: string, dir: string): string {
    const sdk = path.join(dir, "node_modules", "@aws-sdk");
    fs.mkdirSync(sdk, { recursive: true });
    for (const client of RUNTIME_SDK_CLIENTS) {
        const installed = path.join(projectRoot, "node_modules", "@aws-sdk", client);
        if (!fs.existsSync(installed)) throw new Error(`${installed} is not installed; run npm ci`);
        fs.symlinkSync(installed, path.join(sdk, client), "dir");
    }
    return dir;
}

export function managedSandboxOptions(
    fn: ManagedFunction,
    runtime: { node: string; packages: ImagePackages; runtimeDir: string },
): LambdaSandboxOptions {
    if (fn.runtime !== "nodejs22.x")
        throw new Error(`the function runs on ${fn.runtime}; only nodejs22.x is emulated here`);
    const opt = ["/opt/nodejs/node22/node_modules", "/opt/nodejs/node_modules"];
    return {
        command: [runtime.node, path.join(runtime.packages.runtime, "aws-lambda-ric", "index.mjs")],
        cwd: fn.taskRoot,
        functionEnvironment: fn.functionEnvironment,
        functionName: fn.functionName,
        handler: fn.handler,
        taskRoot: fn.taskRoot,
        runtimeDir: runtime.runtimeDir,
        memoryMb: fn.memoryMb,
        timeoutSeconds: fn.timeoutSeconds,
        region: fn.region,
        credentials: fn.credentials,
        path: `${path.dirname(runtime.node)}${path.delimiter}/usr/local/bin:/usr/bin:/bin`,
        runtimeEnvironment: {
            AWS_EXECUTION_ENV: "AWS_Lambda_nodejs22.x",
            // Lambda's order: layers (none here, and absent), the runtime's modules, the runtime, the task root.
            NODE_PATH: [...opt, path.join(runtime.runtimeDir, "node_modules"), runtime.runtimeDir, fn.taskRoot].join(
                path.delimiter,
            ),
        },
        log: fn.log,
    };
}
