//! Runs the log-directory moves AlterReplicaLogDirs starts (Kafka's ReplicaAlterLogDirsThread):
//! one worker thread, one move at a time, each a loop of `log_mover::copy_round`s and then
//! `log_mover::complete`. Blocking file I/O, so a thread of its own, never a tokio worker.
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::log::log_manager::LogMove;
use crate::log::{log_mover, LogError, LogManager, PartitionLog, SharedLog};

/// Bytes read per copy round; a round that reads less than half of it has caught up.
const ROUND_BYTES: usize = 4 << 20;

/// One move to run.
pub struct MoveJob {
    pub topic: String,
    pub partition: i32,
    pub current: SharedLog,
    pub future: PartitionLog,
    pub log_move: Arc<LogMove>,
}

/// The worker's queue; the thread starts with the first move.
#[derive(Default)]
pub struct LogDirMover {
    queue: Mutex<Option<mpsc::Sender<MoveJob>>>,
}

impl LogDirMover {
    /// Queues a move; `logs` is the manager to report completion to.
    pub fn submit(&self, job: MoveJob, logs: Arc<Mutex<LogManager>>) {
        let mut queue = self.queue.lock();
        let sender = queue.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel::<MoveJob>();
            let spawned = std::thread::Builder::new().name("log-dir-mover".into()).spawn(move || {
                for job in rx {
                    run(job, &logs);
                }
            });
            if let Err(e) = spawned {
                tracing::error!(target: "kafka.server.ReplicaAlterLogDirsThread", error = %e, "cannot start the log-directory mover thread");
            }
            tx
        });
        if let Err(mpsc::SendError(job)) = sender.send(job) {
            *queue = None;
            tracing::error!(target: "kafka.server.ReplicaAlterLogDirsThread", topic = %job.topic, partition = job.partition,
                "the log-directory mover thread is gone; the move is dropped (send AlterReplicaLogDirs again)");
            let _ = std::fs::remove_dir_all(job.future.dir());
        }
    }
}

fn run(job: MoveJob, logs: &Mutex<LogManager>) {
    let MoveJob { topic, partition, current, mut future, log_move } = job;
    let future_dir = future.dir().to_path_buf();
    let started = std::time::Instant::now();
    let outcome: Result<Option<PathBuf>, LogError> = (|| {
        loop {
            if log_move.is_cancelled() {
                return Ok(None);
            }
            let round = log_mover::copy_round(&current, &mut future, ROUND_BYTES, crate::api::now_ms())?;
            log_move.note_progress(future.log_end_offset(), future.size_bytes());
            if round.copied_bytes < ROUND_BYTES / 2 {
                break;
            }
        }
        if log_move.is_cancelled() {
            return Ok(None);
        }
        log_mover::complete(&current, future, &[super::partition_metadata::FILE], crate::api::now_ms()).map(Some)
    })();
    match outcome {
        Ok(Some(old_dir)) => {
            logs.lock().finish_move(&topic, partition, &log_move);
            tracing::info!(target: "state.change.logger", topic = %topic, partition, dir = %log_move.target_dir.display(),
                seconds = started.elapsed().as_secs_f64(), "moved the replica's log to another log directory");
            if let Err(e) = std::fs::remove_dir_all(&old_dir) {
                tracing::warn!(target: "kafka.log.LogManager", dir = %old_dir.display(), error = %e, "could not remove the moved log's old directory; the next start removes it");
            }
        }
        other => {
            logs.lock().abandon_move(&topic, partition, &log_move);
            match other {
                Err(e) => tracing::error!(target: "kafka.server.ReplicaAlterLogDirsThread", topic = %topic, partition, error = %e,
                    "moving the replica's log to another log directory failed; it stays where it was"),
                _ => tracing::info!(target: "kafka.server.ReplicaAlterLogDirsThread", topic = %topic, partition, "log-directory move cancelled"),
            }
            // The copy goes, unless the current log is not where it was: a failed swap that
            // could not put it back leaves the copy as the only complete log (a restart
            // promotes it).
            let keep = {
                let log = current.lock();
                !log.is_deleted() && !log.dir().is_dir()
            };
            if !keep && future_dir.is_dir() {
                let _ = std::fs::remove_dir_all(&future_dir);
            }
        }
    }
}
