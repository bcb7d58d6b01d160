// Least privilege, evaluated: the IAM documents the Pulumi program produces (under mocks) run through an IAM
// policy simulator (@cloud-copilot/iam-simulate) for a table of requests, and every S3/SQS call the handlers
// really make (against the emulator) is checked against the same documents.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, PurgeQueueCommand, SQSClient } from "@aws-sdk/client-sqs";
import { runSimulation } from "@cloud-copilot/iam-simulate";
import { createJobApiHandler, HttpApiEvent } from "../functions/jobApi/handler";
import { createRendererHandler } from "../functions/renderer/consumer";
import { frameTilesPrefix } from "../functions/shared/contract";
import { DEFAULT_RENDER_LIMITS } from "../functions/renderer/settings";
import { createFarmResources, emulatorClients, Emulator, FarmResources, startEmulator } from "../local/emulator";
import { pollOnce } from "../local/eventSourcePoller";
import { ProgramRun, runProgram } from "./support/pulumiProgram";
import { BLENDER, makeScene } from "./support/scenes";

const ACCOUNT = "123456789012";
type Decision = "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied";
type Role = "renderer" | "jobApi";

/** The documents under test and the ARNs they name, all taken from the mocked program's state. */
interface Farm {
    identityPolicy: Record<Role, any>;
    trustPolicy: Record<Role, any>;
    roleName: Record<Role, string>;
    roleArn: Record<Role, string>;
    functionArn: Record<Role, string>;
    logGroupArn: Record<Role, string>;
    bucketArn: { scenes: string; renders: string };
    bucketPolicy: { scenes: any; renders: any };
    queueArn: { frames: string; dlq: string };
    /** Owner names of the IAM documents the table used, to prove it covers all of them. */
    used: Set<string>;
}

const FOREIGN_BUCKET_ARN = "arn:aws:s3:::someone-elses-bucket";
const FOREIGN_QUEUE_ARN = `arn:aws:sqs:us-east-1:${ACCOUNT}:someone-elses-queue`;
const FOREIGN_LOG_GROUP_ARN = `arn:aws:logs:us-east-1:${ACCOUNT}:log-group:/aws/lambda/someone-else`;

function farmOf(run: ProgramRun): Farm {
    const policy = (name: string) => JSON.parse(run.named(name).inputs.policy);
    const bucket = (name: string) => run.named(name).state;
    const bucketPolicyOf = (bucketName: string) => {
        const found = run
            .ofType("aws:s3/bucketPolicy:BucketPolicy")
            .find((resource) => resource.inputs.bucket === bucket(bucketName).bucket);
        assert.ok(found, `a bucket policy for ${bucketName}`);
        return JSON.parse(found!.inputs.policy);
    };
    return {
        identityPolicy: { renderer: policy("render-farm-renderer-policy"), jobApi: policy("render-farm-api-policy") },
        trustPolicy: {
            renderer: JSON.parse(run.named("render-farm-renderer-role").inputs.assumeRolePolicy),
            jobApi: JSON.parse(run.named("render-farm-api-role").inputs.assumeRolePolicy),
        },
        roleName: {
            renderer: run.named("render-farm-renderer-role").state.name,
            jobApi: run.named("render-farm-api-role").state.name,
        },
        roleArn: {
            renderer: run.named("render-farm-renderer-role").state.arn,
            jobApi: run.named("render-farm-api-role").state.arn,
        },
        functionArn: {
            renderer: run.named("render-farm-renderer-function").state.arn,
            jobApi: run.named("render-farm-api-function").state.arn,
        },
        logGroupArn: {
            renderer: run.named("render-farm-renderer-logs").state.arn,
            jobApi: run.named("render-farm-api-logs").state.arn,
        },
        bucketArn: {
            scenes: bucket("render-farm-storage-scenes").arn,
            renders: bucket("render-farm-storage-renders").arn,
        },
        bucketPolicy: {
            scenes: bucketPolicyOf("render-farm-storage-scenes"),
            renders: bucketPolicyOf("render-farm-storage-renders"),
        },
        queueArn: {
            frames: run.named("render-farm-frames-queue").state.arn,
            dlq: run.named("render-farm-frames-dlq").state.arn,
        },
        used: new Set(),
    };
}

/**
 * A readable target, e.g. "scenes/shots/a/scene.blend", "renders bucket", "frames queue", "renderer logs",
 * resolved to the ARN from the mocked state, plus the resource policy S3 would apply to it.
 */
function resolveTarget(farm: Farm, target: string): { arn: string; resourcePolicy?: { owner: string; document: any } } {
    const s3 = /^(scenes|renders|foreign)(?:\/(.*)| bucket)$/.exec(target);
    if (s3) {
        const [, which, key] = s3;
        const bucketArn = which === "foreign" ? FOREIGN_BUCKET_ARN : farm.bucketArn[which as "scenes" | "renders"];
        const arn = key === undefined ? bucketArn : `${bucketArn}/${key}`;
        if (which === "foreign") return { arn };
        return {
            arn,
            resourcePolicy: { owner: `${which}-tls-only`, document: farm.bucketPolicy[which as "scenes" | "renders"] },
        };
    }
    const fixed: Record<string, string> = {
        "frames queue": farm.queueArn.frames,
        "dead-letter queue": farm.queueArn.dlq,
        "foreign queue": FOREIGN_QUEUE_ARN,
        // Lambda's log streams: <date>/[<version>]<id>, inside the function's own group.
        "renderer logs": `${farm.logGroupArn.renderer}:log-stream:2025/01/01/[$LATEST]0123abcd`,
        "job API logs": `${farm.logGroupArn.jobApi}:log-stream:2025/01/01/[$LATEST]0123abcd`,
        "foreign logs": `${FOREIGN_LOG_GROUP_ARN}:log-stream:2025/01/01/[$LATEST]0123abcd`,
        "renderer role": farm.roleArn.renderer,
        "job API role": farm.roleArn.jobApi,
        "renderer function": farm.functionArn.renderer,
        "job API function": farm.functionArn.jobApi,
    };
    if (fixed[target]) return { arn: fixed[target] };
    throw new Error(`unknown target ${target}`);
}

