//! The process's table of open files, grown once before the first accept.
//!
//! Why: Linux grows a process's file table by doubling it when an accept needs a slot past its
//! end, and in a multi-threaded process that accept then waits for an RCU grace period (18 to
//! 70 ms measured here) while holding up the accept loop. Opening 10,000 streams crosses eight
//! doublings: during a reconnect storm the machine sat a fifth idle (bench/README.md). Grown
//! once at start-up for every connection allowed, no accept waits for it again.

use std::os::fd::AsFd;

use rustix::process::{getrlimit, Resource};

/// Slots beyond the connection cap: the database, logs and the listener itself.
const RESERVE: usize = 256;
/// At most this many slots (8 bytes of kernel memory each, plus bitmaps); past it the table
/// still grows on demand, as before.
const MAX_SLOTS: usize = 1 << 16;

/// Grows the file table to hold `connections` sockets and the reserve, within the open-files
/// limit; `fd` is any open descriptor (duplicated once at the top and closed again). Returns
/// the slots asked for; on failure nothing changes but the first accepts' speed.
pub fn grow(fd: impl AsFd, connections: usize) -> usize {
    let limit = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let wanted = connections
        .saturating_add(RESERVE)
        .min(MAX_SLOTS)
        .min(usize::try_from(limit).unwrap_or(usize::MAX));
    let Some(top) = wanted.checked_sub(1).and_then(|t| i32::try_from(t).ok()) else {
        return 0;
    };
    match rustix::io::fcntl_dupfd_cloexec(fd, top) {
        // Closed at once: the table keeps its size.
        Ok(_dup) => wanted,
        Err(e) => {
            tracing::debug!(error = %e, wanted, "could not grow the file table");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_grown_and_nothing_stays_open() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let open = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let before = open();
        let grown = grow(&file, 1000);
        assert_eq!(
            grown,
            1256.min(getrlimit(Resource::Nofile).current.unwrap() as usize)
        );
        assert_eq!(open(), before, "the duplicate was closed");
        // The kernel's own count of slots: `FDSize` in /proc/self/status.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let size: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(size >= grown, "FDSize {size} < {grown}");
    }
}
