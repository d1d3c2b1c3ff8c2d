//! The request handler pool: `num.io.threads` slots, as Kafka's KafkaRequestHandlerPool has
//! that many threads. A request read off a connection waits for a slot (Kafka's request queue:
//! RequestQueueSize, RequestQueueTimeMs), holds it while it is handled, fsyncs and blocking
//! reads included (Kafka's handler threads block on them), and gives it back while it waits on
//! others, as Kafka's purgatories free the handler thread: a long-polling Fetch, a JoinGroup or
//! SyncGroup waiting for the group, an acks=all append waiting for the followers, DeleteRecords
//! waiting for the low watermark. That time is RemoteTimeMs; the request takes a slot again to
//! finish. RequestHandlerAvgIdlePercent is the share of slot time no request held.
//!
//! The slot of the request a task serves is task-local, so code deep in a handler (a partition
//! waiting for its followers) can give it back with [`remote`] without being handed it.
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Slot time accounting: the busy time of slots given back, plus that of the slots held now
/// (`held` × now − the sum of their acquisition times), so a window sees a request that holds a
/// slot across it.
#[derive(Default)]
struct Busy {
    held: u64,
    since_sum_ns: u128,
    done_ns: u128,
}

pub struct HandlerPool {
    slots: usize,
    semaphore: Arc<Semaphore>,
    /// Requests read from clients and waiting for a slot (RequestQueueSize).
    waiting: AtomicI64,
    busy: Mutex<Busy>,
    origin: Instant,
    /// (window start, busy ns at that start, idle share of the last complete window).
    window: Mutex<(Instant, u128, f64)>,
}

/// A held slot; given back when dropped.
pub struct Slot {
    pool: Arc<HandlerPool>,
    since_ns: u128,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let now = self.pool.now_ns();
        let mut b = self.pool.busy.lock();
        b.held -= 1;
        b.since_sum_ns -= self.since_ns;
        b.done_ns += now.saturating_sub(self.since_ns);
    }
}

impl HandlerPool {
    pub fn new(slots: usize) -> Arc<Self> {
        let slots = slots.max(1);
        let origin = Instant::now();
        Arc::new(Self {
            slots,
            semaphore: Arc::new(Semaphore::new(slots)),
            waiting: AtomicI64::new(0),
            busy: Mutex::new(Busy::default()),
            origin,
            window: Mutex::new((origin, 0, 1.0)),
        })
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    fn now_ns(&self) -> u128 {
        self.origin.elapsed().as_nanos()
    }

    /// Waits for a free slot (counted in [`Self::queued`] meanwhile).
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        let permit = match self.semaphore.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                struct Queued<'a>(&'a AtomicI64);
                impl Drop for Queued<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let _queued = Queued(&self.waiting);
                self.semaphore.clone().acquire_owned().await.expect("the handler pool's semaphore is never closed")
            }
        };
        let since_ns = self.now_ns();
        let mut b = self.busy.lock();
        b.held += 1;
        b.since_sum_ns += since_ns;
        drop(b);
        Slot { pool: self.clone(), since_ns, _permit: permit }
    }

    /// Requests waiting for a slot now.
    pub fn queued(&self) -> i64 {
        self.waiting.load(Ordering::Relaxed).max(0)
    }

    /// Slots held now.
    pub fn busy_slots(&self) -> u64 {
        self.busy.lock().held
    }

    /// Slot-nanoseconds held since the pool started.
    fn busy_ns(&self, now_ns: u128) -> u128 {
        let b = self.busy.lock();
        b.done_ns + (b.held as u128 * now_ns).saturating_sub(b.since_sum_ns)
    }

    /// Share of slot time free since the previous call: 1 − held slot time / (elapsed × slots).
    /// Computed at most once a second (scrapes in between reuse the last value), like the other
    /// windowed ratios.
    pub fn idle_ratio(&self) -> f64 {
        let mut w = self.window.lock();
        let elapsed = w.0.elapsed();
        if elapsed < Duration::from_secs(1) {
            return w.2;
        }
        let now = Instant::now();
        let busy = self.busy_ns(now.duration_since(self.origin).as_nanos());
        let capacity = now.duration_since(w.0).as_nanos() as f64 * self.slots as f64;
        let idle = 1.0 - busy.saturating_sub(w.1) as f64 / capacity;
        *w = (now, busy, idle.clamp(0.0, 1.0));
        w.2
    }
}

/// The slot of the request this task is serving, and the time it spent waiting on others.
pub struct RequestSlot {
    pool: Arc<HandlerPool>,
    held: Mutex<Option<Slot>>,
    remote_ns: AtomicU64,
}

tokio::task_local! {
    static CURRENT: Arc<RequestSlot>;
}

