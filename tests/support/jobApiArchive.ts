// The job API as it ships: the archive a mocked `pulumi up` serializes, unpacked, and run once per call in
// a fresh Node process the way Lambda's nodejs22.x runtime runs it, against the S3/SQS emulator.
import * as childProcess from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as util from "util";
import type { Emulator, FarmResources } from "../../local/emulator";
import { archiveFiles, writeArchive } from "./archive";
import { PROJECT_ROOT, runProgram, stackConfig } from "./pulumiProgram";
import { ENVIRONMENT } from "../../functions/shared/farmSettings";

const execFile = util.promisify(childProcess.execFile);

export interface ShippedJobApi {
    /** Sends one API Gateway v2 event to the archive's `__index.handler`; the reply's body is parsed. */
    invoke(event: unknown): Promise<{ statusCode: number; body: any }>;
    /** The function's environment as the stack sets it. */
    variables: Record<string, string>;
}

/** What the nodejs22.x runtime puts beside a function: the AWS SDK v3, and nothing else of this project's packages. */
function runtimeProvidedModules(): string {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "lambda-runtime-modules-"));
    fs.mkdirSync(path.join(directory, "@aws-sdk"));
    for (const client of ["client-s3", "client-sqs"])
        fs.symlinkSync(
            path.join(PROJECT_ROOT, "node_modules", "@aws-sdk", client),
            path.join(directory, "@aws-sdk", client),
        );
    return directory;
}

/** Serializes the dev stack's job API, unpacks it, and points its environment at the emulator's resources. */
export async function shippedJobApi(emulator: Emulator, farm: FarmResources): Promise<ShippedJobApi> {
    const jobApi = (await runProgram(stackConfig("dev"))).named("render-farm-api-function");
    const archiveDir = writeArchive(
        await archiveFiles(jobApi.inputs.code),
        fs.mkdtempSync(path.join(os.tmpdir(), "job-api-lambda-")),
    );
    const runtimeModules = runtimeProvidedModules();
    const variables = jobApi.inputs.environment.variables as Record<string, string>;
    const environment = {
        ...variables,
        [ENVIRONMENT.scenesBucket]: farm.scenesBucket,
        [ENVIRONMENT.rendersBucket]: farm.rendersBucket,
        [ENVIRONMENT.frameQueueUrl]: farm.frameQueueUrl,
        [ENVIRONMENT.deadLetterQueueUrl]: farm.deadLetterQueueUrl,
        AWS_ENDPOINT_URL: emulator.endpoint,
        AWS_REGION: emulator.region,
        AWS_ACCESS_KEY_ID: emulator.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: emulator.credentials.secretAccessKey,
    };
    const script = `
        const { handler } = require(${JSON.stringify(path.join(archiveDir, "__index.js"))});
        handler(JSON.parse(process.argv[1])).then(
            (result) => { process.stdout.write(JSON.stringify(result)); },
            (error) => { console.error(error); process.exit(3); });`;
    return {
        variables,
        // Asynchronously: the emulator answers from this process.
        async invoke(event) {
            const { stdout } = await execFile(process.execPath, ["-e", script, JSON.stringify(event)], {
                cwd: archiveDir,
                env: { PATH: process.env.PATH ?? "", NODE_PATH: runtimeModules, ...environment },
                encoding: "utf8",
                timeout: 60_000,
            });
            const result = JSON.parse(stdout);
            return { statusCode: result.statusCode, body: JSON.parse(result.body) };
        },
    };
}