/**
 * The condition keys the requests below carry, as AWS sets them: aws:SecureTransport on every request, s3:prefix on a
 * listing that names a prefix. A policy condition on any other key would be evaluated as absent: the coverage suite
 * fails on one.
 */
const MODELED_CONDITION_KEYS = ["aws:SecureTransport", "s3:prefix"];

/** The request context of `action`: TLS or not, and a listing's prefix (absent when the listing names none). */
function requestContext(secureTransport: boolean, listPrefix?: string): Record<string, string> {
    return {
        "aws:SecureTransport": String(secureTransport),
        ...(listPrefix !== undefined ? { "s3:prefix": listPrefix } : {}),
    };
}

/**
 * What the simulator decides for `role` (as its Lambda session) doing `action` on `arn` with `context`; `identityPolicy`
 * replaces the role's own (the coverage suite takes statements out of it).
 */
async function decide(
    farm: Farm,
    role: Role,
    action: string,
    arn: string,
    resourcePolicy: { owner: string; document: any } | undefined,
    context: Record<string, string>,
    identityPolicy: any = farm.identityPolicy[role],
): Promise<Decision> {
    farm.used.add(`${role}-policy`);
    if (resourcePolicy) farm.used.add(resourcePolicy.owner);
    const response = await runSimulation(
        {
            request: {
                principal: `arn:aws:sts::${ACCOUNT}:assumed-role/${farm.roleName[role]}/${role}-session`,
                action,
                resource: { resource: arn, accountId: ACCOUNT },
                contextVariables: context,
            },
            identityPolicies: [{ name: `${role}-policy`, policy: identityPolicy }],
            serviceControlPolicies: [],
            resourceControlPolicies: [],
            resourcePolicy: resourcePolicy?.document,
        },
        {},
    );
    // A request the simulator cannot evaluate (unknown action, wrong ARN type) is a broken row, not a denial.
    if (response.resultType === "error")
        throw new Error(`the simulator refused ${action} on ${arn}: ${JSON.stringify(response.errors)}`);
    return response.overallResult as Decision;
}

interface Row {
    role: Role;
    action: string;
    target: string;
    expect: Decision;
    /** Default true: Lambda's SDK calls always use TLS. */
    secure?: boolean;
    /** For s3:ListBucket: the prefix the listing names (the s3:prefix condition key); none by default. */
    prefix?: string;
}

const allow = (role: Role, action: string, target: string, prefix?: string): Row => ({
    role,
    action,
    target,
    expect: "Allowed",
    ...(prefix !== undefined ? { prefix } : {}),
});
const deny = (role: Role, action: string, target: string, prefix?: string): Row => ({
    role,
    action,
    target,
    expect: "ImplicitlyDenied",
    ...(prefix !== undefined ? { prefix } : {}),
});

/** The decision for a table row, against the role's own policy or `identityPolicy`. */
async function decideRow(farm: Farm, row: Row, identityPolicy?: any): Promise<Decision> {
    const { arn, resourcePolicy } = resolveTarget(farm, row.target);
    const context = requestContext(row.secure !== false, row.prefix);
    return decide(farm, row.role, row.action, arn, resourcePolicy, context, identityPolicy);
}

