// The frame message (one SQS message per frame, or per tile): built from the job's manifest where the job API queues
// it, parsed and checked where the renderer reads it.
import * as crypto from "crypto";
import { z } from "zod";
import { ApiError, apiError, Checked, refused } from "./apiErrors";
import { decodeEtags } from "./etags";
import { FORMATS } from "./formats";
import { frameOutputKey, outputPrefix } from "./ledgerKeys";
import { JOB_ID_PATTERN, MAX_ASSETS, MAX_FRAME_NUMBER, MAX_SAMPLES, MAX_TILES, MIN_TILES } from "./limits";
import { objectKeyProblem } from "./objectKeys";
import { ENGINES, FRAME_MESSAGE_VERSION, FrameMessage, JobManifest } from "./types";

/** The message of one frame of the job, as the job API queues it. */
export function frameMessageOf(manifest: JobManifest, rendersBucket: string, frame: number): FrameMessage {
    return {
        v: FRAME_MESSAGE_VERSION,
        jobId: manifest.jobId,
        frame,
        scene: manifest.request.scene,
        sceneEtag: manifest.sceneEtag,
        assets: manifest.request.assets,
        // A manifest without assetEtags pins nothing: its frames download the assets as they are.
        ...(manifest.assetEtags === undefined ? {} : { assetEtags: manifest.assetEtags }),
        settings: manifest.settings,
        output: { bucket: rendersBucket, key: frameOutputKey(manifest.jobId, frame, manifest.settings.format) },
    };
}

/** A frame's messages: the frame, or one per tile when the job is tiled. */
export function frameMessagesOf(manifest: JobManifest, rendersBucket: string, frame: number): FrameMessage[] {
    const message = frameMessageOf(manifest, rendersBucket, frame);
    const of = manifest.tiles;
    if (of === undefined) return [message];
    return Array.from({ length: of }, (_, tile) => ({ ...message, tile, of }));
}

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

/** The message without a version, `{file_name, frame, support_files}`: a PNG of the scene's frame, nothing pinned. */
function unversionedMessageSchema() {
    const key = z.string().refine((value) => objectKeyProblem(value) === undefined, "is not a safe object key");
    return z.object({
        file_name: key,
        frame: z.coerce.number().int().min(0).max(MAX_FRAME_NUMBER),
        support_files: z.array(key).max(MAX_ASSETS).default([]),
    });
}

/** A job id for messages without a version, which carry none: derived from the scene key so retries share it. */
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

/**
 * The message in its current shape: a message without a version (`{file_name, frame, support_files}`) becomes the
 * versioned message of a job named after its scene, so that nothing past parseFrameMessage meets the older shape.
 * Anything else is passed on as it is, for the schema to check.
 */
function currentShapeOf(json: unknown, rendersBucket: string): Checked<unknown> {
    const unversioned = typeof json === "object" && json !== null && "file_name" in json && !("v" in json);
    if (!unversioned) return { ok: true, value: json };
    const older = unversionedMessageSchema().safeParse(json);
    if (!older.success) return refused(messageError(older.error.issues[0]));
    const { file_name: scene, frame, support_files: assets } = older.data;
    const jobId = legacyJobId(scene);
    const message: FrameMessage = {
        v: FRAME_MESSAGE_VERSION,
        jobId,
        frame,
        scene,
        sceneEtag: "",
        assets,
        settings: { format: "PNG" },
        output: { bucket: rendersBucket, key: frameOutputKey(jobId, frame, "PNG") },
    };
    return { ok: true, value: message };
}

/** Parses an SQS body into the current frame message, from any shape the queue may hold (see currentShapeOf). */
export function parseFrameMessage(body: string, rendersBucket: string): Checked<FrameMessage> {
    let json: unknown;
    try {
        json = JSON.parse(body);
    } catch {
        return refused(400, "invalid_message", "the frame message is not JSON");
    }
    const current = currentShapeOf(json, rendersBucket);
    if (!current.ok) return current;
    const parsed = frameMessageSchema().safeParse(current.value);
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
