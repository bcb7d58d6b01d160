// The pieces every function role shares: who may assume it, writing to its own log group, reading the scenes, and
// the renders bucket's statements from the grants the ledger derives (functions/shared/ledger/grants.ts).
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { RendersBucketGrant } from "../functions/shared/ledger/grants";

export interface PolicyStatement {
    Sid: string;
    Effect: "Allow" | "Deny";
    Action: string[];
    Resource: pulumi.Input<string> | pulumi.Input<string>[];
    Condition?: Record<string, Record<string, pulumi.Input<string | string[]>>>;
}

/** A role only the Lambda service can assume, with one inline policy made of `statements`. */
export function lambdaRole(
    name: string,
    statements: PolicyStatement[],
    parent: pulumi.Resource,
): { role: aws.iam.Role; policy: aws.iam.RolePolicy } {
    const role = new aws.iam.Role(
        `${name}-role`,
        {
            assumeRolePolicy: JSON.stringify({
                Version: "2012-10-17",
                Statement: [
                    { Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" },
                ],
            }),
        },
        { parent },
    );
    const policy = new aws.iam.RolePolicy(
        `${name}-policy`,
        {
            role: role.id,
            policy: pulumi.jsonStringify({ Version: "2012-10-17", Statement: statements }),
        },
        { parent },
    );
    return { role, policy };
}

/** Writing log events to one log group; creating the group itself stays with Pulumi. */
export function writeLogsStatement(logGroup: aws.cloudwatch.LogGroup): PolicyStatement {
    return {
        Sid: "WriteOwnLogs",
        Effect: "Allow",
        Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
        Resource: pulumi.interpolate`${logGroup.arn}:*`,
    };
}

/**
 * Reading the scenes bucket's objects. ListBucket makes HeadObject/GetObject of an absent key answer 404
 * (not 403), which is how a missing scene or asset is named as missing.
 */
export function readScenesStatements(scenesBucket: aws.s3.Bucket): PolicyStatement[] {
    return [
        { Sid: "FindScenes", Effect: "Allow", Action: ["s3:ListBucket"], Resource: scenesBucket.arn },
        {
            Sid: "ReadScenes",
            Effect: "Allow",
            Action: ["s3:GetObject"],
            Resource: pulumi.interpolate`${scenesBucket.arn}/*`,
        },
    ];
}

/** One resource as a string, several as a list: the shape IAM documents are written in. */
function oneOrList<T>(items: T[]): T | T[] {
    return items.length === 1 ? items[0] : items;
}

/** The statements of `grants` on the renders bucket: objects by key pattern, listings by prefix pattern. */
export function rendersBucketStatements(rendersBucket: aws.s3.Bucket, grants: RendersBucketGrant[]): PolicyStatement[] {
    return grants.map((grant): PolicyStatement => {
        if ("list" in grant)
            return {
                Sid: grant.sid,
                Effect: "Allow",
                Action: ["s3:ListBucket"],
                Resource: rendersBucket.arn,
                ...(grant.prefixes ? { Condition: { StringLike: { "s3:prefix": oneOrList(grant.prefixes) } } } : {}),
            };
        return {
            Sid: grant.sid,
            Effect: "Allow",
            Action: [...grant.actions],
            Resource: oneOrList(grant.keys.map((key) => pulumi.interpolate`${rendersBucket.arn}/${key}`)),
        };
    });
}
