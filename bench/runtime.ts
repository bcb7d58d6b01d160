// Lambda runtime path benchmark (`npm run bench:runtime`; `-- --smoke` for the quick run npm test makes): what
// running the shipped artifacts under aws-lambda-ric and the Runtime API stand-in costs, beside a baseline in
// this same process. Cold start: spawn to the first /next, against a plain `node` spawned to the moment it has
// loaded the same handler module. Per invocation: a warm sandbox's invoke of an event the handler answers without
// any S3 or SQS request, against the same handler called in this process.
import * as childProcess from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { createJobApiHandler } from "../functions/jobApi/handler";
import { jobApiSettingsFromEnvironment } from "../functions/jobApi/settings";
import { createRendererHandler } from "../functions/renderer/consumer";
import { rendererSettingsFromEnvironment } from "../functions/renderer/settings";
import { resourceVariables } from "../functions/shared/functionEnvironment";
import { createFarmResources, Emulator, startEmulator } from "../local/emulator";
import { findBlender } from "../local/farm";
import { buildImageFunction, imageSandboxOptions } from "../local/imageFunction";
import { imagePackages, nodeForRuntime } from "../local/imagePackages";
import { LambdaSandbox, LambdaSandboxOptions, startLambdaSandbox } from "../local/lambdaSandbox";
import { managedRuntimeDir, managedSandboxOptions } from "../local/managedRuntime";
import { shippedFunctions } from "../local/shippedFunctions";
import { PROJECT_ROOT } from "../local/stackProgram";

const SMOKE = process.argv.includes("--smoke");
const COLD_STARTS = SMOKE ? 1 : 7;
const INVOCATIONS = SMOKE ? 5 : 300;

function median(values: number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
}

function p95(values: number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))];
}

function msSince(start: bigint): number {
    return Number(process.hrtime.bigint() - start) / 1e6;
}

async function timed(times: number, run: () => Promise<unknown>): Promise<number[]> {
    const samples: number[] = [];
    for (let index = 0; index < times; index++) {
        const start = process.hrtime.bigint();
        await run();
        samples.push(msSince(start));
    }
    return samples;
}

/** Spawn to first /next, `times` fresh sandboxes. */
async function coldStarts(options: LambdaSandboxOptions, times: number): Promise<number[]> {
    const samples: number[] = [];
    for (let index = 0; index < times; index++) {
        const sandbox = await startLambdaSandbox(options);
        try {
            samples.push(await sandbox.start());
        } finally {
            await sandbox.stop();
        }
    }
    return samples;
}

/** Spawn of `node` to the moment it has required `module` (with the function's environment): the code's own load. */
async function plainLoads(options: LambdaSandboxOptions, module: string, times: number): Promise<number[]> {
    const node = nodeForRuntime(PROJECT_ROOT);
    const env = { ...options.imageEnvironment, ...options.functionEnvironment, ...options.runtimeEnvironment };
    const script = `require(${JSON.stringify(module)}); process.stdout.write("loaded"); setInterval(() => {}, 1000);`;
    return timed(times, async () => {
        const child = childProcess.spawn(node, ["-e", script], {
            env,
            cwd: options.cwd,
            stdio: ["ignore", "pipe", "pipe"],
        });
        try {
            await new Promise<void>((resolve, reject) => {
                child.stdout.once("data", () => resolve());
                child.once("exit", (code) => reject(new Error(`node -e require(${module}) exited ${code}`)));
            });
        } finally {
            child.kill("SIGKILL");
        }
    });
}

function line(label: string, runtime: number[], baseline: number[], baselineLabel: string): string {
    const runtimeMs = median(runtime);
    const baselineMs = median(baseline);
    return `${label}: runtime path median ${runtimeMs.toFixed(4)} ms (p95 ${p95(runtime).toFixed(4)}), ${baselineLabel} median ${baselineMs.toFixed(4)} ms (p95 ${p95(baseline).toFixed(4)}); overhead ${(runtimeMs - baselineMs).toFixed(4)} ms; ratio ${(runtimeMs / baselineMs).toFixed(1)}x`;
}

