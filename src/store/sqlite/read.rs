//! The request path's point reads on SQLite (a case with its data, a case's
//! consents), on plain read-only connections in a small pool of threads.
//!
//! A read that misses the node's cache (`read_cache`) went through sqlx:
//! ~35 µs of CPU for the floor of any query (`cargo bench --bench
//! hot_path`), most of it handing the statement and each row across to
//! the connection's worker thread and waking the caller back. With many
//! cases most reads miss, and two such reads per `GetCase` halved the
//! gateway's throughput between 10,000 and 100,000 cases. Here a read is
//! one job on a reader thread: the query runs on a plain connection with
//! its prepared statement cached and the result is built there, so the
//! caller waits once. The connections map the file (`mmap_size`), so the
//! pages a new read transaction must fetch again after each log commit
//! are not copied through `pread`.
//!
//! PostgreSQL reads stay on the pool.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc as std_mpsc};

use tokio::sync::oneshot;

use crate::store::StoreError;

/// A read, given the thread's connection or why there is none.
type Job = Box<dyn FnOnce(Result<&rusqlite::Connection, StoreError>) + Send>;

/// Reader threads; they end when the last handle is dropped.
pub struct SqliteReader {
    tx: std_mpsc::Sender<Job>,
}

/// Enough to keep both cores busy while the other thread waits on a page.
const THREADS: usize = 2;

impl SqliteReader {
    pub fn start(file: PathBuf) -> SqliteReader {
        let (tx, rx) = std_mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..THREADS {
            let (rx, file) = (rx.clone(), file.clone());
            std::thread::Builder::new()
                .name(format!("sluis-read-{n}"))
                .spawn(move || run(&file, &rx))
                .expect("spawn a SQLite reader thread");
        }
        SqliteReader { tx }
    }

    /// Runs `read` on a reader connection and waits for its result.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = done.send(conn.and_then(read));
        });
        let gone = || StoreError::Corrupt("the SQLite reader threads have stopped".into());
        self.tx.send(job).map_err(|_| gone())?;
        result.await.map_err(|_| gone())?
    }
}

fn run(file: &std::path::Path, rx: &Mutex<std_mpsc::Receiver<Job>>) {
    let mut conn: Option<rusqlite::Connection> = None;
    loop {
        let job = {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        if conn.is_none() {
            match open(file) {
                Ok(c) => conn = Some(c),
                // This read fails; the next one tries to open again.
                Err(e) => {
                    job(Err(e));
                    continue;
                }
            }
        }
        if let Some(c) = &conn {
            job(Ok(c));
        }
    }
}

fn open(file: &std::path::Path) -> Result<rusqlite::Connection, StoreError> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA mmap_size = 268435456;")?;
    Ok(conn)
}
