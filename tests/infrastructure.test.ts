// The Pulumi program under mocks, with Pulumi.dev.yaml's config as `pulumi up` would pass it.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { readFarmConfig } from "../config";
import { FARM_DEFAULTS, FARM_SETTINGS, FarmSetting } from "../functions/shared/farmSettings";
import { frameVisibilityTimeoutSeconds } from "../functions/shared/farmTiming";
import { archiveFiles, writeArchive } from "./support/archive";
import { PROJECT_ROOT, ProgramRun, RecordedResource, runProgram, stackConfig } from "./support/pulumiProgram";

const COMPONENTS = ["RenderFarm", "Storage", "FrameQueue", "RendererImage", "Renderer", "JobApi"].map(
    (name) => `render-farm:index:${name}`,
);
const STACK_OUTPUTS = [
    "apiUrl",
    "scenesBucket",
    "rendersBucket",
    "frameQueueUrl",
    "deadLetterQueueUrl",
    "rendererFunctionName",
    "jobApiFunctionName",
    "imageUri",
    "region",
];

function policyDocuments(run: ProgramRun): { owner: string; document: any }[] {
    const documents: { owner: string; document: any }[] = [];
    for (const resource of run.resources) {
        for (const field of ["policy", "assumeRolePolicy"]) {
            const text = resource.inputs[field];
            if (typeof text === "string" && text.includes("Statement"))
                documents.push({ owner: `${resource.name}.${field}`, document: JSON.parse(text) });
        }
    }
    return documents;
}

const asList = <T>(value: T | T[] | undefined): T[] =>
    value === undefined ? [] : Array.isArray(value) ? value : [value];

/** Values just outside what a setting declares, as a stack's config would hold them. */
function disallowedValues(setting: FarmSetting): string[] {
    switch (setting.kind) {
        case "wholeNumber": {
            const outside = [setting.min - 1, setting.max + 1, setting.min + 0.5];
            const unlisted = setting.oneOf && setting.min + 1 < setting.max ? [setting.min + 1] : [];
            return [...outside, ...unlisted.filter((value) => !setting.oneOf!.includes(value))].map(String);
        }
        case "switch":
            return ["maybe"];
        case "choice":
            return [`${setting.defaultValue}-not`];
        case "version":
            return ["latest"];
        case "engines":
            return [JSON.stringify(["OCTANE"]), "[]"];
    }
}

function componentOf(resource: RecordedResource): string | undefined {
    const chain = resource.qualifiedType.split("$");
    return chain.length > 1 ? chain[chain.length - 2] : undefined;
}

