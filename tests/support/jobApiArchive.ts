// The job API as it ships: the archive a mocked `pulumi up` serializes, unpacked, and run as Lambda's nodejs22.x
// runtime runs it (aws-lambda-ric with _HANDLER = the archive's handler, only the AWS SDK beside it, the Runtime
// API stand-in), against the S3/SQS emulator.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { Emulator, FarmResources } from "../../local/emulator";
import { imagePackages, nodeForRuntime } from "../../local/imagePackages";
import { LambdaSandbox, LambdaSandboxOptions, startLambdaSandbox } from "../../local/lambdaSandbox";
import { managedRuntimeDir, managedSandboxOptions } from "../../local/managedRuntime";
import { shippedFunctions } from "../../local/shippedFunctions";
import { PROJECT_ROOT } from "../../local/stackProgram";
import { ENVIRONMENT } from "../../functions/shared/functionEnvironment";

export interface ShippedJobApi {
    /** Sends one API Gateway v2 event to the archive's handler; the reply's body is parsed. */
    invoke(event: unknown): Promise<{ statusCode: number; body: any }>;
    /** POST /jobs with `body`, as API Gateway sends it. */
    submit(body: unknown): Promise<{ statusCode: number; body: any }>;
    /** The function's environment as the stack sets it. */
    variables: Record<string, string>;
    sandbox: LambdaSandbox;
    /** How its sandbox was started: for a variant (another environment). */
    sandboxOptions: LambdaSandboxOptions;
    /** Ends its runtime process. */
    stop(): Promise<void>;
}

/** Serializes the dev stack's job API, unpacks it, and runs it with its environment pointed at the emulator. */
export async function shippedJobApi(emulator: Emulator, farm: FarmResources): Promise<ShippedJobApi> {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "job-api-lambda-"));
    const { jobApi } = await shippedFunctions(path.join(scratch, "task"));
    const sandboxOptions = managedSandboxOptions(
        {
            runtime: jobApi.runtime,
            functionName: "render-farm-api",
            handler: jobApi.handler,
            taskRoot: jobApi.archiveDir,
            functionEnvironment: {
                ...jobApi.variables,
                [ENVIRONMENT.scenesBucket]: farm.scenesBucket,
                [ENVIRONMENT.rendersBucket]: farm.rendersBucket,
                [ENVIRONMENT.frameQueueUrl]: farm.frameQueueUrl,
                [ENVIRONMENT.deadLetterQueueUrl]: farm.deadLetterQueueUrl,
                AWS_ENDPOINT_URL: emulator.endpoint,
            },
            memoryMb: jobApi.memoryMb,
            timeoutSeconds: jobApi.timeoutSeconds,
            region: emulator.region,
            credentials: emulator.credentials,
        },
        {
            node: nodeForRuntime(PROJECT_ROOT),
            packages: await imagePackages(PROJECT_ROOT),
            runtimeDir: managedRuntimeDir(PROJECT_ROOT, path.join(scratch, "runtime")),
        },
    );
    const sandbox = await startLambdaSandbox(sandboxOptions);
    const shipped: ShippedJobApi = {
        variables: jobApi.variables,
        sandbox,
        sandboxOptions,
        async invoke(event) {
            const result = await sandbox.invoke(event);
            if (!result.ok)
                throw new Error(
                    `the job API failed: ${result.error.errorType}: ${result.error.errorMessage}\n${sandbox.output()}`,
                );
            const reply = result.payload as { statusCode: number; body: string };
            return { statusCode: reply.statusCode, body: JSON.parse(reply.body) };
        },
        submit(body) {
            return shipped.invoke({
                version: "2.0",
                routeKey: "POST /jobs",
                rawPath: "/jobs",
                requestContext: { http: { method: "POST", path: "/jobs" } },
                body: JSON.stringify(body),
                isBase64Encoded: false,
            });
        },
        stop: () => sandbox.stop(),
    };
    return shipped;
}
