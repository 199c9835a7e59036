//! `sluis federation`: the network operator's tools for the signed
//! federation directory and the federation's pseudonym key. Nothing here talks to a node: the operator makes
//! the key, signs a directory from its TOML source, and hands the signed
//! file to every node (which takes it on SIGHUP).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::federation::FederationKey;
use crate::federation::directory::{self, Directory};
use crate::model::clock::now_millis;

/// What `sluis federation` takes.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Make the federation key (Ed25519) that signs directories, and print its verifier key,
    /// which every node names in `[federation] verifier_key`. Keep the key file off the nodes.
    Keygen {
        /// The network's name (it names the key in every signature), e.g. lvv.
        #[arg(long)]
        network: String,
        /// Where to write the private key (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Make the federation's pseudonym key K_fed (32 random bytes). Copy the file to every node
    /// over a protected channel (never in the directory) and name it in `[federation]
    /// pseudonym_key`: a recipient then gets the same pseudonym for a case on every node, before
    /// and after a referral.
    PseudonymKeygen {
        /// Where to write the key (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Make a node's witness key (Ed25519, named `<node>/witness`) and print its verifier key,
    /// which the directory lists as the node's `witness_key`. Run on the node; name the file in
    /// its `[federation] witness_key`: it then cosigns its peers' checkpoints.
    WitnessKeygen {
        /// The node's id (its `node.name`).
        #[arg(long)]
        node: String,
        /// Where to write the private key (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check a directory source (TOML) and sign it: writes the signed directory (a C2SP signed
    /// note) that nodes load. The source's `network` must be the key's; its `not_after` must be
    /// later than its `not_before` and not yet passed.
    Sign {
        /// The federation key file (`sluis federation keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The directory source: network, serial, not_before, not_after and [[node]] entries
        /// with their [[node.host]] participants.
        #[arg(long, value_name = "FILE")]
        source: PathBuf,
        /// Where to write the signed directory (replaced whole, never half-written).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Verify a signed directory with the federation's verifier key and check that it is valid
    /// now. Exit 0 only when both hold.
    Verify {
        /// The federation's verifier key, `<network>+<key id>+<key>`.
        #[arg(long)]
        key: String,
        /// The signed directory.
        file: PathBuf,
    },
    /// Print a signed directory for a reader: its nodes and who each is home to. With --key it
    /// is verified first; without, the output says it was not.
    Show {
        /// The federation's verifier key; without it the signature is not checked.
        #[arg(long)]
        key: Option<String>,
        /// The signed directory.
        file: PathBuf,
    },
}

pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Keygen { network, out } => {
            if !crate::federation::directory::is_token(&network) {
                anyhow::bail!(
                    "--network must be 1-64 characters of a-z, 0-9, '-', '_' or '.': it names the key in every signature and must be the directory's network"
                );
            }
            let vkey = FederationKey::generate(&network, &out)?;
            println!("wrote the federation key to {}", out.display());
            println!("verifier key (each node's [federation] verifier_key):\n{vkey}");
            Ok(ExitCode::SUCCESS)
        }
        Command::WitnessKeygen { node, out } => {
            let vkey = crate::federation::witness::WitnessSigner::generate(&node, &out)?;
            println!("wrote the witness key to {}", out.display());
            println!("witness key (the directory's witness_key for node {node}):\n{vkey}");
            Ok(ExitCode::SUCCESS)
        }
        Command::PseudonymKeygen { out } => {
            crate::federation::pseudonym::FederationPseudonyms::generate(&out)?;
            println!(
                "wrote the federation pseudonym key to {}; give every node a copy ([federation] pseudonym_key)",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sign { key, source, out } => {
            let key = FederationKey::load(&key)?;
            let text = crate::files::read_to_string(&source, crate::files::Kind::Config)
                .with_context(|| format!("cannot read {}", source.display()))?;
            let d = Directory::from_toml(&text)
                .with_context(|| format!("the directory source {} is refused", source.display()))?;
            if d.network != key.network() {
                anyhow::bail!(
                    "the source is for network '{}' but the key signs for '{}': use that network's key",
                    d.network,
                    key.network()
                );
            }
            // A directory no node would take: its validity has ended (a
            // reload refuses it and verify says it is not valid).
            let validity = d
                .check()
                .with_context(|| format!("the directory source {} is refused", source.display()))?;
            if validity.not_after <= now_millis() {
                anyhow::bail!(
                    "the directory source {} is refused: not_after {} has passed, so no node would take it; set not_after (and not_before) to the period the directory is to be valid",
                    source.display(),
                    d.not_after
                );
            }
            let signed = directory::sign(&d, &key)?;
            write_whole(&out, &signed)?;
            println!(
                "signed directory of network {} (serial {}, {} nodes, valid {} to {}) written to {}",
                d.network,
                d.serial,
                d.nodes.len(),
                d.not_before,
                d.not_after,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { key, file } => {
            let text = read(&file)?;
            match directory::verify(&text, &key) {
                Ok((d, v)) => {
                    let now = now_millis();
                    if now >= v.not_after {
                        eprintln!(
                            "directory NOT valid: the signature verifies but it expired at {} (serial {}); sign a newer one",
                            d.not_after, d.serial
                        );
                        Ok(ExitCode::FAILURE)
                    } else if now < v.not_before {
                        eprintln!(
                            "directory NOT valid yet: the signature verifies but it is valid from {} (serial {})",
                            d.not_before, d.serial
                        );
                        Ok(ExitCode::FAILURE)
                    } else {
                        println!(
                            "directory verified: network {}, serial {}, {} nodes, valid until {}",
                            d.network,
                            d.serial,
                            d.nodes.len(),
                            d.not_after
                        );
                        Ok(ExitCode::SUCCESS)
                    }
                }
                Err(e) => {
                    eprintln!("directory NOT verified: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Show { key, file } => {
            let text = read(&file)?;
            let (d, verified) = match &key {
                Some(k) => (directory::verify(&text, k)?.0, true),
                None => (directory::unverified(&text)?, false),
            };
            print!("{}", show(&d, verified));
            // Said after the listing, as verify says it: a node refuses
            // federated calls under a directory outside its validity, and a
            // reload does not take one.
            if let Ok(v) = d.check() {
                let now = now_millis();
                if now >= v.not_after {
                    println!(
                        "\nNOT valid: expired at {}; nodes refuse federated calls under it",
                        d.not_after
                    );
                } else if now < v.not_before {
                    println!(
                        "\nNOT valid yet: valid from {}; a reload does not take it before then",
                        d.not_before
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    crate::files::read_to_string(path, crate::files::Kind::Note)
        .with_context(|| format!("cannot read {}", path.display()))
}

/// Writes `text` next to `path` and renames it into place, so a node that
/// reloads at that moment reads the old file or the new one, never half.
fn write_whole(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The directory for a reader.
fn show(d: &Directory, verified: bool) -> String {
    let mut s = format!(
        "network {} — serial {} — valid {} to {}{}\n",
        d.network,
        d.serial,
        d.not_before,
        d.not_after,
        if verified {
            " (signature verified)"
        } else {
            " (signature NOT checked: give --key)"
        }
    );
    for n in &d.nodes {
        s.push_str(&format!(
            "\nnode {} — {} ({})\n  endpoint      {} (server name {})\n  node key      SPKI SHA-256 {}\n  issuing CA    SHA-256 {}\n  log key       {}\n",
            n.id,
            n.municipality,
            n.municipality_code,
            n.endpoint,
            n.server_name,
            n.tls_spki_sha256,
            n.tls_ca_sha256,
            n.log_key
        ));
        s.push_str(&format!(
            "  witness key   {}\n",
            n.witness_key
                .as_deref()
                .unwrap_or("(none: does not witness)")
        ));
        if n.hosts.is_empty() {
            s.push_str("  hosts         (none)\n");
        }
        for h in &n.hosts {
            s.push_str(&format!("  hosts         {} ({})\n", h.participant, h.role));
        }
    }
    s
}
