// The scenes bucket (what users upload) and the renders bucket (the ledger and the frames).
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { FarmSettings } from "../functions/shared/farmSettings";
import { LEDGER_PREFIX, OUTPUTS_PREFIX } from "../functions/shared/contract/ledgerKeys";

export type StorageArgs = Pick<FarmSettings, "forceDestroy" | "renderRetentionDays">;

export class Storage extends pulumi.ComponentResource {
    public readonly scenesBucket: aws.s3.Bucket;
    public readonly rendersBucket: aws.s3.Bucket;

    constructor(name: string, args: StorageArgs, opts?: pulumi.ComponentResourceOptions) {
        super("render-farm:index:Storage", name, {}, opts);
        this.scenesBucket = this.privateBucket(`${name}-scenes`, args.forceDestroy);
        this.rendersBucket = this.privateBucket(`${name}-renders`, args.forceDestroy);

        new aws.s3.BucketLifecycleConfiguration(
            `${name}-scenes-lifecycle`,
            {
                bucket: this.scenesBucket.id,
                rules: [abortIncompleteUploads()],
            },
            { parent: this },
        );
        // Frames and their ledger expire together, so an expired job is simply unknown.
        new aws.s3.BucketLifecycleConfiguration(
            `${name}-renders-lifecycle`,
            {
                bucket: this.rendersBucket.id,
                rules: [
                    {
                        id: "expire-renders",
                        status: "Enabled",
                        filter: { prefix: OUTPUTS_PREFIX },
                        expiration: { days: args.renderRetentionDays },
                    },
                    {
                        id: "expire-job-ledger",
                        status: "Enabled",
                        filter: { prefix: LEDGER_PREFIX },
                        expiration: { days: args.renderRetentionDays },
                    },
                    abortIncompleteUploads(),
                ],
            },
            { parent: this },
        );

        this.registerOutputs({ scenesBucket: this.scenesBucket.bucket, rendersBucket: this.rendersBucket.bucket });
    }

    /** A bucket no one outside the account can read: public access blocked, ACLs off, encrypted at rest, TLS only. */
    private privateBucket(name: string, forceDestroy: boolean): aws.s3.Bucket {
        const bucket = new aws.s3.Bucket(name, { forceDestroy }, { parent: this });
        new aws.s3.BucketOwnershipControls(
            `${name}-ownership`,
            {
                bucket: bucket.id,
                rule: { objectOwnership: "BucketOwnerEnforced" },
            },
            { parent: this },
        );
        const publicAccessBlock = new aws.s3.BucketPublicAccessBlock(
            `${name}-public-access-block`,
            {
                bucket: bucket.id,
                blockPublicAcls: true,
                blockPublicPolicy: true,
                ignorePublicAcls: true,
                restrictPublicBuckets: true,
            },
            { parent: this },
        );
        new aws.s3.BucketServerSideEncryptionConfiguration(
            `${name}-encryption`,
            {
                bucket: bucket.id,
                rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" }, bucketKeyEnabled: true }],
            },
            { parent: this },
        );
        new aws.s3.BucketPolicy(
            `${name}-tls-only`,
            {
                bucket: bucket.id,
                policy: pulumi.jsonStringify({
                    Version: "2012-10-17",
                    Statement: [
                        {
                            Sid: "DenyInsecureTransport",
                            Effect: "Deny",
                            Principal: "*",
                            Action: "s3:*",
                            Resource: [bucket.arn, pulumi.interpolate`${bucket.arn}/*`],
                            Condition: { Bool: { "aws:SecureTransport": "false" } },
                        },
                    ],
                }),
            },
            { parent: this, dependsOn: [publicAccessBlock] },
        );
        return bucket;
    }
}

function abortIncompleteUploads(): aws.types.input.s3.BucketLifecycleConfigurationRule {
    return {
        id: "abort-incomplete-uploads",
        status: "Enabled",
        filter: {},
        abortIncompleteMultipartUpload: { daysAfterInitiation: 1 },
    };
}
