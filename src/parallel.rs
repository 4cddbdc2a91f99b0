//! Data parallelism without a thread pool: split a vector into one chunk per core and map
//! each on a scoped thread. Used where the work per item dwarfs a thread start (signature
//! checks, loading and auditing facilities).

/// Maps `f` over `items` on every available core, keeping their order: a thread for
/// each `min_per_thread` items begun, at most one per core (`threads_for`), so inputs of
/// at most `min_per_thread` items stay on the calling thread.
pub fn map<T: Send, R: Send>(
    items: Vec<T>,
    min_per_thread: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    map_shares(items, min_per_thread, |share| {
        share.into_iter().map(&f).collect()
    })
}

/// Splits `items` into a share a thread, as `map` does, and maps each share with `f`,
/// which gives one result an item, in order: for work that is cheaper done for many
/// items together (signature checks that end with one inversion).
pub fn map_shares<T: Send, R: Send>(
    items: Vec<T>,
    min_per_thread: usize,
    f: impl Fn(Vec<T>) -> Vec<R> + Sync,
) -> Vec<R> {
    let items_len = items.len();
    let threads = threads_for(items_len, min_per_thread);
    let share = items_len.div_ceil(threads);
    let mut shares: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut rest = items.into_iter();
    for _ in 0..threads {
        shares.push(rest.by_ref().take(share).collect());
    }
    let f = &f;
    let results: Vec<R> = if threads == 1 {
        shares.into_iter().flat_map(f).collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = shares
                .into_iter()
                .map(|s| scope.spawn(move || f(s)))
                .collect();
            handles.into_iter().flat_map(joined).collect()
        })
    };
    assert_eq!(results.len(), items_len, "one result an item");
    results
}

/// How far behind a single thread that everything waits on (a bulk append's writer, a
/// replay's applying thread) the stages working ahead of it are scheduled (`run_behind`):
/// it then gets a core whenever it can run, and they use what it leaves. A niceness of 10
/// weighs about a tenth of the default. Measured on a world's append, whose writer is
/// the bound: about 3% faster in alternating runs (BENCHMARKS.md).
pub const WORKING_AHEAD_NICENESS: i32 = 10;

/// Schedules the calling thread, and the threads it starts from now on, `niceness` steps
/// behind where it runs now (on Linux a niceness is per thread, and a thread inherits its
/// starter's). Lowering one's own priority is always allowed; should the kernel refuse
/// anyway, only the speed differs, so `what` is named in a warning, never a failure.
pub fn run_behind(niceness: i32, what: &str) {
    let this = Some(rustix::thread::gettid());
    let lowered = rustix::process::getpriority_process(this)
        .and_then(|now| rustix::process::setpriority_process(this, now.saturating_add(niceness)));
    if let Err(e) = lowered {
        tracing::warn!(error = %e, "{what} runs at the priority of the threads it works beside");
    }
}

/// Schedules the calling thread, and the threads it starts from now on, in the kernel's
/// idle class (`SCHED_IDLE`): it weighs far less than a thread of the default class, and
/// such a thread that wakes beside it preempts it. A niceness only weighs the turns, so a
/// thread woken beside it waited out a scheduler slice for a core more often. (Neither is
/// a strict priority: the kernel's EEVDF scheduler may still run it first until the next
/// tick; ARCHITECTURE.md, the server.) Lowering one's own class is always allowed; should
/// the kernel refuse anyway, only the speed differs, so `what` is named in a warning.
pub fn run_when_idle(what: &str) {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid `sched_param` that outlives the call; the call only
        // reads it, and thread 0 is the calling thread.
        let refused = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0;
        if refused {
            let e = std::io::Error::last_os_error();
            tracing::warn!(error = %e, "{what} runs in the class of the threads it works beside");
        }
    }
    #[cfg(not(target_os = "linux"))]
    run_behind(19, what);
}

/// The result of a scoped thread; its panic, if any, continues on the joining thread
/// (a panic there is a bug, and it must not pass for an empty result).
pub fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The threads `map` spreads `items` over: one per core, but none with fewer than
/// `min_per_thread` of them.
pub fn threads_for(items: usize, min_per_thread: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.div_ceil(min_per_thread.max(1)))
        .max(1)
}

#[cfg(test)]
mod tests {
    /// Each share is a run of neighbouring items, one a thread at most, and the results
    /// come back in the items' order whatever the number of items.
    #[test]
    fn shares_are_runs_of_neighbours_mapped_in_order() {
        for items in [1_usize, 7, 32, 33, 1_000, 1_001] {
            let mapped = super::map_shares((0..items).collect(), 32, |share| {
                let first = share[0];
                share.into_iter().map(|i| (i, first)).collect()
            });
            let order: Vec<usize> = mapped.iter().map(|&(i, _)| i).collect();
            assert_eq!(order, (0..items).collect::<Vec<_>>(), "{items} items");
            let mut starts: Vec<usize> = mapped.iter().map(|&(_, first)| first).collect();
            starts.dedup();
            assert_eq!(starts.len(), super::threads_for(items, 32), "{items} items");
        }
    }

    #[test]
    fn running_behind_lowers_the_priority_of_the_thread_and_those_it_starts_alone() {
        let nice = || {
            rustix::process::getpriority_process(Some(rustix::thread::gettid()))
                .expect("read a thread's nice value")
        };
        let before = nice();
        let (ahead, started) = std::thread::scope(|s| {
            s.spawn(|| {
                super::run_behind(super::WORKING_AHEAD_NICENESS, "the test's thread");
                (nice(), std::thread::scope(|s| super::joined(s.spawn(nice))))
            })
            .join()
            .expect("the thread working ahead")
        });
        // The kernel keeps nice values within 19.
        assert_eq!(ahead, (before + super::WORKING_AHEAD_NICENESS).min(19));
        assert_eq!(started, ahead, "a thread it starts inherits its priority");
        assert_eq!(nice(), before, "the calling thread's priority is its own");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn running_when_idle_puts_the_thread_and_those_it_starts_alone_in_the_idle_class() {
        // SAFETY: `sched_getscheduler` takes no pointer; thread 0 is the calling thread.
        let class = || unsafe { libc::sched_getscheduler(0) };
        let before = class();
        let (idle, started) = std::thread::scope(|s| {
            s.spawn(|| {
                super::run_when_idle("the test's thread");
                (
                    class(),
                    std::thread::scope(|s| super::joined(s.spawn(class))),
                )
            })
            .join()
            .expect("the idle thread")
        });
        assert_eq!(idle, libc::SCHED_IDLE);
        assert_eq!(
            started,
            libc::SCHED_IDLE,
            "a thread it starts inherits its class"
        );
        assert_eq!(class(), before, "the calling thread's class is its own");
        assert_ne!(before, libc::SCHED_IDLE);
    }

    #[test]
    fn keeps_order() {
        let out = super::map((0..1000).collect(), 10, |i: u32| i * 2);
        assert_eq!(out, (0..1000).map(|i| i * 2).collect::<Vec<_>>());
        assert!(super::map(Vec::<u32>::new(), 10, |i| i).is_empty());
    }
}
