//! The access log: one record per request, allowed or not, made durable
//! before anything is answered.
//!
//! [`AuditLog::append`] is the only way into the log. A single writer task
//! batches concurrent appends into one transaction (group commit: one fsync
//! for many records), and each caller waits only for the batch holding its
//! record. If the write fails, the caller gets an error and must release
//! nothing: the exchange maps it to `UNAVAILABLE`.
//!
//! The log is a Merkle tree (RFC 6962): each record's canonical encoding is a
//! leaf, the writer keeps the tree's compact range in memory and stores the
//! tree as hash tiles (C2SP tlog-tiles) with each batch, and signs
//! a checkpoint (size, root) at least every `checkpoint_interval` while
//! entries arrive, in the same transaction as the entries it covers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::store::{IssuedPseudonym, LogRow, LogSink, Store, StoreError, StoredCheckpoint};
use crate::telemetry::fold::Repeats;
use crate::tlog::AccessRecord;
use crate::tlog::checkpoint::Checkpoint;
use crate::tlog::layout;
use crate::tlog::merkle::{self, Frontier};
use crate::tlog::note::Signer;

mod recorded;
pub use recorded::Recorded;

/// Why the log could not take a record, or refuses to start. Either way
/// nothing may be released: the exchange answers `UNAVAILABLE`.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AuditError {
    /// The writer task is gone (the node is stopping, or it panicked).
    #[error("the access log writer has stopped; restart the node")]
    WriterStopped,
    /// The database took no record of the batch. Shared: every record of
    /// the batch gets it.
    #[error("the access log cannot be written: {0}")]
    Store(#[source] Arc<StoreError>),
    /// The database refused this record (a constraint, a trigger, a value
    /// it does not take) while it took others of the same batch: only this
    /// request fails, and retrying it will not help.
    #[error("the database refused this access record: {0}")]
    Refused(#[source] Arc<StoreError>),
    /// The log is shorter than a checkpoint the node signed.
    #[error(
        "the log has {log_size} entries but a checkpoint for {checkpoint_size} was signed: entries were removed; run `sluis audit verify`"
    )]
    EntriesRemoved { log_size: u64, checkpoint_size: u64 },
    /// The stored tree's root at a signed size is not the signed root.
    #[error("the log does not match its checkpoint at size {size}; run `sluis audit verify`")]
    TreeMismatch { size: u64 },
    /// Tree nodes needed to continue the tree at `size` are not stored.
    #[error("the log's tree nodes for size {size} are missing; run `sluis audit verify`")]
    NodesMissing { size: u64 },
    /// The latest checkpoint is not signed by the key the node would sign
    /// with: the key file was replaced without a rotation.
    #[error(
        "the signing key in the keys folder does not sign this log: the latest checkpoint (size {size}) is signed by another key as '{name}', not by {key}. The key file was replaced without `sluis keys rotate-signing`: put the key that signed the log back into the keys folder (from a backup) and start again; to change the key, run `sluis keys rotate-signing` with the old key in place. If the old key is lost, see \"What losing each key means\" in docs/operations.md"
    )]
    KeyReplaced {
        size: u64,
        name: String,
        key: String,
    },
    /// The latest checkpoint is signed under another node name: the name
    /// in the configuration was changed without the rename step.
    #[error(
        "the node's name changed without the rename step: the log's latest checkpoint (size {size}) is signed as '{signed_as}', the configuration names the node '{configured}'. To rename the node, run `sluis node rename` now (docs/operations.md, \"Renaming the node\"); otherwise put the old name back"
    )]
    Renamed {
        size: u64,
        signed_as: String,
        configured: String,
    },
}

impl AuditError {
    /// What kept the log from taking records, in words that name no
    /// record, caller or value: for health answers and their log line.
    pub fn cause(&self) -> &'static str {
        match self {
            AuditError::WriterStopped => "the access log writer has stopped",
            AuditError::Store(e) | AuditError::Refused(e) => match e.as_ref() {
                StoreError::Unavailable(_) | StoreError::Open { .. } => {
                    "the access log cannot be written: the database cannot be reached, is full or is locked"
                }
                StoreError::Db(_) => {
                    "the access log cannot be written: the database refuses the write (read-only, a trigger, permissions)"
                }
                StoreError::WorkerStopped(_) => {
                    "the access log cannot be written: the database thread stopped"
                }
                _ => "the access log cannot be written: the database failed",
            },
            AuditError::EntriesRemoved { .. }
            | AuditError::TreeMismatch { .. }
            | AuditError::NodesMissing { .. }
            | AuditError::KeyReplaced { .. }
            | AuditError::Renamed { .. } => {
                "the access log does not match its checkpoints; run `sluis audit verify`"
            }
        }
    }
}

