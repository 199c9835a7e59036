//! The SQLite write-ahead log stays bounded. A reader that holds a
//! transaction (here as the outside test did it: `BEGIN; SELECT count(*)
//! FROM access_log;` in a connection of its own) keeps checkpoints from
//! copying what is written after it began, so the WAL grows while the node
//! writes; the node warns about it, and once the reader lets go the WAL is
//! cut back to its limit, without a restart.
//!
//! SQLite only (the node is started on a SQLite file in both test passes).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const MIB: u64 = 1024 * 1024;

fn wal_size(db: &std::path::Path) -> u64 {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    std::fs::metadata(std::path::PathBuf::from(name)).map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_returns_to_its_bound_once_a_long_reader_lets_go() {
    let captured = Captured::install("info");
    let node = TestNode::start_on_sqlite(|c| {
        c.database.wal_limit_mb = 1;
        c.database.wal_warn_mb = 2;
    })
    .await;
    let db = node.db_path();
    let mut owner = node.client(GEMEENTE).await;
    let (case_id, _) = register(&mut owner).await;

    // Writes: reads of the case, each one access record, from a few clients.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..3 {
        let mut c = node.client(GEMEENTE).await;
        let (case_id, stop) = (case_id.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.cases
                    .get_case(with_actor(by_id(&case_id, "case_consultation")))
                    .await
                    .unwrap();
            }
        }));
    }

    // A reader holds a transaction while the node writes: the WAL grows.
    let reader =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader
        .query_row("SELECT count(*) FROM access_log", [], |r| r.get(0))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while wal_size(&db) <= 3 * MIB {
        assert!(
            Instant::now() < deadline,
            "the WAL did not grow past 3 MiB while a reader held a snapshot ({} bytes)",
            wal_size(&db)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let grown = wal_size(&db);
    // The node says so, while it lasts.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !captured.has("the SQLite write-ahead log keeps growing") {
        assert!(Instant::now() < deadline, "no warning about the WAL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The reader lets go; the node goes on writing, and the WAL is cut back.
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let size = wal_size(&db);
        if size <= MIB {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the WAL stayed at {size} bytes (it had grown to {grown}) after the reader ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Under steady writes it is cut back again whenever it passes its limit
    // (by at most what a checkpoint interval's writes add); when they stop,
    // it is within its limit and the node says so.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal_size(&db) > MIB || !captured.has("the SQLite write-ahead log is back within bounds") {
        assert!(
            Instant::now() < deadline,
            "after the writes: {} bytes of WAL, or no word that it is back",
            wal_size(&db)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