const JOB = "shot-010-v3";
const TABLE: Row[] = [
    // The renderer: read scenes and assets, write frames and records, consume the frame queue, write its own logs.
    allow("renderer", "s3:GetObject", "scenes/shots/a/scene.blend"),
    allow("renderer", "s3:GetObject", "scenes/shots/a/textures/wood.png"),
    allow("renderer", "s3:PutObject", `renders/renders/${JOB}/frame_0001.png`),
    allow("renderer", "s3:PutObject", `renders/jobs/${JOB}/frames/1.json`),
    // A frame's multipart upload that failed is aborted (its parts are PutObject); only frames go up in parts.
    allow("renderer", "s3:AbortMultipartUpload", `renders/renders/${JOB}/frame_0001.exr`),
    deny("renderer", "s3:AbortMultipartUpload", `renders/jobs/${JOB}/job.json`),
    deny("renderer", "s3:AbortMultipartUpload", "scenes/shots/a/scene.blend"),
    // Under jobs/ the renderer writes its frame records, nothing else: the manifest is the job API's.
    deny("renderer", "s3:PutObject", `renders/jobs/${JOB}/job.json`),
    deny("renderer", "s3:PutObject", `renders/jobs/${JOB}/summary.json`),
    deny("renderer", "s3:DeleteObject", `renders/renders/${JOB}/frame_0001.png`),
    deny("renderer", "s3:DeleteObject", `renders/jobs/${JOB}/frames/1.json`),
    deny("renderer", "s3:DeleteObject", "scenes/shots/a/scene.blend"),
    deny("renderer", "s3:PutObject", "scenes/shots/a/scene.blend"),
    deny("renderer", "s3:PutObject", "renders/public/index.html"),
    deny("renderer", "s3:PutObject", `renders/renders-${JOB}/frame_0001.png`),
    deny("renderer", "s3:GetObject", `renders/renders/${JOB}/frame_0001.png`),
    // Before a frame it reads the job's stop and manifest (budget, fail-fast), and it may stop the job; nothing else.
    allow("renderer", "s3:GetObject", `renders/jobs/${JOB}/job.json`),
    allow("renderer", "s3:GetObject", `renders/jobs/${JOB}/stop.json`),
    allow("renderer", "s3:PutObject", `renders/jobs/${JOB}/stop.json`),
    deny("renderer", "s3:GetObject", `renders/jobs/${JOB}/queue.json`),
    deny("renderer", "s3:PutObject", `renders/jobs/${JOB}/queue.json`),
    allow("renderer", "s3:GetObject", `renders/jobs/${JOB}/frames/7.json`),
    // The frame summary lives beside the records: a renderer updates its frame's shard with If-Match.
    allow("renderer", "s3:GetObject", `renders/jobs/${JOB}/frames/summary/0-7.json`),
    allow("renderer", "s3:PutObject", `renders/jobs/${JOB}/frames/summary/0-7.json`),
    // A tiled frame: its tiles' records and images and the stitch marker, under jobs/<jobId>/tiles/ only.
    allow("renderer", "s3:PutObject", `renders/jobs/${JOB}/tiles/7/3.png`),
    allow("renderer", "s3:GetObject", `renders/jobs/${JOB}/tiles/7/3.json`),
    allow("renderer", "s3:DeleteObject", `renders/jobs/${JOB}/tiles/7/3.exr`),
    allow("renderer", "s3:PutObject", `renders/jobs/${JOB}/tiles/7/stitch.json`),
    deny("renderer", "s3:DeleteObject", `renders/jobs/${JOB}/stop.json`),
    allow("renderer", "s3:ListBucket", "scenes bucket"),
    // The stitch lists a frame's tiles (which are done); no other listing of the renders bucket.
    allow("renderer", "s3:ListBucket", "renders bucket", `jobs/${JOB}/tiles/7/`),
    deny("renderer", "s3:ListBucket", "renders bucket"),
    deny("renderer", "s3:ListBucket", "renders bucket", ""),
    deny("renderer", "s3:ListBucket", "renders bucket", `jobs/${JOB}/frames/`),
    deny("renderer", "s3:ListBucket", "renders bucket", `renders/${JOB}/`),
    deny("renderer", "s3:ListBucket", "renders bucket", "jobs/"),
    deny("renderer", "s3:PutBucketPolicy", "renders bucket"),
    {
        role: "renderer",
        action: "s3:GetObject",
        target: "scenes/shots/a/scene.blend",
        expect: "ExplicitlyDenied",
        secure: false,
    },
    {
        role: "renderer",
        action: "s3:PutObject",
        target: `renders/renders/${JOB}/frame_0001.png`,
        expect: "ExplicitlyDenied",
        secure: false,
    },
    deny("renderer", "s3:GetObject", "foreign/shots/a/scene.blend"),
    deny("renderer", "s3:PutObject", `foreign/renders/${JOB}/frame_0001.png`),
    deny("renderer", "s3:ListBucket", "foreign bucket"),
    allow("renderer", "sqs:ReceiveMessage", "frames queue"),
    allow("renderer", "sqs:DeleteMessage", "frames queue"),
    allow("renderer", "sqs:ChangeMessageVisibility", "frames queue"),
    allow("renderer", "sqs:GetQueueAttributes", "frames queue"),
    deny("renderer", "sqs:SendMessage", "frames queue"),
    deny("renderer", "sqs:PurgeQueue", "frames queue"),
    deny("renderer", "sqs:ReceiveMessage", "dead-letter queue"),
    deny("renderer", "sqs:DeleteMessage", "dead-letter queue"),
    deny("renderer", "sqs:SendMessage", "dead-letter queue"),
    deny("renderer", "sqs:ReceiveMessage", "foreign queue"),
    deny("renderer", "sqs:SendMessage", "foreign queue"),
    allow("renderer", "logs:CreateLogStream", "renderer logs"),
    allow("renderer", "logs:PutLogEvents", "renderer logs"),
    deny("renderer", "logs:PutLogEvents", "job API logs"),
    deny("renderer", "logs:PutLogEvents", "foreign logs"),
    deny("renderer", "iam:PassRole", "renderer role"),
    deny("renderer", "iam:PassRole", "job API role"),
    deny("renderer", "lambda:InvokeFunction", "job API function"),
    deny("renderer", "lambda:InvokeFunction", "renderer function"),

    // The job API: find and head scenes, read and write the ledger, queue frames, write its own logs.
    allow("jobApi", "s3:ListBucket", "scenes bucket"),
    allow("jobApi", "s3:GetObject", "scenes/shots/a/scene.blend"),
    allow("jobApi", "s3:ListBucket", "renders bucket"),
    allow("jobApi", "s3:GetObject", `renders/jobs/${JOB}/job.json`),
    allow("jobApi", "s3:PutObject", `renders/jobs/${JOB}/job.json`),
    allow("jobApi", "s3:PutObject", `renders/jobs/${JOB}/frames/1.json`),
    // No rollback deletes anything: a submit or retry that could not queue every frame keeps its queue progress.
    deny("jobApi", "s3:DeleteObject", `renders/jobs/${JOB}/job.json`),
    deny("jobApi", "s3:DeleteObject", `renders/jobs/${JOB}/queue.json`),
    deny("jobApi", "s3:DeleteObject", `renders/jobs/${JOB}/frames/7.json`),
    deny("jobApi", "s3:DeleteObject", `renders/jobs/${JOB}/frames/summary/0-7.json`),
    // A retry of a frame whose stitch failed deletes its tiles' records and images, so they render again.
    allow("jobApi", "s3:DeleteObject", `renders/jobs/${JOB}/tiles/7/3.json`),
    allow("jobApi", "s3:DeleteObject", `renders/jobs/${JOB}/tiles/7/3.png`),
    allow("jobApi", "s3:PutObject", `renders/jobs/${JOB}/queue.json`),
    allow("jobApi", "s3:PutObject", `renders/jobs/${JOB}/frames/summary/0-7.json`),
    deny("jobApi", "s3:PutObject", "scenes/shots/a/scene.blend"),
    deny("jobApi", "s3:DeleteObject", "scenes/shots/a/scene.blend"),
    deny("jobApi", "s3:PutObject", `renders/renders/${JOB}/frame_0001.png`),
    // No code of the job API reads frames: it reports them from their records.
    deny("jobApi", "s3:GetObject", `renders/renders/${JOB}/frame_0001.png`),
    deny("jobApi", "s3:DeleteObject", `renders/renders/${JOB}/frame_0001.png`),
    deny("jobApi", "s3:PutObject", "renders/public/index.html"),
    deny("jobApi", "s3:PutBucketPolicy", "scenes bucket"),
    {
        role: "jobApi",
        action: "s3:PutObject",
        target: `renders/jobs/${JOB}/job.json`,
        expect: "ExplicitlyDenied",
        secure: false,
    },
    { role: "jobApi", action: "s3:ListBucket", target: "scenes bucket", expect: "ExplicitlyDenied", secure: false },
    deny("jobApi", "s3:GetObject", "foreign/shots/a/scene.blend"),
    deny("jobApi", "s3:PutObject", `foreign/jobs/${JOB}/job.json`),
    deny("jobApi", "s3:ListBucket", "foreign bucket"),
    allow("jobApi", "sqs:SendMessage", "frames queue"),
    // POST /jobs/{jobId}/retry asks whether the frame queue is empty before requeueing lost frames.
    allow("jobApi", "sqs:GetQueueAttributes", "frames queue"),
    deny("jobApi", "sqs:ReceiveMessage", "frames queue"),
    deny("jobApi", "sqs:DeleteMessage", "frames queue"),
    deny("jobApi", "sqs:ChangeMessageVisibility", "frames queue"),
    deny("jobApi", "sqs:PurgeQueue", "frames queue"),
    deny("jobApi", "sqs:SendMessage", "dead-letter queue"),
    // A retry removes the dead letters of the frames it requeued: it finds and deletes them, nothing more.
    allow("jobApi", "sqs:ReceiveMessage", "dead-letter queue"),
    allow("jobApi", "sqs:DeleteMessage", "dead-letter queue"),
    deny("jobApi", "sqs:ChangeMessageVisibility", "dead-letter queue"),
    deny("jobApi", "sqs:PurgeQueue", "dead-letter queue"),
    deny("jobApi", "sqs:GetQueueAttributes", "dead-letter queue"),
    deny("jobApi", "sqs:SendMessage", "foreign queue"),
    allow("jobApi", "logs:CreateLogStream", "job API logs"),
    allow("jobApi", "logs:PutLogEvents", "job API logs"),
    deny("jobApi", "logs:PutLogEvents", "renderer logs"),
    deny("jobApi", "logs:PutLogEvents", "foreign logs"),
    deny("jobApi", "iam:PassRole", "renderer role"),
    deny("jobApi", "lambda:InvokeFunction", "renderer function"),
    deny("jobApi", "lambda:InvokeFunction", "job API function"),
];

