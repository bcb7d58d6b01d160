// The local farm's functions as Lambda runs them (`render-farm serve --runtime lambda`): the job API archive a
// mocked `pulumi up` serializes, under the nodejs22.x runtime's client, and the renderer made from image/Dockerfile,
// started by its ENTRYPOINT + CMD; one Lambda sandbox per worker, each behind its own Runtime API stand-in.
// Needs a source checkout (index.ts, image/) and builds image/package.json once (cached; see imagePackages.ts).
import * as fs from "fs";
import * as path from "path";
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import type { EmulatorCredentials, FarmResources } from "./emulator";
import type { HttpApiIntegration, Invocable } from "./httpApi";
import { buildImageFunction, imageSandboxOptions } from "./imageFunction";
import { imagePackages, nodeForRuntime } from "./imagePackages";
import { proxyResultOf } from "./lambdaProxyIntegration";
import { InvokeResult } from "./lambdaRuntimeApi";
import { LambdaSandbox, startLambdaSandbox } from "./lambdaSandbox";
import { managedRuntimeDir, managedSandboxOptions } from "./managedRuntime";
import type { Consumer } from "./workers";
import { ENVIRONMENT, settingVariables } from "../functions/shared/functionEnvironment";

export interface LambdaFarmOptions {
    endpoint: string;
    region: string;
    credentials: EmulatorCredentials;
    resources: FarmResources;
    maxReceiveCount: number;
    failureBackoffSeconds: number;
    /** The job API reads every scene before queueing (its PREFLIGHT variable). */
    preflight: boolean;
    blenderPath: string;
    /** Everything this mode makes goes here: the task roots and each sandbox's /tmp. */
    workRoot: string;
    log(line: string): void;
}

export interface LambdaFunctions {
    jobApi: HttpApiIntegration;
    /** A renderer sandbox of its own, as a worker's consumer; close() ends it. */
    newRenderer(name: string): Promise<Consumer & { close(): Promise<void> }>;
    /** The renderer for the invoke path: a function error is thrown as Lambda names it. */
    newInvocable(name: string): Promise<{ invoke: Invocable; abandon(): void; close(): Promise<void> }>;
    close(): Promise<void>;
}

/** The checkout this module runs from: the folder with render-farm's package.json, index.ts and image/Dockerfile. */
export function sourceCheckout(from = __dirname): string {
    for (let dir = from; dir !== path.dirname(dir); dir = path.dirname(dir)) {
        const manifest = path.join(dir, "package.json");
        if (!fs.existsSync(manifest)) continue;
        if (JSON.parse(fs.readFileSync(manifest, "utf8")).name !== "render-farm") continue;
        if (fs.existsSync(path.join(dir, "index.ts")) && fs.existsSync(path.join(dir, "image", "Dockerfile")))
            return dir;
        break;
    }
    throw new Error(
        "--runtime lambda runs the shipped artifacts, made from a source checkout (index.ts, image/Dockerfile): run it from a clone of the project",
    );
}

/** The Pulumi program is TypeScript: the compiled CLI loads it through ts-node. */
function canLoadTypeScript(root: string): void {
    if (require.extensions[".ts"]) return;
    require("ts-node").register({ transpileOnly: true, project: path.join(root, "tsconfig.json") });
}

function unwrap(result: InvokeResult): unknown {
    if (result.ok) return result.payload;
    const error = new Error(result.error.errorMessage);
    error.name = result.error.errorType;
    throw error;
}

