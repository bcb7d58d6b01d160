// The farm's settings are declared once (functions/shared/farmSettings.ts): the stack's config, the environment the
// components hand to the functions (functions/shared/functionEnvironment.ts), and the functions' own reading of it
// must agree.
import * as assert from "assert";
import { jobApiSettingsFromEnvironment } from "../functions/jobApi/settings";
import { rendererSettingsFromEnvironment } from "../functions/renderer/settings";
import { FARM_SETTINGS, FarmSetting, wholeNumberProblem } from "../functions/shared/farmSettings";
import { frameVisibilityTimeoutSeconds } from "../functions/shared/farmTiming";
import {
    ENVIRONMENT,
    jobApiEnvironment,
    rendererEnvironment,
    settingVariable,
} from "../functions/shared/functionEnvironment";

const RESOURCES = { scenesBucket: "s", rendersBucket: "r", frameQueueUrl: "q" };
const RENDERER_SETTINGS = {
    maxReceiveCount: 3,
    failureBackoffSeconds: 10,
    maxResolution: 8192,
    allowedEngines: ["CYCLES" as const],
};

describe("farm settings", function () {
    it("every setting's default is a value it accepts", function () {
        for (const [key, setting] of Object.entries<FarmSetting>(FARM_SETTINGS)) {
            if (setting.kind === "wholeNumber")
                assert.strictEqual(wholeNumberProblem(setting.defaultValue, setting), undefined, key);
            if (setting.kind === "choice") assert.ok(setting.choices.includes(setting.defaultValue), key);
            if (setting.kind === "version") assert.match(setting.defaultValue, new RegExp(setting.pattern), key);
        }
    });

    it("the job API reads back exactly what a stack writes into its environment", function () {
        const resources = {
            scenesBucket: "scenes-1",
            rendersBucket: "renders-1",
            frameQueueUrl: "https://sqs.eu-west-1.amazonaws.com/1/frames",
            deadLetterQueueUrl: "https://sqs.eu-west-1.amazonaws.com/1/frames-dlq",
        };
        const stack = {
            maxFramesPerJob: 1234,
            maxResolution: 4096,
            allowedEngines: ["EEVEE" as const, "CYCLES" as const],
            maxReceiveCount: 4,
            preflight: false,
            rendererTimeout: 600,
            failureBackoffSeconds: 20,
            maxConcurrency: 250,
            rendererEphemeralStorage: 2048,
        };
        const written = { ...resources, ...stack };
        const settings = jobApiSettingsFromEnvironment(jobApiEnvironment(resources, stack));
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
                rendererTimeout: settings.frameTimeoutSeconds,
                failureBackoffSeconds: written.failureBackoffSeconds,
                maxConcurrency: settings.maxConcurrency,
                rendererEphemeralStorage: settings.rendererEphemeralStorageMb,
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
        const resources = {
            scenesBucket: "scenes-1",
            rendersBucket: "renders-1",
            frameQueueUrl: "https://sqs.eu-west-1.amazonaws.com/1/frames",
        };
        const stack = {
            maxReceiveCount: 5,
            failureBackoffSeconds: 0,
            maxResolution: 2048,
            allowedEngines: ["CYCLES" as const],
        };
        const written = { ...resources, ...stack };
        const settings = rendererSettingsFromEnvironment({
            ...rendererEnvironment(resources, stack),
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
        assert.strictEqual(settings.defaultTimeoutMs, FARM_SETTINGS.rendererTimeout.defaultValue * 1000);
        // Blender's memory bounds follow the Lambda's memory: restarted above half, killed mid-frame above all but 512 MB.
        assert.strictEqual(settings.blenderMemoryLimitMb, 2048);
        assert.strictEqual(settings.blenderMemoryHardLimitMb, 4096 - 512);
    });

    it("takes Blender's hard memory bound from BLENDER_MEMORY_HARD_LIMIT_MB, up to the renderer's memory", function () {
        const base = {
            ...rendererEnvironment(RESOURCES, RENDERER_SETTINGS),
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
        const base = rendererEnvironment(RESOURCES, RENDERER_SETTINGS);
        assert.throws(
            () => rendererSettingsFromEnvironment({ ...base, [settingVariable("maxReceiveCount")]: "11" }),
            /MAX_RECEIVE_COUNT must be a whole number from 1 to 10, got "11"/,
        );
        assert.throws(
            () => jobApiSettingsFromEnvironment({ ...base, [settingVariable("allowedEngines")]: "CYCLES,LUXCORE" }),
            /ALLOWED_ENGINES has unknown engine\(s\) LUXCORE/,
        );
    });
});
