// The job contract, one concern a module: what the job API, the renderer, the CLI and the local farm agree on.
// Everything here is a plain function or constant: the job API is serialized by Pulumi's closure serializer (see
// functions/README.md).
export * from "./apiErrors";
export * from "./cost";
export * from "./etags";
export * from "./formats";
export * from "./frameMessage";
export * from "./frameSpec";
export * from "./ledgerKeys";
export * from "./limits";
export * from "./objectKeys";
export * from "./replies";
export * from "./request";
export * from "./stackOutputs";
export * from "./types";
