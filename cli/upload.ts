// Uploads the scene and its assets to the scenes bucket, skipping objects already there with the same
// content. Every upload stores the file's sha256 as metadata, because a multipart object's ETag is not
// its MD5: with the sha256 (or a plain single-part MD5 ETag) "same content" is decided without a download.
import * as crypto from "crypto";
import * as fs from "fs";
import {
    AbortMultipartUploadCommand,
    CompleteMultipartUploadCommand,
    CreateMultipartUploadCommand,
    HeadObjectCommand,
    HeadObjectCommandOutput,
    PutObjectCommand,
    S3Client,
    UploadPartCommand,
} from "@aws-sdk/client-s3";
import { storageError } from "./storage";
import type { LocalObject } from "./sceneFiles";

export const SHA256_METADATA = "sha256";

export interface UploadOptions {
    /** Files larger than this go up in parts (default 64 MiB). */
    multipartThreshold?: number;
    /** Part size (default 16 MiB, raised so no file needs more than S3's 10,000 parts). */
    partSize?: number;
    /** Files (and parts) in flight at once (default 4). */
    concurrency?: number;
    onFile?: (event: { object: LocalObject; action: "uploaded" | "unchanged" }) => void;
}

export interface UploadResult {
    uploaded: LocalObject[];
    unchanged: LocalObject[];
    uploadedBytes: number;
}

interface Digest {
    md5: string;
    sha256: string;
}

async function digestOf(file: string): Promise<Digest> {
    const md5 = crypto.createHash("md5");
    const sha256 = crypto.createHash("sha256");
    for await (const chunk of fs.createReadStream(file)) {
        md5.update(chunk as Buffer);
        sha256.update(chunk as Buffer);
    }
    return { md5: md5.digest("hex"), sha256: sha256.digest("hex") };
}

function isNotFound(error: unknown): boolean {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const name = (error as { name?: string }).name;
    return status === 404 || name === "NotFound" || name === "NoSuchKey";
}

/** True when the object at `key` holds exactly `size` bytes with this digest. */
export async function sameContent(
    s3: S3Client,
    bucket: string,
    key: string,
    size: number,
    digest: Digest,
): Promise<boolean> {
    let head: HeadObjectCommandOutput;
    try {
        head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    } catch (error) {
        if (isNotFound(error)) return false;
        throw storageError(`checking s3://${bucket}/${key}`, error);
    }
    if (head.ContentLength !== undefined && head.ContentLength !== size) return false;
    const storedSha256 = head.Metadata?.[SHA256_METADATA];
    if (storedSha256) return storedSha256 === digest.sha256;
    const etag = (head.ETag ?? "").replace(/"/g, "");
    // A multipart ETag ("<md5 of md5s>-<parts>") says nothing about the whole file's MD5.
    if (etag === "" || etag.includes("-")) return false;
    return etag === digest.md5;
}

async function mapLimit<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
    let next = 0;
    const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
        while (next < items.length) {
            const index = next++;
            await fn(items[index], index);
        }
    });
    await Promise.all(workers);
}

function readRange(file: string, start: number, length: number): Buffer {
    const buffer = Buffer.alloc(length);
    const fd = fs.openSync(file, "r");
    try {
        let offset = 0;
        while (offset < length) {
            const read = fs.readSync(fd, buffer, offset, length - offset, start + offset);
            if (read === 0) throw new Error(`${file} shrank while it was being uploaded`);
            offset += read;
        }
    } finally {
        fs.closeSync(fd);
    }
    return buffer;
}

async function uploadMultipart(
    s3: S3Client,
    bucket: string,
    object: LocalObject,
    digest: Digest,
    partSize: number,
    concurrency: number,
): Promise<void> {
    const size = Math.max(partSize, Math.ceil(object.size / 10_000));
    const created = await s3.send(
        new CreateMultipartUploadCommand({
            Bucket: bucket,
            Key: object.key,
            Metadata: { [SHA256_METADATA]: digest.sha256 },
        }),
    );
    const uploadId = created.UploadId!;
    const partCount = Math.max(1, Math.ceil(object.size / size));
    const parts: { ETag: string; PartNumber: number }[] = new Array(partCount);
    try {
        await mapLimit([...Array(partCount).keys()], concurrency, async (index) => {
            const start = index * size;
            const body = readRange(object.file, start, Math.min(size, object.size - start));
            const md5 = crypto.createHash("md5").update(body).digest("base64");
            const reply = await s3.send(
                new UploadPartCommand({
                    Bucket: bucket,
                    Key: object.key,
                    UploadId: uploadId,
                    PartNumber: index + 1,
                    Body: body,
                    ContentMD5: md5,
                }),
            );
            parts[index] = { ETag: reply.ETag!, PartNumber: index + 1 };
        });
        await s3.send(
            new CompleteMultipartUploadCommand({
                Bucket: bucket,
                Key: object.key,
                UploadId: uploadId,
                MultipartUpload: { Parts: parts },
            }),
        );
    } catch (error) {
        // An abandoned upload's parts are billed until aborted.
        await s3
            .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: object.key, UploadId: uploadId }))
            .catch(() => undefined);
        throw error;
    }
}

/** Uploads what is not already there; the scene's ETag then matches what the job is submitted against. */
export async function uploadObjects(
    s3: S3Client,
    bucket: string,
    objects: LocalObject[],
    options: UploadOptions = {},
): Promise<UploadResult> {
    const threshold = options.multipartThreshold ?? 64 * 1024 * 1024;
    const partSize = options.partSize ?? 16 * 1024 * 1024;
    const concurrency = options.concurrency ?? 4;
    const result: UploadResult = { uploaded: [], unchanged: [], uploadedBytes: 0 };
    await mapLimit(objects, concurrency, async (object) => {
        const digest = await digestOf(object.file);
        if (await sameContent(s3, bucket, object.key, object.size, digest)) {
            result.unchanged.push(object);
            options.onFile?.({ object, action: "unchanged" });
            return;
        }
        try {
            if (object.size > threshold) {
                await uploadMultipart(s3, bucket, object, digest, partSize, concurrency);
            } else {
                const body = fs.readFileSync(object.file);
                const md5 = Buffer.from(digest.md5, "hex").toString("base64");
                await s3.send(
                    new PutObjectCommand({
                        Bucket: bucket,
                        Key: object.key,
                        Body: body,
                        ContentMD5: md5,
                        Metadata: { [SHA256_METADATA]: digest.sha256 },
                    }),
                );
            }
        } catch (error) {
            throw storageError(`uploading ${object.file} to s3://${bucket}/${object.key}`, error);
        }
        result.uploaded.push(object);
        result.uploadedBytes += object.size;
        options.onFile?.({ object, action: "uploaded" });
    });
    return result;
}