/** sts:AssumeRole against each role's trust policy: only the Lambda service may assume it. */
const TRUST_TABLE: { role: Role; principal: string; expect: Decision }[] = [
    { role: "renderer", principal: "lambda.amazonaws.com", expect: "Allowed" },
    { role: "renderer", principal: "ec2.amazonaws.com", expect: "ImplicitlyDenied" },
    { role: "renderer", principal: `arn:aws:iam::${ACCOUNT}:user/artist`, expect: "ImplicitlyDenied" },
    { role: "jobApi", principal: "lambda.amazonaws.com", expect: "Allowed" },
    { role: "jobApi", principal: "apigateway.amazonaws.com", expect: "ImplicitlyDenied" },
    { role: "jobApi", principal: `arn:aws:iam::${ACCOUNT}:user/artist`, expect: "ImplicitlyDenied" },
];

describe("least privilege, evaluated with an IAM policy simulator", function () {
    let farm: Farm;
    let run: ProgramRun;

    before(async function () {
        run = await runProgram();
        farm = farmOf(run);
    });

    describe("the roles' inline policies and the buckets' TLS-only policies", function () {
        for (const row of TABLE) {
            const transport = row.secure === false ? " over plain HTTP" : "";
            const prefix = row.prefix === undefined ? "" : ` with s3:prefix "${row.prefix}"`;
            it(`${row.role} ${row.expect === "Allowed" ? "may" : "may not"} ${row.action} on ${row.target}${prefix}${transport} (${row.expect})`, async function () {
                const decision = await decideRow(farm, row);
                assert.strictEqual(
                    decision,
                    row.expect,
                    `${row.role} ${row.action} ${row.target}${prefix}: simulator says ${decision}`,
                );
            });
        }
    });

    describe("the roles' trust policies", function () {
        for (const row of TRUST_TABLE) {
            it(`${row.principal} ${row.expect === "Allowed" ? "may" : "may not"} assume the ${row.role} role (${row.expect})`, async function () {
                farm.used.add(`${row.role}-trust`);
                // A user needs an identity policy allowing sts:AssumeRole too; give it one, so only the trust policy decides.
                const isUser = row.principal.startsWith("arn:");
                const response = await runSimulation(
                    {
                        request: {
                            principal: row.principal,
                            action: "sts:AssumeRole",
                            resource: { resource: farm.roleArn[row.role], accountId: ACCOUNT },
                            contextVariables: {},
                        },
                        identityPolicies: isUser
                            ? [
                                  {
                                      name: "assume-anything",
                                      policy: {
                                          Version: "2012-10-17",
                                          Statement: [{ Effect: "Allow", Action: "sts:AssumeRole", Resource: "*" }],
                                      },
                                  },
                              ]
                            : [],
                        serviceControlPolicies: [],
                        resourceControlPolicies: [],
                        resourcePolicy: farm.trustPolicy[row.role],
                    },
                    {},
                );
                if (response.resultType === "error") throw new Error(JSON.stringify(response.errors));
                assert.strictEqual(response.overallResult, row.expect);
            });
        }
    });

    // In a suite of its own: mocha runs a suite's own tests before its child suites, and this one must come last.
    describe("coverage", function () {
        it("evaluated every IAM document the program produces, and the table has at least 20 allowed/denied pairs", function () {
            const documents = run.resources.flatMap((resource) =>
                ["policy", "assumeRolePolicy"]
                    .filter(
                        (field) =>
                            typeof resource.inputs[field] === "string" && resource.inputs[field].includes("Statement"),
                    )
                    .map((field) => ({ resource, field })),
            );
            // Map each document to the owner name the table records when it uses it.
            const ownerOf = ({
                resource,
                field,
            }: {
                resource: { name: string; type: string };
                field: string;
            }): string => {
                if (field === "assumeRolePolicy")
                    return resource.name === "render-farm-renderer-role"
                        ? "renderer-trust"
                        : resource.name === "render-farm-api-role"
                          ? "jobApi-trust"
                          : resource.name;
                if (resource.name === "render-farm-renderer-policy") return "renderer-policy";
                if (resource.name === "render-farm-api-policy") return "jobApi-policy";
                if (resource.type === "aws:s3/bucketPolicy:BucketPolicy")
                    return resource.name.includes("scenes") ? "scenes-tls-only" : "renders-tls-only";
                return resource.name;
            };
            const owners = documents.map(ownerOf).sort();
            assert.deepStrictEqual(owners, [
                "jobApi-policy",
                "jobApi-trust",
                "renderer-policy",
                "renderer-trust",
                "renders-tls-only",
                "scenes-tls-only",
            ]);
            for (const owner of owners) assert.ok(farm.used.has(owner), `no row evaluated ${owner}`);
            const allowed = TABLE.filter((row) => row.expect === "Allowed").length;
            const denied = TABLE.length - allowed;
            assert.ok(Math.min(allowed, denied) >= 20, `${allowed} allowed and ${denied} denied rows`);
        });

        it("every statement of each role's policy is what allows some allowed row: taking any one out fails a row", async function () {
            const unneeded: string[] = [];
            for (const role of ["renderer", "jobApi"] as Role[]) {
                const policy = farm.identityPolicy[role];
                const rows = TABLE.filter((row) => row.role === role && row.expect === "Allowed");
                for (const statement of policy.Statement) {
                    const without = { ...policy, Statement: policy.Statement.filter((s: any) => s !== statement) };
                    let needed = false;
                    for (const row of rows) if ((await decideRow(farm, row, without)) !== "Allowed") needed = true;
                    if (!needed) unneeded.push(`${role} ${statement.Sid}`);
                }
                assert.ok(policy.Statement.length >= 5, `${role} has ${policy.Statement.length} statements`);
            }
            assert.deepStrictEqual(unneeded, [], "statements no allowed row depends on");
        });

        it("the requests carry every condition key the IAM documents test (a missing key would read as absent)", function () {
            const keys = new Set<string>();
            const documents = [
                farm.identityPolicy.renderer,
                farm.identityPolicy.jobApi,
                farm.bucketPolicy.scenes,
                farm.bucketPolicy.renders,
                farm.trustPolicy.renderer,
                farm.trustPolicy.jobApi,
            ];
            for (const document of documents)
                for (const statement of document.Statement)
                    for (const operator of Object.values(statement.Condition ?? {}))
                        for (const key of Object.keys(operator as object)) keys.add(key);
            assert.ok(
                keys.has("aws:SecureTransport"),
                `the buckets' TLS-only condition is among ${[...keys].join(", ")}`,
            );
            assert.deepStrictEqual(
                [...keys].filter((key) => !MODELED_CONDITION_KEYS.includes(key)),
                [],
                "condition keys no request of this file sets",
            );
        });
    });
});

