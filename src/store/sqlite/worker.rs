//! Threads that own SQLite connections and run statements for async
//! callers: one hop there and one back per call, however many statements
//! the call runs.
//!
//! A SQLite connection is a file handle in this process and its statements
//! run on the calling thread. Running them on tokio's threads would block
//! the runtime; running each statement as a message to a connection thread
//! (as sqlx does) costs a pair of context switches per statement, which
//! was most of the CPU a request cost. Here a call is a closure that gets
//! the thread's connection and runs a whole transaction or read on it,
//! with its prepared statements cached on the connection.
//!
//! Connections open on first use and again after a call that left one
//! inside a transaction (a failed rollback), so a broken connection is
//! never trusted with the next call. A panic in a call is caught: its
//! caller gets [`StoreError::WorkerStopped`] and the thread carries on with
//! a fresh connection.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex, mpsc as std_mpsc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::{DbError, StoreError};

/// Opens a connection of the kind a set of workers needs.
pub(super) type Open = Arc<dyn Fn(&Path) -> Result<Connection, StoreError> + Send + Sync>;

/// A call, given the thread's connection or why there is none; returns
/// whether it succeeded.
type Job = Box<dyn FnOnce(Result<&mut Connection, StoreError>) -> bool + Send>;

enum Msg {
    Job(Job),
    /// Close the connection, say so, and wait until every thread of the set
    /// has taken its own `Close`.
    Close(Arc<Barrier>, oneshot::Sender<()>),
}

/// A set of threads sharing one queue of calls; they end when this handle
/// is dropped.
pub(super) struct Workers {
    tx: std_mpsc::Sender<Msg>,
    threads: usize,
    /// One `close` at a time: two interleaved ones could leave each thread
    /// waiting at a different barrier.
    closing: tokio::sync::Mutex<()>,
    /// What the threads do, for their names and for errors.
    role: &'static str,
}

impl Workers {
    /// Starts `threads` threads whose connections `open` opens on `file`.
    pub(super) fn start(
        role: &'static str,
        threads: usize,
        file: &Path,
        open: Open,
    ) -> Result<Workers, StoreError> {
        let (tx, rx) = std_mpsc::channel::<Msg>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads {
            let (rx, path, open) = (rx.clone(), file.to_path_buf(), open.clone());
            std::thread::Builder::new()
                .name(format!("sluis-{role}-{n}"))
                .spawn(move || run(&path, &open, &rx))
                .map_err(|e| StoreError::Open {
                    target: file.display().to_string(),
                    source: DbError(Box::new(e)),
                })?;
        }
        Ok(Workers {
            tx,
            threads,
            closing: tokio::sync::Mutex::new(()),
            role,
        })
    }

    /// Runs `call` on one of the threads' connections and waits for its
    /// result.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (done, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = conn.and_then(call);
            let ok = result.is_ok();
            let _ = done.send(result);
            ok
        });
        let stopped = || StoreError::WorkerStopped(self.role);
        self.tx.send(Msg::Job(job)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Closes every thread's connection and waits until they are closed;
    /// the next call opens them again.
    pub(super) async fn close(&self) {
        let _one = self.closing.lock().await;
        let all = Arc::new(Barrier::new(self.threads));
        let mut closed = Vec::with_capacity(self.threads);
        for _ in 0..self.threads {
            let (done, wait) = oneshot::channel();
            if self.tx.send(Msg::Close(all.clone(), done)).is_err() {
                return;
            }
            closed.push(wait);
        }
        for wait in closed {
            let _ = wait.await;
        }
    }
}

fn run(file: &Path, open: &Open, rx: &Mutex<std_mpsc::Receiver<Msg>>) {
    let mut conn: Option<Connection> = None;
    loop {
        let msg = {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(msg) => msg,
                Err(_) => return,
            }
        };
        let job = match msg {
            Msg::Job(job) => job,
            Msg::Close(all, done) => {
                drop(conn.take());
                let _ = done.send(());
                all.wait();
                continue;
            }
        };
        if conn.is_none() {
            match open(file) {
                Ok(c) => conn = Some(c),
                // This call fails; the next one tries to open again.
                Err(e) => {
                    job(Err(e));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(c)))) {
            Ok(true) => {}
            // A failed call rolls back (a dropped rusqlite transaction
            // does); a connection still inside one is not used again.
            Ok(false) if c.is_autocommit() => {}
            Ok(false) | Err(_) => conn = None,
        }
    }
}
