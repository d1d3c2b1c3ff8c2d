//! Crash points for the fault suite (tests/faults): with `FAULT_SUITE_CRASH_FILE=<path>` set at
//! start-up (not `LANTERN_`: that prefix is for properties, and an unknown one is refused), a
//! point named in that file kills this process with SIGKILL (exactly what
//! `kill -9` does: no destructor, no flush) the first time it is reached, and the file is
//! removed so the restarted process runs on. The suite writes a point into the file to crash
//! a broker in the middle of a segment roll or a compaction swap, moments that a kill from
//! outside hits only by luck.
//!
//! Without the variable (every production start) `reached` is one atomic load. With it, each
//! point reached reads the file; the points are on rare paths (rolls, compaction swaps).
use std::path::PathBuf;
use std::sync::OnceLock;

/// Every point, so that the suite and the tests name them the same way.
pub const POINTS: &[&str] = &[
    // PartitionLog::roll: the old segment sealed, the new one not yet created.
    "log.roll.sealed",
    // PartitionLog::roll: the new segment's files created, the directory not yet synced.
    "log.roll.created",
    // The cleaner: the cleaned copies written, none renamed to `.swap` (the commit point).
    "cleaner.before_swap",
    // The cleaner: the copies renamed to `.swap` and the first segment's index files
    // removed, its `.swap` not yet renamed over the `.log`.
    "cleaner.mid_swap",
    // A log-directory move (AlterReplicaLogDirs): the committed copy renamed to the
    // partition's name in its directory, the old directory not yet renamed for deletion.
    "log.move.mid_swap",
];

fn crash_file() -> Option<&'static PathBuf> {
    static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    FILE.get_or_init(|| std::env::var_os("FAULT_SUITE_CRASH_FILE").map(PathBuf::from)).as_ref()
}

/// Kills this process if `point` is armed in the crash file.
pub fn reached(point: &'static str) {
    let Some(file) = crash_file() else { return };
    let Ok(armed) = std::fs::read_to_string(file) else { return };
    if armed.lines().any(|l| l.trim() == point) {
        let _ = std::fs::remove_file(file);
        eprintln!("crash point {point} reached: killing this process (FAULT_SUITE_CRASH_FILE={})", file.display());
        // SAFETY: kill(2) on our own pid; SIGKILL cannot be caught, nothing runs after it.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
