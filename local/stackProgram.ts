// Runs the Pulumi program (index.ts) under pulumi.runtime.setMocks, with a stack's config read from
// Pulumi.<stack>.yaml the way `pulumi up` passes it, and records every resource it registers: what the
// infrastructure tests check, and where the local farm's Lambda runtime mode takes the shipped job API from.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as yaml from "js-yaml";

/** The checkout: the first folder up from here with Pulumi.yaml (this module may run compiled, from dist/local/). */
function projectRoot(): string {
    for (let dir = path.join(__dirname, ".."); dir !== path.dirname(dir); dir = path.dirname(dir))
        if (fs.existsSync(path.join(dir, "Pulumi.yaml"))) return dir;
    return path.join(__dirname, "..");
}

export const PROJECT_ROOT = projectRoot();
const ACCOUNT = "123456789012";

export interface RecordedResource {
    type: string;
    name: string;
    // biome-ignore lint/suspicious/noExplicitAny: inputs of any resource type, read freely by the infrastructure tests
    inputs: any;
    // biome-ignore lint/suspicious/noExplicitAny: as inputs, plus what the mocked cloud computed
    state: any;
    /** The type chain of the URN, e.g. `render-farm:index:RenderFarm$render-farm:index:Storage$aws:s3/bucket:Bucket`. */
    qualifiedType: string;
}

export interface ProgramRun {
    resources: RecordedResource[];
    outputs: Record<string, unknown>;
    ofType(type: string): RecordedResource[];
    named(name: string): RecordedResource;
}

/** The stack's config as `pulumi up` passes it to the program: every value a string, lists as JSON. */
export function stackConfig(stack = "dev"): Record<string, string> {
    const file = path.join(PROJECT_ROOT, `Pulumi.${stack}.yaml`);
    const document = yaml.load(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> };
    const config: Record<string, string> = {};
    for (const [key, value] of Object.entries(document.config ?? {})) {
        config[key] = typeof value === "string" ? value : JSON.stringify(value);
    }
    return config;
}

/** What the cloud computes for a new resource: ids, ARNs, URLs, digests. */
// biome-ignore lint/suspicious/noExplicitAny: inputs and state of any resource type
function cloudState(type: string, name: string, inputs: any): { id: string; state: any } {
    const id = `${name}-${crypto
        .createHash("sha256")
        .update(type + name)
        .digest("hex")
        .slice(0, 7)}`;
    const region = "us-east-1";
    // biome-ignore lint/suspicious/noExplicitAny: filled per resource type below
    const state: any = { ...inputs };
    switch (type) {
        case "aws:s3/bucket:Bucket":
            Object.assign(state, { bucket: id, arn: `arn:aws:s3:::${id}` });
            break;
        case "aws:sqs/queue:Queue":
            Object.assign(state, {
                name: id,
                url: `https://sqs.${region}.amazonaws.com/${ACCOUNT}/${id}`,
                arn: `arn:aws:sqs:${region}:${ACCOUNT}:${id}`,
            });
            break;
        case "aws:ecr/repository:Repository":
            Object.assign(state, {
                name: id,
                registryId: ACCOUNT,
                repositoryUrl: `${ACCOUNT}.dkr.ecr.${region}.amazonaws.com/${id}`,
                arn: `arn:aws:ecr:${region}:${ACCOUNT}:repository/${id}`,
            });
            break;
        case "docker:index/image:Image": {
            const repository = String(inputs.imageName).replace(/:[^:/]+$/, "");
            const digest = crypto
                .createHash("sha256")
                .update(JSON.stringify(inputs.build ?? {}))
                .digest("hex");
            Object.assign(state, { repoDigest: `${repository}@sha256:${digest}` });
            break;
        }
        case "aws:lambda/function:Function":
            Object.assign(state, {
                name: id,
                arn: `arn:aws:lambda:${region}:${ACCOUNT}:function:${id}`,
                invokeArn: `arn:aws:apigateway:${region}:lambda:path/2015-03-31/functions/arn:aws:lambda:${region}:${ACCOUNT}:function:${id}/invocations`,
            });
            break;
        case "aws:iam/role:Role":
            Object.assign(state, { name: id, arn: `arn:aws:iam::${ACCOUNT}:role/${id}` });
            break;
        case "aws:cloudwatch/logGroup:LogGroup":
            Object.assign(state, { name: id, arn: `arn:aws:logs:${region}:${ACCOUNT}:log-group:${id}` });
            break;
        case "aws:apigatewayv2/api:Api":
            Object.assign(state, {
                apiEndpoint: `https://${id}.execute-api.${region}.amazonaws.com`,
                executionArn: `arn:aws:execute-api:${region}:${ACCOUNT}:${id}`,
            });
            break;
        default:
            state.arn = state.arn ?? `arn:aws:mock:${region}:${ACCOUNT}:${id}`;
    }
    return { id, state };
}

