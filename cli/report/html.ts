// Building HTML from strings the farm and the scene supply (scene keys, error messages, Blender's log): every such
// string goes through escapeHtml, so a scene named `<script>…` shows as text and never runs.

/** Text as HTML text or a quoted attribute value: & < > " ' escaped. */
export function escapeHtml(text: unknown): string {
    return String(text)
        .replace(/&/g, "&amp;")
        .replace(/</g, "&lt;")
        .replace(/>/g, "&gt;")
        .replace(/"/g, "&quot;")
        .replace(/'/g, "&#39;");
}

/** Markup made by this module's callers; plain strings given to html`` are escaped, Markup is kept. */
export class Markup {
    constructor(readonly text: string) {}
    toString(): string {
        return this.text;
    }
}

type Part = string | number | Markup | undefined | null | false | readonly Part[];

function render(part: Part): string {
    if (part === undefined || part === null || part === false) return "";
    if (part instanceof Markup) return part.text;
    if (Array.isArray(part)) return part.map(render).join("");
    return escapeHtml(part);
}

/**
 * A template tag: html`<td>${value}</td>` escapes `value` unless it is Markup (another html`` result), so escaping
 * is the default and forgetting it is not possible. Arrays are joined; undefined, null and false render nothing.
 */
export function html(strings: TemplateStringsArray, ...values: Part[]): Markup {
    let text = strings[0];
    for (let index = 0; index < values.length; index++) text += render(values[index]) + strings[index + 1];
    return new Markup(text);
}

/** A data: URI of `bytes` with `mimeType` (base64): images and the video are inlined, so the report is one file. */
export function dataUri(mimeType: string, bytes: Buffer): string {
    return `data:${mimeType};base64,${bytes.toString("base64")}`;
}
