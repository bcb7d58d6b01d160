// The job request (POST /jobs): its schema, built per call (see functions/README.md), and the settings it renders with.
import { z } from "zod";
import { Checked, refused } from "./apiErrors";
import { FORMATS } from "./formats";
import {
    JOB_ID_PATTERN,
    MAX_ASSETS,
    MAX_FAIL_FAST_FRAMES,
    MAX_PROBE_FRAMES,
    MAX_SAMPLES,
    MAX_TILES,
    MIN_TILES,
} from "./limits";
import { objectKeyProblem } from "./objectKeys";
import { ENGINES, JobLimits, JobRequest, RenderSettings } from "./types";

function jobRequestSchema(limits: JobLimits) {
    const dimension = z.number().int().min(1).max(limits.maxResolution);
    return z
        .object({
            scene: z.string(),
            assets: z.array(z.string()).max(MAX_ASSETS).default([]),
            frames: z.string().max(1000).optional(),
            engine: z.enum(ENGINES).optional(),
            samples: z.number().int().min(1).max(MAX_SAMPLES).optional(),
            resolution: z
                .object({
                    x: dimension.optional(),
                    y: dimension.optional(),
                    percentage: z.number().int().min(1).max(100).optional(),
                })
                .strict()
                .refine(
                    (resolution) => Object.keys(resolution).length > 0,
                    "resolution needs at least one of x, y, percentage",
                )
                .optional(),
            format: z.enum(FORMATS).default("PNG"),
            jobId: z.string().regex(JOB_ID_PATTERN, "jobId must be 1-64 characters of a-z, 0-9 and '-'").optional(),
            maxCostUsd: z.number().finite().positive().max(1_000_000).optional(),
            failFast: z.number().int().min(0).max(MAX_FAIL_FAST_FRAMES).optional(),
            probe: z.number().int().min(1).max(MAX_PROBE_FRAMES).optional(),
            tiles: z
                .union([z.number().int().min(MIN_TILES).max(MAX_TILES), z.literal("auto")], {
                    errorMap: () => ({
                        message: `tiles must be a whole number from ${MIN_TILES} to ${MAX_TILES}, or "auto"`,
                    }),
                })
                .optional(),
        })
        .strict();
}

/** Validates a parsed request body: types, unknown fields, bounds, keys. Frames are checked by parseFrameSpec. */
export function parseJobRequest(body: unknown, limits: JobLimits): Checked<JobRequest> {
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
        return refused(400, "invalid_request", "the request body must be a JSON object");
    }
    const parsed = jobRequestSchema(limits).safeParse(body);
    if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const field =
            issue.code === "unrecognized_keys" ? [...issue.path, ...issue.keys].join(".") : issue.path.join(".");
        const message =
            issue.code === "unrecognized_keys"
                ? `unknown field ${issue.keys.map((key) => `"${key}"`).join(", ")}`
                : `${field || "body"}: ${issue.message}`;
        return refused(400, "invalid_request", message, field || undefined);
    }
    const request = parsed.data as JobRequest;
    const sceneProblem =
        objectKeyProblem(request.scene) ?? (/\.blend$/i.test(request.scene) ? undefined : "is not a .blend file");
    if (sceneProblem) return refused(400, "invalid_key", `scene "${request.scene}" ${sceneProblem}`, "scene");
    for (const [index, asset] of request.assets.entries()) {
        const problem = objectKeyProblem(asset);
        if (problem) return refused(400, "invalid_key", `asset "${asset}" ${problem}`, `assets.${index}`);
    }
    if (request.engine && !limits.allowedEngines.includes(request.engine)) {
        return refused(
            400,
            "engine_not_allowed",
            `engine ${request.engine} is not allowed on this farm (allowed: ${limits.allowedEngines.join(", ")})`,
            "engine",
        );
    }
    return { ok: true, value: request };
}

/** The settings every frame message of a request carries. */
export function renderSettingsOf(request: JobRequest): RenderSettings {
    const settings: RenderSettings = { format: request.format };
    if (request.engine) settings.engine = request.engine;
    if (request.samples) settings.samples = request.samples;
    if (request.resolution) settings.resolution = request.resolution;
    return settings;
}
