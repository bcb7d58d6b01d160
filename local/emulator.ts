// The embedded S3+SQS emulator (npm fauxqs 1.9.x, in-memory, runs on Node 20) and the farm's buckets and queues in it.
// Known fauxqs 1.9.2 gaps (verified in tests/emulator.test.ts where they matter to us):
// - startFauxqs() always listens on 0.0.0.0; we build its app and listen on loopback ourselves.
// - PutObject ignores conditional headers (If-None-Match / If-Match): conditional writes always succeed.
// - GetQueueAttributes does not return expired in-flight messages to the visible count until the next
//   ReceiveMessage on that queue: ApproximateNumberOfMessages{,NotVisible} can lag; a receive settles them.
// - Redrive to the DLQ happens lazily, on the receive after the maxReceiveCount-th (as in AWS).
// - Queue URLs look like AWS's, http://sqs.<region>.localhost:<port>/000000000000/<name>, a host that does not
//   resolve here: give every client the endpoint (the SDK then ignores the URL's host), never the URL alone.
// - Everything is lost when the process stops (fauxqs 2.x adds persistence but needs Node 22).
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";

export interface EmulatorOptions {
    /** 0 (the default) picks any free port. */
    port?: number;
    /** Listen address; loopback unless asked otherwise. */
    host?: string;
    region?: string;
}

export interface EmulatorCredentials {
    accessKeyId: string;
    secretAccessKey: string;
}

export interface Emulator {
    /** e.g. http://127.0.0.1:45123: point any AWS SDK client (S3 path-style) at it. */
    endpoint: string;
    region: string;
    /** The emulator accepts any credentials; these placeholders keep the SDK from looking for real ones. */
    credentials: EmulatorCredentials;
    s3: S3Client;
    sqs: SQSClient;
    stop(): Promise<void>;
}

export interface FarmResourceOptions {
    /** Prefix of every bucket and queue name, like a stack's name. */
    name: string;
    maxReceiveCount: number;
    visibilityTimeoutSeconds: number;
    /** The stack's frame queue long-polls (20 s); 0 keeps an empty ReceiveMessage from blocking in tests. */
    receiveWaitTimeSeconds?: number;
}

export interface FarmResources {
    scenesBucket: string;
    rendersBucket: string;
    frameQueueUrl: string;
    deadLetterQueueUrl: string;
}

/** Same retention as components/frameQueue.ts: 4 days for frames, SQS's maximum (14 days) for dead letters. */
const FRAME_RETENTION_SECONDS = 4 * 24 * 3600;
const DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600;

interface FastifyLike {
    listen(options: { port: number; host: string }): Promise<string>;
    close(): Promise<void>;
}

interface FauxqsModule {
    buildApp(options: { logger?: boolean; defaultRegion?: string }): FastifyLike;
}

/** fauxqs is ESM-only and this project compiles to CommonJS, where TypeScript would turn import() into require(). */
const importEsm = new Function("specifier", "return import(specifier)") as (specifier: string) => Promise<unknown>;

export function emulatorClients(endpoint: string, region: string, credentials: EmulatorCredentials): { s3: S3Client; sqs: SQSClient } {
    return {
        s3: new S3Client({ endpoint, region, credentials, forcePathStyle: true }),
        sqs: new SQSClient({ endpoint, region, credentials }),
    };
}

export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
    const host = options.host ?? "127.0.0.1";
    const region = options.region ?? "us-east-1";
    const fauxqs = (await importEsm("fauxqs")) as FauxqsModule;
    // buildApp rather than startFauxqs: the latter binds 0.0.0.0 whatever it is asked.
    const app = fauxqs.buildApp({ logger: false, defaultRegion: region });
    const address = await app.listen({ port: options.port ?? 0, host });
    const port = new URL(address).port;
    // Queue URLs carry the host the client connected to, so clients must use a reachable name, not 0.0.0.0 or ::.
    const clientHost = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : host.includes(":") ? `[${host}]` : host;
    const endpoint = `http://${clientHost}:${port}`;
    const credentials = { accessKeyId: "emulator", secretAccessKey: "emulator" };
    const { s3, sqs } = emulatorClients(endpoint, region, credentials);
    let stopped: Promise<void> | undefined;
    return {
        endpoint,
        region,
        credentials,
        s3,
        sqs,
        stop() {
            stopped ??= (async () => {
                s3.destroy();
                sqs.destroy();
                await app.close();
            })();
            return stopped;
        },
    };
}

/** The scenes bucket, renders bucket, DLQ and frame queue (redriving to the DLQ) that the Pulumi stack deploys. */
export async function createFarmResources(emulator: Pick<Emulator, "s3" | "sqs">, options: FarmResourceOptions): Promise<FarmResources> {
    const scenesBucket = `${options.name}-scenes`;
    const rendersBucket = `${options.name}-renders`;
    await emulator.s3.send(new CreateBucketCommand({ Bucket: scenesBucket }));
    await emulator.s3.send(new CreateBucketCommand({ Bucket: rendersBucket }));
    const deadLetter = await emulator.sqs.send(
        new CreateQueueCommand({
            QueueName: `${options.name}-frames-dlq`,
            Attributes: { MessageRetentionPeriod: String(DEAD_LETTER_RETENTION_SECONDS) },
        }),
    );
    const deadLetterQueueUrl = deadLetter.QueueUrl!;
    const deadLetterAttributes = await emulator.sqs.send(new GetQueueAttributesCommand({ QueueUrl: deadLetterQueueUrl, AttributeNames: ["QueueArn"] }));
    const frameQueue = await emulator.sqs.send(
        new CreateQueueCommand({
            QueueName: `${options.name}-frames`,
            Attributes: {
                VisibilityTimeout: String(options.visibilityTimeoutSeconds),
                MessageRetentionPeriod: String(FRAME_RETENTION_SECONDS),
                ReceiveMessageWaitTimeSeconds: String(options.receiveWaitTimeSeconds ?? 0),
                RedrivePolicy: JSON.stringify({ deadLetterTargetArn: deadLetterAttributes.Attributes!.QueueArn, maxReceiveCount: options.maxReceiveCount }),
            },
        }),
    );
    return { scenesBucket, rendersBucket, frameQueueUrl: frameQueue.QueueUrl!, deadLetterQueueUrl };
}