impl From<StoreError> for AuditError {
    fn from(e: StoreError) -> Self {
        AuditError::Store(Arc::new(e))
    }
}

/// A record, the pseudonyms its request issued, and who waits for it.
struct Pending {
    row: LogRow,
    issued: Vec<IssuedPseudonym>,
    done: oneshot::Sender<Result<i64, AuditError>>,
}

/// What the writer task receives: records to append, or a request to sign
/// whatever is not yet covered by a checkpoint (on shutdown).
enum Msg {
    Append(Box<Pending>),
    Sign(oneshot::Sender<()>),
}

/// A second key the next checkpoint is signed by besides the node's own:
/// the key the log is handed over to (`tlog::handover`), as a signer and
/// the name it signs as.
pub struct Cosigner {
    pub signer: Arc<dyn Signer>,
    pub name: String,
}

/// Handle to the single writer of the access log.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    checkpoint_interval: Duration,
    /// Why the last write failed, `None` once one has been written (or a
    /// trial write succeeded) since: what [`AuditLog::down`] reads.
    failing: Failing,
}

/// Why the log's last write failed, shared by the writer (which sets and
/// clears it) and its handles (which read it for health answers).
type Failing = Arc<std::sync::Mutex<Option<&'static str>>>;

/// While the last write failed, how often the writer tries a write that
/// it rolls back ([`LogSink::try_append`](crate::store::LogSink::try_append)),
/// so that a node nobody sends requests to (because it said it was down)
/// finds out by itself when the database takes records again. One trial
/// at a time (the writer is one task), each bounded by [`TRIAL_TIMEOUT`].
const TRIAL_EVERY: Duration = Duration::from_secs(1);
/// The longest a trial write may take before it counts as failed.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// How the log signs its checkpoints.
#[derive(Clone, Debug)]
pub struct LogSettings {
    /// Name of the node's signing key in signed notes.
    pub key_name: String,
    /// Origin line of checkpoints.
    pub origin: String,
    /// A new checkpoint at least this often while entries arrive.
    pub checkpoint_interval: Duration,
}

/// Most records in one transaction.
const MAX_BATCH: usize = 1024;
/// How often a batch may lose the race to another replica before it fails.
const MAX_RACES: u32 = 32;
/// The index of the log by case is brought up to date after this many
/// entries (`LogSink::follow_index`), so that queries by case read at most
/// about this many entries of the log beyond it.
const FOLLOW_EVERY: u64 = 4096;
/// Most entries the index takes in one transaction.
const FOLLOW_MOST: i64 = 4 * FOLLOW_EVERY as i64;
/// Most batches of the index at a clean stop ([`Writer::follow_all`]).
const FOLLOW_ROUNDS: usize = 64;
/// A writer that had nothing to write for this long brings the index up to
/// date.
const FOLLOW_IDLE: Duration = Duration::from_millis(200);

/// The writer's state: the tree's compact range and the last checkpoint.
struct Writer {
    store: Store,
    /// The store's only way to append.
    sink: LogSink,
    signer: Arc<dyn Signer>,
    /// The key of a handover under way: every checkpoint this writer signs
    /// carries its signature too.
    cosigner: Option<Cosigner>,
    settings: LogSettings,
    frontier: Frontier,
    signed_size: u64,
    signed_at: Instant,
    failures: Failures,
    failing: Failing,
    /// When the last trial write began (see [`TRIAL_EVERY`]).
    tried_at: Instant,
    /// How far the index of the log by case has caught up, as the last
    /// [`Writer::follow`] found it (0 before the first: it reads the
    /// store's own).
    indexed: u64,
}

/// Failed batches, logged as the first of a run and then at most once
/// every ten seconds with the count (`telemetry::fold`): while the
/// database is unreachable requests fail at once, and each batch would
/// log a line.
struct Failures {
    repeats: Repeats,
    records: u64,
}

impl Default for Failures {
    fn default() -> Failures {
        Failures {
            repeats: Repeats::new(Duration::from_secs(10)),
            records: 0,
        }
    }
}

