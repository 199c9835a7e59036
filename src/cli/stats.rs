//! `sluis stats`: asks a node for a protected table over mTLS, as the
//! monitor or a municipality, and prints it. The node protects and records;
//! this command only asks and prints, so it sees exactly what any back-end
//! of that participant would see.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::net::client::{self, ClientPem};
use crate::rpc::{StatisticsAsk, get_statistics};
use crate::stats::{Publication, TableKind};

/// How to print a table.
#[derive(Clone, Copy, Debug)]
pub enum Format {
    /// The table with its notes, as a report would quote it.
    Text,
    /// One line per cell: block, row, column, figure as shown.
    Csv,
    /// One object per cell, with the method's settings.
    Json,
}

/// What `sluis stats` was asked.
pub struct Command {
    pub node: SocketAddr,
    pub server_name: String,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub actor: Option<String>,
    pub table: TableKind,
    pub year: u32,
    pub quarter: u32,
    pub by_municipality: bool,
    pub purpose: String,
    pub format: Format,
}

pub async fn run(c: Command) -> anyhow::Result<ExitCode> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
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
        actor: c.actor,
    };
    match get_statistics(channel, ask).await {
        Ok((p, request_id)) => {
            print!("{}", format(&p, c.format));
            eprintln!("request id {request_id} (the access record of this request)");
            Ok(ExitCode::SUCCESS)
        }
        Err(s) => {
            eprintln!("refused: {:?}: {}", s.code(), s.message());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The table as text, CSV or JSON.
pub fn format(p: &Publication, f: Format) -> String {
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
        Format::Text => p.render(),
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
                "cells": cells,
            });
            format!("{doc:#}\n")
        }
    }
}
