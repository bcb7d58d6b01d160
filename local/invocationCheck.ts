// What the local farm's Lambda invoke path accepts: only the frame messages the job API itself queued, for
// frames not done yet. Anything else (a forged message) could make the renderer write a "done" record and a
// frame of its choosing into any job, since the renderer trusts its queue.
import { frameMessageOf, parseFrameMessage } from "../functions/shared/contract/frameMessage";
import type { JobLedger } from "../functions/shared/ledger";

/** JSON with object keys sorted, so two equal values compare equal whatever order their keys came in. */
function canonical(value: unknown): string {
    if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
    if (value !== null && typeof value === "object")
        return `{${Object.keys(value)
            .sort()
            .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
            .join(",")}}`;
    return JSON.stringify(value) ?? "undefined";
}

export interface InvocationCheckOptions {
    /** The farm's ledger, in its renders bucket. */
    ledger: JobLedger;
}

/** Why the event must not run, or undefined when every record is a message the job API queued for a pending frame. */
export async function invocationProblem(event: unknown, options: InvocationCheckOptions): Promise<string | undefined> {
    const records = (event as { Records?: unknown } | null)?.Records;
    if (!Array.isArray(records) || records.length === 0)
        return "the event is not an SQS event (it needs Records, each with a frame message as its body)";
    for (const [index, record] of records.entries()) {
        const body = (record as { body?: unknown } | null)?.body;
        if (typeof body !== "string") return `Records[${index}] has no body`;
        const { ledger } = options;
        const parsed = parseFrameMessage(body, ledger.bucket);
        if (!parsed.ok) return `Records[${index}]: ${parsed.error.message}`;
        const message = parsed.value;
        const manifest = await ledger.readManifest(message.jobId);
        if (!manifest) return `Records[${index}]: no job ${message.jobId} on this farm; submit it with POST /jobs`;
        if (!manifest.frames.includes(message.frame))
            return `Records[${index}]: frame ${message.frame} is not a frame of job ${message.jobId}`;
        const queued = frameMessageOf(manifest, ledger.bucket, message.frame);
        const differing = (Object.keys(queued) as (keyof typeof queued)[]).filter(
            (field) => canonical(message[field]) !== canonical(queued[field]),
        );
        if (differing.length > 0)
            return `Records[${index}]: the message differs from the one the job API queued for frame ${message.frame} of job ${message.jobId} in ${differing.join(", ")}`;
        if (message.of !== undefined && message.of !== manifest.tiles)
            return `Records[${index}]: job ${message.jobId} splits its frames into ${manifest.tiles ?? "no"} tiles, not ${message.of}`;
        const frameRecord = await ledger.readFrameRecord(message.jobId, message.frame);
        if (frameRecord?.status === "done")
            return `Records[${index}]: frame ${message.frame} of job ${message.jobId} is already done`;
    }
    return undefined;
}
