// The image formats a job renders: their file extensions, what a tile of each is stored as, and how a tiled frame
// stored losslessly is encoded once stitched.

export const FORMATS = ["PNG", "JPEG", "OPEN_EXR", "TIFF"] as const;
export type Format = (typeof FORMATS)[number];

export const FORMAT_EXTENSIONS: Record<Format, string> = {
    PNG: "png",
    JPEG: "jpg",
    OPEN_EXR: "exr",
    TIFF: "tif",
};

export const LOSSY_EXR_CODECS = ["DWAA", "DWAB", "B44", "B44A", "PXR24"] as const;
export type LossyExrCodec = (typeof LOSSY_EXR_CODECS)[number];

/**
 * How a tiled frame whose tiles are stored losslessly is encoded once stitched: with Blender's own encoder and the
 * scene's settings, so that it is the file Blender writes for the whole frame (a JPEG, or an OpenEXR with a lossy
 * codec: Blender 5 takes the DWA level from `quality`).
 */
export interface FrameEncoding {
    format: "JPEG" | "OPEN_EXR";
    /** The scene's image quality (0 to 100). */
    quality: number;
    /** JPEG only: grayscale or color. */
    colorMode?: "BW" | "RGB";
    /** OPEN_EXR only. */
    exrCodec?: LossyExrCodec;
    /** OPEN_EXR only: half ("16") or full ("32") floats. */
    colorDepth?: "16" | "32";
}

/** What a tile renders to: the frame's format, except JPEG, whose tiles are lossless PNG (the frame is encoded once). */
export function tileFormatOf(format: Format): Format {
    return format === "JPEG" ? "PNG" : format;
}