// ---- what the handlers really call --------------------------------------------------------------

interface Call {
    role: Role;
    command: string;
    input: any;
}

const IAM_ACTION_OF: Record<string, string> = {
    GetObjectCommand: "s3:GetObject",
    HeadObjectCommand: "s3:GetObject",
    PutObjectCommand: "s3:PutObject",
    // A multipart upload's requests are authorized as PutObject, its abort as AbortMultipartUpload.
    CreateMultipartUploadCommand: "s3:PutObject",
    UploadPartCommand: "s3:PutObject",
    CompleteMultipartUploadCommand: "s3:PutObject",
    AbortMultipartUploadCommand: "s3:AbortMultipartUpload",
    DeleteObjectCommand: "s3:DeleteObject",
    // Authorized as DeleteObject of each of its keys.
    DeleteObjectsCommand: "s3:DeleteObject",
    ListObjectsV2Command: "s3:ListBucket",
    SendMessageCommand: "sqs:SendMessage",
    SendMessageBatchCommand: "sqs:SendMessage",
    ReceiveMessageCommand: "sqs:ReceiveMessage",
    DeleteMessageCommand: "sqs:DeleteMessage",
    DeleteMessageBatchCommand: "sqs:DeleteMessage",
    ChangeMessageVisibilityCommand: "sqs:ChangeMessageVisibility",
    GetQueueAttributesCommand: "sqs:GetQueueAttributes",
};