describe("the Pulumi program (dev stack, under mocks)", function () {
    const config = stackConfig("dev");
    let run: ProgramRun;

    before(async function () {
        run = await runProgram(config);
    });

    it("holds the six components, each child parented to the component that made it", function () {
        for (const type of COMPONENTS) assert.strictEqual(run.ofType(type).length, 1, `one ${type}`);
        const farm = run.ofType("render-farm:index:RenderFarm")[0];
        assert.strictEqual(componentOf(farm), undefined, "RenderFarm is at the top");
        for (const resource of run.resources) {
            if (resource === farm) continue;
            const parent = componentOf(resource);
            assert.ok(
                parent && COMPONENTS.includes(parent),
                `${resource.type} ${resource.name} has a component parent (urn type ${resource.qualifiedType})`,
            );
            const parentResource = run.ofType(parent!)[0];
            assert.ok(
                resource.name.startsWith(`${parentResource.name}-`),
                `${resource.name} is named after its component ${parentResource.name}`,
            );
        }
        const childTypes = (component: string) =>
            run.resources
                .filter((resource) => componentOf(resource) === `render-farm:index:${component}`)
                .map((resource) => resource.type);
        assert.deepStrictEqual(childTypes("RenderFarm").sort(), COMPONENTS.slice(1).sort());
        assert.ok(childTypes("Storage").filter((type) => type === "aws:s3/bucket:Bucket").length === 2);
        assert.deepStrictEqual(childTypes("FrameQueue"), ["aws:sqs/queue:Queue", "aws:sqs/queue:Queue"]);
        for (const type of [
            "aws:ecr/repository:Repository",
            "aws:ecr/lifecyclePolicy:LifecyclePolicy",
            "docker:index/image:Image",
        ])
            assert.ok(childTypes("RendererImage").includes(type), type);
        for (const type of [
            "aws:lambda/function:Function",
            "aws:lambda/eventSourceMapping:EventSourceMapping",
            "aws:iam/role:Role",
            "aws:cloudwatch/logGroup:LogGroup",
        ])
            assert.ok(childTypes("Renderer").includes(type), type);
        for (const type of [
            "aws:lambda/function:Function",
            "aws:apigatewayv2/api:Api",
            "aws:apigatewayv2/stage:Stage",
            "aws:lambda/permission:Permission",
        ])
            assert.ok(childTypes("JobApi").includes(type), type);
    });

    it("maps the frame queue to the renderer one frame at a time, reporting partial failures", function () {
        const [mapping] = run.ofType("aws:lambda/eventSourceMapping:EventSourceMapping");
        const queue = run.named("render-farm-frames-queue");
        const renderer = run.named("render-farm-renderer-function");
        assert.strictEqual(mapping.inputs.batchSize, 1);
        assert.deepStrictEqual(mapping.inputs.functionResponseTypes, ["ReportBatchItemFailures"]);
        assert.strictEqual(
            mapping.inputs.scalingConfig.maximumConcurrency,
            Number(config["render-farm:maxConcurrency"]),
        );
        assert.strictEqual(mapping.inputs.eventSourceArn, queue.state.arn);
        assert.strictEqual(mapping.inputs.functionName, renderer.state.arn);
    });

    it("hides a frame at least as long as the renderer may run, for every allowed timeout, and redrives to the DLQ", function () {
        // Every timeout the config allows (render-farm:rendererTimeout) gives a value SQS accepts (<= 12 h).
        for (let timeout = FARM_SETTINGS.rendererTimeout.min; timeout <= FARM_SETTINGS.rendererTimeout.max; timeout++) {
            assert.ok(frameVisibilityTimeoutSeconds(timeout) >= timeout, `timeout ${timeout}`);
            assert.ok(frameVisibilityTimeoutSeconds(timeout) <= 43200, `SQS maximum at timeout ${timeout}`);
        }
        const queue = run.named("render-farm-frames-queue");
        const dlq = run.named("render-farm-frames-dlq");
        const rendererTimeout = Number(config["render-farm:rendererTimeout"]);
        assert.strictEqual(queue.inputs.visibilityTimeoutSeconds, 6 * rendererTimeout);
        const redrive = JSON.parse(queue.inputs.redrivePolicy);
        assert.strictEqual(redrive.deadLetterTargetArn, dlq.state.arn);
        assert.strictEqual(redrive.maxReceiveCount, Number(config["render-farm:maxReceiveCount"]));
        assert.strictEqual(dlq.inputs.messageRetentionSeconds, 14 * 24 * 3600);
        assert.strictEqual(queue.inputs.sqsManagedSseEnabled, true);
        assert.strictEqual(dlq.inputs.sqsManagedSseEnabled, true);
    });

    it("runs the renderer from the pushed image by digest, on x86_64, sized by config", function () {
        const renderer = run.named("render-farm-renderer-function");
        const repository = run.ofType("aws:ecr/repository:Repository")[0];
        const image = run.ofType("docker:index/image:Image")[0];
        assert.strictEqual(renderer.inputs.packageType, "Image");
        assert.match(renderer.inputs.imageUri, /@sha256:[0-9a-f]{64}$/);
        assert.strictEqual(renderer.inputs.imageUri.split("@")[0], repository.state.repositoryUrl);
        assert.deepStrictEqual(renderer.inputs.architectures, ["x86_64"]);
        assert.strictEqual(renderer.inputs.memorySize, Number(config["render-farm:rendererMemory"]));
        assert.strictEqual(renderer.inputs.timeout, Number(config["render-farm:rendererTimeout"]));
        assert.strictEqual(
            renderer.inputs.ephemeralStorage.size,
            Number(config["render-farm:rendererEphemeralStorage"]),
        );
        assert.strictEqual(image.inputs.build.platform, "linux/amd64");
        assert.strictEqual(image.inputs.build.args.BLENDER_VERSION, config["render-farm:blenderVersion"]);
        assert.ok(fs.existsSync(image.inputs.build.dockerfile), "the Dockerfile the build names exists");
        assert.strictEqual(repository.inputs.forceDelete, true);
        assert.strictEqual(repository.inputs.imageScanningConfiguration.scanOnPush, true);
        assert.strictEqual(run.ofType("aws:ecr/lifecyclePolicy:LifecyclePolicy").length, 1);
        assert.strictEqual(run.outputs.imageUri, renderer.inputs.imageUri);
    });

    it("gives the renderer the job API's engine and resolution limits, which Blender enforces on every frame", function () {
        const renderer = run.named("render-farm-renderer-function").inputs.environment.variables;
        const jobApi = run.named("render-farm-api-function").inputs.environment.variables;
        assert.strictEqual(renderer.MAX_RESOLUTION, jobApi.MAX_RESOLUTION);
        assert.strictEqual(renderer.ALLOWED_ENGINES, jobApi.ALLOWED_ENGINES);
        assert.match(renderer.ALLOWED_ENGINES, /^(CYCLES|EEVEE|WORKBENCH)(,(CYCLES|EEVEE|WORKBENCH))*$/);
    });

    it("serializes the job API as a small nodejs22.x CallbackFunction with its own role, behind IAM-authorized routes", async function () {
        const jobApi = run.named("render-farm-api-function");
        assert.strictEqual(jobApi.inputs.runtime, "nodejs22.x");
        assert.strictEqual(jobApi.inputs.handler, "__index.handler");
        const files = await archiveFiles(jobApi.inputs.code);
        const index = files.find((file) => file.path === "__index.js");
        assert.ok(index, "the archive holds __index.js");
        assert.match(index!.text!, /exports\.handler/);
        // It packs the job API's own folder, the .blend reader and shared/: no function of another deployable's.
        const functionsIn = (folder: string) =>
            fs
                .readdirSync(path.join(PROJECT_ROOT, folder), { recursive: true, encoding: "utf8" })
                .filter((file) => file.endsWith(".ts"))
                .flatMap((file) => [
                    ...fs
                        .readFileSync(path.join(PROJECT_ROOT, folder, file), "utf8")
                        .matchAll(/^export (?:async )?function (\w+)/gm),
                ])
                .map((match) => match[1]);
        const shipped = new Set(["functions/jobApi", "functions/blend", "functions/shared"].flatMap(functionsIn));
        const foreign = ["functions/renderer", "local", "cli", "components"]
            .flatMap(functionsIn)
            .filter((name) => !shipped.has(name));
        assert.ok(foreign.length > 50, `${foreign.length} functions of other deployables to look for`);
        // The serializer names each function it copies __<name>.
        const packed = (name: string) => new RegExp(`function (__)?${name}\\(`).test(index!.text!);
        assert.deepStrictEqual(foreign.filter(packed), [], "functions from outside jobApi/, blend/, shared/");
        for (const name of ["submitJob", "readBlendStream", "parseFrameSpec"])
            assert.ok(packed(name), `${name} is in the archive`);
        const totalBytes = files.reduce((sum, file) => sum + file.bytes, 0);
        assert.ok(totalBytes < 5 * 1024 * 1024, `archive is ${totalBytes} bytes uncompressed`);
        assert.ok(
            !files.some(
                (file) => file.path.includes("node_modules/@pulumi/") || file.path.includes("node_modules/@aws-sdk/"),
            ),
            "no deployment-time or runtime-provided packages shipped",
        );
        const written = writeArchive(files, fs.mkdtempSync(path.join(require("os").tmpdir(), "job-api-archive-")));
        for (const runtimePackage of ["zod", "fzstd"])
            assert.ok(
                fs.existsSync(path.join(written, "node_modules", runtimePackage, "package.json")),
                `${runtimePackage} ships with the archive`,
            );
        assert.strictEqual(
            jobApi.inputs.environment.variables.PREFLIGHT,
            "on",
            "scenes are read before queueing by default",
        );
        // A retry requeues lost frames only after a frame could have been hidden (the queue's visibility), rendered and
        // backed off; it removes requeued frames' dead letters from the DLQ it is told about.
        const variables = jobApi.inputs.environment.variables;
        const queue = run.named("render-farm-frames-queue");
        assert.ok(
            Number(variables.STALE_AFTER_SECONDS) >=
                queue.inputs.visibilityTimeoutSeconds + Number(config["render-farm:rendererTimeout"]),
            `STALE_AFTER_SECONDS ${variables.STALE_AFTER_SECONDS}, visibility ${queue.inputs.visibilityTimeoutSeconds}`,
        );
        assert.strictEqual(variables.DEAD_LETTER_QUEUE_URL, run.named("render-farm-frames-dlq").state.url);
        assert.strictEqual(
            jobApi.inputs.environment.variables.RENDERER_EPHEMERAL_STORAGE_MB,
            String(run.named("render-farm-renderer-function").inputs.ephemeralStorage.size),
            "the job API sizes jobs against the renderer's /tmp",
        );

        assert.strictEqual(
            run.ofType("aws:iam/rolePolicyAttachment:RolePolicyAttachment").length,
            0,
            "no managed policies attached",
        );
        assert.strictEqual(jobApi.inputs.role, run.named("render-farm-api-role").state.arn);

        const routes = run.ofType("aws:apigatewayv2/route:Route");
        assert.deepStrictEqual(routes.map((route) => route.inputs.routeKey).sort(), [
            "GET /jobs/{jobId}",
            "POST /jobs",
            "POST /jobs/{jobId}/cancel",
            "POST /jobs/{jobId}/retry",
        ]);
        for (const route of routes)
            assert.strictEqual(route.inputs.authorizationType, "AWS_IAM", route.inputs.routeKey);
        const [stage] = run.ofType("aws:apigatewayv2/stage:Stage");
        assert.ok(
            stage.inputs.defaultRouteSettings.throttlingRateLimit > 0 &&
                stage.inputs.defaultRouteSettings.throttlingBurstLimit > 0,
        );
        assert.ok(stage.inputs.accessLogSettings.destinationArn.startsWith("arn:aws:logs:"));
        assert.doesNotMatch(stage.inputs.accessLogSettings.format, /header|querystring|authorization/i);
    });

    it("allows no wildcard action and no S3/SQS action on every resource, in any policy", function () {
        const documents = policyDocuments(run);
        assert.ok(documents.length >= 6, `found ${documents.length} policy documents`);
        let allows = 0;
        for (const { owner, document } of documents) {
            for (const statement of asList(document.Statement) as any[]) {
                if (statement.Effect !== "Allow") continue;
                allows++;
                assert.strictEqual(statement.NotAction, undefined, `${owner}: NotAction`);
                assert.strictEqual(statement.NotResource, undefined, `${owner}: NotResource`);
                const actions = asList<string>(statement.Action);
                for (const action of actions) {
                    assert.ok(!action.includes("*"), `${owner} allows wildcard action ${action}`);
                }
                const resources = asList<string>(statement.Resource);
                const touchesData = actions.some((action) => /^(s3|sqs):/.test(action));
                if (touchesData)
                    assert.ok(resources.length > 0 && !resources.includes("*"), `${owner} allows ${actions} on *`);
            }
        }
        assert.ok(allows > 10, "the walk saw the roles' statements");
        const rendererPolicy = JSON.parse(run.named("render-farm-renderer-policy").inputs.policy);
        const rendererActions = rendererPolicy.Statement.flatMap((statement: any) => statement.Action);
        assert.deepStrictEqual(rendererActions.filter((action: string) => action.startsWith("sqs:")).sort(), [
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ]);
        // It deletes only a tiled frame's tile images once stitched (and a marker it gives up): under jobs/*/tiles/.
        const deleting = rendererPolicy.Statement.filter((statement: any) =>
            asList<string>(statement.Action).includes("s3:DeleteObject"),
        );
        assert.deepStrictEqual(
            deleting.map((statement: any) =>
                asList<string>(statement.Resource).map((arn) => arn.replace(/^.*?\//, "")),
            ),
            [["jobs/*/tiles/*"]],
        );
        const apiPolicy = JSON.parse(run.named("render-farm-api-policy").inputs.policy);
        const apiActions = apiPolicy.Statement.flatMap((statement: any) => statement.Action);
        assert.ok(apiActions.includes("sqs:SendMessage"));
        // The job API consumes nothing from the frame queue; from the DLQ it may only find and delete (a retry's cleanup).
        const frameQueueArn = run.named("render-farm-frames-queue").state.arn;
        const dlqArn = run.named("render-farm-frames-dlq").state.arn;
        for (const statement of apiPolicy.Statement as any[]) {
            const actions = asList<string>(statement.Action);
            const resources = asList<string>(statement.Resource);
            for (const consumerOnly of ["sqs:ReceiveMessage", "sqs:DeleteMessage"])
                if (actions.includes(consumerOnly))
                    assert.deepStrictEqual(resources, [dlqArn], `${consumerOnly} on ${resources}`);
            assert.ok(!resources.includes(frameQueueArn) || !actions.includes("sqs:ReceiveMessage"));
            for (const never of ["sqs:ChangeMessageVisibility", "sqs:PurgeQueue"])
                assert.ok(!actions.includes(never), never);
        }
        // It deletes only the tile records and images of a frame whose stitch failed, when a retry renders them again.
        const apiDeleting = apiPolicy.Statement.filter((statement: any) =>
            asList<string>(statement.Action).includes("s3:DeleteObject"),
        );
        assert.deepStrictEqual(
            apiDeleting.map((statement: any) => [
                asList<string>(statement.Action),
                asList<string>(statement.Resource).map((arn) => arn.replace(/^.*?\//, "")),
            ]),
            [[["s3:DeleteObject"], ["jobs/*/tiles/*"]]],
        );
    });

    it("keeps both buckets private, encrypted and TLS-only, with forceDestroy from config", function () {
        const buckets = run.ofType("aws:s3/bucket:Bucket");
        assert.strictEqual(buckets.length, 2);
        for (const bucket of buckets) {
            const id = bucket.state.bucket;
            const block = run
                .ofType("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
                .find((resource) => resource.inputs.bucket === id);
            assert.ok(block, `${bucket.name} has a public access block`);
            for (const flag of ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"])
                assert.strictEqual(block!.inputs[flag], true, flag);
            const encryption = run
                .ofType("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
                .find((resource) => resource.inputs.bucket === id);
            assert.strictEqual(encryption?.inputs.rules[0].applyServerSideEncryptionByDefault.sseAlgorithm, "AES256");
            const policy = run
                .ofType("aws:s3/bucketPolicy:BucketPolicy")
                .find((resource) => resource.inputs.bucket === id);
            const [statement] = JSON.parse(policy!.inputs.policy).Statement;
            assert.strictEqual(statement.Effect, "Deny");
            assert.deepStrictEqual(statement.Condition, { Bool: { "aws:SecureTransport": "false" } });
            assert.deepStrictEqual(statement.Resource, [bucket.state.arn, `${bucket.state.arn}/*`]);
            assert.strictEqual(bucket.inputs.forceDestroy, true, "dev stack force-destroys");
        }
        const lifecycle = run
            .ofType("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
            .find((resource) => resource.name.includes("renders"));
        const expire = lifecycle!.inputs.rules.find((rule: any) => rule.id === "expire-renders");
        assert.strictEqual(expire.expiration.days, Number(config["render-farm:renderRetentionDays"]));
    });

    it("exports every stack output of the design, with values", function () {
        assert.deepStrictEqual(Object.keys(run.outputs).sort(), [...STACK_OUTPUTS].sort());
        for (const name of STACK_OUTPUTS)
            assert.ok(typeof run.outputs[name] === "string" && (run.outputs[name] as string).length > 0, name);
        assert.match(run.outputs.apiUrl as string, /^https:\/\//);
        assert.strictEqual(run.outputs.region, "us-east-1");
    });

    describe("with other config", function () {
        it("does not force-destroy buckets, require IAM or preflight scenes when the stack says so", async function () {
            const other = await runProgram({
                ...config,
                "render-farm:forceDestroy": "false",
                "render-farm:apiAuth": "none",
            });
            for (const bucket of other.ofType("aws:s3/bucket:Bucket"))
                assert.strictEqual(bucket.inputs.forceDestroy, false);
            for (const route of other.ofType("aws:apigatewayv2/route:Route"))
                assert.strictEqual(route.inputs.authorizationType, "NONE");
            const preflightOff = await runProgram({ ...config, "render-farm:preflight": "false" });
            assert.strictEqual(
                preflightOff.named("render-farm-api-function").inputs.environment.variables.PREFLIGHT,
                "off",
            );
        });

        it("takes defaults that work when the stack sets nothing", async function () {
            const bare = await runProgram({ "aws:region": "us-east-1" });
            const renderer = bare.named("render-farm-renderer-function");
            assert.strictEqual(renderer.inputs.memorySize, 10240);
            assert.strictEqual(renderer.inputs.timeout, 900);
            for (const route of bare.ofType("aws:apigatewayv2/route:Route"))
                assert.strictEqual(route.inputs.authorizationType, "AWS_IAM");
            for (const bucket of bare.ofType("aws:s3/bucket:Bucket"))
                assert.strictEqual(bucket.inputs.forceDestroy, false);
        });

        const invalid: [string, string, RegExp][] = [
            ["rendererTimeout", "901", /render-farm:rendererTimeout/],
            ["rendererTimeout", "ten", /render-farm:rendererTimeout/],
            ["rendererTimeout", "60.5", /render-farm:rendererTimeout' value '60.5' must be a whole number/],
            ["rendererMemory", "100", /render-farm:rendererMemory/],
            ["rendererEphemeralStorage", "20000", /render-farm:rendererEphemeralStorage/],
            ["maxConcurrency", "1", /render-farm:maxConcurrency/],
            ["maxConcurrency", "1001", /render-farm:maxConcurrency/],
            ["maxReceiveCount", "0", /render-farm:maxReceiveCount/],
            ["maxFramesPerJob", "0", /render-farm:maxFramesPerJob/],
            ["allowedEngines", JSON.stringify(["CYCLES", "OCTANE"]), /render-farm:allowedEngines.*OCTANE/],
            ["allowedEngines", "[]", /render-farm:allowedEngines/],
            ["apiAuth", "open", /render-farm:apiAuth/],
            ["forceDestroy", "maybe", /render-farm:forceDestroy/],
            ["preflight", "sometimes", /render-farm:preflight/],
            ["blenderVersion", "latest", /render-farm:blenderVersion/],
            ["logRetentionDays", "10", /render-farm:logRetentionDays/],
        ];
        it("fails the program itself (as `pulumi up` would) on an invalid value", async function () {
            await assert.rejects(
                runProgram({ ...config, "render-farm:rendererTimeout": "901" }),
                /render-farm:rendererTimeout/,
            );
        });

        for (const [key, value, message] of invalid) {
            it(`refuses ${key}=${value} with a message naming the key`, function () {
                pulumi.runtime.setAllConfig({ ...config, [`render-farm:${key}`]: value });
                assert.throws(() => readFarmConfig(), message);
            });
        }

        it("refuses, for every declared key, a value the declaration does not allow, naming the key", function () {
            for (const [key, setting] of Object.entries<FarmSetting>(FARM_SETTINGS)) {
                for (const value of disallowedValues(setting)) {
                    pulumi.runtime.setAllConfig({ ...config, [`render-farm:${key}`]: value });
                    assert.throws(() => readFarmConfig(), new RegExp(`render-farm:${key}\\b`), `${key}=${value}`);
                }
            }
        });

        it("reads every declared key at its default when the stack sets none", function () {
            pulumi.runtime.setAllConfig({ "aws:region": "us-east-1" });
            assert.deepStrictEqual(readFarmConfig(), FARM_DEFAULTS);
        });
    });
});
