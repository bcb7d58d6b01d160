// The renderer container's entry point (image/Dockerfile's CMD "rendererHandler.handler").
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { createRendererHandler, rendererSettingsFromEnvironment } from "./renderer";

let renderer: ReturnType<typeof createRendererHandler> | undefined;

/** Built on the first invocation, so a missing environment variable is reported by name, not as an import crash. */
export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
    renderer ??= createRendererHandler({ s3: new S3Client({}), sqs: new SQSClient({}), settings: rendererSettingsFromEnvironment(process.env) });
    return renderer(event, context);
}