/** Records every command `client` sends as `role`; with `refuse`, answers the named commands with AccessDenied instead. */
function recordCalls<T extends S3Client | SQSClient>(
    client: T,
    role: Role,
    calls: Call[],
    refuse?: { commands: Set<string> },
): T {
    // S3Client and SQSClient stacks differ in type only; the middleware is the same.
    const stack = client.middlewareStack as unknown as {
        add(
            middleware: (next: any, context: any) => (args: any) => Promise<unknown>,
            options: { step: "initialize"; name: string },
        ): void;
    };
    stack.add(
        (next, context) => async (args: any) => {
            calls.push({ role, command: context.commandName ?? "unknown", input: args.input });
            if (refuse?.commands.has(context.commandName)) {
                throw Object.assign(new Error("injected: the queue refused the batch"), {
                    name: "AccessDenied",
                    $metadata: { httpStatusCode: 403 },
                });
            }
            return next(args);
        },
        { step: "initialize", name: `record-${role}-calls` },
    );
    return client;
}

/**
 * A stand-in for Blender: writes a 6 MiB output file (more than one upload part at the test's 5 MiB, so the frame goes
 * up as a multipart upload) or fails like a camera-less scene, in milliseconds.
 */
function fakeBlender(dir: string, outcome: "renders" | "fails"): string {
    const file = path.join(dir, `blender-that-${outcome}`);
    // Speaks render_frame.py --serve's protocol: one JSON request per line on stdin, two lines per answer.
    const answer =
        outcome === "renders"
            ? [
                  "    open(request['output'], 'wb').write(bytes(6291456))",
                  "    result = {'ok': True, 'renderSeconds': 0.01, 'engine': 'CYCLES', 'missingFiles': []}",
                  // A tile of two side by side in a 64x48 frame (its image is no image: its stitch fails).
                  "    tile = request.get('tile')",
                  "    if tile: result['tile'] = {'index': tile['index'], 'of': tile['of'], 'x': 32 * tile['index'], 'y': 0, 'width': 32, 'height': 48, 'frameWidth': 64, 'frameHeight': 48}",
              ]
            : ["    result = {'ok': False, 'code': 'no_camera', 'message': 'no camera'}"];
    const body = [
        "#!/usr/bin/env python3",
        "import json, sys",
        "for line in sys.stdin:",
        "    request = json.loads(line)",
        ...answer,
        "    result['id'] = request['id']",
        "    sys.stderr.write('RENDER_FRAME_END %s\\n' % request['id'])",
        "    sys.stderr.flush()",
        "    print('RENDER_FRAME_RESULT ' + json.dumps(result), flush=True)",
        ...(outcome === "fails" ? ["    sys.exit(3)"] : []),
    ];
    fs.writeFileSync(file, [...body, ""].join("\n"), { mode: 0o755 });
    return file;
}

