//! Backup and restore of a SQLite node: `sluis backup` copies the node's
//! database while it serves writes, and its keys apart; `sluis restore`
//! puts them on another path, checks the log against its signed
//! checkpoints, and a node serves from the copy.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use sluis::config::Config;
use sluis::node::Node;
use sluis::rpc::Clients;

fn sluis(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_elsewhere_passes_the_check_and_serves() {
    let node = TestNode::start_on_sqlite(|_| {}).await;
    let mut gemeente = node.client(GEMEENTE).await;
    register(&mut gemeente).await;

    // Writes go on while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (stop, mut c) = (stop.clone(), node.client(GEMEENTE).await);
        async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                register(&mut c).await;
                n += 1;
            }
            n
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let backups = tempfile::tempdir().unwrap();
    let to = backups.path().join("b1");
    let config = node.config_path();
    let (ok, said) = tokio::task::spawn_blocking({
        let (config, to) = (config.clone(), to.clone());
        move || {
            sluis(&[
                "backup",
                "--config",
                config.to_str().unwrap(),
                "--to",
                to.to_str().unwrap(),
            ])
        }
    })
    .await
    .unwrap();
    assert!(ok, "{said}");
    stop.store(true, Ordering::Relaxed);
    let written_during = load.await.unwrap();
    assert!(written_during > 0, "the backup ran under load");
    node.node.shutdown().await.unwrap();

    // What is where, and only for the owner.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(to.join("MANIFEST.json")).unwrap()).unwrap();
    assert_eq!(manifest["database"]["file"], "sluis.db");
    assert!(
        manifest["keys"].as_array().unwrap().len() >= 3,
        "{manifest}"
    );
    for f in ["sluis.db", "MANIFEST.json", "keys/signing.key"] {
        let mode = std::fs::metadata(to.join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }

    // A copy whose database was altered is refused.
    let altered = backups.path().join("altered");
    std::fs::create_dir(&altered).unwrap();
    for f in ["MANIFEST.json", "sluis.db"] {
        std::fs::copy(to.join(f), altered.join(f)).unwrap();
    }
    Command::new("cp")
        .args(["-r"])
        .arg(to.join("keys"))
        .arg(&altered)
        .status()
        .unwrap();
    let mut db = std::fs::read(altered.join("sluis.db")).unwrap();
    let last = db.len() - 1;
    db[last] ^= 1;
    std::fs::write(altered.join("sluis.db"), db).unwrap();
    let target = tempfile::tempdir().unwrap();
    let (ok, said) = sluis(&[
        "restore",
        "--from",
        altered.to_str().unwrap(),
        "--to",
        target.path().join("x.db").to_str().unwrap(),
    ]);
    assert!(!ok && said.contains("SHA-256 differs"), "{said}");
    assert!(!target.path().join("x.db").exists(), "nothing restored");

    // Restored on another path: checked against the signed checkpoints.
    let restored = target.path().join("node");
    std::fs::create_dir(&restored).unwrap();
    let db_path = restored.join("sluis.db");
    let (ok, said) = sluis(&[
        "restore",
        "--from",
        to.to_str().unwrap(),
        "--to",
        db_path.to_str().unwrap(),
    ]);
    assert!(ok, "{said}");
    assert!(
        said.contains("log intact") && said.contains("usable"),
        "{said}"
    );

    // `restore --check` on the configuration of a node that uses it.
    let mut moved = Config::load(&config).unwrap();
    moved.node.database = format!("sqlite://{}", db_path.display());
    moved.node.keys_dir = restored.join("keys");
    let text = toml::to_string(&moved).unwrap();
    let moved_path = node.dir.path().join("restored.toml");
    std::fs::write(&moved_path, text).unwrap();
    let (ok, said) = sluis(&[
        "restore",
        "--check",
        "--config",
        moved_path.to_str().unwrap(),
    ]);
    assert!(ok && said.contains("usable"), "{said}");

    // And it serves: the cases of before the backup are there, new ones
    // can be written, and the log still verifies.
    let served = Node::start(&moved).await.expect("serve the restored node");
    let mut c = Clients::new(
        channel_as(served.local_addr, node.dir.path(), GEMEENTE)
            .await
            .unwrap(),
    );
    let before = own_cases(&mut c).await.len();
    assert!(
        (1..=1 + written_during).contains(&before),
        "{before} cases restored of at most {}",
        1 + written_during
    );
    register(&mut c).await;
    assert_eq!(own_cases(&mut c).await.len(), before + 1);
    served.shutdown().await.unwrap();
    let report = verify_log_of(&moved).await;
    assert!(report.intact(), "{:?}", report.first_problem());
}

/// A restore cut short — here killed by the kernel while it writes the
/// database copy (`ulimit -f`), as a SIGKILL or a full disk would — leaves
/// nothing at the paths it was given: no copy that looks restored but was
/// never checked. Run again, it restores and checks as if it had not been
/// interrupted; a path that exists is refused saying what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_cut_short_leaves_nothing_that_looks_restored() {
    let node = TestNode::start_on_sqlite(|_| {}).await;
    let mut gemeente = node.client(GEMEENTE).await;
    register(&mut gemeente).await;
    let backups = tempfile::tempdir().unwrap();
    let backup = backups.path().join("b1");
    let config = node.config_path();
    let (ok, said) = sluis(&[
        "backup",
        "--config",
        config.to_str().unwrap(),
        "--to",
        backup.to_str().unwrap(),
    ]);
    assert!(ok, "{said}");
    node.node.shutdown().await.unwrap();

    let restored = backups.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    let db = restored.join("sluis.db");
    let keys = restored.join("keys");
    // At most 8 blocks of 512 bytes: the database copy is cut short.
    let killed = Command::new("sh")
        .args([
            "-c",
            "ulimit -f 8; exec \"$0\" restore --from \"$1\" --to \"$2\"",
            env!("CARGO_BIN_EXE_sluis"),
            backup.to_str().unwrap(),
            db.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!killed.status.success(), "{killed:?}");
    assert!(!db.exists(), "an unchecked database at --to");
    assert!(!keys.exists(), "an unchecked keys folder");

    let restore = || {
        sluis(&[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--to",
            db.to_str().unwrap(),
        ])
    };
    let (ok, said) = restore();
    assert!(ok && said.contains("usable"), "{said}");
    assert!(db.exists() && keys.join("signing.key").exists());
    let left: Vec<_> = std::fs::read_dir(&restored)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Never over a node's files: refused, saying so and what to do.
    let (ok, said) = restore();
    assert!(!ok);
    assert!(
        said.contains("already exists") && said.contains("never overwrites"),
        "{said}"
    );
}
