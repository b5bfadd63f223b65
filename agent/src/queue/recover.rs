//! Opening the queue at start-up without ever crash-looping on a bad file: a queue database
//! SQLite reports as corrupt (or not a database at all) is moved aside, loudly, and a fresh
//! queue is started. And only one agent may use a queue: a second one is refused.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::store::{Limits, Store, StoreError};
use crate::event::rfc3339;

/// Held while the agent runs: an exclusive lock on `<queue>.lock`.
pub struct QueueLock {
    _lock: Flock<File>,
}

/// Why the queue could not be opened at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "another tracegate already runs on the queue {0} (the lock file {0}.lock is held); one agent per queue"
    )]
    InUse(String),
    #[error("cannot create the lock file {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Takes the queue's lock, then opens it; a corrupt file is moved aside and replaced by an
/// empty queue. Returns the store, the lock, and the path the bad file was moved to, if any.
pub fn open_for_run(
    path: &Path,
    limits: Limits,
) -> Result<(Store, QueueLock, Option<PathBuf>), OpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| OpenError::Lock {
            path: lock_path.display().to_string(),
            source,
        })?;
    let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|_| OpenError::InUse(path.display().to_string()))?;
    let lock = QueueLock { _lock: lock };
    match Store::open(path, limits) {
        Ok(store) => Ok((store, lock, None)),
        Err(e) if is_corrupt(&e) => {
            let aside = move_aside(path)?;
            tracing::error!(
                path = %path.display(),
                moved_to = %aside.display(),
                error = %e,
                "THE QUEUE DATABASE IS CORRUPT: it was moved aside and an empty queue started; \
                 events in the old file were not delivered — recover them with sqlite3 `.recover` \
                 and `tracegate queue export` on a copy"
            );
            let store = Store::open(path, limits)?;
            Ok((store, lock, Some(aside)))
        }
        Err(e) => Err(e.into()),
    }
}

/// True for errors that mean the file itself is damaged (not locked, not missing).
fn is_corrupt(e: &StoreError) -> bool {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    let sqlite = match e {
        StoreError::Open { source, .. } | StoreError::Sqlite(source) => source,
        _ => return false,
    };
    matches!(
        sqlite.sqlite_error_code(),
        Some(DatabaseCorrupt | NotADatabase)
    )
}

/// Renames the database and its WAL and shared-memory files to `<name>.corrupt-<time>`.
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let stamp = rfc3339(std::time::SystemTime::now()).replace([':', '.'], "-");
    let aside = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        if from.exists() {
            let to = PathBuf::from(format!("{}{suffix}", aside.display()));
            std::fs::rename(&from, &to).map_err(|e| StoreError::Open {
                path: from.display().to_string(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
    }
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overflow;

    fn limits() -> Limits {
        Limits {
            max_events: 100,
            max_bytes: 1 << 20,
            overflow: Overflow::Block,
            retain_events: 0,
            retain_bytes: 0,
            retain_age: std::time::Duration::ZERO,
            confirm: false,
        }
    }

    #[test]
    fn a_file_that_is_not_a_database_is_moved_aside_and_a_fresh_queue_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        std::fs::write(
            &path,
            b"this is not sqlite, it is garbage from a broken flash card".repeat(100),
        )
        .unwrap();
        let (store, _lock, aside) = open_for_run(&path, limits()).unwrap();
        let aside = aside.expect("moved aside");
        assert!(aside.exists(), "the bad file is kept for forensics");
        assert_eq!(store.stats().unwrap().depth, 0);
        assert_eq!(store.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn a_second_agent_on_the_same_queue_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let (_store, _lock, _) = open_for_run(&path, limits()).unwrap();
        let second = open_for_run(&path, limits());
        assert!(
            matches!(second, Err(OpenError::InUse(_))),
            "{:?}",
            second.err()
        );
    }
}
