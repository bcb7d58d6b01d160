// JSON documents in S3 with their ETags. Where several writers may meet (the frame summary, the queue progress) they
// write conditionally, as S3 allows: If-None-Match: * creates a key once, If-Match replaces only the version read.
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { AwsErrorLike, awsErrorStatus, isNotFound, storageError } from "../awsErrors";
import { farmError } from "../errors";

export interface StoredJson {
    value: unknown;
    etag: string;
}

/** How a write may meet another writer: create only, or replace only the version with this ETag. */
export type WriteCondition = { ifAbsent: true } | { ifMatch: string };

export type PutOutcome = { written: true; etag: string } | { written: false };

/**
 * The parsed JSON at `key` and its ETag, or undefined when there is no such object. With forbiddenMeansAbsent, a 403
 * counts as absent too: S3 answers 403, not 404, for a missing key to a role without s3:ListBucket on the bucket (the
 * renderer's, on the renders bucket). Only for a read followed by a conditional create: if the object does exist, the
 * create fails (412) and the caller reads again.
 */
export async function getJsonObject(
    s3: S3Client,
    bucket: string,
    key: string,
    options: { forbiddenMeansAbsent?: boolean } = {},
): Promise<StoredJson | undefined> {
    let text: string;
    let etag: string;
    try {
        const reply = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        text = (await reply.Body?.transformToString("utf-8")) ?? "";
        etag = reply.ETag ?? "";
    } catch (error) {
        // A missing bucket is a deployment problem, not a missing document: only NoSuchKey means "absent".
        if (isNotFound(error) && (error as AwsErrorLike).name !== "NoSuchBucket") return undefined;
        if (options.forbiddenMeansAbsent && awsErrorStatus(error) === 403) return undefined;
        throw storageError("GetObject", bucket, key, error);
    }
    try {
        return { value: JSON.parse(text), etag };
    } catch {
        throw farmError("invalid_ledger_object", `s3://${bucket}/${key} is not valid JSON`);
    }
}

/**
 * Writes `value` as JSON. With a condition, answers { written: false } when another writer got there first: 412 (the
 * condition failed), 409 (S3 saw a concurrent conditional write) or 404 (If-Match on a key that is gone).
 */
export async function putJsonObject(
    s3: S3Client,
    bucket: string,
    key: string,
    value: unknown,
    condition?: WriteCondition,
    options: { compact?: boolean } = {},
): Promise<PutOutcome> {
    try {
        const reply = await s3.send(
            new PutObjectCommand({
                Bucket: bucket,
                Key: key,
                Body: options.compact ? JSON.stringify(value) : JSON.stringify(value, null, 1),
                ContentType: "application/json",
                IfNoneMatch: condition && "ifAbsent" in condition ? "*" : undefined,
                IfMatch: condition && "ifMatch" in condition ? condition.ifMatch : undefined,
            }),
        );
        return { written: true, etag: reply.ETag ?? "" };
    } catch (error) {
        const status = awsErrorStatus(error);
        if (condition && (status === 412 || status === 409 || ("ifMatch" in condition && status === 404)))
            return { written: false };
        throw storageError("PutObject", bucket, key, error);
    }
}

/** A short pause with jitter before a conditional write is tried again: 10 ms doubling to at most 1 s. */
export function conflictBackoff(attempt: number): Promise<void> {
    const ms = Math.min(1000, 10 * 2 ** attempt) * (0.5 + Math.random());
    return new Promise((resolve) => setTimeout(resolve, ms));
}
