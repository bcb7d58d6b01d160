// Uploads a rendered frame from disk to S3 without holding it in memory: streamed in parts (multipart above
// one part), so a frame of any size S3 takes (up to 5 TiB) uploads with a few parts' worth of memory.
import * as fs from "fs";
import { S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

export interface FrameUploadTuning {
    /** Bytes per part; a frame no bigger than one part goes up in a single PutObject. S3's minimum is 5 MiB. */
    partBytes: number;
    /** Parts uploaded at once: memory held is about partBytes × (partsInFlight + 1). */
    partsInFlight: number;
}

/** 8 MiB parts: also under the local farm's emulator's 11 MiB request limit, which a single PUT of a big frame exceeds. */
export const FRAME_UPLOAD_TUNING: FrameUploadTuning = { partBytes: 8 * 1024 * 1024, partsInFlight: 4 };

/** S3's limit on the parts of one multipart upload. */
const MAX_PARTS = 10_000;

export interface FrameUploadTarget {
    bucket: string;
    key: string;
    contentType: string;
}

/**
 * Streams `filePath` to `target`. Each part is a buffer the SDK can resend, so the clients' retries work part by
 * part; a failed multipart upload is aborted, so no half frame ever appears under the key.
 */
export async function uploadFrameFile(
    s3: S3Client,
    filePath: string,
    target: FrameUploadTarget,
    tuning: FrameUploadTuning = FRAME_UPLOAD_TUNING,
): Promise<void> {
    const size = fs.statSync(filePath).size;
    // Parts grow past the tuned size only when a frame would otherwise need more than S3's 10,000 parts.
    const partSize = Math.max(tuning.partBytes, Math.ceil(size / MAX_PARTS));
    await new Upload({
        client: s3,
        params: {
            Bucket: target.bucket,
            Key: target.key,
            Body: fs.createReadStream(filePath, { highWaterMark: 1024 * 1024 }),
            ContentType: target.contentType,
        },
        partSize,
        queueSize: tuning.partsInFlight,
    }).done();
}
