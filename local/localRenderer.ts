// The renderer handler as one local worker runs it: its own work dir (scene cache) and its own S3/SQS
// clients, which the farm can cut off when it stops, so an abandoned frame writes nothing more.
import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { createRendererHandler, RendererSettings } from "../functions/renderer";
import { EmulatorCredentials, emulatorClients } from "./emulator";
import { SqsEventHandler } from "./eventSourcePoller";
import { killProcessesWorkingIn } from "./processes";

export interface LocalRenderer {
    handle: SqsEventHandler;
    workDir: string;
    /** Cuts the renderer's clients off and kills its Blender; the frame it was on is left for the caller to release. */
    abandon(): void;
    /** Closes its clients. */
    close(): void;
}

export interface LocalRendererOptions {
    endpoint: string;
    region: string;
    credentials: EmulatorCredentials;
    settings: RendererSettings;
}

export function createLocalRenderer(options: LocalRendererOptions): LocalRenderer {
    const { s3, sqs } = emulatorClients(options.endpoint, options.region, options.credentials);
    let abandoned = false;
    const refuseOnceAbandoned = { step: "initialize" as const, name: "localFarmAbandon" };
    for (const client of [s3, sqs] as (S3Client | SQSClient)[]) {
        // Without this a frame whose Blender was killed would record a "killed" failure and back its message off.
        (client as S3Client).middlewareStack.add((next) => async (args) => {
            if (abandoned) throw new Error("the local farm stopped this renderer; its frame is rendered again later");
            return next(args);
        }, refuseOnceAbandoned);
    }
    const handle = createRendererHandler({ s3, sqs, settings: options.settings });
    return {
        handle,
        workDir: options.settings.workDir,
        abandon() {
            abandoned = true;
            killProcessesWorkingIn(options.settings.workDir);
        },
        close() {
            s3.destroy();
            sqs.destroy();
        },
    };
}
