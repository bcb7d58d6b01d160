// The renderer container's entry point (image/Dockerfile's CMD "renderer/handler.handler").
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { createRendererHandler } from "./consumer";
import { rendererSettingsFromEnvironment } from "./settings";

/**
 * The renderer's S3/SQS clients retry a failing request 7 times (the SDK's default is 2) with the standard mode's
 * capped exponential backoff and full jitter: about 6 s at most for 5xx replies and broken connections, about
 * 70 s for S3's SlowDown, before the frame itself fails and comes back after the failure backoff. More would
 * eat into the time kept to report before Lambda's timeout; the standard mode's retry quota still stops a
 * client that keeps failing from hammering S3.
 */
export const RENDERER_CLIENT_RETRY = { maxAttempts: 8, retryMode: "standard" } as const;

/**
 * Without these a hung connection (no reply, no byte either way) holds the frame until its deadline. An attempt
 * whose connection is not up in 5 s, or that moves no byte for 20 s, fails with a TimeoutError, which the retry
 * above counts as transient. An idle limit, not a total one: a multi-GB scene download or a slow part that keeps
 * moving is never cut, and S3 keeps a long CompleteMultipartUpload's connection busy with whitespace.
 */
export const RENDERER_CLIENT_TIMEOUTS = {
    requestHandler: { connectionTimeout: 5_000, socketTimeout: 20_000 },
} as const;

let renderer: ReturnType<typeof createRendererHandler> | undefined;

/**
 * Built on the first invocation, so a missing environment variable is reported by name, not as an import crash,
 * and kept with its Blender for every later invocation of this warm container (Lambda freezes and thaws both).
 */
export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
    renderer ??= createRendererHandler({
        s3: new S3Client({ ...RENDERER_CLIENT_RETRY, ...RENDERER_CLIENT_TIMEOUTS }),
        sqs: new SQSClient({ ...RENDERER_CLIENT_RETRY, ...RENDERER_CLIENT_TIMEOUTS }),
        settings: rendererSettingsFromEnvironment(process.env),
    });
    return renderer(event, context);
}
