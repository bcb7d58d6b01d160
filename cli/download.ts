// Downloads a job's rendered frames (renders/<jobId>/frame_NNNN.<ext>) from the renders bucket into a
// local directory; a frame already there with the same bytes is not fetched again.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { GetObjectCommand, ListObjectsV2Command, S3Client, _Object } from "@aws-sdk/client-s3";
import { outputPrefix } from "../functions/shared/contract";
import { storageError } from "./storage";

export interface DownloadedFrame {
    /** Frame number from the file name. */
    frame: number;
    file: string;
    key: string;
}

async function listFrames(s3: S3Client, bucket: string, prefix: string): Promise<_Object[]> {
    const objects: _Object[] = [];
    let token: string | undefined;
    do {
        const page = await s3.send(
            new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        objects.push(...(page.Contents ?? []));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return objects.filter((object) => /\/frame_\d+\.[a-z]+$/.test(object.Key ?? ""));
}

function md5Of(file: string): string | undefined {
    try {
        return crypto.createHash("md5").update(fs.readFileSync(file)).digest("hex");
    } catch {
        return undefined;
    }
}

/** Downloads every frame the job has on S3 into `outDir`, returns them by frame number. */
export async function downloadFrames(
    s3: S3Client,
    bucket: string,
    jobId: string,
    outDir: string,
    concurrency = 8,
): Promise<DownloadedFrame[]> {
    let objects: _Object[];
    try {
        objects = await listFrames(s3, bucket, outputPrefix(jobId));
    } catch (error) {
        throw storageError(`listing the frames of job ${jobId} in s3://${bucket}`, error);
    }
    fs.mkdirSync(outDir, { recursive: true });
    const frames: DownloadedFrame[] = [];
    let next = 0;
    const workers = Array.from({ length: Math.min(concurrency, objects.length) }, async () => {
        while (next < objects.length) {
            const object = objects[next++];
            const key = object.Key!;
            const file = path.join(outDir, path.posix.basename(key));
            const etag = (object.ETag ?? "").replace(/"/g, "");
            if (!(etag !== "" && !etag.includes("-") && md5Of(file) === etag)) {
                try {
                    const reply = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
                    const bytes = await reply.Body!.transformToByteArray();
                    // Written aside and renamed, so an interrupted download never leaves half a frame.
                    const partial = `${file}.part`;
                    fs.writeFileSync(partial, bytes);
                    fs.renameSync(partial, file);
                } catch (error) {
                    throw storageError(`downloading s3://${bucket}/${key}`, error);
                }
            }
            frames.push({ frame: Number(/frame_(\d+)\./.exec(key)![1]), file, key });
        }
    });
    await Promise.all(workers);
    return frames.sort((a, b) => a.frame - b.frame);
}
