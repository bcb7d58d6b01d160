// Text from scenes and from the farm (paths, names, error messages, Blender's log) reaches the user's terminal:
// control characters in it are shown as escapes, never sent, so a scene cannot drive the terminal.

/**
 * C0 controls but tab (newline too: each thing the CLI prints is one line), DEL, C1 controls (U+0080-U+009F: a UTF-8 terminal may take U+009B as CSI),
 * and the bidirectional overrides and isolates that reorder what is displayed.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const UNSAFE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function escapeOf(character: string): string {
    const code = character.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
}

/** One line: every unsafe character written as a visible escape (ESC → `\x1b`, newline → `\x0a`, U+202E → `\u202e`). */
export function terminalSafe(text: string): string {
    return text.replace(UNSAFE, escapeOf);
}

/** Several lines (a usage text): each line made safe, the newlines kept. */
export function terminalSafeLines(text: string): string {
    return text.split("\n").map(terminalSafe).join("\n");
}

/**
 * JSON text with the characters JSON.stringify leaves raw but a terminal may act on (C1 controls, bidi
 * overrides) written as \uXXXX escapes: the same JSON value, safe to print.
 */
export function terminalSafeJson(json: string): string {
    return json.replace(
        /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
        (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
}
