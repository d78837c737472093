//! Allocator tuning for a long-running daemon on glibc. A cycle builds
//! megabyte-sized buffers (response bodies, the state file, the desired
//! connections of thousands of guests) and drops them at its end. With
//! glibc's defaults the threshold above which a block gets its own mapping
//! rises after the first such block is freed, so later ones come from the
//! heap, fragment it, and the process keeps the pages: peak and idle RSS
//! grow well beyond what is in use (README § Performance).

/// Blocks from this size up are mapped on their own and unmapped on free.
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
/// Free memory at the top of the heap beyond this is given back at once.
const TRIM_THRESHOLD: libc::c_int = 256 * 1024;

/// Fixes the thresholds (fixing them also stops glibc from raising them).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Gives freed heap memory back to the system (after a cycle: the daemon
/// then sleeps for minutes holding only what it keeps between cycles).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}
