// The embedded S3+SQS emulator (npm fauxqs 2.4.1, Node 22) and the farm's buckets and queues in it.
// Known fauxqs 2.4.1 gaps (verified in tests/emulator.test.ts where they matter to us):
// - startFauxqs() always listens on 0.0.0.0, and only it wires persistence (buildApp takes ready-made stores,
//   not a dataDir). So we build the stores and the SQLite persistence as startFauxqs does, from fauxqs's own
//   modules (pinned to 2.4.1 in package.json), and listen on loopback ourselves.
// - PutObject ignores conditional headers (If-None-Match / If-Match): we check them ourselves before fauxqs's
//   handler runs (see honourWriteConditions), as S3 does: 412 when the condition fails, 404 for If-Match on no object.
// - GetQueueAttributes does not return expired in-flight messages to the visible count until the next
//   ReceiveMessage on that queue: ApproximateNumberOfMessages{,NotVisible} can lag; a receive settles them.
// - It answers whatever Host and Origin a request carries: refuseForeignRequests checks them first, as every
//   endpoint of the local farm does (local/localRequests.ts).
// - Redrive to the DLQ happens lazily, on the receive after the maxReceiveCount-th (as in AWS).
// - Queue URLs it hands out look like AWS's, http://sqs.<region>.localhost:<port>/000000000000/<name>, a host
//   that does not resolve here, with the port of the run that created the queue. createFarmResources returns
//   them on this run's endpoint instead (fauxqs finds a queue by the URL's path); clients still pass the endpoint.
// - With a dataDir, every change is written through to SQLite (<dataDir>/fauxqs.db) at once, so a killed
//   process loses nothing; in-flight messages come back with their visibility deadlines.
// - With a dataDir, fauxqs 2.4.1's ChangeMessageVisibility 0 writes NULL into a NOT NULL column: the call fails
//   and the message drops out of memory until a restart. We replace that one write (see fixReleaseWrite;
//   tests/localFarm.test.ts stops a farm mid-frame, which releases the frame this way).
import * as fs from "fs";
import * as path from "path";
import { pathToFileURL } from "url";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import {
    CreateQueueCommand,
    GetQueueAttributesCommand,
    GetQueueUrlCommand,
    SetQueueAttributesCommand,
    SQSClient,
} from "@aws-sdk/client-sqs";
import { urlHost } from "./addresses";
import { forbiddenRequest } from "./localRequests";

export interface EmulatorOptions {
    /** 0 (the default) picks any free port. */
    port?: number;
    /** Listen address; loopback unless asked otherwise. */
    host?: string;
    region?: string;
    /** Keep queues, messages, buckets and objects in SQLite under this directory, so they survive a restart. */
    dataDir?: string;
}

export interface EmulatorCredentials {
    accessKeyId: string;
    secretAccessKey: string;
}

/** What a queue holds, read without receiving anything (SQS itself cannot peek). */
export interface QueueContents {
    /** Bodies of the messages a receive could return now, or after their delay. */
    waiting: string[];
    /** Messages received and neither deleted nor returned yet, and when each becomes visible again (epoch ms). */
    inFlight: { body: string; receiptHandle: string; visibleAt: number }[];
}

