// What `pulumi up` would ship for a stack, taken from the Pulumi program run under mocks: the job API's
// serialized CallbackFunction archive (unpacked as Lambda unpacks it) and both functions' configuration.
import * as fs from "fs";
import * as path from "path";
import { archiveFiles, writeArchive } from "./stackArchive";
import { runProgram, stackConfig } from "./stackProgram";

export interface FunctionConfig {
    /** The stack's environment variables for the function (resource names of the mocked cloud). */
    variables: Record<string, string>;
    memoryMb: number;
    timeoutSeconds: number;
}

export interface ShippedFunctions {
    jobApi: FunctionConfig & {
        /** The unpacked archive: Lambda's /var/task for it. */
        archiveDir: string;
        /** e.g. __index.handler */
        handler: string;
        /** e.g. nodejs22.x */
        runtime: string;
    };
    renderer: FunctionConfig;
}

const JOB_API_FUNCTION = "render-farm-api-function";
const RENDERER_FUNCTION = "render-farm-renderer-function";

/** Runs the program with the stack's config (default Pulumi.dev.yaml) and unpacks the job API into `archiveDir`. */
export async function shippedFunctions(archiveDir: string, stack = "dev"): Promise<ShippedFunctions> {
    const run = await runProgram(stackConfig(stack));
    const jobApi = run.named(JOB_API_FUNCTION);
    const renderer = run.named(RENDERER_FUNCTION);
    fs.mkdirSync(archiveDir, { recursive: true });
    writeArchive(await archiveFiles(jobApi.inputs.code), archiveDir);
    const handler = String(jobApi.inputs.handler);
    if (!fs.existsSync(path.join(archiveDir, `${handler.split(".")[0]}.js`)))
        throw new Error(`the job API archive has no module for its handler ${handler}`);
    return {
        jobApi: {
            archiveDir,
            handler,
            runtime: String(jobApi.inputs.runtime),
            variables: { ...jobApi.inputs.environment.variables },
            memoryMb: Number(jobApi.inputs.memorySize),
            timeoutSeconds: Number(jobApi.inputs.timeout),
        },
        renderer: {
            variables: { ...renderer.inputs.environment.variables },
            memoryMb: Number(renderer.inputs.memorySize),
            timeoutSeconds: Number(renderer.inputs.timeout),
        },
    };
}
