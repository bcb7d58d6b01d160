// The stack's outputs: what other stacks, the CLI and the local farm read to find the farm.

/**
 * The stack outputs other stacks and the CLI consume (`pulumi stack output --json`): apiUrl, the two bucket names,
 * the frame queue's and the dead-letter queue's URLs, the two function names, imageUri (by digest) and region.
 */
export const STACK_OUTPUT_NAMES = [
    "apiUrl",
    "scenesBucket",
    "rendersBucket",
    "frameQueueUrl",
    "deadLetterQueueUrl",
    "rendererFunctionName",
    "jobApiFunctionName",
    "imageUri",
    "region",
] as const;
export type StackOutputName = (typeof STACK_OUTPUT_NAMES)[number];

/** The stack outputs' values; the local farm writes the same shape plus `awsEndpoint` (where its emulator listens). */
export type FarmOutputs = Record<StackOutputName, string> & { awsEndpoint?: string };
