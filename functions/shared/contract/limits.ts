// The bounds the job contract puts on a request and a frame message, and the defaults within them.

export const JOB_ID_PATTERN = /^[a-z0-9-]{1,64}$/;
/** Largest request body the job API reads; a real request is a few hundred bytes. */
export const MAX_REQUEST_BYTES = 256 * 1024;
/** Blender's own frame limit (MAXFRAME). */
export const MAX_FRAME_NUMBER = 1048574;
export const MAX_ASSETS = 1000;
export const MAX_SAMPLES = 1 << 20;
/** Fail fast by default: the job stops once its first 3 distinct frames fail with the same error and none is done. */
export const DEFAULT_FAIL_FAST_FRAMES = 3;
export const MAX_FAIL_FAST_FRAMES = 1000;
/** Most probe frames an estimate may ask for. */
export const MAX_PROBE_FRAMES = 64;
/** Fewest and most regions a tiled job splits each frame into (JobRequest.tiles). */
export const MIN_TILES = 2;
export const MAX_TILES = 64;
