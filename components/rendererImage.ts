// The renderer's container image: an ECR repository and the image built from image/ and pushed there.
import * as aws from "@pulumi/aws";
import * as docker from "@pulumi/docker";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { FarmSettings } from "../functions/shared/farmSettings";

export type RendererImageArgs = Pick<FarmSettings, "blenderVersion" | "imagesToKeep">;

/** The build context is the project root: the image compiles functions/ itself (see image/Dockerfile). */
export const IMAGE_BUILD_CONTEXT = path.join(__dirname, "..");
export const IMAGE_DOCKERFILE = path.join(IMAGE_BUILD_CONTEXT, "image", "Dockerfile");

export class RendererImage extends pulumi.ComponentResource {
    public readonly repository: aws.ecr.Repository;
    /** `<repository>@sha256:<digest>`: a rebuilt image changes it, which redeploys the function. */
    public readonly imageUri: pulumi.Output<string>;

    constructor(name: string, args: RendererImageArgs, opts?: pulumi.ComponentResourceOptions) {
        super("render-farm:index:RendererImage", name, {}, opts);
        this.repository = new aws.ecr.Repository(
            `${name}-repo`,
            {
                forceDelete: true,
                imageTagMutability: "MUTABLE",
                imageScanningConfiguration: { scanOnPush: true },
                encryptionConfigurations: [{ encryptionType: "AES256" }],
            },
            { parent: this },
        );
        new aws.ecr.LifecyclePolicy(
            `${name}-keep-recent`,
            {
                repository: this.repository.name,
                policy: JSON.stringify({
                    rules: [
                        {
                            rulePriority: 1,
                            description: `keep the last ${args.imagesToKeep} images`,
                            selection: {
                                tagStatus: "any",
                                countType: "imageCountMoreThan",
                                countNumber: args.imagesToKeep,
                            },
                            action: { type: "expire" },
                        },
                    ],
                }),
            },
            { parent: this },
        );

        const registry = aws.ecr.getAuthorizationTokenOutput(
            { registryId: this.repository.registryId },
            { parent: this },
        );
        const image = new docker.Image(
            `${name}-image`,
            {
                imageName: pulumi.interpolate`${this.repository.repositoryUrl}:blender-${args.blenderVersion}`,
                build: {
                    context: IMAGE_BUILD_CONTEXT,
                    dockerfile: IMAGE_DOCKERFILE,
                    platform: "linux/amd64",
                    args: { BLENDER_VERSION: args.blenderVersion },
                },
                registry: {
                    server: this.repository.repositoryUrl,
                    username: registry.userName,
                    password: pulumi.secret(registry.password),
                },
            },
            { parent: this },
        );
        this.imageUri = image.repoDigest;
        this.registerOutputs({ imageUri: this.imageUri });
    }
}
