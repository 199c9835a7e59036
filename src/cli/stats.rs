//! `sluis stats`: asks a node for a protected table over mTLS, as the
//! monitor or a municipality, and prints it. The node protects and records;
//! this command only asks and prints, so it sees exactly what any back-end
//! of that participant would see.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::model::clock::rfc3339_ms;
use crate::net::client::{self, ClientPem};
use crate::rpc::{StatisticsAnswer, StatisticsAsk, get_statistics};
use crate::stats::TableKind;

/// How to print a table.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// The table with its notes, as a report would quote it.
    Text,
    /// One line per cell: block, row, column, figure as shown.
    Csv,
    /// One object per cell, with the method's settings.
    Json,
}

/// `sluis stats --network`'s exit code when some node did not answer with
/// its table: the figures printed leave its cases out.
pub const EXIT_INCOMPLETE: u8 = 3;

/// What `sluis stats` takes.
#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 the table was printed; 1 the node refused (the reason \
    is printed) or could not be reached; 3 (--network only) the table was printed but is \
    INCOMPLETE: at least one node did not answer with its table, and its cases are not in the \
    figures (the missing nodes are named)."
)]
pub struct Command {
    /// The node's address.
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub node: SocketAddr,
    /// The name the node's certificate is issued for.
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    /// CA certificate that issued the node's certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// Your client certificate (PEM), e.g. the monitor's.
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The employee asking (sent as x-sluis-actor).
    #[arg(long)]
    pub actor: Option<String>,
    /// inflow, perspective, shelter, outcomes, durable_solutions, time_to_outcome or
    /// intake_vs_outcome.
    #[arg(long, default_value = "durable_solutions")]
    pub table: TableKind,
    /// Calendar year (2019 or later).
    #[arg(long)]
    pub year: u32,
    /// Quarter 1-4 (one that has ended).
    #[arg(long)]
    pub quarter: u32,
    /// The monitor only: a column per municipality besides the total.
    #[arg(long)]
    pub by_municipality: bool,
    /// The monitor only: the sum of every federation node's published table
    /// (nodes that do not answer are named: INCOMPLETE, exit status 3).
    #[arg(long, conflicts_with = "by_municipality")]
    pub network: bool,
    #[arg(long, default_value = "monitoring")]
    pub purpose: String,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub async fn run(c: Command) -> anyhow::Result<ExitCode> {
    let read = |p: &PathBuf| {
        crate::files::read_to_string(p, crate::files::Kind::Pem)
            .with_context(|| format!("cannot read {}", p.display()))
    };
    let pem = ClientPem {
        ca: read(&c.ca)?,
        identity: Some((read(&c.cert)?, read(&c.key)?)),
    };
    let channel = client::connect(c.node, &c.server_name, &pem)
        .await
        .with_context(|| format!("cannot connect to {} over mTLS", c.node))?;
    let ask = StatisticsAsk {
        table: c.table,
        year: c.year,
        quarter: c.quarter,
        by_municipality: c.by_municipality,
        purpose: c.purpose,
        network: c.network,
        actor: c.actor,
    };
    match get_statistics(channel, ask).await {
        Ok(a) => {
            print!("{}", format(&a, c.format));
            if !a.release_sha256.is_empty() {
                eprintln!("release sha256 {}", a.release_sha256);
            }
            if let Some(at) = a.as_of {
                eprintln!(
                    "as of {} (when the figures were computed; the quarter is published once)",
                    rfc3339_ms(at)
                );
            }
            // The text already ends with the nodes added up and any
            // missing; CSV and JSON get them here, once.
            if !matches!(c.format, Format::Text) {
                if !a.nodes.is_empty() {
                    eprintln!("nodes added up: {}", a.nodes.join(", "));
                }
                if !a.missing_nodes.is_empty() {
                    eprintln!("INCOMPLETE: no table from {}", a.missing_nodes.join("; "));
                }
            }
            eprintln!(
                "request id {} (the access record of this request)",
                a.request_id
            );
            Ok(if a.missing_nodes.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_INCOMPLETE)
            })
        }
        Err(s) => {
            eprintln!("refused: {:?}: {}", s.code(), s.message());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The table as text (as the node wrote it, with its notes), CSV or JSON
/// (with the release's SHA-256 and `as_of`, and for network figures the
/// nodes added up and those missing).
pub fn format(a: &StatisticsAnswer, f: Format) -> String {
    let p = &a.publication;
    let t = p.settings.threshold;
    let cells = || {
        let mut out = Vec::new();
        for (b, block) in p.blocks.labels.iter().enumerate() {
            for (r, row) in p.rows.labels.iter().enumerate() {
                for (c, col) in p.columns.labels.iter().enumerate() {
                    out.push((block, row, col, p.figure(b, r, c)));
                }
            }
        }
        out
    };
    match f {
        Format::Text => a.text.clone(),
        Format::Csv => {
            let mut s = String::from("table,quarter,block,row,column,figure\n");
            for (b, r, c, fig) in cells() {
                s.push_str(&format!(
                    "{},{},{},{},{},{}\n",
                    p.table,
                    p.quarter,
                    b.key,
                    r.key,
                    c.key,
                    fig.shown(t)
                ));
            }
            s
        }
        Format::Json => {
            let cells: Vec<serde_json::Value> = cells()
                .into_iter()
                .map(|(b, r, c, fig)| {
                    serde_json::json!({
                        "block": b.key, "row": r.key, "column": c.key, "figure": fig.shown(t),
                    })
                })
                .collect();
            let doc = serde_json::json!({
                "table": p.table.as_str(),
                "title": p.table.title(),
                "quarter": p.quarter.to_string(),
                "scope": p.scope_words,
                "threshold": p.settings.threshold,
                "protection": p.settings.protection,
                "rounding_base": p.settings.rounding_base,
                "release_sha256": a.release_sha256,
                "as_of": a.as_of.map(rfc3339_ms),
                "nodes": a.nodes,
                "missing_nodes": a.missing_nodes,
                "cells": cells,
            });
            format!("{doc:#}\n")
        }
    }
}
