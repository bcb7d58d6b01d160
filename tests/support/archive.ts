// The archive reader lives in local/ (the local farm's Lambda runtime mode unpacks the job API with it).
export * from "../../local/stackArchive";