impl Failures {
    fn note(&mut self, e: &AuditError, records: usize) {
        self.records += records as u64;
        let Some(say) = self.repeats.admit() else {
            return;
        };
        tracing::error!(
            error = %e,
            batches = say.more() + 1,
            records = self.records,
            "access log write failed; requests fail closed{say}"
        );
        self.records = 0;
    }

    /// A write went through: the next failure is a new run.
    fn ended(&mut self) {
        self.repeats.end();
        self.records = 0;
    }
}

impl AuditLog {
    /// Loads the tree's state, checks it against the latest checkpoint, and
    /// starts the writer task, which from then on is the only holder of the
    /// store's `sink`. Refuses to start on a log that does not match what
    /// the node signed: it would otherwise sign an inconsistent tree.
    pub async fn start(
        store: Store,
        sink: LogSink,
        signer: Arc<dyn Signer>,
        settings: LogSettings,
    ) -> Result<AuditLog, AuditError> {
        AuditLog::start_handover(store, sink, signer, settings, None).await
    }

    /// [`AuditLog::start`] for a handover to another key (`tlog::handover`):
    /// every checkpoint this writer signs is cosigned by `cosigner`.
    pub async fn start_handover(
        store: Store,
        sink: LogSink,
        signer: Arc<dyn Signer>,
        settings: LogSettings,
        cosigner: Option<Cosigner>,
    ) -> Result<AuditLog, AuditError> {
        // The checkpoint first: another replica may append (and sign) in
        // between, and a checkpoint must never look newer than the log.
        let latest = store.latest_checkpoint().await?;
        let frontier = load_frontier(&store).await?;
        let signed_size = match &latest {
            Some(cp) => {
                let size = cp.size as u64;
                if size > frontier.size() {
                    return Err(AuditError::EntriesRemoved {
                        log_size: frontier.size(),
                        checkpoint_size: size,
                    });
                }
                let ids = Frontier::perfect_nodes_for(size);
                let nodes = store.merkle_nodes(&ids).await?;
                let at_cp = Frontier::from_nodes(size, |id| nodes.get(&id).copied())
                    .ok_or(AuditError::NodesMissing { size })?;
                if at_cp.root().as_slice() != cp.root.as_slice() {
                    return Err(AuditError::TreeMismatch { size });
                }
                signed_by_this_key(cp, signer.as_ref(), &settings.key_name)?;
                size
            }
            None => 0,
        };
        crate::telemetry::metrics::log_opened(frontier.size(), latest.as_ref().map(|cp| cp.at));
        let (tx, rx) = mpsc::channel::<Msg>(4 * MAX_BATCH);
        let checkpoint_interval = settings.checkpoint_interval;
        let failing = Failing::default();
        let writer = Writer {
            failing: failing.clone(),
            tried_at: Instant::now(),
            store,
            sink,
            signer,
            cosigner,
            signed_at: Instant::now() - settings.checkpoint_interval,
            settings,
            frontier,
            signed_size,
            failures: Failures::default(),
            indexed: 0,
        };
        tokio::spawn(writer.run(rx));
        Ok(AuditLog {
            tx,
            checkpoint_interval,
            failing,
        })
    }

    /// Why the log cannot take records now, if it cannot: its writer has
    /// stopped, or its last write failed and none has succeeded since —
    /// neither a request's nor the writer's trial write, which it makes
    /// every [`TRIAL_EVERY`] while failing. For health answers; the reason
    /// names no record. (It used to clear ten seconds after the failure
    /// while writes still failed, and a probe then said SERVING.)
    pub fn down(&self) -> Option<&'static str> {
        if self.tx.is_closed() {
            return Some(AuditError::WriterStopped.cause());
        }
        *self.failing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a record and waits until it is durable: the proof of that,
    /// with the record's position, to attach an answer to.
    pub async fn append(&self, record: &AccessRecord) -> Result<Recorded<()>, AuditError> {
        self.append_issuing(record.clone(), Vec::new()).await
    }