impl RequestSlot {
    pub fn new(slot: Slot) -> Arc<Self> {
        Arc::new(Self { pool: slot.pool.clone(), held: Mutex::new(Some(slot)), remote_ns: AtomicU64::new(0) })
    }

    /// Runs a request's handler with this slot as the task's current one.
    pub fn scope<F: Future>(self: &Arc<Self>, handler: F) -> tokio::task::futures::TaskLocalFuture<Arc<RequestSlot>, F> {
        CURRENT.scope(self.clone(), handler)
    }

    /// Time spent in [`remote`] (waiting on others, and for a slot to finish), for RemoteTimeMs.
    pub fn remote(&self) -> Duration {
        Duration::from_nanos(self.remote_ns.load(Ordering::Relaxed))
    }

    /// Gives the slot back (the handler has returned).
    pub fn release(&self) {
        self.held.lock().take();
    }
}

/// Awaits `wait`, a wait on others (followers, group members, new records), without holding the
/// current request's handler slot, then takes a slot again; the whole time counts as the
/// request's remote time. Outside a request (a background task, a task the handler spawned), or
/// inside another `remote`, it only awaits.
pub async fn remote<F: Future>(wait: F) -> F::Output {
    let Ok(current) = CURRENT.try_with(|c| c.clone()) else { return wait.await };
    let Some(slot) = current.held.lock().take() else { return wait.await };
    let started = Instant::now();
    drop(slot);
    let out = wait.await;
    let slot = current.pool.acquire().await;
    *current.held.lock() = Some(slot);
    current.remote_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slot_time_is_counted_while_held_and_only_then() {
        let pool = HandlerPool::new(4);
        let before = pool.busy_ns(pool.now_ns());
        assert_eq!(before, 0);
        let a = pool.acquire().await;
        let b = pool.acquire().await;
        assert_eq!(pool.busy_slots(), 2);
        std::thread::sleep(Duration::from_millis(50));
        let held = pool.busy_ns(pool.now_ns());
        // Two slots for about 50 ms each, counted while still held.
        assert!((90_000_000..200_000_000).contains(&held), "{held}");
        drop(a);
        drop(b);
        assert_eq!(pool.busy_slots(), 0);
        let after = pool.busy_ns(pool.now_ns());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(pool.busy_ns(pool.now_ns()), after, "nothing held, nothing counted");
    }

    #[tokio::test]
    async fn idle_ratio_is_free_slot_time_over_the_window() {
        let pool = HandlerPool::new(4);
        std::thread::sleep(Duration::from_millis(1050));
        assert!(pool.idle_ratio() > 0.99, "nothing held: all idle");
        // Two of four slots held through the whole next window: half idle.
        let (a, b) = (pool.acquire().await, pool.acquire().await);
        std::thread::sleep(Duration::from_millis(1050));
        let idle = pool.idle_ratio();
        assert!((0.45..=0.55).contains(&idle), "{idle}");
        // Within a second of the last window the ratio is reused.
        drop((a, b));
        assert_eq!(pool.idle_ratio(), idle);
        std::thread::sleep(Duration::from_millis(1050));
        assert!(pool.idle_ratio() > 0.99);
    }

    #[tokio::test]
    async fn a_request_past_the_slots_waits_in_the_queue() {
        let pool = HandlerPool::new(1);
        let first = pool.acquire().await;
        let p = pool.clone();
        let second = tokio::spawn(async move { p.acquire().await });
        while pool.queued() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.queued(), 1);
        drop(first);
        let _second = second.await.unwrap();
        assert_eq!(pool.queued(), 0);
        assert_eq!(pool.busy_slots(), 1);
    }

    #[tokio::test]
    async fn remote_gives_the_slot_back_while_it_waits() {
        let pool = HandlerPool::new(1);
        let current = RequestSlot::new(pool.acquire().await);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let p = pool.clone();
        let waiting = current.scope(async move {
            remote(async move {
                // The slot is free for another request while this one waits.
                let other = p.acquire().await;
                drop(other);
                rx.await.unwrap();
            })
            .await;
            // Inside a remote wait, a nested one only awaits.
            remote(async { assert_eq!(remote(async { 1 }).await, 1) }).await;
        });
        let handle = tokio::spawn(waiting);
        tx.send(()).unwrap();
        handle.await.unwrap();
        assert_eq!(pool.busy_slots(), 1, "the request holds a slot again to finish");
        assert!(current.remote() > Duration::ZERO);
        current.release();
        assert_eq!(pool.busy_slots(), 0);
        // Outside a request, remote only awaits.
        assert_eq!(remote(async { 7 }).await, 7);
    }
}
