// Reads a Pulumi AssetArchive (as CallbackFunction builds it) into files, and writes it out as Lambda would unpack it.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";

export interface ArchiveFile {
    path: string;
    bytes: number;
    /** For string assets: the text itself. */
    text?: string;
    /** For files on disk: where they are. */
    source?: string;
}

function walk(directory: string, prefix: string, into: ArchiveFile[]): void {
    for (const entry of fs.readdirSync(directory, { withFileTypes: true })) {
        const full = path.join(directory, entry.name);
        const relative = path.posix.join(prefix, entry.name);
        if (entry.isDirectory()) walk(full, relative, into);
        else if (entry.isFile()) into.push({ path: relative, bytes: fs.statSync(full).size, source: full });
    }
}

export async function archiveFiles(archive: pulumi.asset.AssetArchive, prefix = ""): Promise<ArchiveFile[]> {
    const files: ArchiveFile[] = [];
    const assets = await archive.assets;
    for (const [name, entry] of Object.entries(assets)) {
        const at = path.posix.join(prefix, name);
        if (entry instanceof pulumi.asset.StringAsset) {
            const text = (await entry.text) as string;
            files.push({ path: at, bytes: Buffer.byteLength(text), text });
        } else if (entry instanceof pulumi.asset.FileArchive) {
            walk(path.resolve(await entry.path), at, files);
        } else if (entry instanceof pulumi.asset.FileAsset) {
            const source = path.resolve(await entry.path);
            files.push({ path: at, bytes: fs.statSync(source).size, source });
        } else if (entry instanceof pulumi.asset.AssetArchive) {
            files.push(...(await archiveFiles(entry, at)));
        } else {
            throw new Error(`archive entry ${at} is of a kind this reader does not know`);
        }
    }
    return files;
}

/** Writes the archive's files under `directory` and returns it. */
export function writeArchive(files: ArchiveFile[], directory: string): string {
    for (const file of files) {
        const target = path.join(directory, file.path);
        fs.mkdirSync(path.dirname(target), { recursive: true });
        if (file.text !== undefined) fs.writeFileSync(target, file.text);
        else fs.copyFileSync(file.source!, target);
    }
    return directory;
}
