// The key prefix `render` uploads a scene's folder under when no --prefix is given: the folder's name, so keys stay
// readable, and a short hash of its real path, so two projects both called `shot/` never overwrite each other in a
// shared bucket while the same folder always maps to the same prefix (its unchanged files are not uploaded again).
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";

/** Hex digits of the path's sha256 kept: 40 bits, so a bucket shared by thousands of folders sees no collision. */
const HASH_DIGITS = 10;
/** Longest part of the folder's name kept in the prefix. */
const NAME_LENGTH = 48;

/** `shot-3f9c0a12be` for the folder `/home/ana/films/shot`. */
export function defaultUploadPrefix(sceneDir: string): string {
    let real: string;
    try {
        real = fs.realpathSync.native(sceneDir);
    } catch {
        real = path.resolve(sceneDir);
    }
    const hash = crypto.createHash("sha256").update(real).digest("hex").slice(0, HASH_DIGITS);
    // Letters, digits, '.', '_' and '-' of any script stay; anything else (spaces, '\', control characters) becomes '-'.
    const name = path
        .basename(real)
        .normalize("NFC")
        .replace(/[^\p{L}\p{N}._-]+/gu, "-")
        .replace(/^[-.]+|-+$/g, "")
        .slice(0, NAME_LENGTH);
    return `${name || "scene"}-${hash}`;
}