describe("every S3/SQS call the handlers make is allowed by their role (handlers on the emulator)", function () {
    this.timeout(120_000);
    let farm: Farm;
    let emulator: Emulator;
    let resources: FarmResources;
    let queueArn: string;
    const calls: Call[] = [];
    const refuseSends = { commands: new Set<string>() };

    before(async function () {
        farm = farmOf(await runProgram());
        emulator = await startEmulator();
        resources = await createFarmResources(emulator, {
            name: "least-privilege",
            maxReceiveCount: 1,
            visibilityTimeoutSeconds: 120,
        });
        queueArn = (
            await emulator.sqs.send(
                new GetQueueAttributesCommand({ QueueUrl: resources.frameQueueUrl, AttributeNames: ["QueueArn"] }),
            )
        ).Attributes!.QueueArn!;
    });

    after(async function () {
        await emulator?.stop();
    });

    /**
     * The mocked ARNs a call's bucket/key(s) or queue URL stand for (the emulator's names map one to one): one per
     * object a DeleteObjects names, which S3 authorizes as s3:DeleteObject of each.
     */
    function arnsOf(call: Call): string[] {
        const { Bucket, Key, Prefix, QueueUrl } = call.input;
        if (Bucket !== undefined) {
            const bucketArn =
                Bucket === resources.scenesBucket
                    ? farm.bucketArn.scenes
                    : Bucket === resources.rendersBucket
                      ? farm.bucketArn.renders
                      : undefined;
            if (!bucketArn) throw new Error(`${call.command} on an unknown bucket ${Bucket}`);
            if (call.command === "ListObjectsV2Command") return [bucketArn];
            if (call.command === "DeleteObjectsCommand")
                return call.input.Delete.Objects.map((object: { Key: string }) => `${bucketArn}/${object.Key}`);
            return [`${bucketArn}/${Key ?? Prefix}`];
        }
        if (QueueUrl === resources.frameQueueUrl) return [farm.queueArn.frames];
        if (QueueUrl === resources.deadLetterQueueUrl) return [farm.queueArn.dlq];
        throw new Error(`${call.command} on an unknown target ${JSON.stringify(call.input).slice(0, 200)}`);
    }

    it("covers submit, resubmit, status, retry (with its dead-letter cleanup, and of a failed stitch) and a refused queue of the job API, and done/failed frames and a tiled frame's tiles and stitch of the renderer", async function () {
        const work = fs.mkdtempSync(path.join(os.tmpdir(), "least-privilege-"));
        const clients = () => emulatorClients(emulator.endpoint, emulator.region, emulator.credentials);
        const apiClients = clients();
        const settings = {
            scenesBucket: resources.scenesBucket,
            rendersBucket: resources.rendersBucket,
            frameQueueUrl: resources.frameQueueUrl,
            deadLetterQueueUrl: resources.deadLetterQueueUrl,
            limits: { maxFrames: 100, maxResolution: 4096, allowedEngines: ["CYCLES" as const] },
            maxReceiveCount: 1,
        };
        const jobApi = createJobApiHandler({
            s3: recordCalls(apiClients.s3, "jobApi", calls),
            sqs: recordCalls(apiClients.sqs, "jobApi", calls, refuseSends),
            settings,
        });
        const rendererClients = clients();
        const rendererDeps = (blenderPath: string) => ({
            s3: rendererClients.s3,
            sqs: rendererClients.sqs,
            frameUpload: { partBytes: 5 * 1024 * 1024, partsInFlight: 2 },
            settings: {
                ...settings,
                maxReceiveCount: 1,
                failureBackoffSeconds: 1,
                memoryMb: 1024,
                blenderPath,
                workDir: path.join(work, "renderer"),
                threads: 1,
                defaultTimeoutMs: 60_000,
                limits: DEFAULT_RENDER_LIMITS,
            },
        });
        recordCalls(rendererClients.s3, "renderer", calls);
        recordCalls(rendererClients.sqs, "renderer", calls);
        // The event source mapping polls with the function's own role.
        const pollerSqs = recordCalls(clients().sqs, "renderer", calls);
        /** One message through the renderer, with the stand-in Blender or (given its path) a real one. */
        const poll = async (blender: "renders" | "fails" | string) => {
            const blenderPath = blender === "renders" || blender === "fails" ? fakeBlender(work, blender) : blender;
            const handler = createRendererHandler(rendererDeps(blenderPath));
            try {
                return await pollOnce({
                    sqs: pollerSqs,
                    queueUrl: resources.frameQueueUrl,
                    queueArn,
                    region: emulator.region,
                    handler,
                });
            } finally {
                await handler.close();
            }
        };
        const api = async (method: string, rawPath: string, body?: unknown) => {
            const reply = await jobApi({
                rawPath,
                requestContext: { http: { method, path: rawPath } },
                body: body === undefined ? undefined : JSON.stringify(body),
            } as HttpApiEvent);
            return { status: reply.statusCode, body: JSON.parse(reply.body) };
        };

        // A real .blend: the job API reads the scene's header before it accepts a job.
        const scene = await makeScene({ frames: "1-4" });
        await emulator.s3.send(
            new PutObjectCommand({
                Bucket: resources.scenesBucket,
                Key: "shots/a/scene.blend",
                Body: fs.readFileSync(scene.blendPath),
            }),
        );
        await emulator.s3.send(
            new PutObjectCommand({ Bucket: resources.scenesBucket, Key: "shots/a/textures/wood.png", Body: "png" }),
        );
        const request = {
            scene: "shots/a/scene.blend",
            assets: ["shots/a/textures/wood.png"],
            frames: "1-2",
            jobId: "lp",
        };
        assert.strictEqual((await api("POST", "/jobs", request)).status, 202);
        assert.strictEqual(
            (await api("POST", "/jobs", request)).status,
            202,
            "a resubmit reads the manifest and records",
        );
        assert.strictEqual(
            (await api("POST", "/jobs", { ...request, jobId: "lp-missing", assets: ["shots/a/none.png"] })).status,
            422,
        );
        assert.strictEqual(await poll("renders"), "succeeded");
        assert.strictEqual(await poll("fails"), "failed");
        assert.strictEqual((await api("GET", "/jobs/lp")).status, 200);
        // Frame 2 failed for good (maxReceiveCount 1): the next receive moves its message to the DLQ (after its 1 s
        // backoff), and a retry requeues the frame and deletes that dead letter.
        await new Promise((resolve) => setTimeout(resolve, 1500));
        assert.strictEqual(await poll("fails"), "empty");
        const retried = await api("POST", "/jobs/lp/retry");
        assert.strictEqual(retried.status, 202, JSON.stringify(retried.body));
        assert.strictEqual(retried.body.requeued, 1);
        assert.strictEqual(retried.body.deadLetters.removed, 1, JSON.stringify(retried.body));

        // A job with a frame still queued: the retry asks the frame queue whether anything is left.
        assert.strictEqual((await api("POST", "/jobs", { ...request, jobId: "lp-pending", frames: "1" })).status, 202);
        const pending = await api("POST", "/jobs/lp-pending/retry");
        assert.strictEqual(pending.body.inFlight, 1, JSON.stringify(pending.body));
        assert.ok(
            calls.some((call) => call.role === "jobApi" && call.command === "GetQueueAttributesCommand"),
            "the retry checked the queue",
        );

        // The queue refuses: the submit and the retry answer 503 and keep their progress; nothing is deleted.
        await emulator.sqs.send(new PurgeQueueCommand({ QueueUrl: resources.frameQueueUrl }));
        refuseSends.commands.add("SendMessageBatchCommand");
        assert.strictEqual((await api("POST", "/jobs", { ...request, jobId: "lp-refused" })).status, 503);
        const lost = await api("POST", "/jobs/lp-pending/retry");
        assert.strictEqual(lost.status, 503, JSON.stringify(lost.body));
        refuseSends.commands.clear();
        assert.deepStrictEqual(
            calls.filter((call) => call.role === "jobApi" && call.command.startsWith("DeleteObject")),
            [],
            "no rollback deletes a ledger object",
        );

        // A tiled frame, rendered by real Blender: each tile's image and record, then the stitch, which lists the
        // frame's tiles, takes the stitch marker, reads the tiles, writes the frame and deletes the tile images.
        const tiled = await api("POST", "/jobs", { ...request, jobId: "lp-tiled", frames: "1", tiles: 2 });
        assert.strictEqual(tiled.status, 202, JSON.stringify(tiled.body));
        assert.strictEqual(await poll(BLENDER), "succeeded");
        assert.strictEqual(await poll(BLENDER), "succeeded");
        const tiledStatus = await api("GET", "/jobs/lp-tiled");
        assert.deepStrictEqual(
            [tiledStatus.body.state, tiledStatus.body.frames.done],
            ["complete", 1],
            JSON.stringify(tiledStatus.body),
        );
        assert.ok(
            calls.some(
                (call) =>
                    call.role === "renderer" &&
                    call.command === "ListObjectsV2Command" &&
                    call.input.Prefix === frameTilesPrefix("lp-tiled", 1),
            ),
            "the stitch listed the frame's tiles",
        );

        // A tiled frame whose stitch fails on its only delivery (the stand-in's tiles are no images): the renderer
        // lists the frame's tiles and releases the stitch it held; a retry deletes the tiles' records and images.
        const failedStitch = await api("POST", "/jobs", { ...request, jobId: "lp-tiles", frames: "1", tiles: 2 });
        assert.strictEqual(failedStitch.status, 202, JSON.stringify(failedStitch.body));
        assert.strictEqual(await poll("renders"), "succeeded", "the first tile waits for the other");
        assert.strictEqual(await poll("renders"), "failed", "the second tile's stitch fails");
        const restitched = await api("POST", "/jobs/lp-tiles/retry");
        assert.strictEqual(restitched.status, 202, JSON.stringify(restitched.body));
        assert.match(restitched.body.message, /their tiles are rendered again/);
        assert.ok(
            calls.some((call) => call.role === "jobApi" && call.command === "DeleteObjectsCommand"),
            "the retry deleted the tiles",
        );

        const refused: string[] = [];
        const checked = new Set<string>();
        for (const call of calls) {
            const action = IAM_ACTION_OF[call.command];
            assert.ok(action, `${call.role} sent ${call.command}, which this test does not map to an IAM action yet`);
            // A listing carries its prefix as the s3:prefix condition key, which the renderer's ListTiles tests.
            const listPrefix = call.command === "ListObjectsV2Command" ? call.input.Prefix : undefined;
            for (const arn of arnsOf(call)) {
                const line = `${call.role} ${action} ${arn}${listPrefix === undefined ? "" : ` s3:prefix=${listPrefix}`}`;
                if (checked.has(line)) continue;
                checked.add(line);
                const bucket = /^arn:aws:s3:::([^/]+)/.exec(arn)?.[1];
                const which =
                    bucket === undefined ? undefined : arn.startsWith(farm.bucketArn.scenes) ? "scenes" : "renders";
                const resourcePolicy = which
                    ? { owner: `${which}-tls-only`, document: farm.bucketPolicy[which] }
                    : undefined;
                const decision = await decide(
                    farm,
                    call.role,
                    action,
                    arn,
                    resourcePolicy,
                    requestContext(true, listPrefix),
                );
                if (decision !== "Allowed") refused.push(`${line} (${call.command}): ${decision}`);
            }
        }
        const actions = new Set([...checked].map((line) => line.split(" ").slice(0, 2).join(" ")));
        for (const command of ["CreateMultipartUploadCommand", "UploadPartCommand", "CompleteMultipartUploadCommand"])
            assert.ok(
                calls.some((call) => call.role === "renderer" && call.command === command),
                `the renderer's frame went up in parts (${command})`,
            );
        // jobApi s3:ListBucket backs no call of its own (status reads the frame summary, not a listing): it is
        // what makes GetObject of an absent queue progress or shard answer 404 rather than 403.
        for (const expected of [
            "jobApi s3:GetObject",
            "jobApi s3:PutObject",
            "jobApi sqs:SendMessage",
            "jobApi sqs:GetQueueAttributes",
            "jobApi sqs:ReceiveMessage",
            "jobApi sqs:DeleteMessage",
            "jobApi s3:DeleteObject",
            "renderer s3:ListBucket",
            "renderer s3:DeleteObject",
            "renderer s3:GetObject",
            "renderer s3:PutObject",
            "renderer sqs:ReceiveMessage",
            "renderer sqs:DeleteMessage",
            "renderer sqs:ChangeMessageVisibility",
        ]) {
            assert.ok(actions.has(expected), `the scenario never exercised ${expected}`);
        }
        assert.deepStrictEqual(refused, [], `calls the deployed roles would be refused:\n${refused.join("\n")}`);
    });
});
