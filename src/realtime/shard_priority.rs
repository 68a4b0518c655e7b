//! Shard threads run a little below the rest of the server. When events come faster than the
//! shards can write them, the shards would otherwise take both cores from the webhook that
//! brings the next event (its parsing, its commit, its answer), so fewer events arrive and
//! each is written in a write of its own; yielding to that path lets a shard's pass carry
//! several events per write (bench/README.md, "What was tried"). An idle shard costs nothing,
//! and one that is behind still gets its share of the CPU.

/// How much lower than the server's own priority a shard thread runs (nice steps; Linux
/// keeps the nice value per thread).
pub const SHARD_NICE_STEPS: i32 = 5;

/// Lowers the calling thread's priority by `SHARD_NICE_STEPS`, relative to what it has (a
/// server already started with `nice` stays below it). Lowering needs no privilege; a failure
/// leaves the thread as it was.
pub fn lower_this_thread() {
    use rustix::process::{getpriority_process, setpriority_process};
    let lowered = getpriority_process(None)
        .and_then(|now| setpriority_process(None, (now + SHARD_NICE_STEPS).min(19)));
    if let Err(e) = lowered {
        tracing::debug!(error = %e, "could not lower a shard thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's nice value, from /proc.
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // After the command name in parentheses: the state is field 3, the nice value 19.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn only_the_calling_thread_is_lowered() {
        let before = own_nice();
        let lowered = std::thread::spawn(|| {
            lower_this_thread();
            own_nice()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (before + SHARD_NICE_STEPS).min(19));
        assert_eq!(own_nice(), before, "the caller's thread keeps its priority");
    }
}
