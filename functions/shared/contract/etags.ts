// S3 ETags in a frame message: every asset pinned to the version the job was submitted with, in few bytes.

/** S3's ETag of a single-part object ("<md5 hex>") or a multipart one ("<md5 hex>-<parts>"), quotes included. */
const S3_ETAG = /^"([0-9a-f]{32})(-[1-9][0-9]{0,4})?"$/;
/** One entry of encodeEtags: 22 base64url characters of an MD5 and an optional part count, or "~" and raw text. */
const ENCODED_ETAG = /^(?:([A-Za-z0-9_-]{22})(-[1-9][0-9]{0,4})?|~([A-Za-z0-9_-]*))$/;

/**
 * ETags as one short string, comma-separated in order: S3's quoted MD5 ETag as its 16 bytes in base64url (22
 * characters, "-<parts>" after it for a multipart one), any other ETag as "~" and base64url of its text, an unknown
 * one as nothing. 23 to 29 bytes an asset instead of 39 as a JSON array of strings: 1,000 pinned assets fit in an SQS
 * message beside keys of the usual length.
 */
export function encodeEtags(etags: string[]): string {
    return etags
        .map((etag) => {
            if (etag === "") return "";
            const match = S3_ETAG.exec(etag);
            if (match) return Buffer.from(match[1], "hex").toString("base64url") + (match[2] ?? "");
            return `~${Buffer.from(etag, "utf8").toString("base64url")}`;
        })
        .join(",");
}

/** The `count` ETags encodeEtags wrote ("" where unknown), or undefined when `encoded` is not that. */
export function decodeEtags(encoded: string, count: number): string[] | undefined {
    const entries = count === 0 && encoded === "" ? [] : encoded.split(",");
    if (entries.length !== count) return undefined;
    const etags: string[] = [];
    for (const entry of entries) {
        if (entry === "") {
            etags.push("");
            continue;
        }
        const match = ENCODED_ETAG.exec(entry);
        if (!match) return undefined;
        if (match[3] !== undefined) etags.push(Buffer.from(match[3], "base64url").toString("utf8"));
        else etags.push(`"${Buffer.from(match[1], "base64url").toString("hex")}${match[2] ?? ""}"`);
    }
    return etags;
}