export interface Emulator {
    /** e.g. http://127.0.0.1:45123: point any AWS SDK client (S3 path-style) at it. */
    endpoint: string;
    region: string;
    /** The emulator accepts any credentials; these placeholders keep the SDK from looking for real ones. */
    credentials: EmulatorCredentials;
    s3: S3Client;
    sqs: SQSClient;
    /** Where its state is kept, if it is persistent. */
    dataDir?: string;
    /** The queue's messages, by queue URL or name; undefined for an unknown queue. */
    inspectQueue(queue: string): QueueContents | undefined;
    /**
     * Writes objects straight into the emulator's store, as that many PutObject calls would leave them, without the
     * HTTP round trips: how bench/status.ts lays down a 100,000-frame job in seconds.
     */
    putObjectsDirectly(bucket: string, objects: { key: string; body: string }[]): void;
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
const FAUXQS_VERSION = /^2\./;

// The parts of fauxqs's modules we use (its .d.ts are not reachable from CommonJS).
interface FastifyLike {
    listen(options: { port: number; host: string }): Promise<string>;
    close(): Promise<void>;
    addHook(name: "preClose", hook: () => void): void;
    addHook(
        name: "onRequest" | "preHandler",
        hook: (request: FastifyRequestLike, reply: FastifyReplyLike, done: (error?: Error) => void) => void,
    ): void;
}

interface FastifyRequestLike {
    method: string;
    headers: Record<string, string | string[] | undefined>;
    params?: unknown;
    query?: unknown;
    routeOptions?: { url?: string };
    raw: { socket: { localPort?: number } };
}

interface FastifyReplyLike {
    status(code: number): FastifyReplyLike;
    header(name: string, value: string): FastifyReplyLike;
    send(body?: string): FastifyReplyLike;
}

interface S3StoreLike {
    persistence?: unknown;
    headObject(bucket: string, key: string): { etag: string };
    putObject(bucket: string, key: string, body: Buffer, contentType: string): unknown;
}

interface SqsQueueLike {
    inspectMessages(): {
        ready: { body: string }[];
        delayed: { body: string }[];
        inflight: { message: { body: string }; receiptHandle: string; visibilityDeadline: number }[];
    };
}

interface SqsStoreLike {
    allQueues(): Iterable<{ persistence?: unknown }>;
    getQueue(url: string): SqsQueueLike | undefined;
    getQueueByName(name: string): SqsQueueLike | undefined;
    persistence?: unknown;
}

interface Fauxqs {
    buildApp(options: {
        logger?: boolean;
        defaultRegion?: string;
        stores: { sqsStore: unknown; snsStore: unknown; s3Store: unknown };
    }): FastifyLike;
    SqsStore: new () => SqsStoreLike;
    SnsStore: new () => { persistence?: unknown };
    S3Store: new () => S3StoreLike;
    PersistenceManager: new (dataDir: string) => PersistenceLike;
}

interface PersistenceLike {
    db: { prepare(sql: string): { run(...values: unknown[]): unknown } };
    load(sqs: unknown, sns: unknown, s3: unknown): void;
    close(): void;
    updateMessageReady(messageId: string): void;
}

/** Persists a message made visible again by clearing only its in-flight columns (fauxqs also nulls its receive count). */
function fixReleaseWrite(persistence: PersistenceLike): void {
    const clearInFlight = persistence.db.prepare(
        "UPDATE sqs_messages SET receipt_handle = NULL, visibility_deadline = NULL WHERE message_id = ?",
    );
    persistence.updateMessageReady = (messageId) => {
        clearInFlight.run(messageId);
    };
}

/** An ETag as compared by If-Match: without quotes or a weak marker. */
function bareEtag(etag: string): string {
    return etag.trim().replace(/^W\//, "").replace(/^"|"$/g, "");
}

/** A message may quote a request's headers: escaped, so they stay text. */
function xmlText(text: string): string {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function s3ErrorXml(code: string, message: string): string {
    return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xmlText(message)}</Message></Error>`;
}

/**
 * S3's conditional writes for a plain PutObject, which fauxqs 2.4.1 ignores: If-None-Match: * refuses an existing key
 * and If-Match refuses another ETag (412), If-Match on no object is 404 NoSuchKey. Checked in a synchronous hook right
 * before fauxqs's synchronous put, so no other request can write the key in between: the check and the write are atomic.
 */
function honourWriteConditions(store: S3StoreLike) {
    return (request: FastifyRequestLike, reply: FastifyReplyLike, done: (error?: Error) => void): void => {
        const refusal = writeConditionRefusal(store, request);
        if (!refusal) {
            done();
            return;
        }
        reply
            .status(refusal.status)
            .header("content-type", "application/xml")
            .send(s3ErrorXml(refusal.code, refusal.message));
    };
}

/** Why S3 would refuse this conditional PutObject, or undefined when it may go ahead. */
function writeConditionRefusal(
    store: S3StoreLike,
    request: FastifyRequestLike,
): { status: number; code: string; message: string } | undefined {
    const ifMatch = request.headers["if-match"];
    const ifNoneMatch = request.headers["if-none-match"];
    const query = (request.query ?? {}) as Record<string, unknown>;
    const isPlainPut =
        request.method === "PUT" &&
        request.routeOptions?.url === "/:bucket/*" &&
        !request.headers["x-amz-copy-source"] &&
        !("uploadId" in query) &&
        !("partNumber" in query);
    if (!isPlainPut || (ifMatch === undefined && ifNoneMatch === undefined)) return undefined;
    const params = (request.params ?? {}) as Record<string, string>;
    let current: string | undefined;
    try {
        current = store.headObject(params.bucket, params["*"] ?? "").etag;
    } catch (error) {
        // No such key: current stays undefined. No such bucket: fauxqs's handler answers that.
        if ((error as { code?: string }).code === "NoSuchBucket") return undefined;
    }
    const failed = {
        status: 412,
        code: "PreconditionFailed",
        message: "At least one of the pre-conditions you specified did not hold",
    };
    if (typeof ifNoneMatch === "string" && ifNoneMatch.trim() === "*" && current !== undefined) return failed;
    if (typeof ifMatch === "string") {
        if (current === undefined)
            return { status: 404, code: "NoSuchKey", message: "The specified key does not exist." };
        if (bareEtag(ifMatch) !== "*" && bareEtag(ifMatch) !== bareEtag(current)) return failed;
    }
    return undefined;
}

/**
 * Refuses, before routing or reading the body, a request not made to the emulator's own address or made by a web
 * page (localRequests.ts): in the error format its SDK client reads, JSON for SQS's JSON protocol, XML otherwise.
 */
function refuseForeignRequests(listenHost: string) {
    return (request: FastifyRequestLike, reply: FastifyReplyLike, done: (error?: Error) => void): void => {
        // The port the client connected to is the one it must name: exact even before listen() has returned.
        const port = request.raw.socket.localPort ?? 0;
        const forbidden = forbiddenRequest(request.headers, { host: listenHost, port }, "the S3/SQS emulator");
        if (!forbidden) {
            done();
            return;
        }
        reply.status(403);
        if (request.headers["x-amz-target"] !== undefined)
            reply
                .header("content-type", "application/x-amz-json-1.0")
                .header("x-amzn-query-error", "AccessDenied;Sender")
                .send(JSON.stringify({ __type: "com.amazonaws.sqs#AccessDenied", message: forbidden }));
        else reply.header("content-type", "application/xml").send(s3ErrorXml("AccessDenied", forbidden));
    };
}

/** fauxqs is ESM-only and this project compiles to CommonJS, where TypeScript would turn import() into require(). */
const importEsm = new Function("specifier", "return import(specifier)") as (specifier: string) => Promise<unknown>;

/** The installed fauxqs directory, found the way require would find it (its exports map hides package.json). */
function fauxqsDirectory(): string {
    for (const modules of require.resolve.paths("fauxqs") ?? []) {
        const candidate = path.join(modules, "fauxqs");
        if (fs.existsSync(path.join(candidate, "package.json"))) return fs.realpathSync(candidate);
    }
    throw new Error("the local farm needs the npm package fauxqs; run `npm install` in the project");
}

let fauxqsModules: Promise<Fauxqs> | undefined;

function loadFauxqs(): Promise<Fauxqs> {
    fauxqsModules ??= (async () => {
        const dir = fauxqsDirectory();
        const version = String(JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")).version);
        if (!FAUXQS_VERSION.test(version)) {
            throw new Error(
                `${dir} is fauxqs ${version}; the local farm wires fauxqs 2.x's stores and persistence itself, run \`npm install\` to get the pinned version`,
            );
        }
        const load = async (file: string) =>
            (await importEsm(pathToFileURL(path.join(dir, "dist", file)).href)) as Record<string, unknown>;
        try {
            const [app, sqs, sns, s3, persistence] = await Promise.all([
                load("app.js"),
                load("sqs/sqsStore.js"),
                load("sns/snsStore.js"),
                load("s3/s3Store.js"),
                load("persistence.js"),
            ]);
            return {
                buildApp: app.buildApp,
                SqsStore: sqs.SqsStore,
                SnsStore: sns.SnsStore,
                S3Store: s3.S3Store,
                PersistenceManager: persistence.PersistenceManager,
            } as Fauxqs;
        } catch (error) {
            const reason = error instanceof Error ? error.message : String(error);
            const hint = /sqlite/i.test(reason)
                ? ` (fauxqs 2.x needs Node 22.5+ for node:sqlite; this is Node ${process.versions.node}: run through npx or npm scripts, which use the project's Node 22)`
                : "";
            throw new Error(`cannot load the S3/SQS emulator fauxqs ${version}: ${reason}${hint}`);
        }
    })();
    return fauxqsModules;
}

