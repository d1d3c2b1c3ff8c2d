//! Runs the log-directory moves AlterReplicaLogDirs registers (Kafka's
//! ReplicaAlterLogDirsThread): one worker thread, one move at a time. For each it creates the
//! copy (the future log), runs `log_mover::copy_round`s until the copy has caught up, flushes
//! it, and `log_mover::complete`s the swap. Blocking file I/O, so a thread of its own, never a
//! tokio worker, and never under the log manager's lock.
//!
//! The queue holds partitions, each at most once: a request that retargets one partition a
//! thousand times leaves one entry, and the move run is the one registered when its turn comes.
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::log::log_manager::LogMove;
use crate::log::{log_mover, LogError, LogManager, PartitionLog};

/// Bytes read per copy round.
const ROUND_BYTES: usize = 4 << 20;

type Key = (String, i32);

#[derive(Default)]
struct Queue {
    order: VecDeque<Key>,
    queued: HashSet<Key>,
    worker_started: bool,
}

/// The worker's queue; the thread starts with the first move.
#[derive(Default)]
pub struct LogDirMover {
    queue: Arc<(Mutex<Queue>, Condvar)>,
}

impl LogDirMover {
    /// Queues the move registered for `topic`-`partition` in `logs`.
    pub fn submit(&self, topic: &str, partition: i32, logs: &Arc<Mutex<LogManager>>) {
        let (lock, ready) = &*self.queue;
        let mut q = lock.lock();
        let key = (topic.to_string(), partition);
        if q.queued.insert(key.clone()) {
            q.order.push_back(key);
        }
        if !q.worker_started {
            let queue = Arc::clone(&self.queue);
            let logs = Arc::clone(logs);
            let for_worker = Arc::clone(&logs);
            match std::thread::Builder::new().name("log-dir-mover".into()).spawn(move || worker(&queue, &for_worker)) {
                Ok(_) => q.worker_started = true,
                Err(e) => {
                    // Nothing will run the queued moves: they end now (not left registered,
                    // which would answer the next request "already moving" and keep the
                    // cleaner off the partitions), and the next request tries again.
                    tracing::error!(target: "kafka.server.ReplicaAlterLogDirsThread", error = %e,
                        "cannot start the log-directory mover thread; the moves are dropped (send AlterReplicaLogDirs again)");
                    let dropped: Vec<Key> = q.order.drain(..).collect();
                    q.queued.clear();
                    let manager = logs.lock();
                    for (t, p) in dropped {
                        if let Some(m) = manager.move_of(&t, p) {
                            manager.end_move(&m);
                        }
                    }
                }
            }
        }
        ready.notify_one();
    }
}

fn worker(queue: &(Mutex<Queue>, Condvar), logs: &Mutex<LogManager>) {
    let (lock, ready) = queue;
    loop {
        let key = {
            let mut q = lock.lock();
            loop {
                if let Some(key) = q.order.pop_front() {
                    q.queued.remove(&key);
                    break key;
                }
                ready.wait(&mut q);
            }
        };
        let Some(log_move) = logs.lock().move_of(&key.0, key.1) else { continue };
        if log_move.is_cancelled() {
            logs.lock().end_move(&log_move);
            continue;
        }
        // begin_move refused names too long for a future directory; never the data dir itself.
        let Some(name) = log_mover::future_dir_name(&key.0, key.1) else {
            logs.lock().end_move(&log_move);
            continue;
        };
        let future_dir = log_move.target_dir.join(name);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&log_move, &future_dir)));
        let failed = match outcome {
            Ok(Ok(Some(left))) => {
                // Before the move ends: once DescribeLogDirs shows no future replica, nothing
                // of the old copy is left.
                log_mover::finish_move_cleanup(left);
                false
            }
            Ok(Ok(None)) => {
                tracing::info!(target: "kafka.server.ReplicaAlterLogDirsThread", topic = %key.0, partition = key.1, "log-directory move cancelled");
                true
            }
            Ok(Err(e)) => {
                tracing::error!(target: "kafka.server.ReplicaAlterLogDirsThread", topic = %key.0, partition = key.1, error = %e,
                    "moving the replica's log to another log directory failed; it stays where it was");
                true
            }
            Err(_) => {
                tracing::error!(target: "kafka.server.ReplicaAlterLogDirsThread", topic = %key.0, partition = key.1,
                    "the log-directory move panicked; the log stays where it was");
                true
            }
        };
        // An abandoned copy goes (it was never renamed: `complete` only fails before that).
        if failed && future_dir.is_dir() {
            let _ = std::fs::remove_dir_all(&future_dir);
        }
        logs.lock().end_move(&log_move);
    }
}

/// One move: Some(what the old log left, to remove) when the copy replaced the log, None
/// when cancelled.
fn run(log_move: &LogMove, future_dir: &std::path::Path) -> Result<Option<log_mover::MovedFrom>, LogError> {
    let started = std::time::Instant::now();
    let current = &log_move.current;
    let (config, start) = {
        let log = current.lock();
        (log.config().clone(), log.log_start_offset())
    };
    let mut future = PartitionLog::open(future_dir, log_mover::future_config(&config))?;
    if start > 0 {
        future.truncate_fully_and_start_at(start, crate::api::now_ms())?;
    }
    log_move.note_progress(start, 0);
    loop {
        if log_move.is_cancelled() {
            return Ok(None);
        }
        let round = log_mover::copy_round(current, &mut future, ROUND_BYTES, crate::api::now_ms())?;
        log_move.note_progress(future.log_end_offset(), future.size_bytes());
        if round.caught_up {
            break;
        }
    }
    // The copy's fsync before the lock is taken: `complete` then flushes only what is left.
    future.flush()?;
    let cancelled = || log_move.is_cancelled();
    match log_mover::complete(current, future, &[super::partition_metadata::FILE], cancelled, || log_move.swapped(), crate::api::now_ms()) {
        Ok(old_dir) => {
            tracing::info!(target: "state.change.logger", topic = %log_move.topic, partition = log_move.partition,
                dir = %log_move.target_dir.display(), seconds = started.elapsed().as_secs_f64(),
                "moved the replica's log to another log directory");
            Ok(Some(old_dir))
        }
        Err(_) if log_move.is_cancelled() => Ok(None),
        Err(e) => Err(e),
    }
}