    /// Appends a record together with the pseudonyms its request hands out:
    /// they are stored in the same transaction, so an answer never carries
    /// a pseudonym that a later request could not resolve, and issuing one
    /// costs no write of its own.
    pub(crate) async fn append_issuing(
        &self,
        record: AccessRecord,
        issued: Vec<IssuedPseudonym>,
    ) -> Result<Recorded<()>, AuditError> {
        let (done, wait) = oneshot::channel();
        let pending = Pending {
            row: record.into_row(),
            issued,
            done,
        };
        self.tx
            .send(Msg::Append(Box::new(pending)))
            .await
            .map_err(|_| AuditError::WriterStopped)?;
        let index = wait.await.map_err(|_| AuditError::WriterStopped)??;
        Ok(Recorded::new(index as u64))
    }
}

impl AuditLog {
    /// The longest an entry waits for a checkpoint that covers it, while
    /// the writer runs.
    pub fn checkpoint_interval(&self) -> Duration {
        self.checkpoint_interval
    }

    /// Signs a checkpoint over every entry written so far, if any is not
    /// yet covered, and brings the index of the log by case up to the
    /// log's end; called on a clean stop so no tail stays unsigned or
    /// unindexed.
    pub async fn sign_pending(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Sign(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

impl Writer {
    fn failing(&self) -> bool {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    fn set_failing(&self, cause: Option<&'static str>) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = cause;
    }

    /// While the last write failed: tries a write of a record that names
    /// no one at the end of the log, rolled back
    /// ([`LogSink::try_append`]), within [`TRIAL_TIMEOUT`]. If the
    /// database takes it, the log counts as writable again (health says
    /// SERVING); otherwise it stays failing, and is tried again after
    /// [`TRIAL_EVERY`]. Nothing is stored either way.
    async fn trial(&mut self) {
        self.tried_at = Instant::now();
        let size = self.frontier.size() as i64;
        let row = trial_row(size);
        match tokio::time::timeout(TRIAL_TIMEOUT, self.sink.try_append(size, &row)).await {
            Ok(Ok(())) => {
                self.set_failing(None);
                self.failures.ended();
                tracing::info!(
                    "the access log can be written again (a trial write, rolled back, was taken)"
                );
            }
            Ok(Err(StoreError::Raced { size })) => {
                // Another replica appended: the database takes records.
                // Catch up, and let the next trial (or request) tell.
                if let Err(e) = self.catch_up(size as u64).await {
                    tracing::debug!(error = %e, "catching up with the log after a trial write failed");
                }
            }
            Ok(Err(e)) => {
                let e = AuditError::from(e);
                self.set_failing(Some(e.cause()));
                tracing::debug!(error = %e, "trial write of the access log failed");
            }
            Err(_) => tracing::debug!("trial write of the access log took too long"),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
        loop {
            // Entries not yet covered by a checkpoint get one within the
            // interval even if no more entries arrive; a failing log is
            // tried every TRIAL_EVERY even if no request comes; entries not
            // yet in the index by case are indexed once the writer is idle.
            let unsigned = self.frontier.size() > self.signed_size;
            let checkpoint_left = unsigned.then(|| {
                self.settings
                    .checkpoint_interval
                    .saturating_sub(self.signed_at.elapsed())
            });
            let trial_left = self
                .failing()
                .then(|| TRIAL_EVERY.saturating_sub(self.tried_at.elapsed()));
            let follow_left =
                (!self.failing() && self.frontier.size() > self.indexed).then_some(FOLLOW_IDLE);
            let first = match checkpoint_left
                .into_iter()
                .chain(trial_left)
                .chain(follow_left)
                .min()
            {
                Some(left) => match tokio::time::timeout(left, rx.recv()).await {
                    Ok(first) => first,
                    Err(_) => {
                        if self.failing() && self.tried_at.elapsed() >= TRIAL_EVERY {
                            self.trial().await;
                        }
                        if self.frontier.size() > self.signed_size
                            && self.signed_at.elapsed() >= self.settings.checkpoint_interval
                        {
                            self.checkpoint_now().await;
                        } else if follow_left.is_some_and(|f| f <= left) {
                            self.follow().await;
                        }
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let first = match first {
                Some(Msg::Append(p)) => *p,
                Some(Msg::Sign(done)) => {
                    if self.frontier.size() > self.signed_size {
                        self.checkpoint_now().await;
                    }
                    self.follow_all().await;
                    let _ = done.send(());
                    continue;
                }
                None => {
                    // All handles dropped: sign what is unsigned, index
                    // what is not indexed, and stop.
                    if self.frontier.size() > self.signed_size {
                        self.checkpoint_now().await;
                    }
                    self.follow_all().await;
                    return;
                }
            };
            // Group commit: whatever queued while the last batch was being
            // written goes into this one.
            batch.push(first);
            let mut sign = None;
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Msg::Append(p)) => batch.push(*p),
                    Ok(Msg::Sign(done)) => {
                        sign = Some(done);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.write(&mut batch).await;
            if self.frontier.size().saturating_sub(self.indexed) >= FOLLOW_EVERY {
                self.follow().await;
            }
            if let Some(done) = sign {
                if self.frontier.size() > self.signed_size {
                    self.checkpoint_now().await;
                }
                self.follow_all().await;
                let _ = done.send(());
            }
        }
    }

    /// Brings the index of the log by case up to date by one batch, between
    /// the log's own batches: never in an append's transaction, so no
    /// answer waits for it. A failure is logged and tried again after the
    /// next [`FOLLOW_EVERY`] entries or the next idle time; queries stay
    /// complete meanwhile (they read the entries the index lacks from the
    /// log).
    async fn follow(&mut self) {
        match self.sink.follow_index(FOLLOW_MOST).await {
            Ok((upto, _)) => self.indexed = upto.max(0) as u64,
            Err(e) => {
                tracing::warn!(error = %e, "the index of the log by case could not be brought up to date; queries by case read the entries it lacks from the log");
                self.indexed = self.frontier.size();
            }
        }
    }

    /// [`Writer::follow`] until the index has caught up with the log (at a
    /// clean stop, so that the next start and the tools that read the
    /// store without a node find it there), at most [`FOLLOW_ROUNDS`]
    /// batches: a longer way to go is left to the next start.
    async fn follow_all(&mut self) {
        for _ in 0..FOLLOW_ROUNDS {
            if self.indexed >= self.frontier.size() {
                return;
            }
            let before = self.indexed;
            self.follow().await;
            if self.indexed <= before {
                return;
            }
        }
    }

    /// Writes a batch in one transaction. If the database refuses it for
    /// something in the records ([`StoreError::Db`]: a constraint, a
    /// trigger, a value it does not take), the batch is split in halves,
    /// and each half written or split again, so that only the records it
    /// refuses on their own fail ([`AuditError::Refused`]) and every other
    /// request of the group commit goes through. If it takes none at all,
    /// the log cannot be written now, and every record fails as one
    /// ([`AuditError::Store`]). Failures of the database itself (cannot be
    /// reached, disk full) fail the whole batch at once, as before.
    async fn write(&mut self, batch: &mut Vec<Pending>) {
        let began = Instant::now();
        let records = batch.len();
        let mut rows: Vec<LogRow> = Vec::with_capacity(batch.len());
        let mut issued: Vec<Vec<IssuedPseudonym>> = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for p in batch.drain(..) {
            rows.push(p.row);
            issued.push(p.issued);
            waiting.push(p.done);
        }
        let leaves: Vec<merkle::Hash> = rows.iter().map(|r| merkle::leaf_hash(&r.record)).collect();
        let mut outcomes: Vec<Option<Result<i64, AuditError>>> =
            std::iter::repeat_with(|| None).take(rows.len()).collect();
        // Ranges still to write, the next one last, so that records are
        // written in the order their requests came.
        let mut todo = vec![(0, rows.len())];
        let (mut written, mut refused) = (0usize, 0usize);
        while let Some((lo, hi)) = todo.pop() {
            // A checkpoint goes with a whole batch only; the records of a
            // split batch are signed by the next batch or the interval.
            let whole = hi - lo == rows.len();
            match self
                .append_range(&rows[lo..hi], &issued[lo..hi], &leaves[lo..hi], whole)
                .await
            {
                Ok(first_seq) => {
                    written += hi - lo;
                    for (i, slot) in outcomes[lo..hi].iter_mut().enumerate() {
                        *slot = Some(Ok(first_seq + i as i64));
                    }
                }
                Err(e @ StoreError::Db(_)) if hi - lo == 1 => {
                    refused += 1;
                    outcomes[lo] = Some(Err(AuditError::Refused(Arc::new(e))));
                }
                Err(StoreError::Db(_)) => {
                    let mid = lo + (hi - lo) / 2;
                    todo.push((mid, hi));
                    todo.push((lo, mid));
                }
                Err(e) => {
                    // The database itself failed (unreachable, full):
                    // nothing more of this batch can be written now.
                    let e = AuditError::from(e);
                    for (l, h) in std::iter::once((lo, hi)).chain(todo.drain(..)) {
                        for slot in &mut outcomes[l..h] {
                            *slot = Some(Err(e.clone()));
                        }
                    }
                }
            }
        }
        if refused > 0 && written == 0 {
            // Not one record taken, each refused on its own: not the
            // records but the log cannot be written (a trigger refusing
            // every insert, a table gone), and every request fails as one.
            for slot in &mut outcomes {
                if let Some(Err(AuditError::Refused(e))) = slot {
                    *slot = Some(Err(AuditError::Store(e.clone())));
                }
            }
        } else if refused > 0 {
            tracing::error!(
                refused,
                written,
                "the database refused access records on their own while it took the rest of their batch: those requests failed closed, the others went through"
            );
        }
        let mut failed: Option<(AuditError, usize)> = None;
        for (done, outcome) in waiting.into_iter().zip(outcomes) {
            // Every range ends written, refused or failed.
            let outcome = outcome.unwrap_or(Err(AuditError::WriterStopped));
            if let Err(e) = &outcome
                && !matches!(e, AuditError::Refused(_))
            {
                let n = failed.as_ref().map_or(0, |(_, n)| *n);
                failed = Some((e.clone(), n + 1));
            }
            let _ = done.send(outcome);
        }
        if let Some((e, n)) = &failed {
            if !self.failing() {
                // Trials start one interval after the failure.
                self.tried_at = Instant::now();
            }
            self.set_failing(Some(e.cause()));
            self.failures.note(e, *n);
        } else if written > 0 {
            self.set_failing(None);
            self.failures.ended();
        }
        crate::telemetry::metrics::audit_appended(began.elapsed(), records, self.frontier.size());
    }

    /// Appends `rows` (with the pseudonyms their requests issued and their
    /// leaf hashes) where the log ends, in one transaction, catching up
    /// with another replica that appended first; returns the first row's
    /// index. `checkpoint`: sign one with it if one is due. On failure
    /// nothing of it is in the log and the tree is as it was.
    async fn append_range(
        &mut self,
        rows: &[LogRow],
        issued: &[Vec<IssuedPseudonym>],
        leaves: &[merkle::Hash],
        checkpoint: bool,
    ) -> Result<i64, StoreError> {
        let issued: Vec<IssuedPseudonym> = issued.concat();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let before = self.frontier.clone();
            let first_seq = self.frontier.size() as i64;
            // Only nodes at tile levels are stored (`tlog::layout`): the
            // leaf hashes, and one node in 256 above them.
            let mut nodes = Vec::with_capacity(rows.len() + 1);
            for leaf in leaves {
                self.frontier.push_with(*leaf, |id, h| {
                    if id.level % layout::HEIGHT == 0 {
                        nodes.push((id, *h));
                    }
                });
            }
            let cp = (checkpoint && self.signed_at.elapsed() >= self.settings.checkpoint_interval)
                .then(|| self.signed_checkpoint())
                .flatten();
            let result = self
                .sink
                .append(first_seq, rows, &issued, &nodes, cp.as_ref())
                .await;
            match result {
                Ok(()) => {
                    if let Some(cp) = cp {
                        self.signed_size = cp.size as u64;
                        crate::telemetry::metrics::checkpoint_signed();
                        self.signed_at = Instant::now();
                    }
                    return Ok(first_seq);
                }
                Err(StoreError::Raced { size }) if attempt < MAX_RACES => {
                    // Another replica appended first: catch up with the
                    // stored tree and take the next positions.
                    self.frontier = before;
                    self.catch_up(size as u64).await?;
                }
                Err(e) => {
                    // Nothing of it is in the log: forget it, so that what
                    // is written next takes the same positions.
                    self.frontier = before;
                    return Err(e);
                }
            }
        }
    }

    /// Rebuilds the compact range at `size` from the stored tree (written by
    /// another replica). The stored nodes up to the last checkpoint this
    /// writer checked are trusted; what others appended since extends them.
    async fn catch_up(&mut self, size: u64) -> Result<(), StoreError> {
        let ids = Frontier::perfect_nodes_for(size);
        let nodes = self.store.merkle_nodes(&ids).await?;
        self.frontier = Frontier::from_nodes(size, |id| nodes.get(&id).copied())
            .ok_or_else(|| StoreError::Corrupt(AuditError::NodesMissing { size }.to_string()))?;
        Ok(())
    }

    /// A checkpoint of the current tree. The tree only ever grows from the
    /// state checked against the last checkpoint at start, so every
    /// checkpoint the node signs is consistent with all earlier ones.
    /// `None` (logged) if the node's name cannot be signed as (the
    /// configuration refuses such a name, so this does not happen).
    fn signed_checkpoint(&self) -> Option<StoredCheckpoint> {
        let cp = Checkpoint {
            origin: self.settings.origin.clone(),
            size: self.frontier.size(),
            root: self.frontier.root(),
        };
        let signed = cp
            .sign(self.signer.as_ref(), &self.settings.key_name)
            .and_then(|note| match &self.cosigner {
                Some(c) => crate::tlog::note::cosign(c.signer.as_ref(), &c.name, &note),
                None => Ok(note),
            });
        let note = match signed {
            Ok(note) => note,
            Err(e) => {
                tracing::error!(error = %e, "the checkpoint cannot be signed; entries stay unsigned");
                return None;
            }
        };
        Some(StoredCheckpoint {
            size: cp.size as i64,
            root: cp.root.to_vec(),
            at: crate::model::clock::now_millis(),
            note,
        })
    }

    async fn checkpoint_now(&mut self) {
        let Some(cp) = self.signed_checkpoint() else {
            self.signed_at = Instant::now();
            return;
        };
        match self.sink.append_checkpoint(&cp).await {
            Ok(()) => {
                self.signed_size = cp.size as u64;
                crate::telemetry::metrics::checkpoint_signed();
                self.signed_at = Instant::now();
            }
            Err(e) => {
                tracing::error!(error = %e, "checkpoint could not be stored; will retry");
                self.signed_at = Instant::now();
            }
        }
    }
}

/// Whether the latest checkpoint `cp` is signed by the key the writer
/// would sign with: otherwise the key file was replaced, or the node
/// renamed, without handing the log over (`tlog::handover`), and signing on
/// would leave checkpoints no verifier of the log accepts. The one check
/// of the log writer's start and of `sluis check-config`. Errors:
/// [`AuditError::Renamed`] when it is signed under another name only,
/// [`AuditError::KeyReplaced`] otherwise.
pub(crate) fn signed_by_this_key(
    cp: &StoredCheckpoint,
    signer: &dyn Signer,
    name: &str,
) -> Result<(), AuditError> {
    let key = crate::tlog::note::verifier_key(name, &signer.public_key());
    if Checkpoint::verify(&cp.note, &key).is_ok() {
        return Ok(());
    }
    let names = crate::tlog::note::signature_names(&cp.note);
    if !names.is_empty() && !names.contains(&name) {
        return Err(AuditError::Renamed {
            size: cp.size as u64,
            signed_as: names.join(", "),
            configured: name.to_string(),
        });
    }
    Err(AuditError::KeyReplaced {
        size: cp.size as u64,
        name: name.to_string(),
        key,
    })
}

/// The row of a trial write ([`Writer::trial`]): the shape of an access
/// record at position `seq`, naming no one; it is always rolled back.
fn trial_row(seq: i64) -> LogRow {
    LogRow {
        seq,
        request_id: "sluis-trial-write".into(),
        at: crate::model::clock::now_millis(),
        caller: "sluis".into(),
        role: "node".into(),
        method: "sluis.TrialWrite".into(),
        case_id: None,
        subject: None,
        purpose: None,
        decision: "trial".into(),
        record: b"trial write, rolled back".to_vec(),
        subjects: Vec::new(),
        emergency: false,
        closes: None,
    }
}

/// Rebuilds the compact range of the stored tree. A log written before the
/// tree existed (or whose tiles are missing) is hashed from its entries and
/// the missing tiles are stored (`Store::rebuild_tree`).
async fn load_frontier(store: &Store) -> Result<Frontier, AuditError> {
    let size = store.log_size().await? as u64;
    let ids = Frontier::perfect_nodes_for(size);
    let nodes = store.merkle_nodes(&ids).await?;
    if let Some(f) = Frontier::from_nodes(size, |id| nodes.get(&id).copied()) {
        return Ok(f);
    }
    tracing::warn!(
        entries = size,
        "building the log's Merkle tree from its entries"
    );
    Ok(store.rebuild_tree().await?)
}