export function emulatorClients(
    endpoint: string,
    region: string,
    credentials: EmulatorCredentials,
): { s3: S3Client; sqs: SQSClient } {
    return {
        s3: new S3Client({ endpoint, region, credentials, forcePathStyle: true }),
        sqs: new SQSClient({ endpoint, region, credentials }),
    };
}

export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
    const host = options.host ?? "127.0.0.1";
    const region = options.region ?? "us-east-1";
    const fauxqs = await loadFauxqs();
    const sqsStore = new fauxqs.SqsStore();
    const snsStore = new fauxqs.SnsStore();
    const s3Store = new fauxqs.S3Store();
    let persistence: PersistenceLike | undefined;
    if (options.dataDir) {
        // As startFauxqs does: load first, then attach, so loading does not write everything back.
        try {
            persistence = new fauxqs.PersistenceManager(options.dataDir);
            fixReleaseWrite(persistence);
            persistence.load(sqsStore, snsStore, s3Store);
        } catch (error) {
            persistence?.close();
            const reason = error instanceof Error ? error.message : String(error);
            throw new Error(
                `cannot load the emulator's saved state from ${path.join(options.dataDir, "fauxqs.db")}: ${reason}; move ${options.dataDir} away to start empty`,
            );
        }
        sqsStore.persistence = persistence;
        snsStore.persistence = persistence;
        s3Store.persistence = persistence;
        for (const queue of sqsStore.allQueues()) queue.persistence = persistence;
    }
    const app = fauxqs.buildApp({ logger: false, defaultRegion: region, stores: { sqsStore, snsStore, s3Store } });
    app.addHook("onRequest", refuseForeignRequests(host));
    app.addHook("preHandler", honourWriteConditions(s3Store));
    const database = persistence;
    if (database) app.addHook("preClose", () => database.close());
    let address: string;
    try {
        address = await app.listen({ port: options.port ?? 0, host });
    } catch (error) {
        await app.close().catch(() => undefined);
        throw error;
    }
    const port = new URL(address).port;
    const endpoint = `http://${urlHost(host)}:${port}`;
    const credentials = { accessKeyId: "emulator", secretAccessKey: "emulator" };
    const { s3, sqs } = emulatorClients(endpoint, region, credentials);
    let stopped: Promise<void> | undefined;
    return {
        endpoint,
        region,
        credentials,
        s3,
        sqs,
        dataDir: options.dataDir,
        inspectQueue(queue) {
            const found = /^https?:\/\//.test(queue) ? sqsStore.getQueue(queue) : sqsStore.getQueueByName(queue);
            if (!found) return undefined;
            const { ready, delayed, inflight } = found.inspectMessages();
            return {
                waiting: [...ready, ...delayed].map((message) => message.body),
                inFlight: inflight.map((entry) => ({
                    body: entry.message.body,
                    receiptHandle: entry.receiptHandle,
                    visibleAt: entry.visibilityDeadline,
                })),
            };
        },
        putObjectsDirectly(bucket, objects) {
            for (const { key, body } of objects)
                s3Store.putObject(bucket, key, Buffer.from(body, "utf8"), "application/json");
        },
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

/** The queue's URL on `endpoint`: fauxqs finds queues by the URL's path, and its own host does not resolve. */
function onEndpoint(queueUrl: string, endpoint: string): string {
    return new URL(new URL(queueUrl).pathname, endpoint).toString();
}

/** Creates the queue, or brings an existing one (a restarted persistent emulator) to these attributes. */
async function ensureQueue(sqs: SQSClient, name: string, attributes: Record<string, string>): Promise<string> {
    try {
        return (await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }))).QueueUrl!;
    } catch (error) {
        // The SDK names it QueueNameExists or AWS.SimpleQueueService.QueueNameExists, by protocol.
        if (!/QueueNameExists|QueueAlreadyExists/.test((error as { name?: string }).name ?? "")) throw error;
        const queueUrl = (await sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl!;
        await sqs.send(new SetQueueAttributesCommand({ QueueUrl: queueUrl, Attributes: attributes }));
        return queueUrl;
    }
}