async function main(): Promise<void> {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "bench-runtime-"));
    let emulator: Emulator | undefined;
    const sandboxes: LambdaSandbox[] = [];
    try {
        emulator = await startEmulator();
        const farm = await createFarmResources(emulator, {
            name: "bench-runtime",
            maxReceiveCount: 3,
            visibilityTimeoutSeconds: 60,
        });
        const packages = await imagePackages(PROJECT_ROOT, (message) => console.log(message));
        const node = nodeForRuntime(PROJECT_ROOT);
        const image = await buildImageFunction({
            projectRoot: PROJECT_ROOT,
            packages,
            node,
            blenderPath: findBlender(process.env.BLENDER_PATH ?? "blender"),
            scratch: path.join(scratch, "renderer"),
        });
        const shipped = await shippedFunctions(path.join(scratch, "job-api", "task"));
        const onEmulator = { ...resourceVariables(farm), AWS_ENDPOINT_URL: emulator.endpoint };
        const common = { region: emulator.region, credentials: emulator.credentials };
        const rendererOptions = imageSandboxOptions(image, {
            ...common,
            functionName: "render-farm-renderer",
            functionEnvironment: { ...shipped.renderer.variables, ...onEmulator },
            memoryMb: shipped.renderer.memoryMb,
            timeoutSeconds: shipped.renderer.timeoutSeconds,
        });
        const jobApiOptions = managedSandboxOptions(
            {
                ...common,
                runtime: shipped.jobApi.runtime,
                functionName: "render-farm-api",
                handler: shipped.jobApi.handler,
                taskRoot: shipped.jobApi.archiveDir,
                functionEnvironment: { ...shipped.jobApi.variables, ...onEmulator },
                memoryMb: shipped.jobApi.memoryMb,
                timeoutSeconds: shipped.jobApi.timeoutSeconds,
            },
            { node, packages, runtimeDir: managedRuntimeDir(PROJECT_ROOT, path.join(scratch, "job-api", "runtime")) },
        );
        console.log(
            `runtime benchmark${SMOKE ? " (smoke)" : ""}: ${COLD_STARTS} cold start(s) and ${INVOCATIONS} warm invocations per function, ${os.cpus().length} CPUs`,
        );

        const rendererHandler = path.join(image.taskRoot, "renderer", "handler.js");
        const jobApiModule = path.join(shipped.jobApi.archiveDir, `${shipped.jobApi.handler.split(".")[0]}.js`);
        console.log(
            line(
                "cold start, renderer (image ENTRYPOINT + CMD, spawn to first /next)",
                await coldStarts(rendererOptions, COLD_STARTS),
                await plainLoads(rendererOptions, rendererHandler, COLD_STARTS),
                "node loading the same handler",
            ),
        );
        console.log(
            line(
                "cold start, job API (nodejs22.x runtime client, spawn to first /next)",
                await coldStarts(jobApiOptions, COLD_STARTS),
                await plainLoads(jobApiOptions, jobApiModule, COLD_STARTS),
                "node loading the same archive",
            ),
        );

        // An empty batch: the renderer answers at once, with no S3 or SQS request; what remains is the path itself.
        const emptyBatch = { Records: [] };
        const renderer = await startLambdaSandbox(rendererOptions);
        sandboxes.push(renderer);
        await renderer.start();
        const inProcessRenderer = createRendererHandler({
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: rendererSettingsFromEnvironment({ ...rendererOptions.functionEnvironment }),
        });
        const viaRuntime = await timed(INVOCATIONS, async () => {
            const result = await renderer.invoke(emptyBatch);
            if (!result.ok) throw new Error(`the renderer failed: ${result.error.errorMessage}`);
        });
        const inProcess = await timed(INVOCATIONS, () => inProcessRenderer(emptyBatch as never));
        console.log(line("invocation, renderer (an empty SQS batch)", viaRuntime, inProcess, "in-process handler"));

        // A path no route serves: the job API answers 404 itself, with no S3 or SQS request (the emulator runs in this
        // process, so a request to it would weigh on the in-process side alone).
        const statusEvent = {
            version: "2.0",
            routeKey: "$default",
            rawPath: "/bench/no-such-route",
            requestContext: { http: { method: "GET", path: "/bench/no-such-route" } },
            isBase64Encoded: false,
        };
        const jobApi = await startLambdaSandbox(jobApiOptions);
        sandboxes.push(jobApi);
        await jobApi.start();
        const inProcessJobApi = createJobApiHandler({
            s3: emulator.s3,
            sqs: emulator.sqs,
            settings: jobApiSettingsFromEnvironment(jobApiOptions.functionEnvironment),
        });
        const jobApiViaRuntime = await timed(INVOCATIONS, async () => {
            const result = await jobApi.invoke(statusEvent);
            if (!result.ok || (result.payload as { statusCode: number }).statusCode !== 404)
                throw new Error(`the job API answered ${JSON.stringify(result)}`);
        });
        const jobApiInProcess = await timed(INVOCATIONS, () => inProcessJobApi(statusEvent));
        console.log(
            line(
                "invocation, job API (a 404 from its router)",
                jobApiViaRuntime,
                jobApiInProcess,
                "in-process handler",
            ),
        );
    } finally {
        for (const sandbox of sandboxes) await sandbox.stop();
        await emulator?.stop();
        fs.rmSync(scratch, { recursive: true, force: true });
    }
}

main().then(
    () => process.exit(0),
    (error) => {
        console.error(`runtime benchmark failed: ${error instanceof Error ? error.stack : String(error)}`);
        process.exit(1);
    },
);
