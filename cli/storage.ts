// S3 clients for a farm's buckets and the one-line reasons S3 failures are reported with.
import { S3Client } from "@aws-sdk/client-s3";
import type { FarmOutputs } from "../functions/shared/contract";
import { CliError, EXIT_UNREACHABLE, EXIT_USAGE, networkErrorCode, oneLine } from "./errors";

/** The local farm accepts any credentials; these keep the SDK from looking for real ones. */
const LOCAL_CREDENTIALS = { accessKeyId: "local-farm", secretAccessKey: "local-farm" };

/** The local farm's emulator (its queue and bucket hosts do not resolve, so the endpoint is explicit), else AWS with the default credential chain. */
export function createS3Client(outputs: FarmOutputs): S3Client {
    if (outputs.awsEndpoint) {
        return new S3Client({
            endpoint: outputs.awsEndpoint,
            region: outputs.region,
            credentials: LOCAL_CREDENTIALS,
            forcePathStyle: true,
            maxAttempts: 3,
        });
    }
    return new S3Client({ region: outputs.region });
}

/** An S3 failure as a CliError: unreachable or failing storage exits 3, a refusal (access, missing bucket) exits 2. */
export function storageError(action: string, error: unknown): CliError {
    if (error instanceof CliError) return error;
    const network = networkErrorCode(error);
    if (network)
        return new CliError(`${action} failed: cannot reach S3 (${network})`, EXIT_UNREACHABLE, "storage_unreachable");
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const name = (error as { name?: string }).name ?? "";
    if (/CredentialsProviderError|Could not load credentials/i.test(`${name} ${oneLine(error)}`)) {
        return new CliError(
            `${action} failed: no AWS credentials found; run \`aws configure\` or set AWS_PROFILE / AWS_ACCESS_KEY_ID`,
            EXIT_USAGE,
            "no_credentials",
        );
    }
    const reason = oneLine(error) || name || `HTTP ${status}`;
    if (status !== undefined && status >= 500)
        return new CliError(`${action} failed: S3 replied ${status} (${reason})`, EXIT_UNREACHABLE, "storage_error");
    return new CliError(`${action} failed: ${reason}`, EXIT_USAGE, "storage_refused");
}
