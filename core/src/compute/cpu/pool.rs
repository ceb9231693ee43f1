//! A persistent worker pool for kernels: the caller runs share 0 itself, workers run the others.
//!
//! A forward pass issues a few hundred short kernels per token, so waking threads must cost
//! microseconds: workers spin briefly on an epoch counter before sleeping on a condvar.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// How many times an idle worker polls before it sleeps (tens of microseconds).
const SPINS: u32 = 20_000;

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    job: Mutex<Option<SendJob>>,
    epoch: AtomicU64,
    pending: AtomicUsize,
    sleeping: AtomicUsize,
    shutdown: AtomicBool,
    wake: Condvar,
    sleep_lock: Mutex<()>,
}

#[derive(Clone, Copy)]
struct SendJob(Job);
// SAFETY: the pointee is `Sync` and `ThreadPool::run` keeps it alive until every worker is done.
unsafe impl Send for SendJob {}

/// A fixed set of threads that run one job at a time, split `threads` ways.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
}

impl ThreadPool {
    /// A pool of `threads` shares (the caller plus `threads - 1` workers).
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            job: Mutex::new(None),
            epoch: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            sleeping: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            wake: Condvar::new(),
            sleep_lock: Mutex::new(()),
        });
        let workers = (1..threads)
            .map(|index| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("murmur-kernel-{index}"))
                    .spawn(move || worker(&shared, index))
                    .expect("spawning a kernel thread")
            })
            .collect();
        Self { shared, workers, threads }
    }

    /// Number of shares a job is split into.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(share)` for every share in `0..threads`, returning when all are done.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.threads == 1 {
            return f(0);
        }
        // SAFETY: only the lifetime is erased; we wait below until no worker holds the pointer.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f) };
        *self.shared.job.lock().expect("pool lock") = Some(SendJob(job));
        self.shared.pending.store(self.threads - 1, SeqCst);
        self.shared.epoch.fetch_add(1, SeqCst);
        if self.shared.sleeping.load(SeqCst) > 0 {
            let _guard = self.shared.sleep_lock.lock().expect("pool lock");
            self.shared.wake.notify_all();
        }
        f(0);
        while self.shared.pending.load(SeqCst) != 0 {
            std::hint::spin_loop();
        }
    }
}

fn worker(shared: &Shared, index: usize) {
    let mut seen = 0u64;
    loop {
        let mut spins = 0;
        loop {
            if shared.shutdown.load(SeqCst) {
                return;
            }
            let epoch = shared.epoch.load(SeqCst);
            if epoch != seen {
                seen = epoch;
                break;
            }
            spins += 1;
            if spins < SPINS {
                std::hint::spin_loop();
                continue;
            }
            let mut guard = shared.sleep_lock.lock().expect("pool lock");
            shared.sleeping.fetch_add(1, SeqCst);
            while shared.epoch.load(SeqCst) == seen && !shared.shutdown.load(SeqCst) {
                guard = shared.wake.wait(guard).expect("pool lock");
            }
            shared.sleeping.fetch_sub(1, SeqCst);
            spins = 0;
        }
        let job = shared.job.lock().expect("pool lock").expect("a job is set before the epoch moves");
        // SAFETY: `run` keeps the closure alive until `pending` reaches zero.
        unsafe { (*job.0)(index) };
        shared.pending.fetch_sub(1, SeqCst);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, SeqCst);
        {
            let _guard = self.shared.sleep_lock.lock().expect("pool lock");
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// The half-open range of `0..len` that share `index` of `shares` covers.
pub fn share(len: usize, index: usize, shares: usize) -> std::ops::Range<usize> {
    (len * index / shares)..(len * (index + 1) / shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_share_runs_once_per_job() {
        let pool = ThreadPool::new(3);
        let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
        for _ in 0..1000 {
            pool.run(&|i| {
                hits[i].fetch_add(1, SeqCst);
            });
        }
        assert!(hits.iter().all(|h| h.load(SeqCst) == 1000));
    }
}
