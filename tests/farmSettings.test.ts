// The farm's tunables are stated once (functions/shared/farmSettings.ts): the stack's config, the environment the
// components hand to the functions, and the functions' own reading of it must agree.
import * as assert from "assert";
import { jobApiSettingsFromEnvironment } from "../functions/jobApi/settings";
import { rendererSettingsFromEnvironment } from "../functions/renderer/settings";
import {
    ENVIRONMENT,
    frameVisibilityTimeoutSeconds,
    jobApiEnvironment,
    rendererEnvironment,
    TUNABLES,
} from "../functions/shared/farmSettings";

describe("farm settings", function () {
    it("every tunable's default lies within its range", function () {
        for (const [key, { min, max, defaultValue: fallback }] of Object.entries(TUNABLES)) {
            assert.ok(min <= fallback && fallback <= max, `${key}: ${min} <= ${fallback} <= ${max}`);
        }
    });

    it("the job API reads back exactly what a stack writes into its environment", function () {
        const written = {
            scenesBucket: "scenes-1",
            rendersBucket: "renders-1",
            frameQueueUrl: "https://sqs.eu-west-1.amazonaws.com/1/frames",
            deadLetterQueueUrl: "https://sqs.eu-west-1.amazonaws.com/1/frames-dlq",
            maxFramesPerJob: 1234,
            maxResolution: 4096,
            allowedEngines: ["EEVEE" as const, "CYCLES" as const],
            maxReceiveCount: 4,
            preflight: false,
            rendererTimeoutSeconds: 600,
            failureBackoffSeconds: 20,
            maxConcurrency: 250,
            rendererEphemeralStorageMb: 2048,
        };
        const settings = jobApiSettingsFromEnvironment(jobApiEnvironment(written));
        assert.deepStrictEqual(
            {
                scenesBucket: settings.scenesBucket,
                rendersBucket: settings.rendersBucket,
                frameQueueUrl: settings.frameQueueUrl,
                deadLetterQueueUrl: settings.deadLetterQueueUrl,
                maxFramesPerJob: settings.limits.maxFrames,
                maxResolution: settings.limits.maxResolution,
                allowedEngines: settings.limits.allowedEngines,
                maxReceiveCount: settings.maxReceiveCount,
                preflight: settings.preflight,
                rendererTimeoutSeconds: settings.frameTimeoutSeconds,
                failureBackoffSeconds: written.failureBackoffSeconds,
                maxConcurrency: settings.maxConcurrency,
                rendererEphemeralStorageMb: settings.rendererEphemeralStorageMb,
            },
            written,
        );
        // Derived from the queue's visibility timeout: a frame hidden that long, then rendered, after its last backoff.
        assert.strictEqual(
            settings.staleAfterSeconds,
            frameVisibilityTimeoutSeconds(600) + 600 + Math.min(20 * 2 ** (4 - 2), 300) + 10,
        );
    });

    it("the renderer reads back exactly what a stack writes into its environment, plus Lambda's memory size", function () {
        const written = {
            scenesBucket: "scenes-1",
            rendersBucket: "renders-1",
            frameQueueUrl: "https://sqs.eu-west-1.amazonaws.com/1/frames",
            maxReceiveCount: 5,
            failureBackoffSeconds: 0,
            maxResolution: 2048,
            allowedEngines: ["CYCLES" as const],
        };
        const settings = rendererSettingsFromEnvironment({
            ...rendererEnvironment(written),
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "4096",
        });
        assert.deepStrictEqual(
            {
                scenesBucket: settings.scenesBucket,
                rendersBucket: settings.rendersBucket,
                frameQueueUrl: settings.frameQueueUrl,
                maxReceiveCount: settings.maxReceiveCount,
                failureBackoffSeconds: settings.failureBackoffSeconds,
                maxResolution: settings.limits.maxResolution,
                allowedEngines: settings.limits.allowedEngines,
            },
            written,
        );
        assert.strictEqual(settings.memoryMb, 4096);
        assert.strictEqual(settings.defaultTimeoutMs, TUNABLES.rendererTimeout.defaultValue * 1000);
        // Blender's memory bounds follow the Lambda's memory: restarted above half, killed mid-frame above all but 512 MB.
        assert.strictEqual(settings.blenderMemoryLimitMb, 2048);
        assert.strictEqual(settings.blenderMemoryHardLimitMb, 4096 - 512);
    });

    it("takes Blender's hard memory bound from BLENDER_MEMORY_HARD_LIMIT_MB, up to the renderer's memory", function () {
        const base = {
            ...rendererEnvironment({
                scenesBucket: "s",
                rendersBucket: "r",
                frameQueueUrl: "q",
                maxReceiveCount: 3,
                failureBackoffSeconds: 10,
                maxResolution: 8192,
                allowedEngines: ["CYCLES" as const],
            }),
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "3008",
        };
        assert.strictEqual(
            rendererSettingsFromEnvironment({ ...base, [ENVIRONMENT.blenderMemoryHardLimitMb]: "3000" })
                .blenderMemoryHardLimitMb,
            3000,
        );
        assert.throws(
            () => rendererSettingsFromEnvironment({ ...base, [ENVIRONMENT.blenderMemoryHardLimitMb]: "3009" }),
            /BLENDER_MEMORY_HARD_LIMIT_MB must be a whole number from 64 to 3008, got "3009"/,
        );
    });

    it("refuses a missing or out-of-range variable at cold start, naming it", function () {
        assert.throws(() => rendererSettingsFromEnvironment({}), /SCENES_BUCKET, RENDERS_BUCKET, FRAME_QUEUE_URL/);
        const base = rendererEnvironment({
            scenesBucket: "s",
            rendersBucket: "r",
            frameQueueUrl: "q",
            maxReceiveCount: 3,
            failureBackoffSeconds: 10,
            maxResolution: 8192,
            allowedEngines: ["CYCLES" as const],
        });
        assert.throws(
            () => rendererSettingsFromEnvironment({ ...base, [ENVIRONMENT.maxReceiveCount]: "11" }),
            /MAX_RECEIVE_COUNT must be a whole number from 1 to 10, got "11"/,
        );
        assert.throws(
            () => jobApiSettingsFromEnvironment({ ...base, [ENVIRONMENT.allowedEngines]: "CYCLES,LUXCORE" }),
            /ALLOWED_ENGINES has unknown engine\(s\) LUXCORE/,
        );
    });
});
