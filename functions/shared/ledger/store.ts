// The renders bucket as the ledger reads and writes it: its client and name held once, JSON documents with their
// ETags, listings and deletes, every failure naming the s3:// location.
import {
    DeleteObjectCommand,
    DeleteObjectsCommand,
    ListObjectsV2Command,
    ListObjectsV2CommandOutput,
    S3Client,
} from "@aws-sdk/client-s3";
import { storageError } from "../awsErrors";
import { getJsonObject, PutOutcome, putJsonObject, StoredJson, WriteCondition } from "./jsonObjects";

/** Keys per DeleteObjects request: S3's limit. */
const DELETE_BATCH_KEYS = 1000;

/** A key DeleteObjects could not delete, and why. */
export interface DeleteFailure {
    key: string;
    code: string;
    message: string;
}

export interface LedgerStore {
    bucket: string;
    /** "s3://<bucket>/<key>", for messages. */
    where(key: string): string;
    /** The document at `key` and its ETag, or undefined when there is none (forbiddenMeansAbsent: see getJsonObject). */
    get(key: string, options?: { forbiddenMeansAbsent?: boolean }): Promise<StoredJson | undefined>;
    /** Writes a document; with a condition, answers { written: false } when another writer got there first. */
    put(key: string, value: unknown, condition?: WriteCondition, options?: { compact?: boolean }): Promise<PutOutcome>;
    /** Every key under `prefix`, from a paginated ListObjectsV2. */
    list(prefix: string): Promise<string[]>;
    /** Every key under `prefix` up to its next "/", from a paginated ListObjectsV2 with a delimiter. */
    listFolders(prefix: string): Promise<string[]>;
    /** Deletes one key (DeleteObject). */
    deleteKey(key: string): Promise<void>;
    /** Deletes `keys` (DeleteObjects, in batches); answers the keys of the first batch S3 could not all delete. */
    deleteKeys(keys: readonly string[]): Promise<DeleteFailure[]>;
}

/** Every page of a ListObjectsV2 of `prefix` (with `delimiter`, its folders are CommonPrefixes). */
async function listPages(
    s3: S3Client,
    bucket: string,
    prefix: string,
    delimiter?: string,
): Promise<ListObjectsV2CommandOutput[]> {
    const pages: ListObjectsV2CommandOutput[] = [];
    let token: string | undefined;
    do {
        try {
            const page = await s3.send(
                new ListObjectsV2Command({
                    Bucket: bucket,
                    Prefix: prefix,
                    Delimiter: delimiter,
                    ContinuationToken: token,
                }),
            );
            pages.push(page);
            token = page.IsTruncated ? page.NextContinuationToken : undefined;
        } catch (error) {
            throw storageError("ListObjectsV2", bucket, prefix, error);
        }
    } while (token);
    return pages;
}

/** DeleteObjects in batches of S3's limit, stopping after the first batch with keys S3 could not delete. */
async function deleteInBatches(s3: S3Client, bucket: string, keys: readonly string[]): Promise<DeleteFailure[]> {
    const failures: DeleteFailure[] = [];
    for (let from = 0; from < keys.length && failures.length === 0; from += DELETE_BATCH_KEYS) {
        const batch = keys.slice(from, from + DELETE_BATCH_KEYS);
        try {
            const reply = await s3.send(
                new DeleteObjectsCommand({
                    Bucket: bucket,
                    Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
                }),
            );
            for (const error of reply.Errors ?? [])
                failures.push({ key: error.Key ?? "", code: error.Code ?? "", message: error.Message ?? "" });
        } catch (error) {
            throw storageError("DeleteObjects", bucket, batch[0], error);
        }
    }
    return failures;
}

export function ledgerStore(s3: S3Client, bucket: string): LedgerStore {
    return {
        bucket,
        where: (key) => `s3://${bucket}/${key}`,
        get: (key, options) => getJsonObject(s3, bucket, key, options),
        put: (key, value, condition, options) => putJsonObject(s3, bucket, key, value, condition, options),
        async list(prefix) {
            const pages = await listPages(s3, bucket, prefix);
            return pages.flatMap((page) => (page.Contents ?? []).flatMap((object) => (object.Key ? [object.Key] : [])));
        },
        async listFolders(prefix) {
            const pages = await listPages(s3, bucket, prefix, "/");
            return pages.flatMap((page) =>
                (page.CommonPrefixes ?? []).flatMap((folder) => (folder.Prefix ? [folder.Prefix] : [])),
            );
        },
        async deleteKey(key) {
            try {
                await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
            } catch (error) {
                throw storageError("DeleteObject", bucket, key, error);
            }
        },
        deleteKeys: (keys) => deleteInBatches(s3, bucket, keys),
    };
}
