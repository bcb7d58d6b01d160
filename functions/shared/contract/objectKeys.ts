// Which S3 keys the farm accepts: keys it mirrors into a work dir must not escape it.

/** S3's own limit on key length, in bytes. */
const MAX_KEY_BYTES = 1024;

/** Why `key` is not a safe S3 key to mirror into a work dir, or undefined when it is. */
export function objectKeyProblem(key: string): string | undefined {
    if (key.length === 0) return "is empty";
    if (Buffer.byteLength(key, "utf8") > MAX_KEY_BYTES) return `is longer than ${MAX_KEY_BYTES} bytes`;
    if (key.startsWith("/")) return "starts with '/'";
    if (key.includes("\\")) return "contains '\\'";
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what this refuses
    if (/[\u0000-\u001f\u007f]/.test(key)) return "contains a control character";
    const segments = key.split("/");
    if (segments.some((segment) => segment === "..")) return "contains a '..' segment";
    if (segments.some((segment) => segment === "." || segment === "")) return "contains an empty or '.' segment";
    return undefined;
}
