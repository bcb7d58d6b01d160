// The Pulumi program under mocks lives in local/ (the local farm's Lambda runtime mode uses it too).
export * from "../../local/stackProgram";
