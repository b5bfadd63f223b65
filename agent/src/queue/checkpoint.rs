//! Checkpoints off the commit path.
//!
//! In WAL mode every commit appends to the `-wal` file, and a checkpoint copies those pages
//! back into the database file (and fsyncs it) so the WAL can start over. SQLite runs it by
//! default inside the commit that takes the WAL past 1,000 pages, and that commit — with the
//! scans behind it — waits for the copy and the second fsync. Here the writer's connection only
//! *signals* past that size, and a thread with its own connection checkpoints while the writer
//! goes on committing (WAL lets a checkpoint and a writer run at once).
//!
//! A checkpoint concurrent with commits cannot always finish: frames appended while it copies
//! are left for the next one, and the WAL starts over only once a checkpoint has copied all
//! of it. The writer signals again after every commit past the size, so the thread catches up
//! between commits at ordinary rates. Should the WAL still grow to [`Thresholds::inline`]
//! pages (commits back to back, flat out), the writer checkpoints itself, between two commits,
//! as SQLite would have.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rusqlite::{Connection, MAIN_DB, OpenFlags, wal::CheckpointMode};

use super::store::{Store, StoreError};

/// WAL sizes, in pages, that start a checkpoint.
#[derive(Debug, Clone, Copy)]
pub(super) struct Thresholds {
    /// The checkpointer thread is signalled after each commit that leaves at least this many
    /// pages in the WAL.
    pub background: i32,
    /// The writer checkpoints itself after a commit that leaves at least this many.
    pub inline: i32,
}

impl Thresholds {
    /// For a queue of `page_size`-byte pages: a checkpoint in the background from 4 MiB of
    /// WAL, the size at which SQLite checkpoints by default (1,000 of its default 4 KiB pages),
    /// and in the writer from 64 MiB. In bytes, not pages, since the page size depends on the
    /// version that made the queue: a WAL of small pages checkpointed as often would copy its
    /// pages back more often for the same events.
    pub fn for_page_size(page_size: i64) -> Thresholds {
        let pages = |bytes: i64| (bytes / page_size.max(512)) as i32;
        Thresholds {
            background: pages(4 << 20),
            inline: pages(64 << 20),
        }
    }
}

/// Starts the checkpointer thread for the writer's store and hands the store's automatic
/// checkpoints over to it. The thread ends once the store (its WAL hook) is dropped.
pub(super) fn start(store: &mut Store, at: Thresholds) -> Result<JoinHandle<()>, StoreError> {
    // It reads frames from the WAL and writes pages; it has no use for a page cache.
    let conn = store.another_connection(OpenFlags::SQLITE_OPEN_READ_WRITE, 64)?;
    // FULL: the checkpoint fsyncs the WAL before copying and the database file after.
    conn.pragma_update(None, "synchronous", "FULL")?;
    let (signal, signals) = sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("queue-checkpoint".into())
        .spawn(move || run(conn, signals))
        .expect("spawn queue checkpoint thread");
    // Replaces SQLite's automatic checkpoint, which is a WAL hook too.
    store
        .conn
        .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
            if pages >= at.inline {
                // An error here would report the commit, which did happen, as failed: the
                // checkpoint is retried after the next commit instead. Busy: the thread is
                // checkpointing right now.
                match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                    Err(e) if !busy(&e) => {
                        tracing::warn!(error = %e, pages, "queue: checkpoint failed");
                    }
                    _ => {}
                }
            } else if pages >= at.background {
                notify(&signal);
            }
            Ok(())
        }))?;
    Ok(thread)
}

/// Another checkpoint holds the lock.
fn busy(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
}

/// Wakes the checkpointer. Nothing to do when a signal already waits (it covers this one) or
/// the thread has ended (the inline checkpoint still bounds the WAL).
fn notify(signal: &SyncSender<()>) {
    let _ = signal.try_send(());
}

/// Checkpoints once per signal, until the writer's store is gone.
fn run(conn: Connection, signals: Receiver<()>) {
    let mut failing = false;
    for () in signals {
        match conn.wal_checkpoint_v2(Some(MAIN_DB), CheckpointMode::PASSIVE) {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("queue: checkpoints succeed again");
            }
            Ok(_) => {}
            // The writer is checkpointing itself (inline): nothing to do this time.
            Err(e) if busy(&e) => {}
            Err(e) => {
                // The WAL keeps everything committed; the writer checkpoints itself once the
                // WAL reaches its inline size.
                if !failing {
                    tracing::warn!(error = %e, "queue: background checkpoint failed");
                }
                failing = true;
            }
        }
    }
}
