// Input fuzzing: property tests (fast-check, 10,000 inputs per property) on everything that parses outside
// input: the frame-spec parser, the request schema (and the job API handler around it), the frame message
// schema, and S3 key validation with the work-dir mirror. Only typed errors, never a crash, never a key
// outside its prefix, never more frames than the limit.
import * as assert from "assert";
import * as path from "path";
import fc from "fast-check";
import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import {
    ApiError,
    ENGINES,
    FORMATS,
    frameOutputKey,
    frameRecordKey,
    frameRecordsPrefix,
    JOB_ID_PATTERN,
    JobLimits,
    manifestKey,
    MAX_ASSETS,
    MAX_FRAME_NUMBER,
    MAX_SAMPLES,
    objectKeyProblem,
    outputPrefix,
    parseFrameMessage,
    parseFrameSpec,
    parseJobRequest,
} from "../functions/shared/contract";
import { createJobApiHandler } from "../functions/jobApi/handler";
import { mirrorPath } from "../functions/renderer/workDir";

const RUNS = 10_000;
const ROOT = path.resolve("/tmp/render-farm-fuzz/scenes");
const RENDERS_BUCKET = "fuzz-renders";

/** A 4xx error as the contract defines it: a known status and code, a message, a field when there is one. */
function assertTypedError(error: ApiError, statuses: number[], codes: string[], input: unknown): void {
    const shown = JSON.stringify(input)?.slice(0, 300);
    assert.ok(statuses.includes(error.status), `status ${error.status} for ${shown}`);
    assert.ok(codes.includes(error.code), `code ${error.code} for ${shown}`);
    assert.ok(typeof error.message === "string" && error.message.length > 0, `message for ${shown}`);
    assert.ok(error.field === undefined || typeof error.field === "string", `field for ${shown}`);
}

/** A property that only ever saw one outcome proves little: each outcome must have been reached at least 1 % of the time. */
function assertReached(seen: Map<string, number>, outcomes: string[]): void {
    const total = [...seen.values()].reduce((sum, count) => sum + count, 0);
    for (const outcome of outcomes) {
        assert.ok(
            (seen.get(outcome) ?? 0) >= total / 100,
            `outcome ${outcome} reached ${seen.get(outcome) ?? 0} of ${total} times: ${JSON.stringify([...seen])}`,
        );
    }
}

/** Strings that look like frame specs often enough to reach every branch, and arbitrary text the rest of the time. */
const specLike = fc.oneof(
    fc.string({ unit: fc.constantFrom("0", "1", "2", "5", "9", "-", ",", "x", " "), maxLength: 40 }),
    fc
        .array(
            fc
                .tuple(
                    fc.nat({ max: 99_999_999 }),
                    fc.option(fc.nat({ max: 99_999_999 })),
                    fc.option(fc.nat({ max: 10_000_000 })),
                )
                .map(([a, b, s]) => (b === null ? `${a}` : s === null ? `${a}-${b}` : `${a}-${b}x${s}`)),
            { minLength: 1, maxLength: 8 },
        )
        .map((parts) => parts.join(",")),
    fc
        .tuple(fc.nat({ max: 1000 }), fc.nat({ max: MAX_FRAME_NUMBER - 1000 }), fc.integer({ min: 1, max: 9 }))
        .map(([start, length, step]) => `${start}-${start + length}x${step}`),
    fc.string({ unit: "binary", maxLength: 60 }),
    fc.constantFrom(
        "",
        " ",
        ",",
        "1,",
        "-1",
        "1--2",
        "1-2x",
        "x2",
        "1-2x0",
        "0x10",
        "1e3",
        "0x1-2",
        "١-٣",
        "1-1048575",
        "0-1048574",
        "1048574",
        "1-250x2",
        "1,5,10-20",
    ),
);

/** What the spec means, by brute force, for small specs: the reference the parser must agree with. */
function referenceFrames(parts: { start: number; end: number; step: number }[]): number[] {
    const frames = new Set<number>();
    for (const { start, end, step } of parts) for (let frame = start; frame <= end; frame += step) frames.add(frame);
    return [...frames].sort((a, b) => a - b);
}

