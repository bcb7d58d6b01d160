// The frame message (one SQS message per frame, or per tile): parsed and checked where the renderer reads it.
import * as crypto from "crypto";
import { z } from "zod";
import { ApiError, apiError, Checked, refused } from "./apiErrors";
import { decodeEtags } from "./etags";
import { FORMATS } from "./formats";
import { frameOutputKey, outputPrefix } from "./ledgerKeys";
import { JOB_ID_PATTERN, MAX_ASSETS, MAX_FRAME_NUMBER, MAX_SAMPLES, MAX_TILES, MIN_TILES } from "./limits";
import { objectKeyProblem } from "./objectKeys";
import { ENGINES, FRAME_MESSAGE_VERSION, FrameMessage } from "./types";

/** The message's assets, each with the ETag to download it with ("" when the message pins none). */
export function pinnedAssets(message: FrameMessage): { key: string; etag: string }[] {
    const etags = message.assetEtags === undefined ? undefined : decodeEtags(message.assetEtags, message.assets.length);
    return message.assets.map((key, index) => ({ key, etag: etags?.[index] ?? "" }));
}

function frameMessageSchema() {
    const key = z.string().refine((value) => objectKeyProblem(value) === undefined, "is not a safe object key");
    return z
        .object({
            v: z.literal(FRAME_MESSAGE_VERSION),
            jobId: z.string().regex(JOB_ID_PATTERN),
            frame: z.number().int().min(0).max(MAX_FRAME_NUMBER),
            scene: key,
            sceneEtag: z.string(),
            assets: z.array(key).max(MAX_ASSETS),
            assetEtags: z.string().optional(),
            settings: z.object({
                engine: z.enum(ENGINES).optional(),
                samples: z.number().int().min(1).max(MAX_SAMPLES).optional(),
                resolution: z
                    .object({
                        x: z.number().int().min(1).optional(),
                        y: z.number().int().min(1).optional(),
                        percentage: z.number().int().min(1).max(100).optional(),
                    })
                    .optional(),
                format: z.enum(FORMATS),
            }),
            output: z.object({ bucket: z.string().min(1), key }),
            tile: z
                .number()
                .int()
                .min(0)
                .max(MAX_TILES - 1)
                .optional(),
            of: z.number().int().min(MIN_TILES).max(MAX_TILES).optional(),
        })
        .passthrough()
        .refine((message) => (message.tile === undefined) === (message.of === undefined), {
            message: "tile and of come together",
            path: ["tile"],
        })
        .refine((message) => message.tile === undefined || message.tile < (message.of ?? 0), {
            message: "tile must be below of",
            path: ["tile"],
        });
}

function legacyFrameMessageSchema() {
    const key = z.string().refine((value) => objectKeyProblem(value) === undefined, "is not a safe object key");
    return z.object({
        file_name: key,
        frame: z.coerce.number().int().min(0).max(MAX_FRAME_NUMBER),
        support_files: z.array(key).max(MAX_ASSETS).default([]),
    });
}

/** A job id for seed-era messages, which carried none: derived from the scene key so retries share it. */
export function legacyJobId(sceneKey: string): string {
    const slug = sceneKey
        .toLowerCase()
        .replace(/\.blend$/, "")
        .replace(/[^a-z0-9]+/g, "-")
        .replace(/^-+|-+$/g, "");
    // The slug alone would merge keys that differ in case, punctuation or past 64 characters: the hash keeps them apart.
    const hash = crypto.createHash("sha256").update(sceneKey).digest("hex").slice(0, 8);
    return `${`legacy-${slug}`.slice(0, 55).replace(/-+$/, "")}-${hash}`;
}

/** Parses an SQS body: the versioned message, or the seed-era `{file_name, frame, support_files}`. */
export function parseFrameMessage(body: string, rendersBucket: string): Checked<FrameMessage> {
    let json: unknown;
    try {
        json = JSON.parse(body);
    } catch {
        return refused(400, "invalid_message", "the frame message is not JSON");
    }
    const isLegacy = typeof json === "object" && json !== null && "file_name" in json && !("v" in json);
    if (isLegacy) {
        const legacy = legacyFrameMessageSchema().safeParse(json);
        if (!legacy.success) return refused(messageError(legacy.error.issues[0]));
        const jobId = legacyJobId(legacy.data.file_name);
        return {
            ok: true,
            value: {
                v: FRAME_MESSAGE_VERSION,
                jobId,
                frame: legacy.data.frame,
                scene: legacy.data.file_name,
                sceneEtag: "",
                assets: legacy.data.support_files,
                settings: { format: "PNG" },
                output: { bucket: rendersBucket, key: frameOutputKey(jobId, legacy.data.frame, "PNG") },
            },
        };
    }
    const parsed = frameMessageSchema().safeParse(json);
    if (!parsed.success) return refused(messageError(parsed.error.issues[0]));
    const message = parsed.data as FrameMessage;
    if (message.assetEtags !== undefined && decodeEtags(message.assetEtags, message.assets.length) === undefined)
        return refused(
            400,
            "invalid_message",
            `frame message assetEtags is not ${message.assets.length} encoded ETag(s), one per asset`,
            "assetEtags",
        );
    // The renderer writes where the message says, so it may say only the job's own prefix of the renders bucket.
    if (message.output.bucket !== rendersBucket || !message.output.key.startsWith(outputPrefix(message.jobId))) {
        const where = `s3://${message.output.bucket}/${message.output.key}`;
        return refused(
            400,
            "invalid_message",
            `frame message output ${where} is not under s3://${rendersBucket}/${outputPrefix(message.jobId)}`,
            "output",
        );
    }
    return { ok: true, value: message };
}

function messageError(issue: z.ZodIssue): ApiError {
    const field = issue.path.join(".");
    return apiError(400, "invalid_message", `frame message ${field || "body"}: ${issue.message}`, field || undefined);
}
