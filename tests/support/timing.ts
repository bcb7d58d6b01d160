// Timing bounds in tests are an event's configured time plus this, never a fixed wall-clock figure: the machines that
// run the tests may have 2 cores shared by several Blender renders, and are slow and noisy.

/** What a loaded machine may add to an event's time (a timer firing, a process being reaped, a poll coming round). */
export const LOADED_MACHINE_MARGIN_MS = 30_000;