/**
 * The scenes bucket, renders bucket, DLQ and frame queue (redriving to the DLQ) that the Pulumi stack deploys.
 * Idempotent: on a restarted persistent emulator the existing ones are kept (with their contents) and updated.
 */
export async function createFarmResources(
    emulator: Pick<Emulator, "s3" | "sqs"> & { endpoint?: string },
    options: FarmResourceOptions,
): Promise<FarmResources> {
    const scenesBucket = `${options.name}-scenes`;
    const rendersBucket = `${options.name}-renders`;
    await emulator.s3.send(new CreateBucketCommand({ Bucket: scenesBucket }));
    await emulator.s3.send(new CreateBucketCommand({ Bucket: rendersBucket }));
    const deadLetterQueueUrl = await ensureQueue(emulator.sqs, `${options.name}-frames-dlq`, {
        MessageRetentionPeriod: String(DEAD_LETTER_RETENTION_SECONDS),
    });
    const deadLetterAttributes = await emulator.sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: deadLetterQueueUrl, AttributeNames: ["QueueArn"] }),
    );
    const frameQueueUrl = await ensureQueue(emulator.sqs, `${options.name}-frames`, {
        VisibilityTimeout: String(options.visibilityTimeoutSeconds),
        MessageRetentionPeriod: String(FRAME_RETENTION_SECONDS),
        ReceiveMessageWaitTimeSeconds: String(options.receiveWaitTimeSeconds ?? 0),
        RedrivePolicy: JSON.stringify({
            deadLetterTargetArn: deadLetterAttributes.Attributes!.QueueArn,
            maxReceiveCount: options.maxReceiveCount,
        }),
    });
    const { endpoint } = emulator;
    return {
        scenesBucket,
        rendersBucket,
        frameQueueUrl: endpoint ? onEndpoint(frameQueueUrl, endpoint) : frameQueueUrl,
        deadLetterQueueUrl: endpoint ? onEndpoint(deadLetterQueueUrl, endpoint) : deadLetterQueueUrl,
    };
}