describe("input fuzzing (fast-check)", function () {
    this.timeout(120_000);

    describe("parseFrameSpec", function () {
        it(`answers ${RUNS} arbitrary specs with sorted, distinct, in-range frames within the limit, or a typed 400/413`, function () {
            let slowest = 0;
            const seen = new Map<string, number>();
            fc.assert(
                fc.property(specLike, fc.integer({ min: 1, max: 20_000 }), (spec, maxFrames) => {
                    const started = process.hrtime.bigint();
                    const result = parseFrameSpec(spec, maxFrames);
                    slowest = Math.max(slowest, Number(process.hrtime.bigint() - started) / 1e6);
                    const outcome = result.ok ? "ok" : String(result.error.status);
                    seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
                    if (!result.ok) {
                        assertTypedError(result.error, [400, 413], ["invalid_frames", "too_many_frames"], spec);
                        assert.strictEqual(result.error.field, "frames");
                        assert.strictEqual(result.error.status === 413, result.error.code === "too_many_frames");
                        return;
                    }
                    const frames = result.value;
                    assert.ok(
                        frames.length >= 1 && frames.length <= maxFrames,
                        `${frames.length} frames for "${spec}" with limit ${maxFrames}`,
                    );
                    frames.forEach((frame, index) => {
                        assert.ok(
                            Number.isInteger(frame) && frame >= 0 && frame <= MAX_FRAME_NUMBER,
                            `frame ${frame} of "${spec}"`,
                        );
                        if (index > 0) assert.ok(frame > frames[index - 1], `"${spec}" is not sorted and distinct`);
                    });
                }),
                { numRuns: RUNS },
            );
            // The count is bounded before expansion: no spec may cost more than a blink, whatever its ranges.
            assert.ok(slowest < 250, `the slowest parse took ${slowest.toFixed(1)} ms`);
            assertReached(seen, ["ok", "400", "413"]);
        });

        it(`agrees with a brute-force reference on ${RUNS} well-formed specs, and refuses (413) any that exceeds the limit`, function () {
            const part = fc
                .tuple(
                    fc.nat({ max: 3000 }),
                    fc.nat({ max: 400 }),
                    fc.integer({ min: 1, max: 50 }),
                    fc.constantFrom("single", "range", "stepped"),
                )
                .map(([start, length, step, kind]) =>
                    kind === "single"
                        ? { start, end: start, step: 1 }
                        : { start, end: start + length, step: kind === "range" ? 1 : step },
                );
            fc.assert(
                fc.property(
                    fc.array(part, { minLength: 1, maxLength: 6 }),
                    fc.integer({ min: 1, max: 1500 }),
                    fc.constantFrom(",", " , ", ", "),
                    (parts, maxFrames, separator) => {
                        const spec = parts
                            .map(({ start, end, step }) =>
                                start === end && step === 1
                                    ? `${start}`
                                    : step === 1
                                      ? `${start}-${end}`
                                      : `${start}-${end}x${step}`,
                            )
                            .join(separator);
                        const expected = referenceFrames(parts);
                        const result = parseFrameSpec(spec, maxFrames);
                        if (expected.length > maxFrames) {
                            assert.ok(
                                !result.ok && result.error.status === 413,
                                `"${spec}" has ${expected.length} frames, over ${maxFrames}, but was accepted`,
                            );
                        } else if (result.ok) {
                            assert.deepStrictEqual(result.value, expected, `"${spec}"`);
                        } else {
                            // Overlapping parts are counted before they are merged, so only a 413 may refuse a spec under the limit.
                            assert.strictEqual(result.error.status, 413, `"${spec}": ${result.error.message}`);
                        }
                    },
                ),
                { numRuns: RUNS },
            );
        });
    });

    describe("the job request schema", function () {
        const limits: JobLimits = { maxFrames: 500, maxResolution: 4096, allowedEngines: ["CYCLES", "WORKBENCH"] };
        const keyish = fc.oneof(
            fc.string({
                unit: fc.constantFrom("a", "b", ".", "/", "\\", "..", " ", "\u0000", "\n", "é", "%2e", "~", ".blend"),
                maxLength: 12,
            }),
            fc.constantFrom(
                "shots/a/scene.blend",
                "../scene.blend",
                "/etc/passwd.blend",
                "a/./b.blend",
                "a//b.blend",
                "a\\..\\b.blend",
                "textures/wood.png",
                `${"x".repeat(1100)}.blend`,
                `${"é".repeat(600)}.blend`,
            ),
            fc.string({ unit: "binary", maxLength: 20 }),
        );
        const anyValue = fc.oneof(
            fc.jsonValue({ maxDepth: 2 }),
            keyish,
            fc.double(),
            fc.integer(),
            fc.constant(undefined),
        );
        /** Mostly a valid value, sometimes anything: so that about half the bodies pass and the accepted branch is exercised. */
        const mostly = <T>(valid: fc.Arbitrary<T>, ...invalid: fc.Arbitrary<unknown>[]) =>
            fc.oneof({ arbitrary: valid, weight: 12 }, ...invalid.map((arbitrary) => ({ arbitrary, weight: 1 })));
        const validKey = (suffix: string) =>
            fc
                .array(fc.stringMatching(/^[a-z0-9_.-]{1,6}$/), { minLength: 1, maxLength: 4 })
                .map((segments) => segments.join("/") + suffix);
        const dimension = mostly(
            fc.integer({ min: 1, max: 4096 }),
            fc.integer({ min: -10, max: 5000 }),
            fc.double(),
            anyValue,
        );
        const nearValid = fc.record(
            {
                scene: mostly(validKey(".blend"), keyish, anyValue),
                assets: mostly(
                    fc.array(validKey(".png"), { maxLength: 4 }),
                    fc.array(keyish, { maxLength: 4 }),
                    anyValue,
                ),
                frames: mostly(specLike, anyValue),
                engine: mostly(fc.constantFrom(...ENGINES), fc.constantFrom("cycles", "OCTANE", ""), anyValue),
                samples: mostly(
                    fc.integer({ min: 1, max: MAX_SAMPLES }),
                    fc.integer({ min: -2, max: MAX_SAMPLES + 2 }),
                    anyValue,
                ),
                resolution: mostly(
                    fc.record(
                        { x: dimension, y: dimension, percentage: mostly(fc.integer({ min: 1, max: 100 }), anyValue) },
                        { requiredKeys: [] },
                    ),
                    fc.record({ extra: anyValue }),
                    anyValue,
                ),
                format: mostly(fc.constantFrom(...FORMATS), fc.constantFrom("png", "EXR"), anyValue),
                jobId: mostly(fc.stringMatching(/^[a-z0-9-]{1,64}$/), fc.string({ maxLength: 70 }), anyValue),
            },
            { requiredKeys: ["scene"] },
        );
        const withUnknownField = fc
            .tuple(nearValid, fc.string({ maxLength: 8 }), anyValue)
            .map(([body, key, value]) => ({ ...body, [key]: value }));
        // JSON.parse makes "__proto__" an own key, as it is in a real request body; the value tries to pollute Object.prototype.
        const viaJson = fc
            .tuple(
                nearValid,
                fc.constantFrom("__proto__", "constructor", "prototype"),
                fc.oneof(fc.constant({ polluted: "yes" }), fc.jsonValue({ maxDepth: 1 })),
            )
            .map(([body, key, value]) => {
                const rest = JSON.stringify(body).slice(1);
                return JSON.parse(`{${JSON.stringify(key)}:${JSON.stringify(value)}${rest === "}" ? "" : ","}${rest}`);
            });
        const bodies = fc.oneof(
            { arbitrary: nearValid, weight: 6 },
            withUnknownField,
            viaJson,
            fc.jsonValue(),
            fc.anything(),
        );

        it(`accepts only requests whose keys, engine and bounds are safe, answering the rest with a typed 400 (${RUNS} bodies)`, function () {
            const seen = new Map<string, number>();
            fc.assert(
                fc.property(bodies, (body) => {
                    const result = parseJobRequest(body, limits);
                    assert.strictEqual(({} as Record<string, unknown>).polluted, undefined);
                    const outcome = result.ok ? "ok" : result.error.code;
                    seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
                    if (!result.ok) {
                        assertTypedError(
                            result.error,
                            [400],
                            ["invalid_request", "invalid_key", "engine_not_allowed"],
                            body,
                        );
                        return;
                    }
                    const request = result.value;
                    assert.strictEqual(
                        objectKeyProblem(request.scene),
                        undefined,
                        `scene ${JSON.stringify(request.scene)}`,
                    );
                    assert.match(request.scene, /\.blend$/i);
                    assert.ok(Array.isArray(request.assets) && request.assets.length <= MAX_ASSETS);
                    for (const key of [request.scene, ...request.assets]) {
                        assert.strictEqual(objectKeyProblem(key), undefined, `key ${JSON.stringify(key)}`);
                        assert.ok(
                            mirrorPath(ROOT, key).startsWith(ROOT + path.sep),
                            `key ${JSON.stringify(key)} leaves the work dir`,
                        );
                    }
                    assert.ok(FORMATS.includes(request.format));
                    if (request.engine !== undefined)
                        assert.ok(limits.allowedEngines.includes(request.engine), request.engine);
                    if (request.samples !== undefined)
                        assert.ok(
                            Number.isInteger(request.samples) && request.samples >= 1 && request.samples <= MAX_SAMPLES,
                        );
                    for (const value of [request.resolution?.x, request.resolution?.y]) {
                        if (value !== undefined)
                            assert.ok(
                                Number.isInteger(value) && value >= 1 && value <= limits.maxResolution,
                                `resolution ${value}`,
                            );
                    }
                    if (request.jobId !== undefined) {
                        assert.match(request.jobId, JOB_ID_PATTERN);
                        assert.ok(
                            frameOutputKey(request.jobId, 1, request.format).startsWith(`renders/${request.jobId}/`),
                        );
                        assert.strictEqual(manifestKey(request.jobId), `jobs/${request.jobId}/job.json`);
                    }
                    if (request.frames !== undefined) assert.strictEqual(typeof request.frames, "string");
                    assert.deepStrictEqual(
                        Object.keys(request).filter(
                            (key) =>
                                ![
                                    "scene",
                                    "assets",
                                    "frames",
                                    "engine",
                                    "samples",
                                    "resolution",
                                    "format",
                                    "jobId",
                                ].includes(key),
                        ),
                        [],
                    );
                }),
                { numRuns: RUNS },
            );
            assertReached(seen, ["ok", "invalid_request", "invalid_key", "engine_not_allowed"]);
        });

        it(`never crashes the job API handler: ${RUNS} random events answer JSON with a 4xx/202/502, never a 500`, async function () {
            // S3 and SQS that are never reachable: a request that passes validation ends in a typed 5xx, not a throw.
            const offline = {
                send: async () =>
                    Promise.reject(Object.assign(new Error("offline in this test"), { name: "NetworkingError" })),
            };
            const handler = createJobApiHandler({
                s3: offline as unknown as S3Client,
                sqs: offline as unknown as SQSClient,
                settings: {
                    scenesBucket: "fuzz-scenes",
                    rendersBucket: RENDERS_BUCKET,
                    frameQueueUrl: "https://sqs.us-east-1.amazonaws.com/123456789012/fuzz",
                    limits,
                    maxReceiveCount: 3,
                },
            });
            // The job API requires frames; most submits carry some, so validation is passed (or fails on the limit) often.
            const withFrames = fc.tuple(nearValid, specLike).map(([body, frames]) => ({ ...body, frames }));
            const rawBody = fc.oneof(
                { arbitrary: withFrames.map((body) => JSON.stringify(body)), weight: 4 },
                bodies.map((body) => JSON.stringify(body) ?? ""),
                fc.string({ unit: "binary", maxLength: 200 }),
                fc.json(),
            );
            const event = fc.record({
                method: fc.oneof(
                    { arbitrary: fc.constant("POST"), weight: 6 },
                    fc.constantFrom("GET", "PUT", "DELETE", ""),
                ),
                rawPath: fc.oneof(
                    { arbitrary: fc.constant("/jobs"), weight: 6 },
                    fc.constantFrom(
                        "/jobs/",
                        "/jobs/abc",
                        "/jobs/abc/retry",
                        "/jobs/%E0%A4%A",
                        "/jobs/../../etc",
                        "/",
                        "",
                    ),
                    fc.string({ maxLength: 30 }).map((tail) => `/jobs/${tail}`),
                ),
                body: fc.option(rawBody, { nil: undefined }),
                isBase64Encoded: fc.boolean(),
            });
            const errors: unknown[] = [];
            const seen = new Map<string, number>();
            const savedError = console.error;
            console.error = (...args: unknown[]) => errors.push(args);
            try {
                await fc.assert(
                    fc.asyncProperty(event, async ({ method, rawPath, body, isBase64Encoded }) => {
                        const encoded =
                            isBase64Encoded && body !== undefined ? Buffer.from(body).toString("base64") : body;
                        const reply = await handler({
                            rawPath,
                            body: encoded,
                            isBase64Encoded,
                            requestContext: { http: { method, path: rawPath } },
                        });
                        assert.ok(
                            [202, 400, 404, 413, 422, 502, 503].includes(reply.statusCode),
                            `${reply.statusCode} ${reply.body} for ${method} ${rawPath}`,
                        );
                        const parsed = JSON.parse(reply.body);
                        seen.set(String(reply.statusCode), (seen.get(String(reply.statusCode)) ?? 0) + 1);
                        if (reply.statusCode >= 400) {
                            assert.ok(
                                typeof parsed.error?.code === "string" && typeof parsed.error?.message === "string",
                                reply.body,
                            );
                            assert.notStrictEqual(parsed.error.code, "internal_error");
                        }
                    }),
                    { numRuns: RUNS },
                );
            } finally {
                console.error = savedError;
            }
            assert.deepStrictEqual(errors, [], "the handler logged an unexpected error");
            // Past validation, into S3 (and its offline failure): the fuzz reaches the handler's deep paths.
            assertReached(seen, ["400", "404", "413", "502"]);
        });
    });

    describe("the frame message schema (what the renderer accepts from the queue)", function () {
        const jobId = fc.stringMatching(/^[a-z0-9-]{1,64}$/);
        const outputKey = fc.oneof(
            fc
                .tuple(jobId, fc.nat({ max: MAX_FRAME_NUMBER }), fc.constantFrom(...FORMATS))
                .map(([id, frame, format]) => frameOutputKey(id, frame, format)),
            fc.constantFrom(
                "jobs/other/job.json",
                "renders/other/frame_0001.png",
                "scenes/x.blend",
                "../x",
                "renders//x.png",
            ),
            fc.string({ maxLength: 30 }),
        );
        const message = fc.record(
            {
                v: fc.oneof(fc.constant(1), fc.jsonValue({ maxDepth: 0 })),
                jobId: fc.oneof(jobId, fc.string({ maxLength: 10 })),
                frame: fc.oneof(fc.integer({ min: -2, max: MAX_FRAME_NUMBER + 2 }), fc.jsonValue({ maxDepth: 0 })),
                scene: fc.oneof(
                    fc.constantFrom("shots/a.blend", "../a.blend", "/a.blend"),
                    fc.string({ maxLength: 12 }),
                ),
                sceneEtag: fc.oneof(fc.string({ maxLength: 8 }), fc.integer()),
                assets: fc.oneof(
                    fc.array(fc.constantFrom("t/a.png", "../b.png", "c\\d.png", ""), { maxLength: 3 }),
                    fc.jsonValue({ maxDepth: 1 }),
                ),
                settings: fc.oneof(
                    fc.record(
                        { format: fc.constantFrom(...FORMATS, "GIF"), engine: fc.constantFrom(...ENGINES, "X") },
                        { requiredKeys: ["format"] },
                    ),
                    fc.jsonValue({ maxDepth: 1 }),
                ),
                output: fc.oneof(
                    fc.record({ bucket: fc.constantFrom(RENDERS_BUCKET, "someone-elses-bucket", ""), key: outputKey }),
                    fc.jsonValue({ maxDepth: 1 }),
                ),
            },
            { requiredKeys: [] },
        );
        const legacy = fc.record(
            {
                file_name: fc.oneof(fc.constantFrom("shots/a.blend", "../a.blend"), fc.string({ maxLength: 12 })),
                frame: fc.oneof(fc.nat({ max: 2_000_000 }), fc.string({ maxLength: 4 })),
                support_files: fc.array(fc.constantFrom("t/a.png", "../b.png"), { maxLength: 2 }),
            },
            { requiredKeys: [] },
        );
        const body = fc.oneof(
            message.map((value) => JSON.stringify(value)),
            legacy.map((value) => JSON.stringify(value)),
            fc.json(),
            fc.string({ unit: "binary", maxLength: 80 }),
        );

        it(`accepts only messages whose keys are safe and whose output stays in renders/<jobId>/ of the renders bucket (${RUNS} bodies)`, function () {
            const seen = new Map<string, number>();
            fc.assert(
                fc.property(body, (text) => {
                    const result = parseFrameMessage(text, RENDERS_BUCKET);
                    seen.set(result.ok ? "ok" : "refused", (seen.get(result.ok ? "ok" : "refused") ?? 0) + 1);
                    if (!result.ok) {
                        assertTypedError(result.error, [400], ["invalid_message"], text);
                        return;
                    }
                    const parsed = result.value;
                    assert.match(parsed.jobId, JOB_ID_PATTERN);
                    assert.ok(Number.isInteger(parsed.frame) && parsed.frame >= 0 && parsed.frame <= MAX_FRAME_NUMBER);
                    for (const key of [parsed.scene, ...parsed.assets])
                        assert.ok(mirrorPath(ROOT, key).startsWith(ROOT + path.sep), key);
                    assert.strictEqual(parsed.output.bucket, RENDERS_BUCKET, `output bucket of ${text}`);
                    assert.ok(
                        parsed.output.key.startsWith(outputPrefix(parsed.jobId)),
                        `output key ${parsed.output.key} of job ${parsed.jobId} in ${text}`,
                    );
                    assert.strictEqual(objectKeyProblem(parsed.output.key), undefined);
                }),
                { numRuns: RUNS },
            );
            assertReached(seen, ["ok", "refused"]);
        });
    });

    describe("S3 key validation and the work-dir mirror", function () {
        const keys = fc.oneof(
            fc.string({
                unit: fc.constantFrom(
                    "a",
                    "Z",
                    "0",
                    ".",
                    "..",
                    "/",
                    "//",
                    "\\",
                    " ",
                    "\u0000",
                    "\u007f",
                    "\t",
                    "~",
                    "é",
                    "\u{1F431}",
                    "%2F",
                    ":",
                ),
                maxLength: 16,
            }),
            fc
                .array(fc.constantFrom("a", ".", "..", "", "...", ".a", "a.", " ", "b c"), { maxLength: 6 })
                .map((segments) => segments.join("/")),
            fc.string({ unit: "binary", maxLength: 40 }),
            fc.constantFrom(
                "a".repeat(1024),
                "a".repeat(1025),
                "é".repeat(512),
                "é".repeat(513),
                "shots/a/scene.blend",
            ),
        );

        it(`maps every key it accepts to exactly that path inside the mirror, and refuses (by throwing an Error) every other (${RUNS} keys)`, function () {
            const seen = new Map<string, number>();
            fc.assert(
                fc.property(keys, (key) => {
                    const problem = objectKeyProblem(key);
                    seen.set(
                        problem === undefined ? "ok" : "refused",
                        (seen.get(problem === undefined ? "ok" : "refused") ?? 0) + 1,
                    );
                    if (problem !== undefined) {
                        assert.strictEqual(typeof problem, "string");
                        assert.throws(
                            () => mirrorPath(ROOT, key),
                            (error: unknown) => error instanceof Error && error.message.startsWith("object key "),
                        );
                        return;
                    }
                    const target = mirrorPath(ROOT, key);
                    assert.ok(target.startsWith(ROOT + path.sep), `${JSON.stringify(key)} -> ${target}`);
                    // The mirror is the key itself, segment for segment: nothing normalized away, nothing resolved upward.
                    assert.deepStrictEqual(
                        path.relative(ROOT, target).split(path.sep),
                        key.split("/"),
                        JSON.stringify(key),
                    );
                    assert.ok(Buffer.byteLength(key, "utf8") <= 1024);
                }),
                { numRuns: RUNS },
            );
            assertReached(seen, ["ok", "refused"]);
        });

        it(`keeps every job's ledger and frame keys inside that job's own prefix (${RUNS} job ids and frames)`, function () {
            const jobId = fc.stringMatching(/^[a-z0-9-]{1,64}$/);
            fc.assert(
                fc.property(
                    jobId,
                    jobId,
                    fc.nat({ max: MAX_FRAME_NUMBER }),
                    fc.constantFrom(...FORMATS),
                    (a, b, frame, format) => {
                        const keysOfA = [frameOutputKey(a, frame, format), frameRecordKey(a, frame), manifestKey(a)];
                        assert.ok(
                            keysOfA[0].startsWith(outputPrefix(a)) &&
                                keysOfA[1].startsWith(frameRecordsPrefix(a)) &&
                                keysOfA[2].startsWith(`jobs/${a}/`),
                        );
                        assert.match(keysOfA[0], /\/frame_\d{4,}\.(png|jpg|exr|tif)$/);
                        for (const key of keysOfA) assert.strictEqual(objectKeyProblem(key), undefined, key);
                        if (a !== b) {
                            for (const key of keysOfA) {
                                assert.ok(
                                    !key.startsWith(outputPrefix(b)) && !key.startsWith(`jobs/${b}/`),
                                    `${key} of job ${a} lies under job ${b}`,
                                );
                            }
                        }
                    },
                ),
                { numRuns: RUNS },
            );
        });
    });
});