// biome-ignore lint/suspicious/noExplicitAny: the arguments of any invoke
function mockCall(token: string, inputs: any): Record<string, unknown> {
    switch (token) {
        case "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                userName: "AWS",
                password: "mock-registry-token",
                proxyEndpoint: `https://${ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`,
                registryId: inputs.registryId,
            };
        case "aws:index/getRegion:getRegion":
            return {
                region: "us-east-1",
                name: "us-east-1",
                id: "us-east-1",
                endpoint: "ec2.us-east-1.amazonaws.com",
                description: "US East (N. Virginia)",
            };
        default:
            throw new Error(`no mock for invoke ${token}`);
    }
}

/** Forgets the program's modules, so the next import runs the program again with the current config. */
function forgetProjectModules(): void {
    for (const file of Object.keys(require.cache)) {
        if (
            file.startsWith(PROJECT_ROOT) &&
            !file.includes(`${path.sep}node_modules${path.sep}`) &&
            !file.includes(`${path.sep}tests${path.sep}`) &&
            !file.startsWith(path.join(PROJECT_ROOT, "local") + path.sep) &&
            !file.startsWith(path.join(PROJECT_ROOT, "dist") + path.sep)
        ) {
            delete require.cache[file];
        }
    }
}

/** Runs index.ts under mocks with `config` (default: Pulumi.dev.yaml's) and waits until every resource is registered. */
export async function runProgram(config: Record<string, string> = stackConfig()): Promise<ProgramRun> {
    const resources: RecordedResource[] = [];
    pulumi.runtime.setAllConfig(config);
    await pulumi.runtime.setMocks(
        {
            newResource: (args) => {
                const { id, state } = cloudState(args.type, args.name, args.inputs);
                resources.push({ type: args.type, name: args.name, inputs: args.inputs, state, qualifiedType: "" });
                return { id, state };
            },
            call: (args) => mockCall(args.token, args.inputs),
        },
        "render-farm",
        "dev",
        false,
    );
    forgetProjectModules();
    const program = await import(path.join(PROJECT_ROOT, "index"));
    const outputs: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(program)) {
        outputs[name] = await promiseOf(value as pulumi.Input<unknown>);
    }
    // The outputs resolve before every child is registered; wait until the graph stops growing.
    let registered = -1;
    while (registered !== resources.length) {
        registered = resources.length;
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const monitor = pulumi.runtime.getMonitor() as unknown as { getRegisteredResources(): Map<string, unknown> };
    const urns = [...monitor.getRegisteredResources().keys()];
    for (const resource of resources) {
        const urn = urns.find(
            (candidate) =>
                candidate.endsWith(`::${resource.name}`) && candidate.split("::")[2].split("$").pop() === resource.type,
        );
        resource.qualifiedType = urn ? urn.split("::")[2] : "";
    }
    return {
        resources,
        outputs,
        ofType: (type) => resources.filter((resource) => resource.type === type),
        named: (name) => {
            const found = resources.find((resource) => resource.name === name);
            if (!found)
                throw new Error(
                    `no resource named ${name}; have ${resources.map((resource) => resource.name).join(", ")}`,
                );
            return found;
        },
    };
}

export function promiseOf<T>(value: pulumi.Input<T>): Promise<T> {
    return new Promise((resolve) => pulumi.output(value).apply((resolved) => resolve(resolved as T)));
}