export async function startLambdaFunctions(options: LambdaFarmOptions): Promise<LambdaFunctions> {
    const root = sourceCheckout();
    canLoadTypeScript(root);
    const { log } = options;
    const host = new URL(options.endpoint).hostname.replace(/^\[|\]$/g, "");
    // The SDK picks path-style S3 requests only for an IP-address endpoint, as the emulator needs.
    if (!/^[\d.]+$|:/.test(host))
        throw new Error(`--runtime lambda needs the emulator on an IP address, not ${host}; use --host 127.0.0.1`);
    fs.rmSync(options.workRoot, { recursive: true, force: true });
    fs.mkdirSync(options.workRoot, { recursive: true });
    const started = Date.now();
    const { shippedFunctions } = await import("./shippedFunctions");
    const shipped = await shippedFunctions(path.join(options.workRoot, "job-api", "task"));
    const packages = await imagePackages(root, log);
    const node = nodeForRuntime(root);
    const image = await buildImageFunction({
        projectRoot: root,
        packages,
        node,
        blenderPath: options.blenderPath,
        scratch: path.join(options.workRoot, "renderer"),
    });
    log(
        `lambda runtime: the job API archive (Pulumi dev stack, mocked) and the renderer image's task root (image/Dockerfile) made in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    const { resources, region, credentials, endpoint } = options;
    const onEmulator = {
        [ENVIRONMENT.scenesBucket]: resources.scenesBucket,
        [ENVIRONMENT.rendersBucket]: resources.rendersBucket,
        [ENVIRONMENT.frameQueueUrl]: resources.frameQueueUrl,
        ...settingVariables({ maxReceiveCount: options.maxReceiveCount, preflight: options.preflight }),
        // The one variable the stack does not set: the SDK v3 sends every request to the emulator.
        AWS_ENDPOINT_URL: endpoint,
    };
    const sandboxes: LambdaSandbox[] = [];
    const ready = async (sandbox: LambdaSandbox, what: string) => {
        sandboxes.push(sandbox);
        log(`lambda runtime: ${what} cold start ${(await sandbox.start()).toFixed(0)} ms (spawn to first /next)`);
        return sandbox;
    };

    const jobApiSandbox = await ready(
        await startLambdaSandbox(
            managedSandboxOptions(
                {
                    runtime: shipped.jobApi.runtime,
                    functionName: "render-farm-api",
                    handler: shipped.jobApi.handler,
                    taskRoot: shipped.jobApi.archiveDir,
                    functionEnvironment: { ...shipped.jobApi.variables, ...onEmulator },
                    memoryMb: shipped.jobApi.memoryMb,
                    timeoutSeconds: shipped.jobApi.timeoutSeconds,
                    region,
                    credentials,
                    log: (line) => log(`[job API] ${line}`),
                },
                {
                    node,
                    packages,
                    runtimeDir: managedRuntimeDir(root, path.join(options.workRoot, "job-api", "runtime")),
                },
            ),
        ),
        "job API (nodejs22.x, the serialized archive)",
    );

    const rendererSandbox = async (name: string) =>
        ready(
            await startLambdaSandbox(
                imageSandboxOptions(image, {
                    functionName: "render-farm-renderer",
                    functionEnvironment: {
                        ...shipped.renderer.variables,
                        ...onEmulator,
                        ...settingVariables({ failureBackoffSeconds: options.failureBackoffSeconds }),
                    },
                    memoryMb: shipped.renderer.memoryMb,
                    timeoutSeconds: shipped.renderer.timeoutSeconds,
                    region,
                    credentials,
                    tmpDir: path.join(options.workRoot, "sandboxes", name, "tmp"),
                    log: (line) => log(`[renderer ${name}] ${line}`),
                }),
            ),
            `renderer ${name} (image/Dockerfile's ENTRYPOINT + CMD)`,
        );

    return {
        jobApi: async (event) => proxyResultOf(await jobApiSandbox.invoke(event)),
        async newRenderer(name) {
            const sandbox = await rendererSandbox(name);
            return {
                handle: async (event: SQSEvent) => unwrap(await sandbox.invoke(event)) as SQSBatchResponse,
                // The event source mapping's view: the sandbox is gone, its message comes back later.
                abandon: () => sandbox.kill(),
                // No beforeVisibilityChange: the renderer sets its failure backoff from inside the sandbox, so a
                // heartbeat landing in the moment before its invocation ends can stretch that backoff to 30 s.
                close: () => sandbox.stop(),
            };
        },
        async newInvocable(name) {
            const sandbox = await rendererSandbox(name);
            return {
                invoke: async (event) => unwrap(await sandbox.invoke(event)),
                abandon: () => sandbox.kill(),
                close: () => sandbox.stop(),
            };
        },
        async close() {
            await Promise.all(sandboxes.map((sandbox) => sandbox.stop()));
        },
    };
}
