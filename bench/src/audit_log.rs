//! `bench audit-log`: what the access log costs, at the log sizes given —
//! durable appends per second through the node's log writer (group commit,
//! fsync per batch), whole-log verification speed, and inclusion-proof
//! latency.
//!
//! ```sh
//! cargo run --release -p sluis-bench -- audit-log              # 1 M entries
//! cargo run --release -p sluis-bench -- audit-log --sizes 1000000,10000000 --appends 200000
//! cargo run --release -p sluis-bench -- audit-log --postgres postgres://postgres@127.0.0.1:5432/test
//! ```
//! Every figure is printed; nothing is asserted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use sluis::gateway::vault::Keys;
use sluis::model::Category;
use sluis::store::{LogSink, Store};
use sluis::tlog::checkpoint;
use sluis::tlog::proof::{self, LeafRef};
use sluis::tlog::{AccessRecord, AuditLog, Decision, LogSettings};

use crate::bulk::bulk_append;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Durable appends to time through the log writer, 512 waiting at once.
    #[arg(long, default_value_t = 100_000)]
    pub appends: u64,
    /// Log sizes to build (in bulk), then verify in full and take 2,000
    /// random inclusion proofs from, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000_000u64])]
    pub sizes: Vec<u64>,
    /// The same figures on the PostgreSQL server of this URL: a fresh
    /// database is made on it for each part, and dropped after.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
}

fn record(i: u64) -> AccessRecord {
    let mut r = AccessRecord::new(
        uuid::Uuid::now_v7().to_string(),
        1_764_000_000_000 + i as i64,
        "GetCase",
    );
    r.caller = "ngo-vluchtelingenwerk".into();
    r.role = "ngo".into();
    r.case_id = Some(uuid::Uuid::from_u128(u128::from(i % 100_000)).to_string());
    r.subject = Some("ps1.AAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
    r.purpose = Some("case_consultation".into());
    r.asked = Category::ALL.to_vec();
    r.released = vec![Category::Shelter, Category::Perspective];
    r.withheld = vec![(Category::Medical, "no_consent".into())];
    r.decision = Decision::Partial;
    r.status = "OK".into();
    r.rules = vec!["ngo-guidance-consent".into()];
    r.consents = vec!["0190c4e2-7b1a-4c3e-9f00-1a2b3c4d5e6f".into()];
    r
}

/// A fresh PostgreSQL database on the server of `admin_url`.
async fn fresh_postgres(admin_url: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!("sluis_bench_{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(admin_url);
    Ok(format!("{base}/{name}"))
}

/// A store to fill: a SQLite file in `dir`, or a fresh PostgreSQL
/// database (dropped again by [`done`]).
async fn open(dir: &std::path::Path, postgres: Option<&str>) -> anyhow::Result<(Store, LogSink)> {
    Ok(match postgres {
        None => Store::open_sqlite(&dir.join("bench.db")).await?,
        Some(admin) => {
            let url = fresh_postgres(admin).await?;
            Store::open(&url, &sluis::store::PoolSettings::default(), true).await?
        }
    })
}

/// Closes the store and drops the database it was given on PostgreSQL: a
/// log of 10 M entries is gigabytes.
async fn done(store: Store, postgres: Option<&str>) -> anyhow::Result<()> {
    let name = store.postgres_database().await?;
    store.close().await;
    if let (Some(admin), Some(name)) = (postgres, name) {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
    }
    Ok(())
}

async fn durable_appends(
    total: u64,
    concurrency: u64,
    postgres: Option<&str>,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    Keys::create(&dir.path().join("keys"))?;
    let keys = Arc::new(Keys::load(&dir.path().join("keys"))?);
    let (store, sink) = open(dir.path(), postgres).await?;
    let log = AuditLog::start(
        store.clone(),
        sink,
        keys,
        LogSettings {
            key_name: "bench".into(),
            origin: checkpoint::origin("bench"),
            checkpoint_interval: Duration::from_secs(1),
        },
    )
    .await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while i < total {
                log.append(&record(i)).await.expect("append");
                i += concurrency;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let db = if postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite WAL, synchronous=FULL"
    };
    println!(
        "durable appends ({db}, group commit, {concurrency} concurrent writers): \
{total} in {secs:.2}s = {:.0}/s",
        total as f64 / secs
    );
    drop(log);
    done(store, postgres).await
}

/// Fills a log of `size` entries through the log writer, with many
/// appends in flight so that it commits full batches, and has it sign a
/// checkpoint over the whole log.
async fn build(
    size: u64,
    postgres: Option<&str>,
) -> anyhow::Result<(tempfile::TempDir, Store, String)> {
    let dir = tempfile::tempdir()?;
    Keys::create(&dir.path().join("keys"))?;
    let keys = Arc::new(Keys::load(&dir.path().join("keys"))?);
    let key = sluis::tlog::note::verifier_key("bench", &keys.signing_public_key());
    let (store, sink) = open(dir.path(), postgres).await?;
    let started = Instant::now();
    bulk_append(&store, sink, keys, "bench", size, record, |i| {
        if i % 1_000_000 == 0 {
            eprint!("\r  building: {i}/{size}");
        }
    })
    .await?;
    eprintln!(
        "\r  built {size} entries in {:.1}s ({:.0} entries/s through the log writer)",
        started.elapsed().as_secs_f64(),
        size as f64 / started.elapsed().as_secs_f64()
    );
    Ok((dir, store, key))
}

async fn at_size(size: u64, postgres: Option<&str>) -> anyhow::Result<()> {
    println!("log of {size} entries:");
    let (_dir, store, key) = build(size, postgres).await?;
    let report = sluis::tlog::verify::verify_log(&store, &key, None, |_, _| {}).await?;
    assert!(report.intact(), "benchmark log must verify");
    println!(
        "  verify: {} entries + {} tree nodes + {} checkpoint in {:.2}s = {:.0} entries/s",
        report.entries,
        report.tree_nodes,
        report.checkpoints,
        report.seconds,
        report.entries_per_second()
    );
    let mut lat = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let index = x % size;
        let t = Instant::now();
        let p = proof::inclusion_proof(&store, LeafRef::Index(index), None).await?;
        lat.push(t.elapsed());
        p.verify().expect("proof verifies");
    }
    lat.sort();
    let pct = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e3;
    println!(
        "  inclusion proof (fetch nodes + leaf, build; verified separately): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    done(store, postgres).await
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    if a.sizes.contains(&0) {
        bail!("--sizes takes log sizes of at least 1");
    }
    println!(
        "machine: {} cores; sluis audit-log benchmark",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let postgres = a.postgres.as_deref();
    if let Some(url) = postgres {
        println!("database: PostgreSQL at {}", sluis::store::redact_url(url));
    }
    durable_appends(a.appends, 512, postgres).await?;
    for size in a.sizes {
        at_size(size, postgres).await?;
    }
    Ok(())
}
